"""IMAP transport: connect, discover folders, search and fetch without touching flags.

Folders are opened with EXAMINE (read-only) and every fetch uses
``BODY.PEEK``, so the user's ``\\Seen`` flags never change.

The conversation takes as few round trips as the server allows: capabilities are
read from the greeting and the login answer when they carry them, the login is one
``AUTHENTICATE`` with its initial response (SASL-IR), one ``LIST ... RETURN (STATUS
...)`` (LIST-STATUS) answers the folders and their status, and LOGOUT is not waited
for. An idle mailbox on such a server (Dovecot, Gmail) costs TCP, TLS, AUTHENTICATE
and LIST; each extension falls back to the plain commands where it is missing.

Gmail's greeting carries no capabilities, but its list before login is known and stable
(:data:`KNOWN_GREETINGS`): it is assumed rather than asked. Should the assumption be
wrong, the AUTHENTICATE it chose is answered BAD, and CAPABILITY is asked after all.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import imaplib
import re
from dataclasses import dataclass

from .connection import XOAuth2, port_of, tls_context, xoauth2
from .errors import ProtocolError, SyncError, classify
from .mime import HEADER_FIELDS
from .types import SECURITY_NONE, SECURITY_STARTTLS, Account

_LIST_RE = re.compile(rb'\((?P<flags>[^)]*)\)\s+(?P<delim>"(?:[^"\\]|\\.)*"|NIL)\s+(?P<name>.+)$')
_ATTR_RE = {
    "uid": re.compile(rb"\bUID (\d+)"),
    "size": re.compile(rb"\bRFC822\.SIZE (\d+)"),
    "gm_msgid": re.compile(rb"\bX-GM-MSGID (\d+)"),
    "gm_thrid": re.compile(rb"\bX-GM-THRID (\d+)"),
    "internaldate": re.compile(rb'\bINTERNALDATE "([^"]+)"'),
}
# a body section answered inline with an empty string (``BODY[...] ""``), not NIL
_EMPTY_SECTION_RE = re.compile(rb'BODY\[[^\]]*\](?:<\d+>)? ""')
_INTERNALDATE_RE = re.compile(
    rb"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            b"jan",
            b"feb",
            b"mar",
            b"apr",
            b"may",
            b"jun",
            b"jul",
            b"aug",
            b"sep",
            b"oct",
            b"nov",
            b"dec",
        ],
        1,
    )
}
_STATUS_RE = re.compile(rb"(UIDNEXT|UIDVALIDITY|MESSAGES) (\d+)")
_NAME_RE = re.compile(rb'\s*("(?:[^"\\]|\\.)*"|[^\s(]+)')
# asked of LIST along with the folders where the server offers LIST-STATUS (RFC 5819)
_LIST_STATUS = "STATUS (UIDVALIDITY UIDNEXT)"
# Servers whose greeting carries no capabilities, by how its text begins, and what their
# CAPABILITY answers before login (the same for every account and client address).
KNOWN_GREETINGS = {
    b"Gimap ready": (
        "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 XYZZY SASL-IR"
        " AUTH=XOAUTH2 AUTH=PLAIN AUTH=PLAIN-CLIENTTOKEN AUTH=OAUTHBEARER AUTH=XOAUTH"
    ),
}
SENT_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Messages",
    "[Gmail]/Sent Mail",
    "Gesendet",
    "Gesendete Objekte",
    "Gesendete Elemente",
    "INBOX.Sent",
    "INBOX/Sent",
)


@dataclass
class FetchedItem:
    """One message of a FETCH response: its UID, attributes and literal."""

    uid: int
    data: bytes = b""
    size: int = 0
    gm_msgid: str = ""
    gm_thrid: str = ""
    internaldate_raw: bytes = b""
    # False when the response carried no body section: ``BODY[] NIL`` (the message was
    # expunged meanwhile) or an unsolicited ``FETCH (UID n FLAGS (...))`` for a flag change
    has_body: bool = True

    @property
    def internaldate(self) -> dt.datetime | None:
        """INTERNALDATE (``17-Jul-1996 02:44:25 -0700``) as an aware UTC datetime."""
        m = _INTERNALDATE_RE.match(self.internaldate_raw)
        if not m:
            return None
        day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
        try:
            offset = dt.timedelta(hours=int(zh), minutes=int(zm)) * (-1 if sign == b"-" else 1)
            when = dt.datetime(
                int(year),
                _MONTHS[mon.lower()],
                int(day),
                int(hh),
                int(mm),
                int(ss),
                tzinfo=dt.timezone(offset),
            )
        except (KeyError, ValueError):
            return None
        return when.astimezone(dt.timezone.utc)


def quote(name: str) -> str:
    """Quote a mailbox name for an IMAP command.

    >>> quote('[Gmail]/Sent Mail')
    '"[Gmail]/Sent Mail"'
    """
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uid_set(uids) -> str:
    """Compress UIDs into an IMAP sequence set.

    >>> uid_set([5, 1, 2, 3, 9])
    '1:3,5,9'
    """
    ordered = sorted(set(uids))
    parts, start, prev = [], None, None
    for uid in ordered:
        if start is None:
            start = prev = uid
        elif uid == prev + 1:
            prev = uid
        else:
            parts.append(f"{start}:{prev}" if prev != start else str(start))
            start = prev = uid
    if start is not None:
        parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def parse_fetch(data) -> list[FetchedItem]:
    """Parse imaplib's FETCH data (tuples of prefix + literal, then trailers).

    Attributes may come before or after the literal (Gmail puts some after),
    so prefix and trailer are read together.
    """
    items: list[list] = []
    for part in data or []:
        if isinstance(part, tuple):
            items.append([part[0], part[1]])
        elif isinstance(part, (bytes, bytearray)):
            part = bytes(part)
            if part[:1].isdigit():  # a response without a literal
                items.append([part, None])
            elif items:
                items[-1][0] += b" " + part
    out = []
    for meta, literal in items:
        found = {k: r.search(meta) for k, r in _ATTR_RE.items()}
        if not found["uid"]:
            continue
        out.append(
            FetchedItem(
                uid=int(found["uid"].group(1)),
                data=literal or b"",
                has_body=literal is not None or bool(_EMPTY_SECTION_RE.search(meta)),
                size=int(found["size"].group(1)) if found["size"] else len(literal or b""),
                gm_msgid=found["gm_msgid"].group(1).decode() if found["gm_msgid"] else "",
                gm_thrid=found["gm_thrid"].group(1).decode() if found["gm_thrid"] else "",
                internaldate_raw=found["internaldate"].group(1) if found["internaldate"] else b"",
            )
        )
    return out


def parse_status(data) -> dict[str, tuple[int, int]]:
    """``{folder: (UIDVALIDITY, UIDNEXT)}`` from imaplib's untagged STATUS data.

    A name comes as an atom, quoted, or as a literal (a tuple; its items follow in the
    next part). ``INBOX`` is spelt in capitals whatever the server's case; a folder
    whose answer lacks either value is left out.

    >>> parse_status([b'inbox (UIDNEXT 5 UIDVALIDITY 9)', b'"Sent \\\\"x\\\\"" (UIDVALIDITY 3)',
    ...               (b'{4}', b'Gesendet'[:4]), b' (UIDVALIDITY 7 UIDNEXT 2)'])
    {'INBOX': (9, 5), 'Gese': (7, 2)}
    """
    out: dict[str, tuple[int, int]] = {}
    literal = None
    for part in data or []:
        if isinstance(part, tuple):
            literal = bytes(part[1])
            continue
        part = bytes(part or b"")
        if literal is not None:
            name, items, literal = literal, part, None
        else:
            m = _NAME_RE.match(part)
            if not m:
                continue
            name, items = _unquote(m.group(1)), part[m.end() :]
        values = {k: int(v) for k, v in _STATUS_RE.findall(items)}
        if b"UIDVALIDITY" in values and b"UIDNEXT" in values:
            out[_folder_key(name.decode("utf-8", "replace"))] = (
                values[b"UIDVALIDITY"],
                values[b"UIDNEXT"],
            )
    return out


def _unquote(raw: bytes) -> bytes:
    r"""A mailbox name as sent: quoted strings unescaped, atoms as they are.

    >>> _unquote(b'"a \\"b\\" \\\\ c"'), _unquote(b"INBOX")
    (b'a "b" \\ c', b'INBOX')
    """
    if raw.startswith(b'"') and raw.endswith(b'"') and len(raw) > 1:
        return re.sub(rb"\\(.)", rb"\1", raw[1:-1])
    return raw


def _folder_key(name: str) -> str:
    return "INBOX" if name.upper() == "INBOX" else name


def _announced(conn) -> tuple[str, ...] | None:
    """The capabilities the server volunteered since they were last asked (a ``[CAPABILITY
    ...]`` response code or an untagged ``CAPABILITY``), in capitals; ``None`` if none."""
    data = conn.untagged_responses.pop("CAPABILITY", None)
    if not data or not isinstance(data[-1], bytes):
        return None
    # imaplib keeps a response code's text up to the line's last "]": cut at the first
    words = data[-1].split(b"]", 1)[0].decode("ascii", "replace").upper().split()
    return tuple(words) or None


def _assumed(welcome) -> tuple[str, ...] | None:
    """The capabilities :data:`KNOWN_GREETINGS` gives for a greeting line (as imaplib keeps
    it in ``welcome``) that carries none, in capitals; ``None`` for any other greeting.

    >>> _assumed(b"* OK Gimap ready for requests from 192.0.2.7 q3mb9270158wrb")[:2]
    ('IMAP4REV1', 'UNSELECT')
    >>> _assumed(b"* OK Dovecot ready."), _assumed(b"* OK [CAPABILITY IMAP4rev1] Gimap ready")
    (None, None)
    """
    text = bytes(welcome or b"").removeprefix(b"* OK ")
    for start, capabilities in KNOWN_GREETINGS.items():
        if text.startswith(start):
            return tuple(capabilities.upper().split())
    return None


class _NotUnderstood(imaplib.IMAP4.error):
    """An AUTHENTICATE answered BAD: the server could not parse it, as one without SASL-IR
    cannot parse an initial response. The text is imaplib's own for a BAD."""


class _Challenges:
    """Answers to the challenges of a SASL exchange begun with its initial response.

    The first gets an empty line: on a refused token Gmail (and the test Dovecot) sends a
    JSON error as a challenge and waits for it before the ``NO``. A second one cancels the
    exchange (``*``, RFC 3501 6.2.2), after which a server must answer; a third raises.

    >>> answer = _Challenges().answer
    >>> answer(b"eyJzdGF0dXMiOiI0MDAifQ=="), answer(b"")
    (b'', b'*')
    """

    def __init__(self):
        self.seen = 0

    def answer(self, challenge: bytes) -> bytes:
        self.seen += 1
        if self.seen > 2:
            raise imaplib.IMAP4.error("the server went on challenging a cancelled login")
        return b"" if self.seen == 1 else b"*"


class _FewerRoundTrips:
    """What the transport adds to imaplib's ``IMAP4`` and ``IMAP4_SSL`` (see :func:`_client`)."""

    #: ``capabilities`` are what :data:`KNOWN_GREETINGS` says, not what the server said
    capabilities_assumed = False

    def _get_capabilities(self):
        # imaplib asks CAPABILITY after the greeting and after STARTTLS. A greeting's
        # [CAPABILITY ...] code answers it already, a known greeting without one is taken
        # at its word; after STARTTLS (a command has been sent) the list learnt before TLS
        # must be discarded and asked again (RFC 3501 6.2.1).
        announced = assumed = None
        if self.tagnum == 0:
            announced = _announced(self)
            if announced is None:
                announced = assumed = _assumed(self.welcome)
        if announced is None:
            self.ask_capabilities()
        else:
            self.capabilities = announced
            self.capabilities_assumed = assumed is not None

    def ask_capabilities(self) -> None:
        """Send CAPABILITY: ``capabilities`` become what the server answers."""
        self.capabilities_assumed = False
        super()._get_capabilities()

    def starttls(self, ssl_context=None):
        # whether STARTTLS is offered is the server's word, never an assumption's
        if self.capabilities_assumed:
            self.ask_capabilities()
        return super().starttls(ssl_context)

    def authenticate_ir(self, mechanism: str, initial: bytes):
        """AUTHENTICATE with the initial response on the command line (SASL-IR, RFC 4959).

        A challenge sent all the same is answered as :class:`_Challenges` says. Refused
        (``NO``): raises ``self.error`` with the server's text, as imaplib's ``authenticate``
        does; not understood (``BAD``): raises :class:`_NotUnderstood`, a ``self.error`` with
        imaplib's text; accepted: the state is ``AUTH``.
        """
        self.literal = _Challenges().answer  # imaplib calls a bound method for each challenge
        response = base64.b64encode(initial).decode("ascii") or "="
        try:
            typ, dat = self._simple_command("AUTHENTICATE", mechanism, response)
        except self.abort:
            raise
        except self.error as exc:
            # imaplib says a BAD only in its text: "<command> command error: BAD [...]"
            if str(exc).startswith("AUTHENTICATE command error: BAD "):
                raise _NotUnderstood(*exc.args) from None
            raise
        if typ != "OK":
            raise self.error(dat[-1].decode("utf-8", "replace"))
        self.state = "AUTH"
        return typ, dat

    def logout_unanswered(self) -> None:
        """Send LOGOUT and close the socket at once, without reading its BYE and OK."""
        self.state = "LOGOUT"
        try:
            self._command("LOGOUT")
        finally:
            self.shutdown()


@functools.cache
def _client(base: type) -> type:
    """``base`` (``imaplib.IMAP4`` or ``IMAP4_SSL``) with :class:`_FewerRoundTrips`.

    Built on first use from the class imaplib has then, so a stand-in patched over
    ``imaplib.IMAP4_SSL`` (as the Odoo suite does) is still the one connecting.
    """
    return type(base.__name__, (_FewerRoundTrips, base), {})


class ImapTransport:
    """A connected IMAP session for one account. Use as a context manager."""

    def __init__(self, account: Account):
        self.account = account
        self.conn: imaplib.IMAP4 | None = None
        self.capabilities: frozenset[str] = frozenset()
        self._statuses: dict[str, tuple[int, int]] = {}  # from the last LIST, see status()

    # ------------------------------------------------------------ session
    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self) -> None:
        """Open the connection and authenticate; raises a classified :class:`SyncError`.

        Passwords go as ``AUTHENTICATE PLAIN`` with the initial response where the server
        offers SASL-IR and AUTH=PLAIN, else as ``LOGIN``; tokens as ``AUTHENTICATE XOAUTH2``,
        with the initial response where SASL-IR is offered. Where the offer was assumed
        from a known greeting and the AUTHENTICATE is answered BAD, CAPABILITY is asked and
        the login made once more as its answer says; a ``NO`` is a refusal either way.
        """
        acc = self.account
        try:
            if acc.security == SECURITY_NONE or acc.security == SECURITY_STARTTLS:
                self.conn = _client(imaplib.IMAP4)(acc.host, port_of(acc), timeout=acc.timeout)
                if acc.security == SECURITY_STARTTLS:
                    self.conn.starttls(ssl_context=tls_context(acc))
            else:
                self.conn = _client(imaplib.IMAP4_SSL)(
                    acc.host, port_of(acc), ssl_context=tls_context(acc), timeout=acc.timeout
                )
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise classify(exc) from None
        try:
            assumed = self.conn.capabilities_assumed
            try:
                offered = self._log_in()
            except _NotUnderstood:
                if not assumed:
                    raise
                self.conn.ask_capabilities()
                assumed = False
                offered = self._log_in()
            # an assumed list is no word of this server's: only what it says after login counts
            self.capabilities = (frozenset() if assumed else offered) | self._fresh_capabilities()
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise classify(exc, during_login=True) from None

    def _log_in(self) -> frozenset[str]:
        """Authenticate as ``conn.capabilities`` say; return them, in capitals."""
        acc = self.account
        offered = frozenset(c.upper() for c in (self.conn.capabilities or ()))
        if acc.oauth_token:
            if "SASL-IR" in offered:
                self.conn.authenticate_ir("XOAUTH2", xoauth2(acc.login, acc.oauth_token))
            else:
                self.conn.authenticate("XOAUTH2", XOAuth2(acc.login, acc.oauth_token))
        elif "SASL-IR" in offered and "AUTH=PLAIN" in offered:
            plain = f"\0{acc.login}\0{acc.password or ''}".encode()
            self.conn.authenticate_ir("PLAIN", plain)
        else:
            self.conn.login(acc.login, acc.password or "")
        return offered

    def _fresh_capabilities(self) -> frozenset[str]:
        # Servers announce more capabilities after login (RFC 3501 6.2.3), most of them
        # in the login's answer; only a server that did not is asked.
        announced = _announced(self.conn)
        if announced is not None:
            return frozenset(announced)
        typ, data = self.conn.capability()
        if typ != "OK" or not data or not data[-1]:
            return frozenset()
        return frozenset(c.upper() for c in data[-1].decode("ascii", "replace").split())

    def close(self) -> None:
        """Log out without waiting for the answer, and close; never raises.

        Folders are only ever EXAMINEd, so there is nothing a CLOSE would expunge first.
        """
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.logout_unanswered()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass

    @property
    def is_gmail(self) -> bool:
        return "X-GM-EXT-1" in self.capabilities

    def _call(self, func, *args):
        try:
            typ, data = func(*args)
        except SyncError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise classify(exc) from None
        if typ != "OK":
            raise ProtocolError(server_text=data)
        return data

    # ------------------------------------------------------------ folders
    def list_folders(self) -> list[tuple[str, frozenset[str]]]:
        """All folders as ``(raw name, flags)``; names stay in modified UTF-7.

        Where the server offers LIST-STATUS, the same command brings each folder's
        ``(UIDVALIDITY, UIDNEXT)``, kept for the next :meth:`status` of that folder. A
        server that refuses an extended LIST gets the plainer one.
        """
        self._statuses = {}
        special_use = "SPECIAL-USE" in self.capabilities or "LIST-EXTENDED" in self.capabilities
        data = None
        if "LIST-STATUS" in self.capabilities:
            data = self._list_returning(("SPECIAL-USE " if special_use else "") + _LIST_STATUS)
        if data is None and special_use:
            data = self._list_returning("SPECIAL-USE")
        if data is None:
            data = self._call(self.conn.list)
        out = []
        for line in data:
            if isinstance(line, tuple):  # name sent as a literal
                line = line[0].rsplit(b"{", 1)[0] + b'"' + line[1] + b'"'
            m = _LIST_RE.match(line or b"")
            if not m:
                continue
            name = _unquote(m.group("name").strip())
            flags = frozenset(f.lower() for f in m.group("flags").decode().split())
            out.append((name.decode("utf-8", "replace"), flags))
        return out

    def _list_returning(self, options: str) -> list | None:
        """``LIST "" "*" RETURN (options)``'s LIST data, or ``None`` if the server refused it.

        STATUS answers that come with it are kept for :meth:`status`.
        """
        untagged = self.conn.untagged_responses
        untagged.pop("STATUS", None)  # left over from elsewhere: not this LIST's
        try:
            data = self._call(self.conn.list, '""', f'"*" RETURN ({options})')
        except ProtocolError:
            return None
        finally:
            statuses = untagged.pop("STATUS", None)
        self._statuses = parse_status(statuses)
        return data

    def sync_folders(self) -> list[str]:
        """``["INBOX", sent]``: INBOX first, then the Sent folder if there is one (by
        ``\\Sent`` special use, else a known name). The sync treats the second as Sent."""
        folders = self.list_folders()
        names = [n for n, _ in folders]
        sent = next((n for n, f in folders if "\\sent" in f), None)
        if sent is None:
            sent = next((n for n in SENT_NAMES if n in names), None)
        return ["INBOX"] + ([sent] if sent and sent.upper() != "INBOX" else [])

    def status(self, folder: str) -> tuple[int, int]:
        """``(UIDVALIDITY, UIDNEXT)`` of a folder without selecting it.

        The first call after :meth:`list_folders` (or :meth:`sync_folders`) answers from
        what LIST-STATUS brought, if it did; any other asks the server.
        """
        known = self._statuses.pop(_folder_key(folder), None)
        if known is not None:
            return known
        data = self._call(self.conn.status, quote(folder), "(UIDVALIDITY UIDNEXT)")
        values = {
            k.decode(): int(v)
            for k, v in _STATUS_RE.findall(
                b" ".join(d if isinstance(d, bytes) else d[0] for d in data)
            )
        }
        return values.get("UIDVALIDITY", 0), values.get("UIDNEXT", 0)

    def examine(self, folder: str) -> tuple[int, int]:
        """Open a folder read-only; return ``(UIDVALIDITY, UIDNEXT)``."""
        self._call(self.conn.select, quote(folder), True)
        validity = self.conn.untagged_responses.get("UIDVALIDITY", [b"0"])[-1]
        uidnext = self.conn.untagged_responses.get("UIDNEXT", [b"0"])[-1]
        return int(validity), int(uidnext)

    # ------------------------------------------------------------ messages
    def search(self, *criteria: str) -> list[int]:
        data = self._call(self.conn.uid, "SEARCH", *criteria)
        return sorted({int(x) for x in b" ".join(d for d in data if d).split()})

    def uids_above(self, uid: int) -> list[int]:
        """UIDs greater than ``uid`` (``n:*`` also matches the last message: filtered)."""
        return [u for u in self.search("UID", f"{uid + 1}:*") if u > uid]

    def uids_since(self, since: dt.date | None) -> list[int]:
        if since is None:
            return self.search("ALL")
        return self.search("SINCE", since.strftime("%d-%b-%Y"))

    def fetch_headers(self, uids: list[int]) -> list[FetchedItem]:
        """Header fields the header-first decision needs (plus Gmail ids), peeked."""
        gm = " X-GM-MSGID X-GM-THRID" if self.is_gmail else ""
        fields = " ".join(HEADER_FIELDS)
        spec = f"(UID RFC822.SIZE INTERNALDATE{gm} BODY.PEEK[HEADER.FIELDS ({fields})])"
        items = parse_fetch(self._call(self.conn.uid, "FETCH", uid_set(uids), spec))
        return [item for item in items if item.has_body]  # expunged meanwhile: gone

    def fetch_bodies(self, uids: list[int]) -> dict[int, bytes]:
        """Whole raw messages, peeked (flags untouched)."""
        data = self._call(self.conn.uid, "FETCH", uid_set(uids), "(UID BODY.PEEK[])")
        # an expunged message answers ``BODY[] NIL``: left out, the caller reports it removed
        return {item.uid: item.data for item in parse_fetch(data) if item.has_body}

    # ------------------------------------------------------------ the Sent copy
    def sent_folder(self) -> str | None:
        """The Sent folder (``\\Sent`` special use, else a known name), or None."""
        folders = self.sync_folders()
        return folders[1] if len(folders) > 1 else None

    def append(self, folder: str, raw: bytes, when: dt.datetime | None = None) -> None:
        """Store ``raw`` in ``folder``, marked read (an email we sent is no unread mail)."""
        stamp = imaplib.Time2Internaldate((when or dt.datetime.now(dt.timezone.utc)).timestamp())
        self._call(self.conn.append, quote(folder), "(\\Seen)", stamp, raw)

    def find_message_id(self, folder: str, message_id: str) -> list[int]:
        """The UIDs of the emails with this Message-ID in ``folder`` (opened read-only:
        no flag changes)."""
        self.examine(folder)
        return self.search("HEADER", "Message-ID", quote(message_id))
