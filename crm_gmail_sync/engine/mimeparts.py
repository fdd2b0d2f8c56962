"""The body of a message: text bodies and attachments, found fast.

The stdlib ``email`` parser reads a message line by line, which makes a
500 KB base64 attachment cost thousands of Python steps. Here the MIME tree
is split with ``bytes.find`` on the boundaries and leaves are decoded with
``binascii`` (C speed); only the small part headers go through ``email``.
Anything unusual (a boundary that never closes, bad base64, deep nesting)
falls back to the stdlib parser on the whole message, which tolerates
every malformation and records it in ``defects``.
"""

from __future__ import annotations

import binascii
import email
import mimetypes
import re
from email.message import Message
from email.policy import compat32

from .charset import decode_bytes, decode_header_value, raw_text
from .types import Attachment, ParsedMessage

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_FILENAME_SAFE = re.compile(r"[\\/\x00-\x1f]")
_MAX_DEPTH = 20


class _Bail(Exception):
    """The fast path met something only the stdlib parser should judge."""


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """Split raw bytes into the header block (with its blank line) and the body.

    >>> split_head(b"A: 1\\r\\nB: 2\\r\\n\\r\\nbody")
    (b'A: 1\\r\\nB: 2\\r\\n\\r\\n', b'body')
    >>> split_head(b"\\r\\nno headers")
    (b'', b'no headers')
    """
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    if raw.startswith(b"\n"):
        return b"", raw[1:]
    found = _BLANK_LINE.search(raw)
    if not found:
        return raw, b""
    return raw[: found.end()], raw[found.end() :]


_FIELD_START = re.compile(r"\r?\n(?![ \t])")


def _fields(head: bytes, strict: bool):
    """``(name, raw value)`` of each header line: folded values kept, 8-bit bytes
    surrogate-escaped, as the stdlib parser stores them."""
    for field in _FIELD_START.split(head.decode("ascii", "surrogateescape")):
        name, sep, value = field.partition(":")
        if sep and name and name.isprintable() and " " not in name and "\t" not in name:
            yield name, value.lstrip(" \t").rstrip("\r\n")
        elif strict and field.strip():
            raise _Bail()


def header_fields(head: bytes) -> dict[str, list[str]]:
    """Raw header values by lower-cased name; lines that are not ``Name: value`` are dropped.

    >>> header_fields(b"Subject: a\\r\\n b\\r\\nTo: x\\r\\nto: y\\r\\n\\r\\n")
    {'subject': ['a\\r\\n b'], 'to': ['x', 'y']}
    """
    out: dict[str, list[str]] = {}
    for name, value in _fields(head, False):
        out.setdefault(name.lower(), []).append(value)
    return out


def header_block(head: bytes, strict: bool = False) -> Message:
    """A header-only :class:`Message`, as ``email.message_from_bytes`` would give, faster.

    With ``strict``, a line that is not ``Name: value`` ends the fast path
    (the stdlib parser then decides where the body starts).
    """
    msg = Message()
    for name, value in _fields(head, strict):
        msg[name] = value
    return msg


def read_parts(raw: bytes, head: Message, body: bytes | None, parsed: ParsedMessage) -> None:
    """Fill ``parsed``'s bodies and attachments.

    ``head``/``body`` are the split message for the fast path; ``body=None``
    means ``head`` is already the stdlib parser's whole message.
    """
    msg = head if body is None else None
    if msg is None:
        try:
            _fast(head, body, parsed, top=True, depth=0)
            return
        except _Bail:
            pass
        except Exception as exc:  # noqa: BLE001 - the stdlib parser gets the last word
            parsed.defects.append(f"fast parser: {exc.__class__.__name__}")
        parsed.body_text, parsed.body_html, parsed.attachments = "", "", []
        msg = email.message_from_bytes(raw, policy=compat32)
    _stdlib(msg, parsed, top=True)
    parsed.defects.extend(d.__class__.__name__ for d in msg.defects)


# ---------------------------------------------------------------- fast path
def _fast(part: Message, body: bytes, parsed: ParsedMessage, top: bool, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise _Bail()
    ctype = part.get_content_type()
    if ctype.startswith("multipart/"):
        default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
        for sub_raw in _split_multipart(body, part.get_boundary()):
            sub_head, sub_body = split_head(sub_raw)
            sub = header_block(sub_head, strict=True)
            if "content-type" not in sub:
                sub.set_default_type(default)
            _fast(sub, sub_body, parsed, top=False, depth=depth + 1)
        return
    if ctype.startswith("message/") and ctype != "message/rfc822":
        raise _Bail()  # delivery-status, external-body...: header blocks, not a leaf
    content = _decode_transfer(body, part)
    subject = ""
    if ctype == "message/rfc822":
        inner = header_block(split_head(content)[0])
        subject = inner.get("subject", "")
    _leaf(part, content, parsed, top, subject)


def _split_multipart(body: bytes, boundary: str | None) -> list[bytes]:
    """The parts between ``--boundary`` lines; bail unless the close delimiter is there."""
    if not boundary:
        raise _Bail()
    delim = b"--" + boundary.encode("latin-1", "replace")
    parts, starts, pos = [], [], 0
    while True:
        pos = body.find(delim, pos)
        if pos < 0:
            raise _Bail()  # never closed: a defect for the stdlib parser to record
        if pos == 0 or body[pos - 1 : pos] == b"\n":
            after = pos + len(delim)
            closing = body[after : after + 2] == b"--"
            if starts:
                end = pos - 1
                if body[end - 1 : end] == b"\r":
                    end -= 1
                parts.append(body[starts[-1] : max(end, starts[-1])])
            if closing:
                return parts
            eol = body.find(b"\n", after)
            if eol < 0:
                raise _Bail()
            if body[after:eol].strip():  # "--boundaryX": a longer boundary, not ours
                if not starts:
                    pos = after
                    continue
                raise _Bail()
            starts.append(eol + 1)
            pos = eol + 1
        else:
            pos += len(delim)


def _decode_transfer(body: bytes, part: Message) -> bytes:
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    if cte == "base64":
        try:
            return binascii.a2b_base64(body)
        except binascii.Error:
            raise _Bail() from None
    if cte == "quoted-printable":
        return binascii.a2b_qp(body)
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
        raise _Bail()
    return body


# ---------------------------------------------------------------- stdlib path
def _stdlib(part: Message, parsed: ParsedMessage, top: bool = False) -> None:
    ctype = part.get_content_type()
    if ctype.startswith("multipart/") or (part.is_multipart() and not ctype.startswith("message/")):
        payload = part.get_payload()
        for sub in payload if isinstance(payload, list) else []:
            _stdlib(sub, parsed)
        return
    subject = ""
    if ctype == "message/rfc822":
        content, subject = _rfc822(part)
    elif part.is_multipart():  # message/delivery-status and kin: blocks of headers
        content = b"\n".join(_as_bytes(sub) for sub in part.get_payload())
    else:
        try:
            content = part.get_payload(decode=True) or b""
        except Exception as exc:  # noqa: BLE001
            parsed.defects.append(f"payload: {exc.__class__.__name__}")
            content = str(part.get_payload()).encode("utf-8", "replace")
    _leaf(part, content, parsed, top, subject)


def _as_bytes(msg: Message) -> bytes:
    try:
        return msg.as_bytes(policy=compat32)
    except Exception:  # noqa: BLE001
        return str(msg).encode("utf-8", "replace")


def _rfc822(part: Message) -> tuple[bytes, str]:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        return _as_bytes(payload[0]), payload[0].get("subject", "")
    if isinstance(payload, str):
        return payload.encode("ascii", "surrogateescape"), ""
    return b"", ""


# ---------------------------------------------------------------- leaves
def _leaf(part: Message, content: bytes, parsed: ParsedMessage, top: bool, subject) -> None:
    """Place one decoded leaf: the first text/plain and text/html become the bodies."""
    ctype = part.get_content_type()
    disposition = raw_text(part.get("content-disposition") or "").split(";")[0].strip().lower()
    filename = _filename(part)
    is_attachment = disposition == "attachment" or (
        filename and not top and disposition != "inline"
    )
    if ctype in ("text/plain", "text/html") and not is_attachment:
        text = decode_bytes(content, part.get_content_charset())
        if ctype == "text/plain" and not parsed.body_text:
            parsed.body_text = text
            return
        if ctype == "text/html" and not parsed.body_html:
            parsed.body_html = text
            return
        if not filename:  # further alternative bodies: kept, as text attachments
            filename = "part.html" if ctype == "text/html" else "part.txt"
    if ctype == "message/rfc822" and not filename:
        subject = _FILENAME_SAFE.sub("_", decode_header_value(subject))[:100]
        filename = (subject or "message") + ".eml"
    cid = str(part.get("content-id") or "").strip().strip("<>")
    parsed.attachments.append(
        Attachment(
            filename=filename or "attachment" + (mimetypes.guess_extension(ctype) or ".bin"),
            mimetype=ctype,
            content=content,
            inline=disposition == "inline" or (bool(cid) and disposition != "attachment"),
            content_id=cid,
        )
    )


def _filename(part: Message) -> str:
    disposition = raw_text(part.get("content-disposition", ""))
    ctype = raw_text(part.get("content-type", ""))
    if "name" not in (disposition + ctype).lower():  # most parts: skip the parameter parsing
        return ""
    if not (disposition + ctype).isascii():
        # raw 8-bit parameters (filename="résumé.pdf"): read from their decoded text, as
        # the parser would garble or refuse them
        part = Message()
        part["Content-Disposition"], part["Content-Type"] = disposition, ctype or "text/plain"
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except Exception:  # noqa: BLE001
        name = ""
    if isinstance(name, tuple):  # RFC 2231 value not collapsed
        name = decode_bytes(name[2].encode("latin-1", "replace"), name[0])
    name = decode_header_value(name)
    return _FILENAME_SAFE.sub("_", name).strip()[:200]
