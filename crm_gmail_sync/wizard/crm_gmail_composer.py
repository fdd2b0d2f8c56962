"""The composer: a new email, a reply or a reply-all, sent from the user's own mailbox.

What it is
----------
A transient form opened from a lead's, deal's or contact's Emails page ("Send email":
To is the record's address), from the Emails tab ("Compose") and from any email the user
can read ("Reply", "Reply all": also a colleague's shared one, answered from the user's
own mailbox). It never sends from another user's mailbox.

How it works
------------
Recipients, subject and the quoted original of a reply come from the engine's reply rules
(``engine/outgoing.py``); a ``mail.template`` of the record's model fills subject and body.
"Send" checks the addresses and Gmail's limits in the user's words, then queues the email
(``crm.gmail.message._gmail_queue``): it shows at once on its records and conversation,
and goes out within a minute unless undone.
"""

import email.utils

from markupsafe import Markup
from odoo import api, fields, models
from odoo.exceptions import UserError

from ..engine import normalize_email, parse_addresses
from ..engine.outgoing import reply_recipients, reply_subject
from ..engine.types import Address


class CrmGmailComposer(models.TransientModel):
    _name = "crm.gmail.composer"
    _description = "Write an email from your mailbox"

    # ------------------------------------------------------------ fields
    # shown only: sending always takes the current user's own mailbox (_gmail_user_mailbox)
    mailbox_id = fields.Many2one(
        "crm.gmail.mailbox",
        string="From",
        default=lambda self: self._gmail_user_mailbox(),
        readonly=True,
    )
    res_model = fields.Char(string="Record model", readonly=True)
    res_id = fields.Integer(string="Record", readonly=True)
    parent_id = fields.Many2one("crm.gmail.message", string="In reply to", readonly=True)
    reply_mode = fields.Selection(
        [("new", "New email"), ("reply", "Reply"), ("reply_all", "Reply all")],
        default="new",
        required=True,
        readonly=True,
    )
    email_to = fields.Char(string="To")
    email_cc = fields.Char(string="Cc")
    email_bcc = fields.Char(string="Bcc")
    subject = fields.Char()
    body = fields.Html(sanitize_style=True)
    attachment_ids = fields.Many2many("ir.attachment", string="Attachments")
    template_id = fields.Many2one(
        "mail.template",
        string="Use template",
        domain="[('model', '=', res_model)]",
    )

    # ------------------------------------------------------------ ORM
    @api.model
    def default_get(self, fields_list):
        vals = super().default_get(fields_list)
        parent = self.env["crm.gmail.message"].browse(vals.get("parent_id") or [])
        if parent:
            vals.update(self._gmail_reply_vals(parent, vals.get("reply_mode") or "reply"))
        elif vals.get("res_model") in ("crm.lead", "res.partner") and vals.get("res_id"):
            record = self.env[vals["res_model"]].browse(vals["res_id"])
            record.check_access("read")
            vals.setdefault("email_to", self._gmail_record_address(record))
        signature = self.env.user.signature
        if signature and "body" in fields_list and not parent:
            vals.setdefault("body", Markup("<p><br></p><div>%s</div>") % signature)
        return vals

    @api.onchange("template_id")
    def _onchange_template_id(self):
        if not self.template_id or not self.res_id:
            return
        rendered = self.template_id._generate_template([self.res_id], ["subject", "body_html"])
        values = rendered.get(self.res_id, {})
        if values.get("subject"):
            self.subject = values["subject"]
        if values.get("body_html"):
            self.body = values["body_html"]

    # ------------------------------------------------------------ actions
    def action_send(self):
        self.ensure_one()
        user = self.env.user
        if not user._crm_gmail_has_seat():
            raise UserError(self.env._("You need a Mail add-on seat to send emails from Odoo."))
        mailbox = self._gmail_user_mailbox()  # never another user's, whatever the form says
        if not mailbox:
            raise UserError(
                self.env._("Connect your mailbox first: emails go out through your own Gmail.")
            )
        to = self._gmail_parse("email_to")
        cc = self._gmail_parse("email_cc")
        bcc = self._gmail_parse("email_bcc")
        parent = self.parent_id
        if parent:
            parent.check_access("read")  # a reply only to what the user can read
        Message = self.env["crm.gmail.message"].sudo()
        mail = Message._gmail_outgoing(
            mailbox, to, cc, bcc, self.subject, self.body, self.attachment_ids, parent.sudo()
        )
        message = Message._gmail_queue(mailbox, mail)
        return message.with_env(self.env).action_open_conversation()

    @api.model
    def _gmail_action_from(self, message):
        """A composer with the recipients, subject and text of ``message`` (undone)."""
        roles = {}
        for address in message.address_ids:
            roles.setdefault(address.role, []).append(address.email)
        parent = (
            self.env["crm.gmail.message"]
            .sudo()
            .search(
                [
                    ("message_id_header", "=", message.in_reply_to),
                    ("message_id_header", "!=", False),
                ],
                limit=1,
            )
        )
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Write an email"),
            "res_model": self._name,
            "view_mode": "form",
            "target": "new",
            "context": {
                "default_email_to": ", ".join(roles.get("to", [])),
                "default_email_cc": ", ".join(roles.get("cc", [])),
                "default_email_bcc": ", ".join(roles.get("bcc", [])),
                "default_subject": message.subject or "",
                "default_body": message.body_html or "",
                "default_parent_id": parent.id if parent.sudo(False).has_access("read") else False,
            },
        }

    # ------------------------------------------------------------ business
    @api.model
    def _gmail_user_mailbox(self):
        """The current user's active mailbox (superuser: its secret is read to send)."""
        return (
            self.env["crm.gmail.mailbox"].sudo().search([("user_id", "=", self.env.uid)], limit=1)
        )

    @api.model
    def _gmail_record_address(self, record):
        if record._name == "crm.lead":
            return record.email_from or record.partner_id.email or ""
        return record.email or ""

    @api.model
    def _gmail_own_addresses(self):
        mailbox = (
            self.env["crm.gmail.mailbox"].sudo().search([("user_id", "=", self.env.uid)], limit=1)
        )
        own = {self.env.user.email or ""}
        if mailbox:
            own |= set(mailbox._engine_account().owner_addresses)
        return {normalize_email(a) for a in own if normalize_email(a)}

    @api.model
    def _gmail_reply_vals(self, parent, mode):
        parent.check_access("read")
        email = parent.sudo()
        roles = {}
        for address in email.address_ids:
            if address.role == "bcc":
                continue  # never carried into a reply
            roles.setdefault(address.role, []).append(Address(address.email, address.name or ""))
        sender = parse_addresses(email.email_from or "")
        sender = sender[0] if sender else Address("")
        to, cc = reply_recipients(
            sender,
            parse_addresses(email.email_reply_to or ""),
            parse_addresses(email.email_to or ""),
            parse_addresses(email.email_cc or ""),
            self._gmail_own_addresses(),
            mode == "reply_all",
        )
        date = fields.Datetime.to_string(email.date)
        quote = Markup(
            "<p><br></p><p>%(intro)s</p><blockquote data-o-mail-quote='1'>%(body)s</blockquote>"
        ) % {
            "intro": self.env._(
                "On %(date)s, %(sender)s wrote:", date=date, sender=email.email_from or ""
            ),
            "body": Markup(email.body_html or ""),
        }
        signature = self.env.user.signature
        body = (Markup("<p><br></p><div>%s</div>") % signature if signature else Markup()) + quote
        return {
            "email_to": ", ".join(_format(a) for a in to),
            "email_cc": ", ".join(_format(a) for a in cc),
            "subject": reply_subject(email.subject or ""),
            "body": body,
            "reply_mode": mode,
        }

    def _gmail_parse(self, fname):
        """The addresses of field ``fname``; a clear error for anything not an address."""
        text = (self[fname] or "").replace(";", ",").replace("\n", ",")
        out, bad = [], []
        for name, value in email.utils.getaddresses([text]):
            if not (name or value).strip():
                continue
            key = normalize_email(value)
            if not key:
                bad.append((f"{name} {value}" if name else value).strip())
                continue
            if key not in {a.email for a in out}:
                out.append(Address(key, " ".join(name.split())))
        if bad:
            raise UserError(
                self.env._(
                    "%(field)s: not an email address: %(values)s",
                    field=self._fields[fname].get_description(self.env)["string"],
                    values=", ".join(bad),
                )
            )
        return out


def _format(address):
    if address.name:
        return f'"{address.name}" <{address.email}>'
    return address.email
