"""Message-ID handling and conversation (thread) keys."""

from __future__ import annotations

import re

_MSGID = re.compile(r"<[^<>\s\x00-\x1f\x7f]+>")
# whitespace and control characters never belong in an id (PostgreSQL refuses NUL)
_NOT_IN_ID = re.compile(r"[\s\x00-\x1f\x7f]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+")  # not tab, CR, LF


def clean_msgid(value) -> str:
    """Return a Message-ID as ``<id>`` without whitespace, or ``""``.

    >>> clean_msgid("  <abc@x.io>\\n ")
    '<abc@x.io>'
    >>> clean_msgid("abc@x.io")
    '<abc@x.io>'
    >>> clean_msgid("<a\\x00b@x.io>")
    '<ab@x.io>'
    """
    text = _NOT_IN_ID.sub("", str(value or ""))
    if not text:
        return ""
    found = _MSGID.search(text)
    if found:
        return found.group(0)
    return f"<{text.strip('<>')}>" if "@" in text else ""


def parse_msgids(value) -> list[str]:
    """All ``<id>`` tokens of a References / In-Reply-To value, in order, once each.

    >>> parse_msgids("<a@x> <b@x>\\n <a@x> junk")
    ['<a@x>', '<b@x>']
    >>> parse_msgids("<a\\x00@x> <c@x>")
    ['<a@x>', '<c@x>']
    """
    out = []
    for token in _MSGID.findall(_CONTROL.sub("", str(value or ""))):
        if token not in out:
            out.append(token)
    return out


def thread_key(header) -> str:
    """The conversation a message belongs to.

    Gmail's thread id when known, else the root of References (its first
    id), else In-Reply-To, else the message's own Message-ID, else its
    dedupe key. Replies thus share their root's key.
    """
    if header.gmail_thrid:
        return f"gt:{header.gmail_thrid}"
    if header.references:
        return header.references[0]
    if header.in_reply_to:
        return header.in_reply_to
    return header.message_id or header.dedupe_key
