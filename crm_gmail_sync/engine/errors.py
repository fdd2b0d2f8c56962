"""Classified sync failures.

Every failure the engine raises is a :class:`SyncError` with a ``kind`` the
caller can map to its own (translated) message, an English ``message`` for
logs and tests, and ``server_text``: the server's own words when it said
something. Secrets never appear in any of them.
"""

from __future__ import annotations

import imaplib
import poplib
import socket
import ssl

AUTH = "auth"  # wrong password, revoked token
DISABLED = "disabled"  # the account refuses IMAP/POP access (Gmail setting)
TLS = "tls"  # handshake or certificate verification failed
NETWORK = "network"  # unreachable, refused, timed out, connection dropped
PROTOCOL = "protocol"  # the server answered something we cannot work with
KINDS = (AUTH, DISABLED, TLS, NETWORK, PROTOCOL)

_MESSAGES = {
    AUTH: "The server refused the login: check the address, the password (for Gmail an "
    "app password) or the access token, and that IMAP/POP is enabled.",
    DISABLED: "The account does not allow IMAP/POP access: enable it in the mailbox's "
    "settings (Gmail: Settings > Forwarding and POP/IMAP).",
    TLS: "A secure connection could not be established: the server's certificate is not "
    "trusted or does not match the host name.",
    NETWORK: "The mail server could not be reached or dropped the connection.",
    PROTOCOL: "The mail server answered in a way this mailbox cannot use.",
}


class SyncError(Exception):
    """Base of every classified failure."""

    kind = PROTOCOL

    def __init__(self, message: str | None = None, server_text: str = ""):
        self.message = message or _MESSAGES[self.kind]
        self.server_text = _text(server_text)
        super().__init__(self.message + (f" ({self.server_text})" if self.server_text else ""))


class AuthError(SyncError):
    kind = AUTH


class AccessDisabledError(AuthError):
    kind = DISABLED


class TlsError(SyncError):
    kind = TLS


class NetworkError(SyncError):
    kind = NETWORK


class ProtocolError(SyncError):
    kind = PROTOCOL


def _text(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        value = " ".join(_text(v) for v in value)
    return str(value or "").strip()


def classify(exc: BaseException, during_login: bool = False) -> SyncError:
    """Map a socket/ssl/imaplib/poplib exception to a :class:`SyncError`.

    ``during_login`` says the error came from the authentication command, so a
    plain protocol "NO"/"-ERR" means the credentials were refused.

    >>> classify(ConnectionRefusedError(111, "Connection refused")).kind
    'network'
    >>> classify(imaplib.IMAP4.error("[AUTHENTICATIONFAILED] nope"), during_login=True).kind
    'auth'
    """
    if isinstance(exc, SyncError):
        return exc
    server = _text(exc.args[0] if exc.args else exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsError(server_text=getattr(exc, "verify_message", "") or server)
    if isinstance(exc, ssl.SSLError):
        return TlsError(server_text=server)
    if isinstance(exc, imaplib.IMAP4.abort):
        return NetworkError(server_text=server)
    if isinstance(exc, (imaplib.IMAP4.error, poplib.error_proto)):
        if during_login:
            low = server.lower()
            if ("imap" in low or "pop" in low) and ("not enabled" in low or "disabled" in low):
                return AccessDisabledError(server_text=server)
            return AuthError(server_text=server)
        return ProtocolError(server_text=server)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return NetworkError("The mail server did not answer in time.", server_text=server)
    if isinstance(exc, socket.gaierror):
        return NetworkError("The mail server's host name could not be resolved.", server)
    if isinstance(exc, (OSError, EOFError)):
        return NetworkError(server_text=server or exc.__class__.__name__)
    return ProtocolError(server_text=f"{exc.__class__.__name__}: {server}")
