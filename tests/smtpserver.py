"""A real SMTP server on loopback for the tests (aiosmtpd), capturing the exact bytes.

:class:`SmtpServer` runs aiosmtpd in its own thread on a free 127.0.0.1 port, optionally
with implicit TLS or STARTTLS (the Dovecot fixture's certificate), AUTH PLAIN/LOGIN for
its users and XOAUTH2 for its tokens. Each accepted email is a :class:`Received`
(envelope sender, recipients, the bytes as the server got them). Behaviours for failure
tests: ``refuse`` (``{address: "550 ..."}`` at RCPT), ``data_reply`` (the answer to the
message), ``drop_after_data`` (keeps the message, then cuts the connection before
answering: the client cannot know it was accepted); ``on_received`` is called with each
accepted email (to file it in a Sent folder, as Gmail does).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import ssl
import threading
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# Loopback tests log in without TLS on purpose: aiosmtpd's warnings about it are noise
# (pyproject.toml filters the UserWarning for pytest).
logging.getLogger("mail.log").setLevel(logging.ERROR)


@contextlib.contextmanager
def server_errors_expected():
    """Mute the server's own error log (a client refusing its certificate, say)."""
    logger = logging.getLogger("mail.log")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class Behaviour:
    refuse: dict[str, str] = field(default_factory=dict)
    data_reply: str = ""
    drop_after_data: bool = False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        answer = self.server.behaviour.refuse.get(address.lower())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        behaviour = self.server.behaviour
        if behaviour.data_reply and not behaviour.data_reply.startswith("2"):
            return behaviour.data_reply
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        with self.server.lock:
            self.server.received.append(received)
        if self.server.on_received:
            self.server.on_received(received)
        if behaviour.drop_after_data:
            server.transport.abort()  # accepted, but the client never hears it
            return "250 2.0.0 OK"
        return behaviour.data_reply or "250 2.0.0 OK queued as test"

    async def auth_XOAUTH2(self, server, args):  # noqa: N802 - aiosmtpd's naming
        if len(args) < 2:
            return AuthResult(success=False)
        decoded = base64.b64decode(args[1]).decode()
        parts = dict(p.split("=", 1) for p in decoded.split("\x01") if "=" in p)
        login, token = parts.get("user", ""), parts.get("auth", "").removeprefix("Bearer ")
        if self.server.tokens.get(token) == login:
            return AuthResult(success=True, auth_data=LoginPassword(login.encode(), b""))
        # as Gmail: a JSON error as a challenge, then 535 after the client's empty answer
        await server.challenge_auth('{"status":"401","schemes":"bearer"}')
        return AuthResult(success=False)


class SmtpServer:
    """aiosmtpd on 127.0.0.1. ``security``: ``none``, ``starttls`` or ``ssl`` (then
    ``cert_file``/``key_file`` are needed); ``users`` ``{login: password}``, ``tokens``
    ``{token: login}``; with neither, no login is asked."""

    def __init__(
        self,
        security="none",
        users=None,
        tokens=None,
        cert_file=None,
        key_file=None,
        size_limit=33554432,
    ):
        self.security = security
        self.users = dict(users or {})
        self.tokens = dict(tokens or {})
        self.received: list[Received] = []
        self.behaviour = Behaviour()
        self.on_received = None  # called with each accepted Received (in the server's thread)
        self.lock = threading.Lock()
        self.port = free_port()
        kwargs = {}
        if security != "none":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert_file, key_file)
            kwargs["ssl_context" if security == "ssl" else "tls_context"] = context
            if security == "starttls":
                kwargs["require_starttls"] = True
        self.controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate if (self.users or self.tokens) else None,
            auth_required=bool(self.users or self.tokens),
            auth_require_tls=False,
            data_size_limit=size_limit,
            **kwargs,
        )

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            return AuthResult(success=self.users.get(login) == password)
        return AuthResult(success=False)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
