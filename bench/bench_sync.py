"""Benchmark: the engine's full and incremental sync against a raw stdlib download.

Fills a private loopback Dovecot with a generated mailbox (default 20,000
messages, ~2,000 correspondents of whom 20% are customers, 10% of messages with
a 100-500 KB attachment, threads, non-ASCII headers) and prints, in one run:

* the raw stdlib download of every message over IMAPS
  (``UID FETCH BODY.PEEK[]`` in batches of 500), in msgs/s;
* the engine's full first sync of the same mailbox, in msgs/s;
* their ratio (engine time / raw time; below 1.0 the engine is faster);
* the no-change incremental sync, TLS connect and login included.

Prints figures only; it asserts nothing about time.

    python3 bench/bench_sync.py [--messages 20000] [--correspondents 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import imaplib
import os
import random
import ssl
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
if "crm_gmail_sync" not in sys.modules:  # the engine without the addon's Odoo __init__
    _pkg = types.ModuleType("crm_gmail_sync")
    _pkg.__path__ = [str(ROOT / "crm_gmail_sync")]
    sys.modules["crm_gmail_sync"] = _pkg

from dovecot import Dovecot  # noqa: E402 - after the path set-up above
from mailgen import make_message  # noqa: E402

from crm_gmail_sync.engine import Account, SyncReport, sync_mailbox  # noqa: E402
from crm_gmail_sync.engine.sync import Options  # noqa: E402

OWNER = "owner@bench.example"
FIRST = ["Jörg", "Anna", "Zoë", "Łukasz", "Chloé", "Björn", "Ana", "Ömer", "Sven", "Mia"]
LAST = ["Müller", "Schmidt", "Weiß", "Nowak", "Dubois", "García", "Öztürk", "Smith"]
TOPICS = ["Angebot", "Rechnung", "Meeting", "Grüße", "Quote", "Lieferung", "Vertrag", "Demo"]


def generate(n_messages: int, n_people: int, seed: int = 7):
    """Yield ``(folder, raw, internaldate)`` and return the customer addresses."""
    rnd = random.Random(seed)
    people = [
        (
            f"{rnd.choice(FIRST)} {rnd.choice(LAST)}",
            f"p{i}@{'cust' if i % 5 == 0 else 'web'}{i % 50}.example",
        )
        for i in range(n_people)
    ]
    customers = {addr for _, addr in people if "@cust" in addr}
    now = dt.datetime.now(dt.timezone.utc)
    threads: list[list[str]] = []
    out = []
    for i in range(n_messages):
        name, addr = rnd.choice(people)
        date = now - dt.timedelta(minutes=rnd.randint(60, 80 * 24 * 60))
        sent = rnd.random() < 0.15
        refs = []
        if threads and rnd.random() < 0.3:
            refs = rnd.choice(threads)
        msgid = f"<b{i}.{seed}@bench.example>"
        (refs.append(msgid) if refs and len(refs) < 20 else threads.append([msgid]))
        attachments = []
        if rnd.random() < 0.10:
            size = rnd.randint(100_000, 500_000)
            attachments = [(f"Präsentation {i}.pdf", "application/pdf", rnd.randbytes(size))]
        subject = f"{'Re: ' if len(refs) > 1 else ''}{rnd.choice(TOPICS)} Nr. {i} – {name}"
        body = f"Hallo,\n\n{' '.join(rnd.choice(TOPICS) for _ in range(60))}\n\nGrüße\n{name}\n"
        raw = make_message(
            OWNER if sent else addr,
            addr if sent else OWNER,
            subject,
            msgid=msgid,
            date=date,
            body=body,
            html=f"<p>{body}</p>" if rnd.random() < 0.5 else None,
            references=refs[:-1] or None,
            in_reply_to=refs[-2] if len(refs) > 1 else None,
            attachments=attachments,
            from_name="" if sent else name,
        )
        out.append(("Sent" if sent else "INBOX", raw, date))
    return out, customers


def fill(server: Dovecot, login: str, messages) -> float:
    start = time.perf_counter()
    conn = imaplib.IMAP4(server.host, server.imap_port)
    conn.login(login, server.password(login))
    for folder, raw, date in messages:
        typ, data = conn.append(folder, None, imaplib.Time2Internaldate(date), raw)
        assert typ == "OK", data
    conn.logout()
    return time.perf_counter() - start


def raw_download(server: Dovecot, login: str) -> tuple[int, int, float]:
    """The plain stdlib way: every message of INBOX and Sent, 500 per FETCH."""
    start = time.perf_counter()
    ctx = ssl.create_default_context(cafile=server.ca_file)
    conn = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=ctx)
    conn.login(login, server.password(login))
    count = size = 0
    for folder in ("INBOX", "Sent"):
        conn.select(folder, readonly=True)
        _, data = conn.uid("SEARCH", "ALL")
        uids = data[0].split()
        for i in range(0, len(uids), 500):
            chunk = b",".join(uids[i : i + 500]).decode()
            _, data = conn.uid("FETCH", chunk, "(BODY.PEEK[])")
            for part in data:
                if isinstance(part, tuple):
                    count += 1
                    size += len(part[1])
    conn.logout()
    return count, size, time.perf_counter() - start


def engine_sync(account: Account, customers: set, state=None):
    report = SyncReport()
    start = time.perf_counter()
    stored_bytes = 0
    for batch in sync_mailbox(
        account, state, lambda a: a & customers, lambda keys: set(), Options(since_days=90)
    ):
        report.add(batch.outcomes)
        report.batches += 1
        stored_bytes += sum(m.header.size for m in batch.messages)
        state = batch.state
    return report, state, time.perf_counter() - start, stored_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--correspondents", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each; medians")
    args = parser.parse_args()

    print(f"generating {args.messages} messages, {args.correspondents} correspondents ...")
    messages, customers = generate(args.messages, args.correspondents)
    total_bytes = sum(len(raw) for _, raw, _ in messages)
    with Dovecot() as server:
        server.add_user(OWNER, "bench-password")
        took = fill(server, OWNER, messages)
        print(
            f"mailbox: {len(messages)} messages, {total_bytes / 2**20:.0f} MiB, "
            f"{len(customers)} customer addresses; filled in {took:.0f} s"
        )
        account = Account(
            host=server.host,
            port=server.imaps_port,
            login=OWNER,
            password="bench-password",
            ca_file=server.ca_file,
            owner_addresses=(OWNER,),
        )

        raws, engines = [], []
        for _ in range(args.rounds):  # alternate, so both see the same machine load
            count, size, t = raw_download(server, OWNER)
            raws.append(t)
            report, state, t, stored_bytes = engine_sync(account, customers)
            engines.append(t)
        raw_t, eng_t = statistics.median(raws), statistics.median(engines)
        handled = sum(report.counts.values())
        noop = []
        for _ in range(15):
            r, state, t, _ = engine_sync(account, customers, state)
            assert sum(r.counts.values()) == 0
            noop.append(t)

    print()
    print(
        f"raw stdlib download (IMAPS, UID FETCH BODY.PEEK[] x500): {count} msgs, "
        f"{size / 2**20:.0f} MiB in {raw_t:.2f} s = {count / raw_t:,.0f} msgs/s"
    )
    print(
        f"engine full sync (header-first, parse customer mail):   {handled} msgs "
        f"({report.counts['stored']} stored, {report.counts['not_customer']} not customer, "
        f"{report.counts['duplicate']} duplicate, {report.counts['unparseable']} unparseable; "
        f"{stored_bytes / 2**20:.0f} MiB downloaded in full) in {eng_t:.2f} s = "
        f"{handled / eng_t:,.0f} msgs/s"
    )
    print(
        f"ratio engine time / raw time: {eng_t / raw_t:.2f} (target <= 1.0); medians of "
        f"{args.rounds} alternating runs: raw {' '.join(f'{t:.2f}' for t in raws)} s, "
        f"engine {' '.join(f'{t:.2f}' for t in engines)} s"
    )
    print(
        f"no-change incremental sync incl. TLS connect + login: median "
        f"{statistics.median(noop) * 1000:.1f} ms, min {min(noop) * 1000:.1f} ms, "
        f"max {max(noop) * 1000:.1f} ms over {len(noop)} runs (target < 50 ms)"
    )
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
