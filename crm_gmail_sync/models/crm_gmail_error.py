"""What a failed sync tells its owner: one translated text per kind of failure.

The engine classifies a failure (``engine.errors``: ``SyncError.kind``); this module words
it, once, for every screen that shows it (the mailbox's last error, the notification of
"Test connection" and "Sync now", the owner's activity). ``storage`` is the Odoo layer's
own kind: the mail was fetched, storing it failed.
"""

from ..engine import errors as engine_errors

STORAGE = "storage"
ERROR_KINDS = [
    (engine_errors.AUTH, "Login refused"),
    (engine_errors.DISABLED, "IMAP/POP access disabled"),
    (engine_errors.TLS, "Secure connection failed"),
    (engine_errors.NETWORK, "Server unreachable"),
    (engine_errors.PROTOCOL, "Unexpected server answer"),
    (engine_errors.THROTTLED, "Server limit reached"),
    (STORAGE, "Storing failed"),
]


def error_text(env, kind, server_text=""):
    """The user-facing text of a failure of ``kind`` in ``env``'s language, with what the
    server said (already redacted by the caller) on a second line."""
    texts = {
        engine_errors.AUTH: env._(
            "The server refused the login: check the address, the password (for Gmail "
            "an app password) or the access token."
        ),
        engine_errors.DISABLED: env._(
            "The account does not allow IMAP/POP access: enable it in the mailbox's "
            "settings (Gmail: Settings > Forwarding and POP/IMAP)."
        ),
        engine_errors.TLS: env._(
            "A secure connection could not be established: the server's certificate is "
            "not trusted or does not match the host name."
        ),
        engine_errors.NETWORK: env._(
            "The mail server could not be reached or dropped the connection."
        ),
        engine_errors.PROTOCOL: env._("The mail server answered in a way this mailbox cannot use."),
        engine_errors.THROTTLED: env._(
            "The mail server asks to slow down (too many connections or requests): this "
            "mailbox is synced again later."
        ),
        STORAGE: env._(
            "Storing the fetched mail failed; it is fetched again next time. Details are in "
            "the server log."
        ),
    }
    text = texts.get(kind, texts[engine_errors.PROTOCOL])
    if server_text:
        text += "\n" + env._("Server said: %(text)s", text=server_text)
    return text
