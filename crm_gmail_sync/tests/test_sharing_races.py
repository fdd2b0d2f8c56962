"""The stored sharing flag under two concurrent transactions (REPEATABLE READ): an unshare
or an address change racing the sync, "Share again" racing an address change. Both sides
decide about the same address, so one of them fails to commit and is done again from a
fresh snapshot (as Odoo retries a request and the sync a batch): no leak, no stale flag.

Each test commits its own data on real cursors (not the test transaction) and removes it
afterwards. A leak shows as a colleague reading an email that a from-scratch computation
does not share, i.e. ``_gmail_refresh_shared()`` finds a stale flag after both commits.
"""

import uuid

from odoo import SUPERUSER_ID, api
from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger
from psycopg2.extensions import TransactionRollbackError

from .common import SEAT, GmailSyncCommon, make_raw

CTX = {"tracking_disable": True, "crm_gmail_sync_no_commit": True, "mail_notrack": True}


@tagged("post_install", "-at_install")
class TestSharingRaces(TransactionCase):
    def env_of(self, cr):
        return api.Environment(cr, SUPERUSER_ID, dict(CTX))

    def setUp(self):
        super().setUp()
        self.tag = tag = uuid.uuid4().hex[:8]
        with self.registry.cursor() as cr:
            env = self.env_of(cr)
            env["ir.config_parameter"].set_param("crm_gmail_sync.seats", 500)
            env["ir.config_parameter"].set_param("crm_gmail_sync.admin_reads_all", False)
            sales = "base.group_user,sales_team.group_sale_salesman_all_leads"
            owner = mail_new_test_user(
                env,
                login=f"rv_owner_{tag}",
                name="Olivia",
                email=f"olivia.{tag}@ourco.test",
                groups=f"{sales},{SEAT}",
            )
            colleague = mail_new_test_user(
                env,
                login=f"rv_coll_{tag}",
                name="Carl",
                email=f"carl.{tag}@ourco.test",
                groups=f"{sales},{SEAT}",
            )
            contact = env["res.partner"].create(
                {"name": "Chris", "email": f"chris.{tag}@acme.test"}
            )
            mailbox = env["crm.gmail.mailbox"].create(
                {
                    "user_id": owner.id,
                    "email": f"olivia.{tag}@ourco.test",
                    "provider": "imap",
                    "host": "127.0.0.1",
                    "password": "x",
                    "visibility": "shared",
                }
            )
            self.ids = {
                "owner": owner.id,
                "colleague": colleague.id,
                "contact": contact.id,
                "mailbox": mailbox.id,
            }
        self.addCleanup(self.cleanup)

    def cleanup(self):
        with self.registry.cursor() as cr:
            env = self.env_of(cr)
            env["crm.gmail.mailbox"].with_context(active_test=False).browse(
                self.ids["mailbox"]
            ).unlink()
            env["crm.gmail.share"].search([("user_id", "=", self.ids["owner"])]).unlink()
            env["res.partner"].browse(self.ids["contact"]).unlink()
            env["res.users"].browse([self.ids["owner"], self.ids["colleague"]]).write(
                {"active": False}
            )
            # the conversations of the removed emails, so that other tests count only theirs
            cr.execute(
                """DELETE FROM crm_gmail_conversation c WHERE NOT EXISTS
                       (SELECT 1 FROM crm_gmail_message m WHERE m.conversation_id = c.id)"""
            )

    def store(self, env, sender, subject):
        mailbox = env["crm.gmail.mailbox"].browse(self.ids["mailbox"])
        return GmailSyncCommon.store(
            mailbox,
            [
                make_raw(
                    sender,
                    f"olivia.{self.tag}@ourco.test",
                    subject=subject,
                    message_id=f"<{subject.replace(' ', '-')}-{self.tag}@x.test>",
                )
            ],
        )

    def share_contact(self, env, on=True):
        contact = env["res.partner"].browse(self.ids["contact"])
        contact.with_user(self.ids["owner"]).gmail_share_emails = on

    def check(self):
        """(subjects the colleague reads, number of stale flags) in a fresh transaction."""
        with self.registry.cursor() as cr:
            env = self.env_of(cr)
            Message = env["crm.gmail.message"]
            seen = (
                Message.with_user(self.ids["colleague"])
                .search([("owner_id", "=", self.ids["owner"])])
                .mapped("subject")
            )
            # what a from-scratch computation says (rolled back: nothing is repaired)
            stale = Message._gmail_refresh_shared()
            cr.rollback()
            return set(seen), stale

    def second(self, cr, work, done=False):
        """Run ``work(env)`` on ``cr`` and commit; when the other transaction's decision
        about the same address makes it fail, do it again in a fresh transaction (as Odoo
        and the sync do); ``done``: it ran on ``cr`` already. Returns whether it had to be
        done again."""
        try:
            with mute_logger("odoo.sql_db"):
                if not done:
                    work(self.env_of(cr))
                cr.commit()
            return False
        except TransactionRollbackError:
            cr.rollback()
        with self.registry.cursor() as fresh:
            work(self.env_of(fresh))
        return True

    # ------------------------------------------------------------------ tests
    def test_unshare_while_the_sync_stores_mail(self):
        """The owner unshares the contact while the sync stores a new email of it."""
        with self.registry.cursor() as cr:
            self.share_contact(self.env_of(cr))
        sync = self.registry.cursor()
        ui = self.registry.cursor()
        try:
            ui_env = self.env_of(ui)
            sync.execute("SELECT 1")  # the sync's batch has begun (its snapshot)
            self.share_contact(ui_env, on=False)
            ui.commit()  # precommit: flags of the contact's address recomputed
            retried = self.second(
                sync,
                lambda env: self.store(env, f"chris.{self.tag}@acme.test", "New after unshare"),
            )
        finally:
            sync.close()
            ui.close()
        self.assertTrue(retried, "the two decisions about one address did not conflict")
        seen, stale = self.check()
        # per the SPEC nothing is shared any more
        self.assertEqual(seen, set(), "the colleague reads an email that is not shared")
        self.assertEqual(stale, 0, "stale is_shared flags after both commits")

    def test_address_change_while_the_sync_stores_mail(self):
        """A colleague changes the shared contact's address while the sync stores a new
        email of the old address."""
        with self.registry.cursor() as cr:
            self.share_contact(self.env_of(cr))
        sync = self.registry.cursor()
        ui = self.registry.cursor()
        try:
            ui_env = self.env_of(ui)
            sync.execute("SELECT 1")
            contact = ui_env["res.partner"].with_user(self.ids["colleague"])
            contact.browse(self.ids["contact"]).email = f"chris.new.{self.tag}@acme.test"
            ui.commit()
            retried = self.second(
                sync, lambda env: self.store(env, f"chris.{self.tag}@acme.test", "Old address mail")
            )
        finally:
            sync.close()
            ui.close()
        self.assertTrue(retried, "the two decisions about one address did not conflict")
        seen, stale = self.check()
        self.assertEqual(seen, set(), "mail of an address the contact no longer has")
        self.assertEqual(stale, 0, "stale is_shared flags after both commits")

    def test_share_again_while_the_address_changes(self):
        """No sync at all: "Share again" (which writes no contact row) races a colleague's
        change of the contact's address (write skew between two ORM transactions)."""
        with self.registry.cursor() as cr:
            env = self.env_of(cr)
            self.store(env, f"chris.{self.tag}@acme.test", "Chris mail")
            # shared when the contact had another address: the share is outdated
            contact = env["res.partner"].browse(self.ids["contact"])
            contact.email = f"old.{self.tag}@acme.test"
            self.share_contact(env)
            contact.email = f"chris.{self.tag}@acme.test"
        seen, stale = self.check()
        self.assertEqual((seen, stale), (set(), 0), "precondition: not shared")
        owner_cr = self.registry.cursor()
        other_cr = self.registry.cursor()
        try:
            owner_env, other_env = self.env_of(owner_cr), self.env_of(other_cr)
            owner_cr.execute("SELECT 1")
            other_env["res.partner"].with_user(self.ids["colleague"]).browse(
                self.ids["contact"]
            ).email = f"chris.moved.{self.tag}@acme.test"
            other_env.flush_all()  # written, not yet committed

            def share_again(env):  # covers chris.<tag>@ in the owner's first snapshot
                contact = env["res.partner"].with_user(self.ids["owner"])
                contact.browse(self.ids["contact"]).action_gmail_share_again()

            share_again(owner_env)
            other_cr.commit()
            retried = self.second(owner_cr, share_again, done=True)
        finally:
            owner_cr.close()
            other_cr.close()
        self.assertTrue(retried, "the two decisions about one address did not conflict")
        seen, stale = self.check()
        # the contact's current address is chris.moved.<tag>@: the old mail is not shared
        self.assertEqual(seen, set(), "the colleague reads an email that is not shared")
        self.assertEqual(stale, 0, "stale is_shared flags after both commits")
