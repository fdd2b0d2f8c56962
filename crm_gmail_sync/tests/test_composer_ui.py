"""Sending in the real web client: headless Chromium composes from a deal and replies to
all from a conversation (``static/tests/tours/composer_tour.js``); the emails then go out
through a real aiosmtpd over TLS, each exactly once, with the recipients the page showed."""

import email
import email.policy
import shutil
import tempfile
from pathlib import Path

from odoo.tests import tagged

from .common import TourCase, load_pure_test_module, make_raw

smtpserver = load_pure_test_module("smtpserver.py")
dovecot = load_pure_test_module("dovecot.py")


@tagged("post_install", "-at_install")
class TestComposerUi(TourCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user_owner.password = cls.user_owner.login
        # the certificate of the pure suite's fixture, for the SMTP server's TLS
        tls = Path(tempfile.mkdtemp(prefix="crm-gmail-sync-tls-"))
        cls.addClassCleanup(shutil.rmtree, tls, True)
        dovecot._make_certificates(tls)
        cls.smtp = smtpserver.SmtpServer(
            security="ssl",
            users={"olivia@ourco.test": "s3cret-owner"},
            cert_file=str(tls / "server.pem"),
            key_file=str(tls / "server.key"),
        ).start()
        cls.addClassCleanup(cls.smtp.stop)
        cls.mailbox_owner.write(
            {
                "provider": "gmail",  # Gmail files sent mail itself: no IMAP needed here
                "login": "olivia@ourco.test",
                "smtp_host": "127.0.0.1",
                "smtp_port": cls.smtp.port,
                "smtp_security": "ssl",
                "ca_file": str(tls / "ca.pem"),
            }
        )

    def setUp(self):
        super().setUp()
        self.smtp.received.clear()

    def send_queued(self):
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE crm_gmail_message SET send_after = send_after - interval '1 minute'"
            " WHERE send_state = 'queued'"
        )
        self.env.invalidate_all()
        return self.env["crm.gmail.message"]._cron_send()

    def test_compose_from_a_deal(self):
        self.start_tour(
            f"/odoo/crm.lead/{self.deal.id}",
            "crm_gmail_sync_compose_from_deal",
            login=self.user_owner.login,
        )
        self.assertEqual(self.send_queued(), 1)
        (received,) = self.smtp.received
        parsed = email.message_from_bytes(received.data, policy=email.policy.default)
        self.assertEqual(str(parsed["Subject"]), "Tour: our offer")
        self.assertEqual(received.recipients, ["buyer@acme.test"])

    def test_reply_all_from_a_conversation(self):
        parent = self.store(
            self.mailbox_owner,
            [
                make_raw(
                    "Chris Customer <chris@acme.test>",
                    "olivia@ourco.test, lea@acme.test",
                    subject="Tour: delivery",
                    cc="Dana Other <dana@other.test>",
                    message_id="<tour-delivery@acme.test>",
                )
            ],
        )
        self.start_tour(
            f"/odoo/crm.gmail.conversation/{parent.conversation_id.id}",
            "crm_gmail_sync_reply_all",
            login=self.user_owner.login,
        )
        self.assertEqual(self.send_queued(), 1)
        (received,) = self.smtp.received
        self.assertEqual(
            sorted(received.recipients), ["chris@acme.test", "dana@other.test", "lea@acme.test"]
        )
        parsed = email.message_from_bytes(received.data, policy=email.policy.default)
        self.assertEqual(parsed["In-Reply-To"], "<tour-delivery@acme.test>")
        reply = self.env["crm.gmail.message"].search([("subject", "=", "Re: Tour: delivery")])
        self.assertEqual(reply.conversation_id, parent.conversation_id)
        self.assertEqual(reply.send_state, "sent")
