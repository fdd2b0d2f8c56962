"""Privacy, second round, as an attacker with an ordinary login would try it: over HTTP
(JSON-RPC with a real session per user, debug mode on, and XML-RPC).

- Names computed with elevated rights: Odoo names a referenced record as superuser
  (onchange of a new record pointing at it, a new activity's ``res_name``, the composer's
  ``record_name``/``subject``, an attachment's ``original_id``, the debug-mode AccessError).
- Secrets follow their owner's choice; a user's privacy choice is theirs; a share never
  widens behind the owner's back.

Every probe runs as the owner too (or as the user the data was shared with), to prove the
same call does return the data to someone allowed.
"""

import base64
import json
import xmlrpc.client

from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.tests import HttpCase, tagged

from .common import SEAT, make_raw
from .test_leaks import ATTACHMENT, CC, LeaksCommon

SUBJECT = "Secret merger plan"  # the owner's private email (test_leaks.LeaksCommon)
FILENAME = "merger.txt"


class RpcCase(HttpCase):
    """JSON-RPC calls in the session of a logged-in user; XML-RPC with a password."""

    def login(self, user, debug=False):
        self.authenticate(user.login, user.login)
        if debug:
            # debug mode, which every employee may switch on, shows record names in errors
            self.url_open("/odoo?debug=1")

    def call(self, model, method, *args, context=None, **kwargs):
        """``(result or None, the whole response text)``."""
        if context:
            kwargs["context"] = context
        response = self.url_open(
            f"/web/dataset/call_kw/{model}/{method}",
            data=json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "call",
                    "params": {"model": model, "method": method, "args": args, "kwargs": kwargs},
                }
            ),
            headers={"Content-Type": "application/json"},
        )
        return response.json().get("result"), response.text

    def xmlrpc(self, user, model, method, *args, **kwargs):
        """The same as ``call`` over XML-RPC: ``(result or None, text of result or fault)``."""
        try:
            result = self.xmlrpc_object.execute_kw(
                self.env.cr.dbname, user.id, user.login, model, method, list(args), kwargs
            )
        except xmlrpc.client.Fault as fault:
            return None, fault.faultString
        return result, repr(result)


@tagged("post_install", "-at_install")
class TestNamesHttp(RpcCase, LeaksCommon):
    """The name of a synced email, a participant and an email's attachment reveals nothing
    to whoever may not read that record."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user_portal = mail_new_test_user(
            cls.env, login="gs_portal", name="Paul Portal", groups="base.group_portal"
        )
        cls.others["portal"] = cls.user_portal
        for user in (cls.user_owner, *cls.others.values()):
            user.password = user.login
        cls.address = cls.env["crm.gmail.message.address"].search(
            [("message_id", "=", cls.message.id), ("email", "=", CC)]
        )
        cls.secret_names = {
            "crm.gmail.message": (cls.message.id, SUBJECT),
            "crm.gmail.message.address": (cls.address.id, CC),
            "ir.attachment": (cls.attachment.id, FILENAME),
        }

    def setUp(self):
        super().setUp()
        self.assertEqual(len(self.address), 1)

    def assertNamed(self, may_see, text, name, probe):
        """The control (``may_see``) gets the name back; everybody else gets nothing of it."""
        if may_see:
            self.assertIn(name, text, f"{probe}: the control must see the name")
        else:
            self.assertNotIn(name, text, probe)

    def test_onchange_of_a_new_participant_pointing_at_the_email(self):
        spec = {"message_id": {"fields": {"display_name": {}}}, "email": {}}
        for role, user, may_see in self.all_users():
            with self.subTest(role=role):
                self.login(user)
                result, text = self.call(
                    "crm.gmail.message.address",
                    "onchange",
                    [],
                    {"message_id": self.message.id, "email": "x@y.test", "role": "to"},
                    [],  # a new record's first onchange, as the form sends it
                    spec,
                )
                self.assertNamed(may_see, text, SUBJECT, "participant onchange")
                if may_see:
                    self.assertEqual(result["value"]["message_id"]["display_name"], SUBJECT)

    def test_onchange_of_a_new_activity_on_each_record(self):
        for model, (res_id, name) in self.secret_names.items():
            for role, user, may_see in self.all_users():
                with self.subTest(model=model, role=role):
                    self.login(user)
                    _result, text = self.call(
                        "mail.activity",
                        "onchange",
                        [],
                        {"res_model": model, "res_id": res_id},
                        ["res_id"],
                        {"res_name": {}, "res_model": {}, "res_id": {}},
                    )
                    self.assertNamed(may_see, text, name, f"activity on {model}")
                    _result, text = self.xmlrpc(
                        user,
                        "mail.activity",
                        "onchange",
                        [],
                        {"res_model": model, "res_id": res_id},
                        ["res_id"],
                        {"res_name": {}},
                    )
                    self.assertNamed(may_see, text, name, f"XML-RPC activity on {model}")

    def test_composer_record_name_and_subject(self):
        for model, (res_id, name) in self.secret_names.items():
            if model == "ir.attachment":
                continue  # the composer of a document: the email and its participant
            for role, user, may_see in self.all_users():
                with self.subTest(model=model, role=role):
                    self.login(user)
                    values = {
                        "model": model,
                        "res_ids": f"[{res_id}]",
                        "composition_mode": "comment",
                    }
                    _result, text = self.call(
                        "mail.compose.message",
                        "onchange",
                        [],
                        values,
                        ["res_ids"],
                        {"record_name": {}, "subject": {}, "model": {}, "res_ids": {}},
                    )
                    self.assertNamed(may_see, text, name, f"composer on {model}")

    def test_original_id_of_an_attachment_the_user_creates(self):
        for role, user, may_see in self.all_users():
            if role == "portal":
                continue  # portal users cannot create attachments through RPC at all
            with self.subTest(role=role):
                self.login(user)
                created, text = self.call(
                    "ir.attachment",
                    "create",
                    [
                        {
                            "name": f"mine-{role}.txt",
                            "datas": base64.b64encode(b"mine").decode(),
                            "original_id": self.attachment.id,
                        }
                    ],
                )
                self.assertTrue(created, text[:300])
                _result, text = self.call(
                    "ir.attachment",
                    "web_read",
                    created,
                    specification={"original_id": {"fields": {"display_name": {}}}},
                )
                self.assertNamed(may_see, text, FILENAME, "original_id read")
                _result, text = self.xmlrpc(user, "ir.attachment", "read", created, ["original_id"])
                self.assertNamed(may_see, text, FILENAME, "original_id over XML-RPC")
                _result, text = self.call(
                    "ir.attachment",
                    "onchange",
                    [],
                    {"name": "x.txt", "original_id": self.attachment.id},
                    [],
                    {"original_id": {"fields": {"display_name": {}}}},
                )
                self.assertNamed(may_see, text, FILENAME, "original_id onchange")

    def test_access_error_in_debug_mode(self):
        for model, (res_id, name) in self.secret_names.items():
            for role, user in self.others.items():
                with self.subTest(model=model, role=role):
                    self.login(user, debug=True)
                    _result, text = self.call(model, "read", [res_id], ["create_date"])
                    self.assertIn('"error"', text)
                    self.assertNotIn(name, text, f"debug AccessError on {model}")
                    self.assertNotIn(ATTACHMENT.decode(), text)
                    if role != "portal":
                        # the control: debug mode does describe the refused record here
                        self.assertIn(f"({model}: {res_id})", text)
                    _result, text = self.xmlrpc(user, model, "read", [res_id], ["create_date"])
                    self.assertNotIn(name, text, f"XML-RPC AccessError on {model}")

    def test_the_owner_reads_every_name(self):
        """The control of the names themselves, as the owner reads them over RPC."""
        self.login(self.user_owner, debug=True)
        for model, (res_id, name) in self.secret_names.items():
            with self.subTest(model=model):
                result, text = self.call(model, "web_read", [res_id], {"display_name": {}})
                self.assertEqual(result[0]["display_name"], name, text[:300])
        for role, user in self.others.items():
            with self.subTest(role=role):
                # under sudo the name is still decided for the real user
                names = self.message.with_user(user).sudo().mapped("display_name")
                self.assertNotIn(SUBJECT, names)
                self.assertNotEqual(self.attachment.with_user(user).sudo().display_name, FILENAME)
        self.assertEqual(self.message.with_user(self.user_owner).sudo().display_name, SUBJECT)


@tagged("post_install", "-at_install")
class TestChoicesHttp(RpcCase, LeaksCommon):
    """Secrets, visibility and shares change only as their owner chose."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user_spare = mail_new_test_user(
            cls.env,
            login="gs_spare",
            name="Sam Spare",
            email="sam@ourco.test",
            groups=f"base.group_user,sales_team.group_sale_salesman_all_leads,{SEAT}",
        )
        for user in (cls.user_owner, cls.user_spare, *cls.others.values()):
            user.password = user.login

    def secrets(self, mailbox):
        mailbox.invalidate_recordset()
        box = mailbox.sudo()
        return box.password_secret, box.oauth_token_secret

    def test_server_change_by_an_admin_clears_every_secret_not_replaced(self):
        box = self.mailbox_owner
        for vals, kept in (
            ({"host": "evil.test", "oauth_token": False}, (False, False)),
            ({"port": 10993, "password": False}, (False, False)),
            ({"smtp_host": "smtp.evil.test"}, (False, False)),
            ({"security": "starttls", "password": "admin-typed"}, ("admin-typed", False)),
        ):
            with self.subTest(vals=vals):
                box.sudo().write({"password": "s3cret-owner", "oauth_token": "tok-owner"})
                self.login(self.user_admin)
                result, text = self.call(box._name, "write", box.ids, vals)
                self.assertTrue(result, text[:300])
                self.assertEqual(self.secrets(box), kept)
        # the control: the owner's own change keeps what the write does not replace
        box.sudo().write({"host": "127.0.0.1", "password": "s3cret-owner", "oauth_token": "tok"})
        self.login(self.user_owner)
        result, text = self.call(box._name, "write", box.ids, {"host": "mail.ourco.test"})
        self.assertTrue(result, text[:300])
        self.assertEqual(self.secrets(box), ("s3cret-owner", "tok"))
        result, _text = self.call(box._name, "write", box.ids, {"port": 1993, "oauth_token": False})
        self.assertEqual(self.secrets(box), ("s3cret-owner", False))

    def test_handing_a_mailbox_over_clears_all_its_secrets(self):
        box = self.mailbox_colleague
        self.assertEqual(box.visibility, "shared")
        self.assertEqual(self.secrets(box), ("s3cret-colleague", False))
        box.sudo().oauth_token = "tok-colleague"
        self.login(self.user_admin)
        result, text = self.call(box._name, "write", box.ids, {"user_id": self.user_spare.id})
        self.assertTrue(result, text[:300])
        self.assertEqual(self.secrets(box), (False, False))
        box.invalidate_recordset()
        self.assertEqual(box.user_id, self.user_spare)
        self.assertEqual(box.visibility, "private", "the new owner has not chosen to share")

    def test_only_the_owner_changes_the_visibility(self):
        box = self.mailbox_owner
        for user in (self.user_admin, self.user_colleague):
            with self.subTest(user=user.login):
                self.login(user)
                result, text = self.call(box._name, "write", box.ids, {"visibility": "shared"})
                self.assertIsNone(result)
                box.invalidate_recordset()
                self.assertEqual(box.visibility, "private")
                if user == self.user_admin:
                    self.assertIn(
                        "Only Olivia Owner can make their mailbox private or shared", text
                    )
        self.login(self.user_admin)
        result, text = self.call(
            box._name,
            "create",
            {"user_id": self.user_spare.id, "email": "sam@ourco.test", "visibility": "shared"},
        )
        self.assertIsNone(result)
        self.assertIn("Only Sam Spare can make their mailbox private or shared", text)
        # an admin may archive it
        result, text = self.call(box._name, "action_archive", box.ids)
        self.assertNotIn('"error"', text)
        box.invalidate_recordset()
        self.assertFalse(box.active)
        box.sudo().active = True
        # the control: the owner may
        self.login(self.user_owner)
        result, text = self.call(box._name, "write", box.ids, {"visibility": "shared"})
        self.assertTrue(result, text[:300])
        box.invalidate_recordset()
        self.assertEqual(box.visibility, "shared")

    def test_nobody_shares_in_someone_elses_name(self):
        Share = self.env["crm.gmail.share"].sudo()
        self.login(self.user_admin)
        result, text = self.call(
            "crm.gmail.share", "create", {"user_id": self.user_owner.id, "lead_id": self.deal.id}
        )
        self.assertIsNone(result)
        self.assertIn("for your own emails only", text)
        result, text = self.call("crm.lead", "write", self.deal.ids, {"gmail_share_emails": True})
        self.assertTrue(result, text[:300])
        shares = Share.search([("lead_id", "=", self.deal.id)])
        self.assertEqual(shares.user_id, self.user_admin, "the admin shared their own emails only")
        result, text = self.call(
            "crm.gmail.share", "write", shares.ids, {"user_id": self.user_owner.id}
        )
        self.assertIsNone(result)
        self.assertEqual(shares.user_id, self.user_admin)

    def test_defaults_do_not_make_a_mailbox_shared_for_someone_else(self):
        self.login(self.user_admin)
        for vals, context in (
            ({"email": "sam@ourco.test", "visibility": "shared"}, {"default_user_id": 0}),
            ({"email": "sam@ourco.test", "user_id": 0}, {"default_visibility": "shared"}),
        ):
            vals = {k: v or self.user_spare.id for k, v in vals.items()}
            context = {k: v or self.user_spare.id for k, v in context.items()}
            with self.subTest(vals=vals, context=context):
                result, text = self.call("crm.gmail.mailbox", "create", vals, context=context)
                self.assertIsNone(result, text[:300])
                self.assertIn("Only Sam Spare can make their mailbox private or shared", text)
        self.assertFalse(
            self.env["crm.gmail.mailbox"].search([("user_id", "=", self.user_spare.id)])
        )
        # the control: Sam himself may
        self.login(self.user_spare)
        result, text = self.call(
            "crm.gmail.mailbox", "create", {"email": "sam@ourco.test", "visibility": "shared"}
        )
        self.assertTrue(result, text[:300])

    def test_a_handed_over_mailbox_shares_nothing_of_its_earlier_owner(self):
        self.mailbox_owner.sudo().visibility = "shared"
        self.contact.with_user(self.user_owner).gmail_share_emails = True
        self.login(self.user_colleague)
        result, _text = self.call("crm.gmail.message", "search_read", [], ["subject"])
        self.assertIn(SUBJECT, str(result), "the control: shared by its owner")
        self.mailbox_owner.sudo().visibility = "private"
        # the admin hands the mailbox to himself, then shares "his" mailbox
        self.mailbox_admin = self.env["crm.gmail.mailbox"].search(
            [("user_id", "=", self.user_admin.id)]
        )
        self.assertFalse(self.mailbox_admin)
        self.login(self.user_admin)
        box = self.mailbox_owner
        for vals in ({"user_id": self.user_admin.id}, {"visibility": "shared"}):
            result, text = self.call(box._name, "write", box.ids, vals)
            self.assertTrue(result, text[:300])
        box.invalidate_recordset()
        self.assertEqual((box.user_id, box.visibility), (self.user_admin, "shared"))
        self.login(self.user_colleague)
        result, text = self.call("crm.gmail.message", "search_read", [], ["subject"])
        self.assertNotIn(SUBJECT, text)
        self.login(self.user_admin)
        result, text = self.call("crm.gmail.message", "search_read", [], ["subject"])
        self.assertNotIn(SUBJECT, text, "nor does the new owner read the old owner's mail")

    def test_nobody_learns_who_has_a_mailbox(self):
        self.login(self.user_colleague)
        texts = []
        for user in (self.user_owner, self.user_spare):  # with a mailbox, and without
            result, text = self.call(
                "crm.gmail.mailbox", "create", {"user_id": user.id, "email": "x@ourco.test"}
            )
            self.assertIsNone(result)
            texts.append(json.loads(text)["error"]["data"]["message"])
        self.assertEqual(texts[0], texts[1])
        self.assertIn("You can only set up your own mailbox", texts[0])

    def test_own_addresses_are_no_oracle_and_cannot_be_planted(self):
        Alias = self.env["crm.gmail.mailbox.alias"].sudo()
        Alias.create({"mailbox_id": self.mailbox_owner.id, "email": "olivia.alias@ourco.test"})
        self.login(self.user_colleague)
        texts = []
        for guess in ("olivia.alias@ourco.test", "not.listed@ourco.test"):
            result, text = self.call(
                "crm.gmail.mailbox.alias",
                "create",
                {"mailbox_id": self.mailbox_owner.id, "email": guess},
            )
            self.assertIsNone(result)
            texts.append(json.loads(text)["error"]["data"]["message"])
        self.assertEqual(texts[0], texts[1], "the same refusal, listed or not")
        self.assertNotIn("already listed", texts[0])
        # a colleague's own address cannot be moved into the owner's mailbox
        result, text = self.call(
            "crm.gmail.mailbox.alias",
            "create",
            {"mailbox_id": self.mailbox_colleague.id, "email": "chris@acme.test"},
        )
        self.assertTrue(result, text[:300])  # the control: their own mailbox
        result, text = self.call(
            "crm.gmail.mailbox.alias", "write", [result], {"mailbox_id": self.mailbox_owner.id}
        )
        self.assertIsNone(result)
        self.assertEqual(
            Alias.search([("mailbox_id", "=", self.mailbox_owner.id)]).mapped("email"),
            ["olivia.alias@ourco.test"],
        )


@tagged("post_install", "-at_install")
class TestShareScopeHttp(RpcCase, LeaksCommon):
    """A share covers the addresses the record had when its owner shared it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for user in (cls.user_owner, cls.user_colleague):
            user.password = user.login
        # The colleague's mailbox is shared; they correspond with the deal's address, its
        # main contact and two other customers.
        cls.env["res.partner"].create({"name": "Nora New", "email": "nora@new.test"})
        cls.mails = {}
        for sender, subject in (
            ("buyer@acme.test", "Deal address mail"),
            ("chris@acme.test", "Main contact mail"),
            ("nora@new.test", "Unshared Nora mail"),
            ("dana@other.test", "Unshared Dana mail"),
        ):
            raw = make_raw(sender, "carl@ourco.test", subject=subject)
            cls.mails[subject] = cls.store(cls.mailbox_colleague, [raw])

    def visible_subjects(self):
        """What the owner (the reader here) reads of the colleague's mail, over RPC."""
        self.login(self.user_owner)
        result, text = self.call(
            "crm.gmail.message",
            "search_read",
            [("owner_id", "=", self.user_colleague.id)],
            ["subject"],
        )
        self.assertIsNotNone(result, text[:300])
        return {row["subject"] for row in result}

    def share_state(self):
        self.login(self.user_colleague)
        result, text = self.call(
            "crm.lead",
            "web_read",
            self.deal.ids,
            {"gmail_share_emails": {}, "gmail_share_outdated": {}},
        )
        self.assertIsNotNone(result, text[:300])
        return result[0]["gmail_share_emails"], result[0]["gmail_share_outdated"]

    def share(self):
        self.login(self.user_colleague)
        result, text = self.call("crm.lead", "write", self.deal.ids, {"gmail_share_emails": True})
        self.assertTrue(result, text[:300])

    def test_changing_the_address_shares_nothing_new(self):
        self.assertEqual(self.visible_subjects(), set())
        self.share()
        shared = {"Deal address mail", "Main contact mail"}
        self.assertEqual(self.visible_subjects(), shared)  # the control
        self.assertEqual(self.share_state(), (True, False))
        # The reader may edit the deal: they point it at another customer's address.
        self.login(self.user_owner)
        result, text = self.call(
            "crm.lead", "write", self.deal.ids, {"email_from": "nora@new.test"}
        )
        self.assertTrue(result, text[:300])
        self.assertNotIn("Unshared Nora mail", self.visible_subjects())
        self.assertEqual(self.share_state(), (True, True), "the owner is told")
        # the owner shares again: now the current address is covered
        self.login(self.user_colleague)
        result, text = self.call("crm.lead", "action_gmail_share_again", self.deal.ids)
        self.assertNotIn('"error"', text)
        self.assertIn("Unshared Nora mail", self.visible_subjects())
        self.assertEqual(self.share_state(), (True, False))

    def test_changing_the_main_contact_shares_nothing_new(self):
        self.share()
        self.login(self.user_owner)
        result, text = self.call(
            "crm.lead", "write", self.deal.ids, {"partner_id": self.contact_other.id}
        )
        self.assertTrue(result, text[:300])
        self.deal.invalidate_recordset()
        self.assertIn("Dana", self.deal.partner_id.name)
        visible = self.visible_subjects()
        self.assertNotIn("Unshared Dana mail", visible)
        self.assertNotIn("Main contact mail", visible, "no longer linked to the deal")
        self.assertEqual(self.share_state(), (True, True))
        # a record that never changed keeps its share: the contact shared on its own
        self.login(self.user_colleague)
        result, text = self.call(
            "res.partner", "write", self.contact.ids, {"gmail_share_emails": True}
        )
        self.assertTrue(result, text[:300])
        self.assertIn("Main contact mail", self.visible_subjects())


@tagged("post_install", "-at_install")
class TestAttachmentsStayHttp(RpcCase, LeaksCommon):
    """An email's attachment cannot be linked elsewhere (a chatter message, an activity)
    by whoever may not read the email, through no sudo path of Odoo's mail."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for user in (cls.user_owner, *cls.others.values()):
            user.password = user.login
        cls.eve = cls.env["res.partner"].create({"name": "Eve", "email": "eve@evil.test"})

    def _done_activity_with_attachment(self, user, lead):
        model_id = self.env["ir.model"]._get_id("crm.lead")
        activity, text = self.call(
            "mail.activity",
            "create",
            {"res_model_id": model_id, "res_id": lead.id, "summary": "x", "user_id": user.id},
        )
        self.assertTrue(activity, text[:300])
        return self.call(
            "mail.activity",
            "action_feedback",
            [activity],
            feedback="done",
            attachment_ids=[self.attachment.id],
        )

    def _chatter_copies(self, lead):
        """The attachments of ``lead``'s chatter with the email's attachment's content."""
        return (
            self.env["mail.message"]
            .sudo()
            .search([("model", "=", "crm.lead"), ("res_id", "=", lead.id)])
            .attachment_ids.filtered(lambda a: a.checksum == self.attachment.checksum)
        )

    def assertEmailKeepsItsAttachment(self):
        attachment = self.attachment.sudo().exists()
        self.assertTrue(attachment, "the synced email lost its attachment")
        self.assertEqual(
            (attachment.res_model, attachment.res_id), (self.message._name, self.message.id)
        )
        self.assertEqual(attachment.raw, ATTACHMENT)

    def test_activity_done_with_someone_elses_attachment(self):
        for role, user, may_see in self.all_users():
            if role == "portal":
                continue  # no activities for portal users
            with self.subTest(role=role):
                lead = self.env["crm.lead"].create({"name": f"Mine {role}", "user_id": user.id})
                self.login(user)
                _result, text = self._done_activity_with_attachment(user, lead)
                copies = self._chatter_copies(lead)
                if may_see:
                    # the control: the owner may post their own email's file, as a copy
                    self.assertEqual(copies.mapped("name"), [FILENAME], text[:500])
                    self.assertNotEqual(copies, self.attachment)
                    self.assertEmailKeepsItsAttachment()
                    continue
                self.assertFalse(copies, text[:500])
                self.assertNotIn(FILENAME, text)
                self.assertIn('"error"', text)
                # and so cannot post it to anybody either
                _result, text = self.call(
                    "crm.lead",
                    "message_post",
                    lead.ids,
                    body="fwd",
                    attachment_ids=[self.attachment.id],
                    partner_ids=[self.eve.id],
                    message_type="comment",
                )
                self.assertFalse(self._chatter_copies(lead))
                self.assertFalse(
                    self.env["mail.mail"]
                    .sudo()
                    .search([("attachment_ids", "in", self.attachment.ids)])
                )
                self.assertEmailKeepsItsAttachment()

    def test_deleting_the_chatter_copy_keeps_the_emails_file(self):
        lead = self.env["crm.lead"].create({"name": "Owner's", "user_id": self.user_owner.id})
        self.login(self.user_owner)
        self._done_activity_with_attachment(self.user_owner, lead)
        [copy] = self._chatter_copies(lead).ids
        response = self.url_open(
            "/mail/attachment/delete",
            data=json.dumps({"params": {"attachment_id": copy}}),
            headers={"Content-Type": "application/json"},
        )
        self.assertNotIn('"error"', response.text)
        self.assertFalse(self._chatter_copies(lead))
        self.assertEmailKeepsItsAttachment()

    def test_create_unique_hands_out_no_attachment_of_an_unreadable_email(self):
        datas = base64.b64encode(ATTACHMENT).decode()
        values = {"name": "guess.txt", "datas": datas, "mimetype": self.attachment.mimetype}
        for role, user, may_see in self.all_users():
            if role == "portal":
                continue  # portal users may not create attachments
            with self.subTest(role=role):
                self.login(user)
                result, text = self.call("ir.attachment", "create_unique", [values])
                self.assertTrue(result, text[:300])
                # the control: Odoo's own reuse, for who may read the email
                self.assertEqual(self.attachment.id in result, may_see, text[:300])
        self.assertEmailKeepsItsAttachment()

    def test_paged_attachment_search_is_no_oracle(self):
        """Odoo filters unreadable attachments after the SQL's offset and limit: a
        readable pivot after the hidden row would come back exactly when it matches."""
        pivot = self.env["ir.attachment"].create(
            {"name": "pivot.txt", "raw": b"pivot", "public": True}
        )
        self.assertGreater(pivot.id, self.attachment.id)
        for role, user, may_see in self.all_users():
            with self.subTest(role=role):
                self.login(user)
                for field, operator, value in (
                    ("index_content", "ilike", "ATTACHMENT-SECRET"),
                    ("name", "=like", "merger%"),
                    ("checksum", "=", self.attachment.checksum),
                ):
                    result, text = self.call(
                        "ir.attachment",
                        "search_read",
                        ["|", ("id", "=", pivot.id), (field, operator, value)],
                        ["id"],
                        offset=1,
                        limit=1,
                        order="id asc",
                    )
                    # the control: for the owner the email's attachment is row 0
                    expected = [{"id": pivot.id}] if may_see else []
                    self.assertEqual(result, expected, f"{field}: {text[:300]}")
                    if not may_see:
                        result, _text = self.xmlrpc(
                            user,
                            "ir.attachment",
                            "search",
                            ["|", ("id", "=", pivot.id), (field, operator, value)],
                            offset=1,
                        )
                        self.assertEqual(result, [])

    def test_nobody_plants_a_file_into_an_email(self):
        for role, user, _may_see in self.all_users():
            if role == "portal":
                continue
            with self.subTest(role=role):
                self.login(user)
                datas = base64.b64encode(b"fake invoice").decode()
                for vals in (
                    {"name": "invoice.pdf", "datas": datas, "res_model": self.message._name},
                    {
                        "name": "invoice.pdf",
                        "datas": datas,
                        "res_model": self.message._name,
                        "res_id": self.message.id,
                    },
                ):
                    result, text = self.call("ir.attachment", "create", vals)
                    self.assertIsNone(result, text[:300])
                    self.assertIn("Only the sync adds attachments to a synced email", text)
        self.assertEqual(self.message.sudo().attachment_ids, self.attachment)

    def test_an_activity_from_context_defaults_gets_an_attached_copy(self):
        lead = self.env["crm.lead"].create({"name": "Owner's", "user_id": self.user_owner.id})
        self.login(self.user_owner)
        activity, text = self.call(
            "mail.activity",
            "create",
            {
                "summary": "look",
                "user_id": self.user_colleague.id,
                "attachment_ids": [(6, 0, self.attachment.ids)],
            },
            context={"default_res_model": "crm.lead", "default_res_id": lead.id},
        )
        self.assertTrue(activity, text[:300])
        copy = self.env["mail.activity"].browse(activity).attachment_ids
        self.assertEqual(copy.mapped("name"), [FILENAME])
        self.assertEqual((copy.res_model, copy.res_id), ("crm.lead", lead.id))
        self.assertEmailKeepsItsAttachment()
