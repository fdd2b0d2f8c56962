"""The loopback Dovecot and the dropping proxy do what the engine tests rely on."""

from __future__ import annotations

import base64
import datetime
import imaplib
import json
import poplib
import shutil
import ssl
import subprocess
import urllib.parse
import urllib.request

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


def xoauth2(login: str, token: str) -> bytes:
    return f"user={login}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(login: str, token: str) -> bytes:
    return f"n,a={login},\x01auth=Bearer {token}\x01\x01".encode()


class Sasl:
    """imaplib ``authenticate`` callback: ``payload``, then an empty answer to any challenge
    (after a refusal Dovecot sends a JSON error and waits for that empty answer)."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.challenges: list[bytes] = []

    def __call__(self, challenge: bytes) -> bytes:
        self.challenges.append(challenge)
        return self.payload if len(self.challenges) == 1 else b""


def imap_sasl(dovecot, mech: str, payload: bytes) -> Sasl:
    """AUTHENTICATE over plain IMAP; returns the callback (challenges) or raises IMAP4.error."""
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    sasl = Sasl(payload)
    try:
        conn.authenticate(mech, sasl)
    except BaseException:
        conn.shutdown()
        raise
    _, listing = conn.list()
    conn.logout()
    assert b'(\\HasNoChildren \\Sent) "/" Sent' in listing
    return sasl


def pop3_xoauth2(dovecot, tls, login: str, token: str) -> bytes:
    """POP3S ``AUTH XOAUTH2 <initial response>``; the server's first answer (connection closed)."""
    conn = poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=tls, timeout=10)
    try:
        return conn._shortcmd("AUTH XOAUTH2 " + base64.b64encode(xoauth2(login, token)).decode())
    finally:
        conn.close()


def test_config_passes_doveconf(dovecot):
    doveconf = shutil.which("doveconf") or "/usr/bin/doveconf"
    proc = subprocess.run(
        [doveconf, "-n", "-c", str(dovecot.conf_file)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert "driver = oauth2" in proc.stdout and "mechanisms = xoauth2 oauthbearer" in proc.stdout
    assert "introspection_mode = post" in dovecot.oauth2_conf_file.read_text()


def test_xoauth2_and_oauthbearer(dovecot, mail_user, tls):
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    assert {"AUTH=XOAUTH2", "AUTH=OAUTHBEARER", "AUTH=PLAIN"} <= set(conn.capabilities)
    conn.shutdown()
    dovecot.add_token(mail_user.login, "tok-a")
    dovecot.add_token(mail_user.login, "tok-b")  # several tokens per user
    assert dovecot.tokens(mail_user.login) == ["tok-a", "tok-b"]
    before = dovecot.introspections
    imap_sasl(dovecot, "XOAUTH2", xoauth2(mail_user.login, "tok-a"))
    imap_sasl(dovecot, "OAUTHBEARER", oauthbearer(mail_user.login, "tok-b"))
    assert pop3_xoauth2(dovecot, tls, mail_user.login, "tok-a") == b"+OK Logged in."
    assert dovecot.introspections == before + 3


def test_refused_token_gets_a_json_challenge_then_no(dovecot, mail_user, tls):
    """What a client must handle: a refused XOAUTH2 token is answered with a base64 JSON error
    as a continuation; the final NO / -ERR comes only after the client's empty response."""
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    sasl = Sasl(xoauth2(mail_user.login, "never-issued"))
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.authenticate("XOAUTH2", sasl)
    conn.shutdown()
    # the callback saw the empty initial challenge ("+ "), then the JSON error
    assert sasl.challenges[0] == b""
    assert json.loads(sasl.challenges[1]) == {"status": "401", "schemes": "bearer", "scope": "mail"}
    # POP3: poplib takes the "+ <challenge>" line for success; the empty line brings the -ERR
    conn = poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=tls, timeout=10)
    payload = base64.b64encode(xoauth2(mail_user.login, "never-issued")).decode()
    challenge = conn._shortcmd("AUTH XOAUTH2 " + payload)
    assert json.loads(base64.b64decode(challenge[2:]))["status"] == "401"
    with pytest.raises(poplib.error_proto, match="AUTH"):
        conn._shortcmd("")
    conn.close()


def test_revoke_token_takes_effect_at_once(dovecot, mail_user):
    dovecot.add_token(mail_user.login, "short-lived")
    imap_sasl(dovecot, "XOAUTH2", xoauth2(mail_user.login, "short-lived"))
    dovecot.revoke_token("short-lived")
    dovecot.revoke_token("short-lived")  # revoking twice is harmless
    assert dovecot.tokens(mail_user.login) == []
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap_sasl(dovecot, "XOAUTH2", xoauth2(mail_user.login, "short-lived"))
    dovecot.add_token(mail_user.login, "short-lived")  # re-issued: valid again, no cache
    imap_sasl(dovecot, "XOAUTH2", xoauth2(mail_user.login, "short-lived"))


def test_passwords_and_tokens_do_not_mix(dovecot, mail_user):
    dovecot.add_token(mail_user.login, "tok-" + mail_user.login)
    before = dovecot.introspections
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error):
        conn.login(mail_user.login, "tok-" + mail_user.login)  # a token is no password
    conn.shutdown()
    dovecot.imap(mail_user.login).logout()  # PLAIN with the password as before
    assert dovecot.introspections == before  # PLAIN never reaches the oauth2 passdb
    with pytest.raises(imaplib.IMAP4.error):
        imap_sasl(dovecot, "XOAUTH2", xoauth2(mail_user.login, mail_user.password))
    with pytest.raises(imaplib.IMAP4.error):  # another user's token: username mismatch
        imap_sasl(dovecot, "XOAUTH2", xoauth2("x" + mail_user.login, "tok-" + mail_user.login))


def test_token_endpoint(dovecot):
    dovecot.add_token("Zed@Example.test", "a+b/c=d")  # escaped by Dovecot, decoded by us

    def ask(token, method="POST"):
        data = urllib.parse.urlencode({"token": token, "client_id": ""})
        if method == "POST":
            request = urllib.request.Request(dovecot.token_url, data=data.encode())
        else:
            request = urllib.request.Request(dovecot.token_url + "?" + data)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"] == "application/json"
            return json.loads(response.read())

    assert ask("a+b/c=d") == {"active": True, "username": "Zed@Example.test"}
    assert ask("a+b/c=d", "GET") == {"active": True, "username": "Zed@Example.test"}
    assert ask("unknown") == {"active": False}
    dovecot.revoke_token("a+b/c=d")
    assert ask("a+b/c=d") == {"active": False}


def test_add_token_checks_its_arguments(dovecot, mail_user):
    for bad in ("", "two words", "tab\there", "ctl\x01char"):
        with pytest.raises(ValueError):
            dovecot.add_token(mail_user.login, bad)
    with pytest.raises(ValueError):
        dovecot.add_token("", "fine")
    dovecot.add_token(mail_user.login, "owned-" + mail_user.login)
    dovecot.add_token(mail_user.login, "owned-" + mail_user.login)  # same owner: no-op
    with pytest.raises(ValueError):
        dovecot.add_token("someone@else.test", "owned-" + mail_user.login)


def test_stop_leaves_nothing_behind(dovecot):
    server = Dovecot()  # a second instance; the fixture only makes this skip without dovecot
    server.start()
    pid, base, token_url = server._proc.pid, server.base, server.token_url
    assert _live_members(pid)
    urllib.request.urlopen(token_url, data=b"token=x", timeout=10).close()
    server.stop()
    assert not _live_members(pid)
    assert not base.exists()
    with pytest.raises(OSError):  # the token endpoint is closed too
        urllib.request.urlopen(token_url, data=b"token=x", timeout=10)
