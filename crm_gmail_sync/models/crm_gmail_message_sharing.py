"""Which synced emails their owner shared: the stored flag ``crm.gmail.message.is_shared``.

What it is
----------
An email is *shared* when its owner ticked "Share my emails" on a lead/deal or contact
whose current address is among the email's participants (not its Bcc), and the email's
mailbox still belongs to that owner. The record rule reads the flag (together with the
live conditions it keeps: the mailbox is active and shared, its owner active and seated,
the reader seated), so that reading the shared mail of a colleague costs an index scan,
not a join of every share with every participant.

How it works
------------
The flag is a function of the shares, the records' addresses and main contacts, the
participants and the mailbox's owner. Whatever changes one of them marks what it touches
as *dirty* (the addresses, or the mailboxes), in the transaction (``cr.precommit.data``):

- a share created, rewritten or removed: its addresses;
- a lead/deal or contact whose address, main contact or type changes, or that is deleted
  (its shares go with it): its addresses before and after;
- a mailbox handed over to another user: its emails;
- new emails are flagged as they are stored.

The dirty emails are recomputed in one ``UPDATE`` before anything reads the rule
(``_flush_visibility_inputs``) and before the transaction commits (a precommit hook), so
that no reader, in this transaction or another, ever sees a flag older than the data it
derives from. A daily scheduled action recomputes every flag as a safety net for changes
made outside the ORM.

Two transactions at once: each computes flags from its own snapshot, so an unshare (or an
address change) and a sync storing mail of that address could each commit a result the
other's change makes wrong. Every recomputation therefore also writes one row per address
it decided about in ``crm.gmail.share.address`` (the changed addresses, and the shared
ones among the emails it flagged): two transactions deciding about the same address then
write the same row, PostgreSQL lets only the first commit, and the other is retried from
a fresh snapshot (Odoo retries the request; the sync stores the batch again in its next
run). Two syncs of the same *shared* customer at once conflict in the same way.
"""

import logging

import psycopg2.errors
from odoo import api, fields, models
from odoo.tools import SQL, mute_logger

_logger = logging.getLogger(__name__)

DIRTY = "crm_gmail_sync.shared_dirty"
ANALYZE_AFTER = 1000  # flags changed at once: the table's statistics are refreshed


class CrmGmailShareAddress(models.Model):
    """An address whose sharing some transaction decided about: the row two concurrent
    decisions about the same address both write, so that one of them is retried."""

    _name = "crm.gmail.share.address"
    _description = "Shared address (technical)"
    _log_access = False

    email = fields.Char(required=True, readonly=True)
    decisions = fields.Integer(readonly=True)

    _sql_constraints = [("email_uniq", "unique(email)", "One row per address.")]


class CrmGmailMessage(models.Model):
    _inherit = "crm.gmail.message"

    # ------------------------------------------------------------ fields
    is_shared = fields.Boolean(
        string="Shared by its owner",
        readonly=True,
        copy=False,
        help="Technical: the owner shared a lead, deal or contact this email shows on.",
    )

    # ------------------------------------------------------------ ORM
    def init(self):
        super().init()
        cr = self.env.cr
        # The owner's emails (their own tab, their Emails pages) from the index alone.
        cr.execute(
            """CREATE INDEX IF NOT EXISTS crm_gmail_message_owner_conversation_idx
                   ON crm_gmail_message (owner_id) INCLUDE (conversation_id, date, mailbox_id)"""
        )
        # The shared emails of everybody (a colleague's tab) from a small partial index.
        cr.execute(
            """CREATE INDEX IF NOT EXISTS crm_gmail_message_shared_conversation_idx
                   ON crm_gmail_message (conversation_id) INCLUDE (date, mailbox_id, owner_id)
                WHERE is_shared"""
        )

    # ------------------------------------------------------------ business
    @api.model
    def _gmail_mark_shared_dirty(self, keys=(), mailbox_ids=()):
        """Recompute the flag of the emails with these participant addresses, or of these
        mailboxes, before the next read of the rule and before the commit."""
        keys = {key for key in keys if key}
        mailbox_ids = {mid for mid in mailbox_ids if isinstance(mid, int)}
        if not keys and not mailbox_ids:
            return
        cr = self.env.cr
        dirty = cr.precommit.data.get(DIRTY)
        if dirty is None:
            dirty = cr.precommit.data[DIRTY] = {"keys": set(), "mailboxes": set()}
            cr.precommit.add(self.sudo()._gmail_refresh_dirty)
        dirty["keys"] |= keys
        dirty["mailboxes"] |= mailbox_ids

    def _gmail_refresh_dirty(self):
        """Recompute the flag of what :meth:`_gmail_mark_shared_dirty` collected."""
        self._gmail_flush_sharing_inputs()  # first: it may mark more
        dirty = self.env.cr.precommit.data.pop(DIRTY, None)
        if not dirty:
            return
        touched = []
        if dirty["keys"]:
            touched.append(
                SQL(
                    "SELECT message_id FROM crm_gmail_message_address WHERE email = ANY(%s)",
                    sorted(dirty["keys"]),
                )
            )
        if dirty["mailboxes"]:
            touched.append(
                SQL(
                    "SELECT id FROM crm_gmail_message WHERE mailbox_id = ANY(%s)",
                    sorted(dirty["mailboxes"]),
                )
            )
        self._gmail_refresh_shared(SQL(" UNION ").join(touched), keys=dirty["keys"])

    @api.model
    def _gmail_refresh_shared(self, touched=None, keys=()):
        """Recompute the flag of the emails whose ids the SQL ``touched`` selects (all of
        them when None): one statement, writing only the rows whose flag changes, and the
        ``crm.gmail.share.address`` rows of ``keys`` (the changed addresses) and of the
        shared addresses among the touched emails. Returns the number of flags changed."""
        self._gmail_flush_sharing_inputs()
        if touched is None:
            touched = SQL("SELECT id FROM crm_gmail_message")
        self.env.cr.execute(
            SQL(
                """WITH touched AS MATERIALIZED (SELECT DISTINCT t.id FROM (%(touched)s) t(id)),
                        parts AS MATERIALIZED (
                            SELECT a.message_id, a.email
                              FROM touched t JOIN crm_gmail_message_address a
                                ON a.message_id = t.id AND a.role != 'bcc'),
                        share_keys AS MATERIALIZED (%(share_keys)s),
                        decided AS (
                            INSERT INTO crm_gmail_share_address AS d (email, decisions)
                            SELECT email, 1 FROM (
                                SELECT email FROM share_keys
                                 UNION SELECT unnest(%(keys)s::varchar[])) e
                             ORDER BY email
                            ON CONFLICT (email) DO UPDATE SET decisions = d.decisions + 1
                            RETURNING 1),
                        now_shared AS (
                            SELECT DISTINCT p.message_id AS id
                              FROM parts p
                              JOIN crm_gmail_message sm ON sm.id = p.message_id
                              JOIN crm_gmail_mailbox sb
                                ON sb.id = sm.mailbox_id AND sb.user_id = sm.owner_id
                              JOIN share_keys k
                                ON k.email = p.email AND k.user_id = sm.owner_id)
                   UPDATE crm_gmail_message m SET is_shared = (n.id IS NOT NULL)
                     FROM touched t LEFT JOIN now_shared n ON n.id = t.id
                    WHERE m.id = t.id AND (m.is_shared IS TRUE) != (n.id IS NOT NULL)""",
                touched=touched,
                share_keys=self._share_keys_sql(SQL("SELECT email FROM parts")),
                keys=sorted({key for key in keys if key}),
            )
        )
        changed = self.env.cr.rowcount
        if changed:
            self.invalidate_model(["is_shared"])
        if changed >= ANALYZE_AFTER:
            self._gmail_analyze_flags()
        return changed

    @api.model
    def _gmail_analyze_flags(self):
        """Refresh PostgreSQL's statistics of the flag after a large change (sharing a big
        customer, the upgrade): the rule's plans rest on how many emails are shared, and
        autovacuum waits for a tenth of the table to change. Skipped rather than waited
        for when an autovacuum holds the table."""
        cr = self.env.cr
        cr.execute("SHOW lock_timeout")
        timeout = cr.fetchone()[0]
        try:
            with cr.savepoint(flush=False), mute_logger("odoo.sql_db"):
                cr.execute("SELECT set_config('lock_timeout', '200ms', true)")
                cr.execute("ANALYZE crm_gmail_message (is_shared, owner_id, mailbox_id)")
        except psycopg2.errors.LockNotAvailable:
            _logger.info("crm_gmail_sync: statistics of the sharing flag left to autovacuum")
        finally:
            cr.execute("SELECT set_config('lock_timeout', %s, true)", [timeout])

    @api.model
    def _share_keys_sql(self, emails):
        """SQL ``(user_id, email)``: the current addresses among ``emails`` (SQL) each
        owner shared mail of.

        A share covers the addresses its record had when it was shared (``email_keys``):
        an address is shared while it is both the record's current one and among those.
        """
        return SQL(
            """SELECT s.user_id, l.gmail_email_key AS email
                 FROM crm_gmail_share s JOIN crm_lead l ON l.id = s.lead_id
                WHERE l.gmail_email_key IN (%(emails)s)
                  AND l.gmail_email_key = ANY(string_to_array(s.email_keys, ' '))
               UNION
               SELECT s.user_id, p.gmail_email_key
                 FROM crm_gmail_share s JOIN crm_lead l ON l.id = s.lead_id
                 JOIN res_partner p ON p.id = l.partner_id
                WHERE l.type = 'opportunity' AND p.gmail_email_key IN (%(emails)s)
                  AND p.gmail_email_key = ANY(string_to_array(s.email_keys, ' '))
               UNION
               SELECT s.user_id, p.gmail_email_key
                 FROM crm_gmail_share s JOIN res_partner p ON p.id = s.partner_id
                WHERE p.gmail_email_key IN (%(emails)s)
                  AND p.gmail_email_key = ANY(string_to_array(s.email_keys, ' '))""",
            emails=emails,
        )

    @api.model
    def _gmail_flush_sharing_inputs(self):
        """Write pending ORM changes that the flag is computed from."""
        self.env["crm.gmail.mailbox"].flush_model(["user_id"])
        self.env["crm.gmail.share"].flush_model()
        self.env["crm.lead"].flush_model(["gmail_email_key", "partner_id", "type"])
        self.env["res.partner"].flush_model(["gmail_email_key"])
        self.env["crm.gmail.message.address"].flush_model()
        self.flush_model(["owner_id", "mailbox_id"])

    @api.model
    def _cron_refresh_shared(self):
        """Daily: recompute every flag (a safety net for changes made outside the ORM)."""
        self._gmail_refresh_shared()
