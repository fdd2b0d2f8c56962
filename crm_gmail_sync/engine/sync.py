"""The sync run: plan what to fetch, decide header-first, hand batches to the caller.

Usage: the caller implements the :class:`~.port.MailboxPort` (which addresses are
customers, which messages it has, store a batch) and calls :func:`run_sync`::

    report = run_sync(account, state, port, Options(deadline=clock() + 600))

or iterates the batches itself (``store`` then ``persist`` is what ``port.store`` does)::

    for batch in sync_mailbox(account, state, customer_filter, known_keys):
        store(batch.messages)       # e.g. one create() for the whole batch
        persist(batch.state)        # only after the messages are stored

A crash or dropped connection anywhere leaves the persisted state at the last
stored batch: the next run fetches the rest again, and messages that were
stored but whose state was not persisted come back as duplicates (the caller's
``known_keys`` knows them), never twice as mail. A run that reaches its
``Options.deadline`` stops the same way, between two batches, after handing over
the cursor's progress: the next run resumes there (see :mod:`.planner`).

A message at which runs keep dying (the worker killed by the system while it
downloads or parses its headers or its body) is found by the caller through
``Options.on_fetch`` (the messages in flight), narrowed with ``Options.isolate`` (one
message at a time, headers included) and passed with ``Options.skip`` (before its
headers are read): it is reported unparseable, remembered in the cursor
(``FolderCursor.skipped``) and tried again with ``Options.retry_skipped``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from . import planner
from .addresses import normalize_set
from .errors import SyncError, classify, throttled
from .mime import parse_headers, parse_message
from .port import MailboxPort
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
    HeaderInfo,
    Outcome,
    SyncReport,
    SyncState,
)

CustomerFilter = Callable[[set], set]
KnownKeys = Callable[[list], set]
POP3_FOLDER = "INBOX"
#: The reason of a message passed unread because of ``Options.skip``.
SKIPPED_REASON = "skipped: the sync stopped at this message repeatedly"


@dataclass
class Options:
    """Tuning of a run.

    - ``since_days`` bounds a first sync (0 = everything); ``batch_size`` headers are
      decided together, and the bodies of one batch stay under ``batch_bytes``.
    - ``deadline``: a value of ``clock()`` after which the run stops between two
      batches, once it has handed over at least one (so that every run progresses);
      :attr:`.SyncReport.finished` then says False, and the next run resumes.
    - ``isolate``: read one message at a time, its headers and then its body (after
      repeated crashes, so that ``on_fetch`` names the one message at fault, whether
      the run dies reading its headers or its body).
    - ``skip``: ``(folder, uid)`` of messages to pass without reading anything of them,
      not even their headers (``uid`` as text: the IMAP UID or the POP3 UIDL): reported
      unparseable (:data:`SKIPPED_REASON`, no dedupe key) and remembered in the cursor,
      which goes past them as past a message read; ``retry_skipped``: try the
      remembered ones again in this run (after the new mail), headers first as any.
    - ``on_fetch(folder, uids)`` is called just before the bodies of ``uids`` are
      downloaded, and with ``isolate`` also just before the headers of each message
      (``uids`` then holds that one): a caller that records it durably knows, after a
      crash, which messages were in flight.
    """

    since_days: int = 90
    batch_size: int = 500
    batch_bytes: int = 32 * 1024 * 1024
    now: dt.datetime | None = None
    deadline: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic)
    isolate: bool = False
    skip: frozenset[tuple[str, str]] = frozenset()
    retry_skipped: bool = False
    on_fetch: Callable[[str, list[str]], None] | None = None

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
    with _classified():
        if account.protocol == PROTOCOL_POP3:
            with Pop3Transport(account) as tr:
                return {"folders": [POP3_FOLDER], "gmail": False, "messages": len(tr.uidl())}
        with ImapTransport(account) as tr:
            return {"folders": tr.sync_folders(), "gmail": tr.is_gmail}


@contextlib.contextmanager
def _classified():
    """Every failure out of here a classified :class:`SyncError`, throttles recognised
    whatever the transport made of them."""
    try:
        yield
    except SyncError as exc:
        refined = throttled(exc)
        if refined is exc:
            raise
        raise refined from None
    except (OSError, EOFError) as exc:
        raise classify(exc) from None


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
    yielded before stay valid. At ``options.deadline`` the batches just end (see
    :func:`run_sync` to know whether they did).
    """
    run = _Run(account, state, customer_filter, known_keys, options or Options())
    yield from run.batches()


def run_sync(
    account: Account,
    state: SyncState | None,
    port: MailboxPort,
    options: Options | None = None,
) -> SyncReport:
    """Sync one mailbox through ``port``: :func:`sync_mailbox` with
    ``port.customers`` and ``port.known_keys``, each batch handed to ``port.store``
    (its messages, then its cursor; the caller commits).

    Returns a :class:`SyncReport`: the counts per outcome and the number of batches
    stored, ``finished`` False when ``options.deadline`` cut the run short (mail is
    left: run again), and ``state``, the last state stored. Raises
    :class:`SyncError` as :func:`sync_mailbox` does, with the report of the batches
    stored before it in ``report``; an exception of ``port.store`` propagates as it is
    (that batch counts as not stored).
    """
    run = _Run(account, state, port.customers, port.known_keys, options or Options())
    report = SyncReport(state=run.state.clone())
    batches = run.batches()
    try:
        for batch in batches:
            port.store(batch)
            report.batches += 1
            report.add(batch.outcomes)
            report.state = batch.state
    except SyncError as exc:
        report.finished = False
        exc.report = report
        raise
    finally:
        batches.close()  # the connection is closed now, not when garbage collected
    report.finished = not run.cut
    return report


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
        self.progressed = False  # a batch covering messages was handed over
        self.cut = False  # the deadline stopped the run with mail left

    def batches(self) -> Iterator[Batch]:
        with _classified():
            if self.account.protocol == PROTOCOL_POP3:
                with Pop3Transport(self.account) as tr:
                    yield from self.pop3(tr)
            else:
                with ImapTransport(self.account) as tr:
                    yield from self.imap(tr)

    def _over(self) -> bool:
        """Whether the deadline has passed (never before the first batch: every run
        progresses). Once True, the run is cut: it stops at the next boundary."""
        deadline = self.opts.deadline
        if not self.cut and deadline is not None and self.progressed:
            self.cut = self.opts.clock() >= deadline
        return self.cut

    # ---------------------------------------------------------------- IMAP
    def imap(self, tr: ImapTransport) -> Iterator[Batch]:
        for i, folder in enumerate(tr.sync_folders()):  # INBOX, then the Sent folder
            if self._over():
                break
            yield from self._imap_folder(tr, folder, sent_folder=i == 1)
            yield from self._progress(folder)  # the cursor's own progress, cut or not

    def _imap_folder(
        self, tr: ImapTransport, folder: str, sent_folder: bool = False
    ) -> Iterator[Batch]:
        cur = self.state.folders.get(folder)
        validity, uidnext = tr.status(folder)
        if not planner.needs_examine(cur, validity, uidnext, self.opts.retry_skipped):
            return  # nothing new: no SELECT, no SEARCH
        validity, uidnext = tr.examine(folder)
        plan = planner.plan_imap(cur, validity, uidnext)  # a fresh cursor on a re-scan
        cur = self.state.folders[folder] = plan.cursor

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

        if plan.incremental:  # everything above high, oldest first
            new = tr.uids_above(cur.high)
            for keys, skipped, msgs, outs, sent_from, _last in self._work(
                folder, new, fetch_headers, tr.fetch_bodies
            ):
                planner.after_incremental(cur, keys)
                planner.note_skipped(cur, keys, skipped)
                yield self._batch(folder, msgs, outs, sent_from)
            if self.cut:
                return  # high stays below the UIDs not fetched yet
            planner.incremental_done(cur, plan.top)
        if not cur.backfill_done:  # back-fill window, newest first, below low
            window = planner.backfill_window(tr.uids_since(self.opts.since()), cur, plan.top)
            if not window:
                planner.nothing_to_backfill(cur, plan.top)
            for keys, skipped, msgs, outs, sent_from, last in self._work(
                folder, window, fetch_headers, tr.fetch_bodies
            ):
                planner.after_backfill(cur, keys, last, plan.top)
                planner.note_skipped(cur, keys, skipped)
                yield self._batch(folder, msgs, outs, sent_from)
            if self.cut:
                return  # resumed below low next time
        if self.opts.retry_skipped and cur.skipped:
            retry = [int(u) for u in planner.retry_list(cur) if u.isdigit()]
            for keys, skipped, msgs, outs, sent_from, _last in self._work(
                folder, retry, fetch_headers, tr.fetch_bodies
            ):
                planner.note_skipped(cur, keys, skipped)
                yield self._batch(folder, msgs, outs, sent_from)

    def _progress(self, folder) -> Iterator[Batch]:
        """A batch without messages when the state moved since the last one handed
        over (a folder found empty, a re-scan started, UIDs found expunged)."""
        if self.state.to_json() != self._yielded:
            yield self._batch(folder, [], [])

    # ---------------------------------------------------------------- POP3
    def pop3(self, tr: Pop3Transport) -> Iterator[Batch]:
        folder = POP3_FOLDER
        yield from self._pop3(tr, folder)
        yield from self._progress(folder)

    def _pop3(self, tr: Pop3Transport, folder: str) -> Iterator[Batch]:
        listing = tr.uidl()
        cur = planner.plan_pop3(self.state.folders.get(folder), listing)
        self.state.folders[folder] = cur
        number = {u: n for n, u in listing}
        todo = planner.pop3_todo(cur, listing)  # newest first
        retry = planner.retry_list(cur) if self.opts.retry_skipped else []
        sizes = tr.sizes() if todo or retry else {}
        window = None if cur.backfill_done else self.opts.since()

        def fetch_headers(uidls, since=window):
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

        for keys, skipped, msgs, outs, _sent_from, last in self._work(
            folder, todo, fetch_headers, fetch_bodies
        ):
            planner.after_pop3(cur, keys, last)
            planner.note_skipped(cur, keys, skipped)
            yield self._batch(folder, msgs, outs)
        if self.cut:
            return  # the first sync's window still applies to what is left
        cur.backfill_done = True
        if retry:  # without the window: a message passed before its headers has no date
            for keys, skipped, msgs, outs, _sent_from, _last in self._work(
                folder, retry, lambda uidls: fetch_headers(uidls, since=None), fetch_bodies
            ):
                planner.note_skipped(cur, keys, skipped)
                yield self._batch(folder, msgs, outs)

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
        """Process keys in ``order``: yield ``(keys covered, keys skipped, messages,
        outcomes, sent_from, is_last)``.

        Header batches hold ``batch_size`` keys (one with ``isolate``, announced to
        ``on_fetch`` before its headers are read); a header batch is split further so
        that the bodies of one yielded batch stay under ``batch_bytes``. Keys in
        ``skip`` are covered without reading anything of them, headers included.
        ``sent_from``: see :attr:`Batch.sent_from`, from the headers of the keys
        covered. Stops early, setting ``cut``, when the deadline has passed before a
        header batch or a body group.
        """
        isolate, on_fetch = self.opts.isolate, self.opts.on_fetch
        size = 1 if isolate else max(1, self.opts.batch_size)
        for start in range(0, len(order), size):
            if self._over():
                return
            chunk = order[start : start + size]
            # passed unread, headers included: the run may have died reading them
            passed = {k for k in chunk if (folder, str(k)) in self.opts.skip}
            read = [k for k in chunk if k not in passed] if passed else chunk
            if read and isolate and on_fetch:
                on_fetch(folder, [str(k) for k in read])
            heads = fetch_headers(read) if read else {}
            accepted, outcomes = self._decide(folder, heads)
            for key in passed:
                outcomes[key] = Outcome(folder, str(key), UNPARSEABLE, reason=SKIPPED_REASON)
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
                if i and self._over():
                    return
                want = [k for k in keys if k in accepted]
                if want and on_fetch:
                    on_fetch(folder, [str(k) for k in want])
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
                skipped = [k for k in keys if k in passed]
                sent_from = self._sent_from(heads.get(key) for key in keys)
                self.progressed = True
                yield keys, skipped, messages, outs, sent_from, last_chunk and i == len(groups) - 1

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
