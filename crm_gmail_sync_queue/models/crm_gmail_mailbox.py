"""Mailbox syncs as OCA ``queue_job`` jobs: one job per due mailbox.

How it works
------------
With this addon installed (it installs itself once ``crm_gmail_sync`` and ``queue_job`` both
are), the scheduled fetch no longer syncs mailboxes itself: each run enqueues one job per due
mailbox, most overdue first, on the channel ``root.crm_gmail_sync`` with the identity key
``crm_gmail_sync.mailbox.<id>`` (a mailbox whose job is still waiting gets no second one).
queue_job's runner spreads the jobs over the workers of every Odoo server that runs it; the
channel's capacity (``[queue_job] channels = root:8,root.crm_gmail_sync:8``) is the number
of mailboxes synced at once. A job claims its mailbox exactly as a cron worker does (the
session lock, see ``crm_gmail_scheduler.py``), so cron workers, jobs and "Sync now" never
sync one mailbox twice at once; a job cut by its time budget enqueues its follow-up.
"""

import logging

from odoo import api, models

_logger = logging.getLogger(__name__)

CHANNEL = "root.crm_gmail_sync"
ENQUEUE_LIMIT = 1000  # due mailboxes enqueued per run of the scheduled action (then again)


def identity_key(mailbox_id):
    return f"crm_gmail_sync.mailbox.{mailbox_id}"


class CrmGmailMailbox(models.Model):
    _inherit = "crm.gmail.mailbox"

    # ------------------------------------------------------------ cron
    @api.model
    def _cron_fetch(self):
        """Enqueue one job per due mailbox (none for a mailbox whose job still waits)."""
        mailboxes = self.sudo().search(
            self._gmail_due_domain(), order=self._gmail_due_order(), limit=ENQUEUE_LIMIT
        )
        waiting = set(
            self.env["queue.job"]
            .sudo()
            .search(
                [
                    ("identity_key", "in", [identity_key(mid) for mid in mailboxes.ids]),
                    ("state", "in", ["wait_dependencies", "pending", "enqueued"]),
                ]
            )
            .mapped("identity_key")
        )
        for mailbox in mailboxes:
            if identity_key(mailbox.id) not in waiting:
                mailbox._gmail_enqueue()
        if len(mailboxes) == ENQUEUE_LIMIT:
            self._gmail_trigger()  # more are due: the next run enqueues them
        return len(mailboxes)

    def _gmail_enqueue(self):
        self.ensure_one()
        return self.with_delay(
            channel=CHANNEL,
            identity_key=identity_key(self.id),
            description=self.env._("Sync mailbox %(id)s", id=self.id),
        )._gmail_job_sync()

    # ------------------------------------------------------------ job
    def _gmail_job_sync(self):
        """Sync this mailbox if it is due and nobody syncs it; the job's result says what
        was done (job results are shown to queue_job's managers: no address, no mail)."""
        self.ensure_one()
        mailbox = self.sudo()
        if not mailbox.exists() or not mailbox._gmail_claim_this():
            return "not due or already syncing"
        deadline = mailbox._gmail_clock() + mailbox._gmail_budget()
        mailbox._gmail_sync_claimed(deadline)
        if mailbox.search_count([("id", "=", mailbox.id), *mailbox._gmail_due_domain()]):
            mailbox._gmail_enqueue()  # cut by its time budget: it goes on in a new job
            return "synced in part"
        return "synced"
