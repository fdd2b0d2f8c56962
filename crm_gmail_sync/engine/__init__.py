"""The sync engine of crm_gmail_sync: pure Python, never imports odoo.

The Odoo layer calls :func:`sync_mailbox` and :func:`check_connection` and
maps the dataclasses of :mod:`.types` and the errors of :mod:`.errors` to
records and mailbox state.
"""

from .addresses import normalize_email, normalize_set, parse_addresses
from .errors import KINDS, AuthError, NetworkError, ProtocolError, SyncError, TlsError
from .mime import parse_headers, parse_message
from .sync import Options, check_connection, owner_addresses, sync_mailbox
from .types import (
    DUPLICATE,
    NOT_CUSTOMER,
    OUTCOMES,
    STORED,
    UNPARSEABLE,
    Account,
    Address,
    Attachment,
    Batch,
    FolderCursor,
    HeaderInfo,
    Outcome,
    ParsedMessage,
    SyncReport,
    SyncState,
)

__all__ = [
    "DUPLICATE",
    "KINDS",
    "NOT_CUSTOMER",
    "OUTCOMES",
    "STORED",
    "UNPARSEABLE",
    "Account",
    "Address",
    "Attachment",
    "AuthError",
    "Batch",
    "FolderCursor",
    "HeaderInfo",
    "NetworkError",
    "Options",
    "Outcome",
    "ParsedMessage",
    "ProtocolError",
    "SyncError",
    "SyncReport",
    "SyncState",
    "TlsError",
    "check_connection",
    "normalize_email",
    "normalize_set",
    "owner_addresses",
    "parse_addresses",
    "parse_headers",
    "parse_message",
    "sync_mailbox",
]
