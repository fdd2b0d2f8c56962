"""Sending (engine/outgoing.py, engine/transport_smtp.py, the Sent copy in transport_imap.py)
against a real aiosmtpd and the loopback Dovecot: the exact bytes, encodings, Bcc only in the
envelope, threading headers, and every failure classified, none sending twice."""

from __future__ import annotations

import email
import email.policy

import pytest
from smtpserver import SmtpServer, free_port, server_errors_expected

from crm_gmail_sync.engine import Account, Address
from crm_gmail_sync.engine.mime import parse_message
from crm_gmail_sync.engine.outgoing import (
    LIMIT_BAD_ADDRESS,
    LIMIT_RECIPIENTS,
    LIMIT_SIZE,
    MAX_RECIPIENTS,
    LimitError,
    OutgoingAttachment,
    OutgoingEmail,
    build_mime,
    check_limits,
    envelope_recipients,
    make_message_id,
    reply_recipients,
    reply_references,
    reply_subject,
)
from crm_gmail_sync.engine.transport_imap import ImapTransport
from crm_gmail_sync.engine.transport_smtp import (
    SEND_AUTH,
    SEND_NETWORK,
    SEND_QUOTA,
    SEND_RECIPIENT,
    SEND_REFUSED,
    SEND_TLS,
    SEND_TOO_LARGE,
    SEND_UNKNOWN,
    SendError,
    SmtpTransport,
)

ANNA = Address("anna@ourco.test", "Anna Müller-Lüdenscheidt")
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


def outgoing(**kw):
    values = dict(
        sender=ANNA,
        message_id=make_message_id(ANNA.email),
        to=[Address("chris@acme.test", "Chris, Customer")],
        cc=[Address("lea@münchen.test", "Léa Ölçek")],
        bcc=[Address("boss@ourco.test", "The Boss")],
        subject="Angebot für Größe XL — ünïcödé",
        html="<p>Hallo Chris,</p><p>anbei das <b>Angebot</b>.</p>",
        attachments=[OutgoingAttachment("Angebot März.pdf", "application/pdf", PDF)],
        in_reply_to="<parent@acme.test>",
        references=["<root@acme.test>", "<parent@acme.test>"],
    )
    values.update(kw)
    return OutgoingEmail(**values)


def smtp_account(server, **kw):
    values = dict(
        host="127.0.0.1",
        port=server.port,
        protocol="smtp",
        security=server.security,
        login="anna@ourco.test",
        password=server.users.get("anna@ourco.test"),
        timeout=10,
    )
    values.update(kw)
    return Account(**values)


@pytest.fixture
def smtp():
    with SmtpServer(users={"anna@ourco.test": "app-pass"}) as server:
        yield server


# ---------------------------------------------------------------------- MIME
def test_mime_bytes_headers_encodings_and_bcc():
    mail = outgoing()
    raw = build_mime(mail)
    assert raw.isascii(), "7-bit headers and transfer encodings only"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert b"boss@ourco.test" not in raw and b"Bcc" not in raw
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == mail.subject
    assert parsed["From"].addresses[0].display_name == ANNA.name
    assert parsed["To"].addresses[0].display_name == "Chris, Customer"
    assert parsed["Cc"].addresses[0].domain == "xn--mnchen-3ya.test"
    assert parsed["Message-ID"] == mail.message_id and mail.message_id.endswith("@ourco.test>")
    assert parsed["In-Reply-To"] == "<parent@acme.test>"
    assert parsed["References"].split() == ["<root@acme.test>", "<parent@acme.test>"]
    assert parsed.get_content_type() == "multipart/mixed"
    body = parsed.get_body(("plain",))
    assert "Hallo Chris," in body.get_content() and "Angebot" in body.get_content()
    assert "<b>Angebot</b>" in parsed.get_body(("html",)).get_content()
    (attachment,) = list(parsed.iter_attachments())
    assert attachment.get_filename() == "Angebot März.pdf"
    assert attachment.get_content() == PDF
    # the sync's own parser reads it back the same (a sent email synced from Sent)
    back = parse_message(raw, folder="Sent", uid="1", owner={"anna@ourco.test"})
    assert back.header.message_id == mail.message_id
    assert back.header.subject == mail.subject
    assert [a.filename for a in back.attachments] == ["Angebot März.pdf"]


def test_envelope_has_every_recipient_once():
    mail = outgoing(cc=[Address("CHRIS@acme.test")], bcc=[Address("boss@ourco.test")])
    assert envelope_recipients(mail) == ["chris@acme.test", "boss@ourco.test"]


def test_limits_are_refused_before_sending():
    many = [Address(f"c{i}@acme.test") for i in range(MAX_RECIPIENTS)]
    check_limits(outgoing(to=many, cc=[], bcc=[]))  # exactly the limit: fine
    with pytest.raises(LimitError) as caught:
        check_limits(outgoing(to=many, cc=[Address("one@more.test")], bcc=[]))
    assert caught.value.kind == LIMIT_RECIPIENTS
    big = OutgoingAttachment("big.bin", "application/octet-stream", b"x" * (26 * 1024 * 1024))
    with pytest.raises(LimitError) as caught:
        check_limits(outgoing(attachments=[big]))
    assert caught.value.kind == LIMIT_SIZE
    with pytest.raises(LimitError) as caught:
        check_limits(outgoing(to=[Address("not an address")]))
    assert caught.value.kind == LIMIT_BAD_ADDRESS
    with pytest.raises(LimitError) as caught:  # would need SMTPUTF8
        check_limits(outgoing(to=[Address("jürgen@acme.test")]))
    assert caught.value.kind == LIMIT_BAD_ADDRESS


def test_reply_helpers():
    assert reply_subject("AW: Re: RE[3]: Angebot") == "Re: Angebot"
    me = {"anna@ourco.test", "anna.alias@ourco.test"}
    chris, lea = Address("chris@acme.test", "Chris"), Address("lea@acme.test")
    to, cc = reply_recipients(
        chris, [], [Address("Anna.Alias@ourco.test"), lea], [Address("anna@ourco.test")], me, True
    )
    assert [a.email for a in to] == ["chris@acme.test", "lea@acme.test"] and cc == []
    to, _ = reply_recipients(chris, [Address("sales@acme.test")], [], [], me, False)
    assert [a.email for a in to] == ["sales@acme.test"]
    refs = reply_references("<p@x>", [f"<r{i}@x>" for i in range(30)])
    assert refs[0] == "<r0@x>" and refs[-1] == "<p@x>" and len(refs) == 20


# ---------------------------------------------------------------------- SMTP
def test_send_exact_bytes_and_envelope(smtp):
    mail = outgoing()
    raw = build_mime(mail)
    with SmtpTransport(smtp_account(smtp)) as transport:
        answer = transport.send(raw, mail.sender.email, envelope_recipients(mail))
        transport.send(raw, mail.sender.email, ["chris@acme.test"])  # the session is reused
    assert "OK" in answer
    first, second = smtp.received
    assert first.sender == "anna@ourco.test"
    assert first.recipients == ["chris@acme.test", "lea@xn--mnchen-3ya.test", "boss@ourco.test"]
    assert first.data.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    assert b"boss@ourco.test" not in first.data
    assert second.recipients == ["chris@acme.test"]


def test_dot_lines_survive(smtp):
    mail = outgoing(html="<p>.</p><p>..two</p>", text=".\n..two\n.\n", attachments=[])
    raw = build_mime(mail)
    with SmtpTransport(smtp_account(smtp)) as transport:
        transport.send(raw, mail.sender.email, ["chris@acme.test"])
    assert smtp.received[0].data.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")


def test_wrong_password(smtp):
    with pytest.raises(SendError) as caught:
        SmtpTransport(smtp_account(smtp, password="wrong")).connect()
    assert caught.value.kind == SEND_AUTH and not caught.value.temporary
    assert "wrong" not in str(caught.value)  # never the secret
    assert smtp.received == []


def test_xoauth2_token():
    with SmtpServer(tokens={"good-token": "anna@ourco.test"}) as server:
        account = smtp_account(server, password=None, oauth_token="good-token")
        with SmtpTransport(account) as transport:
            transport.send(build_mime(outgoing()), ANNA.email, ["chris@acme.test"])
        assert len(server.received) == 1
        with pytest.raises(SendError) as caught:
            SmtpTransport(smtp_account(server, password=None, oauth_token="revoked")).connect()
        assert caught.value.kind == SEND_AUTH


@pytest.mark.parametrize(
    ("answer", "kind", "temporary"),
    [
        (
            "550 5.1.1 The email account that you tried to reach does not exist",
            SEND_RECIPIENT,
            False,
        ),
        (
            "450 4.2.1 The user you are trying to contact is receiving mail too quickly",
            SEND_RECIPIENT,
            True,
        ),
        ("550 5.4.5 Daily user sending limit exceeded", SEND_QUOTA, True),
    ],
)
def test_refused_recipient_sends_to_nobody(smtp, answer, kind, temporary):
    smtp.behaviour.refuse = {"bad@acme.test": answer}
    with SmtpTransport(smtp_account(smtp)) as transport:
        with pytest.raises(SendError) as caught:
            transport.send(build_mime(outgoing()), ANNA.email, ["chris@acme.test", "bad@acme.test"])
        assert (caught.value.kind, caught.value.temporary) == (kind, temporary)
        assert answer.split(" ", 1)[1] in caught.value.server_text
        # the session stays usable after the RSET
        smtp.behaviour.refuse = {}
        transport.send(build_mime(outgoing()), ANNA.email, ["chris@acme.test"])
    assert [r.recipients for r in smtp.received] == [["chris@acme.test"]]


@pytest.mark.parametrize(
    ("answer", "kind", "temporary"),
    [
        ("552 5.3.4 Message size exceeds fixed limit", SEND_TOO_LARGE, False),
        ("554 5.7.0 Message rejected as spam", SEND_REFUSED, False),
        ("451 4.3.0 Mail server temporarily rejected message", SEND_REFUSED, True),
    ],
)
def test_refused_message(smtp, answer, kind, temporary):
    smtp.behaviour.data_reply = answer
    with SmtpTransport(smtp_account(smtp)) as transport, pytest.raises(SendError) as caught:
        transport.send(build_mime(outgoing()), ANNA.email, ["chris@acme.test"])
    assert (caught.value.kind, caught.value.temporary) == (kind, temporary)
    assert smtp.received == []


def test_size_announced_by_the_server_is_checked_first():
    with SmtpServer(size_limit=10_000) as server:
        with SmtpTransport(smtp_account(server)) as transport, pytest.raises(SendError) as caught:
            transport.send(build_mime(outgoing()), ANNA.email, ["chris@acme.test"])
        assert caught.value.kind == SEND_TOO_LARGE
        assert server.received == []


def test_connection_dropped_after_data_is_unknown_not_failed(smtp):
    smtp.behaviour.drop_after_data = True
    with SmtpTransport(smtp_account(smtp)) as transport, pytest.raises(SendError) as caught:
        transport.send(build_mime(outgoing()), ANNA.email, ["chris@acme.test"])
    assert caught.value.kind == SEND_UNKNOWN and caught.value.temporary
    assert len(smtp.received) == 1, "the server has it: a blind retry would send it twice"


def test_unreachable_server_is_a_temporary_network_failure():
    account = Account(
        host="127.0.0.1",
        port=free_port(),
        protocol="smtp",
        security="none",
        login="x",
        password="y",
        timeout=5,
    )
    with pytest.raises(SendError) as caught:
        SmtpTransport(account).connect()
    assert caught.value.kind == SEND_NETWORK and caught.value.temporary


def test_tls_ports(dovecot):
    tls = dovecot.base / "tls"
    for security in ("ssl", "starttls"):
        with SmtpServer(
            security=security,
            users={"anna@ourco.test": "app-pass"},
            cert_file=str(tls / "server.pem"),
            key_file=str(tls / "server.key"),
        ) as server:
            account = smtp_account(server, ca_file=dovecot.ca_file)
            with SmtpTransport(account) as transport:
                transport.send(build_mime(outgoing()), ANNA.email, ["chris@acme.test"])
            assert len(server.received) == 1, security
            # a certificate nobody vouches for
            with server_errors_expected(), pytest.raises(SendError) as caught:
                SmtpTransport(smtp_account(server)).connect()
            assert caught.value.kind == SEND_TLS, security


# ---------------------------------------------------------------------- the Sent copy
def imap_account(dovecot, user):
    return Account(
        host=dovecot.host,
        port=dovecot.imaps_port,
        security="ssl",
        login=user.login,
        password=user.password,
        ca_file=dovecot.ca_file,
        timeout=10,
    )


def test_append_to_sent_and_find_it(dovecot, mail_user):
    mail = outgoing(sender=Address(mail_user.login, "Anna"))
    raw = build_mime(mail)
    with ImapTransport(imap_account(dovecot, mail_user)) as imap:
        sent = imap.sent_folder()
        assert sent == "Sent"
        assert imap.find_message_id(sent, mail.message_id) == []
        imap.append(sent, raw)
        assert imap.find_message_id("INBOX", mail.message_id) == []
        (uid,) = imap.find_message_id(sent, mail.message_id)
        typ, data = imap.conn.uid("FETCH", str(uid), "(FLAGS BODY.PEEK[])")
        assert b"\\Seen" in data[0][0]
        assert data[0][1].replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
