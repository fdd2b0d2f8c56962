"""A salesperson's mailbox: which account, which servers, who owns it, who sees its mail.

This file holds the mailbox's configuration only: its fields, constraints and form behaviour.
The other responsibilities of ``crm.gmail.mailbox`` extend it, each in its own file:

- ``crm_gmail_credential.py``: the write-only password / token and the engine's ``Account``;
- ``crm_gmail_scheduler.py``: due times, claiming, time budgets, backoff, run status;
- ``crm_gmail_sink.py``: engine batches into records, the cursor and the counters.
"""

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError

from ..engine import normalize_email
from ..engine.connection import GMAIL_PRESETS
from ..engine.types import PROTOCOL_IMAP, SECURITY_SSL, SECURITY_STARTTLS
from .res_groups import GROUP_SEAT

# Fields that name the server account: another account's UIDs are not the cursor's.
ACCOUNT_FIELDS = ("provider", "host", "login")
CASELESS_FIELDS = {"host", "smtp_host", "login"}


class CrmGmailMailbox(models.Model):
    _name = "crm.gmail.mailbox"
    _description = "Gmail / IMAP mailbox"
    _inherit = ["mail.thread", "mail.activity.mixin", "crm.gmail.restricted.mixin"]
    _order = "active desc, user_id, id desc"
    _rec_name = "email"

    # ------------------------------------------------------------ fields
    user_id = fields.Many2one(
        "res.users",
        string="Owner",
        required=True,
        index=True,
        ondelete="cascade",
        default=lambda self: self.env.user,
        domain=lambda self: [("groups_id", "in", self.env.ref(GROUP_SEAT).ids)],
    )
    active = fields.Boolean(default=True)
    email = fields.Char(string="Email address", required=True)
    provider = fields.Selection(
        [
            ("gmail", "Gmail / Google Workspace"),
            ("imap", "Other IMAP server"),
            ("pop3", "POP3 server"),
        ],
        required=True,
        default="gmail",
    )
    host = fields.Char(string="Server")
    port = fields.Integer()
    security = fields.Selection(
        [(SECURITY_SSL, "SSL/TLS"), (SECURITY_STARTTLS, "STARTTLS")],
        required=True,
        default=SECURITY_SSL,
    )
    login = fields.Char()
    alias_ids = fields.One2many(
        "crm.gmail.mailbox.alias",
        "mailbox_id",
        string="Your other addresses",
        help='Aliases and Gmail "Send mail as" addresses: mail from them is yours (sent), '
        "they never count as a customer and are left out of reply-all. The sync suggests the "
        "From addresses it finds in your Sent folder.",
    )
    ca_file = fields.Char(
        string="CA certificate file",
        groups="base.group_system",
        help="Path of a PEM file with the certificate authority of a self-hosted server.",
    )
    smtp_host = fields.Char(string="SMTP server")
    smtp_port = fields.Integer(string="SMTP port")
    smtp_security = fields.Selection(
        [(SECURITY_SSL, "SSL/TLS"), (SECURITY_STARTTLS, "STARTTLS")],
        string="SMTP security",
        default=SECURITY_SSL,
    )
    visibility = fields.Selection(
        [("private", "Private"), ("shared", "Shared")],
        required=True,
        default="private",
        help="Private: nobody else sees the emails of this mailbox. Shared: others see an "
        'email when you enable "Share my emails" on a lead, contact or deal it is linked to.',
    )
    message_count = fields.Integer(string="Emails", compute="_compute_message_count")

    def init(self):
        # One active mailbox per user, enforced by the database as well.
        self.env.cr.execute(
            """CREATE UNIQUE INDEX IF NOT EXISTS crm_gmail_mailbox_one_active_per_user
                   ON crm_gmail_mailbox (user_id) WHERE active"""
        )

    # ------------------------------------------------------------ compute
    @api.depends_context("uid")  # the emails the reader may read
    def _compute_message_count(self):
        data = self.env["crm.gmail.message"]._read_group(
            [("mailbox_id", "in", self.ids)], ["mailbox_id"], ["__count"]
        )
        counts = {mailbox.id: count for mailbox, count in data}
        for mailbox in self:
            mailbox.message_count = counts.get(mailbox.id, 0)

    @api.model
    def _gmail_neutral_name(self):
        return self.env._("Mailbox (no access)")

    def _gmail_named_for_user(self):
        """Its owner and Settings admins, and whoever reads one of its (shared) emails."""
        named = super()._gmail_named_for_user()
        others = self - named
        messages = self.env["crm.gmail.message"].sudo(False)
        if others and messages.has_access("read"):
            data = messages._read_group([("mailbox_id", "in", others._origin.ids)], ["mailbox_id"])
            shown = {mailbox.id for (mailbox,) in data}
            named |= others.filtered(lambda mailbox: mailbox._origin.id in shown)
        return named

    # ------------------------------------------------------------ constraints
    @api.model
    def _check_free_slot(self, user_ids, exclude=()):
        """One active mailbox per user: checked before the database's unique index is hit."""
        seen = set()
        for user_id in user_ids:
            taken = user_id in seen or self.sudo().search_count(
                [("user_id", "=", user_id), ("active", "=", True), ("id", "not in", list(exclude))]
            )
            seen.add(user_id)
            if taken:
                raise ValidationError(
                    self.env._(
                        "%(user)s already has an active mailbox: archive it before adding "
                        "another one.",
                        user=self.env["res.users"].sudo().browse(user_id).name,
                    )
                )

    @api.constrains("user_id", "active")
    def _check_user_seat(self):
        for mailbox in self.filtered("active"):
            if not mailbox.user_id._has_group(GROUP_SEAT):
                raise ValidationError(
                    self.env._(
                        "%(user)s has no Mail add-on seat: a mailbox can only be configured "
                        "for a user with a seat.",
                        user=mailbox.user_id.name,
                    )
                )

    @api.constrains("email")
    def _check_email(self):
        for mailbox in self:
            if not normalize_email(mailbox.email):
                raise ValidationError(
                    self.env._("%(email)s is not a valid email address.", email=mailbox.email)
                )

    # ------------------------------------------------------------ onchange
    @api.onchange("provider")
    def _onchange_provider(self):
        if self.provider == "gmail":
            preset = GMAIL_PRESETS[PROTOCOL_IMAP]
            smtp = GMAIL_PRESETS["smtp"]
            self.host, self.port, self.security = preset["host"], preset["port"], preset["security"]
            self.smtp_host, self.smtp_port = smtp["host"], smtp["port"]
            self.smtp_security = smtp["security"]
        elif self.provider == "pop3" and (not self.port or self.port in (993, 143)):
            self.port = 995 if self.security == SECURITY_SSL else 110

    @api.onchange("email")
    def _onchange_email(self):
        if self.email and not self.login:
            self.login = self.email.strip()

    # ------------------------------------------------------------ CRUD
    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("provider", "gmail") == "gmail":
                preset = GMAIL_PRESETS[PROTOCOL_IMAP]
                vals.setdefault("host", preset["host"])
                vals.setdefault("port", preset["port"])
                vals.setdefault("smtp_host", GMAIL_PRESETS["smtp"]["host"])
                vals.setdefault("smtp_port", GMAIL_PRESETS["smtp"]["port"])
            if vals.get("email") and not vals.get("login"):
                vals["login"] = vals["email"].strip()
        default_owner = self.env.context.get("default_user_id") or self.env.uid
        owners = [vals.get("user_id") or default_owner for vals in vals_list]
        if not (self.env.su or self.env.user._is_system()) and set(owners) - {self.env.uid}:
            # refused before the checks below, which would tell who has a mailbox
            raise AccessError(self.env._("You can only set up your own mailbox."))
        self.flush_model(["active", "user_id"])
        self._check_free_slot(
            [owner for owner, vals in zip(owners, vals_list) if vals.get("active", True)]
        )
        mailboxes = super(CrmGmailMailbox, self.with_context(mail_create_nolog=True)).create(
            vals_list
        )
        for mailbox in mailboxes.filtered(lambda mailbox: mailbox.visibility != "private"):
            # checked on the created records: defaults (context ones too) are applied
            self._guard_visibility_of(mailbox.user_id.id)
        return mailboxes

    def write(self, vals):
        if vals.get("active") or vals.get("user_id"):
            self.flush_model(["active", "user_id"])
            activating = self if vals.get("active") else self.filtered("active")
            self._check_free_slot(
                [vals.get("user_id") or mailbox.user_id.id for mailbox in activating],
                exclude=activating.ids,
            )
        if "email" in vals:
            self._check_address_kept(vals["email"])
        if "visibility" in vals:
            self._guard_visibility(vals["visibility"])
        handed_over = self.filtered(lambda mailbox: mailbox._changed_fields(vals, {"user_id"}))
        res = super().write(vals)
        if handed_over:
            # Sharing is its owner's choice: the new owner has made none yet.
            handed_over.sudo().write({"visibility": "private"})
            self.env["crm.gmail.message"]._gmail_mark_shared_dirty(mailbox_ids=handed_over.ids)
        return res

    def _guard_visibility(self, visibility):
        """Only the owner makes their mailbox private or shared (not a Settings admin)."""
        for mailbox in self.sudo():
            if mailbox.visibility != visibility:
                self._guard_visibility_of(mailbox.user_id.id)

    @api.model
    def _guard_visibility_of(self, owner_id):
        if self.env.su:
            return  # server code (a handover makes the mailbox private)
        if owner_id != self.env.uid:
            raise UserError(
                self.env._(
                    "Only %(user)s can make their mailbox private or shared: who sees their "
                    "emails is their choice.",
                    user=self.env["res.users"].sudo().browse(owner_id).name,
                )
            )

    def _check_address_kept(self, email):
        """The address of a mailbox with synced mail is not edited: its emails and its
        cursor are the old address's. Switching is archiving it and adding another one,
        so that switching back shows its emails again (and resumes where it stopped)."""
        for mailbox in self:
            if normalize_email(email or "") == normalize_email(mailbox.email or ""):
                continue
            if mailbox.sync_state or self.env["crm.gmail.message"].sudo().search_count(
                [("mailbox_id", "=", mailbox.id)], limit=1
            ):
                raise UserError(
                    self.env._(
                        "%(email)s has synced emails, which stay with this mailbox. To switch "
                        "to another address, archive this mailbox and add a new one; restoring "
                        "this one later shows its emails again.",
                        email=mailbox.email,
                    )
                )

    def _account_changes(self, vals):
        """The mailboxes whose server account ``vals`` changes (server, login, protocol)."""
        return self.filtered(lambda mailbox: mailbox._changed_fields(vals, ACCOUNT_FIELDS))

    def _changed_fields(self, vals, names):
        """The fields among ``names`` whose value ``vals`` changes on this mailbox; texts
        compared without surrounding spaces, host names and logins without case."""
        self.ensure_one()
        changed = set()
        for name in set(names) & set(vals):
            old, new = self._fields[name].convert_to_write(self[name], self), vals[name]
            if isinstance(old, str) or isinstance(new, str):
                old, new = (old or "").strip(), (new or "").strip()
                if name in CASELESS_FIELDS:
                    old, new = old.lower(), new.lower()
            if (old or False) != (new or False):
                changed.add(name)
        return changed

    def unlink(self):
        # The emails go with their mailbox, through the ORM: the database's cascade would
        # leave their attachments behind, and Odoo checks nothing on an attachment whose
        # record is gone (anyone could read it).
        self.env["crm.gmail.message"].sudo().search([("mailbox_id", "in", self.ids)]).unlink()
        return super().unlink()

    # ------------------------------------------------------------ actions
    @api.model
    def action_open_my_mailbox(self):
        mailbox = self.search([("user_id", "=", self.env.uid)], limit=1)
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("My mailbox"),
            "res_model": self._name,
            "view_mode": "form",
            "res_id": mailbox.id,
            "target": "current",
        }

    def _notification(self, message, kind):
        """A notification for the user who clicked, then a reload of the form."""
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "message": message,
                "type": kind,
                "sticky": kind == "danger",
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    def _guard_seat(self):
        for mailbox in self:
            if not mailbox.user_id._has_group(GROUP_SEAT) or (
                self.env.uid != mailbox.user_id.id
                and not self.env.user._is_system()
                and not self.env.su
            ):
                raise AccessError(
                    self.env._(
                        "Only a user with a Mail add-on seat can connect and sync their mailbox."
                    )
                )
