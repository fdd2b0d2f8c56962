"""Conversations: which emails belong together, from their Message-ID graph.

What it is
----------
A conversation is a connected component of the graph whose nodes are emails and whose
edges are the ids an email names: its own ``Message-ID``, its ``In-Reply-To`` and its
``References``, plus Gmail's thread id (``X-GM-THRID``) when the server offers one. Two
emails sharing any *key* are in the same conversation, in either direction: a reply naming
only its parent, a References list that omits the root, a parent arriving after its reply
all end in one conversation. A subject never joins anything.

How it works
------------
:func:`conversation_keys` turns one email's headers into its keys. The caller keeps a map
``key -> conversation`` of everything stored so far; for each new batch,
:func:`plan_batch` groups the batch's emails by shared keys (union-find), looks up which
stored conversations those keys name, and says what to do in one step: which
conversation each email joins (an existing one, or a new one), which stored conversations
merge into which (when a new email connects them), and which keys to record. Applying the
plans of any split of the same emails into batches, in any order, gives the same
partition as grouping all of them at once (property-tested in ``tests/test_conversations.py``).

Keys are scoped: Message-IDs are global (the same email in two users' mailboxes is one
conversation), Gmail thread ids and the identity of an email without a Message-ID are the
mailbox's own (``scope``), since another account's thread ids mean nothing here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

# Longer keys are stored as their hash: a btree index entry has a size limit, and a
# crafted Message-ID must not make a batch unstorable.
MAX_KEY_LENGTH = 400


def _bounded(key: str) -> str:
    """``key`` itself, or a hash of it when it is longer than :data:`MAX_KEY_LENGTH`.

    >>> _bounded("<a@x>")
    '<a@x>'
    >>> len(_bounded("<" + "a" * 5000 + "@x>"))
    66
    """
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return "h:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def conversation_keys(header, scope: str) -> list[str]:
    """The keys of one email (a :class:`~.types.HeaderInfo`), its identity first.

    ``scope`` names the mailbox (say its database id): Gmail's thread ids and the
    identity of an email without a Message-ID count within it only.

    >>> from types import SimpleNamespace as H
    >>> conversation_keys(H(message_id="<b@x>", in_reply_to="<a@x>", references=["<r@x>",
    ...     "<a@x>"], gmail_thrid="", dedupe_key="mid:<b@x>"), "7")
    ['<b@x>', '<a@x>', '<r@x>']
    >>> conversation_keys(H(message_id="", in_reply_to="", references=[], gmail_thrid="99",
    ...     dedupe_key="hash:ab"), "7")
    ['own:7:hash:ab', 'gt:7:99']
    """
    keys = [header.message_id or f"own:{scope}:{header.dedupe_key}"]
    for key in (header.in_reply_to, *header.references):
        if key and key not in keys:
            keys.append(key)
    if header.gmail_thrid:
        keys.append(f"gt:{scope}:{header.gmail_thrid}")
    return list(dict.fromkeys(map(_bounded, keys)))


def group(keys_per_email: list[list[str]]) -> list[int]:
    """The component of each email: emails sharing a key (directly or through others)
    get the same number; numbers count from 0 in order of first appearance.

    >>> group([["<a>"], ["<b>", "<a>"], ["<c>"], ["<d>", "<c>", "<b>"]])
    [0, 0, 0, 0]
    >>> group([["<a>"], ["<b>"], ["<c>", "<b>"]])
    [0, 1, 1]
    """
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        root = key
        while parent[root] != root:
            root = parent[root]
        while parent[key] != root:  # path compression
            parent[key], key = root, parent[key]
        return root

    for keys in keys_per_email:
        for key in keys:
            parent.setdefault(key, key)
        first = find(keys[0])
        for key in keys[1:]:
            other = find(key)
            if other != first:
                parent[other] = first
    numbers: dict[str, int] = {}
    return [numbers.setdefault(find(keys[0]), len(numbers)) for keys in keys_per_email]


@dataclass
class Plan:
    """What storing one batch does to the conversations (see :func:`plan_batch`).

    - ``targets``: per email, its conversation: an existing id (> 0), or ``-n`` for the
      n-th new conversation (``-1`` the first);
    - ``new_count``: how many conversations to create;
    - ``merges``: ``{existing id: id it merges into}``: the emails and keys of the first
      move to the second, which absorbs it; the first is then empty;
    - ``new_keys``: ``{key: target}`` for the batch's keys not known yet.
    """

    targets: list[int] = field(default_factory=list)
    new_count: int = 0
    merges: dict[int, int] = field(default_factory=dict)
    new_keys: dict[str, int] = field(default_factory=dict)


def plan_batch(keys_per_email: list[list[str]], known: dict[str, int]) -> Plan:
    """Plan storing a batch whose emails have these keys, given the stored ``known``
    ``{key: conversation id}`` (only the batch's keys need to be in it).

    Each group of connected emails joins the lowest existing conversation its keys
    name, absorbing the others it names, or a new conversation when it names none.

    >>> plan_batch([["<b>", "<a>"], ["<c>"]], {"<a>": 5})
    Plan(targets=[5, -1], new_count=1, merges={}, new_keys={'<b>': 5, '<c>': -1})
    >>> plan_batch([["<m>", "<a>", "<z>"]], {"<a>": 5, "<z>": 3})
    Plan(targets=[3], new_count=0, merges={5: 3}, new_keys={'<m>': 3})
    """
    # emails naming the same stored conversation belong together even without a
    # shared key in this batch: its id joins them as one more key
    components = group(
        [[*keys, *(f"#{known[k]}" for k in keys if k in known)] for keys in keys_per_email]
    )
    existing: dict[int, set[int]] = {}
    for number, keys in zip(components, keys_per_email):
        existing.setdefault(number, set()).update(known[k] for k in keys if k in known)
    plan = Plan()
    target_of: dict[int, int] = {}
    for number in dict.fromkeys(components):  # in order of first appearance
        ids = existing[number]
        if ids:
            target = min(ids)
            for other in ids - {target}:
                plan.merges[other] = target
        else:
            plan.new_count += 1
            target = -plan.new_count
        target_of[number] = target
    # components name disjoint sets of stored conversations (see above): no merge
    # target is merged itself
    plan.targets = [target_of[number] for number in components]
    for number, keys in zip(components, keys_per_email):
        for key in keys:
            if key not in known:
                plan.new_keys.setdefault(key, target_of[number])
    return plan
