"""A sync worker in its own process, for test_workers.py: it works on committed data.

    python3 sched_worker.py CONFIG DB MODE [JSON]

``setup`` creates one seat user and mailbox per Dovecot account given (other mailboxes are
archived) and prints their ids; ``run`` loads the registry, prints ``READY``, waits for a
line on stdin, then runs the scheduler's loop (``_gmail_sync_due``) as a cron worker does,
printing one ``LEDGER {json}`` line per mailbox sync (mailbox, pid, start, end); with
``{"pause_at": id}`` it stops after the first committed batch of that mailbox, prints
``PAUSED`` and waits to be killed; with ``{"poison": subject}`` it kills itself (SIGKILL) when
it is about to store an email with that subject. ``report`` prints what the mailboxes hold.
Results come as one line ``RESULT {json}`` on stdout.
"""

import json
import os
import signal
import sys
import time

RESULT = "RESULT"
LEDGER = "LEDGER"
READY = "READY"
PAUSED = "PAUSED"
GROUPS = "base.group_user,sales_team.group_sale_salesman_all_leads,crm_gmail_sync.group_mail_addon"


def _setup(env, args):
    from odoo.addons.mail.tests.common import mail_new_test_user

    env["crm.gmail.mailbox"].search([]).write({"active": False})
    env["ir.config_parameter"].set_param("crm_gmail_sync.seats", 1000)
    env["ir.config_parameter"].set_param("crm_gmail_sync.batch_size", args.get("batch_size", 200))
    if not env["res.partner"].search([("email", "=", args["customer"])]):
        env["res.partner"].create({"name": "Chris Customer", "email": args["customer"]})
    ids = []
    for account in args["accounts"]:
        owner = mail_new_test_user(
            env, login=account["login"], name=f"Owner {account['login']}", groups=GROUPS
        )
        mailbox = env["crm.gmail.mailbox"].create(
            {
                "user_id": owner.id,
                "email": account["login"],
                "provider": "imap",
                "host": args["host"],
                "port": args["port"],
                "security": "ssl",
                "login": account["login"],
                "password": account["password"],
                "ca_file": args["ca_file"],
            }
        )
        ids.append(mailbox.id)
    return {"ids": ids}


def _run(env, args):
    from odoo.addons.crm_gmail_sync.models import crm_gmail_sink

    Mailbox = type(env["crm.gmail.mailbox"])
    real_claimed = Mailbox._gmail_sync_claimed

    def ledger(records, *a, **kw):
        start = time.time()
        try:
            return real_claimed(records, *a, **kw)
        finally:
            entry = {"mailbox": records.id, "pid": os.getpid(), "start": start, "end": time.time()}
            print(LEDGER, json.dumps(entry), flush=True)

    Mailbox._gmail_sync_claimed = ledger
    real_store = crm_gmail_sink.MailboxSink.store

    def store(sink, batch):
        poison = args.get("poison")
        if poison and any(msg.header.subject == poison for msg in batch.messages):
            print("DYING", sink.mailbox.id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        real_store(sink, batch)  # commits
        if sink.mailbox.id == args.get("pause_at") and batch.messages:
            print(PAUSED, sink.mailbox.id, flush=True)
            while True:
                time.sleep(60)

    crm_gmail_sink.MailboxSink.store = store
    print(READY, flush=True)
    sys.stdin.readline()
    done = env["crm.gmail.mailbox"]._gmail_sync_due()
    return {"done": done}


def _report(env, args):
    out = {}
    for mailbox in env["crm.gmail.mailbox"].browse(args["ids"]):
        messages = env["crm.gmail.message"].search([("mailbox_id", "=", mailbox.id)])
        out[str(mailbox.id)] = {
            "subjects": sorted(messages.mapped("subject")),
            "count_stored": mailbox.count_stored,
            "count_unparseable": mailbox.count_unparseable,
            "sync_crashes": mailbox.sync_crashes,
            "due": bool(
                env["crm.gmail.mailbox"].search_count(
                    [("id", "=", mailbox.id), *mailbox._gmail_due_domain()]
                )
            ),
            "state": mailbox.state,
        }
    return out


def _make_due(env, args):
    env.cr.execute("UPDATE crm_gmail_mailbox SET sync_next_date = NULL")
    return {}


MODES = {"setup": _setup, "run": _run, "report": _report, "make_due": _make_due}


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
