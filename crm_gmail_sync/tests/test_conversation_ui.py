"""Conversations in the real web client: headless Chromium runs the tours of
``static/tests/tours/conversation_tour.js`` as the owner and as a colleague.

The owner (shared mailbox, "Share my emails" on the deal) has a conversation of two emails
with the deal's main contact: an HTML email with an inline image, and a reply with a PDF.
A third user's private mailbox holds another conversation with the same customer.
"""

import datetime as dt
import struct
import zlib
from email.message import EmailMessage

from odoo.tests import tagged

from .common import TourCase

SHARED = "Tour: contract and logo"
PRIVATE = "Tour: private pricing"


def png(width=48, height=24):
    """A valid PNG of one colour."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\x20\x40\x90" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def email(sender, to, subject, html, message_id, day, reply_to=None, related=(), attachments=()):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg["Date"] = dt.datetime(2024, 5, day, 10, 30, tzinfo=dt.timezone.utc).strftime(
        "%a, %d %b %Y %H:%M:%S +0000"
    )
    if reply_to:
        msg["In-Reply-To"] = reply_to
        msg["References"] = reply_to
    msg.set_content("see the HTML part")
    msg.add_alternative(html, subtype="html")
    for cid, name, ctype, content in related:
        maintype, subtype = ctype.split("/")
        msg.get_payload()[1].add_related(
            content, maintype=maintype, subtype=subtype, cid=f"<{cid}>", filename=name
        )
    for name, ctype, content in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


@tagged("post_install", "-at_install")
class TestConversationUi(TourCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for user in (cls.user_owner, cls.user_colleague):
            user.password = user.login
        cls.mailbox_owner.with_user(cls.user_owner).visibility = "shared"
        first = email(
            "Chris Customer <chris@acme.test>",
            "olivia@ourco.test",
            SHARED,
            '<p>Here is our logo: <img src="cid:logo@acme.test" alt="logo"></p>',
            "<tour-1@acme.test>",
            2,
            related=[("logo@acme.test", "logo.png", "image/png", png())],
        )
        second = email(
            "olivia@ourco.test",
            "Chris Customer <chris@acme.test>",
            f"Re: {SHARED}",
            "<p>Thanks, the signed contract is attached.</p>",
            "<tour-2@ourco.test>",
            3,
            reply_to="<tour-1@acme.test>",
            attachments=[("Contract 2026 (signed).pdf", "application/pdf", b"%PDF-1.4\n%tour\n")],
        )
        cls.shared = cls.store(cls.mailbox_owner, [first, second])
        cls.deal.with_user(cls.user_owner).gmail_share_emails = True
        admin_box = cls.env["crm.gmail.mailbox"].create(
            {
                "user_id": cls.user_admin.id,
                "email": "adam@ourco.test",
                "provider": "imap",
                "host": "127.0.0.1",
                "password": "s3cret-admin",
                "visibility": "private",
            }
        )
        cls.private = cls.store(
            admin_box,
            [
                email(
                    "chris@acme.test",
                    "adam@ourco.test",
                    PRIVATE,
                    "<p>our floor price</p>",
                    "<p@acme>",
                    4,
                )
            ],
        )

    def test_owner_opens_a_conversation_sees_the_image_downloads_and_follows_the_deal(self):
        conversation = self.shared.conversation_id
        self.assertEqual(len(conversation), 1)
        self.assertEqual(conversation.with_user(self.user_owner).message_count, 2)
        self.start_tour("/odoo", "crm_gmail_sync_conversation_owner", login=self.user_owner.login)

    def test_colleague_sees_the_shared_conversation_not_the_private_one(self):
        Conversation = self.env["crm.gmail.conversation"]
        self.assertIn(
            self.shared.conversation_id, Conversation.with_user(self.user_colleague).search([])
        )
        self.assertNotIn(
            self.private.conversation_id, Conversation.with_user(self.user_colleague).search([])
        )
        self.assertIn(
            self.private.conversation_id, Conversation.with_user(self.user_admin).search([])
        )  # control
        self.start_tour(
            "/odoo", "crm_gmail_sync_conversation_colleague", login=self.user_colleague.login
        )
