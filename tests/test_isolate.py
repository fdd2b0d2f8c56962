"""A message at which runs die while its headers are read: isolated and passed over.

Against a real Dovecot (IMAP and POP3): with ``isolate`` every message is announced to
``on_fetch`` before its headers are read and again before its body; a message in
``skip`` is passed before its headers are read, remembered in the cursor and read,
headers first, on ``retry_skipped``. Then a property test over the in-memory mailbox of
``test_planner`` (fine for planning logic; the transports are tested against Dovecot):
whatever is skipped, isolated or cut, no skipped message is ever read in the run that
skips it, and every customer mail is stored exactly once in the end.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailgen import make_message
from test_planner import CUSTOMER, NOW, OWNER, FakeImap, FakePop3, Folder
from test_planner import Account as FakeAccount
from test_planner import MemoryPort as FakePort
from test_port import MemoryPort, _uidls
from test_sync_imap import account, put
from test_sync_pop3 import pop3

from crm_gmail_sync.engine import (
    NOT_CUSTOMER,
    SKIPPED_REASON,
    STORED,
    UNPARSEABLE,
    SyncState,
    run_sync,
)
from crm_gmail_sync.engine import sync as sync_module
from crm_gmail_sync.engine.sync import Options
from crm_gmail_sync.engine.transport_imap import ImapTransport
from crm_gmail_sync.engine.transport_pop3 import Pop3Transport


def spy_imap(monkeypatch, events):
    """Log every header and body fetch of the IMAP transport in ``events``."""
    heads, bodies = ImapTransport.fetch_headers, ImapTransport.fetch_bodies

    def fetch_headers(self, uids):
        events.append(("headers", list(uids)))
        return heads(self, uids)

    def fetch_bodies(self, uids):
        events.append(("body", list(uids)))
        return bodies(self, uids)

    monkeypatch.setattr(ImapTransport, "fetch_headers", fetch_headers)
    monkeypatch.setattr(ImapTransport, "fetch_bodies", fetch_bodies)


def spy_pop3(monkeypatch, events, uidl_of):
    """Log every header and body download of the POP3 transport, by UIDL."""
    heads, body = Pop3Transport.headers, Pop3Transport.message

    def headers(self, num):
        events.append(("headers", [uidl_of[num]]))
        return heads(self, num)

    def message(self, num):
        events.append(("body", [uidl_of[num]]))
        return body(self, num)

    monkeypatch.setattr(Pop3Transport, "headers", headers)
    monkeypatch.setattr(Pop3Transport, "message", message)


def in_flight(events):
    return lambda folder, uids: events.append(("in flight", folder, uids))


def read(events):
    """The keys whose headers or body were fetched, as text."""
    return {str(k) for e in events if e[0] != "in flight" for k in e[1]}


# ------------------------------------------------------------------ IMAP
def test_isolate_announces_each_message_before_its_headers_and_its_body(
    dovecot, mail_user, monkeypatch
):
    u = mail_user
    for n in range(1, 6):
        put(dovecot, u, n, "anna@customer.example" if n != 3 else "x@web.example", u.login)
    events = []
    spy_imap(monkeypatch, events)
    port = MemoryPort()
    port.sync(account(dovecot, u), on_fetch=in_flight(events), isolate=True)
    assert events == [
        step
        for uid in (5, 4, 3, 2, 1)
        for step in (
            ("in flight", "INBOX", [str(uid)]),
            ("headers", [uid]),
            *([("in flight", "INBOX", [str(uid)]), ("body", [uid])] if uid != 3 else []),
        )
    ]  # 3 is no customer's: its headers only, then 2 is in flight
    assert len(port.messages) == 4 and [o.uid for o in port.outcomes(NOT_CUSTOMER)] == ["3"]
    # new mail, the incremental pass: the same, oldest first
    put(dovecot, u, 6, "anna@customer.example", u.login)
    put(dovecot, u, 7, "bob@customer.example", u.login)
    events.clear()
    port.sync(account(dovecot, u), on_fetch=in_flight(events), isolate=True)
    assert events == [
        step
        for uid in (6, 7)
        for step in (
            ("in flight", "INBOX", [str(uid)]),
            ("headers", [uid]),
            ("in flight", "INBOX", [str(uid)]),
            ("body", [uid]),
        )
    ]
    assert port.state.folders["INBOX"].high == 7 and len(port.messages) == 6


def test_without_isolate_headers_go_in_batches_and_only_bodies_are_announced(
    dovecot, mail_user, monkeypatch
):
    u = mail_user
    for n in range(1, 6):
        put(dovecot, u, n, "anna@customer.example" if n != 3 else "x@web.example", u.login)
    events = []
    spy_imap(monkeypatch, events)
    MemoryPort().sync(account(dovecot, u), on_fetch=in_flight(events), batch_size=3)
    assert events == [
        ("headers", [5, 4, 3]),
        ("in flight", "INBOX", ["5", "4"]),
        ("body", [5, 4]),
        ("headers", [2, 1]),
        ("in flight", "INBOX", ["2", "1"]),
        ("body", [2, 1]),
    ]


@pytest.mark.parametrize("isolate", [True, False])
def test_a_skipped_message_is_passed_before_its_headers_and_retried(
    dovecot, mail_user, monkeypatch, isolate
):
    u = mail_user
    for n in range(1, 6):
        put(dovecot, u, n, "anna@customer.example", u.login)
    acc = account(dovecot, u)
    events = []
    spy_imap(monkeypatch, events)
    port = MemoryPort()
    # the back-fill (newest first) passes 4, in a header batch of its own or among others
    report = port.sync(
        acc,
        isolate=isolate,
        batch_size=2,
        skip=frozenset({("INBOX", "4")}),
        on_fetch=in_flight(events),
    )
    assert "4" not in read(events) and read(events) == {"1", "2", "3", "5"}
    assert all(e[2] != ["4"] for e in events if e[0] == "in flight")
    skipped = port.outcomes(UNPARSEABLE)
    assert [(o.folder, o.uid, o.reason) for o in skipped] == [("INBOX", "4", SKIPPED_REASON)]
    assert report.finished and report.counts[STORED] == 4 and report.counts[UNPARSEABLE] == 1
    cur = port.state.folders["INBOX"]
    assert (cur.skipped, cur.high, cur.low, cur.backfill_done) == (["4"], 5, 1, True)
    # the incremental pass passes 7 the same way; high goes past it
    for n in (6, 7, 8):
        put(dovecot, u, n, "anna@customer.example", u.login)
    events.clear()
    port.sync(acc, isolate=isolate, batch_size=2, skip=frozenset({("INBOX", "7")}))
    assert read(events) == {"6", "8"}
    cur = port.state.folders["INBOX"]
    assert cur.skipped == ["4", "7"] and cur.high == 8
    # left alone until asked, then read, headers first, as any
    events.clear()
    assert port.sync(acc).batches == 0 and not events
    report = port.sync(acc, retry_skipped=True, isolate=isolate)
    heads = [e for e in events if e[0] == "headers"]
    assert heads == ([("headers", [4]), ("headers", [7])] if isolate else [("headers", [4, 7])])
    assert read(events) == {"4", "7"} and report.counts[STORED] == 2
    assert port.state.folders["INBOX"].skipped == []
    assert len(port.messages) == 8 and not port.twice
    assert port.sync(acc, retry_skipped=True).batches == 0


def test_a_message_skipped_alone_in_the_first_batch_of_a_first_sync(dovecot, mail_user):
    """The first back-fill batch brings ``high`` to the top, also when it read nothing."""
    u = mail_user
    for n in range(1, 4):
        put(dovecot, u, n, "anna@customer.example", u.login)
    port = MemoryPort()
    report = port.sync(
        account(dovecot, u), isolate=True, skip=frozenset({("INBOX", "3")}), deadline=0.0
    )
    assert not report.finished and report.batches == 1  # the deadline: one batch, then stop
    assert port.batches[0].messages == [] and port.batches[0].outcomes[0].uid == "3"
    cur = port.state.folders["INBOX"]
    assert (cur.high, cur.low, cur.skipped, cur.backfill_done) == (3, 3, ["3"], False)
    port.sync(account(dovecot, u))
    assert sorted(port.messages) == [f"mid:<m{n}.{u.login}>" for n in (1, 2)]
    cur = port.state.folders["INBOX"]
    assert cur.backfill_done and cur.skipped == ["3"] and not port.twice


# ------------------------------------------------------------------ POP3
def test_pop3_isolate_and_skip_before_the_headers(dovecot, mail_user, monkeypatch):
    u = mail_user
    for n in range(1, 5):
        put(dovecot, u, n, "anna@customer.example" if n != 2 else "x@web.example", u.login)
    listing = _uidls(dovecot, u)
    uidl = [x for _, x in listing]
    events = []
    spy_pop3(monkeypatch, events, dict(listing))
    acc = pop3(dovecot, u)
    port = MemoryPort()
    skip = frozenset({("INBOX", uidl[2])})  # message 3
    report = port.sync(acc, isolate=True, skip=skip, on_fetch=in_flight(events))
    assert events == [
        step
        for key in (uidl[3], uidl[1], uidl[0])  # newest first; 3 passed, 2 no customer's
        for step in (
            ("in flight", "INBOX", [key]),
            ("headers", [key]),
            *([("in flight", "INBOX", [key]), ("body", [key])] if key != uidl[1] else []),
        )
    ]
    assert [(o.uid, o.reason) for o in port.outcomes(UNPARSEABLE)] == [(uidl[2], SKIPPED_REASON)]
    assert report.finished and report.counts[STORED] == 2
    cur = port.state.folders["INBOX"]
    assert cur.skipped == [uidl[2]] and sorted(cur.seen) == sorted(uidl) and cur.backfill_done
    events.clear()
    assert port.sync(acc).batches == 0 and not events
    report = port.sync(acc, retry_skipped=True, isolate=True, on_fetch=in_flight(events))
    assert [e[0] for e in events] == ["in flight", "headers", "in flight", "body"]
    assert read(events) == {uidl[2]} and report.counts[STORED] == 1
    assert port.state.folders["INBOX"].skipped == []
    assert sorted(port.messages) == [f"mid:<m{n}.{u.login}>" for n in (1, 3, 4)]
    assert not port.twice


def test_pop3_without_isolate_skips_before_the_headers_too(dovecot, mail_user, monkeypatch):
    u = mail_user
    for n in range(1, 4):
        put(dovecot, u, n, "anna@customer.example", u.login)
    listing = _uidls(dovecot, u)
    events = []
    spy_pop3(monkeypatch, events, dict(listing))
    port = MemoryPort()
    port.sync(pop3(dovecot, u), skip=frozenset({("INBOX", listing[0][1])}))
    assert listing[0][1] not in read(events) and len(port.messages) == 2
    assert port.state.folders["INBOX"].skipped == [listing[0][1]]


# ------------------------------------------------------------------ property
MAIL = st.tuples(st.sampled_from([True, True, False]), st.integers(0, 120))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    protocol=st.sampled_from(["imap", "pop3"]),
    inbox=st.lists(MAIL, min_size=1, max_size=10),
    sent=st.lists(MAIL, max_size=4),
    runs=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 10)),  # deadline, in clock ticks
            st.lists(st.integers(0, 20), max_size=4),  # messages to skip, by index
            st.lists(st.tuples(st.booleans(), MAIL), max_size=2),  # arrivals after
            st.booleans(),  # retry_skipped
        ),
        min_size=1,
        max_size=5,
    ),
    batch_size=st.integers(1, 4),
    isolate=st.booleans(),
)
def test_skipped_messages_are_never_read_and_all_mail_comes_once(
    monkeypatch, protocol, inbox, sent, runs, batch_size, isolate
):
    monkeypatch.setattr(sync_module, "ImapTransport", SpyImap)
    monkeypatch.setattr(sync_module, "Pop3Transport", SpyPop3)
    server = FakeImap.server = {"INBOX": Folder()}
    if protocol == "imap":
        server["Sent"] = Folder()
    read_now = SpyImap.log  # (folder, key as text) whose headers or body this run read
    serial = itertools.count(1)
    since = (NOW - dt.timedelta(days=90)).date()
    first_top = {}
    added = []

    def add(folder, customer, days):
        n = next(serial)
        inbound = folder == "INBOX"
        if customer:
            frm, to = (CUSTOMER, OWNER) if inbound else (OWNER, CUSTOMER)
        else:
            frm, to = ("other@web.example", OWNER) if inbound else (OWNER, "x@web.example")
        date = NOW - dt.timedelta(days=days, hours=1)
        raw = make_message(frm, to, f"Mail {n}", msgid=f"<m{n}@x>", date=date)
        uid = server[folder].append(raw, date)
        added.append((folder, uid, f"mid:<m{n}@x>", customer, date))

    for folder, items in (("INBOX", inbox), ("Sent", sent)):
        for customer, days in items:
            if folder in server:
                add(folder, customer, days)
    port = FakePort()
    acc = FakeAccount()
    acc.protocol = protocol
    ever_skipped = set()
    last = (None, [], [], False), (None, [], [], True)  # then no skip, and a retry
    for cut, picks, arrivals, retry in [*runs, *last]:
        skip = frozenset(_key(protocol, *added[i][:2]) for i in picks if i < len(added))
        ever_skipped |= skip
        options = Options(
            now=NOW, batch_size=batch_size, batch_bytes=10**9, isolate=isolate, skip=skip
        )
        options.retry_skipped = retry
        if cut is not None:
            options.deadline, options.clock = cut, itertools.count().__next__
        for folder in server:
            cur = port.state.folders.get(folder) if port.state else None
            if cur is None or not cur.backfill_done and (protocol == "pop3" or not cur.high):
                first_top[folder] = server[folder].uidnext - 1
        read_now.clear()
        report = run_sync(acc, port.state, port, options)
        assert not skip & set(read_now)  # not even a header of a skipped message
        assert report.state.to_json() == (port.state or SyncState()).to_json()
        assert report.finished or cut is not None
        for to_inbox, (customer, days) in arrivals:
            add("INBOX" if to_inbox or "Sent" not in server else "Sent", customer, days)
    expected, maybe = set(), set()
    for folder, uid, key, customer, date in added:
        if not customer:
            continue
        if uid <= first_top[folder] and date.date() < since:  # the first sync's window
            # POP3 reads a message's date from its headers: one passed before them in
            # the window's time is retried later without a window
            if protocol == "pop3" and _key(protocol, folder, uid) in ever_skipped:
                maybe.add(key)
            continue
        expected.add(key)
    assert not port.twice and port.duplicates == 0
    assert expected <= set(port.messages) <= expected | maybe
    for folder in server:
        cur = port.state.folders[folder]
        assert cur.backfill_done and cur.skipped == []
        if protocol == "imap":
            assert cur.high == server[folder].uidnext - 1


def _key(protocol, folder, uid):
    return (folder, f"u{uid}" if protocol == "pop3" else str(uid))


class SpyImap(FakeImap):
    """:class:`FakeImap` logging ``(folder, uid)`` of every header and body it reads."""

    log: list[tuple[str, str]] = []

    def fetch_headers(self, uids):
        self.log.extend((self._open, str(u)) for u in uids)
        return super().fetch_headers(uids)

    def fetch_bodies(self, uids):
        self.log.extend((self._open, str(u)) for u in uids)
        return super().fetch_bodies(uids)


class SpyPop3(FakePop3):
    """:class:`FakePop3` logging ``("INBOX", uidl)`` of every header and body it reads."""

    def headers(self, num):
        SpyImap.log.append(("INBOX", f"u{self.numbers[num - 1]}"))
        return super().headers(num)

    def message(self, num):
        SpyImap.log.append(("INBOX", f"u{self.numbers[num - 1]}"))
        return super().message(num)
