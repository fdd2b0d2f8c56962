"""One Odoo worker process of ``bench/bench_scale.py``: it works on a committed database.

    python3 bench/scale_worker.py CONFIG DB MODE JSON|@FILE

Modes (``JSON``, or the file ``FILE``, holds the arguments):

``setup``
    Creates the scale's data in bulk and commits: the seats parameter, ``leads`` leads and
    ``partners`` contacts (the customers), ``n`` seat users and one active mailbox each (IMAP
    over SSL to ``host:port``, the proxy, verified with ``ca_file``).
``cron``
    The scheduled fetch's loop: ``_gmail_sync_due(deadline)`` with the cron's time budget,
    again until it returns 0 (the fallback, before the scheduler API exists:
    ``_cron_fetch()``).
``enqueue``
    ``crm_gmail_sync_queue``'s scheduled fetch: ``_cron_fetch()`` enqueues one job per due
    mailbox; committed.
``jobs``
    What queue_job's runner and its ``/queue_job/runjob`` controller do, without HTTP: take
    the oldest pending job of the channel (``FOR UPDATE SKIP LOCKED``, set ``enqueued`` as the
    runner does), then ``RunJobController._acquire_job`` and ``_runjob``; until no job of the
    channel is pending, enqueued or started.

``odoo ARGS...``
    Odoo's command line (``python3 -m odoo ARGS...``), for installing.

Every mode first makes ``base_sparse_field`` installable when this Odoo marks it not
installable (the cut-down Odoo 18 of ../shared/odoo18 ships its Python code only): OCA
``queue_job`` depends on it for its ``Serialized`` field, so ``crm_gmail_sync_queue`` could
not be installed otherwise. Only these processes see the change; nothing on disk is edited.

The timed modes load the registry, print ``READY`` and wait for a ``go`` line on stdin, so
loading is not timed. Around every ``_gmail_sync_claimed`` they append a line to the ledger
file (``ledger``): mailbox id, pid, start and end (``time.monotonic()``, one clock for all
processes on Linux; end is taken when the mailbox's lock is released), the SQL queries and
the time spent in ``Cursor.execute`` meanwhile. They end with one line ``RESULT {json}``.
"""

import json
import os
import resource
import sys
import time

READY = "READY"
RESULT = "RESULT"
GROUPS = (
    "base.group_user",
    "sales_team.group_sale_salesman_all_leads",
    "crm_gmail_sync.group_mail_addon",
)
CHANNEL = "root.crm_gmail_sync"


# ---------------------------------------------------------------- query counter
class Counter:
    """Every ``Cursor.execute`` of this process: how many, and the seconds spent in them."""

    queries = 0
    seconds = 0.0

    @classmethod
    def install(cls):
        from odoo import sql_db

        original = sql_db.Cursor.execute

        def execute(self, query, params=None, log_exceptions=True):
            start = time.perf_counter()
            try:
                return original(self, query, params, log_exceptions)
            finally:
                cls.seconds += time.perf_counter() - start
                cls.queries += 1

        sql_db.Cursor.execute = execute


# ---------------------------------------------------------------- the ledger
def install_ledger(env, path):
    """Wrap ``_gmail_sync_claimed`` (and note the moment its lock is released and whether
    ``_gmail_sync_locked`` says the run finished)."""
    cls = type(env["crm.gmail.mailbox"])
    orig_claimed = cls._gmail_sync_claimed
    orig_locked = cls._gmail_sync_locked
    orig_unlock = cls._gmail_unlock
    ledger = open(path, "a", buffering=1)  # noqa: SIM115 - one line per sync, kept open
    current = {}

    def unlock(self):
        if current and self.ids == [current.get("id")] and "end" not in current:
            current["end"] = time.monotonic()
        return orig_unlock(self)

    def locked(self, *args, **kwargs):
        finished = orig_locked(self, *args, **kwargs)
        if current and self.ids == [current.get("id")]:
            current["finished"] = bool(finished)
        return finished

    def claimed(self, deadline=None, *args, **kwargs):
        current.clear()
        current.update(id=self.id, q=Counter.queries, db=Counter.seconds)
        start = time.monotonic()
        try:
            return orig_claimed(self, deadline, *args, **kwargs)
        finally:
            end = current.get("end") or time.monotonic()
            cut = deadline is not None and self._gmail_clock() >= deadline
            ledger.write(
                json.dumps(
                    {
                        "mailbox": self.id,
                        "pid": os.getpid(),
                        "start": start,
                        "end": end,
                        "queries": Counter.queries - current["q"],
                        "db": Counter.seconds - current["db"],
                        "cut": cut,
                        # the run reached its end without an error (False: cut by the
                        # budget, failed, or raised; the mailbox is then due again soon)
                        "finished": current.get("finished", False),
                    }
                )
                + "\n"
            )
            current.clear()

    cls._gmail_sync_claimed = claimed
    cls._gmail_sync_locked = locked
    cls._gmail_unlock = unlock


def wait_for_go():
    print(READY, flush=True)
    line = sys.stdin.readline()
    if line.strip() != "go":
        sys.exit(0)  # the bench gave up


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- modes
def _setup(env, args):
    n = args["n"]
    t0 = time.perf_counter()
    env["ir.config_parameter"].set_param("crm_gmail_sync.seats", n + 100)
    ctx = {
        "tracking_disable": True,
        "mail_create_nolog": True,
        "mail_create_nosubscribe": True,
        "mail_notrack": True,
        "no_reset_password": True,
    }
    env = env(context=ctx)
    env["crm.lead"].create(
        [
            {"name": f"Lead {i}", "type": "lead", "email_from": address}
            for i, address in enumerate(args["lead_emails"])
        ]
    )
    env["res.partner"].create(
        [
            {"name": f"Contact {i}", "email": address}
            for i, address in enumerate(args["partner_emails"])
        ]
    )
    env.cr.commit()
    t_customers = time.perf_counter() - t0
    groups = [env.ref(xmlid).id for xmlid in GROUPS]
    Users = env["res.users"]
    Mailbox = env["crm.gmail.mailbox"]
    logins = args["logins"]
    t_users = t_mailboxes = 0.0
    for i in range(0, n, args.get("chunk", 250)):
        chunk = logins[i : i + args.get("chunk", 250)]
        t = time.perf_counter()
        users = Users.create(
            [
                {
                    "name": f"Seller {login.split('@')[0]}",
                    "login": login,
                    "email": login,
                    "groups_id": [(6, 0, groups)],
                }
                for login in chunk
            ]
        )
        t_users += time.perf_counter() - t
        t = time.perf_counter()
        Mailbox.create(
            [
                {
                    "user_id": user.id,
                    "email": login,
                    "login": login,
                    "provider": "imap",
                    "host": args["host"],
                    "port": args["port"],
                    "security": "ssl",
                    "password": args["password"],
                    "ca_file": args["ca_file"],
                    "visibility": "private",
                }
                for user, login in zip(users, chunk)
            ]
        )
        t_mailboxes += time.perf_counter() - t
        env.cr.commit()
        env.invalidate_all()
    return {
        "customers_s": t_customers,
        "users_s": t_users,
        "mailboxes_s": t_mailboxes,
        "total_s": time.perf_counter() - t0,
    }


def _cron(env, args):
    Mailbox = env["crm.gmail.mailbox"].sudo()
    api = "scheduler" if hasattr(Mailbox, "_gmail_sync_due") else "fallback"
    wait_for_go()
    t0, c0, q0, d0 = time.monotonic(), cpu_seconds(), Counter.queries, Counter.seconds
    calls = synced = 0
    if api == "scheduler":
        while True:
            calls += 1
            done = Mailbox._gmail_sync_due(time.monotonic() + Mailbox._gmail_budget())
            env.cr.commit()
            synced += done
            if not done:
                break
    else:  # before the scheduler API: the cron entry point, which commits itself
        calls = 1
        Mailbox._cron_fetch()
        env.cr.commit()
    return {
        "api": api,
        "calls": calls,
        "synced": synced,
        "start": t0,
        "end": time.monotonic(),
        "cpu": cpu_seconds() - c0,
        "queries": Counter.queries - q0,
        "db": Counter.seconds - d0,
    }


def _enqueue(env, args):
    Mailbox = env["crm.gmail.mailbox"].sudo()
    wait_for_go()
    t0, c0, q0, d0 = time.monotonic(), cpu_seconds(), Counter.queries, Counter.seconds
    Mailbox._cron_fetch()
    env.cr.commit()
    env.cr.execute(
        "SELECT count(*) FROM queue_job WHERE channel = %s AND state = 'pending'", [CHANNEL]
    )
    return {
        "pending": env.cr.fetchone()[0],
        "start": t0,
        "end": time.monotonic(),
        "cpu": cpu_seconds() - c0,
        "queries": Counter.queries - q0,
        "db": Counter.seconds - d0,
    }


def _jobs(env, args):
    import psycopg2
    from odoo.addons.queue_job.controllers.main import RunJobController

    cr = env.cr
    wait_for_go()
    t0, c0, q0, d0 = time.monotonic(), cpu_seconds(), Counter.queries, Counter.seconds
    ran = failed = idle = 0
    while True:
        try:
            cr.execute(
                """UPDATE queue_job SET state = 'enqueued',
                      date_enqueued = date_trunc('seconds', now() at time zone 'utc')
                WHERE id = (SELECT id FROM queue_job
                             WHERE channel = %s AND state = 'pending'
                               AND (eta IS NULL OR eta <= now() at time zone 'utc')
                             ORDER BY priority, date_created, id
                             LIMIT 1 FOR UPDATE SKIP LOCKED)
               RETURNING uuid""",
                [CHANNEL],
            )
            row = cr.fetchone()
            cr.commit()
        except psycopg2.errors.SerializationFailure:  # a job taken since our snapshot
            cr.rollback()
            continue
        if not row:
            cr.execute(
                """SELECT count(*) FROM queue_job WHERE channel = %s
                      AND (state IN ('enqueued', 'started')
                           OR (state = 'pending'
                               AND (eta IS NULL OR eta <= now() at time zone 'utc')))""",
                [CHANNEL],
            )
            busy = cr.fetchone()[0]
            cr.commit()
            if not busy:
                break
            idle += 1
            time.sleep(0.05)  # others' jobs may enqueue follow-ups
            continue
        job = RunJobController._acquire_job(env, row[0])
        if not job:
            continue
        try:
            RunJobController._runjob(env, job)
            ran += 1
        except Exception:  # recorded as failed on the job by _runjob
            failed += 1
            cr.rollback()
        env.invalidate_all()
    return {
        "ran": ran,
        "failed": failed,
        "idle_polls": idle,
        "start": t0,
        "end": time.monotonic(),
        "cpu": cpu_seconds() - c0,
        "queries": Counter.queries - q0,
        "db": Counter.seconds - d0,
    }


MODES = {"setup": _setup, "cron": _cron, "enqueue": _enqueue, "jobs": _jobs}


def allow_sparse_field():
    """``base_sparse_field`` installable in this process (see the module docstring)."""
    from odoo.modules import module

    original = module.load_manifest

    def load_manifest(name, mod_path=None):
        manifest = original(name, mod_path)
        if name == "base_sparse_field" and manifest:
            manifest["installable"] = True
        return manifest

    module.load_manifest = load_manifest
    module._get_manifest_cached.cache_clear()


def main(config_file, db, mode, args="{}"):
    import odoo

    allow_sparse_field()
    from odoo.tools import config

    args = json.loads(open(args[1:]).read() if args.startswith("@") else args)
    config.parse_config(["-c", config_file, "-d", db, f"--db-filter=^{db}$", "--log-level=warn"])
    registry = odoo.modules.registry.Registry(db)
    Counter.install()
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        if args.get("ledger"):
            install_ledger(env, args["ledger"])
        result = MODES[mode](env, args)
        cr.commit()
    print(RESULT, json.dumps(result), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["odoo"]:
        import odoo.cli

        allow_sparse_field()
        sys.argv = ["odoo", *sys.argv[2:]]
        odoo.cli.main()
    else:
        main(*sys.argv[1:])
