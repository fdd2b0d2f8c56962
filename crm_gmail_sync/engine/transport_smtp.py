"""SMTP: send one email through the mailbox's own server, and say exactly what happened.

What it is
----------
:class:`SmtpTransport` is one authenticated SMTP session (implicit TLS on 465, STARTTLS on
587, password / app password or an XOAUTH2 token), reused for every email of a mailbox in a
run. :meth:`SmtpTransport.send` hands over one message to all its recipients (``MAIL FROM``,
one ``RCPT TO`` each, ``DATA``) and either returns the server's acceptance or raises a
:class:`SendError` whose ``kind`` is one of :data:`SEND_KINDS` (the ``failure_type`` the
outbox shows) and whose ``temporary`` says whether trying again later can help.

How it works
------------
The stages are sent one by one (not ``smtplib.sendmail``), so that a failure is known to
be *before* the message left (nothing sent: safe to try again) or *after* its last byte
(:data:`SEND_UNKNOWN`: the server may have accepted it). The caller never retries an
unknown outcome blindly: it looks the Message-ID up in the Sent folder first.

A recipient refused at ``RCPT`` aborts the whole email (``RSET``): sending it to the others
and later again to all would send it twice; the user corrects the address and sends again.
"""

from __future__ import annotations

import re
import smtplib
import socket

from .connection import port_of, tls_context, xoauth2
from .errors import SyncError, classify
from .types import SECURITY_NONE, SECURITY_SSL, SECURITY_STARTTLS, Account

SEND_AUTH = "auth"  # login refused (password, app password, token)
SEND_RECIPIENT = "recipient"  # a recipient refused
SEND_TOO_LARGE = "too_large"  # the server's size limit
SEND_QUOTA = "quota"  # the account's sending limit (Gmail's daily limit), or the server's rate
SEND_NETWORK = "network"  # unreachable, dropped before the message was handed over
SEND_TLS = "tls"  # certificate or handshake refused
SEND_REFUSED = "refused"  # the server refused the message (policy, spam, sender not allowed)
SEND_UNKNOWN = "unknown"  # the connection ended after the message's last byte: maybe sent
SEND_KINDS = (
    SEND_AUTH,
    SEND_RECIPIENT,
    SEND_TOO_LARGE,
    SEND_QUOTA,
    SEND_NETWORK,
    SEND_TLS,
    SEND_REFUSED,
    SEND_UNKNOWN,
)

SMTP_PORTS = {SECURITY_SSL: 465, SECURITY_STARTTLS: 587, SECURITY_NONE: 25}

_QUOTA_MARKERS = ("5.4.5", "4.7.28", "sending limit", "rate limit", "too many messages")
_SIZE_MARKERS = ("5.3.4", "size limit", "too big", "too large", "message size")


class SendError(Exception):
    """A failed send: ``kind`` (:data:`SEND_KINDS`), ``temporary``, the server's own
    words (``server_text``) and, for :data:`SEND_RECIPIENT`, the ``refused`` addresses."""

    def __init__(self, kind: str, temporary: bool, server_text: str = "", refused=()):
        self.kind = kind
        self.temporary = temporary
        self.server_text = server_text
        self.refused = tuple(refused)
        super().__init__(f"{kind}{' (temporary)' if temporary else ''}: {server_text}")


def classify_reply(code: int, text: str, stage: str) -> SendError:
    """A refusal ``code``/``text`` of the server at ``stage`` (``auth``, ``mail``,
    ``rcpt``, ``data``) as a :class:`SendError`.

    >>> classify_reply(535, "5.7.8 Username and Password not accepted", "auth").kind
    'auth'
    >>> e = classify_reply(550, "5.4.5 Daily user sending limit exceeded", "mail")
    >>> e.kind, e.temporary
    ('quota', True)
    >>> classify_reply(552, "5.3.4 Message size exceeds fixed limit", "data").kind
    'too_large'
    >>> e = classify_reply(450, "4.2.1 try later", "rcpt")
    >>> e.kind, e.temporary
    ('recipient', True)
    >>> classify_reply(554, "5.7.0 rejected: spam", "data").kind
    'refused'
    """
    low = text.lower()
    temporary = 400 <= code < 500
    if any(marker in low for marker in _QUOTA_MARKERS):
        return SendError(SEND_QUOTA, True, text)  # over when the day's limit rolls on
    if stage == "auth":
        return SendError(SEND_AUTH, False, text)
    if any(marker in low for marker in _SIZE_MARKERS) or (code == 552 and stage != "rcpt"):
        return SendError(SEND_TOO_LARGE, False, text)
    if stage == "rcpt":
        return SendError(SEND_RECIPIENT, temporary, text)
    if code == 421:
        return SendError(SEND_NETWORK, True, text)  # the server closes the session
    return SendError(SEND_REFUSED, temporary, text)


def _from_sync_error(exc: SyncError) -> SendError:
    kind = {"tls": SEND_TLS, "auth": SEND_AUTH}.get(exc.kind, SEND_NETWORK)
    return SendError(kind, kind == SEND_NETWORK, exc.server_text or str(exc))


def _reply_text(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    return " ".join(str(value or "").split())


def dot_stuffed(raw: bytes) -> bytes:
    r"""``raw`` as DATA sends it: CRLF line ends, leading dots doubled, the final dot.

    >>> dot_stuffed(b"a\n.b\r\n")
    b'a\r\n..b\r\n.\r\n'
    """
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _XOAuth2Answer:
    """smtplib's ``auth`` callback: the token first; an empty answer to the JSON error
    challenge Gmail sends for a refused token (then its 535)."""

    def __init__(self, login: str, token: str):
        self.payload = xoauth2(login, token).decode()
        self.sent = False

    def __call__(self, challenge=None) -> str:
        if self.sent:
            return ""
        self.sent = True
        return self.payload


class SmtpTransport:
    """An authenticated SMTP session for one account. Use as a context manager.

    ``account`` is the mailbox's :class:`Account` with ``protocol="smtp"`` (host, port,
    security, login and the secret the mailbox uses for IMAP: Gmail takes the same app
    password or token for both).
    """

    def __init__(self, account: Account, local_hostname: str | None = None):
        self.account = account
        self.local_hostname = local_hostname or socket.gethostname() or "localhost"
        self.conn: smtplib.SMTP | None = None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self) -> None:
        acc = self.account
        port = acc.port or SMTP_PORTS.get(acc.security) or port_of(acc)
        try:
            if acc.security == SECURITY_SSL:
                self.conn = smtplib.SMTP_SSL(
                    acc.host,
                    port,
                    local_hostname=self.local_hostname,
                    timeout=acc.timeout,
                    context=tls_context(acc),
                )
            else:
                self.conn = smtplib.SMTP(
                    acc.host, port, local_hostname=self.local_hostname, timeout=acc.timeout
                )
                if acc.security == SECURITY_STARTTLS:
                    self.conn.ehlo()
                    self.conn.starttls(context=tls_context(acc))
            self.conn.ehlo()
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise classify_reply(exc.smtp_code, _reply_text(exc.smtp_error), "connect") from None
        except smtplib.SMTPNotSupportedError as exc:
            self.close()
            raise SendError(SEND_TLS, False, f"the server offers no STARTTLS: {exc}") from None
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise _from_sync_error(classify(exc)) from None
        self._log_in()

    def _log_in(self) -> None:
        acc = self.account
        if not (acc.password or acc.oauth_token):
            return  # a relay that takes mail without login (loopback tests)
        try:
            if acc.oauth_token:
                self.conn.auth(
                    "XOAUTH2", _XOAuth2Answer(acc.login, acc.oauth_token), initial_response_ok=True
                )
            else:
                self.conn.login(acc.login, acc.password)
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise classify_reply(exc.smtp_code, _reply_text(exc.smtp_error), "auth") from None
        except smtplib.SMTPException as exc:  # no AUTH offered, no common mechanism
            self.close()
            raise SendError(SEND_AUTH, False, _reply_text(exc)) from None
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise _from_sync_error(classify(exc)) from None

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except Exception:  # noqa: BLE001 - closing a broken connection
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    @property
    def max_size(self) -> int:
        """The server's SIZE limit in bytes (0: none announced)."""
        value = (self.conn.esmtp_features.get("size") or "").strip() if self.conn else ""
        return int(value) if value.isdigit() else 0

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> str:
        """Hand ``raw`` over for ``recipients``; return the server's acceptance text.

        Raises :class:`SendError`; its ``kind`` is :data:`SEND_UNKNOWN` only when the
        connection ended after the message's last byte (the server may have it)."""
        if self.conn is None:
            raise SendError(SEND_NETWORK, True, "not connected")
        if self.max_size and len(raw) > self.max_size:
            raise SendError(SEND_TOO_LARGE, False, f"{len(raw)} bytes > SIZE {self.max_size}")
        options = [f"SIZE={len(raw)}"] if self.conn.has_extn("size") else []
        data = dot_stuffed(raw)
        try:
            code, text = self.conn.mail(sender, options)
            if code != 250:
                self._reset()
                raise classify_reply(code, _reply_text(text), "mail")
            refused = {}
            for recipient in recipients:
                code, text = self.conn.rcpt(recipient)
                if code not in (250, 251):
                    refused[recipient] = (code, _reply_text(text))
            if refused:
                self._reset()
                temporary = all(400 <= code < 500 for code, _ in refused.values())
                words = "; ".join(f"{r}: {code} {text}" for r, (code, text) in refused.items())
                error = classify_reply(min(c for c, _ in refused.values()), words, "rcpt")
                if error.kind == SEND_RECIPIENT:
                    error = SendError(SEND_RECIPIENT, temporary, words, refused)
                raise error
            code, text = self.conn.docmd("data")
            if code != 354:
                self._reset()
                raise classify_reply(code, _reply_text(text), "data")
        except SendError:
            raise
        except Exception as exc:  # noqa: BLE001 - nothing was handed over yet
            self.close()
            raise _from_sync_error(classify(exc)) from None
        try:
            self.conn.send(data)
            code, text = self.conn.getreply()
        except Exception as exc:  # noqa: BLE001 - the message's bytes went out
            self.close()
            raise SendError(SEND_UNKNOWN, True, _reply_text(exc) or type(exc).__name__) from None
        if code != 250:
            raise classify_reply(code, _reply_text(text), "data")
        return _reply_text(text)

    def _reset(self) -> None:
        try:
            self.conn.rset()
        except Exception:  # noqa: BLE001 - the session is closed at the next failure
            pass
