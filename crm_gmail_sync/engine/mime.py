"""Parsing raw messages into :mod:`.types` dataclasses.

Built on the stdlib ``email`` package with the ``compat32`` policy: it is the
fastest of the stdlib policies and never raises on malformed headers, and the
few things it leaves undone (RFC 2047 with unknown charsets, raw 8-bit
headers) are done here with replacement characters instead of exceptions.
"""

from __future__ import annotations

import datetime as dt
import email
import hashlib
import re
from email.header import Header, decode_header
from email.message import Message
from email.policy import compat32
from email.utils import parsedate_to_datetime

from .addresses import parse_addresses
from .threads import clean_msgid, parse_msgids, thread_key
from .types import (
    DIRECTION_RECEIVED,
    DIRECTION_SENT,
    Attachment,
    HeaderInfo,
    ParsedMessage,
)

#: Headers the header-first step needs; the IMAP transport fetches only these.
HEADER_FIELDS = (
    "From",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Date",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
)
_HASH_FIELDS = ("from", "to", "cc", "date", "subject", "message-id", "in-reply-to", "references")


# ---------------------------------------------------------------- text decoding
def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode bytes in ``charset``, falling back to UTF-8 and then cp1252.

    Unknown charsets or undecodable bytes give replacement characters,
    never an exception.

    >>> decode_bytes(b"caf\\xe9", "x-unknown")
    'café'
    >>> decode_bytes("Grüße".encode("utf-8"), "iso-8859-1")
    'GrÃ¼Ãe'
    """
    charset = (charset or "").strip().strip('"').lower() or None
    if charset in ("unknown-8bit", "x-unknown", "unknown", "default"):
        charset = None
    if charset:
        try:
            return data.decode(charset, "replace")
        except (LookupError, ValueError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def decode_header_value(value) -> str:
    """Decode a header value (RFC 2047 encoded words, raw 8-bit) to text.

    >>> decode_header_value("=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?K=F6ln?=")
    'Grüße aus Köln'
    >>> decode_header_value("=?x-bogus?q?Hallo?=")
    'Hallo'
    """
    if value is None:
        return ""
    if not isinstance(value, str):  # email.header.Header
        value = _raw_text(value)
    if any("\udc80" <= ch <= "\udcff" for ch in value):  # raw 8-bit bytes
        value = decode_bytes(value.encode("ascii", "surrogateescape"))
    if "=?" not in value:
        return " ".join(value.split())
    try:
        parts = decode_header(value)
    except Exception:  # noqa: BLE001 - malformed encoded words: keep the raw text
        return " ".join(value.split())
    out = []
    for chunk, charset in parts:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    # decode_header keeps the whitespace between plain and encoded parts in the chunks
    return " ".join("".join(out).split())


def parse_date(value) -> dt.datetime | None:
    """Parse a Date header into an aware UTC datetime (naive dates count as UTC)."""
    if not value:
        return None
    try:
        date = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if date is None:
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=dt.timezone.utc)
    try:
        return date.astimezone(dt.timezone.utc)
    except (OverflowError, ValueError):
        return None


# ---------------------------------------------------------------- headers
def parse_headers(
    raw_header: bytes,
    *,
    folder: str = "",
    uid: str = "",
    owner: frozenset[str] = frozenset(),
    gmail_msgid: str = "",
    gmail_thrid: str = "",
    size: int = 0,
    fallback_date: dt.datetime | None = None,
) -> HeaderInfo:
    """Read the header block of a message into a :class:`HeaderInfo`.

    ``owner`` is the set of the owner's normalised addresses: a message from
    one of them is *sent*. Never raises on malformed input.
    """
    msg = email.message_from_bytes(raw_header, policy=compat32)
    return _header_info(msg, folder, uid, owner, gmail_msgid, gmail_thrid, size, fallback_date)


def _raw_text(value) -> str:
    """A header value as text; raw 8-bit bytes (compat32 wraps them in a Header) decoded."""
    if isinstance(value, Header):
        return "".join(
            decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk
            for chunk, charset in decode_header(value)
        )
    return str(value)


def _all(msg: Message, name: str) -> list[str]:
    try:
        return [_raw_text(v) for v in (msg.get_all(name) or [])]
    except Exception:  # noqa: BLE001
        return []


def _one(msg: Message, name: str) -> str:
    values = _all(msg, name)
    return values[0] if values else ""


def _header_info(msg, folder, uid, owner, gmail_msgid, gmail_thrid, size, fallback_date):
    def addrs(name):
        return parse_addresses(_all(msg, name), decode=decode_header_value)

    from_ = addrs("from")
    message_id = clean_msgid(_one(msg, "message-id"))
    references = parse_msgids(" ".join(_all(msg, "references")))
    in_reply_to = (parse_msgids(_one(msg, "in-reply-to")) or [""])[0]
    info = HeaderInfo(
        folder=folder,
        uid=str(uid),
        dedupe_key=dedupe_key(gmail_msgid, message_id, msg),
        message_id=message_id,
        from_=from_,
        to=addrs("to"),
        cc=addrs("cc"),
        bcc=addrs("bcc"),
        reply_to=addrs("reply-to"),
        subject=decode_header_value(_one(msg, "subject")),
        date=parse_date(_one(msg, "date")) or fallback_date,
        size=size,
        gmail_msgid=gmail_msgid or "",
        gmail_thrid=gmail_thrid or "",
        in_reply_to=in_reply_to,
        references=references,
        direction=DIRECTION_SENT if from_ and from_[0].email in owner else DIRECTION_RECEIVED,
    )
    return info


def dedupe_key(gmail_msgid: str, message_id: str, msg: Message) -> str:
    """The per-mailbox identity of a message.

    Gmail's message id when the server offers it, else the Message-ID header,
    else a SHA-256 of the identifying headers (the same bytes whichever
    protocol or fetch fetched them).
    """
    if gmail_msgid:
        return f"gm:{gmail_msgid}"
    if message_id:
        return f"mid:{message_id}"
    h = hashlib.sha256()
    for name in _HASH_FIELDS:
        for value in _all(msg, name):
            h.update(name.encode() + b":" + " ".join(value.split()).encode("utf-8", "replace"))
            h.update(b"\n")
    return f"hash:{h.hexdigest()}"


# ---------------------------------------------------------------- full message
_FILENAME_SAFE = re.compile(r"[\\/\x00-\x1f]")


def parse_message(
    raw: bytes,
    *,
    folder: str = "",
    uid: str = "",
    owner: frozenset[str] = frozenset(),
    gmail_msgid: str = "",
    gmail_thrid: str = "",
    fallback_date: dt.datetime | None = None,
) -> ParsedMessage:
    """Parse a whole raw message.

    Returns a :class:`ParsedMessage` with decoded headers, the first
    text/plain and text/html bodies, and every other leaf part (and every
    attached message/rfc822, whole) as an :class:`Attachment`. Malformed
    structure degrades to what could be read, listed in ``defects``; this
    function raises only on input that is not bytes.
    """
    if not isinstance(raw, (bytes, bytearray)):
        raise TypeError("parse_message needs bytes")
    msg = email.message_from_bytes(bytes(raw), policy=compat32)
    header = _header_info(
        msg, folder, uid, owner, gmail_msgid, gmail_thrid, len(raw), fallback_date
    )
    parsed = ParsedMessage(header=header, thread_key=thread_key(header))
    _walk(msg, parsed, top=True)
    parsed.defects.extend(d.__class__.__name__ for d in msg.defects)
    return parsed


def _walk(part: Message, parsed: ParsedMessage, top: bool = False) -> None:
    ctype = part.get_content_type()
    if part.is_multipart() and ctype != "message/rfc822":
        payload = part.get_payload()
        for sub in payload if isinstance(payload, list) else []:
            _walk(sub, parsed)
        return
    disposition = (part.get("content-disposition") or "").split(";")[0].strip().lower()
    filename = _filename(part)
    is_attachment = disposition == "attachment" or (filename and not top and disposition != "inline")
    if ctype in ("text/plain", "text/html") and not is_attachment:
        text = _text_payload(part)
        if ctype == "text/plain" and not parsed.body_text:
            parsed.body_text = text
            return
        if ctype == "text/html" and not parsed.body_html:
            parsed.body_html = text
            return
        if not filename:  # further alternative bodies: keep, as a text attachment
            filename = "part.html" if ctype == "text/html" else "part.txt"
    if ctype == "message/rfc822":
        content = _rfc822_bytes(part)
        filename = filename or (_subject_filename(part) + ".eml")
    else:
        try:
            content = part.get_payload(decode=True) or b""
        except Exception as exc:  # noqa: BLE001
            parsed.defects.append(f"payload: {exc.__class__.__name__}")
            content = b""
    cid = (part.get("content-id") or "").strip().strip("<>")
    parsed.attachments.append(
        Attachment(
            filename=filename or _default_name(ctype),
            mimetype=ctype,
            content=content,
            inline=disposition == "inline" or (bool(cid) and disposition != "attachment"),
            content_id=cid,
        )
    )


def _text_payload(part: Message) -> str:
    try:
        data = part.get_payload(decode=True) or b""
    except Exception:  # noqa: BLE001
        data = str(part.get_payload()).encode("utf-8", "replace")
    return decode_bytes(data, part.get_content_charset())


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except Exception:  # noqa: BLE001
        name = ""
    if isinstance(name, tuple):  # RFC 2231 value not collapsed
        name = decode_bytes(name[2].encode("latin-1", "replace"), name[0])
    name = decode_header_value(name)
    return _FILENAME_SAFE.sub("_", name).strip()[:200]


def _rfc822_bytes(part: Message) -> bytes:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        try:
            return payload[0].as_bytes(policy=compat32)
        except Exception:  # noqa: BLE001
            return str(payload[0]).encode("utf-8", "replace")
    if isinstance(payload, str):
        return payload.encode("ascii", "surrogateescape")
    return b""


def _subject_filename(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        subject = decode_header_value(payload[0].get("subject", ""))
        if subject:
            return _FILENAME_SAFE.sub("_", subject)[:100]
    return "message"


def _default_name(ctype: str) -> str:
    import mimetypes

    return "attachment" + (mimetypes.guess_extension(ctype) or ".bin")
