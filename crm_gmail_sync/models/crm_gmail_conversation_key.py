"""Conversation identity: which conversation each Message-ID (or Gmail thread) belongs to.

How it works
------------
Every stored email records its keys (``engine.conversations.conversation_keys``: its own
Message-ID, the ids it names in In-Reply-To and References, its mailbox's Gmail thread id)
in this table, each pointing at one ``crm.gmail.conversation``. Storing a batch
(:meth:`_gmail_assign`) looks the batch's keys up, lets the engine plan the batch
(``plan_batch``: join, create, merge) and applies the plan in a fixed number of queries,
whatever the batch's size: a late parent that connects two conversations merges them.

Workers store batches at the same time: the assignment takes a transaction-level advisory
lock, so that two batches never plan against the same keys at once (one would create or
merge a conversation the other does not see); the lock ends with the batch's commit,
right after.

The table holds Message-IDs of everybody's mail: nobody reads it but the sync (no access
rights at all; see the access CSV).
"""

from odoo import api, fields, models
from odoo.tools import SQL

from ..engine.conversations import conversation_keys, plan_batch

# pg_advisory_xact_lock(namespace, 0): the assignment of conversations (see above); the
# scheduler's mailbox claims use their own namespace
LOCK_NAMESPACE = 0x67636F6E  # "gcon"


class CrmGmailConversationKey(models.Model):
    _name = "crm.gmail.conversation.key"
    _inherit = ["crm.gmail.restricted.mixin"]
    _description = "Conversation key of synced emails"
    _log_access = False
    _rec_name = "key"

    # ------------------------------------------------------------ fields
    key = fields.Char(required=True, readonly=True)
    conversation_id = fields.Many2one(
        "crm.gmail.conversation", required=True, index=True, ondelete="cascade", readonly=True
    )

    _sql_constraints = [("key_uniq", "unique(key)", "A conversation key is stored once.")]

    # ------------------------------------------------------------ names
    # a key is a Message-ID of anybody's mail: Odoo names records as superuser (a new
    # activity's res_name...), so the name is neutral for every user
    def _gmail_named_for_user(self):
        return self.browse()

    @api.model
    def _gmail_neutral_name(self):
        return self.env._("Conversation key (no access)")

    # ------------------------------------------------------------ business
    @api.model
    def _gmail_keys_of(self, message_rows):
        """The keys of each email row ``(mailbox id, message_id_header, in_reply_to,
        references, gmail_thrid, dedupe_key)``, as the engine computes them."""
        return [conversation_keys(_Head(*row[1:]), str(row[0])) for row in message_rows]

    @api.model
    def _gmail_assign(self, messages):
        """Put the just-created ``messages`` (``crm.gmail.message``) into their
        conversations, creating and merging conversations as their keys say. About seven
        queries for any number of messages."""
        if not messages:
            return
        messages.flush_recordset()
        self._gmail_assign_rows(
            messages.ids,
            [
                (
                    m.mailbox_id.id,
                    m.message_id_header,
                    m.in_reply_to,
                    (m.references or "").split(),
                    m.gmail_thrid,
                    m.dedupe_key,
                )
                for m in messages
            ],
        )

    @api.model
    def _gmail_assign_all(self):
        """Give every email without a conversation its conversation (the upgrade to
        18.0.1.3.0): one pass, a few queries, whatever the number of emails."""
        cr = self.env.cr
        self.env.flush_all()
        cr.execute(
            """SELECT id, mailbox_id, message_id_header, in_reply_to, "references",
                      gmail_thrid, dedupe_key
                 FROM crm_gmail_message WHERE conversation_id IS NULL ORDER BY id"""
        )
        rows = cr.fetchall()
        if rows:
            self._gmail_assign_rows(
                [row[0] for row in rows],
                [(r[1], r[2], r[3], (r[4] or "").split(), r[5], r[6]) for r in rows],
            )
        return len(rows)

    @api.model
    def _gmail_assign_rows(self, message_ids, rows):
        """Assign the emails ``message_ids``, whose header rows are ``rows`` (see
        :meth:`_gmail_keys_of`)."""
        cr = self.env.cr
        cr.execute(SQL("SELECT pg_advisory_xact_lock(%s, 0)", LOCK_NAMESPACE))
        keys_per_email = self._gmail_keys_of(rows)
        all_keys = list({k for keys in keys_per_email for k in keys})
        cr.execute(
            SQL(
                "SELECT key, conversation_id FROM crm_gmail_conversation_key WHERE key = ANY(%s)",
                all_keys,
            )
        )
        plan = plan_batch(keys_per_email, dict(cr.fetchall()))
        new_ids = []
        if plan.new_count:
            cr.execute(
                SQL(
                    """INSERT INTO crm_gmail_conversation (id)
                       SELECT nextval('crm_gmail_conversation_id_seq')
                         FROM generate_series(1, %s) RETURNING id""",
                    plan.new_count,
                )
            )
            new_ids = sorted(row[0] for row in cr.fetchall())

        def real(target):
            return new_ids[-target - 1] if target < 0 else target

        if plan.merges:
            olds, targets = list(plan.merges), list(plan.merges.values())
            for table in ("crm_gmail_message", "crm_gmail_conversation_key"):
                cr.execute(
                    SQL(
                        """UPDATE %s t SET conversation_id = v.target
                             FROM unnest(%s::int[], %s::int[]) AS v(old, target)
                            WHERE t.conversation_id = v.old""",
                        SQL.identifier(table),
                        olds,
                        targets,
                    )
                )
            cr.execute(SQL("DELETE FROM crm_gmail_conversation WHERE id = ANY(%s)", olds))
        cr.execute(
            SQL(
                """UPDATE crm_gmail_message m SET conversation_id = v.conversation_id
                     FROM unnest(%s::int[], %s::int[]) AS v(id, conversation_id)
                    WHERE m.id = v.id""",
                message_ids,
                [real(t) for t in plan.targets],
            )
        )
        if plan.new_keys:
            cr.execute(
                SQL(
                    """INSERT INTO crm_gmail_conversation_key (key, conversation_id)
                       SELECT * FROM unnest(%s::varchar[], %s::int[])""",
                    list(plan.new_keys),
                    [real(t) for t in plan.new_keys.values()],
                )
            )
        self.env["crm.gmail.message"].invalidate_model(["conversation_id"])
        self.env["crm.gmail.conversation"].invalidate_model()
        self.invalidate_model()


class _Head:
    """The header fields :func:`conversation_keys` reads, from a stored email's row."""

    __slots__ = ("message_id", "in_reply_to", "references", "gmail_thrid", "dedupe_key")

    def __init__(self, message_id, in_reply_to, references, gmail_thrid, dedupe_key):
        self.message_id = message_id or ""
        self.in_reply_to = in_reply_to or ""
        self.references = references or []
        self.gmail_thrid = gmail_thrid or ""
        self.dedupe_key = dedupe_key or ""
