"""The engine against a real Dovecot over POP3: UIDL cursor, resync, flags untouched."""

import pytest
from memstore import MemoryStore
from test_sync_imap import CUSTOMERS, account, put

from crm_gmail_sync.engine import DUPLICATE, STORED, AuthError, check_connection


def pop3(dovecot, user, **kw):
    """The IMAP test account of ``user``, over POP3S."""
    return account(dovecot, user, **{"protocol": "pop3", "port": dovecot.pop3s_port, **kw})


def test_pop3_sync_and_flags(dovecot, mail_user):
    put(dovecot, mail_user, 1, "anna@customer.example", mail_user.login)
    put(dovecot, mail_user, 2, "nobody@web.example", mail_user.login)
    put(
        dovecot,
        mail_user,
        3,
        "bob@customer.example",
        mail_user.login,
        flags="\\Seen",
        attachments=[("x.txt", "text/plain", b"." * 5000 + b"\n.\n..line")],
    )
    before = dovecot.flags(mail_user.login, "INBOX")
    store = MemoryStore(CUSTOMERS).sync(pop3(dovecot, mail_user))
    assert store.subjects() == ["Mail 1", "Mail 3"]
    # no Sent folder over POP3: mail from unknown addresses is received, no identities
    assert store.messages[f"mid:<m1.{mail_user.login}>"].header.direction == "received"
    assert store.sent_from == {"INBOX": set()}
    att = store.messages[f"mid:<m3.{mail_user.login}>"].attachments[0]
    assert att.content == b"." * 5000 + b"\n.\n..line"  # dot-stuffing undone exactly once
    assert dovecot.flags(mail_user.login, "INBOX") == before
    assert len(store.state.folders["INBOX"].seen) == 3


def test_pop3_uidl_resync(dovecot, mail_user):
    for n in (1, 2, 3):
        put(dovecot, mail_user, n, "anna@customer.example", mail_user.login)
    acc = pop3(dovecot, mail_user, port=dovecot.pop3_port, security="starttls")
    store = MemoryStore(CUSTOMERS).sync(acc)
    assert len(store.messages) == 3
    # nothing new: nothing fetched
    store.outcomes.clear()
    store.sync(acc)
    assert store.outcomes == []
    # cursor lost (e.g. restored backup): everything comes again, as duplicates
    store.state.folders.clear()
    store.sync(acc)
    assert store.count(DUPLICATE) == 3 and len(store.messages) == 3 and not store.stored_twice
    # a message removed on the server leaves the cursor; a new one is fetched alone
    conn = dovecot.imap(mail_user.login)
    conn.select("INBOX")
    conn.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
    conn.expunge()
    conn.logout()
    put(dovecot, mail_user, 4, "bob@customer.example", mail_user.login)
    store.outcomes.clear()
    store.sync(acc)
    assert [o.status for o in store.outcomes] == [STORED]
    assert len(store.state.folders["INBOX"].seen) == 3


def test_pop3_wrong_password(dovecot, mail_user):
    with pytest.raises(AuthError):
        check_connection(pop3(dovecot, mail_user, password="nope"))
