"""Adversarial review of ``crm.gmail.conversation``: what a logged-in user learns over
JSON-RPC of the emails they may not read, now that conversations span mailboxes.

The fixture: one conversation holds the colleague's *shared* email (with a Bcc and an
attachment), the owner's *private* copy of it and the owner's *private* reply (another
customer in Cc, a secret body, two attachments); the colleague has an unrelated later
email; the owner has a private-only conversation. Who reads what:

- owner (private mailbox): everything;
- colleague (shared mailbox, shared the deal and the contact): his two emails;
- admin (seat, Settings admin, ``admin_reads_all`` off): the colleague's two emails;
- user without seat, portal user: nothing.

Probes:

- *differential*: every probe's full JSON answer, before and after the owner's private
  emails are deleted: it must be identical for everybody but the owner (no value, count,
  order or group depends on hidden mail), and differ for the owner (the control);
- *texts*: the private strings never show for the others, and do show for the owner;
- Bcc, attachment URLs, the key table, crafted domains (no server error), identity.
"""

import base64
import datetime as dt
import json
import logging
import re
from contextlib import contextmanager

from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.tests import HttpCase, tagged

from .common import GmailSyncCommon, make_raw

UTC = dt.timezone.utc
C = "crm.gmail.conversation"

# only in the owner's private mailbox
PRIVATE_SUBJECT = "Secret follow-up"
PRIVATE_BODY = "the secret price is 4711"
PRIVATE_MID = "<private-77@acme.test>"
PRIVATE_CC = "dana@other.test"
PRIVATE_CC_NAME = "Dana Other"
PRIVATE_FILE = "secret-price.txt"
PRIVATE_CONTENT = b"PRIVATE-ATTACHMENT-CONTENT-77"
PRIVATE_IMAGE = "secret-chart.png"
PRIVATE_ONLY_SUBJECT = "Private only: layoffs"
PRIVATE_ONLY_MID = "<private-only-5@acme.test>"
# the colleague's shared email: its Bcc is his business only
SHARED_SUBJECT = "Shared offer"
SHARED_MID = "<shared-11@ourco.test>"
SHARED_FILE = "offer.txt"
SHARED_CONTENT = b"SHARED-OFFER-CONTENT-11"
BCC = "insider@acme.test"
BCC_NAME = "Ian Insider"
LATER_SUBJECT = "Unrelated later mail"
# a valid 1x1 PNG (/web/image decodes it)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def threaded(raw, in_reply_to=None, references=None):
    head = b""
    if in_reply_to:
        head += f"In-Reply-To: {in_reply_to}\r\n".encode()
    if references:
        head += f"References: {' '.join(references)}\r\n".encode()
    return head + raw


def day(month, dom, hour=9):
    return dt.datetime(2024, month, dom, hour, 0, tzinfo=UTC)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextmanager
def _server_errors():
    """Collect the ERROR lines that Odoo (the test and the HTTP server) logs meanwhile,
    for the test's own assertion.

    pytest-odoo runs Odoo at ``--odoo-log-level=critical`` unless given another level
    (tools/run-tests gives none): ERROR lines are then never even created, and
    conftest.py's guard never sees them. Here the ``odoo`` logger is lowered to ERROR for the block,
    and what it logs is kept out of the log (it is reported by the assertion)."""
    collect = _Collect()
    logger = logging.getLogger("odoo")
    level, propagate = logger.level, logger.propagate
    if not level or level > logging.ERROR:
        logger.setLevel(logging.ERROR)
    logger.addHandler(collect)
    logger.propagate = False
    try:
        yield collect.records
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
        logger.propagate = propagate


class ConversationLeaksCommon(GmailSyncCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner, Lead = cls.env["res.partner"], cls.env["crm.lead"]
        cls.user_portal = mail_new_test_user(
            cls.env, login="gs_conv_portal", name="Paul Portal", groups="base.group_portal"
        )
        cls.partner_insider = Partner.create({"name": BCC_NAME, "email": BCC})
        cls.lead_insider = Lead.create({"name": "Lead Insider", "type": "lead", "email_from": BCC})
        cls.lead_dana = Lead.create({"name": "Lead Dana", "type": "lead", "email_from": PRIVATE_CC})
        shared = dict(
            sender="Carl Colleague <carl@ourco.test>",
            to="buyer@acme.test",
            subject=SHARED_SUBJECT,
            cc="olivia@ourco.test",
            body="our offer, see attached",
            attachments=[(SHARED_FILE, SHARED_CONTENT, "text/plain")],
            message_id=SHARED_MID,
            date=day(5, 1),
        )
        # the colleague's copy (his Sent folder: with the Bcc)
        cls.shared = cls.store(
            cls.mailbox_colleague, [make_raw(bcc=f"{BCC_NAME} <{BCC}>", **shared)]
        )
        cls.later = cls.store(
            cls.mailbox_colleague,
            [
                make_raw(
                    "Chris Customer <chris@acme.test>",
                    "carl@ourco.test",
                    LATER_SUBJECT,
                    date=day(5, 15),
                )
            ],
        )
        # the owner's private copy of the same email, and her private reply
        cls.shared_copy = cls.store(cls.mailbox_owner, [make_raw(**shared)])
        cls.private = cls.store(
            cls.mailbox_owner,
            [
                threaded(
                    make_raw(
                        "buyer@acme.test",
                        "olivia@ourco.test",
                        PRIVATE_SUBJECT,
                        cc=f"{PRIVATE_CC_NAME} <{PRIVATE_CC}>",
                        body=PRIVATE_BODY,
                        attachments=[
                            (PRIVATE_FILE, PRIVATE_CONTENT, "text/plain"),
                            (PRIVATE_IMAGE, PNG, "image/png"),
                        ],
                        message_id=PRIVATE_MID,
                        date=day(6, 1),
                    ),
                    SHARED_MID,
                    [SHARED_MID],
                )
            ],
        )
        cls.private_only = cls.store(
            cls.mailbox_owner,
            [
                make_raw(
                    "buyer@acme.test",
                    "olivia@ourco.test",
                    PRIVATE_ONLY_SUBJECT,
                    message_id=PRIVATE_ONLY_MID,
                    date=day(4, 1),
                )
            ],
        )
        cls.deal.with_user(cls.user_colleague).gmail_share_emails = True
        cls.contact.with_user(cls.user_colleague).gmail_share_emails = True
        for user in (
            cls.user_owner,
            cls.user_colleague,
            cls.user_noseat,
            cls.user_admin,
            cls.user_portal,
        ):
            user.password = user.login
        Attachment = cls.env["ir.attachment"].sudo()
        cls.private_files = Attachment.search(
            [("res_model", "=", "crm.gmail.message"), ("res_id", "=", cls.private.id)]
        )
        cls.shared_files = Attachment.search(
            [("res_model", "=", "crm.gmail.message"), ("res_id", "=", cls.shared.id)]
        )
        cls.copy_files = Attachment.search(
            [("res_model", "=", "crm.gmail.message"), ("res_id", "=", cls.shared_copy.id)]
        )
        cls.conversation = cls.shared.conversation_id
        cls.conversation_later = cls.later.conversation_id
        cls.conversation_private = cls.private_only.conversation_id
        cls.viewers = {
            "owner": cls.user_owner,
            "colleague": cls.user_colleague,
            "admin": cls.user_admin,
            "noseat": cls.user_noseat,
            "portal": cls.user_portal,
        }

    def setUp(self):
        super().setUp()
        # the fixture is what the docstring says
        self.assertEqual(self.mailbox_owner.visibility, "private")
        self.assertEqual(self.mailbox_colleague.visibility, "shared")
        self.assertEqual(self.private.conversation_id, self.conversation)
        self.assertEqual(self.shared_copy.conversation_id, self.conversation)
        self.assertEqual(len(self.private_files), 2)
        self.assertEqual(len(self.shared_files), 1)
        self.assertEqual(len(self.copy_files), 1)
        self.assertFalse(
            self.env["ir.config_parameter"].sudo().get_param("crm_gmail_sync.admin_reads_all")
        )
        readable = {
            role: set(self.env["crm.gmail.message"].with_user(user).search([]).ids)
            if role != "portal"
            else set()
            for role, user in self.viewers.items()
        }
        mine = self.shared | self.later
        self.assertEqual(
            readable["owner"], set((mine | self.shared_copy | self.private | self.private_only).ids)
        )
        self.assertEqual(readable["colleague"], set(mine.ids))
        self.assertEqual(readable["admin"], set(mine.ids))
        self.assertEqual(readable["noseat"], set())


class RpcMixin:
    """JSON-RPC in the session of a logged-in user (see test_privacy_http.RpcCase)."""

    def login(self, user):
        self.authenticate(user.login, user.login)

    def rpc(self, model, method, *args, **kwargs):
        """``(result, error)``: the call's result, or its error's ``(name, message)``."""
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
        body = response.json()
        if "error" in body:
            data = body["error"].get("data") or {}
            return None, (data.get("name"), data.get("message"))
        return body["result"], None

    def answer(self, model, method, *args, **kwargs):
        """The call's answer as text (result or error), for comparing and scanning."""
        result, error = self.rpc(model, method, *args, **kwargs)
        return json.dumps(result if error is None else {"error": error}, sort_keys=True)


SPEC = {
    "display_name": {},
    "subject": {},
    "participants": {},
    "message_count": {},
    "last_date": {},
    "last_direction": {},
    "direction": {},
    "has_attachments": {},
    "is_mine": {},
    "is_visible": {},
    "shared_by": {},
    "body": {},
    "cards_html": {},
    "owner_ids": {"fields": {"display_name": {}}},
    "lead_ids": {"fields": {"display_name": {}}},
    "partner_ids": {"fields": {"display_name": {}, "email": {}}},
    "message_ids": {
        "fields": {
            "subject": {},
            "email_cc": {},
            "email_bcc": {},
            "body_html": {},
            "message_id_header": {},
            "attachment_ids": {"fields": {"name": {}}},
        }
    },
}
LINKED_SPEC = {
    "gmail_conversation_ids": {
        "fields": {
            "display_name": {},
            "subject": {},
            "message_count": {},
            "last_date": {},
            "participants": {},
            "has_attachments": {},
        }
    },
    "gmail_conversation_count": {},
    "gmail_empty_state": {},
}
ORDERS = (
    None,
    "last_date",
    "last_date desc",
    "last_date asc, id desc",
    "subject",
    "subject desc",
    "message_count",
    "message_count desc, id",
    "id desc",
)
GROUPBYS = (
    "owner_ids",
    "lead_ids",
    "partner_ids",
    "last_date:day",
    "last_date:month",
    "subject",
    "message_count",
)


@tagged("post_install", "-at_install")
class TestConversationLeaksHttp(RpcMixin, HttpCase, ConversationLeaksCommon):
    # ------------------------------------------------------------ the probes
    def domains(self):
        return [
            [],
            [("subject", "ilike", "Secret")],
            [("subject", "ilike", "Shared")],
            [("subject", "=", PRIVATE_SUBJECT)],
            [("subject", "not ilike", "Secret")],
            [("subject", "=", False)],
            [("body", "ilike", "4711")],
            [("body", "ilike", "offer")],
            [("participants", "ilike", "dana")],
            [("participants", "ilike", PRIVATE_CC_NAME)],
            [("participants", "=ilike", PRIVATE_CC)],
            [("participants", "ilike", "buyer")],
            [("owner_ids", "=", self.user_owner.id)],
            [("owner_ids", "in", [self.user_owner.id, self.user_colleague.id])],
            [("owner_ids", "ilike", "Olivia")],
            [("owner_ids", "!=", self.user_colleague.id)],
            [("lead_ids", "in", [self.lead_dana.id])],
            [("lead_ids", "=", self.deal.id)],
            [("partner_ids", "in", [self.contact_other.id])],
            [("partner_ids", "=", self.contact.id)],
            [("last_direction", "=", "received")],
            [("last_direction", "=", "sent")],
            [("last_direction", "!=", "sent")],
            [("last_direction", "in", ["received", "sent"])],
            [("last_direction", "not in", ["sent"])],
            [("direction", "=", "received")],
            [("direction", "=", "sent")],
            [("has_attachments", "=", True)],
            [("has_attachments", "=", False)],
            [("is_mine", "=", True)],
            [("is_mine", "=", False)],
            [("is_visible", "=", True)],
            [("is_visible", "=", False)],
            [("display_name", "ilike", "Secret")],
            [("id", "=", self.conversation.id)],
            [("id", "=", self.conversation_private.id)],
            ["|", ("subject", "ilike", "Secret"), ("body", "ilike", "4711")],
            [("owner_ids", "=", self.user_owner.id), ("subject", "ilike", "Shared")],
        ]

    def probes(self, user):
        """``{probe: answer text}`` of everything a user may ask about conversations."""
        self.login(user)
        out = {}
        out["web_search_read"] = self.answer(C, "web_search_read", [], SPEC)
        ids = [self.conversation.id, self.conversation_later.id, self.conversation_private.id]
        for order in ORDERS:
            out[f"search_read order={order}"] = self.answer(
                C, "search_read", [], ["id", "subject", "last_date"], order=order
            )
            out[f"web_search_read order={order} limit=1"] = self.answer(
                C, "web_search_read", [], {"subject": {}}, order=order, limit=1
            )
        for domain in self.domains():
            out[f"search {domain}"] = self.answer(C, "search", domain)
            out[f"search_count {domain}"] = self.answer(C, "search_count", domain)
        for groupby in GROUPBYS:
            out[f"read_group {groupby}"] = self.answer(
                C,
                "read_group",
                [],
                ["message_count:sum", "last_date:max"],
                [groupby],
                lazy=False,
            )
            out[f"web_read_group {groupby}"] = self.answer(
                C, "web_read_group", [], ["message_count:sum"], [groupby]
            )
        out["read_group owner_ids,last_date:day"] = self.answer(
            C, "read_group", [], ["message_count:sum"], ["owner_ids", "last_date:day"], lazy=False
        )
        out["read_group total"] = self.answer(
            C, "read_group", [], ["message_count:sum", "last_date:max"], []
        )
        for name in ("", "Secret", "Shared", "layoffs"):
            out[f"name_search {name}"] = self.answer(C, "name_search", name)
        out["export_data"] = self.answer(
            C,
            "export_data",
            ids,
            [
                "subject",
                "participants",
                "message_count",
                "last_date",
                "last_direction",
                "owner_ids/name",
                "lead_ids/name",
                "partner_ids/name",
                "message_ids/subject",
                "cards_html",
            ],
        )
        out["read visible"] = self.answer(
            C,
            "read",
            [self.conversation.id, self.conversation_later.id],
            ["subject", "participants", "message_count", "last_date", "owner_ids", "partner_ids"],
        )
        out["read private"] = self.answer(C, "read", [self.conversation_private.id], ["subject"])
        out["onchange private"] = self.answer(
            C, "onchange", [self.conversation_private.id], {}, [], {"subject": {}, "cards_html": {}}
        )
        # through the emails and the records
        out["messages by conversation"] = self.answer(
            "crm.gmail.message",
            "search_read",
            [],
            ["subject", "conversation_id", "has_attachments"],
            order="conversation_id, id",
        )
        out["message's conversation"] = self.answer(
            "crm.gmail.message",
            "web_read",
            [self.shared.id, self.later.id],
            {
                "conversation_id": {
                    "fields": {
                        k: {}
                        for k in (
                            "display_name",
                            "subject",
                            "message_count",
                            "last_date",
                            "participants",
                            "has_attachments",
                        )
                    }
                }
            },
        )
        out["messages exported with their conversation"] = self.answer(
            "crm.gmail.message",
            "export_data",
            (self.shared | self.later).ids,
            [
                "subject",
                "conversation_id/subject",
                "conversation_id/message_count",
                "conversation_id/participants",
                "conversation_id/message_ids/subject",
                "conversation_id/owner_ids/name",
            ],
        )
        out["messages grouped by conversation"] = self.answer(
            "crm.gmail.message",
            "read_group",
            [],
            ["has_attachments:count"],
            ["conversation_id"],
            orderby="conversation_id",
        )
        for groupby, orderby in (
            ("last_date:day", "last_date:day desc"),
            ("owner_ids", "message_count:sum desc"),
            ("subject", "last_date:max desc"),
        ):
            out[f"web_read_group {groupby} by {orderby}"] = self.answer(
                C,
                "web_read_group",
                [],
                ["message_count:sum", "last_date:max"],
                [groupby],
                orderby=orderby,
            )
        ordered = {
            "gmail_conversation_ids": {
                "fields": {"subject": {}, "last_date": {}},
                "order": "last_date asc, id",
                "limit": 1,
            }
        }
        out["deal's first conversation"] = self.answer(
            "crm.lead", "web_read", self.deal.ids, ordered
        )
        # the deal's form, its address changed (not saved) to the private Cc's
        out["deal onchange to Dana"] = self.answer(
            "crm.lead",
            "onchange",
            self.deal.ids,
            {"email_from": PRIVATE_CC},
            ["email_from"],
            LINKED_SPEC,
        )
        # a new record whose relation points at a hidden conversation (a command the
        # client may send); for the emails themselves see test_new_conversation_onchange
        out["new lead holding a hidden conversation"] = self.answer(
            "crm.lead",
            "onchange",
            [],
            {"name": "x", "gmail_conversation_ids": [[6, 0, [self.conversation_private.id]]]},
            ["gmail_conversation_ids"],
            {
                "gmail_conversation_ids": {
                    "fields": {"display_name": {}, "subject": {}, "cards_html": {}}
                }
            },
        )
        for model, records in (
            ("crm.lead", self.deal | self.lead_dana | self.lead_insider),
            ("res.partner", self.contact | self.contact_other | self.partner_insider),
        ):
            out[f"{model} Emails page"] = self.answer(model, "web_read", records.ids, LINKED_SPEC)
        for conversation in (self.conversation, self.conversation_private):
            out[f"activity on {conversation.id}"] = self.answer(
                "mail.activity",
                "onchange",
                [],
                {"res_model": C, "res_id": conversation.id},
                ["res_id"],
                {"res_name": {}},
            )
        return out

    # ------------------------------------------------------------ differential
    def test_no_answer_depends_on_hidden_mail(self):
        """Each probe's answer, before and after the owner's private emails go: the same
        for everybody but the owner, for whom it differs (the control)."""
        with _server_errors() as errors:
            before = {role: self.probes(user) for role, user in self.viewers.items()}
            (self.private | self.shared_copy | self.private_only).sudo().unlink()
            self.env.flush_all()
            self.env.invalidate_all()
            after = {role: self.probes(user) for role, user in self.viewers.items()}
        self.assertFalse(errors, "\n".join(f"{r.name}: {r.getMessage()}" for r in errors)[:3000])
        changed_for_owner = [p for p in before["owner"] if before["owner"][p] != after["owner"][p]]
        # the control: these answers do show the owner's private mail
        for probe in (
            "web_search_read",
            "search_read order=last_date",
            "search_count [('subject', 'ilike', 'Secret')]",
            "read_group owner_ids",
            "read_group partner_ids",
            "export_data",
            "crm.lead Emails page",
            "res.partner Emails page",
        ):
            self.assertIn(probe, changed_for_owner)
        for role in ("colleague", "admin", "noseat", "portal"):
            for probe, answer in before[role].items():
                with self.subTest(role=role, probe=probe):
                    self.assertEqual(answer, after[role][probe], "depends on hidden mail")
        # the probes reached something for the colleague and the admin
        for role in ("colleague", "admin"):
            self.assertIn(SHARED_SUBJECT, before[role]["web_search_read"])
            self.assertIn(LATER_SUBJECT, before[role]["web_search_read"])

    def test_no_private_text_in_any_answer(self):
        secrets = [
            PRIVATE_SUBJECT,
            "4711",
            PRIVATE_CC,
            PRIVATE_CC_NAME,
            PRIVATE_FILE,
            PRIVATE_IMAGE,
            PRIVATE_MID,
            PRIVATE_ONLY_SUBJECT,
            *(f"/web/content/{a.id}" for a in self.private_files),
            *(f"/web/image/{a.id}" for a in self.private_files if a.mimetype == "image/png"),
        ]
        with _server_errors() as errors:
            texts = {
                role: "\n".join(self.probes(user).values()) for role, user in self.viewers.items()
            }
        self.assertFalse(errors, "\n".join(r.getMessage() for r in errors)[:3000])
        for secret in secrets:
            with self.subTest(secret=secret):
                self.assertIn(secret, texts["owner"], "the control")
                for role in ("colleague", "admin", "noseat", "portal"):
                    self.assertNotIn(secret, texts[role], role)

    def test_bcc_is_the_senders_business_only(self):
        """The colleague Bcc'd an insider on his shared email: the owner and the admin,
        who read that email, neither see nor find nor group by the Bcc."""
        bcc_domains = [
            [("participants", "ilike", "insider")],
            [("participants", "=ilike", BCC)],
            [("participants", "ilike", BCC_NAME)],
            [("partner_ids", "in", [self.partner_insider.id])],
            [("lead_ids", "in", [self.lead_insider.id])],
        ]
        for role, user, may_see in (
            ("colleague", self.user_colleague, True),
            ("owner", self.user_owner, False),
            ("admin", self.user_admin, False),
        ):
            with self.subTest(role=role):
                probes = self.probes(user)
                text = "\n".join(probes.values())
                for secret in (BCC, BCC_NAME, "Lead Insider"):
                    self.assertEqual(secret in text, may_see, secret)
                for domain in bcc_domains:
                    found, _error = self.rpc(C, "search", domain)
                    self.assertEqual(found, [self.conversation.id] if may_see else [], domain)
                for groupby, record in (
                    ("partner_ids", self.partner_insider),
                    ("lead_ids", self.lead_insider),
                ):
                    groups, _error = self.rpc(C, "read_group", [], ["__count"], [groupby])
                    keys = {g[groupby][0] for g in groups if g[groupby]}
                    self.assertEqual(record.id in keys, may_see, groupby)

    def test_new_conversation_onchange_with_hidden_emails(self):
        """A new conversation whose ``message_ids`` the caller sets to hidden emails: the
        onchange reads them as the caller (refused), its own values stay empty."""
        spec = {
            "message_ids": {"fields": {"display_name": {}, "subject": {}}},
            "subject": {},
            "cards_html": {},
            "message_count": {},
        }
        hidden = [self.private.id, self.private_only.id]
        for role, user, may_see in (
            ("owner", self.user_owner, True),
            ("colleague", self.user_colleague, False),
            ("admin", self.user_admin, False),
            ("noseat", self.user_noseat, False),
        ):
            with self.subTest(role=role):
                self.login(user)
                with _server_errors() as errors:
                    result, error = self.rpc(
                        C, "onchange", [], {"message_ids": [[6, 0, hidden]]}, ["message_ids"], spec
                    )
                self.assertFalse(errors)
                text = json.dumps([result, error])
                for secret in (PRIVATE_SUBJECT, PRIVATE_ONLY_SUBJECT, "4711"):
                    self.assertNotIn(secret, text)
                if may_see:  # the control: the same call is fine for the owner
                    self.assertIsNone(error)
                    self.assertIn("value", result)
                else:
                    self.assertIn("AccessError", error[0])

    # ------------------------------------------------------------ attachments
    def test_attachment_urls(self):
        def fetch(url):
            response = self.url_open(url, allow_redirects=False)
            return response.status_code, response.content

        urls = {}
        for files in (self.private_files, self.shared_files, self.copy_files):
            for att in files:
                urls[att] = [f"/web/content/{att.id}", f"/web/content/{att.id}?download=true"]
                if att.mimetype.startswith("image/"):
                    urls[att] += [f"/web/image/{att.id}", f"/web/image/{att.id}/96x96"]
        may_read = {
            "owner": set((self.private_files | self.shared_files | self.copy_files).ids),
            "colleague": set(self.shared_files.ids),
            "admin": set(self.shared_files.ids),
            "noseat": set(),
            "portal": set(),
        }
        # what the owner is served (the control, and what nobody else may get)
        self.login(self.user_owner)
        served = {url: fetch(url)[1] for att_urls in urls.values() for url in att_urls}
        self.assertIn(
            PRIVATE_CONTENT,
            served[
                f"/web/content/{self.private_files.filtered(lambda a: a.name == PRIVATE_FILE).id}"
            ],
        )
        for role, user in self.viewers.items():
            self.login(user)
            for att, att_urls in urls.items():
                for url in att_urls:
                    with self.subTest(role=role, url=url):
                        status, content = fetch(url)
                        if att.id in may_read[role]:
                            self.assertEqual(status, 200)
                        else:
                            # refused, or Odoo's placeholder image: never the file
                            self.assertNotIn(PRIVATE_CONTENT, content)
                            self.assertNotIn(SHARED_CONTENT, content)
                            self.assertNotEqual(content, PNG)
                            if status == 200:
                                self.assertIn("/web/image/", url, "only images get a placeholder")
                                self.assertNotEqual(content, served.get(url), url)
            # every attachment URL the cards show this user is one they may open
            result, _error = self.rpc(C, "web_read", [self.conversation.id], {"cards_html": {}})
            if not result:
                continue
            for att_id in set(
                map(int, re.findall(r"/web/(?:content|image)/(\d+)", result[0]["cards_html"] or ""))
            ):
                with self.subTest(role=role, card_attachment=att_id):
                    self.assertIn(att_id, may_read[role])
                    self.assertEqual(fetch(f"/web/content/{att_id}")[0], 200)

    # ------------------------------------------------------------ the key table
    def test_conversation_keys_are_unreadable(self):
        Key = self.env["crm.gmail.conversation.key"].sudo()
        key = Key.search([("key", "=", PRIVATE_MID)])
        self.assertEqual(len(key), 1)
        self.assertEqual(key.key, PRIVATE_MID, "the control: the probe reaches it")
        for role, user in self.viewers.items():
            with self.subTest(role=role):
                self.login(user)
                for method, args, kwargs in (
                    ("read", [key.ids, ["key"]], {}),
                    ("web_read", [key.ids, {"key": {}, "display_name": {}}], {}),
                    ("search_read", [[], ["key"]], {}),
                    ("search_count", [[("key", "=", PRIVATE_MID)]], {}),
                    ("search", [[("key", "ilike", "private")]], {}),
                    ("name_search", ["private"], {}),
                    ("read_group", [[], ["__count"], ["conversation_id"]], {}),
                    ("export_data", [key.ids, ["key", "conversation_id/id"]], {}),
                ):
                    result, error = self.rpc("crm.gmail.conversation.key", method, *args, **kwargs)
                    self.assertIsNone(result, method)
                    # AccessError; a portal user's export: "not allowed to export" first
                    self.assertRegex(error[0], r"AccessError|UserError", method)
                    self.assertNotIn(PRIVATE_MID, str(error), method)
                # names computed as superuser: a new activity, the composer
                text = self.answer(
                    "mail.activity",
                    "onchange",
                    [],
                    {"res_model": "crm.gmail.conversation.key", "res_id": key.id},
                    ["res_id"],
                    {"res_name": {}},
                )
                self.assertNotIn(PRIVATE_MID, text, "activity res_name")
                text = self.answer(
                    "mail.compose.message",
                    "onchange",
                    [],
                    {
                        "model": "crm.gmail.conversation.key",
                        "res_ids": f"[{key.id}]",
                        "composition_mode": "comment",
                    },
                    ["res_ids"],
                    {"record_name": {}, "subject": {}},
                )
                self.assertNotIn(PRIVATE_MID, text, "composer record_name")

    # ------------------------------------------------------------ sub-domains and superuser
    def test_owner_sub_domain_is_no_superuser_oracle(self):
        """The emails behind ``owner_ids`` and the other search methods are searched as
        superuser (the real user's ``is_accessible``): a sub-domain on the owner must
        still run with the caller's rights, or it reads the stored mailbox passwords of
        every user (``NO_ACCESS``) through the company. (Passes: the ORM resolves an
        ``any`` on a many2many as the caller before calling the search method.)"""
        path = "company_id.user_ids.{}"
        for role, user in (("colleague", self.user_colleague), ("admin", self.user_admin)):
            with self.subTest(role=role):
                self.login(user)

                def count(field, operator, value, fname="owner_ids"):
                    domain = [(fname, "any", [(path.format(field), operator, value)])]
                    return self.rpc(C, "search_count", domain)

                # the control: through a readable field the probe does answer
                self.assertEqual(count("login", "=", "gs_owner"), (2, None))
                self.assertEqual(count("login", "=", "nobody"), (0, None))
                # the secret: a right and a wrong guess are not told apart
                for field in (
                    "gmail_mailbox_ids.password_secret",
                    "gmail_mailbox_ids.oauth_token_secret",
                ):
                    right = count(field, "=like", "s3cret-owner")
                    wrong = count(field, "=like", "wrong-guess")
                    self.assertEqual((right[0], bool(right[1])), (wrong[0], bool(wrong[1])), field)
                    self.assertIsNone(right[0], "refused")
                    # the same in dotted form
                    result, error = self.rpc(
                        C, "search_count", [("owner_ids." + path.format(field), "=like", "s%")]
                    )
                    self.assertIsNone(result)
                    self.assertIn("AccessError", error[0])
                # the emails' own sub-domains on leads and contacts: as the caller too
                for fname in ("lead_ids", "partner_ids"):
                    result, error = self.rpc(C, "search_count", [(fname, "any", [("id", "!=", 0)])])
                    self.assertIsNone(error, fname)

    # ------------------------------------------------------------ crafted values
    def test_crafted_domains_give_no_server_error(self):
        """Odd values for the conversation's own search methods: a clean answer or a
        user error, never a SQL error or a traceback (an ERROR line in the log)."""
        domains = [
            [("lead_ids", "in", ["abc"])],
            [("lead_ids", "=", "Acme")],
            [("partner_ids", "=", True)],
            [("partner_ids", "in", [None])],
            [("lead_ids", "in", [])],
            [("owner_ids", "in", [])],
            [("last_direction", "=", True)],
            [("last_direction", "=", 5)],
            [("last_direction", "in", [1])],
            [("last_direction", "in", [])],
            [("last_direction", "=", False)],
            [("subject", "in", [])],
            [("subject", "=", "")],
            [("participants", "=", False)],
            [("participants", "ilike", "")],
            [("participants", "ilike", "%")],
            [("body", "=", False)],
            [("body", "ilike", "\\")],
            [("is_mine", "=", 1)],
            [("is_visible", "in", [True])],
            [("direction", "in", [])],
            [("has_attachments", "!=", True)],
            [("display_name", "=", False)],
            [("lead_ids", "any", [("name", "ilike", "Deal")])],
            [("partner_ids", "not any", [("name", "ilike", "Chris")])],
            [("owner_ids", "not in", [self.user_owner.id])],
        ]
        problems = []
        self.login(self.user_owner)
        for domain in domains:
            with _server_errors() as errors:
                result, error = self.rpc(C, "search_count", domain)
            name = (error or ("",))[0] or ""
            if errors or (error and "UserError" not in name and "ValidationError" not in name):
                problems.append(f"{domain}: {error} {[r.getMessage()[:120] for r in errors]}")
        self.assertFalse(problems, "\n".join(problems))

    def test_unsearchable_fields_log_no_error(self):
        """The Emails list's own fields in a domain (``message_ids``, the columns' date and
        count, a record's conversations): today a silently ignored condition (every
        record matches) plus an ERROR line from ``odoo.osv.expression`` for every call,
        reachable by any employee. (``gmail_conversation_count`` and
        ``gmail_empty_state`` behave the same, like the older ``gmail_message_count``:
        Odoo's generic behaviour for a computed field without a search method.)"""
        problems = []
        self.login(self.user_owner)
        for domain in (
            [("message_ids", "in", [self.private.id])],
            [("message_ids.subject", "ilike", "x")],
            [("last_date", ">=", "2024-05-10 00:00:00")],
            [("message_count", ">", 1)],
            ("crm.lead", [("gmail_conversation_ids", "in", [self.conversation.id])]),
            ("res.partner", [("gmail_conversation_ids", "in", [self.conversation.id])]),
        ):
            model, domain = domain if isinstance(domain, tuple) else (C, domain)
            with _server_errors() as errors:
                result, error = self.rpc(model, "search_count", domain)
            if errors:
                problems.append(f"{domain} -> {result} {error} {[r.getMessage() for r in errors]}")
        self.assertFalse(problems, "\n".join(problems))

    def test_search_view_text_search_on_leads_and_contacts(self):
        """Typing a name in the search view's "Lead / deal" or "Contact" field, or a custom
        filter "is set", sends ``ilike`` / ``!=``: the owner (who reads the emails) must
        get the conversation, not an error."""
        self.login(self.user_owner)
        for domain in (
            [("lead_ids", "ilike", "Deal with Acme")],
            [("partner_ids", "ilike", PRIVATE_CC_NAME)],
            [("lead_ids", "!=", False)],
        ):
            with self.subTest(domain=domain):
                with _server_errors() as errors:
                    found, error = self.rpc(C, "search", domain)
                self.assertFalse(errors)
                self.assertIsNone(error)
                self.assertIn(self.conversation.id, found)

    # ------------------------------------------------------------ functional
    def test_share_note_reads(self):
        """The form shows ``share_note`` to the owner of the emails."""
        for role, user, expected in (
            ("owner", self.user_owner, "Private mailbox"),
            ("colleague", self.user_colleague, "Shared"),
        ):
            with self.subTest(role=role):
                self.login(user)
                with _server_errors() as errors:
                    result, error = self.rpc(
                        C, "web_read", [self.conversation.id], {"share_note": {}}
                    )
                self.assertFalse(errors, [r.getMessage() for r in errors])
                self.assertIsNone(error)
                self.assertIn(expected, result[0]["share_note"] or "")

    def test_grouped_contacts_are_the_contacts_shown(self):
        """Grouping by contact gives the contacts the list shows (colleagues are no
        contact, see crm.gmail.message._gmail_links)."""
        self.login(self.user_owner)
        rows, _error = self.rpc(C, "search_read", [], ["partner_ids", "lead_ids"])
        for fname in ("partner_ids", "lead_ids"):
            with self.subTest(groupby=fname):
                shown = {pid for row in rows for pid in row[fname]}
                groups, _error = self.rpc(C, "read_group", [], ["__count"], [fname])
                grouped = {g[fname][0] for g in groups if g[fname]}
                self.assertTrue(shown, "the control: there are some")
                self.assertEqual(grouped, shown)
                for record_id in grouped:
                    found, _error = self.rpc(C, "search", [(fname, "in", [record_id])])
                    shown_on = {row["id"] for row in rows if record_id in row[fname]}
                    self.assertEqual(set(found), shown_on)

    def test_group_domains_select_their_groups(self):
        """The list groups by the values it shows (last date, subject, count, owner,
        lead, contact); opening a group searches its ``__domain``: the group's own
        conversations, without an ERROR line. Today a date or count group's domain is
        an unsearchable field: ignored (every conversation shows) and logged as ERROR."""
        self.login(self.user_owner)
        problems = []
        for groupby in GROUPBYS:
            groups, error = self.rpc(C, "read_group", [], ["__count"], [groupby], lazy=False)
            self.assertIsNone(error, groupby)
            self.assertTrue(groups, groupby)
            for group in groups:
                with _server_errors() as errors:
                    found, error = self.rpc(C, "search_count", group["__domain"])
                if errors or error or found != group["__count"]:
                    problems.append(
                        f"{groupby} {group['__domain']}: {found} of {group['__count']} "
                        f"{error or ''} {[r.getMessage() for r in errors]}"
                    )
        self.assertFalse(problems, "\n".join(problems))

    def test_empty_states(self):
        for role, user, state in (
            ("noseat", self.user_noseat, "no_seat"),
            ("colleague", self.user_colleague, False),
            ("owner", self.user_owner, False),
        ):
            with self.subTest(role=role):
                self.login(user)
                result, error = self.rpc("crm.lead", "web_read", self.deal.ids, LINKED_SPEC)
                self.assertIsNone(error)
                self.assertEqual(result[0]["gmail_empty_state"], state)
                self.assertEqual(bool(result[0]["gmail_conversation_ids"]), state is False)
        # the colleague's Dana lead: its only email is private: like a lead without mail
        self.login(self.user_colleague)
        result, _error = self.rpc("crm.lead", "web_read", self.lead_dana.ids, LINKED_SPEC)
        self.assertEqual(result[0]["gmail_empty_state"], "no_email")
        self.assertEqual(result[0]["gmail_conversation_count"], 0)
        self.login(self.user_owner)
        result, _error = self.rpc("crm.lead", "web_read", self.lead_dana.ids, LINKED_SPEC)
        self.assertEqual(result[0]["gmail_conversation_count"], 1)  # the control


@tagged("post_install", "-at_install")
class TestConversationIdentityLeaks(GmailSyncCommon):
    """The conversations themselves. Known limit (README, Known limits): conversations are
    one identity for everybody, so a hidden email that is the only link between two
    visible ones joins them for a colleague too; nothing of the hidden email shows."""

    def test_a_hidden_email_that_links_two_visible_ones_shows_nothing_of_itself(self):
        Conversation = self.env["crm.gmail.conversation"]
        root = make_raw(
            "buyer@acme.test", "carl@ourco.test", "Offer", message_id="<j-a@acme>", date=day(5, 1)
        )
        # the customer's answer to a reply the colleague never saw (it names only that one)
        answer = threaded(
            make_raw(
                "buyer@acme.test",
                "carl@ourco.test, olivia@ourco.test",
                "Re: Re: Offer (answer)",
                message_id="<j-c@acme>",
                date=day(5, 3),
            ),
            "<j-b@ourco>",
        )
        self.store(self.mailbox_colleague, [root, answer])
        self.deal.with_user(self.user_colleague).gmail_share_emails = True
        theirs = Conversation.with_user(self.user_colleague)
        self.assertEqual(theirs.search_count([]), 2)
        deal = self.deal.with_user(self.user_colleague)
        self.assertEqual(deal.gmail_conversation_count, 2)
        before = theirs.search([]).ids
        # the owner's private reply, naming the root: it links the two
        reply = threaded(
            make_raw(
                "olivia@ourco.test",
                "buyer@acme.test",
                "Re: Offer (private)",
                message_id="<j-b@ourco>",
                date=day(5, 2),
            ),
            "<j-a@acme>",
            ["<j-a@acme>"],
        )
        self.store(self.mailbox_owner, [reply])
        self.env.invalidate_all()
        # the control: the owner reads all three, one conversation
        mine = Conversation.with_user(self.user_owner).search([])
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine.message_count, 3)
        # the colleague reads the same two emails as before, and nothing of the third
        joined = theirs.search([])
        self.assertEqual(len(joined), 1)
        self.assertIn(joined.id, before)
        self.assertEqual(joined.message_count, 2)
        self.assertEqual(len(joined.message_ids), 2)
        self.assertEqual(str(joined.last_date), "2024-05-03 09:00:00")
        self.assertEqual(joined.subject, "Offer")
        self.assertNotIn("(private)", joined.cards_html)
        self.assertNotIn("j-b@ourco", str(joined.message_ids.mapped("message_id_header")))
        deal.invalidate_recordset()
        self.assertEqual(deal.gmail_conversation_count, 1)
