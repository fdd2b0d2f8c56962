"""A run that reaches its deadline stops between batches and the next run resumes, against
a real Dovecot: nothing lost, nothing fetched twice, no flag changed.

The clock is the test's: it stands still (``Clock.now``) and jumps past the deadline when
the test says so -- after the n-th stored batch, or when the run opens a given folder.
"""

from __future__ import annotations

import pytest
from test_exactly_once import FLAG_CYCLE, key, snapshot
from test_port import MemoryPort
from test_sync_imap import account, put
from test_sync_pop3 import pop3

from crm_gmail_sync.engine import DUPLICATE, STORED
from crm_gmail_sync.engine.transport_imap import ImapTransport

DEADLINE = 1000.0


class Clock:
    """A clock standing at ``now``; ``jump()`` puts it past the deadline."""

    def __init__(self, now=0.0):
        self.now, self.calls = now, 0

    def __call__(self):
        self.calls += 1
        return self.now

    def jump(self):
        self.now = DEADLINE + 1


def cut_after(n, clock):
    """A port hook: the clock jumps once ``n`` batches with messages in them are stored."""

    def hook(port, batch):
        hook.seen += bool(batch.outcomes)
        if hook.seen == n:
            clock.jump()

    hook.seen = 0
    return hook


def run(port, acc, clock=None, **options):
    if clock is not None:
        options.update(deadline=DEADLINE, clock=clock)
    return port.sync(acc, **options)


def assert_exactly(port, expected):
    assert not port.twice
    assert sorted(port.messages) == sorted(expected)
    assert not port.outcomes(DUPLICATE)  # nothing crashed: nothing was even looked at twice


@pytest.fixture
def big_mailbox(dovecot, mail_user):
    """INBOX: 9 customer mails and 3 others, one 200 days old (outside the window), mixed
    flags; Sent: 3 to customers."""
    u = mail_user
    expected = []
    for n in range(1, 14):
        frm = "anna@customer.example" if n <= 10 else f"other{n}@web.example"
        days = 200 if n == 1 else 20 - n
        put(dovecot, u, n, frm, u.login, days_ago=days, flags=FLAG_CYCLE[n % len(FLAG_CYCLE)])
        if 1 < n <= 10:
            expected.append(key(u, n))
    for n in range(20, 23):
        put(dovecot, u, n, u.login, "bob@customer.example", folder="Sent", days_ago=30 - n)
        expected.append(key(u, n))
    return u, expected


# ------------------------------------------------------------------ IMAP
def test_first_sync_cut_after_every_batch_then_resumed(dovecot, big_mailbox):
    user, expected = big_mailbox
    acc = account(dovecot, user)
    before = snapshot(dovecot, user)
    clean = MemoryPort()
    assert run(clean, acc, batch_size=2).finished
    assert_exactly(clean, expected)
    n_batches = sum(1 for b in clean.batches if b.outcomes)
    assert n_batches >= 7
    for n in range(1, n_batches):
        port, clock = MemoryPort(), Clock()
        port.after_store = cut_after(n, clock)
        report = run(port, acc, clock, batch_size=2)
        assert not report.finished, n
        assert sum(1 for b in port.batches if b.outcomes) == n  # stopped at the next boundary
        assert report.state.to_json() == port.state.to_json()
        port.after_store = None
        assert run(port, acc, batch_size=2).finished
        assert_exactly(port, expected)
        assert port.state.to_json() == clean.state.to_json(), n
    assert snapshot(dovecot, user) == before


def test_a_clock_past_the_deadline_still_makes_every_run_progress(dovecot, big_mailbox):
    user, expected = big_mailbox
    acc = account(dovecot, user)
    before = snapshot(dovecot, user)
    port, clock = MemoryPort(), Clock(now=DEADLINE + 5)
    runs = 0
    while True:
        runs += 1
        stored = len(port.batches)
        report = run(port, acc, clock, batch_size=3)
        assert sum(1 for b in port.batches[stored:] if b.outcomes) <= 1  # one, then stop
        if report.finished:
            break
        assert runs < 20, "a run made no progress"
    assert_exactly(port, expected)
    assert runs >= 5  # INBOX 12 UIDs in the window / 3, Sent 3 / 3
    assert snapshot(dovecot, user) == before


def test_a_cut_in_the_incremental_pass_never_skips_unfetched_uids(dovecot, big_mailbox):
    """The incremental pass moves ``high`` batch by batch; only a finished pass may set it
    to the last UID that existed when the folder was opened."""
    user, expected = big_mailbox
    acc = account(dovecot, user)
    port = MemoryPort()
    run(port, acc)
    assert port.state.folders["INBOX"].high == 13
    for n in range(30, 36):  # UIDs 14..19
        put(dovecot, user, n, "bob@customer.example", user.login, days_ago=0)
        expected.append(key(user, n))
    put(dovecot, user, 36, user.login, "anna@customer.example", folder="Sent", days_ago=0)
    expected.append(key(user, 36))
    clock = Clock()
    port.after_store = cut_after(1, clock)
    report = run(port, acc, clock, batch_size=2)
    assert not report.finished
    inbox = port.state.folders["INBOX"]
    assert inbox.high == 15  # UIDs 14 and 15 stored; not 19
    assert report.counts[STORED] == 2 and port.state.folders["Sent"].high == 3
    port.after_store = None
    report = run(port, acc, batch_size=2)
    assert report.finished and report.counts[STORED] == 5
    assert_exactly(port, expected)
    assert port.state.folders["INBOX"].high == 19


def test_a_cut_backfill_resumes_below_low_after_the_new_mail(dovecot, big_mailbox):
    user, expected = big_mailbox
    acc = account(dovecot, user)
    port, clock = MemoryPort(), Clock()
    port.after_store = cut_after(1, clock)
    run(port, acc, clock, batch_size=3)
    inbox = port.state.folders["INBOX"]
    assert (inbox.high, inbox.low, inbox.backfill_done) == (13, 11, False)
    put(dovecot, user, 40, "anna@customer.example", user.login, days_ago=0)  # UID 14
    expected.append(key(user, 40))
    clock = Clock()
    port.after_store = cut_after(2, clock)
    first_batch = len(port.batches)
    assert not run(port, acc, clock, batch_size=3).finished
    assert [o.uid for o in port.batches[first_batch].outcomes] == ["14"]  # new mail first
    assert [o.uid for o in port.batches[first_batch + 1].outcomes] == ["10", "9", "8"]
    assert port.state.folders["INBOX"].low == 8
    port.after_store = None
    assert run(port, acc, batch_size=3).finished
    assert_exactly(port, expected)  # and UID 1, 200 days old, never fetched
    assert port.state.folders["INBOX"].backfill_done


def test_a_folder_whose_first_sync_is_cut_before_its_backfill_stays_a_first_sync(
    dovecot, big_mailbox, monkeypatch
):
    """The clock passes the deadline while the Sent folder is being opened: its cursor
    is handed over before any of its mail, and must still say "first sync" -- not
    "everything up to the last UID handled"."""
    user, expected = big_mailbox
    acc = account(dovecot, user)
    clock = Clock()
    real = ImapTransport.examine

    def examine(self, folder):
        if folder == "Sent":
            clock.jump()
        return real(self, folder)

    monkeypatch.setattr(ImapTransport, "examine", examine)
    port = MemoryPort()
    report = run(port, acc, clock, batch_size=50)
    monkeypatch.setattr(ImapTransport, "examine", real)
    assert not report.finished
    sent = port.state.folders["Sent"]
    assert (sent.high, sent.backfill_done) == (0, False)
    assert not [m for m in port.messages.values() if m.header.folder == "Sent"]
    put(dovecot, user, 50, user.login, "anna@customer.example", folder="Sent", days_ago=0)
    put(dovecot, user, 51, user.login, "bob@customer.example", folder="Sent", days_ago=300)
    expected.append(key(user, 50))  # 51 is outside the window of Sent's first sync
    assert run(port, acc).finished
    assert_exactly(port, expected)
    assert port.state.folders["Sent"].high == 5


# ------------------------------------------------------------------ POP3
def test_pop3_cut_after_every_batch_then_resumed(dovecot, big_mailbox):
    user, expected = big_mailbox
    expected = [k for k in expected if int(k.split("<m")[1].split(".")[0]) < 20]  # no Sent
    acc = pop3(dovecot, user)
    before = snapshot(dovecot, user, ("INBOX",))
    clean = MemoryPort()
    assert run(clean, acc, batch_size=2).finished
    assert_exactly(clean, expected)
    n_batches = sum(1 for b in clean.batches if b.outcomes)
    assert n_batches >= 6
    for n in range(1, n_batches):
        port, clock = MemoryPort(), Clock()
        port.after_store = cut_after(n, clock)
        report = run(port, acc, clock, batch_size=2)
        assert not report.finished and not port.state.folders["INBOX"].backfill_done, n
        # between the runs, a new mail and an old one: the first sync's window still holds
        new = 60 + n
        put(dovecot, user, new, "bob@customer.example", user.login, days_ago=0)
        put(dovecot, user, new + 100, "bob@customer.example", user.login, days_ago=365)
        port.after_store = None
        assert run(port, acc, batch_size=2).finished
        assert_exactly(port, expected + [key(user, m) for m in range(61, new + 1)])
        assert port.state.folders["INBOX"].backfill_done
    assert {k: v for k, v in snapshot(dovecot, user, ("INBOX",))["INBOX"].items() if k <= 13} == (
        before["INBOX"]
    )


def test_pop3_clock_past_the_deadline(dovecot, mail_user):
    u = mail_user
    for n in range(1, 8):
        put(dovecot, u, n, "anna@customer.example", u.login, days_ago=n)
    acc = pop3(dovecot, u)
    port, clock = MemoryPort(), Clock(now=DEADLINE * 2)
    runs = 1
    while not run(port, acc, clock, batch_size=2).finished:
        runs += 1
        assert runs < 10, "a run made no progress"
    assert runs == 4  # 7 messages, 2 a batch, one batch a run
    assert_exactly(port, [key(u, n) for n in range(1, 8)])
    assert clock.calls >= 3


def test_no_deadline_no_clock(dovecot, mail_user):
    put(dovecot, mail_user, 1, "anna@customer.example", mail_user.login)

    def never():
        raise AssertionError("the clock was read without a deadline")

    report = MemoryPort().sync(account(dovecot, mail_user), clock=never)
    assert report.finished and report.counts[STORED] == 1


def test_deadline_in_the_past_with_nothing_to_do(dovecot, mail_user):
    put(dovecot, mail_user, 1, "anna@customer.example", mail_user.login)
    acc = account(dovecot, mail_user)
    port = MemoryPort()
    run(port, acc)
    report = run(port, acc, Clock(now=DEADLINE * 2))
    assert report.finished and report.batches == 0
