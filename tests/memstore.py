"""An in-memory caller of the engine: what the Odoo layer does, without a database."""

from __future__ import annotations

from crm_gmail_sync.engine import SyncReport, SyncState, sync_mailbox
from crm_gmail_sync.engine.sync import Options


class CrashAfterStore(Exception):
    """Raised by a test between storing a batch and persisting its state."""


class MemoryStore:
    """Stores messages by dedupe key and persists the cursor, in that order.

    ``crash_after_batches=n``: the n-th batch with messages is stored, then the
    run dies before its state is persisted (a crash between the two steps).
    """

    def __init__(self, customers=()):
        self.customers = {c.lower() for c in customers}
        self.messages = {}
        self.stored_twice = []
        self.state = SyncState()
        self.report = SyncReport()
        self.outcomes = []
        self.filter_calls = 0
        self.known_calls = 0
        self.offered = set()  # every address ever given to customer_filter
        self.sent_from = {}  # folder -> union of its batches' sent_from

    def customer_filter(self, addresses):
        self.filter_calls += 1
        self.offered |= set(addresses)
        return {a for a in addresses if a in self.customers}

    def known_keys(self, keys):
        self.known_calls += 1
        return {k for k in keys if k in self.messages}

    def sync(self, account, crash_after_batches=None, **options):
        batches = 0
        for batch in sync_mailbox(
            account, self.state, self.customer_filter, self.known_keys, Options(**options)
        ):
            for msg in batch.messages:
                if msg.dedupe_key in self.messages:
                    self.stored_twice.append(msg.dedupe_key)
                self.messages[msg.dedupe_key] = msg
            self.outcomes.extend(batch.outcomes)
            self.sent_from.setdefault(batch.folder, set()).update(batch.sent_from)
            self.report.add(batch.outcomes)
            if batch.messages:
                batches += 1
                if crash_after_batches and batches >= crash_after_batches:
                    raise CrashAfterStore()
            self.state = batch.state
        return self

    def subjects(self):
        return sorted(m.header.subject for m in self.messages.values())

    def count(self, status):
        return sum(1 for o in self.outcomes if o.status == status)
