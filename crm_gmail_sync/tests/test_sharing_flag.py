"""The stored sharing flag (``crm.gmail.message.is_shared``) follows every change it is
computed from: after each one, a colleague reads exactly what a from-scratch computation
allows, and the flags equal a full recomputation (crm_gmail_message_sharing.py)."""

from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import SQL

from .common import GmailSyncCommon, make_raw


@tagged("post_install", "-at_install")
class TestSharingFlag(GmailSyncCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.mailbox_owner.visibility = "shared"
        Partner = cls.env["res.partner"]
        cls.buyer = Partner.create({"name": "Bea Buyer", "email": "bea@buyer.test"})
        cls.deal2 = cls.env["crm.lead"].create(
            {"name": "Deal Bea", "type": "opportunity", "partner_id": cls.buyer.id}
        )
        raws = [
            make_raw("Chris <chris@acme.test>", "olivia@ourco.test", subject="To contact"),
            make_raw("erin@lead.test", "olivia@ourco.test", subject="To lead"),
            make_raw("bea@buyer.test", "olivia@ourco.test", subject="To deal contact"),
            make_raw(
                "olivia@ourco.test", "x@unrelated.test", subject="Bcc only", bcc="erin@lead.test"
            ),
        ]
        cls.msgs = {m.subject: m for m in cls.store(cls.mailbox_owner, raws)}

    def seen(self):
        """The subjects the colleague reads, after checking the flags are exact."""
        Message = self.env["crm.gmail.message"]
        Message._flush_visibility_inputs()
        self.assertEqual(Message._gmail_refresh_shared(), 0, "a flag was out of date")
        colleague = Message.with_user(self.user_colleague)
        found = colleague.search([("owner_id", "=", self.user_owner.id)])
        return set(found.mapped("subject"))

    def share(self, record, on=True):
        record.with_user(self.user_owner).gmail_share_emails = on

    def test_share_and_unshare(self):
        self.assertEqual(self.seen(), set())
        self.share(self.contact)
        self.assertEqual(self.seen(), {"To contact"})
        self.share(self.lead)
        self.assertEqual(self.seen(), {"To contact", "To lead"}, "never through a Bcc")
        self.share(self.contact, False)
        self.assertEqual(self.seen(), {"To lead"})
        # the control: the owner reads all four all along
        owner = self.env["crm.gmail.message"].with_user(self.user_owner)
        self.assertEqual(len(owner.search([("owner_id", "=", self.user_owner.id)])), 4)

    def test_address_changes(self):
        self.share(self.lead)
        self.share(self.deal2)
        self.assertEqual(self.seen(), {"To lead", "To deal contact"})
        self.lead.email_from = "erin.new@lead.test"
        self.assertEqual(self.seen(), {"To deal contact"})
        self.lead.email_from = "ERIN@lead.test"
        self.assertEqual(self.seen(), {"To lead", "To deal contact"})
        # the deal's main contact: its address, then another contact, then a plain lead
        self.buyer.email = "bea.other@buyer.test"
        self.assertEqual(self.seen(), {"To lead"})
        self.buyer.email = "bea@buyer.test"
        self.assertEqual(self.seen(), {"To lead", "To deal contact"})
        self.deal2.partner_id = self.contact_other
        self.assertNotIn("To deal contact", self.seen())
        self.deal2.partner_id = self.buyer
        self.share(self.deal2)  # re-shared: the deal's current addresses
        self.assertIn("To deal contact", self.seen())
        # a deal shows its main contact's mail, a lead only its own address's
        self.share(self.deal)
        self.assertIn("To contact", self.seen())
        self.deal.type = "lead"
        self.assertNotIn("To contact", self.seen())
        self.deal.type = "opportunity"
        self.assertIn("To contact", self.seen())

    def test_deleted_records_and_merge(self):
        self.share(self.lead)
        self.share(self.contact)
        self.assertEqual(self.seen(), {"To lead", "To contact"})
        self.lead.unlink()  # its share goes with it (the database's cascade)
        self.assertEqual(self.seen(), {"To contact"})
        # a merge moves the shares by SQL and deletes the merged contact
        twin = self.env["res.partner"].create({"name": "Chris Twin", "email": "chris@acme.test"})
        wizard = self.env["base.partner.merge.automatic.wizard"].create({})
        wizard._merge([self.contact.id, twin.id], twin)
        self.assertEqual(self.seen(), {"To contact"})
        twin.unlink()
        self.assertEqual(self.seen(), set())

    def test_handover_shares_nothing_of_the_old_owner(self):
        self.share(self.contact)
        self.assertEqual(self.seen(), {"To contact"})
        self.mailbox_owner.active = False
        self.mailbox_owner.user_id = self.user_admin
        self.mailbox_owner.active = True
        self.mailbox_owner.with_user(self.user_admin).visibility = "shared"
        self.contact.with_user(self.user_admin).gmail_share_emails = True
        self.assertEqual(self.seen(), set())

    def test_new_mail_of_a_shared_record(self):
        self.share(self.contact)
        self.store(
            self.mailbox_owner,
            [make_raw("olivia@ourco.test", "chris@acme.test", subject="Later reply")],
        )
        self.assertEqual(self.seen(), {"To contact", "Later reply"})

    def test_the_normalised_key_is_not_written_directly(self):
        self.share(self.contact)
        self.assertEqual(self.seen(), {"To contact"})
        with self.assertRaisesText(UserError, "email address instead"):
            self.contact.with_user(self.user_colleague).write({"gmail_email_key": "zz@else.test"})
        self.contact.sudo().write({"gmail_email_key": "zz@else.test"})  # server code: marked
        self.assertEqual(self.seen(), set())

    def test_flags_written_before_the_commit(self):
        self.share(self.contact)
        self.env.cr.precommit.run()  # what cr.commit() runs first
        rows = self.env.execute_query(
            SQL(
                "SELECT subject FROM crm_gmail_message WHERE is_shared AND owner_id = %s",
                self.user_owner.id,
            )
        )
        self.assertEqual(rows, [("To contact",)])

    def test_daily_refresh_repairs_changes_outside_the_orm(self):
        self.share(self.contact)
        self.assertEqual(self.seen(), {"To contact"})
        self.env.flush_all()
        self.env.cr.execute("DELETE FROM crm_gmail_share")  # behind the ORM's back
        self.env.invalidate_all()
        self.env["crm.gmail.message"]._cron_refresh_shared()
        self.assertEqual(self.seen(), set())
