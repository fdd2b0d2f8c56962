"""Cursor arithmetic: what a sync fetches from a folder, and how its cursor moves.

Pure functions over :class:`~.types.FolderCursor`: no connection, no clock. The sync
run (:mod:`.sync`) asks the server, calls these with what it answered, fetches what
they say, and applies their updates after each batch it hands over. Keeping them
apart lets every rule below be tested without a server, and read in one place.

IMAP, one folder (UIDs ascending on the server; ``top`` = UIDNEXT - 1 when opened):

1. :func:`needs_examine` -- STATUS alone tells that nothing changed: no EXAMINE.
2. :func:`plan_imap` -- after EXAMINE: a first sync or a UIDVALIDITY change starts a
   fresh cursor (the old UIDs mean nothing now); otherwise the cursor goes on.
3. The incremental pass, when the cursor has handled anything: every UID above
   ``high``, oldest first; :func:`after_incremental` after each batch. Only once the
   whole pass is done does :func:`incremental_done` raise ``high`` to ``top`` (UIDs up
   to ``top`` that the pass did not list were expunged). A run cut short in the pass
   must not get there: ``high`` would jump over UIDs never fetched.
4. The back-fill, until ``backfill_done``: the UIDs of the window (``SINCE`` the
   first sync's start date) below ``low`` -- all of them on a first sync, nothing
   back-filled yet -- newest first (:func:`backfill_window`); :func:`after_backfill`
   after each batch. A first sync's ``high`` reaches ``top`` with its first batch
   (or :func:`nothing_to_backfill`), not before: a run cut short before it leaves a
   cursor that still says "first sync". A run cut short later resumes below ``low``.
5. Messages skipped because the sync kept dying at them (``FolderCursor.skipped``)
   are listed again only when asked (:func:`retry_list`); :func:`note_skipped`
   keeps that list after each batch.

POP3 has one folder and no UIDs that grow: :func:`plan_pop3` lists the UIDLs not yet
handled, newest first, and forgets those the server no longer has.

>>> cur = FolderCursor()
>>> plan = plan_imap(cur, validity=7, uidnext=11)
>>> plan.incremental, plan.top, plan.cursor.uidvalidity
(False, 10, 7)
>>> backfill_window([2, 5, 9], plan.cursor, plan.top)
[9, 5, 2]
>>> after_backfill(plan.cursor, [9, 5], last=False, top=plan.top)
>>> plan.cursor.high, plan.cursor.low, plan.cursor.backfill_done
(10, 5, False)
>>> backfill_window([2, 5, 9], plan.cursor, top=12)  # the next run goes on below low
[2]
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import FolderCursor


# ---------------------------------------------------------------- IMAP
def needs_examine(
    cursor: FolderCursor | None, validity: int, uidnext: int, retry_skipped: bool = False
) -> bool:
    """Whether a folder must be opened, from its STATUS ``(UIDVALIDITY, UIDNEXT)``.

    Not when its cursor is complete (same UIDVALIDITY, back-fill done), no UID above
    ``high`` can exist (UIDNEXT - 1 <= high), and no skipped message is to be retried.

    >>> done = FolderCursor(uidvalidity=7, high=10, low=1, backfill_done=True)
    >>> needs_examine(done, 7, 11), needs_examine(done, 7, 12), needs_examine(done, 8, 11)
    (False, True, True)
    >>> needs_examine(None, 7, 11), needs_examine(done, 7, 0)  # UIDNEXT unknown: look
    (True, True)
    >>> done.skipped = ["4"]
    >>> needs_examine(done, 7, 11), needs_examine(done, 7, 11, retry_skipped=True)
    (False, True)
    """
    if cursor is None or cursor.uidvalidity != validity or not cursor.backfill_done:
        return True
    if retry_skipped and cursor.skipped:
        return True
    return not (uidnext and uidnext - 1 <= cursor.high)


@dataclass
class ImapPlan:
    """What to do in a folder just opened (see :func:`plan_imap`)."""

    cursor: FolderCursor  # the cursor to work on and update: fresh after a re-scan
    rescan: bool  # there was a cursor, of another UIDVALIDITY: it is void
    top: int | None  # the highest UID that can exist now (UIDNEXT - 1), None if unknown
    incremental: bool  # fetch the UIDs above cursor.high first


def plan_imap(cursor: FolderCursor | None, validity: int, uidnext: int) -> ImapPlan:
    """Plan a folder from the ``(UIDVALIDITY, UIDNEXT)`` that EXAMINE answered.

    ``cursor`` is not changed; the plan's cursor is it, or a fresh one when there was
    none or it belongs to another UIDVALIDITY.

    >>> old = FolderCursor(uidvalidity=7, high=10, low=1, backfill_done=True)
    >>> plan_imap(old, 7, 15).cursor is old, plan_imap(old, 7, 15).incremental
    (True, True)
    >>> plan = plan_imap(old, 8, 15)
    >>> plan.rescan, plan.cursor.high, plan.incremental
    (True, 0, False)
    >>> plan_imap(None, 8, 0).top is None
    True
    """
    rescan = cursor is not None and cursor.uidvalidity != validity
    if cursor is None or rescan:
        cursor = FolderCursor(uidvalidity=validity)
    return ImapPlan(
        cursor=cursor,
        rescan=rescan,
        top=uidnext - 1 if uidnext else None,
        incremental=bool(cursor.high or cursor.backfill_done),
    )


def after_incremental(cursor: FolderCursor, keys: list[int]) -> None:
    """An incremental batch covering the UIDs ``keys`` was handed over.

    >>> cur = FolderCursor(high=10)
    >>> after_incremental(cur, [11, 14]); cur.high
    14
    """
    cursor.high = max(cursor.high, *keys)


def incremental_done(cursor: FolderCursor, top: int | None) -> None:
    """The incremental pass went through every UID it listed: everything up to ``top``
    is handled. Never call it for a pass cut short.

    >>> cur = FolderCursor(high=14)
    >>> incremental_done(cur, 20); cur.high
    20
    """
    cursor.high = max(cursor.high, top or 0)


def backfill_window(window: list[int], cursor: FolderCursor, top: int | None) -> list[int]:
    """The back-fill's UIDs, newest first, from the folder's window (``SEARCH SINCE``):
    those below ``low`` (all of them while ``low`` is 0: nothing back-filled yet), and
    none above ``top`` (arrived after the folder was opened: the next incremental
    pass's).

    >>> backfill_window([3, 1, 8, 12], FolderCursor(high=10, low=8), top=10)
    [3, 1]
    >>> backfill_window([3, 1, 8, 12], FolderCursor(), top=10)
    [8, 3, 1]
    """
    low = cursor.low
    out = [u for u in window if (not low or u < low) and (top is None or u <= top)]
    out.sort(reverse=True)
    return out


def after_backfill(cursor: FolderCursor, keys: list[int], last: bool, top: int | None) -> None:
    """A back-fill batch covering the UIDs ``keys`` (newest first) was handed over;
    ``last``: it was the back-fill's last; ``top``: the plan's. UIDs above the window
    up to ``top`` are not the back-fill's: on a first sync they count as handled now.

    >>> cur = FolderCursor()
    >>> after_backfill(cur, [9, 7], last=False, top=10); (cur.high, cur.low, cur.backfill_done)
    (10, 7, False)
    >>> after_backfill(cur, [3], last=True, top=10); (cur.low, cur.backfill_done)
    (3, True)
    """
    cursor.high = max(cursor.high, top or 0, *keys)
    cursor.low = min(keys)
    cursor.backfill_done = last


def nothing_to_backfill(cursor: FolderCursor, top: int | None) -> None:
    """The back-fill window holds nothing to fetch: the back-fill is done, and every UID
    up to ``top`` handled (outside the window, or fetched already).

    >>> cur = FolderCursor()
    >>> nothing_to_backfill(cur, 6); cur.high, cur.backfill_done
    (6, True)
    """
    cursor.high = max(cursor.high, top or 0)
    cursor.backfill_done = True


# ---------------------------------------------------------------- POP3
def plan_pop3(cursor: FolderCursor | None, listing: list[tuple[int, str]]) -> FolderCursor:
    """The POP3 cursor for a ``UIDL`` listing ``[(number, uidl)]``: ``cursor`` (or a new
    one) with ``seen`` and ``skipped`` kept to the UIDLs still listed, in place.

    >>> cur = plan_pop3(FolderCursor(seen=["a", "gone"], skipped=["gone"]), [(1, "a"), (2, "b")])
    >>> cur.seen, cur.skipped, pop3_todo(cur, [(1, "a"), (2, "b"), (3, "c")])
    (['a'], [], ['c', 'b'])
    """
    cursor = cursor or FolderCursor()
    present = {u for _, u in listing}
    cursor.seen = [u for u in cursor.seen if u in present]  # forget what the server dropped
    cursor.skipped = [u for u in cursor.skipped if u in present]
    return cursor


def pop3_todo(cursor: FolderCursor, listing: list[tuple[int, str]]) -> list[str]:
    """The UIDLs not handled yet, newest (last listed) first."""
    seen = set(cursor.seen)
    return [u for _, u in reversed(listing) if u not in seen]


def after_pop3(cursor: FolderCursor, keys: list[str], last: bool) -> None:
    """A batch covering the UIDLs ``keys`` was handed over; ``last``: the run's last.

    >>> cur = FolderCursor(seen=["a"])
    >>> after_pop3(cur, ["c", "b"], last=True); cur.seen, cur.backfill_done
    (['a', 'c', 'b'], True)
    """
    cursor.seen.extend(keys)
    cursor.backfill_done = cursor.backfill_done or last


# ---------------------------------------------------------------- skipped messages
def retry_list(cursor: FolderCursor) -> list[str]:
    """The skipped messages to try again, oldest first where they are UIDs.

    >>> retry_list(FolderCursor(skipped=["12", "3"])), retry_list(FolderCursor(skipped=["b", "a"]))
    (['3', '12'], ['b', 'a'])
    """
    if all(u.isdigit() for u in cursor.skipped):
        return sorted(cursor.skipped, key=int)
    return list(cursor.skipped)


def note_skipped(cursor: FolderCursor, keys, skipped) -> None:
    """A batch covering ``keys`` was handed over, ``skipped`` among them passed unread:
    the covered keys leave ``cursor.skipped`` (read now, or gone), the skipped join it.

    >>> cur = FolderCursor(skipped=["3", "5"])
    >>> note_skipped(cur, [3, 8, 9], [9]); cur.skipped
    ['5', '9']
    """
    covered = {str(k) for k in keys}
    again = [str(k) for k in skipped]
    kept = [u for u in cursor.skipped if u not in covered]
    cursor.skipped = kept + [u for u in again if u not in kept]
