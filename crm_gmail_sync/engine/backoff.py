"""How long a mailbox waits after failed syncs: exponential, capped, with jitter.

The caller counts the consecutive failed runs of one mailbox (a run that works resets
the count) and asks :func:`next_delay` when to try that mailbox again. Other mailboxes,
even on the same server, keep their own count: a throttle is the server's word about
one account.

The delay doubles with each failure from a base, up to a cap, and is then spread by
"equal jitter" (half of it fixed, half random, as in the AWS architecture blog's
*Exponential Backoff and Jitter*): mailboxes that failed together (a server restart,
a network outage) do not all come back in the same minute, and no retry comes sooner
than half the nominal delay.

======================  =========  ========  ========================================
kind                    base       cap       why
======================  =========  ========  ========================================
``throttled``           15 min     1 h       the server said "not now"; asking again
                                             soon prolongs the throttle (Gmail counts
                                             every attempt)
everything else         1 min      1 h       a dropped connection or a server restart
                                             is usually gone within minutes
======================  =========  ========  ========================================

``auth`` and ``disabled`` wait for the user, not for a clock (see
:func:`.errors.backs_off`); asked anyway, :func:`next_delay` answers for them as for a
network failure.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from .errors import THROTTLED

MINUTE = 60.0
HOUR = 60 * MINUTE
#: ``kind -> (base, cap)`` in seconds; kinds not listed use ``DEFAULT``.
SCHEDULE = {THROTTLED: (15 * MINUTE, HOUR)}
DEFAULT = (MINUTE, HOUR)


def nominal_delay(failures: int, kind: str) -> float:
    """The delay before jitter: ``base * 2 ** (failures - 1)``, at most the cap.

    >>> [nominal_delay(n, "network") for n in range(0, 9)]
    [0.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3600.0, 3600.0]
    >>> [nominal_delay(n, "throttled") for n in (1, 2, 3, 4, 1000)]
    [900.0, 1800.0, 3600.0, 3600.0, 3600.0]
    """
    if failures <= 0:
        return 0.0
    base, cap = SCHEDULE.get(kind, DEFAULT)
    return min(cap, base * 2.0 ** min(failures - 1, 64))  # no float overflow for huge counts


def next_delay(failures: int, kind: str, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before the next attempt after ``failures`` consecutive failed runs,
    the last of kind ``kind`` (an :mod:`.errors` kind).

    ``rng`` returns a float in ``[0, 1)`` (:func:`random.random`); the result lies in
    ``[nominal / 2, nominal)`` of :func:`nominal_delay`, so never above the cap. No
    failure (``failures <= 0``) means no delay.

    >>> next_delay(1, "network", rng=lambda: 0.0)
    30.0
    >>> next_delay(1, "network", rng=lambda: 0.5)
    45.0
    >>> next_delay(1, "throttled", rng=lambda: 0.0) / 60
    7.5
    >>> next_delay(50, "throttled", rng=lambda: 0.999999) <= HOUR
    True
    >>> next_delay(0, "network")
    0.0
    """
    delay = nominal_delay(failures, kind)
    return delay / 2 + delay / 2 * rng()
