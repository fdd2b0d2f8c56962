"""Conversations in Odoo: identity as emails are stored, per-user views, upgrade, cards.

Identity: a thread's emails stored in every arrival order (one at a time and in mixed
batches) end in one conversation; Gmail's thread id joins; the same email in two
mailboxes is one conversation and one entry. The per-user view: a colleague sees of a
conversation only the emails they may read (count, dates, order, search, grouping,
participants), with the owner's view of the same conversation as the control.
"""

import importlib.util
import itertools
import re
from pathlib import Path

from odoo.tests import tagged

from ..engine import Batch, Outcome, SyncState, normalize_set, parse_message
from .common import GmailSyncCommon, make_raw


def run_migration(cr, version, installed):
    """Run the addon's post-migrate script of ``version`` as an upgrade from ``installed``."""
    path = Path(__file__).parents[1] / "migrations" / version / "post-migrate.py"
    spec = importlib.util.spec_from_file_location(f"crm_gmail_sync_migrate_{version}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.migrate(cr, installed)


class _Rollback(Exception):
    pass


def threaded(raw, in_reply_to=None, references=None):
    head = b""
    if in_reply_to:
        head += f"In-Reply-To: {in_reply_to}\r\n".encode()
    if references:
        head += f"References: {' '.join(references)}\r\n".encode()
    return head + raw


@tagged("post_install", "-at_install")
class TestConversations(GmailSyncCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import datetime as dt

        day = dt.timedelta(days=1)
        start = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.timezone.utc)
        # A: root; B replies naming the root; C names only its parent B; D's References
        # omit the root
        cls.thread = {
            "A": make_raw(
                "buyer@acme.test", "carl@ourco.test", "Offer", message_id="<a@acme>", date=start
            ),
            "B": threaded(
                make_raw(
                    "carl@ourco.test",
                    "buyer@acme.test",
                    "Re: Offer",
                    message_id="<b@ourco>",
                    date=start + day,
                ),
                "<a@acme>",
                ["<a@acme>"],
            ),
            "C": threaded(
                make_raw(
                    "buyer@acme.test",
                    "carl@ourco.test",
                    "Re: Offer",
                    message_id="<c@acme>",
                    date=start + 2 * day,
                ),
                "<b@ourco>",
            ),
            "D": threaded(
                make_raw(
                    "carl@ourco.test",
                    "buyer@acme.test",
                    "Re: Offer",
                    message_id="<d@ourco>",
                    date=start + 3 * day,
                ),
                "<c@acme>",
                ["<b@ourco>", "<c@acme>"],
            ),
        }

    # ------------------------------------------------------------ helpers
    def store_parsed(self, mailbox, raws, thrids=None, folder="INBOX"):
        account = mailbox._engine_account()
        owner = normalize_set(account.owner_addresses)
        messages = []
        for uid, raw in enumerate(raws, start=1):
            msg = parse_message(
                raw,
                folder=folder,
                uid=str(uid),
                owner=owner,
                gmail_thrid=(thrids or {}).get(uid - 1, ""),
            )
            msg.participants = sorted(msg.header.participants(owner))
            messages.append(msg)
        outcomes = [Outcome(folder, m.header.uid, "stored", m.dedupe_key) for m in messages]
        return mailbox.sudo()._store_batch(Batch(folder, messages, outcomes, SyncState()), owner)

    def partition(self, mailbox):
        messages = self.env["crm.gmail.message"].sudo().search([("mailbox_id", "=", mailbox.id)])
        parts = {}
        for message in messages:
            parts.setdefault(message.conversation_id.id, set()).add(message.message_id_header)
        self.assertNotIn(False, parts, "every stored email has its conversation")
        return sorted(sorted(p) for p in parts.values())

    def share_deal(self, user):
        self.deal.with_user(user).gmail_share_emails = True

    # ------------------------------------------------------------ identity
    def test_every_arrival_order_gives_one_conversation(self):
        whole = [sorted(f"<{k.lower()}@{'acme' if k in 'AC' else 'ourco'}>" for k in "ABCD")]
        for order in itertools.permutations("ABCD"):
            try:
                with self.env.cr.savepoint():
                    for key in order:
                        self.store_parsed(self.mailbox_colleague, [self.thread[key]])
                    self.assertEqual(self.partition(self.mailbox_colleague), whole, order)
                    raise _Rollback
            except _Rollback:
                self.env.invalidate_all()
        # in batches: the reply naming only its parent with its grandchild, then the rest
        self.store_parsed(self.mailbox_colleague, [self.thread["C"], self.thread["A"]])
        self.assertEqual(len(self.partition(self.mailbox_colleague)), 2)  # nothing joins them yet
        self.store_parsed(self.mailbox_colleague, [self.thread["D"], self.thread["B"]])
        self.assertEqual(self.partition(self.mailbox_colleague), whole)
        stored = self.env["crm.gmail.message"].sudo().search([])
        self.assertEqual(len(stored.conversation_id), 1)
        self.assertEqual(
            self.env["crm.gmail.conversation"].sudo().search_count([]), 1, "merged ones go"
        )

    def test_a_subject_alone_never_joins(self):
        one = make_raw("buyer@acme.test", "carl@ourco.test", "Offer")
        two = make_raw("buyer@acme.test", "carl@ourco.test", "Offer")
        self.store_parsed(self.mailbox_colleague, [one, two])
        self.assertEqual(len(self.partition(self.mailbox_colleague)), 2)

    def test_gmail_thread_id_joins_what_headers_do_not(self):
        one = make_raw("buyer@acme.test", "carl@ourco.test", "Offer")
        two = make_raw("buyer@acme.test", "carl@ourco.test", "Another subject")
        other = make_raw("buyer@acme.test", "carl@ourco.test", "Offer")
        self.store_parsed(self.mailbox_colleague, [one, other], thrids={0: "777", 1: "778"})
        self.store_parsed(self.mailbox_colleague, [two], thrids={0: "777"})
        parts = self.partition(self.mailbox_colleague)
        self.assertEqual(sorted(len(p) for p in parts), [1, 2])

    def test_same_email_in_two_mailboxes_is_one_entry(self):
        self.mailbox_owner.with_user(self.user_owner).visibility = "shared"
        raw = make_raw("buyer@acme.test", "carl@ourco.test, olivia@ourco.test", "Joint offer")
        mine = self.store_parsed(self.mailbox_owner, [raw])
        theirs = self.store_parsed(self.mailbox_colleague, [raw])
        self.assertEqual(mine.conversation_id, theirs.conversation_id)
        self.share_deal(self.user_colleague)
        conversation = self.env["crm.gmail.conversation"].with_user(self.user_owner).search([])
        self.assertEqual(len(conversation), 1)
        self.assertEqual(conversation.message_count, 1, "two copies, one email")
        self.assertEqual(
            set(conversation.owner_ids.ids), {self.user_owner.id, self.user_colleague.id}
        )
        self.assertEqual(len(re.findall(r"o_gmail_card\b", conversation.cards_html)), 1)
        self.assertIn("In the mailboxes of", conversation.cards_html)
        self.assertIn("Carl Colleague", conversation.cards_html)
        # the deal's Emails page: one conversation too
        self.assertEqual(self.deal.with_user(self.user_owner).gmail_conversation_ids, conversation)

    def test_storing_a_batch_takes_the_same_queries_whatever_its_size(self):
        def raws(count, tag):
            return [
                make_raw("buyer@acme.test", "carl@ourco.test", f"{tag} {i}") for i in range(count)
            ]

        Key = self.env["crm.gmail.conversation.key"]
        counts = []
        for size, tag in ((3, "small"), (40, "big")):
            messages = self.store_parsed(self.mailbox_colleague, raws(size, tag))
            self.env.cr.execute(
                "UPDATE crm_gmail_message SET conversation_id = NULL WHERE id = ANY(%s)",
                [messages.ids],
            )
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            Key._gmail_assign(messages)
            counts.append(self.env.cr.sql_log_count - before)
        self.assertEqual(counts[0], counts[1], counts)
        self.assertLessEqual(counts[0], 10, counts)

    def test_upgrade_gives_existing_emails_their_conversations(self):
        for key in "ABCD":
            self.store_parsed(self.mailbox_colleague, [self.thread[key]])
        self.store_parsed(
            self.mailbox_owner,
            [self.thread["A"], make_raw("chris@acme.test", "olivia@ourco.test", "Alone")],
        )
        expected = (self.partition(self.mailbox_colleague), self.partition(self.mailbox_owner))
        self.env.flush_all()
        self.env.cr.execute("UPDATE crm_gmail_message SET conversation_id = NULL")
        self.env.cr.execute("DELETE FROM crm_gmail_conversation_key")
        self.env.cr.execute("DELETE FROM crm_gmail_conversation")
        self.env.invalidate_all()
        run_migration(self.env.cr, "18.0.1.3.0", "18.0.1.2.0")  # what the upgrade runs
        self.env.invalidate_all()
        self.assertEqual(
            (self.partition(self.mailbox_colleague), self.partition(self.mailbox_owner)), expected
        )
        copies = (
            self.env["crm.gmail.message"].sudo().search([("message_id_header", "=", "<a@acme>")])
        )
        self.assertEqual(
            len(copies.conversation_id), 1, "the copies in both mailboxes, one conversation"
        )

    # ------------------------------------------------------------ what each user sees
    def _mixed_conversation(self):
        """A conversation of the colleague's shared email on the deal and a newer reply
        in the owner's private mailbox, naming another customer too."""
        import datetime as dt

        shared = make_raw(
            "buyer@acme.test",
            "carl@ourco.test, olivia@ourco.test",
            "Shared subject",
            message_id="<shared@acme>",
            date=dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc),
        )
        private = threaded(
            make_raw(
                "buyer@acme.test",
                "olivia@ourco.test",
                "Secret follow-up",
                cc="dana@other.test",
                message_id="<private@acme>",
                body="the secret price is 4711",
                date=dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc),
            ),
            "<shared@acme>",
            ["<shared@acme>"],
        )
        self.store_parsed(self.mailbox_colleague, [shared])
        self.store_parsed(self.mailbox_owner, [private])
        self.share_deal(self.user_colleague)
        later = make_raw(
            "chris@acme.test",
            "carl@ourco.test",
            "Unrelated later mail",
            date=dt.datetime(2024, 5, 15, tzinfo=dt.timezone.utc),
        )
        self.contact.with_user(self.user_colleague).gmail_share_emails = True
        self.store_parsed(self.mailbox_colleague, [later])
        return (
            self.env["crm.gmail.message"]
            .sudo()
            .search([("message_id_header", "=", "<shared@acme>")])
            .conversation_id
        )

    def test_emails_from_before_the_upgrade_list_and_get_their_sharing_flag(self):
        self.mailbox_owner.visibility = "shared"
        self.contact.with_user(self.user_owner).gmail_share_emails = True
        message = self.store(
            self.mailbox_owner, [make_raw("chris@acme.test", "olivia@ourco.test", "Old one")]
        )
        self.env.flush_all()
        # columns added by later versions are NULL in rows stored before them
        self.env.cr.execute("UPDATE crm_gmail_message SET has_attachments = NULL, is_shared = NULL")
        self.env.invalidate_all()
        conversation = message.conversation_id.with_user(self.user_owner)
        self.assertEqual(
            conversation.read(["subject", "has_attachments"])[0],
            {"id": conversation.id, "subject": "Old one", "has_attachments": False},
        )
        colleague = self.env["crm.gmail.message"].with_user(self.user_colleague)
        self.assertFalse(colleague.search([("id", "=", message.id)]))
        run_migration(self.env.cr, "18.0.1.4.0", "18.0.1.3.0")  # what the upgrade runs
        self.env.invalidate_all()
        self.assertEqual(colleague.search([("id", "=", message.id)]), message)

    def test_a_colleague_sees_only_what_they_may_read_of_a_conversation(self):
        conversation = self._mixed_conversation()
        Conversation = self.env["crm.gmail.conversation"]
        mine = conversation.with_user(self.user_owner)
        theirs = conversation.with_user(self.user_colleague)
        # the owner of the private reply: both emails (the control)
        self.assertEqual(mine.message_count, 2)
        self.assertEqual(mine.subject, "Shared subject")
        self.assertIn("Dana", mine.participants or "dana")
        self.assertIn("4711", mine.cards_html)
        self.assertEqual(len(mine.message_ids), 2)
        # the colleague: only the shared one, and nothing hints at the other
        self.assertEqual(theirs.message_count, 1)
        self.assertEqual(str(theirs.last_date), "2024-05-01 00:00:00")
        self.assertNotIn("dana", (theirs.participants or "").lower())
        self.assertNotIn("4711", theirs.cards_html)
        self.assertNotIn("Secret", theirs.cards_html)
        self.assertEqual(len(theirs.message_ids), 1)
        self.assertEqual(theirs.owner_ids, self.user_colleague)
        self.assertEqual(
            theirs.partner_ids,
            self.env["res.partner"],
            "Dana's address is only in the private email",
        )
        # order: the private reply (June) does not lift the conversation above the
        # colleague's May 15 email; for the owner it does
        order_theirs = Conversation.with_user(self.user_colleague).search([]).mapped("subject")
        self.assertEqual(order_theirs, ["Unrelated later mail", "Shared subject"])
        order_mine = Conversation.with_user(self.user_owner).search([]).mapped("subject")
        self.assertEqual(order_mine[0], "Shared subject")
        # search by what only the private email says
        for field, value in (
            ("subject", "Secret"),
            ("body", "4711"),
            ("participants", "dana@other"),
        ):
            self.assertFalse(
                Conversation.with_user(self.user_colleague).search([(field, "ilike", value)]), field
            )
            self.assertEqual(
                Conversation.with_user(self.user_owner).search([(field, "ilike", value)]),
                conversation,
                field,
            )
        # grouping by owner: the private mailbox's owner is no group for the colleague
        groups = Conversation.with_user(self.user_colleague).read_group(
            [], ["message_count:sum"], ["owner_ids"]
        )
        self.assertEqual(
            {g["owner_ids"][0] for g in groups if g["owner_ids"]}, {self.user_colleague.id}
        )
        groups = Conversation.with_user(self.user_owner).read_group(
            [], ["message_count:sum"], ["owner_ids"]
        )
        self.assertEqual(
            {g["owner_ids"][0] for g in groups if g["owner_ids"]},
            {self.user_owner.id, self.user_colleague.id},
        )
        # waiting for our reply: the last email the user reads is from the customer
        self.assertIn(
            conversation,
            Conversation.with_user(self.user_colleague).search(
                [("last_direction", "=", "received")]
            ),
        )
        self.assertEqual(theirs.shared_by, False)
        self.assertIn("Shared:", theirs.share_note, "the colleague's own shared copy")
        self.assertIn("Private mailbox", mine.share_note)
        self.assertIn("Carl Colleague", mine.shared_by)

    def test_no_seat_no_conversations_and_private_mailbox_invisible(self):
        self._mixed_conversation()
        Conversation = self.env["crm.gmail.conversation"]
        self.assertEqual(Conversation.with_user(self.user_noseat).search_count([]), 0)
        self.assertEqual(Conversation.with_user(self.user_owner).search_count([]), 2)  # control
        private_only = make_raw("dana@other.test", "olivia@ourco.test", "Only mine")
        self.env["res.partner"].search([("email", "=", "dana@other.test")])
        conv = self.store_parsed(self.mailbox_owner, [private_only]).conversation_id
        self.assertFalse(Conversation.with_user(self.user_colleague).search([("id", "=", conv.id)]))
        self.assertEqual(
            Conversation.with_user(self.user_owner).search([("id", "=", conv.id)]), conv
        )
        self.assertEqual(
            conv.with_user(self.user_colleague).display_name, "Conversation (no access)"
        )
        self.assertEqual(conv.with_user(self.user_owner).display_name, "Only mine")

    # ------------------------------------------------------------ cards and the Emails page
    def test_cards_show_inline_images_attachments_and_fold_quotes(self):
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["From"] = "Chris Customer <chris@acme.test>"
        msg["To"] = "olivia@ourco.test"
        msg["Subject"] = "Logo and contract"
        msg["Message-ID"] = "<logo@acme>"
        msg.set_content("plain")
        msg.add_alternative(
            '<p>See our logo</p><div class="gmail_signature">-- <br>'
            '<img src="cid:logo@acme.test"></div>'
            '<div class="gmail_quote"><blockquote class="gmail_quote">old text</blockquote></div>',
            subtype="html",
        )
        html_part = msg.get_payload()[1]
        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
        html_part.add_related(
            png, maintype="image", subtype="png", cid="<logo@acme.test>", filename="logo.png"
        )
        msg.add_attachment(
            b"%PDF-1.4 contract",
            maintype="application",
            subtype="pdf",
            filename="Contract 2026 signed.pdf",
        )
        message = self.store_parsed(self.mailbox_owner, [msg.as_bytes()])
        files = {a.name: a for a in message.attachment_ids}
        self.assertTrue(message.has_attachments)
        html = message.conversation_id.with_user(self.user_owner).cards_html
        self.assertNotIn("cid:", html)
        self.assertIn(f'src="/web/image/{files["logo.png"].id}"', html)
        self.assertIn(f"/web/content/{files['Contract 2026 signed.pdf'].id}?download=true", html)
        self.assertIn("Contract 2026 signed.pdf", html)
        self.assertNotIn(
            f"/web/content/{files['logo.png'].id}?download",
            html,
            "inline image is not listed again",
        )
        self.assertRegex(
            html, r"<details[^>]*o_gmail_quote[^>]*>.*old text", "quoted history folded"
        )
        self.assertLess(
            html.index("/web/image/"), html.index("<details"), "a signature is not folded"
        )
        self.assertIn(f"/odoo/res.partner/{self.contact.id}", html, "sender linked to the contact")
        self.assertIn(f"/odoo/crm.lead/{self.deal.id}", html, "link to the deal of the contact")
        self.assertNotRegex(html, r"\d{1,2}:\d{2}:\d{2}", "the date without seconds")

    def test_emails_page_states(self):
        Lead = self.env["crm.lead"]
        empty = Lead.create({"name": "No address", "type": "lead"})
        self.assertEqual(empty.with_user(self.user_owner).gmail_empty_state, "no_address")
        self.assertEqual(self.deal.with_user(self.user_noseat).gmail_empty_state, "no_seat")
        self.assertEqual(self.deal.with_user(self.user_owner).gmail_empty_state, "no_email")
        self.assertEqual(self.deal.with_user(self.user_admin).gmail_empty_state, "no_mailbox")
        self.store_parsed(
            self.mailbox_owner, [make_raw("buyer@acme.test", "olivia@ourco.test", "Hello deal")]
        )
        self.deal.invalidate_recordset()
        deal = self.deal.with_user(self.user_owner)
        self.assertFalse(deal.gmail_empty_state)
        self.assertEqual(deal.gmail_conversation_count, 1)
        self.assertEqual(deal.gmail_conversation_ids.subject, "Hello deal")
        action = deal.action_gmail_open_conversations()
        found = (
            self.env["crm.gmail.conversation"].with_user(self.user_owner).search(action["domain"])
        )
        self.assertEqual(found, deal.gmail_conversation_ids)
