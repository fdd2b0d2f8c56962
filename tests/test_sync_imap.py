"""The engine against a real Dovecot over IMAP: exactly-once, flags untouched, failures."""

import datetime as dt

import pytest
from mailgen import make_message
from memstore import CrashAfterStore, MemoryStore
from proxy import DroppingProxy

from crm_gmail_sync.engine import (
    DUPLICATE,
    NOT_CUSTOMER,
    STORED,
    Account,
    AuthError,
    NetworkError,
    TlsError,
    check_connection,
)
from crm_gmail_sync.engine import sync as sync_module
from crm_gmail_sync.engine.transport_imap import ImapTransport

CUSTOMERS = ("anna@customer.example", "bob@customer.example")
NOW = dt.datetime.now(dt.timezone.utc)


def account(dovecot, user, **kw):
    values = dict(
        host=dovecot.host,
        port=dovecot.imaps_port,
        security="ssl",
        login=user.login,
        password=user.password,
        ca_file=dovecot.ca_file,
        owner_addresses=(user.login,),
        timeout=10,
    )
    values.update(kw)
    return Account(**values)


def put(dovecot, user, n, frm, to, folder="INBOX", days_ago=1, flags="", **kw):
    date = NOW - dt.timedelta(days=days_ago)
    raw = make_message(frm, to, f"Mail {n}", msgid=f"<m{n}.{user.login}>", date=date, **kw)
    return dovecot.append(user.login, folder, raw, flags=flags, date=date)


@pytest.fixture
def mailbox(dovecot, mail_user):
    """INBOX: 3 customer mails (one read), 2 others; Sent: 1 mail to a customer."""
    u = mail_user
    put(dovecot, u, 1, "Anna@Customer.example", u.login, flags="\\Seen")
    put(dovecot, u, 2, "newsletter@shop.example", u.login)
    put(dovecot, u, 3, "colleague@internal.example", u.login, cc=["BOB@customer.example "])
    put(dovecot, u, 4, "spam@spam.example", [u.login, "x@y.example"])
    put(
        dovecot,
        u,
        5,
        "stranger@web.example",
        u.login,
        flags="\\Flagged",
        html="<p>Reply to me</p>",
        attachments=[("a.pdf", "application/pdf", b"%PDF-1")],
    )
    put(dovecot, u, 6, u.login, "anna@customer.example", folder="Sent")
    return u


def test_first_sync_stores_customer_mail_only_and_keeps_flags(dovecot, mailbox, monkeypatch):
    before = {f: dovecot.flags(mailbox.login, f) for f in ("INBOX", "Sent")}
    downloaded = []
    real = ImapTransport.fetch_bodies

    def spy(self, uids):
        downloaded.extend(uids)
        return real(self, uids)

    monkeypatch.setattr(ImapTransport, "fetch_bodies", spy)
    store = MemoryStore(CUSTOMERS).sync(account(dovecot, mailbox))
    assert store.subjects() == ["Mail 1", "Mail 3", "Mail 6"]
    assert store.count(STORED) == 3 and store.count(NOT_CUSTOMER) == 3
    assert sorted(downloaded) == [1, 1, 3]  # INBOX uid 1 and 3, Sent uid 1: nothing else
    sent = store.messages[f"mid:<m6.{mailbox.login}>"]
    assert sent.header.direction == "sent" and sent.header.folder == "Sent"
    assert sent.participants == ["anna@customer.example"]
    got = store.messages[f"mid:<m3.{mailbox.login}>"]
    assert got.participants == ["bob@customer.example", "colleague@internal.example"]
    after = {f: dovecot.flags(mailbox.login, f) for f in ("INBOX", "Sent")}
    assert after == before
    assert before["INBOX"][1] == {"\\Seen"} and before["INBOX"][2] == set()
    assert set(store.state.folders) == {"INBOX", "Sent"}


def test_incremental_sync_and_no_change(dovecot, mailbox, monkeypatch):
    acc = account(dovecot, mailbox)
    store = MemoryStore(CUSTOMERS).sync(acc)
    put(dovecot, mailbox, 7, "bob@customer.example", mailbox.login)
    put(dovecot, mailbox, 8, "other@web.example", mailbox.login)
    store.outcomes.clear()
    store.sync(acc)
    assert [(o.status, o.uid) for o in store.outcomes] == [(STORED, "6"), (NOT_CUSTOMER, "7")]
    assert len(store.messages) == 4 and not store.stored_twice
    # nothing new: no folder is even opened, no header fetched
    calls = []
    monkeypatch.setattr(ImapTransport, "examine", lambda *a: calls.append(a))
    store.outcomes.clear()
    store.sync(acc)
    assert store.outcomes == [] and calls == []


def test_crash_between_store_and_cursor_commit(dovecot, mail_user):
    for n in range(1, 8):
        put(dovecot, mail_user, n, "anna@customer.example", mail_user.login, days_ago=n)
    acc = account(dovecot, mail_user)
    store = MemoryStore(CUSTOMERS)
    with pytest.raises(CrashAfterStore):
        store.sync(acc, batch_size=3, crash_after_batches=2)
    assert len(store.messages) == 6  # two batches stored, second one's cursor not persisted
    store.sync(acc, batch_size=3)
    assert len(store.messages) == 7 and not store.stored_twice
    assert store.count(DUPLICATE) == 3  # the batch whose cursor was lost came again
    assert store.subjects() == [f"Mail {n}" for n in range(1, 8)]


def test_first_sync_newest_first_and_window(dovecot, mail_user):
    for n, days in [(1, 200), (2, 30), (3, 3), (4, 2), (5, 1)]:
        put(dovecot, mail_user, n, "anna@customer.example", mail_user.login, days_ago=days)
    acc = account(dovecot, mail_user)
    order = []
    store = MemoryStore(CUSTOMERS)
    from crm_gmail_sync.engine import sync_mailbox
    from crm_gmail_sync.engine.sync import Options

    for batch in sync_mailbox(
        acc, store.state, store.customer_filter, store.known_keys, Options(batch_size=2)
    ):
        order.append([m.header.subject for m in batch.messages])
        store.state = batch.state
    assert order[:2] == [["Mail 5", "Mail 4"], ["Mail 3", "Mail 2"]]
    assert "Mail 1" not in sum(order, [])  # 200 days old: outside the 90-day window
    inbox = store.state.folders["INBOX"]
    assert inbox.backfill_done and inbox.high == 5
    # a later sync does not reach back for the old message either
    put(dovecot, mail_user, 6, "anna@customer.example", mail_user.login, days_ago=0)
    store.sync(acc)
    assert store.subjects() == ["Mail 6"]


def test_batches_are_bounded_by_bytes(dovecot, mail_user):
    big = b"x" * 200_000
    for n in range(1, 5):
        put(
            dovecot,
            mail_user,
            n,
            "anna@customer.example",
            mail_user.login,
            attachments=[("big.bin", "application/octet-stream", big)],
        )
    sizes = []
    store = MemoryStore(CUSTOMERS)
    from crm_gmail_sync.engine import sync_mailbox
    from crm_gmail_sync.engine.sync import Options

    for batch in sync_mailbox(
        account(dovecot, mail_user),
        None,
        store.customer_filter,
        store.known_keys,
        Options(batch_bytes=500_000),
    ):
        sizes.append(len(batch.messages))
    assert sizes[:2] == [2, 2]
    assert store.filter_calls == 1  # one customer query for the whole header batch


def test_connection_dropped_mid_fetch(dovecot, mail_user, monkeypatch):
    for n in range(1, 7):
        put(
            dovecot,
            mail_user,
            n,
            "anna@customer.example",
            mail_user.login,
            days_ago=n,
            attachments=[("f.bin", "application/octet-stream", bytes(range(256)) * 100)],
        )
    with DroppingProxy(dovecot.imap_port) as proxy:
        acc = account(dovecot, mail_user, port=proxy.port, security="none")
        real = ImapTransport.fetch_bodies
        calls = []

        def cut_second_fetch(self, uids):
            calls.append(uids)
            if len(calls) == 2:
                proxy.arm(30_000)  # the server's answer breaks off inside a literal
            return real(self, uids)

        monkeypatch.setattr(ImapTransport, "fetch_bodies", cut_second_fetch)
        store = MemoryStore(CUSTOMERS)
        with pytest.raises(NetworkError):
            store.sync(acc, batch_size=2)
        assert proxy.drops == 1
        assert len(store.messages) == 2  # the first batch is safe
        monkeypatch.setattr(ImapTransport, "fetch_bodies", real)
        store.sync(acc, batch_size=2)
    assert len(store.messages) == 6 and not store.stored_twice
    assert all(m.attachments[0].content == bytes(range(256)) * 100 for m in store.messages.values())


def test_uidvalidity_change_rescans_without_duplicates(dovecot, mailbox):
    acc = account(dovecot, mailbox)
    store = MemoryStore(CUSTOMERS).sync(acc)
    old = store.state.folders["INBOX"].uidvalidity
    dovecot.set_uidvalidity(mailbox.login, "INBOX", old + 1000)
    store.outcomes.clear()
    store.sync(acc)
    assert store.state.folders["INBOX"].uidvalidity == old + 1000
    assert store.count(STORED) == 0 and store.count(DUPLICATE) == 2
    assert len(store.messages) == 3 and not store.stored_twice
    put(dovecot, mailbox, 9, "anna@customer.example", mailbox.login)
    store.sync(acc)
    assert len(store.messages) == 4


def test_same_message_in_inbox_and_sent_is_one(dovecot, mail_user):
    raw = make_message(
        mail_user.login, ["anna@customer.example", mail_user.login], "Both", msgid="<both@x>"
    )
    dovecot.append(mail_user.login, "INBOX", raw)
    dovecot.append(mail_user.login, "Sent", raw)
    store = MemoryStore(CUSTOMERS).sync(account(dovecot, mail_user))
    assert list(store.messages) == ["mid:<both@x>"]
    assert store.count(DUPLICATE) == 1


def test_sent_folder_mail_is_sent_and_its_from_is_an_identity(dovecot, mail_user):
    u = mail_user
    # INBOX: an unknown sender stays received, and a participant
    put(dovecot, u, 1, "stranger@web.example", u.login, cc=["anna@customer.example"])
    # Sent: an identity the owner sends as (not configured), to a customer
    put(
        dovecot, u, 2, "Team@Example.test", "anna@customer.example", folder="Sent", from_name="Team"
    )
    # Sent: another identity, to nobody known: not stored, still an identity
    put(dovecot, u, 3, "me@private.example", "news@shop.example", folder="Sent")
    # Sent: from the owner's own address
    put(dovecot, u, 4, u.login, "bob@customer.example", folder="Sent")
    # the identity is also a customer's address: its From still is no participant
    store = MemoryStore(CUSTOMERS + ("team@example.test",))
    put(dovecot, u, 5, "team@example.test", "news@shop.example", folder="Sent")
    acc = account(dovecot, u)
    store.sync(acc)
    assert store.subjects() == ["Mail 1", "Mail 2", "Mail 4"]
    received = store.messages[f"mid:<m1.{u.login}>"]
    assert received.header.direction == "received" and not received.header.sent_folder
    assert received.participants == ["anna@customer.example", "stranger@web.example"]
    sent = store.messages[f"mid:<m2.{u.login}>"]
    assert sent.header.direction == "sent" and sent.header.sent_folder
    assert [(a.email, a.name) for a in sent.header.from_] == [("team@example.test", "Team")]
    assert sent.participants == ["anna@customer.example"]
    assert store.messages[f"mid:<m4.{u.login}>"].header.direction == "sent"
    # Sent UIDs 1-4 are Mails 2-5; Mail 5's customer-like From did not make it customer mail
    sent_outcomes = {o.uid: o.status for o in store.outcomes if o.folder == "Sent"}
    assert sent_outcomes == {"1": STORED, "2": NOT_CUSTOMER, "3": STORED, "4": NOT_CUSTOMER}
    assert not {"team@example.test", "me@private.example"} & store.offered
    assert store.sent_from == {"INBOX": set(), "Sent": {"team@example.test", "me@private.example"}}
    # incremental: a new identity in a later run is reported by that run's batch
    put(dovecot, u, 6, "Other@Example.test", "anna@customer.example", folder="Sent")
    store.sent_from.clear()
    store.sync(acc)
    assert store.sent_from == {"Sent": {"other@example.test"}}
    assert store.messages[f"mid:<m6.{u.login}>"].header.direction == "sent"


@pytest.mark.parametrize(
    "security,port_attr", [("ssl", "imaps_port"), ("starttls", "imap_port"), ("none", "imap_port")]
)
def test_check_connection_each_security(dovecot, mail_user, security, port_attr):
    info = check_connection(
        account(dovecot, mail_user, security=security, port=getattr(dovecot, port_attr))
    )
    assert info == {"folders": ["INBOX", "Sent"], "gmail": False}


def test_wrong_password(dovecot, mail_user):
    acc = account(dovecot, mail_user, password="wrong-Secret-1", oauth_token=None)
    assert "Secret" not in repr(acc) and "Secret" not in str(acc)  # never printed or logged
    with pytest.raises(AuthError) as err:
        check_connection(acc)
    assert err.value.kind == "auth"
    assert "authentication failed" in err.value.server_text.lower()
    assert "Secret" not in str(err.value) and "Secret" not in repr(err.value)


def test_untrusted_certificate(dovecot, mail_user):
    with pytest.raises(TlsError) as err:
        check_connection(account(dovecot, mail_user, ca_file=None))
    assert "certificate" in err.value.server_text.lower()


def test_unreachable(dovecot, mail_user):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(NetworkError):
        check_connection(account(dovecot, mail_user, port=free))


def test_unparseable_message_is_reported_and_passed(dovecot, mailbox, monkeypatch):
    real = sync_module.parse_message

    def picky(raw, **kw):
        if b"Mail 1" in raw:
            raise ValueError("cannot read this one")
        return real(raw, **kw)

    monkeypatch.setattr(sync_module, "parse_message", picky)
    acc = account(dovecot, mailbox)
    store = MemoryStore(CUSTOMERS).sync(acc)
    bad = [o for o in store.outcomes if o.status == "unparseable"]
    assert [(o.folder, o.uid) for o in bad] == [("INBOX", "1")]
    assert bad[0].reason == "body: ValueError"  # never the exception's text (logs)
    assert store.state.folders["INBOX"].high >= 5  # the cursor moved past it
    assert store.subjects() == ["Mail 3", "Mail 6"]


def test_silent_server_times_out(mail_user):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never greets
        acc = Account(
            host="127.0.0.1",
            port=silent.getsockname()[1],
            security="ssl",
            login=mail_user.login,
            password="x",
            timeout=0.5,
        )
        with pytest.raises(NetworkError) as err:  # a hang here would be the failure
            check_connection(acc)
    assert "did not answer in time" in err.value.message
