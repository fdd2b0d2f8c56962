"""Sending from Odoo end to end: the composer, the outbox's states, a real aiosmtpd over TLS
and the loopback Dovecot (the Sent copy, the next sync), reply-all and threading, failures,
and never twice."""

import email
import email.policy
import secrets

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, tagged

from .common import DovecotCommon, load_pure_test_module, make_raw

smtpserver = load_pure_test_module("smtpserver.py")


@tagged("post_install", "-at_install")
class TestOutbox(DovecotCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tls = cls.server.base / "tls"

    def setUp(self):
        super().setUp()
        self.login = self.connect_new_server_user(self.mailbox_owner, "olivia")
        self.smtp = smtpserver.SmtpServer(
            security="ssl",
            users={self.login: self.server.password(self.login)},
            cert_file=str(self.tls / "server.pem"),
            key_file=str(self.tls / "server.key"),
        ).start()
        self.addCleanup(self.smtp.stop)
        self.mailbox_owner.write(
            {"smtp_host": "127.0.0.1", "smtp_port": self.smtp.port, "smtp_security": "ssl"}
        )
        self.Message = self.env["crm.gmail.message"]

    # ------------------------------------------------------------ helpers
    def compose(self, user, **context):
        composer = Form(self.env["crm.gmail.composer"].with_user(user).with_context(**context))
        return composer

    # ------------------------------------------------------------ tests
    def test_compose_from_a_deal_send_and_sync_back_once(self):
        form = self.compose(
            self.user_owner, default_res_model="crm.lead", default_res_id=self.deal.id
        )
        self.assertEqual(form.email_to, "buyer@acme.test")
        form.email_cc = "Chris Customer <chris@acme.test>"
        form.email_bcc = "boss@ourco.test"
        form.subject = "Angebot für Größe XL"
        form.body = "<p>Hallo, anbei das Angebot.</p>"
        composer = form.save()
        action = composer.action_send()
        message = self.Message.search([("subject", "=", "Angebot für Größe XL")])
        self.assertEqual(len(message), 1)
        self.assertEqual(message.send_state, "queued")
        self.assertEqual(action["res_id"], message.conversation_id.id)
        # on the deal at once, and not sent during the undo time
        deal = self.deal.with_user(self.user_owner)
        self.assertIn(message.conversation_id, deal.gmail_conversation_ids)
        self.assertEqual(self.Message._cron_send(), 0)
        self.assertEqual(self.smtp.received, [])
        self.assertEqual(self.run_send(), 1)
        self.assertEqual(message.send_state, "sent")
        (received,) = self.smtp.received
        self.assertEqual(
            sorted(received.recipients), ["boss@ourco.test", "buyer@acme.test", "chris@acme.test"]
        )
        parsed = email.message_from_bytes(received.data, policy=email.policy.default)
        self.assertEqual(str(parsed["Subject"]), "Angebot für Größe XL")
        self.assertNotIn(b"boss@ourco.test", received.data)
        self.assertEqual(parsed["Message-ID"], message.message_id_header)
        # the Sent copy: APPENDed once (not Gmail); the next sync recognises it
        self.assertEqual(len(self.sent_uids(message.message_id_header)), 1)
        self.fetch_due()
        self.assertEqual(
            self.Message.sudo().search_count(
                [("message_id_header", "=", message.message_id_header)]
            ),
            1,
        )
        self.assertEqual(len(self.sent_uids(message.message_id_header)), 1)
        # a second run sends nothing again
        self.assertEqual(self.run_send(), 0)
        self.assertEqual(len(self.smtp.received), 1)

    def test_reply_all_keeps_the_conversation(self):
        parent_raw = make_raw(
            "Chris Customer <chris@acme.test>",
            f"olivia@ourco.test, {self.login}, lea@acme.test",
            subject="AW: Re: Lieferung",
            cc="Dana Other <dana@other.test>",
            message_id="<parent-1@acme.test>",
        )
        parent = self.store(self.mailbox_owner, [parent_raw])
        parent.sudo().references = "<root-1@acme.test>"
        form = self.compose(
            self.user_owner, default_parent_id=parent.id, default_reply_mode="reply_all"
        )
        self.assertEqual(form.subject, "Re: Lieferung")
        self.assertIn("chris@acme.test", form.email_to)
        self.assertIn("lea@acme.test", form.email_to)
        self.assertNotIn("olivia@ourco.test", f"{form.email_to} {form.email_cc}")
        self.assertNotIn(self.login, f"{form.email_to} {form.email_cc}")
        self.assertIn("dana@other.test", form.email_cc)
        form.save().action_send()
        reply = self.Message.search([("subject", "=", "Re: Lieferung")])
        self.assertEqual(reply.conversation_id, parent.conversation_id)
        self.run_send()
        self.assertEqual(reply.send_state, "sent", reply.failure_reason)
        parsed = email.message_from_bytes(self.smtp.received[0].data, policy=email.policy.default)
        self.assertEqual(parsed["In-Reply-To"], "<parent-1@acme.test>")
        self.assertEqual(
            parsed["References"].split(), ["<root-1@acme.test>", "<parent-1@acme.test>"]
        )
        self.fetch_due()
        self.assertEqual(
            self.Message.sudo().search_count([("conversation_id", "=", parent.conversation_id.id)]),
            2,
        )

    def test_reply_to_a_colleagues_shared_email_goes_from_my_mailbox(self):
        self.mailbox_owner.visibility = "shared"
        parent = self.store(
            self.mailbox_owner,
            [make_raw("Chris <chris@acme.test>", "olivia@ourco.test", subject="Frage")],
        )
        self.contact.with_user(self.user_owner).gmail_share_emails = True
        # the colleague has no mailbox connected: a clear error, nothing sent from Olivia's
        self.mailbox_colleague.active = False
        form = self.compose(
            self.user_colleague, default_parent_id=parent.id, default_reply_mode="reply"
        )
        with self.assertRaisesText(UserError, "Connect your mailbox first"):
            form.save().action_send()
        # and a private email cannot be replied to by someone who cannot read it
        self.contact.with_user(self.user_owner).gmail_share_emails = False
        with self.assertRaises(AccessError):
            self.compose(
                self.user_colleague, default_parent_id=parent.id, default_reply_mode="reply"
            )

    def test_no_seat_no_compose(self):
        with self.assertRaises(AccessError):
            self.env["crm.gmail.composer"].with_user(self.user_noseat).create({"subject": "x"})

    def test_bad_addresses_and_limits_in_the_users_words(self):
        form = self.compose(self.user_owner)
        form.email_to = "chris@acme.test, not-an-address"
        form.subject = "x"
        with self.assertRaisesText(UserError, "not an email address: not-an-address"):
            form.save().action_send()
        form = self.compose(self.user_owner)
        form.subject = "x"
        form.email_to = ", ".join(f"c{i}@acme.test" for i in range(101))
        with self.assertRaisesText(UserError, "at most 100"):
            form.save().action_send()
        self.assertFalse(self.Message.search([("send_state", "!=", False)]))

    def test_undo(self):
        form = self.compose(self.user_owner)
        form.email_to = "chris@acme.test"
        form.subject = "Oops"
        form.save().action_send()
        message = self.Message.search([("subject", "=", "Oops")])
        action = message.with_user(self.user_owner).action_gmail_undo()
        self.assertFalse(message.exists())
        self.assertEqual(action["res_model"], "crm.gmail.composer")
        self.assertEqual(action["context"]["default_email_to"], "chris@acme.test")
        self.assertEqual(self.run_send(), 0)
        self.assertEqual(self.smtp.received, [])

    def test_failures(self):
        message = self.queue("chris@acme.test", "Refused")
        self.smtp.behaviour.refuse = {"chris@acme.test": "550 5.1.1 No such user"}
        self.run_send()
        self.assertEqual((message.send_state, message.failure_type), ("failed", "recipient"))
        self.assertIn("No such user", message.failure_reason)
        # temporary: queued again, later
        self.smtp.behaviour.refuse = {}
        self.smtp.behaviour.data_reply = "451 4.3.0 try again later"
        message.with_user(self.user_owner).action_gmail_send_now()
        self.run_send()
        self.assertEqual(message.send_state, "queued")
        self.assertGreater(message.send_after, fields.Datetime.now())
        # a wrong password waits for the user, its secret never shown
        self.smtp.behaviour.data_reply = ""
        self.smtp.users[self.login] = "changed-" + secrets.token_hex(4)
        self.run_send(later=3600)
        self.assertEqual((message.send_state, message.failure_type), ("failed", "auth"))
        self.assertEqual(self.smtp.received, [])

    def test_connection_lost_after_data_is_never_sent_twice(self):
        # as Gmail: the server files what it accepts in Sent itself
        self.mailbox_owner.provider = "gmail"
        imap = self.imap

        def file_in_sent(received):
            with imap() as conn:
                conn.append("Sent", received.data)

        self.smtp.on_received = file_in_sent
        self.smtp.behaviour.drop_after_data = True
        message = self.queue("chris@acme.test", "Lost answer")
        self.run_send()
        self.assertEqual((message.send_state, message.failure_type), ("sending", "unknown"))
        self.smtp.behaviour.drop_after_data = False
        self.run_send(later=120)
        self.assertEqual(message.send_state, "sent")
        self.assertEqual(len(self.smtp.received), 1)
        self.assertEqual(len(self.sent_uids(message.message_id_header)), 1, "no APPEND on Gmail")

    def test_connection_lost_elsewhere_waits_for_the_user(self):
        self.smtp.behaviour.drop_after_data = True
        message = self.queue("chris@acme.test", "Lost answer")
        self.run_send()
        self.assertEqual((message.send_state, message.failure_type), ("failed", "unknown"))
        self.assertIn("Sent folder", message.failure_reason)
        self.assertEqual(len(self.smtp.received), 1)

    def test_the_rest_of_a_lost_session_is_queued_again_not_unknown(self):
        first = self.queue("chris@acme.test", "First")
        second = self.queue("chris@acme.test", "Second")
        self.smtp.behaviour.drop_after_data = True
        self.run_send()
        self.assertEqual((first.send_state, first.failure_type), ("failed", "unknown"))
        self.assertEqual((second.send_state, second.failure_type), ("queued", False))
        self.smtp.behaviour.drop_after_data = False
        self.run_send(later=120)
        self.assertEqual(second.send_state, "sent")
        self.assertEqual([r.data.count(b"Subject: First") for r in self.smtp.received], [1, 0])

    # ------------------------------------------------------------ helpers
    def queue(self, to, subject):
        form = self.compose(self.user_owner)
        form.email_to = to
        form.subject = subject
        form.save().action_send()
        return self.Message.search([("subject", "=", subject)])

    def run_send(self, later=30):
        """The scheduled sending as it runs ``later`` seconds from now."""
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE crm_gmail_message SET send_after = send_after - %s * interval '1 second', "
            "write_date = write_date - %s * interval '1 second' WHERE send_state IS NOT NULL",
            [later, later],
        )
        self.env.invalidate_all()
        count = self.Message._cron_send()
        self.env.invalidate_all()
        return count

    def imap(self):
        from ..engine.transport_imap import ImapTransport

        return ImapTransport(self.mailbox_owner._engine_account())

    def sent_uids(self, message_id):
        with self.imap() as imap:
            return imap.find_message_id("Sent", message_id)
