"""A sync worker in its own process, for test_crash_storage.py: it works on committed data.

    python3 crash_worker.py CONFIG DB MODE [JSON]

``setup`` creates a seat user, a customer and that user's mailbox on the given Dovecot account
(the other mailboxes are archived) and prints the mailbox's id; ``sync`` runs the cron's
``_cron_fetch`` (which commits), with ``{"kill_mid_write": true}`` writing only half of the
first attachment file, then printing ``WRITING`` and waiting to be killed, or with
``{"file_size_limit": n}`` under a real file size limit (the kernel refuses longer files);
``gc`` runs Odoo's filestore garbage collection; ``report`` prints what a mailbox stored.
Results come as one line ``RESULT {json}`` on stdout.
"""

import builtins
import hashlib
import json
import os
import sys
import time
from contextlib import contextmanager
from unittest.mock import patch

WRITING = "WRITING"
RESULT = "RESULT"
GROUPS = "base.group_user,sales_team.group_sale_salesman_all_leads,crm_gmail_sync.group_mail_addon"


@contextmanager
def filestore_writes(filestore, write):
    """Pass every file opened for writing under ``filestore`` (its GC checklist aside)
    through ``write(file, data)`` instead of ``file.write(data)``."""
    real_open = builtins.open
    root = os.path.join(os.path.abspath(filestore), "")
    checklist = os.path.join(root, "checklist", "")

    class Writer:
        def __init__(self, file):
            self._file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._file.close()

        def write(self, data):
            return write(self._file, data)

        def __getattr__(self, name):
            return getattr(self._file, name)

    def open_(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        path = os.path.abspath(file) if isinstance(file, str) else ""
        writing = "b" in mode and ("w" in mode or "x" in mode)
        if writing and path.startswith(root) and not path.startswith(checklist):
            return Writer(opened)
        return opened

    with patch.object(builtins, "open", open_):
        yield


def half_then_wait(file, data):
    """Write half of ``data`` for good (flushed, synced), say so and wait to be killed."""
    file.write(data[: len(data) // 2])
    file.flush()
    os.fsync(file.fileno())
    print(WRITING, file.name, flush=True)
    while True:
        time.sleep(60)


def _setup(env, args):
    from odoo.addons.mail.tests.common import mail_new_test_user

    env["crm.gmail.mailbox"].search([]).write({"active": False})
    env["ir.config_parameter"].set_param("crm_gmail_sync.seats", 100)
    owner = mail_new_test_user(
        env, login=args["email"], name=f"Crash Owner {args['tag']}", groups=GROUPS
    )
    if not env["res.partner"].search([("email", "=", args["customer"])]):
        env["res.partner"].create({"name": "Chris Customer", "email": args["customer"]})
    mailbox = env["crm.gmail.mailbox"].create(
        {
            "user_id": owner.id,
            "email": args["email"],
            "provider": "imap",
            "host": args["host"],
            "port": args["port"],
            "security": "ssl",
            "login": args["login"],
            "password": args["password"],
            "ca_file": args["ca_file"],
        }
    )
    return {"mailbox_id": mailbox.id}


def _sync(env, args):
    from odoo.tools import config

    filestore = config.filestore(env.cr.dbname)
    if args.get("kill_mid_write"):
        with filestore_writes(filestore, half_then_wait):
            _fetch_due(env)
        return {}
    if args.get("file_size_limit"):
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails: EFBIG
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (args["file_size_limit"], hard))
    _fetch_due(env)
    return {}


def _fetch_due(env):
    """The scheduled fetch, once the interval has passed (every mailbox due)."""
    env.cr.execute("UPDATE crm_gmail_mailbox SET sync_next_date = NULL")
    env.cr.commit()
    env["crm.gmail.mailbox"]._cron_fetch()


def _gc(env, args):
    env["ir.attachment"]._gc_file_store()
    return {}


def _report(env, args):
    from odoo.tools import config

    mailbox = env["crm.gmail.mailbox"].browse(args["mailbox_id"])
    messages = env["crm.gmail.message"].search([("mailbox_id", "=", mailbox.id)])
    return {
        "filestore": config.filestore(env.cr.dbname),
        "mailbox": {
            "sync_state": json.loads(mailbox.sync_state) if mailbox.sync_state else None,
            "state": mailbox.state,
            "last_error": mailbox.last_error or None,
            "last_error_kind": mailbox.last_error_kind or None,
            "count_stored": mailbox.count_stored,
            "count_unparseable": mailbox.count_unparseable,
        },
        "messages": [
            {
                "message_id": message.message_id_header,
                "attachments": [
                    {
                        "name": attachment.name,
                        "store_fname": attachment.store_fname,
                        "checksum": attachment.checksum,
                        "file_size": attachment.file_size,
                        "raw_sha1": hashlib.sha1(attachment.raw or b"").hexdigest(),
                    }
                    for attachment in message.attachment_ids
                ],
            }
            for message in messages
        ],
    }


MODES = {"setup": _setup, "sync": _sync, "gc": _gc, "report": _report}


def main(config_file, db, mode, args="{}"):
    import odoo
    from odoo.tools import config

    config.parse_config(["-c", config_file, "-d", db, f"--db-filter=^{db}$", "--log-level=warn"])
    registry = odoo.modules.registry.Registry(db)
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        result = MODES[mode](env, json.loads(args))
    print(RESULT, json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
