"""Benchmark of the scheduler at scale: many mailboxes, many workers (prints, asserts nothing).

One command starts everything on loopback and removes it again: a private PostgreSQL cluster
(``tools/pg.sh``, with ``pg_stat_statements`` preloaded), a database with ``crm_gmail_sync``, a
private Dovecot (``tests/dovecot.py``) with ``--mailboxes`` users, and a TCP proxy in front of
its IMAPS port adding ``--latency-ms`` of round trip (``tests/proxy.DroppingProxy``)::

    python3 bench/bench_scale.py [--mailboxes 1000] [--latency-ms 50] [--workers 1,2,4,8]
        [--messages 4] [--customer-share 0.25] [--queue-workers 1,2,4,8 | --no-queue]
        [--dir /tmp/bench-scale] [--pg-port 55441] [--keep]

About 21 minutes on 2 cores with the defaults (the 1-worker round alone takes 8); ``--mailboxes
100`` takes 3. What it does:

1. Set-up, in bulk: ``--mailboxes`` seat users (``base.group_user``, all leads, the Mail add-on
   seat; the seats parameter first), each with one active mailbox (IMAP over SSL to the proxy,
   the private CA as ``ca_file``), and as many customers (half leads, half contacts). The
   Dovecot users are one passwd-file each (what ``Dovecot.add_user`` writes); mail is written
   straight into their Maildirs (``new/``, as a delivery agent does), not through IMAP.
2. Rounds. Before each, every mailbox gets ``--messages`` new emails, ``--customer-share`` of
   them from a customer (the email of a lead or of a contact: fetched in full and stored), the
   rest from other senders (headers only); then every mailbox is made due at once
   (``sync_next_date`` = now - 1 min, SQL). N worker processes (``bench/scale_worker.py``)
   load the registry and wait; the clock starts when all of them are told to go, and a round
   ends when the last has finished. The first round (every mailbox's first sync, no cursor
   yet) runs with the most workers and is reported apart; then one round per ``--workers``.
   - cron path: each worker runs ``_gmail_sync_due(deadline)`` with the cron's time budget,
     again until it returns 0 (what the scheduled action and its copies do);
   - queue_job path (when ``crm_gmail_sync_queue`` is in the repository and ``queue_job`` is
     importable; installed after the cron rounds): ``_cron_fetch()`` enqueues a job per due
     mailbox, then N workers run the jobs as queue_job's runner and ``/queue_job/runjob``
     controller do, minus HTTP (``RunJobController._acquire_job`` / ``_runjob``).
3. Measured per round: wall time and speed-up over 1 worker; per mailbox synced: the time of
   one sync (from the ledger, median and 95th percentile), SQL queries and seconds in
   ``Cursor.execute`` (counted in the workers, in the sync and in total), and PostgreSQL's
   own execution time and statements (``pg_stat_statements``, reset before each round); CPU
   seconds of the Odoo workers, PostgreSQL, Dovecot and the proxy against the machine's
   cores; the most overdue mailbox (the last claimed: how long after the round began its
   sync started; at the end, those still due and the oldest ``last_sync_date``); what was
   stored against what was sent.
4. The ledger: every worker writes a line (mailbox, pid, start, end) around each
   ``_gmail_sync_claimed``, end when the mailbox's lock is released; ``synced twice at once``
   counts, over the whole run, syncs of one mailbox whose intervals overlap.
5. Extrapolation to 10,000 mailboxes: worker-seconds per mailbox (wall x workers /
   mailboxes) gives the workers needed to sync 10,000 in 5 minutes, and the time with 16
   workers; the CPU seconds per mailbox of Odoo and PostgreSQL (not Dovecot and the proxy,
   which stand in for Gmail and the network) give the cores that needs.

The addons are copied into ``--dir`` first, so that every process of the run loads the same
code even when the work tree is edited meanwhile. ``--keep`` leaves ``--dir`` (cluster,
filestore, logs, ledger, that copy) in place.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import importlib.util
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from dovecot import Dovecot  # noqa: E402 - after the path set-up above
from mailgen import make_message  # noqa: E402
from proxy import DroppingProxy  # noqa: E402

DB = "crm_gmail_sync_scale"
PASSWORD = "bench-password"
DOMAIN = "sales.scale.test"
WORKER = ROOT / "bench" / "scale_worker.py"
ADDONS = ("crm_gmail_sync", "crm_gmail_sync_queue")
CRON_XMLID = ("crm_gmail_sync", "ir_cron_crm_gmail_sync_fetch")
TARGET_MAILBOXES, TARGET_SECONDS, WIDE_WORKERS = 10_000, 300, 16
TICK = os.sysconf("SC_CLK_TCK")
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Failure|Exception|Abort)\b[^:]*: ")
CORES = sum(1 for line in open("/proc/stat") if line[:3] == "cpu" and line[3].isdigit())


# ---------------------------------------------------------------- infrastructure
def sh_pg(script: str, work: Path, port: int, *extra: str) -> str:
    """Run ``script`` in bash with tools/pg.sh sourced ($1 dir, $2 port, $3... extra)."""
    proc = subprocess.run(
        ["bash", "-c", f"set -e; . tools/pg.sh; {script}", "bench", str(work / "pg"), str(port)]
        + list(extra),
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip()


def psql_super(work: Path, port: int, db: str, sql: str) -> str:
    return sh_pg(
        'pg_as_owner "$(pg_bindir)/psql" -h "$1" -p "$2" -U postgres -d "$3" -qtA -c "$4"',
        work,
        port,
        db,
        sql,
    )


def start_pg(work: Path, port: int) -> None:
    """The private cluster, restarted once with pg_stat_statements preloaded."""
    sh_pg('pg_start "$1" "$2"', work, port)
    psql_super(
        work, port, "postgres", "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
    )
    sh_pg('pg_stop "$1"; pg_start "$1" "$2"', work, port)


def queue_available() -> bool:
    return (ROOT / "crm_gmail_sync_queue" / "__manifest__.py").exists() and bool(
        importlib.util.find_spec("odoo.addons.queue_job")
    )


def snapshot_addons(work: Path) -> Path:
    """Copy this repository's addons into ``work``: every process of the run loads the same
    code, whatever is edited in the work tree meanwhile."""
    target = work / "addons"
    for name in ADDONS:
        if (ROOT / name / "__manifest__.py").exists():
            shutil.copytree(
                ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__")
            )
    return target


def write_rc(work: Path, port: int, with_queue: bool, addons: Path) -> Path:
    paths = sh_pg('odoo_addons_path "$3"', work, port, str(addons)).split(",")
    if with_queue:
        spec = importlib.util.find_spec("odoo.addons.queue_job")
        paths.insert(-1, str(Path(spec.origin).parent.parent))
    rc = work / "odoo.rc"
    rc.write_text(
        f"""[options]
db_host = 127.0.0.1
db_port = {port}
db_user = odoo
db_password = odoo
db_name = {DB}
dbfilter = ^{DB}$
addons_path = {",".join(paths)}
data_dir = {work}/data
without_demo = all
http_interface = 127.0.0.1
"""
    )
    return rc


def odoo_init(rc: Path, modules: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), "odoo", "-c", str(rc), "-d", DB, "-i", modules]
        + ["--stop-after-init", "--log-level=warn"],
        stdout=open(log, "wb"),  # noqa: SIM115 - the child keeps it
        stderr=subprocess.STDOUT,
    )


def worker(rc: Path, mode: str, args, log: Path) -> subprocess.Popen:
    """A ``scale_worker.py`` process; ``args`` a dict, or ``"@file"`` holding its JSON."""
    arg = args if isinstance(args, str) else json.dumps(args)
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(rc), DB, mode, arg],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(log, "ab"),  # noqa: SIM115 - the child keeps it
        text=True,
        bufsize=1,
    )


def read_line(proc: subprocess.Popen, prefix: str, log: Path) -> str:
    while True:
        line = proc.stdout.readline()
        if not line:
            proc.wait()
            tail = log.read_text(errors="replace")[-3000:]
            sys.exit(f"worker {proc.pid} exited with {proc.returncode} before {prefix}:\n{tail}")
        if line.startswith(prefix):
            return line[len(prefix) :].strip()


def run_worker(rc, mode, args, log):
    path = log.with_suffix(".json")  # long argument lists go by file
    path.write_text(json.dumps(args))
    proc = worker(rc, mode, f"@{path}", log)
    result = json.loads(read_line(proc, "RESULT", log))
    proc.wait()
    return result


# ---------------------------------------------------------------- CPU accounting
def _proc_stats():
    """``{pid: (ppid, cpu seconds incl. reaped children)}`` of every process."""
    stats = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(path).read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        stats[int(path.split("/")[2])] = (int(fields[1]), ticks / TICK)
    return stats


def tree_cpu(root: int, stats=None) -> float:
    """CPU seconds of ``root`` and its descendants, counting the children they reaped."""
    stats = stats or _proc_stats()
    children = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo += children.get(pid, [])
    return total


def machine_busy() -> tuple[float, float]:
    """``(busy, total)`` CPU seconds of the machine since boot (/proc/stat)."""
    values = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICK, sum(values) / TICK


class CpuSnapshot:
    def __init__(self, pg_pid, dovecot_pid):
        stats = _proc_stats()
        self.pg = tree_cpu(pg_pid, stats)
        self.dovecot = tree_cpu(dovecot_pid, stats)
        usage = os.times()
        self.proxy = usage.user + usage.system  # this process: the proxy's threads
        self.busy, self.total = machine_busy()


# ---------------------------------------------------------------- mail
class Maildirs:
    """New mail straight into the Dovecot users' Maildirs, as a delivery agent writes it."""

    def __init__(self, server: Dovecot, logins, customers, seed=11):
        self.server = server
        self.logins = logins
        self.customers = customers
        self.rnd = random.Random(seed)
        self.seq = 0

    def _dir(self, login):
        home = self.server.base / "mail" / login
        maildir = home / "Maildir"
        if not maildir.exists():
            for path in (home, maildir, *(maildir / sub for sub in ("new", "cur", "tmp"))):
                path.mkdir(exist_ok=True)
                os.chown(path, self.server.uid, self.server.gid)
        return maildir

    def deliver_round(self, per_mailbox, customer_share):
        """``per_mailbox`` new emails for every user; returns (emails, from customers)."""
        start = time.perf_counter()
        total = from_customers = 0
        template = make_message(  # one MIME build per round; the headers are filled in
            SENDER,
            RECIPIENT,
            f"Angebot Nr. {SEQ}",
            msgid=f"<s{SEQ}@{DOMAIN}>",
            date=dt.datetime.now(dt.timezone.utc),
            body=BODY,
            html=HTML,
        )
        for login in self.logins:
            maildir = self._dir(login)
            for _ in range(per_mailbox):
                self.seq += 1
                customer = self.rnd.random() < customer_share
                if customer:
                    sender = self.rnd.choice(self.customers)
                    from_customers += 1
                else:
                    n = self.rnd.randrange(100_000)
                    sender = f"news{n}@web{n % 97}.example"
                raw = (
                    template.replace(SENDER.encode(), sender.encode())
                    .replace(RECIPIENT.encode(), login.encode())
                    .replace(SEQ.encode(), str(self.seq).encode())
                )
                name = f"{int(time.time())}.M{self.seq}P{os.getpid()}.bench"
                tmp = maildir / "tmp" / name
                tmp.write_bytes(raw)
                os.chown(tmp, self.server.uid, self.server.gid)
                os.rename(tmp, maildir / "new" / name)
                total += 1
        return total, from_customers, time.perf_counter() - start


SENDER, RECIPIENT, SEQ = "sender@placeholder.invalid", "rcpt@placeholder.invalid", "SEQ00000"
BODY = "Hallo,\n\n" + " ".join(["unser Angebot für Ihre Anfrage"] * 40) + "\n\nGrüße\n"
HTML = f"<p>{BODY}</p>"


# ---------------------------------------------------------------- the database, read directly
class Db:
    def __init__(self, work: Path, port: int):
        import psycopg2

        self.conn = psycopg2.connect(host=str(work / "pg"), port=port, user="postgres", dbname=DB)
        self.conn.autocommit = True

    def one(self, sql, params=()):
        with self.conn.cursor() as cr:
            cr.execute(sql, params)
            return cr.fetchone()

    def all(self, sql, params=()):
        with self.conn.cursor() as cr:
            cr.execute(sql, params)
            return cr.fetchall()

    def set_interval_days(self, days):
        """The scheduled action's interval, which is also each mailbox's sync interval."""
        return self.one(
            """WITH u AS (UPDATE ir_cron SET interval_number = %s, interval_type = 'days'
                           WHERE id = (SELECT res_id FROM ir_model_data
                                        WHERE module = %s AND name = %s) RETURNING 1)
               SELECT count(*) FROM u""",
            [days, *CRON_XMLID],
        )[0]

    def make_due(self):
        return self.one(
            """WITH u AS (UPDATE crm_gmail_mailbox
                             SET sync_next_date = (now() at time zone 'utc') - interval '1 minute'
                           WHERE active RETURNING 1)
               SELECT count(*) FROM u"""
        )[0]

    def counters(self):
        """``(sum of count_stored, of count_not_customer, crm.gmail.message rows,
        mailboxes whose count_stored is NULL)``."""
        return self.one(
            """SELECT coalesce(sum(count_stored), 0), coalesce(sum(count_not_customer), 0),
                      (SELECT count(*) FROM crm_gmail_message),
                      count(*) FILTER (WHERE count_stored IS NULL)
                 FROM crm_gmail_mailbox WHERE active"""
        )

    def reset_statements(self):
        self.one("SELECT pg_stat_statements_reset()")

    def statements(self):
        """``(statements, exec seconds)`` of the bench database since the last reset."""
        calls, ms = self.one(
            """SELECT coalesce(sum(s.calls), 0), coalesce(sum(s.total_exec_time), 0)
                 FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                WHERE d.datname = %s AND s.query NOT ILIKE '%%pg_stat_statements%%'""",
            [DB],
        )
        return int(calls), float(ms) / 1000

    def top_statements(self, n=5):
        return self.all(
            """SELECT s.calls, s.total_exec_time,
                      left(regexp_replace(s.query, '\\s+', ' ', 'g'), 110)
                 FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                WHERE d.datname = %s ORDER BY s.total_exec_time DESC LIMIT %s""",
            [DB, n],
        )

    def end_state(self, since):
        """Still due (count, most overdue seconds), oldest sync (seconds ago), failures."""
        due, overdue, oldest = self.one(
            """SELECT count(*) FILTER (WHERE sync_next_date IS NULL
                                          OR sync_next_date <= now() at time zone 'utc'),
                      extract(epoch FROM max((now() at time zone 'utc') - sync_next_date)
                              FILTER (WHERE sync_next_date <= now() at time zone 'utc')),
                      extract(epoch FROM (now() at time zone 'utc') - min(last_sync_date))
                 FROM crm_gmail_mailbox WHERE active"""
        )
        failed = self.all(
            """SELECT coalesce(last_error_kind, 'no kind (storage or unexpected)'), count(*)
                 FROM crm_gmail_mailbox
                WHERE active AND last_error_date >= %s GROUP BY 1""",
            [since],
        )
        never = self.one(
            "SELECT count(*) FROM crm_gmail_mailbox WHERE active AND last_sync_date IS NULL"
        )[0]
        return due, overdue or 0.0, oldest or 0.0, dict(failed), never

    def utc_now(self):
        return self.one("SELECT now() at time zone 'utc'")[0]

    def jobs(self, since):
        """``({state: count}, [(count, failure)])`` of the channel's jobs since ``since``."""
        states = dict(
            self.all(
                """SELECT state, count(*) FROM queue_job
                    WHERE channel = 'root.crm_gmail_sync' AND date_created >= %s GROUP BY 1""",
                [since],
            )
        )
        failures = self.all(
            """SELECT count(*), coalesce(exc_name, '') || ': ' || left(exc_message, 90)
                 FROM queue_job WHERE channel = 'root.crm_gmail_sync' AND date_created >= %s
                  AND state = 'failed' GROUP BY 2 ORDER BY 1 DESC LIMIT 3""",
            [since],
        )
        return states, failures


# ---------------------------------------------------------------- a round
class Bench:
    def __init__(self, args, work, rc, db, server, proxy, maildirs, pg_pid):
        self.args, self.work, self.rc, self.db = args, work, rc, db
        self.server, self.proxy, self.maildirs, self.pg_pid = server, proxy, maildirs, pg_pid
        self.ledger_dir = work / "ledger"
        self.ledger_dir.mkdir(exist_ok=True)
        self.logs = work / "logs"
        self.logs.mkdir(exist_ok=True)
        self.results = {}  # (path, workers) -> round figures

    def round(self, path: str, n: int, label: str):
        args, db = self.args, self.db
        sent, from_customers, deliver_t = self.maildirs.deliver_round(
            args.messages, args.customer_share
        )
        stored0, not_customer0, rows0, _ = db.counters()
        due = db.make_due()
        since = db.utc_now()
        tag = f"{path}-{n}-{label}"
        procs = []
        if path == "queue":
            log = self.logs / f"{tag}-enqueue.log"
            enqueuer = (worker(self.rc, "enqueue", {}, log), log)
        for i in range(n):
            log = self.logs / f"{tag}-{i}.log"
            ledger = self.ledger_dir / f"{tag}-{i}.jsonl"
            mode = "jobs" if path == "queue" else "cron"
            procs.append((worker(self.rc, mode, {"ledger": str(ledger)}, log), log))
        everyone = procs + ([enqueuer] if path == "queue" else [])
        for proc, log in everyone:
            read_line(proc, "READY", log)
        db.reset_statements()
        cpu0 = CpuSnapshot(self.pg_pid, self.server._proc.pid)
        t0 = time.monotonic()
        enqueue = None
        if path == "queue":
            proc, log = enqueuer
            proc.stdin.write("go\n")
            proc.stdin.flush()
            enqueue = json.loads(read_line(proc, "RESULT", log))
            proc.wait()
        for proc, _ in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc, log in procs:
            results.append(json.loads(read_line(proc, "RESULT", log)))
            proc.wait()
        t_end = max(r["end"] for r in results + ([enqueue] if enqueue else []))
        wall = t_end - t0
        time.sleep(0.3)  # the workers' PostgreSQL backends and IMAP sessions end
        cpu1 = CpuSnapshot(self.pg_pid, self.server._proc.pid)
        statements, pg_exec = db.statements()
        top = db.top_statements() if args.show_queries else []
        stored1, not_customer1, rows1, null_counters = db.counters()
        still_due, overdue, oldest, failed, never = db.end_state(since)
        entries, exceptions = [], {}
        for _proc, log in everyone:
            for line in log.read_text(errors="replace").splitlines():
                if EXCEPTION_LINE.match(line):
                    exceptions[line[:140]] = exceptions.get(line[:140], 0) + 1
        for i in range(n):
            ledger = self.ledger_dir / f"{tag}-{i}.jsonl"
            if ledger.exists():
                entries += [json.loads(line) for line in ledger.read_text().splitlines()]
        figures = {
            "wall": wall,
            "n": n,
            "due": due,
            "syncs": len(entries),
            "distinct": len({e["mailbox"] for e in entries}),
            "results": results,
            "enqueue": enqueue,
            "entries": entries,
            "t0": t0,
            "statements": statements,
            "pg_exec": pg_exec,
            "cpu_workers": sum(r["cpu"] for r in results) + (enqueue["cpu"] if enqueue else 0),
            "cpu_pg": cpu1.pg - cpu0.pg,
            "cpu_dovecot": cpu1.dovecot - cpu0.dovecot,
            "cpu_proxy": cpu1.proxy - cpu0.proxy,
            "busy": cpu1.busy - cpu0.busy,
            "capacity": cpu1.total - cpu0.total,
            "sent": sent,
            "from_customers": from_customers,
            "deliver_t": deliver_t,
            "stored": stored1 - stored0,
            "rows": rows1 - rows0,
            "not_customer": not_customer1 - not_customer0,
            "null_counters": null_counters,
            "still_due": still_due,
            "overdue": overdue,
            "oldest": oldest,
            "failed": failed,
            "never": never,
            "top": top,
            "jobs": db.jobs(since) if path == "queue" else None,
            "exceptions": sorted(exceptions.items(), key=lambda kv: -kv[1])[:3],
        }
        if label == "timed":
            self.results[(path, n)] = figures
        return figures


# ---------------------------------------------------------------- report
def pct(values, q):
    values = sorted(values)
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(math.ceil(q * len(values))) - 1)]


def print_round(title, f, base_wall=None):
    syncs = max(f["syncs"], 1)
    if base_wall is None:
        print(f"{title}: {f['wall']:.1f} s")
    else:
        print(f"{title}: {f['wall']:.1f} s, speed-up {base_wall / f['wall']:.1f}x")
    durations = [e["end"] - e["start"] for e in f["entries"]]
    in_sync_q = sum(e["queries"] for e in f["entries"])
    in_sync_db = sum(e["db"] for e in f["entries"])
    worker_q = sum(r["queries"] for r in f["results"])
    worker_db = sum(r["db"] for r in f["results"])
    if f["enqueue"]:
        e = f["enqueue"]
        states, failures = f["jobs"]
        print(
            f"    enqueue: _cron_fetch() made {e['pending']} jobs in {e['end'] - e['start']:.1f} s "
            f"({e['queries']} queries); the round's jobs by state: {states}"
        )
        for count, failure in failures:
            print(f"    !! {count} jobs failed: {failure}")
    if not f["syncs"]:
        print("    !! no mailbox was synced (see the worker logs)")
        return
    print(
        f"    {f['due']} due, {f['syncs']} syncs of {f['distinct']} mailboxes; one sync "
        f"median {statistics.median(durations) if durations else 0:.2f} s, "
        f"p95 {pct(durations, 0.95):.2f} s, max {max(durations, default=0):.2f} s"
    )
    print(
        f"    per mailbox synced: {worker_q / syncs:.1f} SQL queries ({in_sync_q / syncs:.1f} "
        f"in the sync, the rest claiming), {worker_db / syncs * 1000:.1f} ms in "
        f"Cursor.execute ({in_sync_db / syncs * 1000:.1f} in the sync); PostgreSQL: "
        f"{f['statements'] / syncs:.1f} statements (with BEGIN/COMMIT/SAVEPOINT), "
        f"{f['pg_exec'] / syncs * 1000:.1f} ms executing (pg_stat_statements)"
    )
    ours = f["cpu_workers"] + f["cpu_pg"] + f["cpu_dovecot"] + f["cpu_proxy"]
    print(
        f"    CPU: Odoo workers {f['cpu_workers']:.1f} s ({f['cpu_workers'] / syncs * 1000:.0f} "
        f"ms/mailbox), PostgreSQL {f['cpu_pg']:.1f} s ({f['cpu_pg'] / syncs * 1000:.0f} ms), "
        f"Dovecot {f['cpu_dovecot']:.1f} s ({f['cpu_dovecot'] / syncs * 1000:.0f} ms), proxy "
        f"{f['cpu_proxy']:.1f} s; machine busy {f['busy'] / f['capacity']:.0%} of {CORES} "
        f"cores ({ours / f['capacity']:.0%} ours, the rest other processes)"
    )
    last_claim = max((e["start"] for e in f["entries"]), default=f["t0"]) - f["t0"]
    failures = ", ".join(f"{k} {v}" for k, v in f["failed"].items()) or "none"
    print(
        f"    most overdue: the last mailbox claimed waited {last_claim:.1f} s after the round "
        f"began; at the end {f['still_due']} still due (most overdue "
        f"{f['overdue']:.0f} s), oldest last sync {f['oldest']:.0f} s ago, never synced "
        f"{f['never']}; errors {failures}"
    )
    print(
        f"    mail: {f['sent']} new emails ({f['from_customers']} from customers, written in "
        f"{f['deliver_t']:.1f} s); {f['rows']} new crm.gmail.message rows; the mailboxes' "
        f"counters: {f['stored']} stored, {f['not_customer']} not customer"
    )
    if f["null_counters"]:
        print(
            f"    !! count_stored is NULL on {f['null_counters']} mailboxes: their counters "
            f"never count (count_stored + n stays NULL)"
        )
    again, after_cut = repeats(f["entries"])
    if again:
        print(
            f"    synced again in the round: {again} ({after_cut} after an unfinished sync: cut by "
            f"the time budget or failed; {again - after_cut} after a finished one: claimed "
            f"again before its result was committed)"
        )
    for line, count in f["exceptions"]:
        print(f"    !! worker logs: {count}x {line}")
    for calls, ms, query in f["top"]:
        print(f"      {ms:9.0f} ms {calls:7d}x  {query}")


def repeats(entries):
    """``(syncs of a mailbox already synced in the round, of which after an unfinished
    one)``: cut by the time budget or failed, the mailbox is due again at once."""
    by_mailbox = {}
    for e in sorted(entries, key=lambda e: e["start"]):
        by_mailbox.setdefault(e["mailbox"], []).append(e)
    again = after_unfinished = 0
    for syncs in by_mailbox.values():
        for earlier, _later in zip(syncs, syncs[1:]):
            again += 1
            after_unfinished += not earlier.get("finished", True)
    return again, after_unfinished


def overlaps(entries):
    """Pairs of syncs of one mailbox whose [start, end] intervals overlap."""
    by_mailbox = {}
    for e in entries:
        by_mailbox.setdefault(e["mailbox"], []).append((e["start"], e["end"], e["pid"]))
    count = 0
    for spans in by_mailbox.values():
        spans.sort()
        for i, (start, _end, _pid) in enumerate(spans):
            count += sum(1 for s, e, _ in spans[:i] if e > start)
    return count


def extrapolate(results, mailboxes):
    print(
        f"== Extrapolation to {TARGET_MAILBOXES:,} mailboxes (same latency and mail per "
        f"mailbox; linear in mailboxes and workers while CPU lasts)"
    )
    for (path, n), f in sorted(results.items()):
        if not f["syncs"]:
            print(f"    {path} {n} workers: no mailbox synced")
            continue
        per = f["wall"] * n / mailboxes  # worker-seconds per mailbox
        need = math.ceil(TARGET_MAILBOXES * per / TARGET_SECONDS)
        wide = TARGET_MAILBOXES * per / WIDE_WORKERS
        print(
            f"    {path} {n} workers: {per:.3f} s per mailbox per worker -> {need} workers for "
            f"{TARGET_MAILBOXES:,} in {TARGET_SECONDS // 60} min; {wide:.0f} s "
            f"({wide / 60:.1f} min) with {WIDE_WORKERS} workers"
        )
    f = results.get(("cron", max(n for p, n in results if p == "cron")))
    if f:
        syncs = max(f["syncs"], 1)
        cpu = (f["cpu_workers"] + f["cpu_pg"]) / syncs
        print(
            f"    CPU of Odoo + PostgreSQL: {cpu * 1000:.0f} ms per mailbox -> "
            f"{TARGET_MAILBOXES * cpu / TARGET_SECONDS:.1f} cores busy for {TARGET_MAILBOXES:,} "
            f"in {TARGET_SECONDS // 60} min (Dovecot and the proxy, standing in for Gmail and "
            f"the network, left out)"
        )


def queue_path(bench, queue_counts):
    """Install crm_gmail_sync_queue into the same database, then its rounds."""
    args, db, work = bench.args, bench.db, bench.work
    t = time.perf_counter()
    odoo_init(bench.rc, "crm_gmail_sync_queue", work / "install-queue.log").wait()
    state = db.one("SELECT state FROM ir_module_module WHERE name = 'crm_gmail_sync_queue'")
    if not state or state[0] != "installed":
        print(
            f"== queue_job path: installing crm_gmail_sync_queue failed (state "
            f"{state and state[0]}); see {work}/install-queue.log"
        )
        return
    took = time.perf_counter() - t
    if args.queue_allow_commit:
        db.one(
            """WITH u AS (UPDATE queue_job_function SET allow_commit = true
                           WHERE method = '_gmail_job_sync' RETURNING 1)
               SELECT count(*) FROM u"""
        )
    allow = db.one(
        "SELECT bool_or(allow_commit) FROM queue_job_function WHERE method = '_gmail_job_sync'"
    )[0]
    print(
        f"== queue_job path (crm_gmail_sync_queue installed in {took:.0f} s): _cron_fetch() "
        f"enqueues a job per due mailbox, N workers run them; speed-up against the cron "
        f"path's 1 worker"
    )
    print(
        f"    the job function's Allow Commit: {bool(allow)}"
        + (" (set by --queue-allow-commit)" if args.queue_allow_commit else "")
    )
    for c in queue_counts:
        f = bench.round("queue", c, "timed")
        base = bench.results.get(("cron", 1)) or bench.results.get(("queue", min(queue_counts)), f)
        print_round(f"queue_job path, {c} workers", f, base_wall=base["wall"] * base["n"])


# ---------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="round trip, the proxy")
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts, cron path")
    parser.add_argument(
        "--queue-workers", default="", help="worker counts, queue_job path (default: the most)"
    )
    parser.add_argument(
        "--queue-allow-commit",
        action="store_true",
        help="set Allow Commit on the sync's job function first (queue_job refuses the "
        "sync's commits without it)",
    )
    parser.add_argument("--no-queue", action="store_true", help="skip the queue_job path")
    parser.add_argument("--messages", type=int, default=4, help="new emails per mailbox/round")
    parser.add_argument("--customer-share", type=float, default=0.25)
    parser.add_argument("--show-queries", action="store_true", help="top statements per round")
    parser.add_argument("--dir", default="/tmp/bench-scale")
    parser.add_argument("--pg-port", type=int, default=55441)
    parser.add_argument("--keep", action="store_true", help="leave --dir and its cluster")
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",") if x]
    queue_counts = [int(x) for x in (args.queue_workers or str(max(counts))).split(",") if x]
    queue_counts = [] if args.no_queue else queue_counts
    with_queue = bool(queue_counts) and queue_available()

    work = Path(args.dir)
    sh_pg('pg_stop "$1"', work, args.pg_port)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.chmod(work, 0o755)
    t_start = time.perf_counter()
    server = proxy = None
    try:
        start_pg(work, args.pg_port)
        rc = write_rc(work, args.pg_port, with_queue, snapshot_addons(work))
        install = odoo_init(rc, "crm_gmail_sync", work / "install.log")

        n = args.mailboxes
        logins = [f"seller{i:05d}@{DOMAIN}" for i in range(n)]
        half = max(n // 2, 10)
        leads = [f"lead{i}@customer{i % 37}.example" for i in range(half)]
        partners = [f"contact{i}@client{i % 41}.example" for i in range(half)]
        t = time.perf_counter()
        server = Dovecot(work / "dovecot")
        (server.base / "passwd.d").mkdir(parents=True)  # add_user writes there at once
        for login in logins:
            server.add_user(login, PASSWORD)
        server.start()
        proxy = DroppingProxy(server.imaps_port, latency=args.latency_ms / 1000)
        maildirs = Maildirs(server, logins, leads + partners)
        print(
            f"Dovecot with {n} users up in {time.perf_counter() - t:.1f} s; proxy on port "
            f"{proxy.port}, {args.latency_ms:g} ms round trip"
        )
        if install.wait():
            sys.exit(f"installing crm_gmail_sync failed; see {work / 'install.log'}")
        psql_super(work, args.pg_port, DB, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        print(f"database with crm_gmail_sync after {time.perf_counter() - t_start:.0f} s")

        setup = run_worker(
            rc,
            "setup",
            {
                "n": n,
                "logins": logins,
                "lead_emails": leads,
                "partner_emails": partners,
                "host": "127.0.0.1",
                "port": proxy.port,
                "password": PASSWORD,
                "ca_file": server.ca_file,
            },
            work / "setup.log",
        )
        print(
            f"created {len(leads)} leads + {len(partners)} contacts in "
            f"{setup['customers_s']:.1f} s, {n} seat users in {setup['users_s']:.1f} s, "
            f"{n} mailboxes in {setup['mailboxes_s']:.1f} s"
        )
        db = Db(work, args.pg_port)
        pg_pid = int((work / "pg" / "data" / "postmaster.pid").read_text().split()[0])
        bench = Bench(args, work, rc, db, server, proxy, maildirs, pg_pid)
        # A round syncs every mailbox once: with the 5-minute default, a round longer than
        # that (1 worker) would sync its first mailboxes again before it ends.
        db.set_interval_days(1)
        print(
            f"each round: {args.messages} new emails per mailbox, {args.customer_share:.0%} "
            f"from customers; every mailbox due at once; sync interval (the scheduled "
            f"action's) set to 1 day, so that a round syncs each mailbox once"
        )
        print()

        first = bench.round("cron", max(counts), "first")
        print_round(f"first sync of every mailbox (no cursor yet), {max(counts)} workers", first)
        print()
        print(f"== cron path (_gmail_sync_due), {n} mailboxes, {args.latency_ms:g} ms latency")
        for c in counts:
            f = bench.round("cron", c, "timed")
            base = bench.results.get(("cron", min(counts)), f)
            print_round(f"{c} workers", f, base_wall=base["wall"] * base["n"])
        api = {r["api"] for f in bench.results.values() for r in f["results"] if "api" in r}
        if "fallback" in api:
            print("    (fallback: _cron_fetch(), the scheduler API is not there yet)")
        print()

        if queue_counts and not with_queue:
            print("== queue_job path: skipped (crm_gmail_sync_queue or queue_job missing)")
            print()
        elif with_queue:
            queue_path(bench, queue_counts)
            print()

        all_entries = [e for f in bench.results.values() for e in f["entries"]]
        all_entries += first["entries"]
        again = [repeats(f["entries"]) for f in [first, *bench.results.values()]]
        print(f"synced twice at once: {overlaps(all_entries)}")
        print(
            f"    ({len(all_entries)} syncs in the ledger, {len(bench.results) + 1} rounds; "
            f"a mailbox synced again in the same round: {sum(a for a, _ in again)} times, "
            f"{sum(c for _, c in again)} of them after an unfinished sync)"
        )
        print()
        extrapolate(bench.results, n)
        print()
        print(
            f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, PostgreSQL "
            f"{db.one('SHOW server_version')[0]}; whole run {time.perf_counter() - t_start:.0f} s"
        )
    finally:
        if proxy is not None:
            proxy.close()
        if server is not None:
            server.stop()
        if not args.keep:
            sh_pg('pg_stop "$1"', work, args.pg_port)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
