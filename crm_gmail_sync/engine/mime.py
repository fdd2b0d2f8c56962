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
from email.policy import compat32
from email.utils import parsedate_to_datetime

from .addresses import parse_addresses
from .charset import decode_header_value, raw_text
from .mimeparts import header_block, header_fields, read_parts, split_head
from .threads import clean_msgid, parse_msgids, thread_key
from .types import (
    DIRECTION_RECEIVED,
    DIRECTION_SENT,
    HeaderInfo,
    ParsedMessage,
)

#: Headers the header-first step needs; the IMAP transport fetches only these.
HEADER_FIELDS = (
    "From",
    "Resent-From",
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
    decide_only: bool = False,
    sent_folder: bool = False,
) -> HeaderInfo:
    """Read the header block of a message into a :class:`HeaderInfo`.

    ``owner`` is the set of the owner's normalised addresses: a message from
    one of them is *sent*. ``sent_folder``: the message lies in the owner's Sent
    folder, so it is *sent* whatever its From says, and its From addresses are
    the owner's identities, not participants (``HeaderInfo.sent_folder``).
    ``decide_only`` reads just what the header-first decision needs (addresses,
    identity, direction) and leaves subject, date and references empty: most
    headers are of mail that is never stored. Never raises on malformed input.
    """
    fields = {
        name: [raw_text(v) for v in values] for name, values in header_fields(raw_header).items()
    }
    return _header_info(
        fields,
        folder,
        uid,
        owner,
        gmail_msgid,
        gmail_thrid,
        size,
        fallback_date,
        decide_only,
        sent_folder=sent_folder,
    )


def _one(fields: dict, name: str) -> str:
    values = fields.get(name)
    return values[0] if values else ""


def _header_info(
    msg,
    folder,
    uid,
    owner,
    gmail_msgid,
    gmail_thrid,
    size,
    fallback_date,
    decide_only=False,
    *,
    sent_folder=False,
):
    def addrs(name):
        return parse_addresses(msg.get(name), decode=decode_header_value)

    from_ = addrs("from")
    message_id = clean_msgid(_one(msg, "message-id"))
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
        resent_from=addrs("resent-from"),
        date=fallback_date,
        size=size,
        gmail_msgid=gmail_msgid or "",
        gmail_thrid=gmail_thrid or "",
        direction=(
            DIRECTION_SENT
            if sent_folder or (from_ and from_[0].email in owner)
            else DIRECTION_RECEIVED
        ),
        sent_folder=sent_folder,
    )
    if not decide_only:
        info.subject = decode_header_value(_one(msg, "subject"))
        info.date = parse_date(_one(msg, "date")) or fallback_date
        info.references = parse_msgids(" ".join(msg.get("references", ())))
        info.in_reply_to = (parse_msgids(_one(msg, "in-reply-to")) or [""])[0]
    return info


def dedupe_key(gmail_msgid: str, message_id: str, fields: dict[str, list[str]]) -> str:
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
        for value in fields.get(name, ()):
            h.update(name.encode() + b":" + " ".join(value.split()).encode("utf-8", "replace"))
            h.update(b"\n")
    return f"hash:{h.hexdigest()}"


# ---------------------------------------------------------------- full message
def parse_message(
    raw: bytes,
    *,
    folder: str = "",
    uid: str = "",
    owner: frozenset[str] = frozenset(),
    gmail_msgid: str = "",
    gmail_thrid: str = "",
    fallback_date: dt.datetime | None = None,
    sent_folder: bool = False,
) -> ParsedMessage:
    """Parse a whole raw message.

    ``owner`` and ``sent_folder`` decide the direction as in :func:`parse_headers`.
    Returns a :class:`ParsedMessage` with decoded headers, the first
    text/plain and text/html bodies, and every other leaf part (and every
    attached message/rfc822, whole) as an :class:`Attachment`. Malformed
    structure degrades to what could be read, listed in ``defects``; this
    function raises only on input that is not bytes.
    """
    if not isinstance(raw, (bytes, bytearray)):
        raise TypeError("parse_message needs bytes")
    raw = bytes(raw)
    head, body = split_head(raw)
    try:
        msg = header_block(head, strict=True)
    except Exception:  # noqa: BLE001 - not a clean header block: the stdlib parser decides
        msg = email.message_from_bytes(raw, policy=compat32)
        body = None
    fields: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        fields.setdefault(name.lower(), []).append(raw_text(value))
    header = _header_info(
        fields,
        folder,
        uid,
        owner,
        gmail_msgid,
        gmail_thrid,
        len(raw),
        fallback_date,
        sent_folder=sent_folder,
    )
    parsed = ParsedMessage(header=header, thread_key=thread_key(header))
    read_parts(raw, msg, body, parsed)
    return parsed
