"""The mailbox's credentials: a write-only password or OAuth2 token, and the ``Account``
the engine connects with.

Users set the secret through ``password`` / ``oauth_token``, which always read back empty;
the stored copy (``*_secret``) is out of every user's reach (``NO_ACCESS``: not read,
searched, grouped or exported, Settings admins and the owner included) and only the engine
reads it, as superuser. A secret is only ever sent to the servers its owner set it for: see
:meth:`_secret_moves`.
"""

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..engine import SyncError, check_connection
from ..engine.types import PROTOCOL_IMAP, PROTOCOL_POP3, SECURITY_SSL, Account

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
ENGINE_TIMEOUT = 30.0  # seconds a server may stay silent before the sync gives up


class CrmGmailMailbox(models.Model):
    _inherit = "crm.gmail.mailbox"

    # ------------------------------------------------------------ fields
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

    # ------------------------------------------------------------ CRUD
    def write(self, vals):
        moved, cleared = self._secret_moves(vals)
        res = super().write(vals)
        if moved:
            moved.sudo().write(dict.fromkeys(cleared, False))
        return res

    # ------------------------------------------------------------ actions
    def action_test_connection(self):
        self.ensure_one()
        self._guard_seat()
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

    # ------------------------------------------------------------ business
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

    def _redact(self, text):
        """``text`` without this mailbox's secret: a server may repeat what it was sent."""
        mailbox = self.sudo()
        for secret in (mailbox.password_secret, mailbox.oauth_token_secret):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _engine_account(self):
        """The engine's :class:`Account` of this mailbox: servers, login, secret and the
        owner's own addresses (mailbox, login, user, confirmed aliases)."""
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
            timeout=ENGINE_TIMEOUT,
        )
