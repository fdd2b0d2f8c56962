"""Adversarial privacy probes: "a private mailbox never leaks: not via UI, search, export,
RPC, attachments or logs".

The owner's mailbox is private. A colleague with a seat, a user without a seat and a
Settings admin (``admin_reads_all`` off) try every read path we could think of to learn
anything of its emails (subject, body, addresses, attachment content, counts) or of the
mailbox's secret. Each probe also runs as the owner where that shows the probe does reach
the email, so that a probe that finds nothing for the others is not vacuous.
"""

import hashlib
import json
import logging
from contextlib import nullcontext
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from ..engine import transport_imap
from .common import GmailSyncCommon, make_raw

SUBJECT = "Secret merger plan"
BODY = "TOPSECRET-BODY-7f3a"
ATTACHMENT = b"ATTACHMENT-SECRET-CONTENT-91c2"
CC = "insider@acme.test"
SECRET = "s3cret-owner"  # the owner's mailbox password (common.py)
TOKEN = "ya29.owner-oauth-token"


def _group_total(groups):
    """The number of records a ``read_group`` answer counts."""
    return sum(v for g in groups for k, v in g.items() if k.endswith("_count") and v)


class LeaksCommon(GmailSyncCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        raw = make_raw(
            "Chris Customer <chris@acme.test>",
            "olivia@ourco.test",
            cc=f"Ian Insider <{CC}>",
            subject=SUBJECT,
            body=BODY,
            attachments=[("merger.txt", ATTACHMENT, "text/plain")],
        )
        cls.message = cls.store(cls.mailbox_owner, [raw])
        cls.attachment = cls.env["ir.attachment"].search(
            [("res_model", "=", "crm.gmail.message"), ("res_id", "=", cls.message.id)]
        )
        cls.lead_insider = cls.env["crm.lead"].create(
            {"name": "Lead Insider", "type": "lead", "email_from": CC}
        )
        cls.mailbox_owner.oauth_token = TOKEN
        cls.others = {
            "colleague": cls.user_colleague,
            "noseat": cls.user_noseat,
            "admin": cls.user_admin,
        }

    def setUp(self):
        super().setUp()
        self.assertEqual(self.mailbox_owner.visibility, "private")
        self.assertEqual(len(self.attachment), 1)
        self.assertFalse(
            self.env["ir.config_parameter"].sudo().get_param("crm_gmail_sync.admin_reads_all")
        )

    def all_users(self):
        """``(role, user, may_see)``: the owner as the control, then the others."""
        yield "owner", self.user_owner, True
        for role, user in self.others.items():
            yield role, user, False


@tagged("post_install", "-at_install")
class TestLeaksOrm(LeaksCommon):
    # ------------------------------------------------------------ crm.gmail.message
    def test_name_search_display_name_web_search_read(self):
        for role, user, may_see in self.all_users():
            with self.subTest(role=role):
                Message = self.env["crm.gmail.message"].with_user(user)
                found = Message.name_search("merger")
                self.assertEqual(bool(found), may_see, found)
                records = Message.web_search_read(
                    [("subject", "ilike", "merger")], {"subject": {}, "body_html": {}}
                )
                self.assertEqual(bool(records["records"]), may_see)
                self.assertEqual(bool(records["length"]), may_see)
                message = self.message.with_user(user)
                message.invalidate_recordset()
                if may_see:
                    self.assertEqual(message.display_name, SUBJECT)
                    continue
                # a neutral name, also as superuser (how Odoo names referenced records)
                self.assertEqual(message.display_name, "Email (no access)")
                self.assertEqual(message.sudo().display_name, "Email (no access)")
                with self.assertRaises(AccessError):
                    message.web_read({"subject": {}, "display_name": {}})
                with self.assertRaises(AccessError):
                    message.read(["preview", "email_from", "size"])

    def test_check_access_api(self):
        """``check_access``/``has_access``/``_filtered_access`` evaluate the record rules
        in Python on ``self.sudo()``: other addons (mail's attachment checks,
        ``ir.attachment.check``, ``/web/content`` of a record) rely on them."""
        address = self.env["crm.gmail.message.address"].search(
            [("message_id", "=", self.message.id)]
        )
        for role, user, may_see in self.all_users():
            with self.subTest(role=role):
                # (ir.attachment has no record rules: its access is check(), below)
                for records in (self.message, address):
                    records = records.with_user(user)
                    records.invalidate_recordset()
                    self.assertEqual(records.has_access("read"), may_see, records)
                    self.assertEqual(bool(records._filtered_access("read")), may_see)
                    if may_see:
                        records.check_access("read")
                        continue
                    with self.assertRaises(AccessError):
                        records.check_access("read")
                with self.assertRaises(AccessError) if not may_see else nullcontext():
                    self.attachment.with_user(user).check("read")
                self.assertEqual(self.message.with_user(user).sudo().is_accessible, may_see)

    def test_search_count_and_oracles(self):
        domains = [
            [],
            [("subject", "ilike", "merger")],
            [("body_html", "ilike", BODY)],
            [("preview", "ilike", BODY)],
            [("email_cc", "ilike", CC)],
            [("email_from", "ilike", "chris@acme.test")],
            [("address_ids.email", "=", CC)],
            [("attachment_ids.name", "=", "merger.txt")],
            [("attachment_ids.index_content", "ilike", "ATTACHMENT-SECRET")],
            [("owner_id", "=", self.user_owner.id)],
            [("mailbox_id", "=", self.mailbox_owner.id)],
            [("mailbox_id.email", "=", "olivia@ourco.test")],
            [("visibility", "=", "private")],
            [("is_accessible", "=", False)],
            [("is_accessible", "!=", True)],
            [("id", "=", self.message.id)],
        ]
        for role, user, may_see in self.all_users():
            Message = self.env["crm.gmail.message"].with_user(user)
            for domain in domains:
                if may_see and "is_accessible" in str(domain):
                    continue  # the owner's email is accessible to the owner
                with self.subTest(role=role, domain=domain):
                    try:
                        count = Message.search_count(domain)
                        found = Message.search(domain, order="subject desc, size")
                    except AccessError:  # e.g. the mailbox's fields without mailbox access
                        self.assertFalse(may_see)
                        self.assertIn("mailbox_id.", str(domain))
                        continue
                    self.assertEqual(count, int(may_see))
                    self.assertEqual(bool(found), may_see)

    def test_read_group_and_aggregates(self):
        for role, user, may_see in self.all_users():
            with self.subTest(role=role):
                Message = self.env["crm.gmail.message"].with_user(user)
                for groupby in ("subject", "owner_id", "mailbox_id", "thread_key", "date:day"):
                    groups = Message.read_group([], ["size:sum"], [groupby])
                    self.assertEqual(_group_total(groups), int(may_see), groupby)
                    if not may_see:
                        self.assertNotIn(SUBJECT, str(groups))
                web = Message.web_read_group([], ["size:max"], ["subject"])
                self.assertEqual(web["length"], int(may_see))
                total = Message.read_group([], ["size:sum", "id:count"], [])
                self.assertEqual(bool(total[0]["size"]), may_see, total)

    def test_onchange_of_an_unreadable_email(self):
        """The form's onchange starts from the record's values: it must read them as the
        caller, not hand them out."""
        spec = {"subject": {}, "body_html": {}, "email_cc": {}, "address_ids": {}}
        for role, user, may_see in self.all_users():
            with self.subTest(role=role):
                message = self.message.with_user(user)
                message.invalidate_recordset()
                if may_see:
                    self.assertIn("value", message.onchange({"subject": "x"}, ["subject"], spec))
                    continue
                with self.assertRaises(AccessError):
                    message.onchange({"subject": "x"}, ["subject"], spec)

    def test_export(self):
        for role, user, may_see in self.all_users():
            with self.subTest(role=role):
                Message = self.env["crm.gmail.message"].with_user(user)
                rows = Message.search([]).export_data(
                    ["subject", "body_html", "address_ids/email", "attachment_ids/name"]
                )["datas"]
                self.assertEqual(SUBJECT in str(rows), may_see)
                Address = self.env["crm.gmail.message.address"].with_user(user)
                rows = Address.search([]).export_data(["email", "message_id/subject"])["datas"]
                self.assertEqual(CC in str(rows), may_see)

    # ------------------------------------------------------------ participants
    def test_participants_model(self):
        address = self.env["crm.gmail.message.address"].search(
            [("message_id", "=", self.message.id), ("email", "=", CC)]
        )
        self.assertEqual(len(address), 1)
        for role, user, may_see in self.all_users():
            with self.subTest(role=role):
                Address = self.env["crm.gmail.message.address"].with_user(user)
                self.assertEqual(bool(Address.search([("email", "=", CC)])), may_see)
                self.assertEqual(bool(Address.name_search("insider")), may_see)
                self.assertEqual(
                    bool(Address.search_count([("message_id.subject", "ilike", "merger")])),
                    may_see,
                )
                groups = Address.read_group([], ["email"], ["email"])
                self.assertEqual(CC in str(groups), may_see)
                groups = Address.read_group([], ["role"], ["message_id"])
                self.assertEqual(SUBJECT in str(groups), may_see)
                if not may_see:
                    with self.assertRaises(AccessError):
                        address.with_user(user).read(["email", "name", "message_id"])

    def test_bcc_is_no_oracle(self):
        """Bcc of a shared email: the reader sees the email, never who was in Bcc."""
        self.mailbox_owner.visibility = "shared"
        self.contact.with_user(self.user_owner).gmail_share_emails = True
        rival = self.env["crm.lead"].create({"name": "Rival", "email_from": "hidden@rival.test"})
        raw = make_raw(
            "olivia@ourco.test", "chris@acme.test", subject="With bcc", bcc="hidden@rival.test"
        )
        sent = self.store(self.mailbox_owner, [raw])
        bcc = self.env["crm.gmail.message.address"].search(
            [("message_id", "=", sent.id), ("role", "=", "bcc")]
        )
        self.assertEqual(bcc.email, "hidden@rival.test")
        for role, user in (("owner", self.user_owner), ("colleague", self.user_colleague)):
            with self.subTest(role=role):
                owner = role == "owner"
                Message = self.env["crm.gmail.message"].with_user(user)
                self.assertTrue(Message.search([("id", "=", sent.id)]))
                # the leads of an email's participants, searched by the email: not the Bcc
                self.env.invalidate_all()  # as in a new request
                Lead = self.env["crm.lead"].with_user(user)
                for domain in (
                    [("gmail_message_ids", "in", sent.ids)],
                    [("gmail_message_ids.subject", "=", "With bcc")],
                ):
                    self.assertEqual(rival in Lead.search(domain), owner, domain)
                # ... and in the same request, the email's participants
                self.assertEqual(
                    bcc.id in sent.with_user(user).read(["address_ids"])[0]["address_ids"], owner
                )
                self.assertEqual(sent in rival.with_user(user).gmail_message_ids, owner)
                for domain in (
                    [("address_ids.email", "=", "hidden@rival.test")],
                    [("address_ids.role", "=", "bcc")],
                    [("address_ids.email", "ilike", "rival")],
                ):
                    self.assertEqual(bool(Message.search(domain)), owner, domain)
                self.env.invalidate_all()
                data = sent.with_user(user).web_read(
                    {"email_bcc": {}, "address_ids": {"fields": {"email": {}, "role": {}}}}
                )
                self.assertEqual("hidden@rival.test" in str(data), owner, data)
                Address = self.env["crm.gmail.message.address"].with_user(user)
                groups = Address.read_group([], ["role"], ["role"])
                self.assertEqual("bcc" in [g["role"] for g in groups], owner)
                exported = Message.search([]).export_data(["address_ids/email"])["datas"]
                self.assertEqual("hidden@rival.test" in str(exported), owner)

    # ------------------------------------------------------------ leads and contacts
    def test_record_pages_and_counts(self):
        # the deal's main contact is the sender; the insider lead is in Cc
        for role, user, may_see in self.all_users():
            for record in (self.contact, self.deal, self.lead_insider):
                with self.subTest(role=role, record=record.display_name):
                    record = record.with_user(user)
                    record.invalidate_recordset()
                    self.assertEqual(record.gmail_message_count, int(may_see))
                    self.assertEqual(self.message.id in record.gmail_message_ids.ids, may_see)
                    data = record.web_read(
                        {
                            "gmail_message_count": {},
                            "gmail_message_ids": {"fields": {"subject": {}, "body_html": {}}},
                        }
                    )
                    self.assertEqual(data[0]["gmail_message_count"], int(may_see))
                    self.assertEqual(SUBJECT in str(data), may_see)
                    rows = record.export_data(["gmail_message_count", "gmail_message_ids/subject"])[
                        "datas"
                    ]
                    self.assertEqual(SUBJECT in str(rows), may_see)

    def test_record_search_by_linked_email_is_no_oracle(self):
        """``crm.lead.search([('gmail_message_ids.subject', 'ilike', ...)])`` would tell
        which customers a private email was with, without reading it."""
        for role, user, may_see in self.all_users():
            Lead = self.env["crm.lead"].with_user(user)
            Partner = self.env["res.partner"].with_user(user)
            for Model, domain in (
                (Lead, [("gmail_message_ids.subject", "ilike", "merger")]),
                (Lead, [("gmail_message_ids.body_html", "ilike", BODY)]),
                (Lead, [("gmail_message_ids.address_ids.email", "=", CC)]),
                (Lead, [("gmail_message_ids.attachment_ids.name", "=", "merger.txt")]),
                (Lead, [("gmail_message_ids", "in", [self.message.id])]),
                (Lead, [("gmail_message_ids", "=", self.message.id)]),
                (Partner, [("gmail_message_ids.subject", "ilike", "merger")]),
                (Partner, [("gmail_message_ids", "in", self.message.ids)]),
            ):
                with self.subTest(role=role, model=Model._name, domain=domain):
                    found = Model.search(domain)
                    self.assertEqual(bool(found), may_see, found)
                    self.assertEqual(bool(Model.search_count(domain)), may_see)
                    groups = Model.read_group(domain, ["id:count"], [])
                    self.assertEqual(bool(groups[0]["__count"]), may_see)

    def test_record_group_and_order_by_gmail_fields(self):
        """The linked emails and their count are computed per reader: nothing to group,
        aggregate or sort leads by across users."""
        for role, user, _may_see in self.all_users():
            Lead = self.env["crm.lead"].with_user(user)
            with self.subTest(role=role):
                for fields, groupby in (
                    (["gmail_message_count:sum"], []),
                    (["id:count"], ["gmail_message_count"]),
                    (["id:count"], ["gmail_message_ids"]),
                ):
                    with self.assertRaises(ValueError):
                        Lead.read_group([], fields, groupby)
                for order in ("gmail_message_count desc", "gmail_message_ids"):
                    with self.assertRaises(ValueError), mute_logger("odoo.models"):
                        Lead.search([], order=order)

    # ------------------------------------------------------------ attachments
    def test_attachment_orm(self):
        checksum = hashlib.sha1(ATTACHMENT).hexdigest()
        domains = [
            [("res_model", "=", "crm.gmail.message")],
            [("res_model", "=", "crm.gmail.message"), ("res_id", "=", self.message.id)],
            [("name", "=", "merger.txt")],
            [("index_content", "ilike", "ATTACHMENT-SECRET")],
            [("checksum", "=", checksum)],
            [("id", "=", self.attachment.id)],
        ]
        for role, user, may_see in self.all_users():
            Attachment = self.env["ir.attachment"].with_user(user)
            for domain in domains:
                with self.subTest(role=role, domain=domain):
                    self.assertEqual(bool(Attachment.search(domain)), may_see)
                    self.assertEqual(Attachment.search_count(domain), int(may_see))
                    groups = Attachment.read_group(domain, ["file_size:sum"], ["res_id"])
                    self.assertEqual(_group_total(groups), int(may_see), groups)
                    groups = Attachment.read_group(domain, ["file_size:sum"], ["res_model"])
                    self.assertEqual(_group_total(groups), int(may_see), groups)
            with self.subTest(role=role, path="name_search/read"):
                self.assertEqual(bool(Attachment.name_search("merger")), may_see)
                attachment = self.attachment.with_user(user)
                attachment.invalidate_recordset()
                if may_see:
                    self.assertEqual(attachment.raw, ATTACHMENT)
                    continue
                for fields in (["datas"], ["raw"], ["index_content"], ["name", "res_name"]):
                    with self.assertRaises(AccessError):
                        attachment.read(fields)
                with self.assertRaises(AccessError):
                    attachment.web_read({"name": {}, "datas": {}})

    def test_attachment_not_reattached(self):
        """Linking the email's attachment to one's own chatter message, composer or access
        token would hand its content out (by email, or by a token URL)."""
        for role, user in self.others.items():
            with self.subTest(role=role):
                lead = self.lead.with_user(user)
                with self.assertRaises(AccessError):
                    lead.message_post(body="fwd", attachment_ids=self.attachment.ids)
                for mode in ("comment", "mass_mail"):
                    composer = (
                        self.env["mail.compose.message"]
                        .with_user(user)
                        .with_context(
                            default_model="crm.lead",
                            default_res_ids=self.lead.ids,
                            default_composition_mode=mode,
                        )
                        .create(
                            {
                                "body": "fwd",
                                "subject": "fwd",
                                "partner_ids": user.partner_id.ids,
                                "attachment_ids": self.attachment.ids,
                            }
                        )
                    )
                    with self.assertRaises(AccessError):
                        composer._action_send_mail()
                with self.assertRaises(AccessError):
                    self.attachment.with_user(user).generate_access_token()
                self.attachment.invalidate_recordset()
                self.assertFalse(self.attachment.sudo().access_token)
        self.assertFalse(
            self.env["mail.mail"].sudo().search([("attachment_ids", "in", self.attachment.ids)])
        )
        self.assertFalse(
            self.env["mail.message"].sudo().search([("attachment_ids", "in", self.attachment.ids)])
        )

    # ------------------------------------------------------------ mailbox secret
    def test_mailbox_secret_is_write_only(self):
        """Nobody reads the secret back, the owner included: it is only ever sent to the
        owner's mail server."""
        owner_box = self.mailbox_owner
        for role, user in (("owner", self.user_owner), *self.others.items()):
            with self.subTest(role=role):
                box = owner_box.with_user(user)
                box.invalidate_recordset()
                Mailbox = self.env["crm.gmail.mailbox"].with_user(user)
                if role in ("colleague", "noseat"):
                    with self.assertRaises(AccessError):
                        box.read(["password"])
                    with self.assertRaises(AccessError):
                        box.read(["email"])
                else:
                    values = box.read(["password", "oauth_token", "password_set"])[0]
                    self.assertFalse(values["password"])
                    self.assertFalse(values["oauth_token"])
                    self.assertTrue(values["password_set"])
                    data = box.web_read({"password": {}, "oauth_token": {}, "login": {}})
                    self.assertNotIn(SECRET, str(data))
                    rows = box.export_data(["password", "oauth_token"])["datas"]
                    self.assertNotIn(SECRET, str(rows))
                    self.assertNotIn(TOKEN, str(rows))
                    result = box.onchange(
                        {"provider": "imap"}, ["provider"], {"provider": {}, "password": {}}
                    )
                    self.assertNotIn(SECRET, str(result))
                # the stored secret is not even described to users
                described = Mailbox.fields_get()
                self.assertNotIn("password_secret", described)
                self.assertNotIn("oauth_token_secret", described)
                # searching by the secret is no oracle, whatever the access to the mailbox
                for domain in (
                    [("password", "=", SECRET)],
                    [("password_secret", "=", SECRET)],
                    [("oauth_token", "=", TOKEN)],
                    [("oauth_token_secret", "ilike", "ya29")],
                ):
                    try:
                        found = Mailbox.search(domain)
                    except (AccessError, ValueError, UserError):
                        found = Mailbox.browse()
                    self.assertNotIn(owner_box, found, domain)
                for groupby in ("password", "password_secret"):
                    try:
                        groups = Mailbox.read_group([], ["email"], [groupby])
                    except (AccessError, ValueError, UserError):
                        groups = []
                    self.assertNotIn(SECRET, str(groups), groupby)
        # the mailbox's email count is the reader's count
        self.assertEqual(owner_box.with_user(self.user_owner).message_count, 1)
        self.assertEqual(owner_box.with_user(self.user_admin).message_count, 0)
        # a reader of a shared email reaches its mailbox's name, nothing else of it
        theirs = self.store(
            self.mailbox_colleague, [make_raw("chris@acme.test", "carl@ourco.test")]
        )
        self.contact.with_user(self.user_colleague).gmail_share_emails = True
        as_owner = theirs.with_user(self.user_owner)
        self.assertEqual(
            as_owner.web_read({"mailbox_id": {"fields": {"display_name": {}}}})[0]["mailbox_id"],
            {"id": self.mailbox_colleague.id, "display_name": "carl@ourco.test"},
        )
        for spec in ({"login": {}}, {"password": {}}, {"password_set": {}}, {"host": {}}):
            with self.assertRaises(AccessError):
                as_owner.web_read({"mailbox_id": {"fields": spec}})
        # the admin's other path: the user form's mailboxes
        mailboxes = self.user_owner.with_user(self.user_admin).gmail_mailbox_ids
        self.assertIn(owner_box, mailboxes)
        self.assertNotIn(SECRET, str(mailboxes.read(["password", "oauth_token"])))
        with self.assertRaises(AccessError):
            self.user_owner.with_user(self.user_colleague).read(["gmail_mailbox_ids"])
        # the engine still gets the secret
        account = owner_box._engine_account()
        self.assertEqual((account.password, account.oauth_token), (SECRET, TOKEN))
        # and the owner sets a new one
        owner_box.with_user(self.user_owner).password = "n3w-secret"
        self.assertEqual(owner_box._engine_account().password, "n3w-secret")
        # not even read back from the cache, in the same request
        self.assertFalse(owner_box.with_user(self.user_admin).password)
        saved = owner_box.with_user(self.user_owner).web_save(
            {"password": "n3w-secret-2", "oauth_token": "tok-2"},
            {"password": {}, "oauth_token": {}, "password_set": {}},
        )
        self.assertEqual(
            saved,
            [{"id": owner_box.id, "password": False, "oauth_token": False, "password_set": True}],
        )
        self.assertEqual(owner_box._engine_account().oauth_token, "tok-2")
        self.assertEqual(owner_box.state, "draft")

    def test_mailbox_secret_does_not_travel(self):
        """An admin (or anybody but the owner) who points the mailbox at another server,
        hands it to another user or copies it does not get the owner's secret sent there."""
        admin_box = self.mailbox_owner.with_user(self.user_admin)
        copy = admin_box.copy({"user_id": self.user_admin.id, "email": "adam@ourco.test"})
        account = copy._engine_account()
        self.assertFalse(account.password or account.oauth_token)
        copy.unlink()
        for vals in (
            {"host": "imap.attacker.test"},
            {"port": 1993},
            {"security": "starttls"},
            {"provider": "pop3"},
            {"ca_file": "/tmp/attacker-ca.pem"},
            {"smtp_host": "smtp.attacker.test"},
            {"user_id": self.user_admin.id},
        ):
            with self.subTest(vals=vals), self.env.cr.savepoint() as savepoint:
                self.assertEqual(self.mailbox_owner._engine_account().password, SECRET)
                admin_box.write(vals)
                account = self.mailbox_owner._engine_account()
                self.assertFalse(account.password, vals)
                self.assertFalse(account.oauth_token, vals)
                savepoint.rollback()
        # a new secret given with the change is kept
        admin_box.write({"host": "imap.other.test", "password": "given-with-it"})
        self.assertEqual(self.mailbox_owner._engine_account().password, "given-with-it")
        # the owner moving their own mailbox to another server keeps their secret
        self.mailbox_owner.with_user(self.user_owner).write({"password": SECRET})
        self.mailbox_owner.with_user(self.user_owner).write({"host": "imap.new.test"})
        self.assertEqual(self.mailbox_owner._engine_account().password, SECRET)

    # ------------------------------------------------------------ shares
    def test_share_rows(self):
        self.contact.with_user(self.user_owner).gmail_share_emails = True
        share = self.env["crm.gmail.share"].search([("user_id", "=", self.user_owner.id)])
        self.assertEqual(len(share), 1)
        for role, user in (("colleague", self.user_colleague), ("noseat", self.user_noseat)):
            with self.subTest(role=role):
                Share = self.env["crm.gmail.share"].with_user(user)
                self.assertFalse(Share.search([("user_id", "=", self.user_owner.id)]))
                with self.assertRaises(AccessError):
                    share.with_user(user).read(["partner_id"])

    def test_share_cannot_be_forged(self):
        """A colleague must not share the owner's emails in the owner's name: neither by
        creating a share for the owner nor by handing their own share to the owner."""
        self.mailbox_owner.visibility = "shared"  # only the owner's share is missing
        Message = self.env["crm.gmail.message"].with_user(self.user_colleague)
        self.assertFalse(Message.search([("id", "=", self.message.id)]))
        Share = self.env["crm.gmail.share"].with_user(self.user_colleague)
        with self.assertRaises(AccessError):
            Share.create({"user_id": self.user_owner.id, "partner_id": self.contact.id})
        self.contact.with_user(self.user_colleague).gmail_share_emails = True
        own = Share.search([("user_id", "=", self.user_colleague.id)])
        self.assertEqual(len(own), 1)
        with self.assertRaises(AccessError):  # record rules do not check a write's result
            own.write({"user_id": self.user_owner.id})
        self.env.invalidate_all()
        self.assertFalse(Message.search([("id", "=", self.message.id)]))
        self.assertFalse(self.contact.with_user(self.user_owner).gmail_share_emails)
        # the toggle keeps working through its own (privileged) path
        self.contact.with_user(self.user_colleague).gmail_share_emails = False
        self.assertFalse(Share.search([]))


class _EchoingImap:
    """An IMAP server (imaplib stand-in) that repeats the credentials in its refusal,
    as a misconfigured or hostile server might."""

    capabilities = ("IMAP4REV1",)
    state = "NONAUTH"

    def __init__(self, *args, **kwargs):
        pass

    def login(self, user, password):
        raise transport_imap.imaplib.IMAP4.error(
            f"[AUTHENTICATIONFAILED] LOGIN {user} {password} rejected".encode()
        )

    def authenticate(self, mechanism, authobject):
        payload = authobject(b"").decode()
        raise transport_imap.imaplib.IMAP4.error(f"[AUTHENTICATIONFAILED] {payload} rejected")

    def logout(self):
        pass

    def shutdown(self):
        pass


@tagged("post_install", "-at_install")
class TestLeaksLogsAndTrail(LeaksCommon):
    def _trail(self, mailbox):
        """Everything an error leaves behind, as text."""
        mailbox = mailbox.sudo()
        activities = (
            self.env["mail.activity"]
            .sudo()
            .search([("res_model", "=", mailbox._name), ("res_id", "=", mailbox.id)])
        )
        messages = (
            self.env["mail.message"]
            .sudo()
            .search([("model", "=", mailbox._name), ("res_id", "=", mailbox.id)])
        )
        tracking = (
            self.env["mail.tracking.value"].sudo().search([("mail_message_id", "in", messages.ids)])
        )
        fields = [name for name in mailbox._fields if not name.endswith("_secret")]
        return "\n".join(
            [
                str(mailbox.read(fields)),  # the stored secret itself aside
                str(activities.read(["summary", "note"])),
                str(messages.read(["body", "subject"])),
                str(tracking.read(["old_value_char", "new_value_char"])),
            ]
        )

    def test_secret_never_logged_or_stored_on_error(self):
        box = self.mailbox_owner.with_context(tracking_disable=False)
        for secret_vals, secret in (
            ({"oauth_token": False, "password": SECRET}, SECRET),
            ({"oauth_token": TOKEN}, TOKEN),
        ):
            with self.subTest(secret=secret):
                box.with_user(self.user_owner).write(secret_vals)
                # written before: with --log-level=debug_sql Odoo logs every query's
                # parameters, the secret's UPDATE included (Odoo-wide, as for any field)
                self.env.flush_all()
                with (
                    patch.object(transport_imap.imaplib, "IMAP4_SSL", _EchoingImap),
                    self.assertLogs("odoo", level=logging.DEBUG) as logs,
                ):
                    notification = box.with_user(self.user_owner).action_test_connection()
                    box.write({"state": "connected"})
                    box.with_user(self.user_owner).action_sync_now()
                    self.fetch_due()
                self.assertEqual(box.state, "error")
                self.assertIn("rejected", box.last_error)  # the server's words are kept
                self.assertIn("olivia@ourco.test", box.last_error + str(logs.output))
                self.assertNotIn(secret, json.dumps(notification))
                # the cron also tried the colleague's mailbox, on the same echoing server
                for logged in (secret, "s3cret-colleague"):
                    self.assertNotIn(logged, "\n".join(logs.output))
                self.assertNotIn(secret, self._trail(box))
                self.assertNotIn("s3cret-colleague", self._trail(self.mailbox_colleague))
                # the owner's activity is readable by the admin, not by the others
                Activity = self.env["mail.activity"]
                for role, user in self.others.items():
                    notes = Activity.with_user(user).search(
                        [("res_model", "=", box._name), ("res_id", "=", box.id)]
                    )
                    self.assertEqual(bool(notes), role == "admin", role)
                    self.assertNotIn(secret, str(notes.read(["note", "summary"])))

    def test_secret_not_tracked(self):
        box = self.mailbox_owner.with_context(tracking_disable=False)
        box.with_user(self.user_owner).write({"password": "tr4cked-secret", "host": "x.test"})
        box.with_user(self.user_admin).write({"password": "tr4cked-by-admin"})
        trail = self._trail(box)
        self.assertNotIn("tr4cked", trail)


@tagged("post_install", "-at_install")
class TestLeaksHttp(HttpCase, LeaksCommon):
    """The same through the web server, with a real session per user."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for user in (cls.user_owner, *cls.others.values()):
            user.password = user.login

    def _get(self, url):
        response = self.url_open(url, allow_redirects=False)
        return response.status_code, response.content

    def test_attachment_and_body_urls(self):
        att, msg = self.attachment.id, self.message.id
        urls = [
            f"/web/content/{att}",
            f"/web/content/{att}?download=true",
            f"/web/content/ir.attachment/{att}/datas",
            f"/web/content/ir.attachment/{att}/raw",
            f"/web/content/ir.attachment/{att}/datas/merger.txt",
            f"/web/image/{att}",
            f"/web/image/ir.attachment/{att}/datas",
            f"/web/content/crm.gmail.message/{msg}/body_html",
            f"/web/content/crm.gmail.message/{msg}/subject",
        ]
        for role, user, may_see in self.all_users():
            self.authenticate(user.login, user.login)
            for url in urls:
                with self.subTest(role=role, url=url):
                    status, content = self._get(url)
                    if may_see and "/subject" not in url and "/body_html" not in url:
                        if "/web/image" not in url:
                            self.assertEqual(status, 200)
                            self.assertIn(ATTACHMENT, content)
                        continue
                    if not may_see:
                        self.assertNotIn(ATTACHMENT, content)
                        if url.startswith("/web/image"):
                            # an image URL answers a placeholder, as for no record at all
                            missing = url.replace(str(att), str(att + 10**6))
                            self.assertEqual(content, self._get(missing)[1])
                        else:
                            self.assertNotEqual(status, 200, content[:200])
                        self.assertNotIn(BODY.encode(), content)
                        self.assertNotIn(SUBJECT.encode(), content)

    def test_json_rpc(self):
        calls = [
            ("crm.gmail.message", "search_read", [[]], {"fields": ["subject", "body_html"]}),
            ("crm.gmail.message", "read", [self.message.ids, ["subject"]], {}),
            ("crm.gmail.message", "name_search", [], {"name": "merger"}),
            ("crm.gmail.message.address", "search_read", [[]], {"fields": ["email"]}),
            (
                "ir.attachment",
                "search_read",
                [[("res_model", "=", "crm.gmail.message")]],
                {"fields": ["name", "datas"]},
            ),
            (
                "crm.lead",
                "search_read",
                [[("gmail_message_ids.subject", "ilike", "merger")]],
                {"fields": ["name"]},
            ),
            ("crm.gmail.mailbox", "search_read", [[]], {"fields": ["password", "oauth_token"]}),
            ("crm.gmail.mailbox", "read", [self.mailbox_owner.ids, ["password"]], {}),
        ]
        owner_sees = {  # the control: what the same calls give the owner
            ("crm.gmail.message", "search_read"): SUBJECT,
            ("crm.gmail.message", "read"): SUBJECT,
            ("crm.gmail.message", "name_search"): SUBJECT,
            ("crm.gmail.message.address", "search_read"): CC,
            ("ir.attachment", "search_read"): "merger.txt",
            ("crm.gmail.mailbox", "search_read"): '"password": false',
            ("crm.gmail.mailbox", "read"): '"password": false',
        }
        for role, user, may_see in self.all_users():
            self.authenticate(user.login, user.login)
            for model, method, args, kwargs in calls:
                with self.subTest(role=role, model=model, method=method):
                    response = self.url_open(
                        f"/web/dataset/call_kw/{model}/{method}",
                        data=json.dumps(
                            {
                                "jsonrpc": "2.0",
                                "method": "call",
                                "params": {
                                    "model": model,
                                    "method": method,
                                    "args": args,
                                    "kwargs": kwargs,
                                },
                            }
                        ),
                        headers={"Content-Type": "application/json"},
                    )
                    text = response.text
                    # nobody reads the mailbox's secret back, the owner included
                    for secret in (SECRET, TOKEN):
                        self.assertNotIn(secret, text, text[:300])
                    if may_see:
                        expected = owner_sees.get((model, method))
                        if expected:
                            self.assertIn(expected, text, text[:300])
                        continue
                    for secret in (SUBJECT, BODY, CC, "merger.txt"):
                        self.assertNotIn(secret, text, text[:300])
