"""The port of the sync engine: the three things a run asks of its caller.

The engine connects, lists, decides and parses; it never stores. What it needs to
know of the caller's world, and what it hands back, goes through one object
implementing :class:`MailboxPort`, passed to :func:`~.sync.run_sync`:

``customers(addresses)``
    Which of these normalised participant addresses belong to customers (a lead, a
    deal, a contact)? Asked once per header batch, with the addresses of the whole
    batch (the owner's own left out); a message is downloaded only when one of its
    participants is a customer.
``known_keys(keys)``
    Which of these dedupe keys (:attr:`.types.HeaderInfo.dedupe_key`) are stored
    already? Asked once per header batch; known messages are reported as duplicates
    and never downloaded again.
``store(batch)``
    Keep this :class:`~.types.Batch`: its messages, ready to store
    (:attr:`~.types.ParsedMessage.roles`, :attr:`~.types.ParsedMessage.preview`), and
    then its cursor, ``batch.state``, which already counts them. Storing both in one
    transaction is the caller's business (commit after each batch to keep the
    progress of a long run); a crash between the two only brings the batch again as
    duplicates, never loses mail. ``batch.counts`` has the outcomes to add to the
    mailbox's counters, ``batch.sent_from`` the sending identities to offer.

How it works: :func:`~.sync.run_sync` calls ``customers`` and ``known_keys`` while
it decides a header batch, downloads and parses what they let through, and calls
``store`` with each batch in order, INBOX then Sent; an exception in ``store``
ends the run, and the next run starts from the last cursor stored. The port's
methods run in the caller's thread, between two network calls: they may use the
caller's database connection freely.

A port is any object with these three methods (a structural protocol: no base class
to inherit)::

    class MemoryPort:
        def __init__(self, customers):
            self.customers_set, self.messages, self.state = set(customers), {}, None

        def customers(self, addresses):
            return addresses & self.customers_set

        def known_keys(self, keys):
            return {k for k in keys if k in self.messages}

        def store(self, batch):
            self.messages.update((m.dedupe_key, m) for m in batch.messages)
            self.state = batch.state
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .types import Batch


@runtime_checkable
class MailboxPort(Protocol):
    """What a sync run asks of its caller (see the module's description)."""

    def customers(self, addresses: set[str]) -> set[str]:
        """The addresses among ``addresses`` (normalised) that belong to customers."""
        ...

    def known_keys(self, keys: list[str]) -> set[str]:
        """The dedupe keys among ``keys`` already stored for this mailbox."""
        ...

    def store(self, batch: Batch) -> None:
        """Store ``batch.messages``, then persist ``batch.state``."""
        ...
