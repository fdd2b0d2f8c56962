"""The sink of a mailbox's sync: engine batches become records, the cursor is saved.

How it works
------------
:class:`MailboxSink` is the engine's port (``engine.port.MailboxPort``) for one mailbox: the
engine asks it which addresses are customers and which dedupe keys are stored already (one
query per header batch each), and hands it each batch, ready to store. The sink creates the
batch's emails (one ``create`` each for emails, participants and attachments), then saves
the cursor and adds the batch's counts in one UPDATE, never through the user-facing
``write()`` and its checks, all in one savepoint; a worker commits after it. A crash leaves
the last committed batch and its cursor: the next run fetches the rest again, and what was
stored without its cursor comes back as duplicates, never twice as mail.
"""

import dataclasses
import json
import logging

import psycopg2
from odoo import fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..engine import Options, SyncState, normalize_set, run_sync
from ..engine.types import OUTCOMES
from .crm_gmail_scheduler import RETRY_SKIPPED_AFTER

_logger = logging.getLogger(__name__)

PARAM_SINCE_DAYS = "crm_gmail_sync.since_days"
PARAM_BATCH_SIZE = "crm_gmail_sync.batch_size"
# What one email's content can make the database or the ORM refuse; the batch is then
# stored one email at a time (see _store_batch). Not OperationalError: lost connections,
# serialisation failures and timeouts are retried with the whole batch on the next run;
# nor OSError or AttachmentStorageError: a filestore that cannot take a file fails the run.
CONTENT_ERRORS = (
    ValueError,  # includes UnicodeError; psycopg2: "cannot contain NUL (0x00) characters"
    TypeError,
    LookupError,
    UserError,  # includes ValidationError
    psycopg2.DataError,
    psycopg2.IntegrityError,
)


class SyncStopped(Exception):
    """The mailbox may no longer be fetched (archived, owner deactivated, seat taken)."""


class MailboxSink:
    """The engine's port for one locked mailbox (see the module docstring)."""

    def __init__(self, mailbox, owner, commit=None):
        self.mailbox = mailbox
        self.owner = owner
        self.commit = commit

    def customers(self, addresses):
        return self.mailbox._customer_filter(addresses)

    def known_keys(self, keys):
        return self.mailbox._known_keys(keys)

    def store(self, batch):
        mailbox = self.mailbox
        with mailbox.env.cr.savepoint():
            mailbox._store_batch(batch, self.owner)
        if self.commit:
            self.commit()
            if not mailbox._may_fetch():
                raise SyncStopped()


class CrmGmailMailbox(models.Model):
    _inherit = "crm.gmail.mailbox"

    # ------------------------------------------------------------ fields
    sync_state = fields.Text(string="Sync cursor", readonly=True, copy=False)
    count_stored = fields.Integer(string="Stored", readonly=True, copy=False)
    count_not_customer = fields.Integer(string="Not customer mail", readonly=True, copy=False)
    count_duplicate = fields.Integer(string="Duplicates", readonly=True, copy=False)
    count_unparseable = fields.Integer(string="Unparseable", readonly=True, copy=False)

    # ------------------------------------------------------------ CRUD
    def write(self, vals):
        other_account = self._account_changes(vals) if "sync_state" not in vals else self.browse()
        res = super().write(vals)
        if other_account:
            # Another account's UIDs say nothing about the old cursor's (even where its
            # UIDVALIDITY happens to be the same): read it from its start; what the old
            # account already gave comes back as duplicates.
            other_account.write({"sync_state": False})
        return res

    # ------------------------------------------------------------ business
    def _gmail_run_engine(
        self, deadline=None, commit=None, crash=(0, False, False), retry_skipped=False
    ):
        """Run the engine on this locked mailbox into its sink; the engine's report, or
        ``None`` when the mailbox may no longer be fetched (checked after each commit)."""
        self.ensure_one()
        mailbox = self.sudo()
        account = mailbox._engine_account()
        params = self.env["ir.config_parameter"].sudo()
        dead_runs, inflight, suspect = crash
        isolate, skip = mailbox._gmail_crash_options(dead_runs, inflight, suspect)
        if skip:
            _logger.warning(
                "crm_gmail_sync: mailbox %s: %s runs in a row died at one message: passing "
                "it over (%s)",
                mailbox.id,
                dead_runs,
                ", ".join(f"{folder}/{uid}" for folder, uid in sorted(skip)),
            )
            if not mailbox.sync_retry_date:
                mailbox._gmail_update(
                    {"sync_retry_date": fields.Datetime.now() + RETRY_SKIPPED_AFTER}
                )
        options = Options(
            since_days=int(params.get_param(PARAM_SINCE_DAYS, 90)),
            batch_size=int(params.get_param(PARAM_BATCH_SIZE, 200)),
            deadline=deadline,
            clock=mailbox._gmail_clock,
            isolate=isolate,
            skip=skip,
            retry_skipped=retry_skipped,
            on_fetch=mailbox._gmail_record_inflight if commit else None,
        )
        state = SyncState.from_json(json.loads(mailbox.sync_state or "{}"))
        sink = MailboxSink(mailbox, normalize_set(account.owner_addresses), commit)
        try:
            return run_sync(account, state, sink, options)
        except SyncStopped:
            return None

    def _customer_filter(self, addresses):
        """The addresses among ``addresses`` that belong to a lead, deal or contact.

        One query per header batch. Partners of internal users and of companies are
        colleagues, not customers.
        """
        if not addresses:
            return set()
        keys = list(addresses)
        self.env["crm.lead"].flush_model(["gmail_email_key", "active"])
        self.env["res.partner"].flush_model(["gmail_email_key", "active"])
        rows = self.env.execute_query(
            SQL(
                """SELECT l.gmail_email_key FROM crm_lead l
                    WHERE l.gmail_email_key = ANY(%(keys)s) AND l.active
                   UNION
                   SELECT p.gmail_email_key FROM res_partner p
                    WHERE p.gmail_email_key = ANY(%(keys)s) AND p.active
                      AND NOT EXISTS (SELECT 1 FROM res_users u
                                       WHERE u.partner_id = p.id AND NOT u.share)
                      AND NOT EXISTS (SELECT 1 FROM res_company c WHERE c.partner_id = p.id)""",
                keys=keys,
            )
        )
        return {row[0] for row in rows}

    def _known_keys(self, keys):
        if not keys:
            return set()
        self.env["crm.gmail.message"].flush_model(["dedupe_key", "mailbox_id"])
        rows = self.env.execute_query(
            SQL(
                """SELECT dedupe_key FROM crm_gmail_message
                    WHERE mailbox_id = %s AND dedupe_key = ANY(%s)""",
                self.id,
                list(keys),
            )
        )
        return {row[0] for row in rows}

    def _store_batch(self, batch, owner):
        """Create the batch's emails, then save the cursor and the counters.

        An email that the database refuses (say, a value PostgreSQL cannot hold) must not
        block its mailbox for ever: the batch is then stored one email at a time, and an
        email that still fails is counted as unparseable and passed, like mail the engine
        cannot parse. Connection, concurrency and storage errors (an attachment's file
        that cannot be written) are not content errors: they propagate, nothing is saved,
        and the next run fetches the batch again.
        """
        self.ensure_one()
        messages_model = self.env["crm.gmail.message"].sudo()
        outcomes = batch.outcomes
        # the Sent copies of emails sent from Odoo become those emails (crm_gmail_outbox.py)
        batch = dataclasses.replace(
            batch, messages=messages_model._gmail_adopt_sent(self, batch.messages)
        )
        try:
            with self.env.cr.savepoint():
                messages = messages_model._create_from_engine(self, batch.messages, owner)
        except CONTENT_ERRORS as exc:
            _logger.warning(
                "crm_gmail_sync: mailbox %s: storing a batch of %s emails failed (%s); "
                "storing them one by one",
                self.id,
                len(batch.messages),
                type(exc).__name__,
            )
            messages, outcomes = self._store_one_by_one(batch, owner)
        self._save_cursor(batch.state, outcomes)
        if batch.sent_from - owner:
            self.env["crm.gmail.mailbox.alias"]._suggest(self, batch.sent_from - owner)
        return messages

    def _store_one_by_one(self, batch, owner):
        """``(stored emails, outcomes)``: each email in its own savepoint."""
        messages = self.env["crm.gmail.message"].sudo()
        refused = {}
        for msg in batch.messages:
            try:
                with self.env.cr.savepoint():
                    messages |= messages._create_from_engine(self, [msg], owner)
            except CONTENT_ERRORS as exc:
                # the exception's class only: its text may quote the email's content
                refused[msg.header.dedupe_key] = f"not storable: {type(exc).__name__}"
        outcomes = [
            dataclasses.replace(outcome, status="unparseable", reason=refused[outcome.dedupe_key])
            if outcome.status == "stored" and outcome.dedupe_key in refused
            else outcome
            for outcome in batch.outcomes
        ]
        return messages, outcomes

    def _save_cursor(self, state, outcomes):
        """Save the cursor after a stored batch, and add its outcomes to the counters: one
        UPDATE, not the user-facing ``write()``."""
        counts = dict.fromkeys(OUTCOMES, 0)
        for outcome in outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            if outcome.status == "unparseable":
                _logger.info(
                    "crm_gmail_sync: mailbox %s: %s/%s unparseable: %s",
                    self.id,
                    outcome.folder,
                    outcome.uid,
                    outcome.reason,
                )
        if self.state != "connected":
            self._set_connected()  # a mailbox that is storing mail works, run finished or not
        self.flush_recordset()
        self.env.cr.execute(
            SQL(
                """UPDATE crm_gmail_mailbox
                      SET sync_state = %s,
                          count_stored = COALESCE(count_stored, 0) + %s,
                          count_not_customer = COALESCE(count_not_customer, 0) + %s,
                          count_duplicate = COALESCE(count_duplicate, 0) + %s,
                          count_unparseable = COALESCE(count_unparseable, 0) + %s
                    WHERE id = %s""",
                json.dumps(state.to_json(), sort_keys=True),
                counts["stored"],
                counts["not_customer"],
                counts["duplicate"],
                counts["unparseable"],
                self.id,
            )
        )
        self.invalidate_recordset(
            ["sync_state", "count_stored", "count_not_customer", "count_duplicate"]
            + ["count_unparseable"]
        )
