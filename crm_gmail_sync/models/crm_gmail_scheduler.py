"""The scheduler of mailbox syncs: due times, claiming, time budgets, backoff, run status.

How it works
------------
Every mailbox has its own due time, ``sync_next_date`` (empty: due now, first in line). A run
of the scheduled action (:meth:`_cron_fetch`, or one of its copies: the "sync workers"
setting; any number of them on any number of Odoo servers sharing one database) claims the
most overdue mailbox, syncs it, gives it its next due time and claims the next one, until
none is due or its time budget is spent. It then reports its progress with
``ir.cron._notify_progress``: while due mailboxes remain, Odoo runs it again at once.

Claiming is one statement: the most overdue candidates, in order, and the first whose
session-level advisory lock ``(LOCK_NAMESPACE, id)`` can be taken. That lock is held for the
whole sync of the mailbox, across its commits, and released at its end; PostgreSQL drops it
with the session of a killed worker, so no stale claim survives a crash and the mailbox is
picked up by the next run. Workers never wait on each other: a taken lock is passed over.
After the lock, the mailbox is checked again in a new snapshot (another worker may have
synced it meanwhile) and the run is counted as started (``sync_crashes``).

Failures: network, TLS, protocol and server-limit answers (Gmail's ``[THROTTLED]``) back off
that mailbox only (``engine.backoff``: exponential, capped, with jitter; the next attempt is
shown on the mailbox); a refused login waits for new credentials. A run that never ended
(its worker was killed) is counted: after one, the mailbox is synced one message at a time,
each recorded before it is downloaded (``sync_inflight``); a message that two such runs in a
row died downloading, parsing or storing is then passed over, kept as unreadable and tried
again a day later. A deploy or a time limit that kills a run at a random message does not
make it skipped: the next run starts at the same message and gets past it.

With OCA ``queue_job`` installed, the glue addon ``crm_gmail_sync_queue`` turns each due
mailbox into one job instead; the job calls :meth:`_gmail_sync_claimed` the same way.
"""

import json
import logging
import random
import time
from datetime import timedelta

import psycopg2
from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.modules import module as odoo_module
from odoo.tools import SQL, config, plaintext2html

from ..engine import SyncError
from ..engine import errors as engine_errors
from ..engine.backoff import next_delay
from .crm_gmail_error import ERROR_KINDS, STORAGE, error_text
from .ir_attachment import AttachmentStorageError
from .res_groups import GROUP_SEAT

_logger = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x6D61696C  # "mail": pg advisory lock namespace of mailbox syncs
CRON_XMLID = "crm_gmail_sync.ir_cron_crm_gmail_sync_fetch"
PARAM_BUDGET = "crm_gmail_sync.run_budget"
WARNING_ACTIVITY = "mail.mail_activity_data_warning"
MAX_WORKERS = 64  # sync workers (scheduled actions) at most
CANDIDATES = 2 * MAX_WORKERS  # due mailboxes looked at per claim: more than can be running
BUDGET = 30.0  # seconds a run works at most (see _gmail_budget)
MIN_BUDGET = 5.0
CRON_SLEEP = 70  # seconds a cron worker may sleep after its watchdog ping (60 + up to 9)
BACK_TO_BACK = 3.0  # seconds: a fetch run this soon after another in one process waits
_LAST_RUN_END = [0.0]  # per process: when its last fetch run ended (see _cron_fetch)
WAIT_FOR_USER = timedelta(days=365)  # the due time of a mailbox waiting for new credentials
CONFLICT_DELAY = 30  # seconds: a sync that met an edit of its mailbox goes on after that
ISOLATE_AFTER = 1  # runs in a row that never ended: then one message at a time
SKIP_AFTER = 3  # ... and the message two isolated dead runs were downloading is passed over
RETRY_SKIPPED_AFTER = timedelta(days=1)  # ... and tried again a day later
# failures that leave the mailbox's state as it was: the next attempt may well work
TEMPORARY_KINDS = (engine_errors.NETWORK, engine_errors.THROTTLED)
# Fields whose change means "try again": a corrected password resumes fetching.
CONNECTION_FIELDS = {
    "provider",
    "host",
    "port",
    "security",
    "login",
    "password",
    "oauth_token",
    "ca_file",
    "email",
}


class CrmGmailMailbox(models.Model):
    _inherit = "crm.gmail.mailbox"

    # ------------------------------------------------------------ fields
    state = fields.Selection(
        [("draft", "Not connected"), ("connected", "Connected"), ("error", "Error")],
        required=True,
        default="draft",
        readonly=True,
        copy=False,
    )
    last_error = fields.Text(readonly=True, copy=False)
    last_error_kind = fields.Selection(ERROR_KINDS, readonly=True, copy=False)
    last_error_date = fields.Datetime(string="Last error on", readonly=True, copy=False)
    last_sync_date = fields.Datetime(string="Last sync", readonly=True, copy=False)
    sync_next_date = fields.Datetime(
        string="Next sync",
        readonly=True,
        copy=False,
        help="When this mailbox is synced next; after a failure, the next attempt.",
    )
    sync_failures = fields.Integer(
        string="Failed attempts", readonly=True, copy=False, help="Failed syncs in a row."
    )
    sync_crashes = fields.Integer(
        string="Unfinished runs",
        readonly=True,
        copy=False,
        help="Syncs in a row that started and never ended (their worker was stopped).",
    )
    sync_retry_date = fields.Datetime(
        string="Retry unreadable emails on",
        readonly=True,
        copy=False,
        help="Emails passed over because their sync stopped the worker are tried again then.",
    )
    sync_suspect = fields.Char(
        string="Suspected message", readonly=True, copy=False
    )  # what the dead run before the last one was downloading (as sync_inflight)
    sync_inflight = fields.Char(
        string="Messages in flight", readonly=True, copy=False
    )  # JSON {"folder", "uids"}: what the current run is downloading

    def init(self):
        super().init()
        # the claim's order: the most overdue first (never synced: first of all)
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS crm_gmail_mailbox_due_index
                   ON crm_gmail_mailbox (sync_next_date NULLS FIRST, id) WHERE active"""
        )

    # ------------------------------------------------------------ CRUD
    def write(self, vals):
        if CONNECTION_FIELDS & set(vals) and "state" not in vals:
            # New credentials or server: clear the error so the next run retries at once
            # and resumes from the stored cursor.
            vals = dict(
                vals,
                state="draft",
                last_error=False,
                last_error_kind=False,
                sync_next_date=False,
                sync_failures=0,
            )
        return super().write(vals)

    # ------------------------------------------------------------ actions
    def action_sync_now(self):
        """Sync this mailbox now, in this request; when a worker is syncing it already,
        say so (its new emails appear in a moment)."""
        self.ensure_one()
        self._guard_seat()
        mailbox = self.sudo()
        if not mailbox.active:
            raise UserError(self.env._("This mailbox is archived: restore it to sync it."))
        if not mailbox._may_fetch():
            raise UserError(
                self.env._(
                    "%(user)s is deactivated: their mailbox is not synced.",
                    user=mailbox.user_id.name,
                )
            )
        if not mailbox._gmail_lock(transaction=True):
            return self._notification(
                self.env._(
                    "This mailbox is already being synced (by the scheduled fetch): its new "
                    "emails appear in a moment."
                ),
                "warning",
            )
        try:
            mailbox._gmail_sync_locked(deadline=self._gmail_clock() + self._gmail_budget())
        except AttachmentStorageError:
            # the batch's savepoint is rolled back; what was stored before it stays
            _logger.exception("crm_gmail_sync: mailbox %s: storing failed", mailbox.id)
            mailbox._set_storage_failed()
            return self._notification(self.last_error, "danger")
        if mailbox.sync_next_date and mailbox.sync_next_date <= fields.Datetime.now():
            self._gmail_trigger()  # cut by its time budget: the cron goes on at once
        # A dropped connection leaves the state as it was (the next run retries) but
        # records the error: this run failed all the same.
        if self.state == "error" or self.last_error:
            return self._notification(self.last_error, "danger")
        return self._notification(
            self.env._("Sync finished: %(stored)s emails stored so far.", stored=self.count_stored),
            "success",
        )

    # ------------------------------------------------------------ cron
    @api.model
    def _cron_fetch(self):
        """Sync due mailboxes, most overdue first, for a time budget; while due mailboxes
        remain, the scheduled action is triggered again at once.

        Odoo's cron watchdog counts from before a cron worker's sleep and covers every job
        it then runs, each job's re-runs included: so a run ends its job (``remaining=0``,
        no re-run in the same period) and triggers the next one, which a worker starts
        after its next ping; and a fetch copy that follows another in the same process
        without a pause (one cron thread, several copies) passes its turn.
        """
        clock = self._gmail_clock
        if self.env.context.get("cron_id") and clock() - _LAST_RUN_END[0] < BACK_TO_BACK:
            self._gmail_trigger(delay=BACK_TO_BACK)
            return
        try:
            done = self._gmail_sync_due(clock() + self._gmail_budget())
        finally:
            _LAST_RUN_END[0] = clock()
        remaining = self._gmail_due_count()
        self.env["ir.cron"]._notify_progress(done=done, remaining=0)
        if remaining:
            self._gmail_trigger()

    @api.model
    def _gmail_sync_due(self, deadline=None):
        """Claim and sync due mailboxes until none is due or ``deadline`` (a
        ``_gmail_clock()`` value) has passed; return how many were synced."""
        done = 0
        interval = self._gmail_interval()
        while deadline is None or self._gmail_clock() < deadline:
            mailbox = self._gmail_claim()
            if not mailbox:
                break
            mailbox._gmail_sync_claimed(deadline, interval=interval)
            done += 1
            # committed progress: a worker killed later is not a cron that timed out
            self.env["ir.cron"]._notify_progress(done=done, remaining=1)
            self._gmail_commit()
        return done

    @api.model
    def _gmail_claim(self):
        """The most overdue due mailbox, locked for this session, or an empty recordset.

        The lock is taken on the first candidate nobody holds; the mailbox is then
        checked again in a fresh snapshot: a worker may have synced it since the first.
        """
        cr = self.env.cr
        while True:
            self._gmail_commit()  # a fresh snapshot: the lock holders' commits are seen
            self.flush_model()
            candidates = self.sudo()._search(
                self._gmail_due_domain(), order=self._gmail_due_order(), limit=CANDIDATES
            )
            cr.execute(
                SQL(
                    "SELECT c.id FROM (%s) c WHERE pg_try_advisory_lock(%s, c.id) LIMIT 1",
                    candidates.select(SQL.identifier(self._table, "id")),
                    LOCK_NAMESPACE,
                )
            )
            row = cr.fetchone()
            if not row:
                return self.browse()
            mailbox = self.sudo().browse(row[0])  # its own prefetch: no neighbour is read
            try:
                if mailbox._gmail_still_due():
                    return mailbox
            except Exception:
                mailbox._gmail_unlock()
                raise
            mailbox._gmail_unlock()  # synced by another worker meanwhile

    def _gmail_claim_this(self):
        """Claim this mailbox if it is due and nobody holds it; ``True`` when claimed."""
        self.ensure_one()
        if not self._gmail_lock():
            return False
        try:
            if self._gmail_still_due():
                return True
        except Exception:
            self._gmail_unlock()
            raise
        self._gmail_unlock()
        return False

    def _gmail_still_due(self):
        """Whether this locked mailbox is still due, in a fresh snapshot: another worker
        may have synced it and released it since this transaction's snapshot was taken."""
        self.ensure_one()
        self._gmail_commit()
        return bool(self.sudo().search_count([("id", "=", self.id), *self._gmail_due_domain()]))

    def _gmail_sync_claimed(self, deadline=None, interval=None):
        """Sync this claimed mailbox (its lock is held), committing as it goes, and
        release it. A failure of storing is logged and recorded on the mailbox."""
        self.ensure_one()
        mailbox = self.sudo()
        try:
            try:
                mailbox._gmail_sync_locked(deadline, interval, commit=self._gmail_commit)
            except psycopg2.extensions.TransactionRollbackError:
                # somebody saved the mailbox meanwhile (its form, "Test connection"): not a
                # failure of the mail; the batch comes again in the next run, soon
                _logger.info("crm_gmail_sync: mailbox %s: edited during its sync", mailbox.id)
                if self._gmail_in_test():
                    raise
                self.env.cr.rollback()  # pylint: disable=invalid-commit
                mailbox.invalidate_recordset()
                mailbox._gmail_reschedule(delay=CONFLICT_DELAY)
            except Exception:
                _logger.exception("crm_gmail_sync: mailbox %s: unexpected failure", mailbox.id)
                if self._gmail_in_test():
                    raise
                self.env.cr.rollback()  # pylint: disable=invalid-commit
                mailbox.invalidate_recordset()
                mailbox._set_storage_failed()
            self._gmail_commit()  # its new state, before another worker can claim it
        finally:
            mailbox._gmail_unlock()

    def _gmail_sync_locked(self, deadline=None, interval=None, commit=None):
        """Run the engine on this locked mailbox and give it its next due time; return
        whether the run reached its end without an error.

        ``commit`` (workers only) is called after each stored batch and its cursor; without
        it the run is one transaction (the "Sync now" request, tests).
        """
        mailbox = self
        dead = mailbox.sync_crashes  # runs of this mailbox that started and never ended
        # what the last dead run was downloading, and the one before it: only a message
        # in flight in both is passed over (a deploy or a time limit kills at random)
        inflight = (mailbox.sync_inflight or False) if dead else False
        suspect = mailbox.sync_suspect if dead > 1 else False
        now = fields.Datetime.now()
        retry = not dead and mailbox.sync_retry_date and mailbox.sync_retry_date <= now
        vals = {"sync_crashes": dead + 1, "sync_inflight": False, "sync_suspect": inflight}
        if retry:  # the unreadable messages passed over are tried again, once a day
            vals["sync_retry_date"] = now + RETRY_SKIPPED_AFTER
        mailbox._gmail_update(vals)
        if commit:
            self._gmail_commit()  # counted for good: this run may die
        try:
            report = mailbox._gmail_run_engine(
                deadline,
                commit,
                crash=(dead, inflight, suspect),
                retry_skipped=bool(retry),
            )
        except SyncError as exc:
            mailbox._gmail_failed(exc)
            return False
        if report is None:  # stopped: archived, owner deactivated or seat taken meanwhile
            mailbox._gmail_reschedule(interval=interval)
            return False
        mailbox._gmail_succeeded(report, interval)
        return report.finished

    # ------------------------------------------------------------ business
    @api.model
    def _owner_domain(self):
        """Mailboxes that may be fetched at all: active, of an active owner with a seat."""
        seat = self.env.ref(GROUP_SEAT)
        return [
            ("active", "=", True),
            ("user_id.active", "=", True),
            ("user_id.groups_id", "in", seat.ids),
        ]

    def _may_fetch(self):
        """Whether this mailbox may be fetched, as the database says now (also in the
        middle of a run, after a commit: another worker may have archived it, deactivated
        its owner or taken the seat; the cached groups of this worker may be stale)."""
        self.ensure_one()
        return bool(self.sudo().search_count([("id", "=", self.id), *self._owner_domain()]))

    @api.model
    def _fetchable_domain(self):
        return [
            *self._owner_domain(),
            ("host", "!=", False),
            "|",
            ("state", "!=", "error"),
            ("last_error_kind", "not in", sorted(engine_errors.WAITS_FOR_USER)),
        ]

    @api.model
    def _gmail_due_domain(self):
        now = fields.Datetime.now()
        return [
            *self._fetchable_domain(),
            "|",
            ("sync_next_date", "=", False),
            ("sync_next_date", "<=", now),
        ]

    @api.model
    def _gmail_due_order(self):
        return "sync_next_date asc nulls first, id"

    @api.model
    def _gmail_due_count(self):
        return self.sudo().search_count(self._gmail_due_domain())

    def _gmail_make_due(self):
        """Put these mailboxes at the front of the line."""
        self.sudo().write({"sync_next_date": False})

    @api.model
    def _gmail_budget(self):
        """Seconds a run may work: the setting, else what Odoo's time limit leaves after
        a cron worker's sleep (``limit_time_real_cron``, else ``limit_time_real``, less
        ``CRON_SLEEP``), at most ``BUDGET`` seconds; "Sync now" (a request) gets the same."""
        value = self.env["ir.config_parameter"].sudo().get_param(PARAM_BUDGET)
        if value:
            return max(1.0, float(value))
        limits = [config.get("limit_time_real") or 0]
        cron = config.get("limit_time_real_cron")
        if cron is not None and cron >= 0:
            limits.append(cron)
        limits = [limit for limit in limits if limit and limit > 0]
        if not limits:
            return BUDGET
        return max(MIN_BUDGET, min(BUDGET, (min(limits) - CRON_SLEEP) * 0.8))

    @api.model
    def _gmail_clock(self):
        """The clock of deadlines, the engine's too (tests move it by hand)."""
        return time.monotonic()

    @api.model
    def _gmail_interval(self):
        """The minutes between two syncs of a mailbox: the scheduled action's interval."""
        cron = self.env.ref(CRON_XMLID, raise_if_not_found=False)
        if not cron:
            return 5
        cron = cron.sudo()
        factor = {"minutes": 1, "hours": 60, "days": 1440, "weeks": 10080, "months": 43200}
        return cron.interval_number * factor.get(cron.interval_type, 1)

    @api.model
    def _gmail_worker_crons(self):
        """The scheduled actions that fetch mailboxes: the module's own and its copies."""
        main = self.env.ref(CRON_XMLID, raise_if_not_found=False)
        if not main:
            return self.env["ir.cron"]
        main = main.sudo()
        copies = main.with_context(active_test=False).search(
            [
                ("model_id", "=", main.model_id.id),
                ("code", "=", main.code),
                ("id", "!=", main.id),
            ],
            order="id",
        )
        return main | copies

    @api.model
    def _gmail_set_workers(self, workers):
        """As many fetching scheduled actions as ``workers``: copies of the module's own,
        on its interval, each claiming due mailboxes in parallel."""
        crons = self._gmail_worker_crons()
        if not crons:
            return
        main, copies = crons[0], crons[1:]
        missing = workers - len(crons)
        for number in range(len(crons) + 1, len(crons) + 1 + max(0, missing)):
            main.copy(
                {
                    "name": self.env._(
                        "Gmail sync: fetch customer emails (worker %(number)s)", number=number
                    ),
                    "active": main.active,
                    "nextcall": main.nextcall,
                }
            )
        if missing < 0:
            copies[len(copies) + missing :].unlink()

    @api.model
    def _gmail_trigger(self, delay=0):
        """Run the scheduled action (again) now, or in ``delay`` seconds."""
        cron = self.env.ref(CRON_XMLID, raise_if_not_found=False)
        if cron:
            at = fields.Datetime.now() + timedelta(seconds=delay) if delay else None
            cron.sudo()._trigger(at)

    @api.model
    def _gmail_in_test(self):
        # Odoo's test runner sets current_test; other runners (pytest-odoo on 18.0) do not,
        # so tests also pass the context key.
        return bool(odoo_module.current_test) or self.env.context.get(
            "crm_gmail_sync_no_commit", False
        )

    @api.model
    def _gmail_commit(self):
        # The cron commits after every stored batch and every mailbox: one broken mailbox
        # or a crash must not roll back the mail already stored (fetchmail commits per
        # message for the same reason). Tests run in one transaction and must not commit.
        if not self._gmail_in_test():
            self.env.cr.commit()  # pylint: disable=invalid-commit

    def _gmail_lock(self, transaction=False):
        """Take this mailbox's lock if nobody holds it; ``True`` when taken. A worker's
        lock is the session's (it outlives the run's commits; see :meth:`_gmail_unlock`);
        ``transaction``: until this transaction ends (one request, no commit)."""
        self.ensure_one()
        function = "pg_try_advisory_xact_lock" if transaction else "pg_try_advisory_lock"
        self.env.cr.execute(
            SQL("SELECT %s(%s, %s)", SQL.identifier(function), LOCK_NAMESPACE, self.id)
        )
        return self.env.cr.fetchone()[0]

    def _gmail_unlock(self):
        """Release this mailbox's session lock, also after a failed statement: a lock
        kept by a pooled connection would hold the mailbox until that connection ends."""
        self.ensure_one()
        cr = self.env.cr
        try:
            cr.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, self.id])
        except psycopg2.errors.InFailedSqlTransaction:
            cr.rollback()  # the transaction failed anyway; its end does not end the lock
            cr.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, self.id])
        except psycopg2.Error:  # the connection is gone: so is the lock
            _logger.info("crm_gmail_sync: mailbox %s: lock released with its session", self.id)

    # kept for callers of the single-mailbox API (tests, benchmarks, the demo)
    def _sync_one(self, commit=None):
        """Sync this mailbox now if it may be fetched and nobody else syncs it."""
        self.ensure_one()
        mailbox = self.sudo()
        if not mailbox._may_fetch():
            return False
        if not mailbox._gmail_lock():
            _logger.info("crm_gmail_sync: mailbox %s is already syncing", mailbox.id)
            return False
        try:
            return mailbox._gmail_sync_locked(commit=commit)
        finally:
            mailbox._gmail_unlock()

    @api.model
    def _gmail_crash_options(self, dead_runs, inflight, suspect=False):
        """``(isolate, skip)`` after ``dead_runs`` runs in a row that never ended, the last
        one downloading ``inflight``, the one before ``suspect``: see the module docstring.
        A message is passed over only when both were downloading it, alone."""
        skip = frozenset()
        if dead_runs >= SKIP_AFTER and inflight and inflight == suspect:
            record = json.loads(inflight) or {}
            uids = record.get("uids") or []
            if len(uids) == 1:
                skip = frozenset({(record.get("folder") or "", str(uids[0]))})
        return dead_runs >= ISOLATE_AFTER, skip

    def _gmail_succeeded(self, report, interval=None):
        vals = {
            "last_sync_date": fields.Datetime.now(),
            "sync_failures": 0,
            "sync_crashes": 0,
            "sync_inflight": False,
        }
        if report.finished:
            vals["sync_next_date"] = self._gmail_next_date(interval)
        else:  # cut by the time budget: due again, after the mailboxes already waiting
            vals["sync_next_date"] = fields.Datetime.now()
        if self.state != "connected" or self.last_error:
            self._set_connected(vals)
        else:
            self._gmail_update(vals)

    def _gmail_failed(self, exc):
        """Record an engine error, back off (or wait for new credentials)."""
        _logger.warning(
            "crm_gmail_sync: mailbox %s: %s: %s", self.id, exc.kind, self._redact(exc.message)
        )
        self._set_error(exc)

    def _gmail_reschedule(self, delay=None, interval=None):
        """The next due time: after ``delay`` seconds, else after the interval."""
        self._gmail_update(
            {
                "sync_next_date": fields.Datetime.now() + timedelta(seconds=delay)
                if delay is not None
                else self._gmail_next_date(interval),
                "sync_crashes": 0,
                "sync_inflight": False,
            }
        )

    def _gmail_next_date(self, interval=None):
        minutes = interval or self._gmail_interval()
        return fields.Datetime.now() + timedelta(minutes=minutes)

    def _gmail_update(self, vals):
        """Write scheduler state in one UPDATE, around the user-facing ``write()`` and its
        rules (these are no user's edits) and without mail tracking."""
        self.ensure_one()
        self.flush_recordset(list(vals))
        assignments = SQL(", ").join(
            SQL("%s = %s", SQL.identifier(name), None if value is False else value)
            for name, value in vals.items()
        )
        self.env.cr.execute(
            SQL("UPDATE crm_gmail_mailbox SET %s WHERE id = %s", assignments, self.id)
        )
        self.invalidate_recordset(list(vals))

    def _gmail_record_inflight(self, folder, uids):
        """Remember the messages about to be downloaded, committed: if this run dies, the
        next one knows which message it died at."""
        self._gmail_update({"sync_inflight": json.dumps({"folder": folder, "uids": uids})})
        self._gmail_commit()

    # ------------------------------------------------------------ run status
    def _error_text(self, exc):
        """A translated, user-facing text for an engine error (in the owner's language)."""
        env = self.with_context(lang=self.user_id.lang or self.env.lang).env
        server_text = self._redact(exc.server_text) if exc.server_text else ""
        return error_text(env, exc.kind, server_text)

    def _set_error(self, exc):
        """Record an engine error and the next attempt; tell the owner when the mailbox
        stops fetching (a refused login waits for new credentials)."""
        self.ensure_one()
        stops = exc.kind in engine_errors.WAITS_FOR_USER
        vals = self._gmail_failure_vals(exc.kind, self._error_text(exc))
        if stops:  # due again when its credentials change (see write())
            vals["sync_next_date"] = fields.Datetime.now() + WAIT_FOR_USER
        if stops or exc.kind not in TEMPORARY_KINDS:
            vals["state"] = "error"
        self._gmail_update(vals)
        if stops:
            self._notify_owner_error()

    def _set_connected(self, vals=None):
        """The mailbox works (again): clear its error and close the owner's activity."""
        self.ensure_one()
        mailbox = self.sudo()
        mailbox._gmail_update(
            {"state": "connected", "last_error": False, "last_error_kind": False, **(vals or {})}
        )
        mailbox.activity_unlink([WARNING_ACTIVITY], user_id=mailbox.user_id.id)

    def _set_storage_failed(self):
        """Storing failed (the filestore, the database), not the mail: say so, neutrally;
        the batch was not stored and comes again next time (after a backoff)."""
        self.ensure_one()
        text = error_text(self.with_context(lang=self.user_id.lang).env, STORAGE)
        self._gmail_update(self._gmail_failure_vals(STORAGE, text))

    def _gmail_failure_vals(self, kind, text):
        """A failed run of ``kind`` (an engine kind, or ``storage``): its text, one more
        failure in a row, and the next attempt after its backoff (storage: as network)."""
        failures = self.sync_failures + 1
        now = fields.Datetime.now()
        backoff_kind = engine_errors.NETWORK if kind == STORAGE else kind
        return {
            "last_error": text,
            "last_error_kind": kind,
            "last_error_date": now,
            "sync_failures": failures,
            "sync_crashes": 0,
            "sync_inflight": False,
            "sync_next_date": now
            + timedelta(seconds=next_delay(failures, backoff_kind, rng=random.random)),
        }

    def _notify_owner_error(self):
        """Schedule the owner's activity, once: not again while an earlier one is open."""
        mailbox = self.sudo()
        if mailbox.activity_ids.filtered(
            lambda activity: (
                activity.user_id == mailbox.user_id
                and activity.activity_type_id == self.env.ref(WARNING_ACTIVITY)
            )
        ):
            return
        env = mailbox.with_context(lang=mailbox.user_id.lang or self.env.lang).env
        mailbox.with_context(mail_activity_quick_update=True).activity_schedule(
            WARNING_ACTIVITY,
            user_id=mailbox.user_id.id,
            summary=env._("Your mailbox stopped syncing"),
            note=plaintext2html(
                env._(
                    "Fetching %(email)s failed: %(error)s\nEnter the new password (or app "
                    "password) on your mailbox: syncing resumes where it stopped.",
                    email=mailbox.email,
                    error=mailbox.last_error,
                )
            ),
        )
