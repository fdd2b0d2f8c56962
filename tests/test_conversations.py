"""Conversation identity (:mod:`crm_gmail_sync.engine.conversations`), without a database.

Unit tests of the keys and the batch plan, then property tests: random thread forests
whose replies name their parents the way real mail does (In-Reply-To only, References
without the root, both, or neither), arriving in any order and cut into any batches, are
stored through :func:`plan_batch` into an in-memory store that applies each plan exactly as
the Odoo sink does; the resulting conversations are always the connected components of the
Message-ID graph, whatever the order.
"""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_gmail_sync.engine.conversations import conversation_keys, group, plan_batch
from crm_gmail_sync.engine.mime import parse_headers


def _head(message_id="", in_reply_to="", references=(), thrid="", dedupe="k"):
    return SimpleNamespace(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=list(references),
        gmail_thrid=thrid,
        dedupe_key=dedupe,
    )


# ------------------------------------------------------------------ keys
def test_keys_name_the_email_its_parent_and_its_references():
    keys = conversation_keys(_head("<c@x>", "<b@x>", ["<a@x>", "<b@x>"]), "1")
    assert keys == ["<c@x>", "<b@x>", "<a@x>"]


def test_gmail_thread_ids_and_id_less_emails_are_the_mailbox_own():
    one = conversation_keys(_head(thrid="42", dedupe="hash:1"), "1")
    two = conversation_keys(_head(thrid="42", dedupe="hash:1"), "2")
    assert set(one).isdisjoint(two)  # another account's thread 42 is another thread


def test_a_subject_never_joins_conversations():
    raw_a = b"Message-ID: <a@x>\r\nSubject: Offer\r\nFrom: a@x.io\r\n\r\n"
    raw_b = b"Message-ID: <b@x>\r\nSubject: Re: Offer\r\nFrom: a@x.io\r\n\r\n"
    heads = [parse_headers(raw, folder="INBOX", uid=str(i)) for i, raw in enumerate((raw_a, raw_b))]
    assert group([conversation_keys(h, "1") for h in heads]) == [0, 1]


def test_keys_from_real_headers():
    raw = (
        b"Message-ID: <c@x>\r\nIn-Reply-To: <b@x>\r\nReferences: <a@x>\r\n <b@x>\r\n"
        b"Subject: Re: Re: Offer\r\n\r\n"
    )
    head = parse_headers(raw, folder="INBOX", uid="1")
    assert conversation_keys(head, "9") == ["<c@x>", "<b@x>", "<a@x>"]


# ------------------------------------------------------------------ plans
def test_a_late_parent_merges_two_conversations_into_the_lowest():
    # two replies stored first, naming different ancestors; their common parent arrives
    plan = plan_batch([["<p@x>", "<root@x>"]], {"<p@x>": 9, "<root@x>": 4})
    assert plan.targets == [4] and plan.merges == {9: 4} and plan.new_count == 0


def test_two_emails_of_one_batch_naming_one_stored_conversation_do_not_split_it():
    # the first names conversation 5 only; the second names 5 and 3: both end in 3
    plan = plan_batch(
        [["<m@x>", "<a@x>"], ["<n@x>", "<b@x>", "<z@x>"]], {"<a@x>": 5, "<b@x>": 5, "<z@x>": 3}
    )
    assert plan.targets == [3, 3] and plan.merges == {5: 3}


def test_unknown_emails_make_new_conversations_numbered_in_order():
    plan = plan_batch([["<a@x>"], ["<b@x>"], ["<c@x>", "<a@x>"]], {})
    assert plan.targets == [-1, -2, -1] and plan.new_count == 2
    assert plan.new_keys == {"<a@x>": -1, "<b@x>": -2, "<c@x>": -1}


# ------------------------------------------------------------------ the store
class Store:
    """Applies plans as the sink does: new conversations get the next ids, merged
    conversations hand their emails and keys to their target."""

    def __init__(self):
        self.keys: dict[str, int] = {}
        self.emails: dict[str, int] = {}  # email name -> conversation
        self.next_id = 1

    def store(self, batch):  # batch: [(name, keys)]
        keys_per_email = [keys for _name, keys in batch]
        known = {k: self.keys[k] for keys in keys_per_email for k in keys if k in self.keys}
        plan = plan_batch(keys_per_email, known)
        new_ids = list(range(self.next_id, self.next_id + plan.new_count))
        self.next_id += plan.new_count

        def real(target):
            return new_ids[-target - 1] if target < 0 else target

        for old, target in plan.merges.items():
            assert target not in plan.merges  # never merged into a conversation that goes
            for table in (self.keys, self.emails):
                for name, conv in table.items():
                    if conv == old:
                        table[name] = target
        for (name, _keys), target in zip(batch, plan.targets):
            self.emails[name] = real(target)
        for key, target in plan.new_keys.items():
            self.keys[key] = real(target)

    def partition(self):
        out: dict[int, set[str]] = {}
        for name, conv in self.emails.items():
            out.setdefault(conv, set()).add(name)
        return sorted(sorted(part) for part in out.values())


def _components(emails):
    numbers = group([keys for _name, keys in emails])
    out: dict[int, set[str]] = {}
    for (name, _keys), number in zip(emails, numbers):
        out.setdefault(number, set()).add(name)
    return sorted(sorted(part) for part in out.values())


@st.composite
def thread_forests(draw):
    """Emails of several threads: each reply names its parent as real clients do."""
    count = draw(st.integers(1, 14))
    emails = []
    ancestry: list[list[str]] = []
    for i in range(count):
        msgid = f"<m{i}@x>"
        parent = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        chain = [*ancestry[parent], f"<m{parent}@x>"] if parent is not None else []
        ancestry.append(chain)
        style = draw(st.sampled_from(["both", "irt", "refs_no_root", "refs", "none"]))
        in_reply_to = chain[-1] if chain and style in ("both", "irt") else ""
        references = []
        if chain and style in ("both", "refs"):
            references = chain
        elif chain and style == "refs_no_root":
            references = chain[1:] or chain
        head = _head(
            msgid if draw(st.booleans()) or i % 5 else "", in_reply_to, references, dedupe=f"d{i}"
        )
        emails.append((f"e{i}", conversation_keys(head, "1")))
    return emails


@settings(max_examples=300, deadline=None)
@given(data=st.data(), emails=thread_forests())
def test_any_arrival_order_and_any_batches_give_the_same_conversations(data, emails):
    order = data.draw(st.permutations(emails))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(order) - 1)), max_size=len(order))))
    batches, start = [], 0
    for cut in [*cuts, len(order)]:
        if cut > start:
            batches.append(order[start:cut])
            start = cut
    store = Store()
    for batch in batches:
        store.store(batch)
    assert store.partition() == _components(emails)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), emails=thread_forests())
def test_every_permutation_one_email_at_a_time(data, emails):
    reference = None
    for _ in range(3):
        store = Store()
        for email in data.draw(st.permutations(emails)):
            store.store([email])
        partition = store.partition()
        reference = reference or partition
        assert partition == reference == _components(emails)


def test_a_chain_whose_middle_arrives_last_is_one_conversation():
    a = ("a", conversation_keys(_head("<a@x>"), "1"))
    b = ("b", conversation_keys(_head("<b@x>", "<a@x>", ["<a@x>"]), "1"))
    c = ("c", conversation_keys(_head("<c@x>", "<b@x>"), "1"))  # names only its parent
    store = Store()
    store.store([a])
    store.store([c])
    assert len(store.partition()) == 2  # nothing connects them yet
    store.store([b])
    assert store.partition() == [["a", "b", "c"]]


def test_the_gmail_thread_id_joins_what_headers_do_not():
    one = ("one", conversation_keys(_head("<a@x>", thrid="7"), "1"))
    two = ("two", conversation_keys(_head("<b@x>", thrid="7"), "1"))
    other = ("other", conversation_keys(_head("<c@x>", thrid="8"), "1"))
    store = Store()
    store.store([one, other])
    store.store([two])
    assert store.partition() == [["one", "two"], ["other"]]


def test_the_same_email_in_two_mailboxes_is_one_conversation():
    mine = ("mine", conversation_keys(_head("<a@x>", thrid="7"), "1"))
    theirs = ("theirs", conversation_keys(_head("<a@x>", thrid="555"), "2"))
    store = Store()
    store.store([mine])
    store.store([theirs])
    assert store.partition() == [["mine", "theirs"]]
