"""The demo's local mailbox: a private Dovecot on 127.0.0.1 with sample customer mail.

    python3 tools/demo_mailbox.py start DIR   # prints JSON: host, ports, ca_file, login, password
    python3 tools/demo_mailbox.py stop DIR

The sample mail is written to and from the demo contacts of ``crm_gmail_sync/demo/`` (so it
lands on their leads, contacts and deals), plus newsletters and colleagues' mail that the
sync leaves alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dovecot import Dovecot  # noqa: E402
from mailgen import make_message  # noqa: E402

LOGIN = "demo@crm-gmail-sync.example"
PASSWORD = "demo-app-password"
NOW = dt.datetime.now(dt.timezone.utc)

# (days ago, folder, from, to, subject, body, attachment?, reply to index)
SAMPLES = [
    (
        9,
        "INBOX",
        "Anna Schmidt <anna.schmidt@mueller-maschinenbau.example>",
        LOGIN,
        "Anfrage: 40 Lizenzen für unser Vertriebsteam",
        "Guten Tag,\n\nwir interessieren uns für 40 Lizenzen. Können Sie uns ein Angebot "
        "schicken?\n\nViele Grüße\nAnna Schmidt",
        None,
        None,
    ),
    (
        8,
        "Sent",
        LOGIN,
        "Anna Schmidt <anna.schmidt@mueller-maschinenbau.example>",
        "Re: Anfrage: 40 Lizenzen für unser Vertriebsteam",
        "Hallo Frau Schmidt,\n\nanbei unser Angebot.\n\nBeste Grüße",
        "Angebot-2026-117.pdf",
        0,
    ),
    (
        6,
        "INBOX",
        "Anna Schmidt <ANNA.SCHMIDT@mueller-maschinenbau.example>",
        LOGIN,
        "Re: Anfrage: 40 Lizenzen für unser Vertriebsteam",
        "Danke! Wir melden uns nach der Budgetrunde.",
        None,
        1,
    ),
    (
        5,
        "INBOX",
        "Chris Baker <chris@baker-logistics.example>",
        LOGIN,
        "Demo next Tuesday?",
        "Hi,\n\ncould we do a demo next Tuesday at 10:00?\n\nChris",
        None,
        None,
    ),
    (
        4,
        "Sent",
        LOGIN,
        "Chris Baker <chris@baker-logistics.example>",
        "Re: Demo next Tuesday?",
        "Hi Chris,\n\nTuesday 10:00 works. Invitation follows.\n\nBest",
        None,
        3,
    ),
    (
        3,
        "INBOX",
        "Léa Dubois <lea.dubois@atelier-dubois.example>",
        LOGIN,
        "Contrat signé",
        "Bonjour,\n\nvoici le contrat signé.\n\nCordialement,\nLéa Dubois",
        "Contrat-signe.pdf",
        None,
    ),
    (
        2,
        "INBOX",
        "Newsletter <news@shop.example>",
        LOGIN,
        "Black Friday: -50%",
        "Not customer mail: the sync never downloads this one.",
        None,
        None,
    ),
    (
        1,
        "INBOX",
        "A colleague <colleague@crm-gmail-sync.example>",
        LOGIN,
        "Lunch?",
        "Internal mail: not stored either.",
        None,
        None,
    ),
]


def _pdf(name: str) -> bytes:
    return b"%PDF-1.4\n% " + name.encode() + b"\n%%EOF\n"


def start(base: Path) -> dict:
    base.mkdir(parents=True, exist_ok=True)
    server = Dovecot(base_dir=base)
    server.start()
    server.add_user(LOGIN, PASSWORD)
    (base / "dovecot.pgid").write_text(str(server._proc.pid))
    ids = []
    for i, (days, folder, frm, to, subject, body, attachment, reply) in enumerate(SAMPLES):
        msgid = f"<demo-{i}@crm-gmail-sync.example>"
        ids.append(msgid)
        date = NOW - dt.timedelta(days=days, hours=i)
        raw = make_message(
            frm.split("<")[1].rstrip(">") if "<" in frm else frm,
            to,
            subject,
            msgid=msgid,
            date=date,
            body=body,
            from_name=frm.split("<")[0].strip() if "<" in frm else "",
            in_reply_to=ids[reply] if reply is not None else None,
            references=[ids[reply]] if reply is not None else None,
            attachments=[(attachment, "application/pdf", _pdf(attachment))] if attachment else (),
        )
        server.append(LOGIN, folder, raw, flags="\\Seen" if days > 4 else "", date=date)
    info = {
        "host": server.host,
        "imaps_port": server.imaps_port,
        "ca_file": server.ca_file,
        "login": LOGIN,
        "password": PASSWORD,
    }
    (base / "mailbox.json").write_text(json.dumps(info))
    server._proc = None  # keep Dovecot running after this process exits
    return info


def stop(base: Path) -> None:
    pgid_file = base / "dovecot.pgid"
    if pgid_file.exists():
        try:
            os.killpg(int(pgid_file.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass
        pgid_file.unlink()


if __name__ == "__main__":
    command, directory = sys.argv[1], Path(sys.argv[2])
    if command == "start":
        print(json.dumps(start(directory)))
    else:
        stop(directory)
