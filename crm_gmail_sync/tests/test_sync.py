"""End to end: the loopback Dovecot of the pure suite, the real engine, real Odoo."""

import itertools
import secrets

from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import MAILBOX_LOGGER, DovecotCommon, GmailSyncCommon, make_raw

_numbers = itertools.count(1)


@tagged("post_install", "-at_install")
class TestSyncDovecot(DovecotCommon):
    def setUp(self):
        super().setUp()
        # Server-side mail is not rolled back with the test: fresh users for every test.
        self.logins = {}
        for mailbox in (self.mailbox_owner, self.mailbox_colleague):
            login = f"{mailbox.email.split('@')[0]}.{next(_numbers)}@ourco.test"
            password = secrets.token_urlsafe(12)
            self.server.add_user(login, password)
            self.logins[mailbox.email] = login
            mailbox.write(
                {
                    "host": self.server.host,
                    "port": self.server.imaps_port,
                    "security": "ssl",
                    "login": login,
                    "password": password,
                    "ca_file": self.server.ca_file,
                }
            )

    def _append(self, address, raw, folder="INBOX"):
        return self.server.append(self.logins[address], folder, raw)

    def _messages(self, mailbox):
        return self.env["crm.gmail.message"].sudo().search([("mailbox_id", "=", mailbox.id)])

    @mute_logger(MAILBOX_LOGGER)
    def test_test_connection(self):
        action = self.mailbox_owner.with_user(self.user_owner).action_test_connection()
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
        self.assertEqual(self.mailbox_owner.state, "connected")
        self.mailbox_owner.password = "wrong"
        self.assertEqual(self.mailbox_owner.state, "draft")
        action = self.mailbox_owner.with_user(self.user_owner).action_test_connection()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertEqual(self.mailbox_owner.state, "error")
        self.assertIn("refused the login", self.mailbox_owner.last_error)
        self.assertNotIn("wrong", self.mailbox_owner.last_error)

    def test_sync_customer_mail_only_and_idempotent(self):
        owner = "olivia@ourco.test"
        self._append(
            owner,
            make_raw(
                "Chris <chris@acme.test>",
                owner,
                subject="customer",
                html='<p onclick="steal()">Hi<script>alert(1)</script>'
                '<a href="javascript:alert(2)">x</a><b>kept</b></p>',
                attachments=[("a.txt", b"attached", "text/plain")],
            ),
        )
        self._append(owner, make_raw("news@spam.test", owner, subject="newsletter"))
        self._append(owner, make_raw("carl@ourco.test", owner, subject="colleague"))
        self._append(owner, make_raw(owner, "erin@lead.test", subject="sent by me"), "Sent")
        self.fetch_due()
        messages = self._messages(self.mailbox_owner)
        self.assertEqual(sorted(messages.mapped("subject")), ["customer", "sent by me"])
        customer = messages.filtered(lambda m: m.subject == "customer")
        for unsafe in ("<script", "onclick", "javascript:"):
            self.assertNotIn(unsafe, customer.body_html)
        self.assertIn("<b>kept</b>", customer.body_html)
        self.assertEqual(customer.direction, "received")
        self.assertEqual(customer.email_from, '"Chris" <chris@acme.test>')
        self.assertEqual(customer.attachment_ids.mapped("name"), ["a.txt"])
        self.assertEqual(customer.attachment_ids.raw, b"attached")
        self.assertEqual(messages.filtered(lambda m: m.subject == "sent by me").direction, "sent")
        box = self.mailbox_owner
        self.assertEqual(box.state, "connected")
        self.assertTrue(box.last_sync_date)
        self.assertEqual((box.count_stored, box.count_not_customer), (2, 2))
        self.assertTrue(box.sync_state)
        # linked where the addresses say
        self.assertIn(customer, self.contact.with_user(self.user_owner).gmail_message_ids)
        # a second run stores nothing new
        self.fetch_due()
        self.assertEqual(self._messages(box), messages)
        # nor does a lost cursor: everything comes back as duplicates
        box.sync_state = False
        self.fetch_due()
        self.assertEqual(self._messages(box), messages)
        self.assertEqual(box.count_duplicate, 2)
        # new mail after that is picked up
        self._append(owner, make_raw("chris@acme.test", owner, subject="later"))
        box.action_sync_now()
        self.assertEqual(len(self._messages(box)), 3)

    def test_same_email_two_users(self):
        raw = make_raw("chris@acme.test", "olivia@ourco.test, carl@ourco.test", subject="both")
        self._append("olivia@ourco.test", raw)
        self._append("carl@ourco.test", raw)
        self.fetch_due()
        mine = self._messages(self.mailbox_owner)
        theirs = self._messages(self.mailbox_colleague)
        self.assertEqual((len(mine), len(theirs)), (1, 1))
        self.assertEqual(mine.dedupe_key, theirs.dedupe_key)
        self.assertNotEqual(mine, theirs)
        # each sees their own copy only (owner's mailbox is private, nothing shared)
        Message = self.env["crm.gmail.message"]
        self.assertEqual(
            Message.with_user(self.user_owner).search([("subject", "=", "both")]), mine
        )
        self.assertEqual(
            Message.with_user(self.user_colleague).search([("subject", "=", "both")]), theirs
        )

    @mute_logger(MAILBOX_LOGGER)
    def test_auth_failure_isolated_and_recovers(self):
        owner, colleague = "olivia@ourco.test", "carl@ourco.test"
        self._append(owner, make_raw("chris@acme.test", owner, subject="before"))
        self.fetch_due()
        self.assertEqual(len(self._messages(self.mailbox_owner)), 1)
        # the password changes on the server (a changed Google password)
        new_password = secrets.token_urlsafe(12)
        self.server.set_password(self.logins[owner], new_password)
        self._append(owner, make_raw("chris@acme.test", owner, subject="while broken"))
        self._append(colleague, make_raw("chris@acme.test", colleague, subject="colleague ok"))
        self.fetch_due()
        box = self.mailbox_owner
        self.assertEqual(box.state, "error")
        self.assertEqual(box.last_error_kind, "auth")
        self.assertIn("refused the login", box.last_error)
        self.assertTrue(box.last_error_date)
        activity = self.env["mail.activity"].search(
            [("res_model", "=", box._name), ("res_id", "=", box.id)]
        )
        self.assertEqual(activity.user_id, self.user_owner)
        self.assertEqual(len(self._messages(box)), 1)
        self.assertEqual(self._messages(self.mailbox_colleague).mapped("subject"), ["colleague ok"])
        self.assertEqual(self.mailbox_colleague.state, "connected")
        # the broken mailbox is not retried with the old password
        self.assertNotIn(box, self.env["crm.gmail.mailbox"].search(box._fetchable_domain()))
        # a second failing run does not pile up activities
        box._sync_one()
        self.assertEqual(
            len(
                self.env["mail.activity"].search(
                    [("res_model", "=", box._name), ("res_id", "=", box.id)]
                )
            ),
            1,
        )
        # the owner enters the new password: fetching resumes where it stopped
        box.with_user(self.user_owner).password = new_password
        self.assertEqual(box.state, "draft")
        self.fetch_due()
        self.assertEqual(box.state, "connected")
        self.assertFalse(box.last_error)
        self.assertEqual(sorted(self._messages(box).mapped("subject")), ["before", "while broken"])
        self.assertEqual(box.count_duplicate, 0)


@tagged("post_install", "-at_install")
class TestPreview(GmailSyncCommon):
    def test_preview_is_the_sanitised_body(self):
        """What the sanitiser removes (style, script, comments, a form's hidden input)
        never shows in the preview; what the reader sees does."""
        html = (
            "<html><head><style>.x{color:red}</style><title>T</title></head><body>"
            "<script>var stolen = 'SCRIPT-TEXT';</script><!-- COMMENT-TEXT -->"
            "<p>Dear Olivia,</p><p>the <b>offer</b> is fine.</p>"
            "<form><input type='hidden' value='FORM-VALUE'></form></body></html>"
        )
        message = self.store(
            self.mailbox_owner,
            [make_raw("chris@acme.test", "olivia@ourco.test", body="Plain PART", html=html)],
        )
        for hidden in ("color:red", "SCRIPT-TEXT", "COMMENT-TEXT", "FORM-VALUE", "stolen"):
            self.assertNotIn(hidden, message.preview)
        self.assertNotIn("SCRIPT-TEXT", message.body_html)
        self.assertEqual(message.preview, "Dear Olivia, the offer is fine.")
        plain = self.store(
            self.mailbox_owner,
            [make_raw("chris@acme.test", "olivia@ourco.test", body="Only <text> & more")],
        )
        self.assertEqual(plain.preview, "Only <text> & more")
