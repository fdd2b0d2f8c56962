"""POP3 transport: UIDL listing, header-only TOP, whole-message download.

POP3 has no flags of its own, but servers that also speak IMAP (Dovecot,
Gmail) may mark a message read on RETR. The whole message is therefore read
with ``TOP n <huge>``, which servers answer with the entire message without
marking it, and RETR is used only where TOP is refused.
"""

from __future__ import annotations

import base64
import poplib

from .connection import port_of, tls_context, xoauth2
from .errors import SyncError, classify
from .types import SECURITY_NONE, SECURITY_STARTTLS, Account

_ALL_LINES = 2**31 - 1
# poplib refuses lines over 2 KiB ("line too long"); unwrapped HTML mail has longer ones.
poplib._MAXLINE = max(poplib._MAXLINE, 4 * 1024 * 1024)


class Pop3Transport:
    """A connected POP3 session for one account. Use as a context manager."""

    def __init__(self, account: Account):
        self.account = account
        self.conn: poplib.POP3 | None = None
        self._top_ok = True

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self) -> None:
        """Open the connection and authenticate; raises a classified :class:`SyncError`."""
        acc = self.account
        try:
            if acc.security in (SECURITY_NONE, SECURITY_STARTTLS):
                self.conn = poplib.POP3(acc.host, port_of(acc), timeout=acc.timeout)
                if acc.security == SECURITY_STARTTLS:
                    self.conn.stls(context=tls_context(acc))
            else:
                self.conn = poplib.POP3_SSL(
                    acc.host, port_of(acc), context=tls_context(acc), timeout=acc.timeout
                )
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise classify(exc) from None
        try:
            if acc.oauth_token:
                token = base64.b64encode(xoauth2(acc.login, acc.oauth_token)).decode()
                resp = self.conn._shortcmd(f"AUTH XOAUTH2 {token}")
                if not resp.startswith(b"+OK"):
                    # "+ <base64 JSON error>": the token was refused, and the server waits
                    # for an empty response before its -ERR (poplib takes any "+" for OK).
                    resp = self.conn._shortcmd("")
                    if not resp.startswith(b"+OK"):
                        raise poplib.error_proto(resp)
            else:
                self.conn.user(acc.login)
                self.conn.pass_(acc.password or "")
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise classify(exc, during_login=True) from None

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.quit()  # never DELE'd anything: QUIT changes nothing on the server
        except Exception:  # noqa: BLE001
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    def _call(self, func, *args):
        try:
            return func(*args)
        except SyncError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise classify(exc) from None

    def uidl(self) -> list[tuple[int, str]]:
        """``(message number, UIDL)`` of every message, in server order."""
        _, lines, _ = self._call(self.conn.uidl)
        out = []
        for line in lines:
            num, _, uid = line.decode("ascii", "replace").partition(" ")
            if num.isdigit() and uid.strip():
                out.append((int(num), uid.strip()))
        return out

    def sizes(self) -> dict[int, int]:
        _, lines, _ = self._call(self.conn.list)
        out = {}
        for line in lines:
            num, _, size = line.decode("ascii", "replace").partition(" ")
            if num.isdigit() and size.strip().isdigit():
                out[int(num)] = int(size)
        return out

    def headers(self, num: int) -> bytes:
        _, lines, _ = self._call(self.conn.top, num, 0)
        return b"\r\n".join(lines) + b"\r\n"

    def message(self, num: int) -> bytes:
        if self._top_ok:
            try:
                _, lines, _ = self.conn.top(num, _ALL_LINES)
                return b"\r\n".join(lines) + b"\r\n"
            except poplib.error_proto:
                self._top_ok = False
            except Exception as exc:  # noqa: BLE001
                raise classify(exc) from None
        _, lines, _ = self._call(self.conn.retr, num)
        return b"\r\n".join(lines) + b"\r\n"
