"""The queue_job path against the real OCA ``queue_job`` addon and a real Dovecot: one
stored job per due mailbox on ``root.crm_gmail_sync``, never a second one while the first
waits, and each job syncs its mailbox once (or passes when a worker holds it)."""

import secrets

from odoo.addons.crm_gmail_sync.models.crm_gmail_scheduler import LOCK_NAMESPACE
from odoo.addons.crm_gmail_sync.tests.common import DovecotCommon, make_raw
from odoo.addons.queue_job.job import Job
from odoo.tests import tagged

from ..models.crm_gmail_mailbox import CHANNEL, identity_key

CUSTOMER = "chris@acme.test"


@tagged("post_install", "-at_install")
class TestQueueJob(DovecotCommon):
    def setUp(self):
        super().setUp()
        self.tag = secrets.token_hex(4)
        self.boxes = self.mailbox_owner | self.mailbox_colleague
        self.logins = {box: self.connect_new_server_user(box, "queue") for box in self.boxes}
        for box in self.boxes:
            raw = make_raw(CUSTOMER, box.email, subject="q1", message_id=f"<q1.{self.tag}@x>")
            self.server.append(self.logins[box], "INBOX", raw)
        self.Mailbox = self.env["crm.gmail.mailbox"].sudo()
        self.Job = self.env["queue.job"].sudo()

    def _jobs(self):
        return self.Job.search([("identity_key", "in", [identity_key(b.id) for b in self.boxes])])

    def _subjects(self, box):
        return (
            self.env["crm.gmail.message"]
            .sudo()
            .search([("mailbox_id", "=", box.id)])
            .mapped("subject")
        )

    def test_the_cron_enqueues_one_job_per_due_mailbox(self):
        self.boxes._gmail_make_due()
        self.Mailbox._cron_fetch()
        jobs = self._jobs()
        self.assertEqual(len(jobs), len(self.boxes))
        self.assertEqual(set(jobs.mapped("channel")), {CHANNEL})
        self.assertEqual(set(jobs.mapped("state")), {"pending"})
        self.assertEqual(set(jobs.mapped("method_name")), {"_gmail_job_sync"})
        self.assertEqual(
            sorted(jobs.mapped("identity_key")), sorted(identity_key(b.id) for b in self.boxes)
        )
        # the cron enqueues, it does not sync
        self.assertEqual([self._subjects(box) for box in self.boxes], [[], []])
        # a second run while the jobs wait adds none
        self.Mailbox._cron_fetch()
        self.assertEqual(self._jobs(), jobs)
        # each job syncs its mailbox, once; then nothing is due and nothing is enqueued
        for job in jobs:
            loaded = Job.load(self.env, job.uuid)
            # it commits after each batch, as the cron does: queue_job must give it its own
            # transaction (Job.perform does, in a cursor that cannot see this test's data)
            self.assertTrue(loaded.job_config.allow_commit)
            self.assertEqual(loaded.func(*loaded.args, **loaded.kwargs), "synced")
        for box in self.boxes:
            self.assertEqual(self._subjects(box), ["q1"])
            self.assertEqual(box.state, "connected")
            self.assertFalse(box.filtered_domain(box._gmail_due_domain()))
        jobs.write({"state": "done"})
        self.Mailbox._cron_fetch()
        self.assertEqual(self._jobs(), jobs)

    def test_a_job_passes_a_mailbox_another_worker_holds(self):
        box = self.mailbox_owner
        box._gmail_make_due()
        other = self.registry.cursor()  # a cron worker syncing this mailbox
        self.addCleanup(other.close)
        other.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, box.id])
        self.assertEqual(box._gmail_job_sync(), "not due or already syncing")
        self.assertEqual(self._subjects(box), [])
        other.rollback()
        self.assertEqual(box._gmail_job_sync(), "synced")
        self.assertEqual(self._subjects(box), ["q1"])
        self.assertEqual(box._gmail_job_sync(), "not due or already syncing")  # done already
        self.assertEqual(self._subjects(box), ["q1"])
