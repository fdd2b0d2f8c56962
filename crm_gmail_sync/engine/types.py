"""Plain dataclasses exchanged between the engine and its caller.

Nothing here knows about Odoo: the Odoo layer turns these into records and
back. Every structure is JSON-friendly through :func:`dataclasses.asdict` or
the explicit ``to_json``/``from_json`` helpers of the cursor.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .preview import make_preview

# Outcomes a message can have in a sync run.
STORED = "stored"
NOT_CUSTOMER = "not_customer"
DUPLICATE = "duplicate"
UNPARSEABLE = "unparseable"
OUTCOMES = (STORED, NOT_CUSTOMER, DUPLICATE, UNPARSEABLE)

PROTOCOL_IMAP = "imap"
PROTOCOL_POP3 = "pop3"
SECURITY_SSL = "ssl"
SECURITY_STARTTLS = "starttls"
SECURITY_NONE = "none"  # loopback tests only; never offered to users

DIRECTION_RECEIVED = "received"
DIRECTION_SENT = "sent"


@dataclass
class Account:
    """How to reach one mailbox.

    ``password`` is a password or Gmail app password; ``oauth_token`` an
    OAuth2 access token used with SASL XOAUTH2 (takes precedence). ``owner_addresses``
    are the owner's own addresses (normalised or not): mail from them is
    *sent* (so is all mail of the IMAP Sent folder), and they never make a
    message customer mail.
    """

    host: str
    login: str
    protocol: str = PROTOCOL_IMAP
    port: int | None = None
    security: str = SECURITY_SSL
    password: str | None = None
    oauth_token: str | None = None
    owner_addresses: tuple[str, ...] = ()
    ca_file: str | None = None
    verify_tls: bool = True
    timeout: float = 30.0

    def __repr__(self) -> str:  # never print the secret
        return (
            f"Account(protocol={self.protocol!r}, host={self.host!r}, port={self.port!r}, "
            f"security={self.security!r}, login={self.login!r})"
        )


@dataclass
class Address:
    """One participant: ``email`` normalised (see addresses.normalize_email), ``name`` decoded."""

    email: str
    name: str = ""


@dataclass
class Attachment:
    filename: str
    mimetype: str
    content: bytes
    inline: bool = False
    content_id: str = ""

    @property
    def size(self) -> int:
        return len(self.content)

    def __repr__(self) -> str:
        return (
            f"Attachment({self.filename!r}, {self.mimetype!r}, {self.size} bytes, "
            f"inline={self.inline})"
        )


@dataclass
class HeaderInfo:
    """What the engine learns from a message's headers alone (header-first step)."""

    folder: str
    uid: str  # IMAP UID (as text) or POP3 UIDL
    dedupe_key: str
    message_id: str = ""
    from_: list[Address] = field(default_factory=list)
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    subject: str = ""
    date: dt.datetime | None = None
    size: int = 0
    gmail_msgid: str = ""
    gmail_thrid: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    direction: str = DIRECTION_RECEIVED
    # read from the owner's Sent folder: sent mail whatever its From says, and its From
    # addresses are the owner's own sending identities (see Batch.sent_from)
    sent_folder: bool = False
    # Resent-From: who redirected (bounced) the message; in the Sent folder the owner
    resent_from: list[Address] = field(default_factory=list)

    def identities(self) -> list[Address]:
        """Who sent this Sent-folder message: the owner's own addresses, known or not.
        A message the owner redirected names them in Resent-From; its From is then the
        original sender (a customer, say), a participant as any other."""
        if not self.sent_folder:
            return []
        return self.resent_from or self.from_

    def participants(self, owner: frozenset[str] = frozenset()) -> set[str]:
        """Normalised participant addresses other than the owner's.

        From, To, Cc and Reply-To count, except the sending identities of mail of the
        Sent folder (see :meth:`identities`); Bcc only on the owner's own sent mail
        (elsewhere a Bcc header is not the owner's business).
        """
        groups = [self.to, self.cc, self.reply_to]
        if not self.sent_folder or self.resent_from:
            groups.append(self.from_)
        if self.direction == DIRECTION_SENT:
            groups.append(self.bcc)
        return {a.email for g in groups for a in g if a.email and a.email not in owner}


@dataclass
class ParsedMessage:
    """A fully downloaded and parsed customer email, ready to store: besides the parsed
    headers and bodies, :attr:`roles` (who took part, and how) and :attr:`preview`
    (the text a list shows), derived here so that no caller derives them again."""

    header: HeaderInfo
    thread_key: str
    participants: list[str] = field(default_factory=list)  # normalised, owner excluded
    body_text: str = ""
    body_html: str = ""  # raw HTML; the Odoo layer sanitises it
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    # Convenience pass-throughs so callers rarely reach into ``header``.
    @property
    def dedupe_key(self) -> str:
        return self.header.dedupe_key

    @property
    def roles(self) -> list[tuple[str, Address]]:
        """``(role, address)`` of each participant, once, by its first role in the order
        ``from``, ``to``, ``cc``, ``reply_to``, then ``bcc`` (only on the owner's *sent*
        mail). Only addresses among :attr:`participants` appear, so never the owner's
        nor, in the Sent folder, the sending identity.

        >>> head = HeaderInfo("INBOX", "1", "k", from_=[Address("a@x.io", "A")],
        ...                   to=[Address("me@y.io"), Address("b@x.io")],
        ...                   cc=[Address("a@x.io")], bcc=[Address("c@x.io")])
        >>> msg = ParsedMessage(head, "t", participants=["a@x.io", "b@x.io", "c@x.io"])
        >>> [(role, a.email) for role, a in msg.roles]
        [('from', 'a@x.io'), ('to', 'b@x.io')]
        """
        head = self.header
        groups = [("from", head.from_), ("to", head.to), ("cc", head.cc)]
        groups.append(("reply_to", head.reply_to))
        if head.direction == DIRECTION_SENT:
            groups.append(("bcc", head.bcc))
        wanted, seen, out = set(self.participants), set(), []
        for role, addresses in groups:
            for address in addresses:
                if address.email in wanted and address.email not in seen:
                    seen.add(address.email)
                    out.append((role, address))
        return out

    @property
    def preview(self) -> str:
        """The first :data:`.preview.PREVIEW_LENGTH` characters of the text a reader sees, white
        space collapsed: of the HTML body when there is one (never what a sanitiser drops:
        scripts, styles, the head, comments), else of the text body. See :mod:`.preview`.

        >>> ParsedMessage(HeaderInfo("INBOX", "1", "k"), "t", body_text="Hi\\n\\n  there").preview
        'Hi there'
        """
        return make_preview(self.body_text, self.body_html)


@dataclass
class Outcome:
    """What happened to one message: one of :data:`OUTCOMES` and a reason (never quoting
    the message: reasons are logged)."""

    folder: str
    uid: str
    status: str
    dedupe_key: str = ""
    reason: str = ""


@dataclass
class FolderCursor:
    """Per-folder progress.

    IMAP: every UID in ``[low, high]`` inside the back-fill window has been
    handled; ``backfill_done`` once nothing below ``low`` remains.
    POP3: ``seen`` holds the UIDLs already handled.
    Both: ``skipped`` holds the UIDs (as text) or UIDLs passed without being read
    because the sync kept dying at them (``Options.skip``): handled as far as the cursor
    goes, kept for a later retry (``Options.retry_skipped``).
    """

    uidvalidity: int = 0
    high: int = 0
    low: int = 0
    backfill_done: bool = False
    seen: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class SyncState:
    """The whole cursor of one mailbox: folder name → :class:`FolderCursor`."""

    folders: dict[str, FolderCursor] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            name: {
                "uidvalidity": c.uidvalidity,
                "high": c.high,
                "low": c.low,
                "backfill_done": c.backfill_done,
                "seen": list(c.seen),
                "skipped": list(c.skipped),
            }
            for name, c in self.folders.items()
        }

    @classmethod
    def from_json(cls, data: dict | None) -> SyncState:
        folders = {}
        for name, c in (data or {}).items():
            folders[name] = FolderCursor(
                uidvalidity=int(c.get("uidvalidity", 0)),
                high=int(c.get("high", 0)),
                low=int(c.get("low", 0)),
                backfill_done=bool(c.get("backfill_done", False)),
                seen=list(c.get("seen", [])),
                skipped=[str(u) for u in c.get("skipped", [])],  # absent before skipping existed
            )
        return cls(folders=folders)

    def clone(self) -> SyncState:
        return SyncState.from_json(self.to_json())


@dataclass
class Batch:
    """One unit of work handed to the caller.

    Store ``messages`` first, then persist ``state``: the state already
    covers every message of this batch, so persisting it before storing
    would lose mail and not persisting it after storing only means the
    batch comes again and is reported as duplicates.
    """

    folder: str
    messages: list[ParsedMessage]
    outcomes: list[Outcome]
    state: SyncState
    # normalised From addresses of this batch's Sent-folder headers (every header looked
    # at, stored or not) that are not owner addresses: identities the owner sends as,
    # to be offered as aliases; always empty for INBOX and POP3
    sent_from: frozenset[str] = frozenset()

    @property
    def counts(self) -> dict[str, int]:
        """``outcome -> number of messages`` of this batch, every outcome present.

        >>> Batch("INBOX", [], [Outcome("INBOX", "1", STORED)], SyncState()).counts
        {'stored': 1, 'not_customer': 0, 'duplicate': 0, 'unparseable': 0}
        """
        counts = dict.fromkeys(OUTCOMES, 0)
        for o in self.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        return counts


@dataclass
class SyncReport:
    """What one sync run did: counts per outcome and the batches handed over.

    ``finished`` is False when the run stopped at its deadline with mail left (the next
    run resumes from ``state``); ``state`` is the state of the last batch handed over,
    or the one the run started from when it handed over none.
    """

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    batches: int = 0
    finished: bool = True
    state: SyncState | None = None

    def add(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            self.counts[o.status] = self.counts.get(o.status, 0) + 1
