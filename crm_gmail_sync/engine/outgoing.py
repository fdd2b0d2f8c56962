"""Outgoing email: one MIME message for all recipients, replies and their threading.

What it is
----------
The pure half of sending (no network): :func:`build_mime` turns an :class:`OutgoingEmail`
into the exact bytes handed to SMTP (and APPENDed to Sent): To and Cc in the headers, Bcc
only in the envelope (:func:`envelope_recipients`), ``multipart/alternative`` text + HTML,
attachments, non-ASCII names, subjects and file names encoded (RFC 2047 / RFC 2231), a
Message-ID fixed by the caller before the first attempt (:func:`make_message_id`), so that
every retry sends the same email and the Sent folder can be searched for it.

For replies, :func:`reply_subject` (one "Re:", never piled up), :func:`reply_recipients`
(reply: the sender, or the original recipients for a reply to our own email; reply-all:
To and Cc kept, every own address dropped) and :func:`reply_references` (the parent's
References plus its Message-ID, trimmed to the root and the most recent ones) keep the
conversation one thread in Gmail, in the recipient's client and in the conversation view.

:func:`check_limits` refuses what Gmail would refuse, before anything is sent.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import re
from dataclasses import dataclass, field
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from html.parser import HTMLParser

from .addresses import normalize_email
from .types import Address

#: Gmail's limits for one message sent through its SMTP server.
MAX_RECIPIENTS = 100
MAX_SIZE = 25 * 1024 * 1024  # the attachments and the text, before encoding
#: References kept in a reply: the root and the most recent ones (RFC 5322 lets a client
#: shorten the list; threading needs the root and the parent).
MAX_REFERENCES = 20

LIMIT_RECIPIENTS = "too_many_recipients"
LIMIT_SIZE = "too_large"
LIMIT_NO_RECIPIENT = "no_recipient"
LIMIT_BAD_ADDRESS = "bad_address"


@dataclass
class OutgoingAttachment:
    filename: str
    mimetype: str
    content: bytes


@dataclass
class OutgoingEmail:
    """One email to send. ``html`` is the (sanitised) body; ``text`` its plain-text
    alternative, derived from ``html`` when empty."""

    sender: Address
    message_id: str
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    subject: str = ""
    html: str = ""
    text: str = ""
    attachments: list[OutgoingAttachment] = field(default_factory=list)
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    date: dt.datetime | None = None


class LimitError(ValueError):
    """The email cannot be sent as it is (``kind``: one of the ``LIMIT_*``)."""

    def __init__(self, kind: str, message: str, values=()):
        super().__init__(message)
        self.kind = kind
        self.values = tuple(values)


# ------------------------------------------------------------------ identity
def make_message_id(sender_email: str) -> str:
    """A new Message-ID in the sender's domain.

    >>> make_message_id("anna@acme.test").endswith("@acme.test>")
    True
    """
    domain = sender_email.rpartition("@")[2] or "localhost"
    return email.utils.make_msgid(domain=_ascii_domain(domain))


# ------------------------------------------------------------------ replies
_REPLY_PREFIX = re.compile(
    r"^(?:\s*(?:re|aw|antw|sv|vs|ref|rif|odp|r)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+", re.I
)


def reply_subject(subject: str) -> str:
    """``Re: <subject>`` with the reply prefixes already there folded into one.

    >>> reply_subject("Offer")
    'Re: Offer'
    >>> reply_subject("RE: AW: Re[2]: Offer")
    'Re: Offer'
    >>> reply_subject("Fwd: Offer")
    'Re: Fwd: Offer'
    >>> reply_subject("")
    'Re:'
    """
    rest = _REPLY_PREFIX.sub("", subject or "").strip()
    return f"Re: {rest}" if rest else "Re:"


def reply_recipients(
    sender: Address,
    reply_to: list[Address],
    to: list[Address],
    cc: list[Address],
    own_addresses,
    reply_all: bool,
) -> tuple[list[Address], list[Address]]:
    """``(to, cc)`` of a reply to an email from ``sender`` (with ``reply_to``) to ``to``
    and ``cc``; ``own_addresses`` are the replying user's (normalised or not).

    A reply goes to Reply-To, else to the sender; a reply to an email of our own goes to
    its recipients again (as Gmail does). Reply-all adds the other To and Cc; no own
    address stays, nobody appears twice.

    >>> a, me = Address("a@x.io", "A"), Address("me@us.io")
    >>> b, c = Address("b@x.io"), Address("c@x.io")
    >>> [x.email for x in reply_recipients(a, [], [me, b], [c], {"me@us.io"}, False)[0]]
    ['a@x.io']
    >>> to, cc = reply_recipients(a, [], [me, b], [c], {"me@us.io"}, True)
    >>> [x.email for x in to], [x.email for x in cc]
    (['a@x.io', 'b@x.io'], ['c@x.io'])
    >>> to, cc = reply_recipients(me, [], [a], [b], {"me@us.io"}, True)
    >>> [x.email for x in to], [x.email for x in cc]
    (['a@x.io'], ['b@x.io'])
    """
    own = {normalize_email(a) or a for a in own_addresses}
    seen: set[str] = set()

    def keep(addresses):
        out = []
        for address in addresses:
            key = normalize_email(address.email)
            if key and key not in own and key not in seen:
                seen.add(key)
                out.append(address)
        return out

    from_us = normalize_email(sender.email) in own
    if from_us:
        primary = keep(to)
        if not reply_all:
            return primary or keep(cc)[:1], []
        return primary, keep(cc)
    primary = keep(reply_to or [sender])
    if not reply_all:
        return primary, []
    primary += keep(to)
    return primary, keep(cc)


def reply_references(parent_message_id: str, parent_references) -> list[str]:
    """The References of a reply: the parent's References and its Message-ID, the root
    and the most recent ones kept when there are more than :data:`MAX_REFERENCES`.

    >>> reply_references("<c@x>", ["<a@x>", "<b@x>"])
    ['<a@x>', '<b@x>', '<c@x>']
    >>> refs = reply_references("<z@x>", [f"<{i}@x>" for i in range(40)])
    >>> len(refs), refs[0], refs[-1]
    (20, '<0@x>', '<z@x>')
    """
    refs = []
    for ref in [*(parent_references or ()), parent_message_id]:
        if ref and ref not in refs:
            refs.append(ref)
    if len(refs) > MAX_REFERENCES:
        refs = [refs[0], *refs[-(MAX_REFERENCES - 1) :]]
    return refs


# ------------------------------------------------------------------ MIME
def envelope_recipients(mail: OutgoingEmail) -> list[str]:
    """The SMTP envelope's recipients: To, Cc and Bcc, each address once."""
    out = []
    for address in [*mail.to, *mail.cc, *mail.bcc]:
        key = normalize_email(address.email) or address.email
        if key not in [normalize_email(a) or a for a in out]:
            out.append(_ascii_address(address.email))
    return out


def check_limits(mail: OutgoingEmail) -> None:
    """Raise :class:`LimitError` for what Gmail would refuse (or what is no address)."""
    recipients = [*mail.to, *mail.cc, *mail.bcc]
    bad = [a.email for a in [mail.sender, *recipients] if not normalize_email(a.email)]
    if bad:
        raise LimitError(LIMIT_BAD_ADDRESS, f"not an email address: {', '.join(bad)}", bad)
    count = len(envelope_recipients(mail))
    if not count:
        raise LimitError(LIMIT_NO_RECIPIENT, "the email has no recipient")
    if count > MAX_RECIPIENTS:
        raise LimitError(
            LIMIT_RECIPIENTS,
            f"{count} recipients: Gmail takes at most {MAX_RECIPIENTS} per email",
            (count, MAX_RECIPIENTS),
        )
    size = sum(len(a.content) for a in mail.attachments) + len(mail.html.encode())
    if size > MAX_SIZE:
        raise LimitError(
            LIMIT_SIZE,
            f"{size / 1024 / 1024:.1f} MB: Gmail takes at most 25 MB per email",
            (size, MAX_SIZE),
        )


def build_mime(mail: OutgoingEmail) -> bytes:
    """The email's bytes as sent (CRLF line ends, 7-bit headers), Bcc left out."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = _header_address(mail.sender)
    if mail.to:
        msg["To"] = [_header_address(a) for a in mail.to]
    if mail.cc:
        msg["Cc"] = [_header_address(a) for a in mail.cc]
    msg["Subject"] = mail.subject or ""
    msg["Date"] = email.utils.format_datetime(
        (mail.date or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    )
    msg["Message-ID"] = mail.message_id
    if mail.in_reply_to:
        msg["In-Reply-To"] = mail.in_reply_to
    if mail.references:
        msg["References"] = " ".join(mail.references)
    text = mail.text or html_to_text(mail.html)
    msg.set_content(text, cte=_cte(text))
    if mail.html:
        msg.add_alternative(_html_document(mail.html), subtype="html", cte=_cte(mail.html))
    for attachment in mail.attachments:
        maintype, _, subtype = (attachment.mimetype or "application/octet-stream").partition("/")
        msg.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.filename or "attachment",
        )
    return msg.as_bytes()


def _cte(text: str) -> str:
    """quoted-printable for mostly-ASCII text (readable in the raw email), else base64."""
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return "quoted-printable" if non_ascii * 10 <= len(text) else "base64"


def _html_document(body: str) -> str:
    if re.search(r"<html[\s>]", body, re.I):
        return body
    return f'<html><head><meta charset="utf-8"></head><body>{body}</body></html>'


def _header_address(address: Address) -> HeaderAddress:
    local, _, domain = _ascii_address(address.email).rpartition("@")
    return HeaderAddress(display_name=address.name or "", username=local, domain=domain)


def _ascii_address(value: str) -> str:
    """The address with its domain in IDNA (``münchen.de`` -> ``xn--mnchen-3ya.de``);
    a non-ASCII local part would need SMTPUTF8, which this sender does not use."""
    local, _, domain = value.strip().rpartition("@")
    if not local.isascii():
        raise LimitError(LIMIT_BAD_ADDRESS, f"not an ASCII address: {value}", [value])
    return f"{local}@{_ascii_domain(domain)}"


def _ascii_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise LimitError(LIMIT_BAD_ADDRESS, f"not a domain: {domain}", [domain]) from None


# ------------------------------------------------------------------ text part
class _TextMaker(HTMLParser):
    BLOCKS = {"p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"}
    SKIP = {"style", "script", "head", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.quote = 0
        self.href: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in self.BLOCKS:
            self.parts.append("\n")
            if tag == "blockquote":
                self.quote += 1
            if tag == "li":
                self.parts.append("- ")
        elif tag == "a":
            self.href.append(dict(attrs).get("href"))

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")
            if tag == "blockquote":
                self.quote = max(0, self.quote - 1)
        elif tag == "a" and self.href:
            href = self.href.pop()
            if href and href.startswith(("http://", "https://")):
                self.parts.append(f" <{href}>")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self.parts).split("\n")]
        out, blank = [], False
        for line in lines:
            if not line:
                blank = bool(out)
                continue
            if blank:
                out.append("")
            out.append(line)
            blank = False
        return "\n".join(out) + "\n"


def html_to_text(body: str) -> str:
    """A plain-text rendering of an HTML body (paragraphs, line breaks, list items,
    link targets).

    >>> html_to_text("<p>Hello <b>Anna</b>,</p><p>see <a href='https://x.io'>this</a></p>")
    'Hello Anna,\\n\\nsee this <https://x.io>\\n'
    """
    if not body:
        return "\n"
    maker = _TextMaker()
    maker.feed(body)
    maker.close()
    return maker.text()
