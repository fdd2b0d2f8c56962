"""Turning bytes and encoded header words into text, never raising."""

from __future__ import annotations

import base64
import re
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


# An RFC 2047 encoded word: charset (RFC 2231 ``*language`` allowed), Q or B, then the
# encoded text: printable ASCII without "?" or space.
_ENCODED_WORD = re.compile(r"=\?([A-Za-z0-9!#$%&'*+\-^_`{|}~]+)\?([QqBb])\?([!->@-~]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_FWS = " \t\r\n"  # folding white space, before unfolding


def decode_header_value(value) -> str:
    """Decode an unstructured header value (RFC 2047 encoded words, raw 8-bit) to text.

    Whitespace follows RFC 2047 section 6.2 on the unfolded value (RFC 5322 unfolding:
    CRLF + WSP is the WSP): whitespace between an encoded word and ordinary text is
    kept, whitespace between two adjacent encoded words (a fold included) is dropped.
    An encoded word touching ordinary text (``foo=?utf-8?q?bar?=baz``) is decoded in
    place, as the stdlib's ``email.policy.default`` does.

    The result is for display on one line: every run of whitespace (folds, tabs, and
    whitespace decoded from inside encoded words) becomes one space, and leading and
    trailing whitespace go. Up to that normalisation it equals the stdlib's
    ``email.policy.default`` reading of well-formed headers (property-tested).

    Never raises. An unknown charset falls back as :func:`decode_bytes` does; raw
    8-bit text is kept (see :func:`raw_text`); a malformed encoded word (bad base64,
    unclosed, with spaces inside) stays as it is written, and is ordinary text for
    the whitespace rule.

    >>> decode_header_value("=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?K=F6ln?=")
    'Grüße aus Köln'
    >>> decode_header_value("Re: =?utf-8?q?a?=\\r\\n =?utf-8?b?Yg==?=")
    'Re: ab'
    >>> decode_header_value("=?utf-8?q?Hallo?=\\r\\n\\tWelt")
    'Hallo Welt'
    >>> decode_header_value("=?x-bogus?q?Hallo?=")
    'Hallo'
    >>> decode_header_value("=?utf-8?b?#?= =?utf-8?q?ok?=")
    '=?utf-8?b?#?= ok'
    >>> decode_header_value("=?utf-8?q?M=C3?= =?utf-8?q?=BCller?=")  # one character, two words
    'Müller'
    """
    if value is None:
        return ""
    value = raw_text(value)
    if "=?" not in value:
        return " ".join(value.split())
    out = []
    pos = 0  # end of the last decoded encoded word, or 0
    after_word = False
    # Adjacent words of one charset are decoded together: mailers split long text at a
    # byte count, so one character can begin in a word and end in the next.
    charset, data = None, b""
    for match in _ENCODED_WORD.finditer(value):
        word = _word_bytes(match[2], match[3])
        if word is None:
            continue  # malformed: stays in the ordinary text around it
        word_charset = match[1].split("*", 1)[0].lower()
        gap = value[pos : match.start()]
        adjacent = after_word and not gap.strip(_FWS)
        if adjacent and word_charset == charset:
            data += word
        else:
            if charset is not None:
                out.append(decode_bytes(data, charset))
            if not adjacent:
                out.append(gap)
            charset, data = word_charset, word
        pos, after_word = match.end(), True
    if charset is not None:
        out.append(decode_bytes(data, charset))
    out.append(value[pos:])
    return " ".join("".join(out).split())


def _word_bytes(encoding: str, text: str) -> bytes | None:
    """The bytes of one encoded word's text, or None when it is malformed."""
    data = text.encode("ascii")
    if encoding in "Qq":
        return _Q_ESCAPE.sub(lambda m: bytes.fromhex(m[1].decode()), data.replace(b"_", b" "))
    try:  # missing padding is common and harmless; anything else is not base64
        return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except ValueError:  # binascii.Error
        return None


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
