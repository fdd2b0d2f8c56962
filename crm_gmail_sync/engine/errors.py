"""Classified sync failures.

Every failure the engine raises is a :class:`SyncError` with a ``kind`` the
caller can map to its own (translated) message, an English ``message`` for
logs and tests, and ``server_text``: the server's own words when it said
something. Secrets never appear in any of them.

What a caller does next depends on the kind alone (:func:`backs_off`):

- ``auth`` and ``disabled`` wait for the user: new credentials, or IMAP/POP enabled
  in the account. Retrying on a clock would only repeat the refusal (and Gmail locks
  accounts that keep failing logins).
- ``network``, ``throttled``, ``protocol`` and ``tls`` are retried later, with the
  delays of :mod:`.backoff`: a dropped connection, a server asking to slow down, an
  answer we could not use or a certificate being renewed may all be gone next time,
  and none of them is fixed by the user typing a password again. ``throttled`` is the
  server's word about this mailbox only (Gmail's ``[THROTTLED]``, ``[OVERQUOTA]``,
  ``[UNAVAILABLE]``, "Too many simultaneous connections"; POP3's ``[IN-USE]`` and
  ``[SYS/TEMP]``): it backs off that mailbox, never the others of the same server.
"""

from __future__ import annotations

import imaplib
import poplib
import socket
import ssl

AUTH = "auth"  # wrong password, revoked token
DISABLED = "disabled"  # the account refuses IMAP/POP access (Gmail setting)
TLS = "tls"  # handshake or certificate verification failed (not a connection cut under TLS)
NETWORK = "network"  # unreachable, refused, timed out, connection dropped
PROTOCOL = "protocol"  # the server answered something we cannot work with
THROTTLED = "throttled"  # the server asks this mailbox to slow down or come back later
KINDS = (AUTH, DISABLED, TLS, NETWORK, PROTOCOL, THROTTLED)
#: Kinds that wait for the user (new credentials, access enabled): never retried on a clock.
WAITS_FOR_USER = frozenset({AUTH, DISABLED})

# How servers say "not now, this account": Gmail's IMAP response codes (RFC 5530 style) and
# texts, POP3's extended response codes (RFC 2449, RFC 3206) and Dovecot's connection limit.
# Matched case-insensitively anywhere in the server's text, login answers included.
_THROTTLE_MARKERS = (
    "[throttled]",
    "[overquota]",
    "[unavailable]",
    "[in-use]",
    "[sys/temp]",
    "too many simultaneous connections",
    "exceeded command or bandwidth limits",
    "maximum number of connections",
)
# How a connection cut under TLS reads: the peer went away without TLS's goodbye (OpenSSL 3's
# reason, CPython's text), or poplib's word for a connection closed mid-answer.
_EOF_MARKERS = ("unexpected_eof_while_reading", "eof occurred in violation of protocol")
_POP3_EOF = "-ERR EOF"

_MESSAGES = {
    AUTH: "The server refused the login: check the address, the password (for Gmail an "
    "app password) or the access token, and that IMAP/POP is enabled.",
    DISABLED: "The account does not allow IMAP/POP access: enable it in the mailbox's "
    "settings (Gmail: Settings > Forwarding and POP/IMAP).",
    TLS: "A secure connection could not be established: the server's certificate is not "
    "trusted or does not match the host name.",
    NETWORK: "The mail server could not be reached or dropped the connection.",
    PROTOCOL: "The mail server answered in a way this mailbox cannot use.",
    THROTTLED: "The mail server asked this mailbox to slow down (too many connections or "
    "requests, or a quota reached); it is tried again later.",
}


class SyncError(Exception):
    """Base of every classified failure.

    Raised out of :func:`~.sync.run_sync`, it carries in ``report`` the
    :class:`~.types.SyncReport` of the batches stored before it (``None`` elsewhere).
    """

    kind = PROTOCOL
    report = None

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


class ThrottledError(SyncError):
    """The server refused this mailbox for now (rate, quota, connection limit): not a
    wrong password, even when it said so in answer to the login."""

    kind = THROTTLED


def backs_off(kind: str) -> bool:
    """Whether a failure of ``kind`` is retried later on a clock (see :mod:`.backoff`),
    rather than waiting for the user to enter new credentials or enable access.

    Unknown kinds (say, one stored by an older version) are retried.

    >>> [k for k in KINDS if backs_off(k)]
    ['tls', 'network', 'protocol', 'throttled']
    """
    return kind not in WAITS_FOR_USER


def is_throttle(text) -> bool:
    """Whether a server's text says "slow down, this account" (see :class:`ThrottledError`).

    >>> is_throttle(b"NO [ALERT] Too many simultaneous connections. (Failure)")
    True
    >>> is_throttle("-ERR [IN-USE] Mailbox locked by another session")
    True
    >>> is_throttle("[AUTHENTICATIONFAILED] Invalid credentials (Failure)")
    False
    """
    low = _text(text).lower()
    return any(marker in low for marker in _THROTTLE_MARKERS)


def throttled(exc: SyncError) -> SyncError:
    """``exc`` as a :class:`ThrottledError` when its server text is a throttle answer,
    else ``exc`` itself: for errors classified before their text was looked at (a ``NO``
    to a FETCH is a :class:`ProtocolError` where the transport sees it).

    >>> throttled(ProtocolError(server_text="[THROTTLED] Slow down")).kind
    'throttled'
    >>> throttled(ProtocolError(server_text="BAD command")).kind
    'protocol'
    """
    if exc.kind == THROTTLED or not is_throttle(exc.server_text):
        return exc
    return ThrottledError(server_text=exc.server_text)


def is_dropped(exc: BaseException) -> bool:
    """Whether ``exc`` says the server's end of the connection went away under TLS or
    POP3 (in the middle of a session or of its handshake): closed without TLS's goodbye
    (``SSLEOFError``; on OpenSSL 3 ``UNEXPECTED_EOF_WHILE_READING``), with it
    (``SSLZeroReturnError``), the socket failing under TLS (``SSLSyscallError``), or
    poplib's ``-ERR EOF`` (the connection closed before an answer's end). A certificate
    or a handshake refused is none of these.

    >>> is_dropped(ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed (EOF)"))
    True
    >>> is_dropped(ssl.SSLError(1, "[SSL: UNEXPECTED_EOF_WHILE_READING] unexpected eof"))
    True
    >>> is_dropped(ssl.SSLError(1, "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] handshake failure"))
    False
    >>> is_dropped(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    False
    """
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)):
        return True
    if isinstance(exc, poplib.error_proto):
        return _text(exc.args[0] if exc.args else "") == _POP3_EOF
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLCertVerificationError):
        low = _ssl_text(exc).lower()
        return any(marker in low for marker in _EOF_MARKERS)
    return False


def _ssl_text(exc: BaseException) -> str:
    """An ssl error's words, not its first argument (the OpenSSL error number)."""
    if isinstance(exc, OSError) and exc.strerror:
        return _text(exc.strerror)
    return _text(exc.args[-1] if exc.args else exc)


def _text(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        value = " ".join(_text(v) for v in value)
    return str(value or "").strip()


def classify(exc: BaseException, during_login: bool = False) -> SyncError:
    """Map a socket/ssl/imaplib/poplib exception to a :class:`SyncError`.

    ``during_login`` says the error came from the authentication command, so a
    plain protocol "NO"/"-ERR" means the credentials were refused, unless the server
    said it throttles the account (:func:`is_throttle`): that is no wrong password.

    >>> classify(ConnectionRefusedError(111, "Connection refused")).kind
    'network'
    >>> classify(imaplib.IMAP4.error("[AUTHENTICATIONFAILED] nope"), during_login=True).kind
    'auth'
    >>> classify(imaplib.IMAP4.error("[ALERT] Too many simultaneous connections. (Failure)"),
    ...          during_login=True).kind
    'throttled'
    >>> classify(poplib.error_proto(b"-ERR [SYS/TEMP] try later"), during_login=True).kind
    'throttled'

    A connection cut under TLS is a dropped connection, not a TLS failure: the peer
    closed it without TLS's goodbye, or with it in the middle of an answer, whenever
    that happens (:func:`is_dropped`). Certificates and handshakes refused stay ``tls``:

    >>> eof = classify(ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)"))
    >>> eof.kind, eof.server_text
    ('network', 'EOF occurred in violation of protocol (_ssl.c:2427)')
    >>> classify(poplib.error_proto("-ERR EOF"), during_login=True).kind  # no wrong password
    'network'
    >>> classify(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")).kind
    'tls'
    """
    if isinstance(exc, SyncError):
        return throttled(exc)
    server = _text(exc.args[0] if exc.args else exc)
    if isinstance(exc, (imaplib.IMAP4.error, poplib.error_proto)) and is_throttle(server):
        return ThrottledError(server_text=server)  # IMAP4.abort included (a BYE)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsError(server_text=getattr(exc, "verify_message", "") or _ssl_text(exc))
    if is_dropped(exc):
        return NetworkError(server_text=_ssl_text(exc))
    if isinstance(exc, ssl.SSLError):
        return TlsError(server_text=_ssl_text(exc))
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
