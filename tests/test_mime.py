"""Parsing: header decoding properties, edge-case samples, CPython's email corpus."""

import datetime as dt
import glob
import os
import sysconfig
from email.header import Header
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_gmail_sync.engine.mime import decode_header_value, parse_headers, parse_message
from crm_gmail_sync.engine.types import DIRECTION_RECEIVED, DIRECTION_SENT

SAMPLES = Path(__file__).parent / "samples"
CORPUS = sorted(
    glob.glob(
        os.path.join(sysconfig.get_paths()["stdlib"], "test", "test_email", "data", "msg_*.txt")
    )
)
OWNER = frozenset({"sales@example.test"})


def sample(name):
    return (SAMPLES / name).read_bytes()


@given(st.text(max_size=80), st.sampled_from(["utf-8", "iso-8859-1", "koi8-r", "shift_jis"]))
def test_encoded_words_roundtrip(text, charset):
    try:
        encoded = Header(text, charset).encode()
    except (UnicodeEncodeError, LookupError):
        return  # text not representable in that charset
    assert decode_header_value(encoded) == " ".join(text.split())


@given(st.text(max_size=120))
def test_decode_never_raises(text):
    assert isinstance(decode_header_value(text), str)
    assert isinstance(decode_header_value("=?" + text + "?="), str)


def test_attachments_sample():
    msg = parse_message(sample("attachments.eml"), owner=OWNER, folder="INBOX", uid="7")
    h = msg.header
    assert h.subject == "Angebot für Q4"
    assert h.from_[0].email == "joerg.mueller@example.com"
    assert h.from_[0].name == "Müller, Jörg"
    assert [a.email for a in h.to] == ["sales@example.test", "other@example.org"]
    assert [a.email for a in h.cc] == ["bjoern@münchen.de"]
    assert h.cc[0].name == "Björn"
    assert [a.email for a in h.reply_to] == ["joerg+crm@example.com"]
    assert h.date == dt.datetime(2026, 11, 4, 14, 30, tzinfo=dt.timezone.utc)
    assert h.message_id == "<attachments-1@example.com>"
    assert h.in_reply_to == "<root-0@example.test>"
    assert h.references == ["<root-0@example.test>", "<reply-1@example.com>"]
    assert msg.thread_key == "<root-0@example.test>"
    assert h.direction == DIRECTION_RECEIVED
    assert msg.body_text == "Grüße aus Köln"
    assert "<script>" in msg.body_html  # raw: sanitising is the Odoo layer's job
    names = [(a.filename, a.mimetype, a.inline) for a in msg.attachments]
    assert ("Präsentation Q4.pdf", "application/pdf", False) in names
    assert ("Inner message.eml", "message/rfc822", False) in names
    logo = next(a for a in msg.attachments if a.mimetype == "image/png")
    assert logo.inline and logo.content_id == "logo@x" and logo.content.startswith(b"\x89PNG")
    pdf = next(a for a in msg.attachments if a.mimetype == "application/pdf")
    assert pdf.content.startswith(b"%PDF") and pdf.size == len(pdf.content)
    # addresses inside the forwarded message never count as participants
    participants = h.participants(OWNER)
    assert "forwarded@elsewhere.example" not in participants
    assert participants == {
        "joerg.mueller@example.com",
        "other@example.org",
        "bjoern@münchen.de",
        "joerg+crm@example.com",
    }


def test_unknown_charset_gives_replacement_not_error():
    msg = parse_message(sample("unknown_charset.eml"))
    assert msg.header.subject.endswith("und Grüße")
    assert msg.header.from_[0].email == "kroeger@example.com"
    assert msg.body_text.startswith("Sch") and "ne Gr" in msg.body_text


def test_raw_8bit_headers():
    msg = parse_message(sample("raw_8bit_headers.eml"))
    assert msg.header.subject == "Raw 8-bit Übersicht"
    assert msg.header.from_[0].name == "Ana Ümit"
    assert msg.header.from_[0].email == "ana@münchen.de"
    assert msg.body_text.strip() == "Ärger und Freude"


def test_no_message_id_gets_stable_hash_key():
    raw = sample("no_message_id.eml")
    full = parse_message(raw)
    head = parse_headers(raw.split(b"\n\n")[0] + b"\n\n")
    assert full.header.dedupe_key.startswith("hash:")
    assert full.header.dedupe_key == head.dedupe_key
    assert full.thread_key == full.header.dedupe_key
    other = parse_message(raw.replace(b"No id here", b"Another subject"))
    assert other.header.dedupe_key != full.header.dedupe_key


def test_broken_structure_degrades():
    msg = parse_message(sample("broken_structure.eml"))
    assert msg.header.date is None
    assert "customer@example.com" in {a.email for a in msg.header.to}
    assert msg.defects  # the unclosed multipart is recorded
    assert isinstance(msg.body_text, str)


def test_direction_and_bcc_only_on_sent():
    raw = (
        b"From: Sales <SALES@example.test>\r\nTo: c@x.io\r\nBcc: hidden@y.io\r\n"
        b"Subject: s\r\nMessage-ID: <s1@x>\r\n\r\nbody\r\n"
    )
    head = parse_headers(raw, owner=OWNER)
    assert head.direction == DIRECTION_SENT
    assert head.participants(OWNER) == {"c@x.io", "hidden@y.io"}
    received = parse_headers(raw.replace(b"SALES@example.test", b"c@x.io"), owner=OWNER)
    assert received.direction == DIRECTION_RECEIVED
    assert received.participants(OWNER) == {"c@x.io"}  # Bcc on received mail does not count


def test_sent_folder_is_sent_whatever_the_from():
    raw = (
        b"From: Team <team@example.test>\r\nTo: c@x.io\r\nBcc: hidden@y.io\r\n"
        b"Reply-To: r@x.io\r\nSubject: s\r\nMessage-ID: <s2@x>\r\n\r\nbody\r\n"
    )
    for head in (
        parse_headers(raw, owner=OWNER, sent_folder=True, decide_only=True),
        parse_message(raw, owner=OWNER, sent_folder=True).header,
    ):
        assert head.direction == DIRECTION_SENT and head.sent_folder
        assert head.from_[0].email == "team@example.test"  # kept: it is who sent it
        assert head.participants(OWNER) == {"c@x.io", "hidden@y.io", "r@x.io"}
    elsewhere = parse_headers(raw, owner=OWNER)
    assert elsewhere.direction == DIRECTION_RECEIVED and not elsewhere.sent_folder
    assert elsewhere.participants(OWNER) == {"team@example.test", "c@x.io", "r@x.io"}


def test_gmail_ids_win():
    raw = b"From: a@x.io\r\nMessage-ID: <m@x>\r\nReferences: <r@x>\r\n\r\n"
    head = parse_headers(raw, gmail_msgid="123", gmail_thrid="456")
    assert head.dedupe_key == "gm:123"
    msg = parse_message(raw, gmail_msgid="123", gmail_thrid="456")
    assert msg.thread_key == "gt:456"


def test_cpython_corpus_is_there():
    assert len(CORPUS) >= 40  # CPython's own test messages (their number varies by release)


@pytest.mark.parametrize("path", CORPUS, ids=[os.path.basename(p) for p in CORPUS])
def test_cpython_corpus_parses(path):
    raw = Path(path).read_bytes()
    msg = parse_message(raw, owner=OWNER)
    assert msg.header.dedupe_key
    assert msg.thread_key
    assert isinstance(msg.body_text, str) and isinstance(msg.body_html, str)
    for att in msg.attachments:
        assert isinstance(att.content, bytes) and att.filename


def _stdlib_only(raw):
    """Parse with the fast splitter disabled: the stdlib parser's reading of ``raw``."""
    from crm_gmail_sync.engine import mimeparts

    real = mimeparts._fast

    def bail(*args, **kwargs):
        raise mimeparts._Bail()

    mimeparts._fast = bail
    try:
        return parse_message(raw)
    finally:
        mimeparts._fast = real


def _shape(msg):
    def content(att):
        data = att.content.replace(b"\r\n", b"\n")
        if att.mimetype == "message/rfc822":  # the stdlib re-serialises: compare its headers
            data = data.split(b"\n\n")[0]
        return data

    return (
        msg.body_text.replace("\r\n", "\n"),
        msg.body_html.replace("\r\n", "\n"),
        [(a.filename, a.mimetype, a.inline, a.content_id, content(a)) for a in msg.attachments],
    )


@pytest.mark.parametrize(
    "path",
    CORPUS + sorted(str(p) for p in SAMPLES.glob("*.eml")),
    ids=lambda p: os.path.basename(p),
)
def test_fast_splitter_agrees_with_stdlib_parser(path):
    raw = Path(path).read_bytes()
    assert _shape(parse_message(raw)) == _shape(_stdlib_only(raw))


def test_thirty_megabyte_attachment():
    big = os.urandom(30 * 1024 * 1024)
    from mailgen import make_message

    raw = make_message(
        "a@x.io",
        "b@y.io",
        "Big",
        msgid="<big@x>",
        attachments=[("big.bin", "application/octet-stream", big)],
    )
    msg = parse_message(raw)
    assert msg.attachments[0].content == big and msg.body_text.strip() == "Hello there."


@pytest.mark.parametrize("charset", ["utf-8", "latin-1"])
def test_raw_8bit_attachment_name(charset):
    """Old clients write a file name as raw 8-bit bytes: the mail is stored, the name read."""
    raw = (
        "From: Chris <chris@acme.test>\r\nTo: sales@example.test\r\nSubject: CV\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        '--B\r\nContent-Type: application/pdf; name="résumé.pdf"\r\n'
        'Content-Disposition: attachment; filename="résumé.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--B--\r\n"
    ).encode(charset)
    msg = parse_message(raw, owner=OWNER)
    assert msg.body_text.strip() == "see attached"
    assert [(a.filename, a.content) for a in msg.attachments] == [("résumé.pdf", b"%PDF")]


def test_redirected_mail_in_the_sent_folder():
    """A message the owner redirected (Resent-From): its From is the customer, a
    participant; only Resent-From is the owner's identity."""
    raw = (
        b"Resent-From: Team <team@example.test>\r\nResent-To: boss@example.test\r\n"
        b"From: Chris <chris@acme.test>\r\nTo: sales@example.test\r\nSubject: fwd\r\n"
        b"Message-ID: <r1@x>\r\n\r\nbody\r\n"
    )
    for head in (
        parse_headers(raw, owner=OWNER, sent_folder=True, decide_only=True),
        parse_message(raw, owner=OWNER, sent_folder=True).header,
    ):
        assert head.direction == DIRECTION_SENT
        assert [a.email for a in head.identities()] == ["team@example.test"]
        assert "chris@acme.test" in head.participants(OWNER)
        assert "team@example.test" not in head.participants(OWNER)
