import dataclasses
import json
import logging

import psycopg2
from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.modules import module as odoo_module
from odoo.tools import SQL, plaintext2html

from ..engine import (
    AuthError,
    NetworkError,
    Options,
    SyncError,
    SyncState,
    check_connection,
    normalize_email,
    normalize_set,
    sync_mailbox,
)
from ..engine import errors as engine_errors
from ..engine.connection import GMAIL_PRESETS
from ..engine.types import (
    OUTCOMES,
    PROTOCOL_IMAP,
    PROTOCOL_POP3,
    SECURITY_SSL,
    SECURITY_STARTTLS,
    Account,
)
from .ir_attachment import AttachmentStorageError
from .res_groups import GROUP_SEAT

_logger = logging.getLogger(__name__)

PARAM_SINCE_DAYS = "crm_gmail_sync.since_days"
PARAM_BATCH_SIZE = "crm_gmail_sync.batch_size"
LOCK_NAMESPACE = 0x6D61696C  # "mail": pg advisory lock namespace of mailbox syncs
WARNING_ACTIVITY = "mail.mail_activity_data_warning"
# Fields whose change means "try again": a corrected password resumes fetching.
CONNECTION_FIELDS = {
    "provider",
    "host",
    "port",
    "security",
    "login",
    "password",
    "oauth_token",
    "ca_file",
    "email",
}
# Fields that name the server account: another account's UIDs are not the cursor's.
ACCOUNT_FIELDS = ("provider", "host", "login")
CASELESS_FIELDS = {"host", "smtp_host", "login"}
# What one email's content can make the database or the ORM refuse; the batch is then
# stored one email at a time (see _store_batch). Not OperationalError: lost connections,
# serialisation failures and timeouts are retried with the whole batch on the next run;
# nor OSError or AttachmentStorageError: a filestore that cannot take a file fails the run.
CONTENT_ERRORS = (
    ValueError,  # includes UnicodeError; psycopg2: "cannot contain NUL (0x00) characters"
    TypeError,
    LookupError,
    UserError,  # includes ValidationError
    psycopg2.DataError,
    psycopg2.IntegrityError,
)
# Fields that decide where the secret is sent (the servers) and whose it is (the owner).
SECRET_TARGET_FIELDS = {
    "user_id",
    "provider",
    "host",
    "port",
    "security",
    "ca_file",
    "smtp_host",
    "smtp_port",
    "smtp_security",
}


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
    # The secret is write-only: users set it through password/oauth_token, which read
    # back empty; the stored copy is out of every user's reach (NO_ACCESS: not read,
    # searched, grouped or exported, Settings admins and the owner included) and only
    # the engine reads it, as superuser. See also _secret_moves().
    password = fields.Char(
        compute="_compute_write_only",
        inverse="_inverse_password",
        search="_search_write_only",
        help="The mailbox password; for Gmail an app password. Stored, never shown again.",
    )
    oauth_token = fields.Char(
        string="OAuth2 access token",
        compute="_compute_write_only",
        inverse="_inverse_oauth_token",
        search="_search_write_only",
        help="Stored, never shown again.",
    )
    password_set = fields.Boolean(
        string="Secret stored",
        compute="_compute_password_set",
        help="A password or access token is stored (it is never shown).",
    )
    password_secret = fields.Char(string="Stored password", copy=False, groups=fields.NO_ACCESS)
    oauth_token_secret = fields.Char(
        string="Stored OAuth2 access token", copy=False, groups=fields.NO_ACCESS
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
    state = fields.Selection(
        [("draft", "Not connected"), ("connected", "Connected"), ("error", "Error")],
        required=True,
        default="draft",
        readonly=True,
        copy=False,
    )
    last_error = fields.Text(readonly=True, copy=False)
    last_error_kind = fields.Char(readonly=True, copy=False)
    last_error_date = fields.Datetime(string="Last error on", readonly=True, copy=False)
    last_sync_date = fields.Datetime(string="Last sync", readonly=True, copy=False)
    sync_state = fields.Text(string="Sync cursor", readonly=True, copy=False)
    count_stored = fields.Integer(string="Stored", readonly=True, copy=False)
    count_not_customer = fields.Integer(string="Not customer mail", readonly=True, copy=False)
    count_duplicate = fields.Integer(string="Duplicates", readonly=True, copy=False)
    count_unparseable = fields.Integer(string="Unparseable", readonly=True, copy=False)
    message_count = fields.Integer(string="Emails", compute="_compute_message_count")

    def init(self):
        # One active mailbox per user, enforced by the database as well.
        self.env.cr.execute(
            """CREATE UNIQUE INDEX IF NOT EXISTS crm_gmail_mailbox_one_active_per_user
                   ON crm_gmail_mailbox (user_id) WHERE active"""
        )

    # ------------------------------------------------------------ compute
    @api.depends("password_secret", "oauth_token_secret")
    def _compute_write_only(self):
        self.password = self.oauth_token = False

    def _search_write_only(self, operator, value):
        raise UserError(self.env._("A mailbox's password or token cannot be searched."))

    def _inverse_password(self):
        for mailbox in self:
            mailbox.sudo().password_secret = mailbox.password or False
        self.invalidate_recordset(["password"])  # not even the cache reads it back

    def _inverse_oauth_token(self):
        for mailbox in self:
            mailbox.sudo().oauth_token_secret = mailbox.oauth_token or False
        self.invalidate_recordset(["oauth_token"])

    @api.depends("password_secret", "oauth_token_secret")
    def _compute_password_set(self):
        for mailbox in self:
            secrets = mailbox.sudo()
            mailbox.password_set = bool(secrets.password_secret or secrets.oauth_token_secret)

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
        if CONNECTION_FIELDS & set(vals) and "state" not in vals:
            # New credentials or server: clear the error so the next run retries and
            # resumes from the stored cursor.
            vals = dict(vals, state="draft", last_error=False, last_error_kind=False)
        handed_over = self.filtered(lambda mailbox: mailbox._changed_fields(vals, {"user_id"}))
        moved, cleared = self._secret_moves(vals)
        other_account = self._account_changes(vals) if "sync_state" not in vals else self.browse()
        res = super().write(vals)
        if other_account:
            # Another account's UIDs say nothing about the old cursor's (even where its
            # UIDVALIDITY happens to be the same): read it from its start; what the old
            # account already gave comes back as duplicates.
            other_account.write({"sync_state": False})
        if moved:
            moved.sudo().write(dict.fromkeys(cleared, False))
        if handed_over:
            # Sharing is its owner's choice: the new owner has made none yet.
            handed_over.sudo().write({"visibility": "private"})
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

    def _secret_moves(self, vals):
        """``(mailboxes, secret fields)``: the stored secrets that ``vals`` would send
        where their owner did not choose, to be cleared after the write.

        A secret is only ever sent to the servers its owner set it for: a write by anybody
        but the owner that changes a server field (``SECRET_TARGET_FIELDS``), and any write
        that hands a mailbox to another user, clears every stored secret that the same
        write does not replace with a new, non-empty one (``password: False`` is none).
        Server code running as superuser may change the servers, never the owner.
        """
        cleared = [f"{name}_secret" for name in ("password", "oauth_token") if not vals.get(name)]
        moved = self.browse()
        if not cleared:
            return moved, cleared
        for mailbox in self.sudo():
            changed = mailbox._changed_fields(vals, SECRET_TARGET_FIELDS)
            if "user_id" in changed or (
                changed and mailbox.user_id.id != self.env.uid and not self.env.su
            ):
                moved |= mailbox
        return moved, cleared

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

    def action_test_connection(self):
        self.ensure_one()
        self._check_seat()
        try:
            info = check_connection(self._engine_account())
        except SyncError as exc:
            self._set_error(exc)
            return self._notification(self.last_error, "danger")
        self._set_connected()
        folders = ", ".join(info.get("folders") or [])
        return self._notification(
            self.env._("Connection successful. Folders to sync: %(folders)s", folders=folders),
            "success",
        )

    def action_sync_now(self):
        self.ensure_one()
        self._check_seat()
        mailbox = self.sudo()
        if not mailbox.active:
            raise UserError(self.env._("This mailbox is archived: restore it to sync it."))
        if not mailbox._may_fetch():
            raise UserError(
                self.env._(
                    "%(user)s is deactivated: their mailbox is not synced.",
                    user=mailbox.user_id.name,
                )
            )
        if not mailbox._try_lock():
            return self._notification(
                self.env._(
                    "This mailbox is already being synced (by the scheduled fetch): its new "
                    "emails appear in a moment."
                ),
                "warning",
            )
        try:
            synced = mailbox._sync_one()
        except AttachmentStorageError:
            # the batch's savepoint is rolled back; what was stored before it stays
            _logger.exception("crm_gmail_sync: mailbox %s: storing failed", mailbox.id)
            mailbox._set_storage_failed()
            return self._notification(self.last_error, "danger")
        # A dropped connection leaves the state as it was (the next run retries) but
        # records the error: this run failed all the same.
        if self.state == "error" or (not synced and self.last_error):
            return self._notification(self.last_error, "danger")
        return self._notification(
            self.env._("Sync finished: %(stored)s emails stored so far.", stored=self.count_stored),
            "success",
        )

    def _notification(self, message, kind):
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

    def _check_seat(self):
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

    # ------------------------------------------------------------ engine mapping
    def _engine_account(self):
        self.ensure_one()
        mailbox = self.sudo()
        protocol = PROTOCOL_POP3 if mailbox.provider == "pop3" else PROTOCOL_IMAP
        owner = [mailbox.email, mailbox.login, mailbox.user_id.email]
        owner += mailbox.alias_ids.filtered(lambda alias: alias.state == "confirmed").mapped(
            "email"
        )
        return Account(
            host=(mailbox.host or "").strip(),
            login=(mailbox.login or mailbox.email or "").strip(),
            protocol=protocol,
            port=mailbox.port or None,
            security=mailbox.security or SECURITY_SSL,
            password=mailbox.password_secret or None,
            oauth_token=mailbox.oauth_token_secret or None,
            owner_addresses=tuple(a for a in owner if a),
            ca_file=mailbox.ca_file or None,
            timeout=30.0,
        )

    def _error_text(self, exc):
        """A translated, user-facing text for an engine error (in the owner's language)."""
        env = self.with_context(lang=self.user_id.lang or self.env.lang).env
        texts = {
            engine_errors.AUTH: env._(
                "The server refused the login: check the address, the password (for Gmail "
                "an app password) or the access token."
            ),
            engine_errors.DISABLED: env._(
                "The account does not allow IMAP/POP access: enable it in the mailbox's "
                "settings (Gmail: Settings > Forwarding and POP/IMAP)."
            ),
            engine_errors.TLS: env._(
                "A secure connection could not be established: the server's certificate is "
                "not trusted or does not match the host name."
            ),
            engine_errors.NETWORK: env._(
                "The mail server could not be reached or dropped the connection."
            ),
            engine_errors.PROTOCOL: env._(
                "The mail server answered in a way this mailbox cannot use."
            ),
        }
        text = texts.get(exc.kind, texts[engine_errors.PROTOCOL])
        if exc.server_text:
            text += "\n" + env._("Server said: %(text)s", text=self._redact(exc.server_text))
        return text

    def _redact(self, text):
        """``text`` without this mailbox's secret: a server may repeat what it was sent."""
        mailbox = self.sudo()
        for secret in (mailbox.password_secret, mailbox.oauth_token_secret):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _set_error(self, exc):
        """Record an engine error; tell the owner when the mailbox stops fetching."""
        self.ensure_one()
        stops = isinstance(exc, AuthError)
        vals = {
            "last_error": self._error_text(exc),
            "last_error_kind": exc.kind,
            "last_error_date": fields.Datetime.now(),
        }
        if stops or not isinstance(exc, NetworkError):
            vals["state"] = "error"
        self.sudo().write(vals)
        if stops:
            self._notify_owner_error()

    def _set_connected(self, vals=None):
        """The mailbox works (again): clear its error and close the owner's activity."""
        self.ensure_one()
        mailbox = self.sudo()
        mailbox.write(
            {"state": "connected", "last_error": False, "last_error_kind": False, **(vals or {})}
        )
        mailbox.activity_unlink([WARNING_ACTIVITY], user_id=mailbox.user_id.id)

    def _notify_owner_error(self):
        """Schedule the owner's activity, once: not again while an earlier one is open."""
        mailbox = self.sudo()
        if mailbox.activity_ids.filtered(
            lambda activity: (
                activity.user_id == mailbox.user_id
                and activity.activity_type_id == self.env.ref(WARNING_ACTIVITY)
            )
        ):
            return
        env = mailbox.with_context(lang=mailbox.user_id.lang or self.env.lang).env
        mailbox.with_context(mail_activity_quick_update=True).activity_schedule(
            WARNING_ACTIVITY,
            user_id=mailbox.user_id.id,
            summary=env._("Your mailbox stopped syncing"),
            note=plaintext2html(
                env._(
                    "Fetching %(email)s failed: %(error)s\nEnter the new password (or app "
                    "password) on your mailbox: syncing resumes where it stopped.",
                    email=mailbox.email,
                    error=mailbox.last_error,
                )
            ),
        )

    # ------------------------------------------------------------ sync
    @api.model
    def _owner_domain(self):
        """Mailboxes that may be fetched at all: active, of an active owner with a seat."""
        seat = self.env.ref(GROUP_SEAT)
        return [
            ("active", "=", True),
            ("user_id.active", "=", True),
            ("user_id.groups_id", "in", seat.ids),
        ]

    def _may_fetch(self):
        """Whether this mailbox may be fetched, as the database says now (also in the
        middle of a run, after a commit: another worker may have archived it, deactivated
        its owner or taken the seat; the cached groups of this worker may be stale)."""
        self.ensure_one()
        return bool(self.sudo().search_count([("id", "=", self.id), *self._owner_domain()]))

    @api.model
    def _fetchable_domain(self):
        return [
            *self._owner_domain(),
            ("host", "!=", False),
            "|",
            ("state", "!=", "error"),
            ("last_error_kind", "not in", [engine_errors.AUTH, engine_errors.DISABLED]),
        ]

    @api.model
    def _cron_fetch(self):
        """Fetch every mailbox of an active, licensed user, each in its own transaction."""
        # Odoo's test runner sets current_test; other runners (pytest-odoo on 18.0) do not,
        # so tests also pass the context key.
        in_test = bool(odoo_module.current_test) or self.env.context.get(
            "crm_gmail_sync_no_commit", False
        )

        def commit():
            # The cron entry point commits after every stored batch and every mailbox:
            # one broken mailbox or a crash must not roll back the mail already stored
            # (fetchmail commits per message for the same reason). Tests run in one
            # transaction and must not commit.
            if not in_test:
                self.env.cr.commit()  # pylint: disable=invalid-commit

        mailboxes = self.sudo().search(self._fetchable_domain())
        for mailbox in mailboxes:
            try:
                mailbox._sync_one(commit=commit)
            except Exception:
                _logger.exception("crm_gmail_sync: mailbox %s: unexpected failure", mailbox.id)
                if in_test:
                    raise
                self.env.cr.rollback()  # pylint: disable=invalid-commit
                mailbox._set_storage_failed()
            commit()

    def _set_storage_failed(self):
        """Storing failed (the filestore, the database), not the mail: say so, neutrally;
        the batch was not stored and comes again next time."""
        self.ensure_one()
        self.sudo().write(
            {
                "last_error": self.with_context(lang=self.user_id.lang).env._(
                    "Storing the fetched mail failed; it is fetched again next time. "
                    "Details are in the server log."
                ),
                "last_error_date": fields.Datetime.now(),
            }
        )

    def _sync_one(self, commit=None):
        """Run the engine on this mailbox and store what it yields, batch by batch.

        ``commit`` (cron only) is called after each stored batch and its cursor.
        """
        self.ensure_one()
        mailbox = self.sudo()
        if not mailbox._may_fetch():
            return False
        if not mailbox._try_lock():
            _logger.info("crm_gmail_sync: mailbox %s is already syncing", mailbox.id)
            return False
        return mailbox._sync_locked(commit)

    def _try_lock(self):
        """Keep "Sync now" and the cron from storing the same mailbox at the same time.

        A transaction-level advisory lock: taken again after every commit.
        """
        self.env.cr.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, self.id])
        return self.env.cr.fetchone()[0]

    def _sync_locked(self, commit):
        mailbox = self
        cr = self.env.cr
        account = mailbox._engine_account()
        state = SyncState.from_json(json.loads(mailbox.sync_state or "{}"))
        options = Options(
            since_days=int(self.env["ir.config_parameter"].sudo().get_param(PARAM_SINCE_DAYS, 90)),
            batch_size=int(self.env["ir.config_parameter"].sudo().get_param(PARAM_BATCH_SIZE, 200)),
        )
        owner = normalize_set(account.owner_addresses)
        try:
            for batch in sync_mailbox(
                account, state, mailbox._customer_filter, mailbox._known_keys, options
            ):
                with cr.savepoint():
                    mailbox._store_batch(batch, owner)
                if commit:
                    commit()
                    if not mailbox._try_lock() or not mailbox._may_fetch():
                        return False
        except SyncError as exc:
            _logger.warning(
                "crm_gmail_sync: mailbox %s: %s: %s",
                mailbox.id,
                exc.kind,
                mailbox._redact(exc.message),
            )
            mailbox._set_error(exc)
            return False
        vals = {"last_sync_date": fields.Datetime.now()}
        if mailbox.state != "connected" or mailbox.last_error:
            mailbox._set_connected(vals)
        else:
            mailbox.write(vals)
        return True

    def _customer_filter(self, addresses):
        """The addresses among ``addresses`` that belong to a lead, deal or contact.

        One query per header batch. Partners of internal users and of companies are
        colleagues, not customers.
        """
        if not addresses:
            return set()
        keys = list(addresses)
        self.env["crm.lead"].flush_model(["gmail_email_key", "active"])
        self.env["res.partner"].flush_model(["gmail_email_key", "active"])
        rows = self.env.execute_query(
            SQL(
                """SELECT l.gmail_email_key FROM crm_lead l
                    WHERE l.gmail_email_key = ANY(%(keys)s) AND l.active
                   UNION
                   SELECT p.gmail_email_key FROM res_partner p
                    WHERE p.gmail_email_key = ANY(%(keys)s) AND p.active
                      AND NOT EXISTS (SELECT 1 FROM res_users u
                                       WHERE u.partner_id = p.id AND NOT u.share)
                      AND NOT EXISTS (SELECT 1 FROM res_company c WHERE c.partner_id = p.id)""",
                keys=keys,
            )
        )
        return {row[0] for row in rows}

    def _known_keys(self, keys):
        if not keys:
            return set()
        self.env["crm.gmail.message"].flush_model(["dedupe_key", "mailbox_id"])
        rows = self.env.execute_query(
            SQL(
                """SELECT dedupe_key FROM crm_gmail_message
                    WHERE mailbox_id = %s AND dedupe_key = ANY(%s)""",
                self.id,
                list(keys),
            )
        )
        return {row[0] for row in rows}

    def _store_batch(self, batch, owner):
        """Create the batch's emails, then save the cursor and the counters.

        An email that the database refuses (say, a value PostgreSQL cannot hold) must not
        block its mailbox for ever: the batch is then stored one email at a time, and an
        email that still fails is counted as unparseable and passed, like mail the engine
        cannot parse. Connection, concurrency and storage errors (an attachment's file
        that cannot be written) are not content errors: they propagate, nothing is saved,
        and the next run fetches the batch again.
        """
        self.ensure_one()
        messages_model = self.env["crm.gmail.message"].sudo()
        outcomes = batch.outcomes
        try:
            with self.env.cr.savepoint():
                messages = messages_model._create_from_engine(self, batch.messages, owner)
        except CONTENT_ERRORS as exc:
            _logger.warning(
                "crm_gmail_sync: mailbox %s: storing a batch of %s emails failed (%s); "
                "storing them one by one",
                self.id,
                len(batch.messages),
                type(exc).__name__,
            )
            messages, outcomes = self._store_one_by_one(batch, owner)
        self._save_cursor(batch.state, outcomes)
        self.env["crm.gmail.mailbox.alias"]._suggest(self, batch.sent_from - owner)
        return messages

    def _store_one_by_one(self, batch, owner):
        """``(stored emails, outcomes)``: each email in its own savepoint."""
        messages = self.env["crm.gmail.message"].sudo()
        refused = {}
        for msg in batch.messages:
            try:
                with self.env.cr.savepoint():
                    messages |= messages._create_from_engine(self, [msg], owner)
            except CONTENT_ERRORS as exc:
                # the exception's class only: its text may quote the email's content
                refused[msg.header.dedupe_key] = f"not storable: {type(exc).__name__}"
        outcomes = [
            dataclasses.replace(outcome, status="unparseable", reason=refused[outcome.dedupe_key])
            if outcome.status == "stored" and outcome.dedupe_key in refused
            else outcome
            for outcome in batch.outcomes
        ]
        return messages, outcomes

    def _save_cursor(self, state, outcomes):
        """Save the cursor after a stored batch, and add its outcomes to the counters."""
        counts = dict.fromkeys(OUTCOMES, 0)
        for outcome in outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            if outcome.status == "unparseable":
                _logger.info(
                    "crm_gmail_sync: mailbox %s: %s/%s unparseable: %s",
                    self.id,
                    outcome.folder,
                    outcome.uid,
                    outcome.reason,
                )
        if self.state != "connected":
            self._set_connected()  # a mailbox that is storing mail works, run finished or not
        self.write(
            {
                "sync_state": json.dumps(state.to_json(), sort_keys=True),
                "count_stored": self.count_stored + counts["stored"],
                "count_not_customer": self.count_not_customer + counts["not_customer"],
                "count_duplicate": self.count_duplicate + counts["duplicate"],
                "count_unparseable": self.count_unparseable + counts["unparseable"],
            }
        )
