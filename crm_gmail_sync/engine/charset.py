"""Turning bytes and encoded header words into text, never raising."""

from __future__ import annotations

from email.header import Header, decode_header


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode bytes in ``charset``, falling back to UTF-8 and then cp1252.

    Unknown charsets or undecodable bytes give replacement characters,
    never an exception.

    >>> decode_bytes(b"caf\\xe9", "x-unknown")
    'café'
    >>> decode_bytes("Grüße".encode("utf-8"), "iso-8859-1")
    'GrÃ¼Ã\\x9fe'
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
    value = raw_text(value)
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


def raw_text(value) -> str:
    """A header value as text: raw 8-bit bytes (surrogate-escaped, or wrapped in a
    compat32 ``Header``) decoded as UTF-8, else cp1252."""
    if isinstance(value, Header):
        return "".join(
            decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk
            for chunk, charset in decode_header(value)
        )
    value = str(value)
    if not value.isascii() and any("\udc80" <= ch <= "\udcff" for ch in value):
        return decode_bytes(value.encode("ascii", "surrogateescape"))
    return value
