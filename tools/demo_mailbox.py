"""The demo's local mailbox: a private Dovecot on 127.0.0.1 with sample customer mail.

    python3 tools/demo_mailbox.py start DIR   # prints JSON: host, ports, ca_file, login, password
    python3 tools/demo_mailbox.py stop DIR

The sample mail is written to and from the demo contacts of ``crm_gmail_sync/demo/`` (so it
lands on their leads, contacts and deals), plus newsletters and colleagues' mail that the
sync leaves alone.

Customer mail comes as conversations, INBOX and Sent mixed, threaded by Message-ID,
In-Reply-To and References, with the quirks of real mail:

* Anna Schmidt, "Anfrage: 40 Lizenzen für unser Vertriebsteam" (5 messages): our offer with
  a PDF attachment, her HTML reply quoting it Gmail style (``<div class="gmail_quote">``), and a
  last reply with only In-Reply-To (no References: its root is not named in it).
* Chris Baker, "Demo next Tuesday?" (4 messages): an HTML reply with an inline image, a
  multipart/related whose HTML shows ``cid:logo@demo``.
* Léa Dubois, "Contrat annuel 2026" (5 messages): the draft contract and the signed one as
  PDFs, and a message appended to the INBOX after its own reply (an older parent that comes
  later in the folder, as after a restore from an archive).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import signal
import struct
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dovecot import Dovecot  # noqa: E402
from mailgen import make_message  # noqa: E402

LOGIN = "demo@crm-gmail-sync.example"
PASSWORD = "demo-app-password"
NOW = dt.datetime.now(dt.timezone.utc)

ANNA = "Anna Schmidt <anna.schmidt@mueller-maschinenbau.example>"
CHRIS = "Chris Baker <chris@baker-logistics.example>"
LEA = "Léa Dubois <lea.dubois@atelier-dubois.example>"

LOGO_CID = "logo@demo"


def _pdf(title: str, lines: list[str] = ()) -> bytes:
    """A small but valid one-page PDF (A4, Helvetica) showing ``title`` and ``lines``."""

    def text(value: str) -> bytes:  # a PDF literal string, WinAnsi encoded
        raw = value.encode("cp1252", "replace")
        return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"

    content = b"BT /F1 18 Tf 72 770 Td " + text(title) + b" Tj /F1 11 Tf"
    for line in lines:
        content += b" 0 -22 Td " + text(line) + b" Tj"
    content += b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]"
        b" /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Title " + text(title) + b" /Producer (crm_gmail_sync demo) >>",
    ]
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    return out + b"startxref\n%d\n%%%%EOF\n" % xref


def _png(width: int = 64, height: int = 32) -> bytes:
    """A valid RGB PNG, ``width`` x ``height``: a navy logo with an orange bar at the bottom."""
    navy, orange = b"\x1f\x3a\x68", b"\xf2\x8c\x28"
    rows = b"".join(
        b"\x00" + (orange if y >= height * 3 // 4 else navy) * width for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


# Appended in this order (so UIDs follow it, not the dates). Keys: key (names the Message-ID),
# ago (days, hours), folder, frm, to, subject, body, html (optional), parent (key of the message
# replied to), refs ("full": References name every ancestor; "none": In-Reply-To only),
# attachments ((filename, title, lines) of PDFs), related (inline parts), quote (key of the
# message quoted Gmail style in the HTML body).
SAMPLES = [
    # -- Anna Schmidt: offer with PDF, an HTML reply quoting it, a reply without References
    {
        "key": "anna-1",
        "ago": (12, 5),
        "folder": "INBOX",
        "frm": ANNA,
        "to": LOGIN,
        "subject": "Anfrage: 40 Lizenzen für unser Vertriebsteam",
        "body": "Guten Tag,\n\nwir interessieren uns für 40 Lizenzen. Können Sie uns ein Angebot "
        "schicken?\n\nViele Grüße\nAnna Schmidt",
    },
    {
        "key": "anna-2",
        "ago": (11, 3),
        "folder": "Sent",
        "frm": LOGIN,
        "to": ANNA,
        "subject": "Re: Anfrage: 40 Lizenzen für unser Vertriebsteam",
        "body": "Hallo Frau Schmidt,\n\nanbei unser Angebot über 40 Lizenzen, gültig bis Ende "
        "des Monats.\n\nBeste Grüße",
        "parent": "anna-1",
        "attachments": [
            (
                "Angebot-2026-117.pdf",
                "Angebot 2026-117",
                [
                    "Müller Maschinenbau GmbH, z. Hd. Anna Schmidt",
                    "40 Lizenzen CRM Gmail Sync, 12 Monate",
                    "Einzelpreis 50,00 EUR / Monat, gesamt 24.000,00 EUR",
                    "Gültig bis Ende des Monats.",
                ],
            )
        ],
    },
    {
        "key": "anna-3",
        "ago": (9, 6),
        "folder": "INBOX",
        "frm": ANNA,
        "to": LOGIN,
        "subject": "Re: Anfrage: 40 Lizenzen für unser Vertriebsteam",
        "body": "Hallo,\n\nvielen Dank für das Angebot. Eine Rückfrage: Gibt es einen "
        "Staffelpreis, falls wir später auf 50 Lizenzen erweitern?\n\nViele Grüße\nAnna Schmidt",
        "parent": "anna-2",
        "quote": "anna-2",
    },
    {
        "key": "anna-4",
        "ago": (8, 2),
        "folder": "Sent",
        "frm": LOGIN,
        "to": ANNA,
        "subject": "Re: Anfrage: 40 Lizenzen für unser Vertriebsteam",
        "body": "Hallo Frau Schmidt,\n\nja: ab 50 Lizenzen gewähren wir 10 % Rabatt auf alle "
        "Lizenzen, auch rückwirkend für die ersten 40.\n\nBeste Grüße",
        "parent": "anna-3",
    },
    {
        "key": "anna-5",
        "ago": (6, 4),
        "folder": "INBOX",
        "frm": "Anna Schmidt <ANNA.SCHMIDT@mueller-maschinenbau.example>",
        "to": LOGIN,
        "subject": "Re: Anfrage: 40 Lizenzen für unser Vertriebsteam",
        "body": "Danke! Wir melden uns nach der Budgetrunde.",
        "parent": "anna-4",
        "refs": "none",  # only In-Reply-To: the root anna-1 is not named
    },
    # -- Chris Baker: an HTML reply with an inline logo
    {
        "key": "chris-1",
        "ago": (7, 8),
        "folder": "INBOX",
        "frm": CHRIS,
        "to": LOGIN,
        "subject": "Demo next Tuesday?",
        "body": "Hi,\n\ncould we do a demo next Tuesday at 10:00?\n\nChris",
    },
    {
        "key": "chris-2",
        "ago": (6, 7),
        "folder": "Sent",
        "frm": LOGIN,
        "to": CHRIS,
        "subject": "Re: Demo next Tuesday?",
        "body": "Hi Chris,\n\nTuesday 10:00 works. Invitation follows.\n\nBest",
        "parent": "chris-1",
    },
    {
        "key": "chris-3",
        "ago": (5, 3),
        "folder": "INBOX",
        "frm": CHRIS,
        "to": LOGIN,
        "subject": "Re: Demo next Tuesday?",
        "body": "Hi,\n\ngreat, see you on Tuesday. Could you show the demo with our branding? "
        "Our logo is in my signature below.\n\nChris\n\n-- \nChris Baker | Baker Logistics | "
        "Leeds",
        "html": '<div dir="ltr"><p>Hi,</p><p>great, see you on Tuesday. Could you show the demo '
        "with our branding? Our logo is in my signature below.</p><p>Chris</p>"
        '<div class="gmail_signature">-- <br><img src="cid:logo@demo" alt="Baker Logistics" '
        'width="64" height="32"><br><b>Chris Baker</b> | Baker Logistics | Leeds</div></div>',
        "parent": "chris-2",
        "related": [(LOGO_CID, "baker-logo.png", "image/png", _png())],
    },
    {
        "key": "chris-4",
        "ago": (4, 6),
        "folder": "Sent",
        "frm": LOGIN,
        "to": CHRIS,
        "subject": "Re: Demo next Tuesday?",
        "body": "Hi Chris,\n\nthanks, your logo is in the demo workspace. See you Tuesday!\n\nBest",
        "parent": "chris-3",
    },
    # -- Léa Dubois: draft and signed contract; her message lea-2 comes at the end (see below)
    {
        "key": "lea-1",
        "ago": (10, 2),
        "folder": "Sent",
        "frm": LOGIN,
        "to": LEA,
        "subject": "Contrat annuel 2026",
        "body": "Bonjour Madame Dubois,\n\nveuillez trouver ci-joint le projet de contrat "
        "annuel.\n\nCordialement",
        "attachments": [
            (
                "Contrat-annuel-2026.pdf",
                "Contrat annuel 2026 (projet)",
                ["Atelier Dubois, Lyon", "16 licences, 12 mois", "Total : 9 600,00 EUR"],
            )
        ],
    },
    {
        "key": "lea-2b",
        "ago": (8, 1),
        "folder": "INBOX",
        "frm": LEA,
        "to": LOGIN,
        "subject": "Re: Contrat annuel 2026",
        "body": "P.-S. : une facturation trimestrielle serait idéale pour nous.\n\nLéa",
        "parent": "lea-2",  # appended before its parent
    },
    {
        "key": "lea-3",
        "ago": (7, 5),
        "folder": "Sent",
        "frm": LOGIN,
        "to": LEA,
        "subject": "Re: Contrat annuel 2026",
        "body": "Bonjour Madame Dubois,\n\noui, le contrat démarre au 1er du mois prochain, et "
        "la facturation trimestrielle ne coûte rien de plus.\n\nCordialement",
        "parent": "lea-2b",
    },
    {
        "key": "lea-4",
        "ago": (3, 2),
        "folder": "INBOX",
        "frm": LEA,
        "to": LOGIN,
        "subject": "Re: Contrat annuel 2026",
        "body": "Bonjour,\n\nvoici le contrat signé.\n\nCordialement,\nLéa Dubois",
        "parent": "lea-3",
        "attachments": [
            (
                "Contrat-signe.pdf",
                "Contrat annuel 2026 (signé)",
                ["Atelier Dubois, Lyon", "Signé à Lyon par Léa Dubois"],
            )
        ],
    },
    # -- not customer mail: the sync leaves these alone
    {
        "key": "news-1",
        "ago": (2, 3),
        "folder": "INBOX",
        "frm": "Newsletter <news@shop.example>",
        "to": LOGIN,
        "subject": "Black Friday: -50%",
        "body": "Not customer mail: the sync never downloads this one.",
    },
    {
        "key": "colleague-1",
        "ago": (1, 2),
        "folder": "INBOX",
        "frm": "A colleague <colleague@crm-gmail-sync.example>",
        "to": LOGIN,
        "subject": "Lunch?",
        "body": "Internal mail: not stored either.",
    },
    # -- an older parent appended after its reply lea-2b (as after a restore from an archive)
    {
        "key": "lea-2",
        "ago": (8, 4),
        "folder": "INBOX",
        "frm": LEA,
        "to": LOGIN,
        "subject": "Re: Contrat annuel 2026",
        "body": "Bonjour,\n\nmerci pour le projet. À partir de quand le contrat court-il ?\n\n"
        "Cordialement,\nLéa Dubois",
        "parent": "lea-1",
    },
]

_WEEKDAYS = ["Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So."]
_MONTHS = "Januar Februar März April Mai Juni Juli August September Oktober November Dezember"


def _address(value: str) -> tuple[str, str]:
    """``(name, address)`` of ``"Name <address>"`` or a bare address."""
    if "<" in value:
        name, address = value.split("<", 1)
        return name.strip(), address.rstrip(">").strip()
    return "", value


def _msgid(sample: dict) -> str:
    domain = _address(sample["frm"])[1].rsplit("@", 1)[1].lower()
    return f"<demo-{sample['key']}@{domain}>"


def _date(sample: dict) -> dt.datetime:
    days, hours = sample["ago"]
    return (NOW - dt.timedelta(days=days, hours=hours)).replace(microsecond=0)


def _quoted(body: str, quoted: dict) -> tuple[str, str]:
    """The text and HTML bodies of a reply quoting ``quoted`` below ``body``, as Gmail does."""
    date = _date(quoted)
    month = _MONTHS.split()[date.month - 1]
    name, address = _address(quoted["frm"])
    sender = f"{name} <{address}>" if name else f"<{address}>"
    attribution = (
        f"Am {_WEEKDAYS[date.weekday()]}, {date.day}. {month} {date.year} um "
        f"{date:%H:%M} Uhr schrieb {sender}:"
    )
    text = f"{body}\n\n{attribution}\n\n" + "\n".join(
        f"> {line}".rstrip() for line in quoted["body"].splitlines()
    )

    def paragraphs(value: str) -> str:
        return "".join(
            "<div>" + html.escape(block).replace("\n", "<br>") + "</div><div><br></div>"
            for block in value.split("\n\n")
        )

    markup = (
        f'<div dir="ltr">{paragraphs(body)}</div><br>'
        '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
        f"{html.escape(attribution)}<br></div>"
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;'
        'border-left:1px solid rgb(204,204,204);padding-left:1ex">'
        f'<div dir="ltr">{paragraphs(quoted["body"])}</div></blockquote></div>'
    )
    return text, markup


def messages() -> list[tuple[str, bytes, dt.datetime, str]]:
    """``(folder, raw message, date, flags)`` of every sample, in the order to append them."""
    by_key = {sample["key"]: sample for sample in SAMPLES}

    def ancestors(sample: dict) -> list[str]:  # Message-IDs, root first
        chain = []
        while sample.get("parent"):
            sample = by_key[sample["parent"]]
            chain.insert(0, _msgid(sample))
        return chain

    result = []
    for sample in SAMPLES:
        name, frm = _address(sample["frm"])
        body, markup = sample["body"], sample.get("html")
        if sample.get("quote"):
            body, markup = _quoted(body, by_key[sample["quote"]])
        chain = ancestors(sample)
        date = _date(sample)
        raw = make_message(
            frm,
            sample["to"],
            sample["subject"],
            msgid=_msgid(sample),
            date=date,
            body=body,
            html=markup,
            from_name=name,
            in_reply_to=chain[-1] if chain else None,
            references=chain if chain and sample.get("refs", "full") == "full" else None,
            attachments=[
                (filename, "application/pdf", _pdf(title, lines))
                for filename, title, lines in sample.get("attachments", ())
            ],
            related=sample.get("related", ()),
        )
        flags = "\\Seen" if sample["ago"][0] > 4 or sample["folder"] == "Sent" else ""
        result.append((sample["folder"], raw, date, flags))
    return result


def start(base: Path) -> dict:
    base.mkdir(parents=True, exist_ok=True)
    server = Dovecot(base_dir=base)
    server.start()
    server.add_user(LOGIN, PASSWORD)
    (base / "dovecot.pgid").write_text(str(server._proc.pid))
    for folder, raw, date, flags in messages():
        server.append(LOGIN, folder, raw, flags=flags, date=date)
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
