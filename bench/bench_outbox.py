"""Benchmark of sending (the engine's half of the outbox), in one run: prints figures and
ratios, asserts nothing.

    python3 bench/bench_outbox.py [--messages 500] [--rounds 3]

A real aiosmtpd on 127.0.0.1 over implicit TLS with login (``tests/smtpserver.py``, a
private CA as in the tests) receives:

1. ``--messages`` emails with 1 recipient, then with 100 recipients (To 10, Cc 40, Bcc 50),
   each built by ``engine.outgoing.build_mime`` (an HTML body of about 6 KB and its text
   part) and handed over in **one SMTP session** (``SmtpTransport``, as ``_cron_send`` does
   for the due emails of one mailbox): messages per second, MIME building included;
2. the latency of the first email of a run: connect, TLS handshake, login and hand-over,
   what "Send now" adds to the scheduler's start (median of ``--rounds`` x 20).

The server is in the same process (its own thread) and shares the 2 cores: the figures are
a floor for what the client side costs, not a network's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

import dovecot  # noqa: E402 - the tests' certificate maker
from smtpserver import SmtpServer  # noqa: E402

import conftest  # noqa: E402,F401 - registers crm_gmail_sync without importing Odoo
from crm_gmail_sync.engine import Account, Address  # noqa: E402
from crm_gmail_sync.engine.outgoing import (  # noqa: E402
    OutgoingEmail,
    build_mime,
    envelope_recipients,
    make_message_id,
)
from crm_gmail_sync.engine.transport_smtp import SmtpTransport  # noqa: E402

# the loopback server logs in under implicit TLS, which aiosmtpd does not count as TLS
warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")

BODY = "<p>Hello,</p>" + "<p>about the offer for the new warehouse: lorem ipsum dolor.</p>" * 90
SENDER = Address("anna@ourco.test", "Anna Müller")


def mail(recipients: int, n: int) -> OutgoingEmail:
    people = [Address(f"c{n}.{i}@acme.test", f"Customer {i}") for i in range(recipients)]
    if recipients == 1:
        to, cc, bcc = people, [], []
    else:
        to, cc, bcc = people[:10], people[10:50], people[50:]
    return OutgoingEmail(
        sender=SENDER,
        message_id=make_message_id(SENDER.email),
        to=to,
        cc=cc,
        bcc=bcc,
        subject=f"Angebot Nr. {n} für Größe XL",
        html=BODY,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tls = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    try:
        dovecot._make_certificates(tls)
        server = SmtpServer(
            security="ssl",
            users={SENDER.email: "app-pass"},
            cert_file=str(tls / "server.pem"),
            key_file=str(tls / "server.key"),
        ).start()
        account = Account(
            host="127.0.0.1",
            port=server.port,
            protocol="smtp",
            security="ssl",
            login=SENDER.email,
            password="app-pass",
            ca_file=str(tls / "ca.pem"),
            timeout=30,
        )
        print(
            f"== 1. {args.messages} emails in one SMTP session (TLS, login), median of "
            f"{args.rounds} runs"
        )
        rates = {}
        for recipients in (1, 100):
            times = []
            for _ in range(args.rounds):
                server.received.clear()
                start = time.perf_counter()
                with SmtpTransport(account) as smtp:
                    for n in range(args.messages):
                        email = mail(recipients, n)
                        smtp.send(build_mime(email), SENDER.email, envelope_recipients(email))
                times.append(time.perf_counter() - start)
                assert len(server.received) == args.messages
            t = statistics.median(times)
            rates[recipients] = args.messages / t
            size = len(build_mime(mail(recipients, 0)))
            print(
                f"   {recipients:>3} recipient{'s' if recipients > 1 else ' '}: "
                f"{rates[recipients]:7.1f} emails/s ({t:.2f} s, {size:,} bytes each)"
            )
        print(f"   ratio 100 recipients / 1: {rates[100] / rates[1]:.2f}")
        print("== 2. the first email of a run: connect, TLS, login, hand-over")
        latencies = []
        for _ in range(args.rounds * 20):
            email = mail(1, 0)
            start = time.perf_counter()
            with SmtpTransport(account) as smtp:
                smtp.send(build_mime(email), SENDER.email, envelope_recipients(email))
            latencies.append(time.perf_counter() - start)
        latencies.sort()
        print(
            f"   median {statistics.median(latencies) * 1000:.1f} ms, "
            f"95th percentile {latencies[int(len(latencies) * 0.95)] * 1000:.1f} ms "
            f"({len(latencies)} runs)"
        )
        server.stop()
    finally:
        shutil.rmtree(tls, ignore_errors=True)


if __name__ == "__main__":
    main()
