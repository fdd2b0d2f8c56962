"""The loopback Dovecot and the dropping proxy do what the engine tests rely on."""

from __future__ import annotations

import datetime
import imaplib
import poplib
import ssl

import pytest
from dovecot import Dovecot, _live_members, quote
from proxy import DroppingProxy


def message(subject: str, body: bytes = b"Hello.\r\n") -> bytes:
    return (
        b"From: Ann <ann@example.test>\r\nTo: Bob <bob@example.test>\r\n"
        b"Subject: "
        + subject.encode()
        + b"\r\nMessage-ID: <"
        + subject.encode()
        + b"@example.test>\r\n\r\n"
        + body
    )


@pytest.fixture
def tls(dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=dovecot.ca_file)


def test_imap_plain_login_offers_starttls(dovecot, mail_user):
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    assert "STARTTLS" in conn.capabilities
    conn.login(mail_user.login, mail_user.password)
    assert conn.select("INBOX") == ("OK", [b"0"])
    conn.logout()


def test_imap_starttls(dovecot, mail_user, tls):
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    conn.starttls(ssl_context=tls)
    assert conn.sock.version().startswith("TLSv1")
    conn.login(mail_user.login, mail_user.password)
    conn.logout()


def test_imaps_verifies_against_our_ca(dovecot, mail_user, tls):
    conn = imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=tls, timeout=10)
    conn.login(mail_user.login, mail_user.password)
    conn.logout()
    with pytest.raises(ssl.SSLCertVerificationError):
        # imaplib verifies nothing unless given a context: pass one that trusts system CAs only
        imaplib.IMAP4_SSL(
            dovecot.host, dovecot.imaps_port, ssl_context=ssl.create_default_context(), timeout=10
        )


def test_pop3s_and_stls(dovecot, mail_user, tls):
    dovecot.append(mail_user.login, "INBOX", message("pop"))
    secure = poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=tls, timeout=10)
    plain = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    assert "STLS" in plain.capa()
    plain.stls(context=tls)
    for conn in (secure, plain):
        conn.user(mail_user.login)
        conn.pass_(mail_user.password)
        assert conn.stat()[0] == 1
        conn.quit()


def test_append_and_flags_roundtrip(dovecot, mail_user):
    date = datetime.datetime(2024, 2, 29, 13, 14, 15, tzinfo=datetime.timezone.utc)
    first = dovecot.append(mail_user.login, "INBOX", message("one"), r"\Seen \Flagged", date)
    second = dovecot.append(mail_user.login, "INBOX", message("two"))
    sent = dovecot.append(mail_user.login, "Sent", message("three"), r"\Seen")
    assert second == first + 1
    assert dovecot.flags(mail_user.login, "INBOX") == {
        first: {r"\Seen", r"\Flagged"},
        second: set(),
    }
    assert dovecot.flags(mail_user.login, "Sent") == {sent: {r"\Seen"}}
    conn = dovecot.imap(mail_user.login)
    conn.select("INBOX", readonly=True)
    _, data = conn.uid("FETCH", str(first), "(INTERNALDATE BODY.PEEK[])")
    conn.logout()
    assert b'INTERNALDATE "29-Feb-2024 13:14:15 +0000"' in data[0][0]
    assert data[0][1] == message("one")


def test_folders_with_special_use(dovecot, mail_user):
    dovecot.create_folder(mail_user.login, "Projects/ACME deal")
    conn = dovecot.imap(mail_user.login)
    _, listing = conn.list()
    conn.logout()
    assert set(listing) >= {
        b'(\\HasNoChildren \\Sent) "/" Sent',
        b'(\\HasNoChildren \\Drafts) "/" Drafts',
        b'(\\HasNoChildren \\Trash) "/" Trash',
        b'(\\HasNoChildren \\Junk) "/" Junk',
        b'(\\HasNoChildren) "/" "Projects/ACME deal"',
    }


def test_pop3_retr_marks_seen(dovecot, mail_user):
    """pop3_no_flag_updates = no: a POP3 download is visible to IMAP as \\Seen."""
    uid = dovecot.append(mail_user.login, "INBOX", message("popseen"))
    conn = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    conn.user(mail_user.login)
    conn.pass_(mail_user.password)
    uidvalidity = dovecot.uidvalidity(mail_user.login, "INBOX")
    assert conn.uidl(1).split()[-1] == f"{uid:08x}{uidvalidity:08x}".encode()  # %08Xu%08Xv
    conn.retr(1)
    conn.quit()
    assert dovecot.flags(mail_user.login, "INBOX") == {uid: {r"\Seen"}}


def test_wrong_password_is_refused(dovecot, mail_user):
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.login(mail_user.login, mail_user.password + "x")
    conn.shutdown()
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    pop.user(mail_user.login)
    with pytest.raises(poplib.error_proto):
        pop.pass_("wrong")
    pop.close()


def test_set_password_takes_effect_at_once(dovecot, mail_user):
    old = mail_user.password
    for new in ("a" * len(old), "b" * len(old)):  # same size, same second: mtime must change
        dovecot.set_password(mail_user.login, new)
        conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
        with pytest.raises(imaplib.IMAP4.error):
            conn.login(mail_user.login, old)
        conn.shutdown()
        dovecot.imap(mail_user.login).logout()  # logs in with the new password
        old = new


def test_set_uidvalidity(dovecot, mail_user):
    dovecot.append(mail_user.login, "INBOX", message("uv"))
    before = dovecot.uidvalidity(mail_user.login, "INBOX")
    dovecot.set_uidvalidity(mail_user.login, "INBOX", before + 7)
    conn = dovecot.imap(mail_user.login)
    conn.select(quote("INBOX"))
    assert conn.response("UIDVALIDITY") == ("UIDVALIDITY", [str(before + 7).encode()])
    conn.logout()


def test_proxy_drops_connection_mid_fetch(dovecot, mail_user):
    body = b"".join(b"line %06d of a long message\r\n" % i for i in range(10000))
    uid = dovecot.append(mail_user.login, "INBOX", message("big", body))
    with DroppingProxy(dovecot.imap_port) as proxy:
        conn = imaplib.IMAP4(dovecot.host, proxy.port, timeout=10)
        conn.login(mail_user.login, mail_user.password)
        conn.select("INBOX")
        proxy.arm(50_000)
        with pytest.raises(imaplib.IMAP4.abort):
            conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert proxy.drops == 1
        conn = imaplib.IMAP4(dovecot.host, proxy.port, timeout=10)  # disarmed: passes through
        conn.login(mail_user.login, mail_user.password)
        conn.select("INBOX")
        _, data = conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
        conn.logout()
        assert data[0][1] == message("big", body)
        assert proxy.accepted == 2


def test_stop_leaves_nothing_behind(dovecot):
    server = Dovecot()  # a second instance; the fixture only makes this skip without dovecot
    server.start()
    pid, base = server._proc.pid, server.base
    assert _live_members(pid)
    server.stop()
    assert not _live_members(pid)
    assert not base.exists()
