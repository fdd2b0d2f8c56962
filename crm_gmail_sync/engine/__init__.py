"""The sync engine of crm_gmail_sync: pure Python, never imports odoo.

The Odoo layer implements the :class:`~.port.MailboxPort` (customers, known keys,
store), calls :func:`run_sync` (or iterates :func:`sync_mailbox`) and
:func:`check_connection`, and maps the dataclasses of :mod:`.types` and the errors
of :mod:`.errors` to records and mailbox state; :func:`~.backoff.next_delay` says
when to try a failed mailbox again.
"""

from .addresses import normalize_email, normalize_set, parse_addresses
from .backoff import next_delay
from .errors import (
    KINDS,
    THROTTLED,
    AuthError,
    NetworkError,
    ProtocolError,
    SyncError,
    ThrottledError,
    TlsError,
    backs_off,
)
from .mime import parse_headers, parse_message
from .port import MailboxPort
from .preview import PREVIEW_LENGTH, make_preview
from .sync import (
    SKIPPED_REASON,
    Options,
    check_connection,
    owner_addresses,
    run_sync,
    sync_mailbox,
)
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
    "PREVIEW_LENGTH",
    "SKIPPED_REASON",
    "STORED",
    "THROTTLED",
    "UNPARSEABLE",
    "Account",
    "Address",
    "Attachment",
    "AuthError",
    "Batch",
    "FolderCursor",
    "HeaderInfo",
    "MailboxPort",
    "NetworkError",
    "Options",
    "Outcome",
    "ParsedMessage",
    "ProtocolError",
    "SyncError",
    "SyncReport",
    "SyncState",
    "ThrottledError",
    "TlsError",
    "backs_off",
    "check_connection",
    "make_preview",
    "next_delay",
    "normalize_email",
    "normalize_set",
    "owner_addresses",
    "parse_addresses",
    "parse_headers",
    "parse_message",
    "run_sync",
    "sync_mailbox",
]
