"""Failure kinds and the delays before a failed mailbox is tried again (pure)."""

import imaplib
import poplib
import ssl

import pytest

from crm_gmail_sync.engine import errors
from crm_gmail_sync.engine.backoff import HOUR, MINUTE, next_delay, nominal_delay
from crm_gmail_sync.engine.errors import (
    KINDS,
    THROTTLED,
    AuthError,
    NetworkError,
    ProtocolError,
    ThrottledError,
    TlsError,
    backs_off,
    classify,
    is_dropped,
    throttled,
)


def test_delays_grow_exponentially_up_to_the_cap():
    delays = [nominal_delay(n, "network") for n in range(1, 10)]
    assert delays[:3] == [MINUTE, 2 * MINUTE, 4 * MINUTE]
    assert all(b >= a for a, b in zip(delays, delays[1:]))
    assert max(delays) == HOUR and delays[-1] == HOUR
    assert nominal_delay(10**9, "network") == HOUR  # no overflow for absurd counts


def test_throttled_starts_higher_and_caps_at_an_hour():
    assert nominal_delay(1, THROTTLED) == 15 * MINUTE > nominal_delay(1, "network")
    assert nominal_delay(3, THROTTLED) == HOUR == nominal_delay(50, THROTTLED)


@pytest.mark.parametrize("kind", KINDS)
def test_jitter_spreads_within_half_to_the_whole_nominal_delay(kind):
    for failures in (1, 2, 5, 30):
        nominal = nominal_delay(failures, kind)
        low = next_delay(failures, kind, rng=lambda: 0.0)
        high = next_delay(failures, kind, rng=lambda: 0.999999)
        assert low == nominal / 2
        assert nominal / 2 < high < nominal <= HOUR
        assert next_delay(failures, kind, rng=lambda: 0.5) == 0.75 * nominal


def test_default_rng_stays_in_range():
    values = {next_delay(2, "network") for _ in range(200)}
    assert all(MINUTE <= v < 2 * MINUTE for v in values)
    assert len(values) > 100  # jittered, not one value


def test_no_failure_no_delay():
    assert next_delay(0, "network") == 0.0 == next_delay(-1, THROTTLED)


def test_which_kinds_back_off_and_which_wait_for_the_user():
    assert {k for k in KINDS if not backs_off(k)} == {errors.AUTH, errors.DISABLED}
    assert backs_off(THROTTLED) and backs_off(errors.NETWORK) and backs_off(errors.TLS)
    assert backs_off("some kind of a later version")
    assert THROTTLED in KINDS and ThrottledError().kind == THROTTLED
    assert "later" in ThrottledError().message  # an English default message


GMAIL_THROTTLES = [
    b"[THROTTLED] Please slow down. (Failure)",
    b"[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)",
    b"[UNAVAILABLE] Temporary System Error",
    b"[ALERT] Too many simultaneous connections. (Failure)",
    b"[LIMIT] Maximum number of connections from user+IP exceeded",  # Dovecot
]


@pytest.mark.parametrize("text", GMAIL_THROTTLES)
def test_imap_throttles_at_login_are_not_a_wrong_password(text):
    for exc in (imaplib.IMAP4.error(text), imaplib.IMAP4.abort(text)):
        err = classify(exc, during_login=True)
        assert isinstance(err, ThrottledError) and not isinstance(err, AuthError), exc
        assert err.kind == THROTTLED and err.server_text == text.decode()
    assert classify(imaplib.IMAP4.error(text)).kind == THROTTLED  # any other command too


@pytest.mark.parametrize("text", [b"-ERR [IN-USE] Mailbox locked", b"-ERR [SYS/TEMP] later"])
def test_pop3_throttles(text):
    assert classify(poplib.error_proto(text), during_login=True).kind == THROTTLED


def test_other_login_refusals_stay_auth_errors():
    refused = imaplib.IMAP4.error(b"[AUTHENTICATIONFAILED] Invalid credentials (Failure)")
    assert classify(refused, during_login=True).kind == errors.AUTH
    disabled = imaplib.IMAP4.error(b"[ALERT] Your account is not enabled for IMAP use.")
    assert classify(disabled, during_login=True).kind == errors.DISABLED
    assert classify(poplib.error_proto(b"-ERR [AUTH] bad"), during_login=True).kind == "auth"


def test_errors_classified_before_their_text_was_read_are_refined():
    fetch_no = ProtocolError(server_text=[b"[OVERQUOTA] Account exceeded command limits"])
    assert throttled(fetch_no).kind == THROTTLED
    plain = ProtocolError(server_text="[CANNOT] no")
    assert throttled(plain) is plain
    already = ThrottledError(server_text="[THROTTLED]")
    assert throttled(already) is already


# What CPython raises when a server drops a TLS connection: at a read in the middle of a
# session or of its handshake (OpenSSL 3), at a write after the drop, at TLS's goodbye, and
# poplib's word for a read that found the connection closed.
DROPPED = [
    ssl.SSLEOFError(
        8, "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol (_ssl.c:1006)"
    ),
    ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)"),
    ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed (EOF) (_ssl.c:1006)"),
    ssl.SSLSyscallError(5, "Some I/O error occurred (_ssl.c:1006)"),
    ssl.SSLError(1, "[SSL: UNEXPECTED_EOF_WHILE_READING] unexpected eof while reading"),
    poplib.error_proto("-ERR EOF"),
]


@pytest.mark.parametrize("exc", DROPPED, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("during_login", [False, True])
def test_a_connection_dropped_under_tls_is_a_network_failure(exc, during_login):
    assert is_dropped(exc)
    err = classify(exc, during_login=during_login)
    assert isinstance(err, NetworkError) and err.kind == errors.NETWORK  # not tls, not auth
    assert err.server_text == str(exc.args[-1])  # its words, not OpenSSL's error number


REFUSED = [
    ssl.SSLError(1, "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure"),
    ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
    ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version"),
    ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
]


@pytest.mark.parametrize("exc", REFUSED, ids=lambda e: str(e.args[-1]).split("]")[0][6:])
def test_handshakes_and_certificates_refused_stay_tls_failures(exc):
    assert not is_dropped(exc)
    err = classify(exc)
    assert isinstance(err, TlsError) and err.kind == errors.TLS
    assert err.server_text == exc.args[-1]


def test_other_pop3_answers_are_no_dropped_connection():
    assert not is_dropped(poplib.error_proto(b"-ERR EOF? no such message"))
    assert classify(poplib.error_proto(b"-ERR no such message")).kind == errors.PROTOCOL
    assert classify(poplib.error_proto(b"-ERR [AUTH] bad"), during_login=True).kind == "auth"
