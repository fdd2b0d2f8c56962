"""What the IMAP and POP3 transports share: TLS contexts, XOAUTH2, defaults."""

from __future__ import annotations

import ssl

from .types import PROTOCOL_IMAP, SECURITY_SSL, Account

DEFAULT_PORTS = {
    (PROTOCOL_IMAP, SECURITY_SSL): 993,
    (PROTOCOL_IMAP, "starttls"): 143,
    (PROTOCOL_IMAP, "none"): 143,
    ("pop3", SECURITY_SSL): 995,
    ("pop3", "starttls"): 110,
    ("pop3", "none"): 110,
}

GMAIL_PRESETS = {
    PROTOCOL_IMAP: {"host": "imap.gmail.com", "port": 993, "security": SECURITY_SSL},
    "pop3": {"host": "pop.gmail.com", "port": 995, "security": SECURITY_SSL},
    "smtp": {"host": "smtp.gmail.com", "port": 465, "security": SECURITY_SSL},
}


def port_of(account: Account) -> int:
    """The port to use: the account's, else the protocol's default for its security."""
    return account.port or DEFAULT_PORTS[(account.protocol, account.security)]


def tls_context(account: Account) -> ssl.SSLContext:
    """A client TLS context: verification on, unless the account turned it off.

    ``ca_file`` names the CA to trust instead of the system store (self-hosted
    servers); loading only it also keeps a connection's set-up short.
    """
    ctx = ssl.create_default_context(cafile=account.ca_file or None)
    if not account.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class XOAuth2:
    """imaplib ``authenticate`` callback: the token first, then an empty answer.

    On a refused token Gmail sends a JSON error as a challenge and waits for an
    empty line before its ``NO``; answering with the token again would loop.
    """

    def __init__(self, login: str, token: str):
        self.payload = xoauth2(login, token)
        self.sent = False

    def __call__(self, challenge: bytes) -> bytes:
        if self.sent:
            return b""
        self.sent = True
        return self.payload


def xoauth2(login: str, token: str) -> bytes:
    """The SASL XOAUTH2 initial response (not yet base64-encoded).

    >>> xoauth2("a@x.io", "tok")
    b'user=a@x.io\\x01auth=Bearer tok\\x01\\x01'
    """
    return f"user={login}\x01auth=Bearer {token}\x01\x01".encode()
