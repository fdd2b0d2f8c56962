"""The sync run: plan what to fetch, decide header-first, hand batches to the caller.

Usage (the caller owns storage and the persisted cursor)::

    for batch in sync_mailbox(account, state, customer_filter, known_keys):
        store(batch.messages)       # e.g. one create() for the whole batch
        persist(batch.state)        # only after the messages are stored

A crash or dropped connection anywhere leaves the persisted state at the last
stored batch: the next run fetches the rest again, and messages that were
stored but whose state was not persisted come back as duplicates (the caller's
``known_keys`` knows them), never twice as mail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .addresses import normalize_set
from .errors import SyncError, classify
from .mime import parse_headers, parse_message
from .transport_imap import ImapTransport
from .transport_pop3 import Pop3Transport
from .types import (
    DUPLICATE,
    NOT_CUSTOMER,
    PROTOCOL_POP3,
    STORED,
    UNPARSEABLE,
    Account,
    Batch,
    FolderCursor,
    HeaderInfo,
    Outcome,
    SyncState,
)

CustomerFilter = Callable[[set], set]
KnownKeys = Callable[[list], set]
POP3_FOLDER = "INBOX"


@dataclass
class Options:
    """Tuning of a run. ``since_days`` bounds a first sync (0 = everything)."""

    since_days: int = 90
    batch_size: int = 500
    batch_bytes: int = 32 * 1024 * 1024
    now: dt.datetime | None = None

    def since(self) -> dt.date | None:
        if not self.since_days:
            return None
        now = self.now or dt.datetime.now(dt.timezone.utc)
        return (now - dt.timedelta(days=self.since_days)).date()


def owner_addresses(account: Account) -> frozenset[str]:
    """The owner's normalised addresses: the configured ones and the login if it is one."""
    return normalize_set(account.owner_addresses) | normalize_set([account.login])


def check_connection(account: Account) -> dict:
    """Connect, log in and list what would be synced.

    Returns ``{"folders": [...], "gmail": bool}``; raises :class:`SyncError`.
    """
    if account.protocol == PROTOCOL_POP3:
        with Pop3Transport(account) as tr:
            return {"folders": [POP3_FOLDER], "gmail": False, "messages": len(tr.uidl())}
    with ImapTransport(account) as tr:
        return {"folders": tr.sync_folders(), "gmail": tr.is_gmail}


def sync_mailbox(
    account: Account,
    state: SyncState | None,
    customer_filter: CustomerFilter,
    known_keys: KnownKeys | None = None,
    options: Options | None = None,
) -> Iterator[Batch]:
    """Yield :class:`Batch` es of new mail, INBOX then Sent, each with the state after it.

    All mail of the IMAP Sent folder is *sent*; its From addresses are the owner's
    identities: never participants, and those not among the owner addresses are
    reported in ``Batch.sent_from`` (aliases to offer). POP3 has no Sent folder.
    ``customer_filter(addresses)`` gets the normalised participant addresses of
    a whole batch (owner excluded) and returns those that belong to customers;
    ``known_keys(keys)`` returns the dedupe keys already stored. Each is called
    once per header batch. Non-customer mail is never downloaded. Raises
    :class:`SyncError` on connection, login or protocol failure; the batches
    yielded before stay valid.
    """
    run = _Run(account, state, customer_filter, known_keys, options or Options())
    try:
        if account.protocol == PROTOCOL_POP3:
            with Pop3Transport(account) as tr:
                yield from run.pop3(tr)
        else:
            with ImapTransport(account) as tr:
                yield from run.imap(tr)
    except SyncError:
        raise
    except (OSError, EOFError) as exc:
        raise classify(exc) from None


class _Run:
    def __init__(self, account, state, customer_filter, known_keys, options):
        self.account = account
        self.state = state.clone() if state else SyncState()
        self.customer_filter = customer_filter
        self.known_keys = known_keys
        self.opts = options
        self.owner = owner_addresses(account)
        self.run_keys: set[str] = set()
        self._yielded = self.state.to_json()  # the state the caller last received

    # ---------------------------------------------------------------- IMAP
    def imap(self, tr: ImapTransport) -> Iterator[Batch]:
        for i, folder in enumerate(tr.sync_folders()):  # INBOX, then the Sent folder
            yield from self._imap_folder(tr, folder, sent_folder=i == 1)

    def _imap_folder(
        self, tr: ImapTransport, folder: str, sent_folder: bool = False
    ) -> Iterator[Batch]:
        cur = self.state.folders.get(folder)
        validity, uidnext = tr.status(folder)
        if cur is not None and cur.uidvalidity == validity and cur.backfill_done:
            if uidnext and uidnext - 1 <= cur.high:
                return  # nothing new: no SELECT, no SEARCH
        validity, uidnext = tr.examine(folder)
        if cur is None or cur.uidvalidity != validity:
            cur = FolderCursor(uidvalidity=validity)  # first sync, or a re-scan
        self.state.folders[folder] = cur
        top = uidnext - 1 if uidnext else None  # UIDs up to here existed when we looked

        def fetch_headers(uids):
            heads = {}
            for item in tr.fetch_headers(uids):
                # date = arrival time until the full parse reads the Date header
                heads[item.uid] = self._header(
                    folder,
                    item.uid,
                    item.data,
                    item.size,
                    item.gm_msgid,
                    item.gm_thrid,
                    arrival=item.internaldate,
                    decide_only=True,
                    sent_folder=sent_folder,
                )
            return heads

        if cur.high or cur.backfill_done:  # incremental: everything above high, oldest first
            new = tr.uids_above(cur.high)
            for keys, msgs, outs, sent_from, _last in self._work(
                folder, new, fetch_headers, tr.fetch_bodies
            ):
                cur.high = max(cur.high, *keys)
                yield self._batch(folder, msgs, outs, sent_from)
        first = cur.high == 0
        cur.high = max(cur.high, top or 0)
        if not cur.backfill_done:  # back-fill window, newest first, below low
            window = tr.uids_since(self.opts.since())
            window = [u for u in window if (first or u < cur.low) and (top is None or u <= top)]
            window.sort(reverse=True)
            cur.backfill_done = not window
            for keys, msgs, outs, sent_from, last in self._work(
                folder, window, fetch_headers, tr.fetch_bodies
            ):
                cur.high = max(cur.high, *keys)
                cur.low = min(keys)
                cur.backfill_done = last
                yield self._batch(folder, msgs, outs, sent_from)
        if self.state.to_json() != self._yielded:
            yield self._batch(folder, [], [])  # persist the cursor's own progress

    # ---------------------------------------------------------------- POP3
    def pop3(self, tr: Pop3Transport) -> Iterator[Batch]:
        folder = POP3_FOLDER
        listing = tr.uidl()
        cur = self.state.folders.get(folder) or FolderCursor()
        present = {u for _, u in listing}
        cur.seen = [u for u in cur.seen if u in present]  # forget what the server dropped
        self.state.folders[folder] = cur
        seen = set(cur.seen)
        number = {u: n for n, u in listing}
        todo = [u for _, u in reversed(listing) if u not in seen]  # newest first
        since = None if cur.backfill_done else self.opts.since()
        sizes = tr.sizes() if todo else {}

        def fetch_headers(uidls):
            out = {}
            for u in uidls:
                head = self._header(folder, u, tr.headers(number[u]), sizes.get(number[u], 0))
                if (
                    since
                    and isinstance(head, HeaderInfo)
                    and head.date
                    and head.date.date() < since
                ):
                    continue  # outside the first sync's window: left alone
                out[u] = head
            return out

        def fetch_bodies(uidls):
            return {u: tr.message(number[u]) for u in uidls}

        for keys, msgs, outs, _sent_from, last in self._work(
            folder, todo, fetch_headers, fetch_bodies
        ):
            cur.seen.extend(keys)
            cur.backfill_done = cur.backfill_done or last
            yield self._batch(folder, msgs, outs)
        cur.backfill_done = True
        if self.state.to_json() != self._yielded:
            yield self._batch(folder, [], [])

    # ---------------------------------------------------------------- shared
    def _header(
        self,
        folder,
        uid,
        data,
        size,
        gm_msgid="",
        gm_thrid="",
        arrival=None,
        decide_only=False,
        sent_folder=False,
    ):
        try:
            return parse_headers(
                data,
                folder=folder,
                uid=str(uid),
                owner=self.owner,
                gmail_msgid=gm_msgid,
                gmail_thrid=gm_thrid,
                size=size,
                fallback_date=arrival,
                decide_only=decide_only,
                sent_folder=sent_folder,
            )
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            return Outcome(folder, str(uid), UNPARSEABLE, reason=_reason("headers", exc))

    def _decide(self, folder, heads: dict) -> tuple[dict, dict]:
        """Split one header batch into accepted headers and final outcomes."""
        infos = {k: h for k, h in heads.items() if isinstance(h, HeaderInfo)}
        outcomes = {k: h for k, h in heads.items() if isinstance(h, Outcome)}
        parts = {k: h.participants(self.owner) for k, h in infos.items()}
        wanted = set().union(*parts.values()) if parts else set()
        customers = set(self.customer_filter(wanted)) if wanted else set()
        keys = [h.dedupe_key for h in infos.values()]
        known = set(self.known_keys(keys)) if self.known_keys and keys else set()
        accepted = {}
        for k, h in infos.items():
            if h.dedupe_key in known or h.dedupe_key in self.run_keys:
                outcomes[k] = Outcome(folder, h.uid, DUPLICATE, h.dedupe_key)
            elif parts[k] & customers:
                self.run_keys.add(h.dedupe_key)
                accepted[k] = h
            else:
                outcomes[k] = Outcome(folder, h.uid, NOT_CUSTOMER, h.dedupe_key)
        return accepted, outcomes

    def _work(self, folder, order: list, fetch_headers, fetch_bodies) -> Iterable:
        """Process keys in ``order``: yield ``(keys covered, messages, outcomes, sent_from,
        is_last)``.

        Header batches hold ``batch_size`` keys; a header batch is split further
        so that the bodies of one yielded batch stay under ``batch_bytes``.
        ``sent_from``: see :attr:`Batch.sent_from`, from the headers of the keys covered.
        """
        size = max(1, self.opts.batch_size)
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            heads = fetch_headers(chunk)
            accepted, outcomes = self._decide(folder, heads)
            groups, group, weight = [], [], 0
            for key in chunk:
                group.append(key)
                if key in accepted:
                    weight += accepted[key].size
                    if weight >= self.opts.batch_bytes:
                        groups.append(group)
                        group, weight = [], 0
            if group:
                groups.append(group)
            last_chunk = start + size >= len(order)
            for i, keys in enumerate(groups):
                want = [k for k in keys if k in accepted]
                bodies = fetch_bodies(want) if want else {}
                messages, outs = [], []
                for key in keys:
                    if key in accepted:
                        msg, out = self._parse(folder, accepted[key], bodies.get(key))
                        if msg is not None:
                            messages.append(msg)
                        outs.append(out)
                    elif key in outcomes:
                        outs.append(outcomes[key])
                sent_from = self._sent_from(heads.get(key) for key in keys)
                yield keys, messages, outs, sent_from, last_chunk and i == len(groups) - 1

    def _sent_from(self, heads) -> frozenset[str]:
        """The From addresses of Sent-folder headers that are not owner addresses."""
        return frozenset(
            a.email
            for h in heads
            if isinstance(h, HeaderInfo)
            for a in h.identities()
            if a.email and a.email not in self.owner
        )

    def _parse(self, folder, head: HeaderInfo, raw: bytes | None):
        if raw is None:
            reason = "the message was removed from the server before it could be read"
            return None, Outcome(folder, head.uid, UNPARSEABLE, head.dedupe_key, reason)
        try:
            msg = parse_message(
                raw,
                folder=folder,
                uid=head.uid,
                owner=self.owner,
                gmail_msgid=head.gmail_msgid,
                gmail_thrid=head.gmail_thrid,
                fallback_date=head.date,
                sent_folder=head.sent_folder,
            )
        except Exception as exc:  # noqa: BLE001 - reported, the batch goes on
            return None, Outcome(
                folder, head.uid, UNPARSEABLE, head.dedupe_key, _reason("body", exc)
            )
        msg.header.dedupe_key = head.dedupe_key  # the key the decision was made on
        msg.header.size = head.size or len(raw)
        msg.participants = sorted(msg.header.participants(self.owner))
        return msg, Outcome(folder, head.uid, STORED, head.dedupe_key)

    def _batch(self, folder, messages, outcomes, sent_from=frozenset()) -> Batch:
        self._yielded = self.state.to_json()  # serialised once: compared and copied from
        state = SyncState.from_json(self._yielded)
        return Batch(
            folder=folder, messages=messages, outcomes=outcomes, state=state, sent_from=sent_from
        )


def _reason(part: str, exc: Exception) -> str:
    """Why a message could not be parsed, without quoting it: reasons end up in logs,
    and an exception's text may hold a piece of the mail (a private mailbox's, too).

    >>> _reason("headers", ValueError("invalid literal for int(): 'merger plan'"))
    'headers: ValueError'
    """
    return f"{part}: {type(exc).__name__}"
