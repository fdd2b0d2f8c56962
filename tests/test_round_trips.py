"""The IMAP conversation of a sync takes as few round trips as the server allows (issue 7).

Counted, never timed: ``DroppingProxy`` counts the client's turns on the wire and the ``commands``
fixture records every command line the client sends. Two real servers: the session's Dovecot
(capabilities in its greeting and login answer, SASL-IR, LIST-STATUS, as Gmail offers them after
login) and ``plain_dovecot``, which announces neither SASL-IR nor LIST-STATUS. ``GimapFront`` puts
Gmail's greeting, which carries no capabilities, before either.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import itertools
import re
import secrets
import select
import socket
import ssl
import threading
from typing import NamedTuple

import pytest
from dovecot import Dovecot
from mailgen import make_message
from memstore import MemoryStore
from proxy import DroppingProxy

from crm_gmail_sync.engine import (
    STORED,
    Account,
    AuthError,
    SyncError,
    check_connection,
    transport_imap,
)
from crm_gmail_sync.engine.transport_imap import ImapTransport

CUSTOMER = "anna@customer.example"
NOW = dt.datetime.now(dt.timezone.utc)
# The proxy's delay makes "the client closed before the LOGOUT's answer" plain to see: the
# answer cannot be back within 0.1 s, the close follows the LOGOUT at once. Nothing is timed.
LATENCY = 0.1
LIST_STATUS = '"" "*" RETURN (SPECIAL-USE STATUS (UIDVALIDITY UIDNEXT))'
# what plain_dovecot announces, before and after login: Dovecot's list less SASL-IR, LIST-STATUS
PLAIN_CAPABILITIES = (
    "IMAP4rev1 LITERAL+ ID ENABLE IDLE CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED"
    " SPECIAL-USE UNSELECT"
)


class PlainDovecot(Dovecot):
    """The test Dovecot with ``imap_capability`` set: it still serves the extensions it does not
    announce, but a client that follows the announcement never uses them."""

    def _config(self) -> str:
        return super()._config() + f"imap_capability = {PLAIN_CAPABILITIES}\n"


@pytest.fixture(scope="module")
def plain_dovecot(dovecot):
    """A running ``PlainDovecot`` (skipped, or failed on CI, as ``dovecot`` is)."""
    server = PlainDovecot()
    server.start()
    yield server
    server.stop()


class MailUser(NamedTuple):
    login: str
    password: str


_numbers = itertools.count(1)


def new_user(server: Dovecot) -> MailUser:
    """A new user of ``server`` (the ``mail_user`` fixture serves the session's Dovecot only)."""
    user = MailUser(f"rt{next(_numbers)}@example.test", secrets.token_urlsafe(12))
    server.add_user(user.login, user.password)
    return user


def account(server: Dovecot, user: MailUser, **kw) -> Account:
    values = dict(
        host=server.host,
        port=server.imaps_port,
        security="ssl",
        login=user.login,
        password=user.password,
        ca_file=server.ca_file,
        owner_addresses=(user.login,),
        timeout=10,
    )
    values.update(kw)
    return Account(**values)


def put(server: Dovecot, user: MailUser, n: int, folder: str = "INBOX") -> None:
    date = NOW - dt.timedelta(days=1)
    frm, to = (user.login, CUSTOMER) if folder == "Sent" else (CUSTOMER, user.login)
    raw = make_message(frm, to, f"Mail {n}", msgid=f"<m{n}.{user.login}>", date=date)
    server.append(user.login, folder, raw, date=date)


@pytest.fixture
def commands(monkeypatch) -> list[tuple[str, str]]:
    """Every IMAP command sent from now on, as ``(name, arguments)``, by any imaplib connection
    (the fixture's own helpers too: clear it before the part under test)."""
    sent = []
    real = imaplib.IMAP4.send

    def send(self, data):
        for line in bytes(data).split(b"\r\n"):
            tag, _, rest = line.partition(b" ")
            if rest and tag.startswith(self.tagpre):  # not a continuation answer
                name, _, args = rest.decode("utf-8", "replace").partition(" ")
                sent.append((name.upper(), args))
        return real(self, data)

    monkeypatch.setattr(imaplib.IMAP4, "send", send)
    return sent


def names(commands) -> list[str]:
    return [name for name, _ in commands]


@pytest.fixture
def synced(dovecot, mail_user):
    """``mail_user`` with mail in INBOX and Sent, synced once: ``(store, account)``."""
    put(dovecot, mail_user, 1)
    put(dovecot, mail_user, 2, "Sent")
    acc = account(dovecot, mail_user)
    store = MemoryStore([CUSTOMER]).sync(acc)
    assert store.subjects() == ["Mail 1", "Mail 2"]
    store.outcomes.clear()
    return store, acc


# ------------------------------------------------------------------ the idle sync
def test_idle_sync_takes_four_round_trips_after_tcp(dovecot, mail_user, synced, commands):
    store, acc = synced
    with DroppingProxy(dovecot.imaps_port, latency=LATENCY) as proxy:
        commands.clear()
        store.sync(account(dovecot, mail_user, port=proxy.port))
    assert store.outcomes == []  # nothing new
    # no CAPABILITY (greeting and login answer carried them), no STATUS (LIST brought them)
    assert names(commands) == ["AUTHENTICATE", "LIST", "LOGOUT"]
    mechanism, initial = commands[0][1].split(" ")  # the initial response on the same line
    assert mechanism == "PLAIN" and initial
    assert commands[1][1] == LIST_STATUS
    # TLS hello and finished, AUTHENTICATE, LIST: 4 turns waited for (+ the TCP connect = 5),
    # and the LOGOUT, after which the client closed without waiting (before issue 7: 9 and 9)
    assert proxy.round_trips[0] <= 4 and proxy.turns == [proxy.round_trips[0] + 1]


def test_statuses_from_list_serve_one_status_each(dovecot, mail_user, synced, commands):
    store, acc = synced
    put(dovecot, mail_user, 3)  # INBOX: UIDs 1 and 2, UIDNEXT 3
    with ImapTransport(acc) as tr:
        assert tr.sync_folders() == ["INBOX", "Sent"]
        commands.clear()
        inbox = tr.status("INBOX")
        assert tr.status("Sent") == (dovecot.uidvalidity(mail_user.login, "Sent"), 2)
        assert commands == []  # both from the LIST
        assert inbox == (dovecot.uidvalidity(mail_user.login, "INBOX"), 3)
        assert tr.status("INBOX") == inbox  # asked this time
        assert names(commands) == ["STATUS"]
    put(dovecot, mail_user, 4, "Sent")
    store.sync(acc)  # what the statuses announce is fetched
    assert sorted((o.folder, o.uid, o.status) for o in store.outcomes) == [
        ("INBOX", "2", STORED),
        ("Sent", "2", STORED),
    ]


def test_starttls_asks_capabilities_again_after_tls(dovecot, mail_user, synced, commands):
    store, _ = synced
    commands.clear()
    store.sync(account(dovecot, mail_user, port=dovecot.imap_port, security="starttls"))
    assert store.outcomes == []
    # none before STARTTLS (the greeting had them), but the pre-TLS list is not trusted
    assert names(commands) == ["STARTTLS", "CAPABILITY", "AUTHENTICATE", "LIST", "LOGOUT"]


# ------------------------------------------------------------------ logins
@pytest.mark.parametrize(
    "server,command", [("dovecot", "AUTHENTICATE PLAIN"), ("plain_dovecot", "LOGIN")]
)
def test_wrong_password_is_an_auth_error(request, server, command, commands):
    srv = request.getfixturevalue(server)
    acc = account(srv, new_user(srv), password="wrong-Secret-1")
    commands.clear()
    with pytest.raises(AuthError) as err:
        check_connection(acc)
    assert err.value.kind == "auth"
    assert "authentication failed" in err.value.server_text.lower()
    assert "Secret" not in str(err.value) and "Secret" not in repr(err.value)
    sent = [f"{name} {args}" for name, args in commands]
    assert sent[0].startswith(command + " ") and names(commands)[1:] == ["LOGOUT"]


@pytest.mark.parametrize("server,initial_response", [("dovecot", 1), ("plain_dovecot", 0)])
def test_xoauth2_login_and_revoked_token(request, server, initial_response, commands):
    srv = request.getfixturevalue(server)
    user = new_user(srv)
    token = "ya29." + secrets.token_urlsafe(32)
    srv.add_token(user.login, token)
    acc = account(srv, user, password=None, oauth_token=token)
    commands.clear()
    assert check_connection(acc) == {"folders": ["INBOX", "Sent"], "gmail": False}
    assert commands[0][0] == "AUTHENTICATE"
    assert commands[0][1].split(" ")[0] == "XOAUTH2"
    assert len(commands[0][1].split(" ")) == 1 + initial_response
    srv.revoke_token(token)
    # refused: a JSON challenge, answered with an empty line, then the NO (no 10 s timeout)
    with pytest.raises(AuthError) as err:
        check_connection(acc)
    assert "AUTHENTICATIONFAILED" in err.value.server_text
    assert token not in str(err.value)


# ------------------------------------------------------------------ fallbacks
def test_server_without_sasl_ir_and_list_status(plain_dovecot, commands):
    user = new_user(plain_dovecot)
    put(plain_dovecot, user, 1)
    put(plain_dovecot, user, 2, "Sent")
    acc = account(plain_dovecot, user)
    store = MemoryStore([CUSTOMER]).sync(acc)
    assert store.subjects() == ["Mail 1", "Mail 2"]
    store.outcomes.clear()
    commands.clear()
    store.sync(acc)
    assert store.outcomes == []
    # as before issue 7, less the CAPABILITY commands: the greeting and login answer had them
    assert names(commands) == ["LOGIN", "LIST", "STATUS", "STATUS", "LOGOUT"]
    assert commands[1][1] == '"" "*" RETURN (SPECIAL-USE)'
    put(plain_dovecot, user, 3)
    put(plain_dovecot, user, 4, "Sent")
    store.sync(acc)
    assert store.subjects() == [f"Mail {n}" for n in range(1, 5)] and not store.stored_twice


def test_list_status_refused(dovecot, mail_user, synced, monkeypatch, commands):
    store, acc = synced
    monkeypatch.setattr(transport_imap, "_LIST_STATUS", "STATUS (UIDVALIDITY UIDNEXT NONSENSE)")
    put(dovecot, mail_user, 3)
    commands.clear()
    store.sync(acc)
    assert [(o.folder, o.status) for o in store.outcomes] == [("INBOX", STORED)]
    # BAD "Invalid status item": the LIST of old, then a STATUS per folder
    assert names(commands)[:4] == ["AUTHENTICATE", "LIST", "LIST", "STATUS"]
    assert commands[2][1] == '"" "*" RETURN (SPECIAL-USE)'
    assert names(commands).count("STATUS") == 2


def test_capabilities_not_volunteered(dovecot, mail_user, synced, monkeypatch, commands):
    """A server whose greeting and login answer carry no capabilities is asked, once each."""
    store, acc = synced

    def silent(conn):
        conn.untagged_responses.pop("CAPABILITY", None)  # as if never sent

    monkeypatch.setattr(transport_imap, "_announced", silent)
    put(dovecot, mail_user, 3)
    commands.clear()
    store.sync(acc)
    assert [(o.folder, o.status) for o in store.outcomes] == [("INBOX", STORED)]
    assert names(commands)[:4] == ["CAPABILITY", "AUTHENTICATE", "CAPABILITY", "LIST"]
    assert commands[3][1] == LIST_STATUS  # LIST-STATUS learnt from the second CAPABILITY
    assert "STATUS" not in names(commands)


# ------------------------------------------------------------------ Gmail's greeting
# as Gmail greets (the last word differs per connection); no [CAPABILITY ...] code
GIMAP_GREETING = b"* OK Gimap ready for requests from 127.0.0.1 q7mb1234567wrb\r\n"
# an AUTHENTICATE with an initial response: a syntax error to a server without SASL-IR
_AUTHENTICATE_IR = re.compile(rb"(\S+) AUTHENTICATE \S+ \S+", re.IGNORECASE)


class GimapFront:
    """Gmail's front door before a test Dovecot's plain IMAP port, on loopback.

    Each connection is greeted with ``GIMAP_GREETING`` instead of the Dovecot's greeting. With
    ``tls`` the front ends implicit TLS with the Dovecot's own certificate (connect to ``port``
    as to its ``imaps_port``); without, the connection stays plain and a STARTTLS goes through
    to the Dovecot. With ``sasl_ir=False`` (TLS only) an AUTHENTICATE carrying an initial
    response is answered BAD by the front, as by a server without SASL-IR (Dovecot takes it
    whatever it announces); ``refused`` counts them. Everything else passes unchanged.
    """

    def __init__(self, server: Dovecot, tls: bool = True, sasl_ir: bool = True):
        assert tls or sasl_ir, "the front cannot read commands inside a STARTTLS session"
        self.target = (server.host, server.imap_port)
        self.refused = 0
        self._sasl_ir = sasl_ir
        self._tls = None
        if tls:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(
                server.base / "tls" / "server.pem", server.base / "tls" / "server.key"
            )
        self._closed = False
        self._workers: list[threading.Thread] = []
        self._listener = socket.create_server((server.host, 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._closed = True  # the connections notice within 0.1 s and end
        self._thread.join()
        self._listener.close()
        for worker in self._workers:
            worker.join(5)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            worker = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def _serve(self, sock: socket.socket) -> None:
        """One connection, in one thread: an ``SSLSocket`` is never used by two at once."""
        sock.settimeout(10)
        try:
            client = self._tls.wrap_socket(sock, server_side=True) if self._tls else sock
            with client, socket.create_connection(self.target, timeout=10) as upstream:
                greeting = b""
                while b"\r\n" not in greeting:
                    chunk = upstream.recv(4096)
                    if not chunk:
                        return
                    greeting += chunk
                assert greeting.startswith(b"* OK [CAPABILITY "), greeting
                client.sendall(GIMAP_GREETING + greeting.split(b"\r\n", 1)[1])
                self._relay(client, upstream)
        except OSError:  # ssl.SSLError included: the client went away
            pass
        finally:
            sock.close()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        pending = b""  # the client's last line, until complete
        while not self._closed:
            if isinstance(client, ssl.SSLSocket) and client.pending():
                ready = [client]  # decrypted already: select() cannot see it
            else:
                ready = select.select([client, upstream], [], [], 0.1)[0]
            if upstream in ready:
                if not (data := upstream.recv(65536)):
                    return
                client.sendall(data)
            if client in ready:
                if not (data := client.recv(65536)):
                    return
                if self._sasl_ir:
                    upstream.sendall(data)
                    continue
                *lines, pending = (pending + data).split(b"\r\n")
                for line in lines:
                    if m := _AUTHENTICATE_IR.fullmatch(line):
                        self.refused += 1
                        client.sendall(m[1] + b" BAD Error in IMAP command received by server.\r\n")
                    else:
                        upstream.sendall(line + b"\r\n")


def test_gmail_greeting_idle_sync_takes_four_round_trips_after_tcp(
    dovecot, mail_user, synced, commands
):
    store, _ = synced
    with GimapFront(dovecot) as front, DroppingProxy(front.port, latency=LATENCY) as proxy:
        commands.clear()
        store.sync(account(dovecot, mail_user, port=proxy.port))
    assert store.outcomes == []
    # no CAPABILITY: the greeting had none, but is known; the login answer had them
    assert names(commands) == ["AUTHENTICATE", "LIST", "LOGOUT"]
    assert commands[0][1].split(" ")[0] == "PLAIN" and len(commands[0][1].split(" ")) == 2
    assert commands[1][1] == LIST_STATUS
    # TLS hello and finished, AUTHENTICATE, LIST (+ the TCP connect = 5); before: CAPABILITY too
    assert proxy.round_trips[0] <= 4 and proxy.turns == [proxy.round_trips[0] + 1]


def test_gmail_greeting_assumption_does_not_outlive_the_login(dovecot, mail_user):
    """The assumed list (X-GM-EXT-1 included) gives way to what the server says after login."""
    with GimapFront(dovecot) as front:
        with ImapTransport(account(dovecot, mail_user, port=front.port)) as tr:
            assert "LIST-STATUS" in tr.capabilities  # from the login's answer
            assert not tr.is_gmail and "XLIST" not in tr.capabilities
            assert tr.sync_folders() == ["INBOX", "Sent"]


def test_gmail_greeting_wrong_password_is_an_auth_error(dovecot, commands):
    user = new_user(dovecot)
    with GimapFront(dovecot) as front:
        commands.clear()
        with pytest.raises(AuthError) as err:
            check_connection(account(dovecot, user, port=front.port, password="wrong-Secret-1"))
    assert "authentication failed" in err.value.server_text.lower()
    assert "Secret" not in str(err.value)
    # a NO is a refusal: not tried again, no CAPABILITY asked after it
    assert names(commands) == ["AUTHENTICATE", "LOGOUT"]


def test_gmail_greeting_without_sasl_ir_falls_back(plain_dovecot, commands):
    """The assumption is wrong: the AUTHENTICATE is answered BAD, CAPABILITY asked, LOGIN used."""
    user = new_user(plain_dovecot)
    put(plain_dovecot, user, 1)
    put(plain_dovecot, user, 2, "Sent")
    with GimapFront(plain_dovecot, sasl_ir=False) as front:
        acc = account(plain_dovecot, user, port=front.port)
        store = MemoryStore([CUSTOMER]).sync(acc)
        assert store.subjects() == ["Mail 1", "Mail 2"]
        store.outcomes.clear()
        commands.clear()
        store.sync(acc)
        assert store.outcomes == []
        assert names(commands) == [
            "AUTHENTICATE",  # PLAIN with the initial response: BAD
            "CAPABILITY",
            "LOGIN",
            "LIST",
            "STATUS",
            "STATUS",
            "LOGOUT",
        ]
        assert front.refused == 2  # one per session, each followed by a working login
        put(plain_dovecot, user, 3)
        put(plain_dovecot, user, 4, "Sent")
        store.sync(acc)  # Gmail's X-GM-* items not asked of a server that never offered them
        assert store.subjects() == [f"Mail {n}" for n in range(1, 5)] and not store.stored_twice
        commands.clear()
        with pytest.raises(AuthError) as err:
            check_connection(account(plain_dovecot, user, port=front.port, password="wrong-1"))
    assert "authentication failed" in err.value.server_text.lower()
    assert names(commands) == ["AUTHENTICATE", "CAPABILITY", "LOGIN", "LOGOUT"]


def test_gmail_greeting_without_sasl_ir_xoauth2(plain_dovecot, commands):
    user = new_user(plain_dovecot)
    token = "ya29." + secrets.token_urlsafe(32)
    plain_dovecot.add_token(user.login, token)
    with GimapFront(plain_dovecot, sasl_ir=False) as front:
        acc = account(plain_dovecot, user, port=front.port, password=None, oauth_token=token)
        commands.clear()
        assert check_connection(acc) == {"folders": ["INBOX", "Sent"], "gmail": False}
        # with its initial response (BAD), then without it, answering the server's "+"
        assert names(commands)[:3] == ["AUTHENTICATE", "CAPABILITY", "AUTHENTICATE"]
        assert [len(args.split(" ")) for _, args in commands[0:3:2]] == [2, 1]
        plain_dovecot.revoke_token(token)
        commands.clear()
        with pytest.raises(AuthError) as err:
            check_connection(acc)
    assert "AUTHENTICATIONFAILED" in err.value.server_text and token not in str(err.value)
    assert names(commands) == ["AUTHENTICATE", "CAPABILITY", "AUTHENTICATE", "LOGOUT"]


def test_gmail_greeting_fallback_only_once(dovecot, commands):
    """A server that answers BAD again, to the login its own CAPABILITY chose, is not retried."""
    user = new_user(dovecot)
    with GimapFront(dovecot, sasl_ir=False) as front:  # Dovecot announces SASL-IR all the same
        commands.clear()
        with pytest.raises(SyncError) as err:
            check_connection(account(dovecot, user, port=front.port))
    assert "BAD" in err.value.server_text
    assert names(commands) == ["AUTHENTICATE", "CAPABILITY", "AUTHENTICATE", "LOGOUT"]
    assert front.refused == 2


def test_gmail_greeting_starttls_asks_capabilities(dovecot, mail_user, synced, commands):
    """STARTTLS is asked about, never assumed; after TLS the list is asked again as always."""
    store, _ = synced
    with GimapFront(dovecot, tls=False) as front:
        commands.clear()
        store.sync(account(dovecot, mail_user, port=front.port, security="starttls"))
    assert store.outcomes == []
    assert names(commands) == [
        "CAPABILITY",
        "STARTTLS",
        "CAPABILITY",
        "AUTHENTICATE",
        "LIST",
        "LOGOUT",
    ]


# ------------------------------------------------------------------ the proxy itself
@pytest.fixture
def echo_port():
    """A loopback server that sends every connection's bytes back."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close alone would not)
    server.close()
    thread.join(5)


def receive(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n and (chunk := sock.recv(n - len(data))):
        data += chunk
    return data


def test_proxy_counts_turns_and_keeps_order(echo_port):
    with DroppingProxy(echo_port, latency=LATENCY) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
            sock.sendall(b"a")
            assert receive(sock, 1) == b"a"
            pieces = [b"%d," % i for i in range(200)]  # no answer in between: one turn
            for piece in pieces:
                sock.sendall(piece)
            assert receive(sock, len(b"".join(pieces))) == b"".join(pieces)
            sock.sendall(b"bye")  # and closed without waiting: a turn, no round trip
        with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
            sock.sendall(b"x")
            assert receive(sock, 1) == b"x"  # closed after the answer: a round trip
    assert proxy.turns == [3, 1] and proxy.round_trips == [2, 1]


def test_proxy_drops_after_delay(echo_port):
    with DroppingProxy(echo_port, drop_after_server_bytes=3, latency=LATENCY) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
            sock.sendall(b"hello")
            assert receive(sock, 5) == b"hel"  # then EOF
    assert proxy.drops == 1
