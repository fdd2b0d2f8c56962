"""The cursor arithmetic of :mod:`crm_gmail_sync.engine.planner`, without a server.

Unit tests of each rule, then a property test that drives the real sync run
(:func:`run_sync`) against an in-memory model of an IMAP and a POP3 mailbox (a fake
transport: fine for planning logic; the transports themselves are tested against
Dovecot), with random deadlines, batch sizes and mail arriving between runs: every
customer mail is stored exactly once, whatever the cuts.
"""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailgen import make_message

from crm_gmail_sync.engine import FolderCursor, SyncState, planner, run_sync
from crm_gmail_sync.engine import sync as sync_module
from crm_gmail_sync.engine.mimeparts import split_head
from crm_gmail_sync.engine.sync import Options
from crm_gmail_sync.engine.transport_imap import FetchedItem

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
CUSTOMER = "anna@customer.example"
OWNER = "owner@example.test"


# ------------------------------------------------------------------ rules, one by one
def test_status_decides_whether_a_folder_is_opened():
    done = FolderCursor(uidvalidity=3, high=20, low=1, backfill_done=True)
    assert not planner.needs_examine(done, 3, 21)
    assert planner.needs_examine(done, 3, 22)  # a new UID
    assert planner.needs_examine(done, 4, 21)  # re-numbered
    unfinished = FolderCursor(uidvalidity=3, high=20, low=5)
    assert planner.needs_examine(unfinished, 3, 21)  # the back-fill goes on


def test_a_first_sync_plans_no_incremental_pass_and_the_whole_window():
    plan = planner.plan_imap(None, 9, 101)
    assert (plan.incremental, plan.rescan, plan.top) == (False, False, 100)
    assert plan.cursor == FolderCursor(uidvalidity=9)
    assert planner.backfill_window([100, 1, 50, 101], plan.cursor, plan.top) == [100, 50, 1]


def test_uidvalidity_change_starts_afresh():
    old = FolderCursor(uidvalidity=9, high=100, low=1, backfill_done=True, skipped=["7"])
    plan = planner.plan_imap(old, 10, 5)
    assert plan.rescan and plan.cursor == FolderCursor(uidvalidity=10)
    assert old.high == 100  # the old cursor is not touched


def test_cut_incremental_pass_keeps_high_at_the_last_batch():
    cur = FolderCursor(uidvalidity=1, high=10, low=1, backfill_done=True)
    plan = planner.plan_imap(cur, 1, 31)
    assert plan.incremental
    planner.after_incremental(cur, [11, 12])  # the first of several batches
    assert cur.high == 12  # not 30: UIDs 13..30 are not fetched yet
    planner.after_incremental(cur, [13, 29])
    planner.incremental_done(cur, plan.top)
    assert cur.high == 30


def test_first_sync_reaches_top_with_its_first_backfill_batch_only():
    cur = planner.plan_imap(None, 1, 51).cursor
    assert cur.high == 0  # cut before the first batch: still a first sync
    planner.after_backfill(cur, [50, 40], last=False, top=50)
    assert (cur.high, cur.low) == (50, 40)
    # the next run: new mail above top first, then the back-fill below low
    plan = planner.plan_imap(cur, 1, 56)
    assert plan.incremental
    assert planner.backfill_window(list(range(1, 56)), cur, plan.top) == list(range(39, 0, -1))


def test_empty_window_ends_the_backfill_at_top():
    cur = planner.plan_imap(None, 1, 8).cursor
    assert planner.backfill_window([], cur, 7) == []
    planner.nothing_to_backfill(cur, 7)
    assert (cur.high, cur.backfill_done) == (7, True)  # old mail below the window stays


def test_pop3_todo_newest_first_and_forgets_dropped_uidls():
    listing = [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    cur = planner.plan_pop3(FolderCursor(seen=["x", "b"], skipped=["x", "b"]), listing)
    assert cur.seen == ["b"] and cur.skipped == ["b"]
    assert planner.pop3_todo(cur, listing) == ["d", "c", "a"]
    planner.after_pop3(cur, ["d", "c"], last=False)
    assert planner.pop3_todo(cur, listing) == ["a"] and not cur.backfill_done


def test_skipped_messages_are_remembered_until_read():
    cur = FolderCursor(skipped=["4"])
    planner.note_skipped(cur, [5, 6, 7], [6])
    assert cur.skipped == ["4", "6"]
    planner.note_skipped(cur, [4, 6], [])  # retried: read now
    assert cur.skipped == []
    planner.note_skipped(cur, [6], [6])  # retried and skipped again: kept once
    planner.note_skipped(cur, [6], [6])
    assert cur.skipped == ["6"]
    assert planner.retry_list(FolderCursor(skipped=["10", "9"])) == ["9", "10"]


def test_old_cursor_json_without_skipped_still_loads():
    old = {"INBOX": {"uidvalidity": 3, "high": 9, "low": 1, "backfill_done": True, "seen": []}}
    state = SyncState.from_json(old)
    assert state.folders["INBOX"].skipped == []
    assert state.to_json()["INBOX"] == {**old["INBOX"], "skipped": []}
    assert SyncState.from_json(state.to_json()).to_json() == state.to_json()


# ------------------------------------------------------------------ a model mailbox
class Folder:
    def __init__(self, validity=1):
        self.validity, self.uidnext, self.messages = validity, 1, {}

    def append(self, raw: bytes, date: dt.datetime) -> int:
        uid, self.uidnext = self.uidnext, self.uidnext + 1
        self.messages[uid] = (raw, date)
        return uid


class FakeImap:
    """The IMAP transport's interface over :class:`Folder` objects (``FakeImap.server``)."""

    server: dict[str, Folder] = {}
    is_gmail = False

    def __init__(self, account):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def sync_folders(self):
        return list(self.server)

    def status(self, folder):
        f = self.server[folder]
        return f.validity, f.uidnext

    examine = status

    def uids_above(self, uid):
        return sorted(u for u in self.server[self._open].messages if u > uid)

    def uids_since(self, since):
        msgs = self.server[self._open].messages
        return sorted(u for u, (_, d) in msgs.items() if since is None or d.date() >= since)

    def fetch_headers(self, uids):
        msgs = self.server[self._open].messages
        return [
            FetchedItem(
                uid=u,
                data=split_head(msgs[u][0])[0],
                size=len(msgs[u][0]),
                internaldate_raw=msgs[u][1].strftime("%d-%b-%Y %H:%M:%S +0000").encode(),
            )
            for u in uids
            if u in msgs
        ]

    def fetch_bodies(self, uids):
        msgs = self.server[self._open].messages
        return {u: msgs[u][0] for u in uids if u in msgs}


def _track_open(cls):
    """``status``/``examine`` remember the folder the following calls are about."""
    real = cls.status

    def status(self, folder):
        self._open = folder
        return real(self, folder)

    cls.status = cls.examine = status
    return cls


_track_open(FakeImap)


class FakePop3:
    """The POP3 transport's interface over the INBOX :class:`Folder` of ``FakeImap.server``."""

    def __init__(self, account):
        self.msgs = FakeImap.server["INBOX"].messages
        self.numbers = sorted(self.msgs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def uidl(self):
        return [(n, f"u{uid}") for n, uid in enumerate(self.numbers, 1)]

    def sizes(self):
        return {n: len(self.msgs[uid][0]) for n, uid in enumerate(self.numbers, 1)}

    def headers(self, num):
        return split_head(self.msgs[self.numbers[num - 1]][0])[0]

    def message(self, num):
        return self.msgs[self.numbers[num - 1]][0]


class MemoryPort:
    def __init__(self):
        self.messages, self.twice, self.state, self.duplicates = {}, [], None, 0

    def customers(self, addresses):
        return {a for a in addresses if a == CUSTOMER}

    def known_keys(self, keys):
        return {k for k in keys if k in self.messages}

    def store(self, batch):
        for msg in batch.messages:
            if msg.dedupe_key in self.messages:
                self.twice.append(msg.dedupe_key)
            self.messages[msg.dedupe_key] = msg
        self.duplicates += batch.counts["duplicate"]
        self.state = batch.state


class Account:
    protocol = "imap"
    login = OWNER
    owner_addresses = (OWNER,)


# (customer?, days ago): a quarter of them older than the first sync's 90-day window
mail = st.tuples(st.sampled_from([True, True, False]), st.integers(0, 120))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    protocol=st.sampled_from(["imap", "pop3"]),
    inbox=st.lists(mail, min_size=1, max_size=14),
    sent=st.lists(mail, max_size=5),
    runs=st.lists(
        st.tuples(st.integers(0, 12), st.lists(st.tuples(st.booleans(), mail), max_size=3)),
        min_size=1,
        max_size=6,
    ),
    batch_size=st.integers(1, 4),
    isolate=st.booleans(),
)
def test_cut_runs_store_every_customer_mail_exactly_once(
    monkeypatch, protocol, inbox, sent, runs, batch_size, isolate
):
    monkeypatch.setattr(sync_module, "ImapTransport", FakeImap)
    monkeypatch.setattr(sync_module, "Pop3Transport", FakePop3)
    server = FakeImap.server = {"INBOX": Folder()}
    if protocol == "imap":
        server["Sent"] = Folder()
    serial = itertools.count(1)
    expected = set()
    since = (NOW - dt.timedelta(days=90)).date()
    first_top = {}  # folder -> its last UID while on its first sync: those keep to the window

    def add(folder, customer, days):
        n = next(serial)
        inbound = folder == "INBOX"
        if customer:
            frm, to = (CUSTOMER, OWNER) if inbound else (OWNER, CUSTOMER)
        else:
            frm, to = ("other@web.example", OWNER) if inbound else (OWNER, "x@web.example")
        date = NOW - dt.timedelta(days=days, hours=1)
        raw = make_message(frm, to, f"Mail {n}", msgid=f"<m{n}@x>", date=date)
        return server[folder].append(raw, date), f"mid:<m{n}@x>", customer, date

    added = [
        (folder, *add(folder, customer, days))
        for folder, items in (("INBOX", inbox), ("Sent", sent))
        if folder in server
        for customer, days in items
    ]
    port = MemoryPort()
    account = Account()
    account.protocol = protocol
    for cut, arrivals in [*runs, (None, [])]:
        options = Options(now=NOW, batch_size=batch_size, batch_bytes=10**9, isolate=isolate)
        if cut is not None:  # one tick per look at the clock
            options.deadline, options.clock = cut, itertools.count().__next__
        for folder in server:
            cur = port.state.folders.get(folder) if port.state else None
            # still on its first sync: IMAP until its first back-fill batch (after that,
            # new UIDs come above high), POP3 until the back-fill is done
            if cur is None or not cur.backfill_done and (protocol == "pop3" or not cur.high):
                first_top[folder] = server[folder].uidnext - 1
        report = run_sync(account, port.state, port, options)
        assert report.state.to_json() == (port.state or SyncState()).to_json()
        assert report.finished or cut is not None  # without a deadline nothing is left
        for to_inbox, (customer, days) in arrivals:
            folder = "INBOX" if to_inbox or "Sent" not in server else "Sent"
            added.append((folder, *add(folder, customer, days)))
    for folder, uid, key, customer, date in added:
        old_first_sync = uid <= first_top[folder] and date.date() < since
        if customer and not old_first_sync:
            expected.add(key)
    assert not port.twice
    assert port.duplicates == 0  # no message is even looked at twice: no crash here
    assert set(port.messages) == expected
    for folder in server:
        cur = port.state.folders[folder]
        assert cur.backfill_done
        if protocol == "imap":
            assert cur.high == server[folder].uidnext - 1
