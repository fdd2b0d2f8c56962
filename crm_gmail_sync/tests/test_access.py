import itertools

from odoo.exceptions import AccessError
from odoo.tests import tagged

from .common import GmailSyncCommon, make_raw


@tagged("post_install", "-at_install")
class TestAccessMatrix(GmailSyncCommon):
    """Owner / colleague / Settings admin × private / shared × share on / off ×
    owner active / deactivated × mailbox switched, through every read path."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        raw = make_raw(
            "Chris Customer <chris@acme.test>",
            "olivia@ourco.test",
            subject="Private pricing",
            attachments=[("offer.pdf", b"%PDF-1.4 secret offer", "application/pdf")],
        )
        cls.message = cls.store(cls.mailbox_owner, [raw])
        cls.attachment = cls.env["ir.attachment"].search(
            [("res_model", "=", "crm.gmail.message"), ("res_id", "=", cls.message.id)]
        )
        cls.mailbox_new = cls.env["crm.gmail.mailbox"].create(
            {
                "user_id": cls.user_owner.id,
                "email": "olivia.new@ourco.test",
                "provider": "imap",
                "host": "127.0.0.1",
                "active": False,
            }
        )

    def _set_case(self, visibility, share, owner_active, switched):
        self.mailbox_owner.visibility = visibility
        self.contact.with_user(self.user_owner).gmail_share_emails = share
        if switched:
            self.mailbox_owner.active = False
            self.mailbox_new.active = True
        else:
            self.mailbox_new.active = False
            self.mailbox_owner.active = True
        self.user_owner.active = owner_active
        self.env.invalidate_all()

    def _reads(self, user):
        """Which read paths reveal the message (and its attachment) to ``user``."""
        Message = self.env["crm.gmail.message"].with_user(user)
        message = self.message.with_user(user)
        seen = {}
        seen["search"] = bool(Message.search([("id", "=", self.message.id)]))
        seen["search_subject"] = bool(Message.search([("subject", "ilike", "Private pricing")]))
        try:
            message.invalidate_recordset()
            seen["read"] = message.read(["subject", "body_html"])[0]["subject"] == "Private pricing"
        except AccessError:
            seen["read"] = False
        groups = Message.read_group([("id", "=", self.message.id)], ["owner_id"], ["owner_id"])
        seen["read_group"] = sum(g["owner_id_count"] for g in groups) > 0
        exported = Message.search([]).export_data(["subject"])["datas"]
        seen["export"] = ["Private pricing"] in exported
        Attachment = self.env["ir.attachment"].with_user(user)
        seen["attachment_search"] = bool(
            Attachment.search(
                [("res_model", "=", "crm.gmail.message"), ("res_id", "=", self.message.id)]
            )
        )
        try:
            self.attachment.with_user(user).invalidate_recordset()
            seen["attachment_read"] = bool(
                self.attachment.with_user(user).read(["datas"])[0]["datas"]
            )
        except AccessError:
            seen["attachment_read"] = False
        seen["participants"] = bool(
            self.env["crm.gmail.message.address"]
            .with_user(user)
            .search([("message_id", "=", self.message.id)])
        )
        contact = self.contact.with_user(user)
        contact.invalidate_recordset()
        seen["contact_page"] = self.message.id in contact.gmail_message_ids.ids
        return seen

    def test_matrix(self):
        self.assertEqual(len(self.attachment), 1)
        users = {
            "owner": self.user_owner,
            "colleague": self.user_colleague,
            "noseat": self.user_noseat,
            "admin": self.user_admin,
        }
        for visibility, share, owner_active, switched in itertools.product(
            ("private", "shared"), (False, True), (True, False), (False, True)
        ):
            self._set_case(visibility, share, owner_active, switched)
            shown_at_all = owner_active and not switched
            expected = {
                "owner": shown_at_all,
                "colleague": shown_at_all and visibility == "shared" and share,
                "noseat": False,  # no Mail add-on seat: no synced mail at all
                "admin": shown_at_all and visibility == "shared" and share,
            }
            for role, user in users.items():
                with self.subTest(
                    role=role,
                    visibility=visibility,
                    share=share,
                    owner_active=owner_active,
                    switched=switched,
                ):
                    seen = self._reads(user)
                    self.assertEqual(
                        seen,
                        dict.fromkeys(seen, expected[role]),
                        f"{role} must {'' if expected[role] else 'not '}see the email",
                    )

    def test_admin_reads_all_setting(self):
        self.env["ir.config_parameter"].sudo().set_param("crm_gmail_sync.admin_reads_all", "True")
        self._set_case("private", False, True, False)
        seen = self._reads(self.user_admin)
        self.assertEqual(seen, dict.fromkeys(seen, True))
        self.assertEqual(self._reads(self.user_colleague), dict.fromkeys(seen, False))
        # deactivated owners' mail stays hidden even then
        self._set_case("private", False, False, False)
        seen = self._reads(self.user_admin)
        self.assertEqual(seen, dict.fromkeys(seen, False))

    def test_share_is_per_owner_and_record(self):
        self._set_case("shared", False, True, False)
        # sharing the contact by someone else (the colleague) shares nothing of the owner
        self.contact.with_user(self.user_colleague).gmail_share_emails = True
        self.assertFalse(self._reads(self.user_colleague)["search"])
        # sharing another record with other addresses shares nothing either
        self.lead.with_user(self.user_owner).gmail_share_emails = True
        self.assertFalse(self._reads(self.user_colleague)["search"])
        # sharing the deal whose main contact is the customer does
        self.deal.with_user(self.user_owner).gmail_share_emails = True
        self.assertTrue(self._reads(self.user_colleague)["search"])
        self.assertTrue(self.deal.with_user(self.user_owner).gmail_share_emails)
        self.assertFalse(self.deal.with_user(self.user_colleague).gmail_share_emails)

    def test_share_follows_current_address(self):
        self._set_case("shared", True, True, False)
        self.assertTrue(self._reads(self.user_colleague)["search"])
        self.contact.email = "chris.new@acme.test"
        self.assertFalse(self._reads(self.user_colleague)["search"])
        self.contact.email = " CHRIS@ACME.TEST "
        self.assertTrue(self._reads(self.user_colleague)["search"])

    def test_bcc_owner_only(self):
        self._set_case("shared", True, True, False)
        raw = make_raw(
            "olivia@ourco.test", "chris@acme.test", subject="With bcc", bcc="secret@hidden.test"
        )
        message = self.store(self.mailbox_owner, [raw])
        self.assertEqual(message.direction, "sent")
        self.assertEqual(message.with_user(self.user_owner).email_bcc, "secret@hidden.test")
        as_colleague = message.with_user(self.user_colleague)
        self.assertTrue(as_colleague.is_accessible)
        self.assertFalse(as_colleague.email_bcc)
        Address = self.env["crm.gmail.message.address"]
        self.assertFalse(
            Address.with_user(self.user_colleague).search([("email", "=", "secret@hidden.test")])
        )
        self.assertTrue(
            Address.with_user(self.user_owner).search([("email", "=", "secret@hidden.test")])
        )
