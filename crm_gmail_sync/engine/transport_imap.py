"""IMAP transport: connect, discover folders, search and fetch without touching flags.

Folders are opened with EXAMINE (read-only) and every fetch uses
``BODY.PEEK``, so the user's ``\\Seen`` flags never change.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import re
from dataclasses import dataclass

from .connection import XOAuth2, port_of, tls_context
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


class ImapTransport:
    """A connected IMAP session for one account. Use as a context manager."""

    def __init__(self, account: Account):
        self.account = account
        self.conn: imaplib.IMAP4 | None = None
        self.capabilities: frozenset[str] = frozenset()

    # ------------------------------------------------------------ session
    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self) -> None:
        """Open the connection and authenticate; raises a classified :class:`SyncError`."""
        acc = self.account
        try:
            if acc.security == SECURITY_NONE or acc.security == SECURITY_STARTTLS:
                self.conn = imaplib.IMAP4(acc.host, port_of(acc), timeout=acc.timeout)
                if acc.security == SECURITY_STARTTLS:
                    self.conn.starttls(ssl_context=tls_context(acc))
            else:
                self.conn = imaplib.IMAP4_SSL(
                    acc.host, port_of(acc), ssl_context=tls_context(acc), timeout=acc.timeout
                )
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise classify(exc) from None
        try:
            if acc.oauth_token:
                self.conn.authenticate("XOAUTH2", XOAuth2(acc.login, acc.oauth_token))
            else:
                self.conn.login(acc.login, acc.password or "")
            self.capabilities = (
                frozenset(c.upper() for c in (self.conn.capabilities or ()))
                | self._fresh_capabilities()
            )
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise classify(exc, during_login=True) from None

    def _fresh_capabilities(self) -> frozenset[str]:
        # Servers announce more capabilities after login (RFC 3501 6.2.3).
        typ, data = self.conn.capability()
        if typ != "OK" or not data:
            return frozenset()
        return frozenset(c.upper() for c in data[0].decode("ascii", "replace").split())

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            if conn.state == "SELECTED":
                conn.close()
            conn.logout()
        except Exception:  # noqa: BLE001 - closing a broken connection
            try:
                conn.shutdown()
            except Exception:  # noqa: BLE001
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
        """All folders as ``(raw name, flags)``; names stay in modified UTF-7."""
        if "SPECIAL-USE" in self.capabilities or "LIST-EXTENDED" in self.capabilities:
            try:
                data = self._call(self.conn.list, '""', "* RETURN (SPECIAL-USE)")
            except ProtocolError:
                data = self._call(self.conn.list)
        else:
            data = self._call(self.conn.list)
        out = []
        for line in data:
            if isinstance(line, tuple):  # name sent as a literal
                line = line[0].rsplit(b"{", 1)[0] + b'"' + line[1] + b'"'
            m = _LIST_RE.match(line or b"")
            if not m:
                continue
            name = m.group("name").strip()
            if name.startswith(b'"'):
                name = name[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
            flags = frozenset(f.lower() for f in m.group("flags").decode().split())
            out.append((name.decode("utf-8", "replace"), flags))
        return out

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
        """``(UIDVALIDITY, UIDNEXT)`` of a folder without selecting it."""
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
