"""run_sync and its port against a real Dovecot: the report, messages ready to store,
the in-flight hook, passing a message that kills the worker, throttling, and
connections dropped under TLS."""

from __future__ import annotations

import imaplib
import poplib

import pytest
from mailgen import make_message
from proxy import DroppingProxy
from test_sync_imap import CUSTOMERS, account, put
from test_sync_pop3 import pop3

from crm_gmail_sync.engine import (
    DUPLICATE,
    NOT_CUSTOMER,
    SKIPPED_REASON,
    STORED,
    UNPARSEABLE,
    AuthError,
    MailboxPort,
    NetworkError,
    SyncState,
    ThrottledError,
    TlsError,
    check_connection,
    run_sync,
)
from crm_gmail_sync.engine.sync import Options
from crm_gmail_sync.engine.transport_imap import ImapTransport
from crm_gmail_sync.engine.transport_pop3 import Pop3Transport


class MemoryPort:
    """The caller's side of the port, in memory: what the Odoo layer does with a database.

    ``after_store(port, batch)``, if set, runs after each stored batch (a test's hook).
    """

    def __init__(self, customers=CUSTOMERS, state=None):
        self.customer_set = {c.lower() for c in customers}
        self.messages, self.twice, self.batches, self.state = {}, [], [], state
        self.after_store = None

    def customers(self, addresses):
        return {a for a in addresses if a in self.customer_set}

    def known_keys(self, keys):
        return {k for k in keys if k in self.messages}

    def store(self, batch):
        for msg in batch.messages:
            if msg.dedupe_key in self.messages:
                self.twice.append(msg.dedupe_key)
            self.messages[msg.dedupe_key] = msg
        self.batches.append(batch)
        self.state = batch.state
        if self.after_store:
            self.after_store(self, batch)

    def sync(self, acc, **options):
        return run_sync(acc, self.state, self, Options(**options))

    def outcomes(self, status=None):
        return [o for b in self.batches for o in b.outcomes if status in (None, o.status)]


def test_report_counts_batches_and_state(dovecot, mail_user):
    u = mail_user
    put(dovecot, u, 1, "anna@customer.example", u.login)
    put(dovecot, u, 2, "news@shop.example", u.login)
    put(dovecot, u, 3, "bob@customer.example", u.login)
    put(dovecot, u, 4, u.login, "anna@customer.example", folder="Sent")
    acc = account(dovecot, u)
    port = MemoryPort()
    assert isinstance(port, MailboxPort)
    report = port.sync(acc, batch_size=2)
    assert report.finished
    assert report.counts == {STORED: 3, NOT_CUSTOMER: 1, DUPLICATE: 0, UNPARSEABLE: 0}
    assert report.batches == len(port.batches) >= 3
    assert report.state.to_json() == port.state.to_json()
    assert [b.folder for b in port.batches] == sorted(
        (b.folder for b in port.batches), key="INBOX Sent".split().index
    )
    summed = {}
    for batch in port.batches:
        for status, n in batch.counts.items():
            summed[status] = summed.get(status, 0) + n
    assert summed == report.counts
    # nothing new: no batch, the state it started from
    again = port.sync(acc)
    assert again.finished and again.batches == 0 and sum(again.counts.values()) == 0
    assert again.state.to_json() == port.state.to_json()


def test_messages_come_ready_to_store(dovecot, mail_user):
    u = mail_user
    raw = make_message(
        "Anna Customer <anna@customer.example>",
        [u.login, "bob@customer.example", "anna@customer.example"],
        "Offer",
        msgid="<offer@x>",
        cc=["carl@partner.example"],
        html="<html><head><style>p{}</style></head><body><p>Dear Olivia,</p>"
        "<script>x()</script><p>the <b>offer</b>.</p></body></html>",
    )
    dovecot.append(u.login, "INBOX", raw)
    sent = make_message(
        u.login, "bob@customer.example", "Re", msgid="<re@x>", bcc=["anna@customer.example"]
    )
    dovecot.append(u.login, "Sent", sent)
    port = MemoryPort()
    port.sync(account(dovecot, u))
    msg = port.messages["mid:<offer@x>"]
    assert [(r, a.email, a.name) for r, a in msg.roles] == [
        ("from", "anna@customer.example", "Anna Customer"),
        ("to", "bob@customer.example", ""),
        ("cc", "carl@partner.example", ""),
    ]  # the owner never, each address once
    assert msg.preview == "Dear Olivia, the offer."
    reply = port.messages["mid:<re@x>"]
    assert [(r, a.email) for r, a in reply.roles] == [
        ("to", "bob@customer.example"),
        ("bcc", "anna@customer.example"),  # the owner's own Bcc
    ]
    assert reply.preview == "Hello there."


def test_a_sync_error_carries_the_report_of_what_was_stored(dovecot, mail_user, monkeypatch):
    for n in range(1, 5):
        put(dovecot, mail_user, n, "anna@customer.example", mail_user.login, days_ago=n)
    real = ImapTransport.fetch_bodies
    calls = []

    def second_fails(self, uids):
        calls.append(uids)
        if len(calls) == 2:
            raise NetworkError(server_text="cut")
        return real(self, uids)

    monkeypatch.setattr(ImapTransport, "fetch_bodies", second_fails)
    port = MemoryPort()
    with pytest.raises(NetworkError) as err:
        port.sync(account(dovecot, mail_user), batch_size=2)
    report = err.value.report
    assert report.batches == 1 and report.counts[STORED] == 2 and not report.finished
    assert report.state.to_json() == port.state.to_json()
    monkeypatch.setattr(ImapTransport, "fetch_bodies", real)
    assert port.sync(account(dovecot, mail_user)).counts[STORED] == 2
    assert len(port.messages) == 4 and not port.twice


def test_a_failing_store_propagates_and_closes_the_connection(dovecot, mail_user, monkeypatch):
    put(dovecot, mail_user, 1, "anna@customer.example", mail_user.login)
    closed = []
    real_close = ImapTransport.close
    monkeypatch.setattr(ImapTransport, "close", lambda self: closed.append(1) or real_close(self))

    class Full(Exception):
        pass

    port = MemoryPort()
    port.store = lambda batch: (_ for _ in ()).throw(Full())
    with pytest.raises(Full):
        run_sync(account(dovecot, mail_user), None, port)
    assert closed  # at once, not whenever the generator is collected


def test_wrong_password_through_run_sync(dovecot, mail_user):
    with pytest.raises(AuthError) as err:
        MemoryPort().sync(account(dovecot, mail_user, password="wrong"))
    assert err.value.report.batches == 0


# ------------------------------------------------------------------ in flight, isolate, skip
def test_on_fetch_names_the_messages_in_flight_before_their_download(
    dovecot, mail_user, monkeypatch
):
    u = mail_user
    for n in range(1, 6):
        put(dovecot, u, n, "anna@customer.example" if n != 3 else "x@web.example", u.login)
    events = []
    real = ImapTransport.fetch_bodies

    def fetch(self, uids):
        events.append(("download", sorted(uids)))
        return real(self, uids)

    monkeypatch.setattr(ImapTransport, "fetch_bodies", fetch)
    on_fetch = lambda folder, uids: events.append(("in flight", folder, uids))  # noqa: E731
    MemoryPort().sync(account(dovecot, u), on_fetch=on_fetch)
    assert events == [("in flight", "INBOX", ["5", "4", "2", "1"]), ("download", [1, 2, 4, 5])]
    # with isolate, one at a time, headers announced too: see test_isolate.py


def test_a_skipped_message_is_passed_remembered_and_retried(dovecot, mail_user, monkeypatch):
    u = mail_user
    for n in range(1, 4):
        put(dovecot, u, n, "anna@customer.example", u.login)
    acc = account(dovecot, u)
    downloaded = []
    real = ImapTransport.fetch_bodies
    monkeypatch.setattr(
        ImapTransport,
        "fetch_bodies",
        lambda self, uids: downloaded.extend(uids) or real(self, uids),
    )
    port = MemoryPort()
    report = port.sync(acc, skip=frozenset({("INBOX", "2"), ("INBOX", "99")}))
    assert 2 not in downloaded and sorted(downloaded) == [1, 3]
    skipped = port.outcomes(UNPARSEABLE)
    assert [(o.folder, o.uid, o.reason) for o in skipped] == [("INBOX", "2", SKIPPED_REASON)]
    assert skipped[0].dedupe_key == ""  # passed before its headers were read
    assert report.counts[UNPARSEABLE] == 1 and report.finished
    assert port.state.folders["INBOX"].skipped == ["2"]
    assert port.state.folders["INBOX"].high == 3  # the cursor went past it
    # later runs leave it alone, and remember it
    downloaded.clear()
    assert port.sync(acc).batches == 0 and not downloaded
    put(dovecot, u, 4, "anna@customer.example", u.login)
    port.sync(acc)
    assert downloaded == [4] and port.state.folders["INBOX"].skipped == ["2"]
    # retried on request, although STATUS says nothing is new
    downloaded.clear()
    report = port.sync(acc, retry_skipped=True)
    assert downloaded == [2] and report.counts[STORED] == 1
    assert port.state.folders["INBOX"].skipped == []
    assert len(port.messages) == 4 and not port.twice
    assert port.sync(acc, retry_skipped=True).batches == 0


def test_a_skipped_message_still_skipped_on_retry_and_gone_ones_forgotten(dovecot, mail_user):
    u = mail_user
    for n in range(1, 4):
        put(dovecot, u, n, "anna@customer.example", u.login)
    acc = account(dovecot, u)
    port = MemoryPort()
    port.sync(acc, skip=frozenset({("INBOX", "1"), ("INBOX", "3")}))
    assert sorted(port.state.folders["INBOX"].skipped) == ["1", "3"]
    conn = dovecot.imap(u.login)
    conn.select("INBOX")
    conn.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    conn.expunge()
    conn.logout()
    port.sync(acc, retry_skipped=True, skip=frozenset({("INBOX", "1")}))
    assert port.state.folders["INBOX"].skipped == ["1"]  # 3 is gone, 1 skipped again
    assert sorted(port.messages) == [f"mid:<m2.{u.login}>"]


def test_skipping_one_copy_lets_the_other_copy_be_stored(dovecot, mail_user):
    raw = make_message(mail_user.login, "anna@customer.example", "Both", msgid="<both@x>")
    dovecot.append(mail_user.login, "INBOX", raw)
    dovecot.append(mail_user.login, "Sent", raw)
    port = MemoryPort()
    port.sync(account(dovecot, mail_user), skip=frozenset({("INBOX", "1")}))
    assert list(port.messages) == ["mid:<both@x>"]
    assert port.messages["mid:<both@x>"].header.folder == "Sent"


def test_pop3_skip_and_retry(dovecot, mail_user):
    u = mail_user
    for n in range(1, 4):
        put(dovecot, u, n, "anna@customer.example", u.login)
    acc = pop3(dovecot, u)
    port = MemoryPort()
    uidls = [uidl for _, uidl in _uidls(dovecot, u)]
    port.sync(acc, skip=frozenset({("INBOX", uidls[1])}))
    assert port.state.folders["INBOX"].skipped == [uidls[1]]
    assert sorted(port.messages) == [f"mid:<m{n}.{u.login}>" for n in (1, 3)]
    assert port.sync(acc).batches == 0
    report = port.sync(acc, retry_skipped=True)
    assert report.counts[STORED] == 1 and port.state.folders["INBOX"].skipped == []
    assert len(port.messages) == 3 and not port.twice


def _uidls(dovecot, user):
    from crm_gmail_sync.engine.transport_pop3 import Pop3Transport

    with Pop3Transport(pop3(dovecot, user)) as tr:
        return tr.uidl()


def test_an_old_cursor_without_skipped_goes_on(dovecot, mail_user):
    u = mail_user
    put(dovecot, u, 1, "anna@customer.example", u.login)
    first = MemoryPort()
    first.sync(account(dovecot, u))
    old = {
        name: {k: v for k, v in c.items() if k != "skipped"}
        for name, c in first.state.to_json().items()
    }
    put(dovecot, u, 2, "anna@customer.example", u.login)
    port = MemoryPort(state=SyncState.from_json(old))
    port.messages = dict(first.messages)
    assert port.sync(account(dovecot, u)).counts[STORED] == 1


# ------------------------------------------------------------------ throttling
def test_too_many_connections_is_a_throttle_not_a_wrong_password(dovecot, mail_user):
    """Dovecot answers the login ``NO [LIMIT] Maximum number of connections from user+IP
    exceeded``, as Gmail answers "Too many simultaneous connections": the mailbox waits
    and tries again, it is not stopped for new credentials."""
    u = mail_user
    put(dovecot, u, 1, "anna@customer.example", u.login)
    acc = account(dovecot, u)
    held = []
    try:
        for _ in range(100):  # the fixture's mail_max_userip_connections
            conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
            conn.login(u.login, u.password)
            held.append(conn)
        with pytest.raises(ThrottledError) as err:
            check_connection(acc)
        assert not isinstance(err.value, AuthError) and err.value.kind == "throttled"
        assert "maximum number of connections" in err.value.server_text.lower()
        with pytest.raises(ThrottledError):
            MemoryPort().sync(acc)
    finally:
        for conn in held:
            conn.logout()
    assert MemoryPort().sync(acc).counts[STORED] == 1


def test_a_throttle_answered_to_a_fetch(dovecot, mail_user, monkeypatch):
    """Gmail may answer any command ``NO [OVERQUOTA] ...``: the transport calls that a
    protocol error; the run reports it as the throttle it is."""
    put(dovecot, mail_user, 1, "anna@customer.example", mail_user.login)
    real = imaplib.IMAP4.uid

    def overquota(self, command, *args):
        if command.upper() == "FETCH":
            return "NO", [b"[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"]
        return real(self, command, *args)

    monkeypatch.setattr(imaplib.IMAP4, "uid", overquota)
    with pytest.raises(ThrottledError) as err:
        MemoryPort().sync(account(dovecot, mail_user))
    assert "[OVERQUOTA]" in err.value.server_text


# ------------------------------------------------------------------ dropped under TLS
# The proxy closes the TCP connection, without TLS's goodbye: what a server, a load balancer
# or a NAT timing out does. That is a dropped connection (retried soon), never a
# certificate problem nor a wrong password.
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_connection_cut_in_the_tls_handshake_is_a_network_failure(dovecot, mail_user, protocol):
    port = dovecot.imaps_port if protocol == "imap" else dovecot.pop3s_port
    with DroppingProxy(port, drop_after_server_bytes=100) as proxy:
        acc = account(dovecot, mail_user, port=proxy.port, protocol=protocol)
        with pytest.raises(NetworkError) as err:
            check_connection(acc)
        assert proxy.drops == 1 and not isinstance(err.value, TlsError)
        assert "eof" in err.value.server_text.lower()
        assert check_connection(acc)["folders"]  # the next connection goes through


def test_a_pop3_connection_cut_at_the_login_is_no_wrong_password(dovecot, mail_user, monkeypatch):
    with DroppingProxy(dovecot.pop3s_port) as proxy:
        real = poplib.POP3.user

        def cut_user(self, user):
            proxy.arm(1)  # the answer to USER breaks off
            return real(self, user)

        monkeypatch.setattr(poplib.POP3, "user", cut_user)
        with pytest.raises(NetworkError) as err:
            check_connection(pop3(dovecot, mail_user, port=proxy.port))
        assert proxy.drops == 1 and not isinstance(err.value, AuthError)


def test_a_pop3s_download_cut_is_a_network_failure_and_the_next_run_goes_on(
    dovecot, mail_user, monkeypatch
):
    big = [("f.bin", "application/octet-stream", bytes(range(256)) * 200)]
    for n in range(1, 4):
        put(dovecot, mail_user, n, "anna@customer.example", mail_user.login, attachments=big)
    with DroppingProxy(dovecot.pop3s_port) as proxy:
        acc = pop3(dovecot, mail_user, port=proxy.port)
        real = Pop3Transport.message
        calls = []

        def cut_second(self, num):
            calls.append(num)
            if len(calls) == 2:
                proxy.arm(20_000)  # inside the message
            return real(self, num)

        monkeypatch.setattr(Pop3Transport, "message", cut_second)
        port = MemoryPort()
        with pytest.raises(NetworkError) as err:
            port.sync(acc, isolate=True)
        assert proxy.drops == 1 and err.value.report.counts[STORED] == 1
        monkeypatch.setattr(Pop3Transport, "message", real)
        assert port.sync(acc).counts[STORED] == 2
    assert len(port.messages) == 3 and not port.twice
