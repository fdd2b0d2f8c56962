"""The engine's SASL XOAUTH2 against a real Dovecot (its oauth2 passdb, see tests/dovecot.py).

The fixture's token endpoint knows exactly the tokens given with ``dovecot.add_token``; Dovecot
asks it on every login (no auth cache), so ``revoke_token`` counts from the next login on.
"""

from __future__ import annotations

import datetime as dt
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
from mailgen import make_message

from crm_gmail_sync.engine import (
    STORED,
    Account,
    AuthError,
    Options,
    check_connection,
    sync_mailbox,
)

CUSTOMER = "anna@customer.example"


@pytest.fixture
def token(dovecot, mail_user) -> str:
    """A fresh access token of ``mail_user``."""
    value = "ya29." + secrets.token_urlsafe(32)
    dovecot.add_token(mail_user.login, value)
    return value


def oauth_account(dovecot, user, token, protocol="imap", **kw) -> Account:
    values = dict(
        host=dovecot.host,
        protocol=protocol,
        port=dovecot.imaps_port if protocol == "imap" else dovecot.pop3s_port,
        security="ssl",
        login=user.login,
        oauth_token=token,
        owner_addresses=(user.login,),
        ca_file=dovecot.ca_file,
        timeout=10,
    )
    values.update(kw)
    return Account(**values)


def refused(account: Account) -> AuthError:
    """``check_connection`` must raise AuthError: had it waited for the server instead of
    answering its challenge, the 10 s timeout would raise a NetworkError."""
    with pytest.raises(AuthError) as info:
        check_connection(account)
    return info.value


def test_imaps_xoauth2_login(dovecot, mail_user, token):
    before = dovecot.introspections
    result = check_connection(oauth_account(dovecot, mail_user, token))
    assert result == {"folders": ["INBOX", "Sent"], "gmail": False}
    assert dovecot.introspections == before + 1  # the token really went to the oauth2 passdb


def test_imap_starttls_xoauth2_login(dovecot, mail_user, token):
    acc = oauth_account(dovecot, mail_user, token, port=dovecot.imap_port, security="starttls")
    assert check_connection(acc)["folders"] == ["INBOX", "Sent"]


def test_imaps_revoked_token_is_refused(dovecot, mail_user, token):
    acc = oauth_account(dovecot, mail_user, token)
    check_connection(acc)
    dovecot.revoke_token(token)
    error = refused(acc)
    assert error.kind == "auth" and "AUTHENTICATIONFAILED" in error.server_text
    assert token not in str(error)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_unknown_or_foreign_token_is_refused(dovecot, mail_user, token, protocol):
    other = f"other-{mail_user.login}"
    dovecot.add_token(other, "tok-of-" + other)
    bad = [
        "never-issued",
        "tok-of-" + other,  # valid, but another user's
        mail_user.password,  # a password is no token
    ]
    # concurrently: Dovecot answers failures only every 0.5 s, so three in a row cost 1.5 s
    with ThreadPoolExecutor(len(bad)) as pool:
        errors = list(
            pool.map(refused, [oauth_account(dovecot, mail_user, t, protocol) for t in bad])
        )
    assert [e.kind for e in errors] == ["auth"] * 3
    check_connection(oauth_account(dovecot, mail_user, token, protocol))  # still fine


def test_pop3s_xoauth2_login(dovecot, mail_user, token):
    dovecot.append(mail_user.login, "INBOX", make_message(CUSTOMER, mail_user.login, "Hi"))
    result = check_connection(oauth_account(dovecot, mail_user, token, "pop3"))
    assert result == {"folders": ["INBOX"], "gmail": False, "messages": 1}


def test_pop3_starttls_xoauth2_login(dovecot, mail_user, token):
    acc = oauth_account(
        dovecot, mail_user, token, "pop3", port=dovecot.pop3_port, security="starttls"
    )
    assert check_connection(acc)["messages"] == 0


def test_pop3s_revoked_token_is_refused(dovecot, mail_user, token):
    acc = oauth_account(dovecot, mail_user, token, "pop3")
    check_connection(acc)
    dovecot.revoke_token(token)
    error = refused(acc)
    assert "-ERR" in error.server_text


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_sync_through_xoauth2(dovecot, mail_user, token, protocol):
    date = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    msgid = f"<oauth.{protocol}.{mail_user.login}>"
    raw = make_message(
        CUSTOMER, mail_user.login, "Offer via OAuth", msgid=msgid, date=date, body="Numbers."
    )
    dovecot.append(mail_user.login, "INBOX", raw, date=date)
    dovecot.append(
        mail_user.login, "INBOX", make_message("news@shop.example", mail_user.login, "Sale")
    )
    asked = []

    def customer_filter(addresses):
        asked.append(set(addresses))
        return {a for a in addresses if a == CUSTOMER}

    acc = oauth_account(dovecot, mail_user, token, protocol)
    batches = list(sync_mailbox(acc, None, customer_filter, lambda keys: set(), Options()))
    messages = [m for b in batches for m in b.messages]
    assert [m.header.subject for m in messages] == ["Offer via OAuth"]
    assert messages[0].dedupe_key == f"mid:{msgid}"
    assert "Numbers." in messages[0].body_text  # downloaded in full, through the token login
    assert [o.status for b in batches for o in b.outcomes].count(STORED) == 1
    assert any(CUSTOMER in a for a in asked)
    # the state is usable for the next run: nothing new, nothing stored
    again = list(sync_mailbox(acc, batches[-1].state, customer_filter, lambda keys: set()))
    assert [m for b in again for m in b.messages] == []
