from odoo import api, fields, models

from ..engine import normalize_email


class ResPartner(models.Model):
    _inherit = "res.partner"

    # ------------------------------------------------------------ fields
    gmail_email_key = fields.Char(
        string="Normalised email (Gmail sync)",
        compute="_compute_gmail_email_key",
        store=True,
        index=True,
        help="Technical: the contact's address as synced emails are linked to it.",
    )
    gmail_message_ids = fields.Many2many(
        "crm.gmail.message",
        string="Emails",
        compute="_compute_gmail_message_ids",
        search="_search_gmail_message_ids",
    )
    gmail_message_count = fields.Integer(string="Email count", compute="_compute_gmail_message_ids")
    gmail_share_emails = fields.Boolean(
        string="Share my emails",
        compute="_compute_gmail_share_emails",
        inverse="_inverse_gmail_share_emails",
        help="Let colleagues see your emails with this contact (shared mailbox only).",
    )

    # ------------------------------------------------------------ compute
    @api.depends("email")
    def _compute_gmail_email_key(self):
        for partner in self:
            partner.gmail_email_key = normalize_email(partner.email) or False

    @api.depends("gmail_email_key")
    @api.depends_context("uid")
    def _compute_gmail_message_ids(self):
        by_address, rank = self.env["crm.gmail.message"]._ids_by_address(
            {p.gmail_email_key for p in self if p.gmail_email_key}
        )
        for partner in self:
            ids = by_address.get(partner.gmail_email_key, []) if partner.gmail_email_key else []
            partner.gmail_message_ids = [(6, 0, ids)]
            partner.gmail_message_count = len(ids)

    def _search_gmail_message_ids(self, operator, value):
        return self.env["crm.gmail.message"]._search_linked(self._name, operator, value)

    @api.depends_context("uid")
    def _compute_gmail_share_emails(self):
        shares = (
            self.env["crm.gmail.share"]
            .sudo()
            .search([("user_id", "=", self.env.uid), ("partner_id", "in", self.ids)])
        )
        shared = set(shares.partner_id.ids)
        for partner in self:
            partner.gmail_share_emails = partner.id in shared

    def _inverse_gmail_share_emails(self):
        Share = self.env["crm.gmail.share"]
        Share._set_shared(self.filtered("gmail_share_emails"), "partner_id", True)
        Share._set_shared(
            self.filtered(lambda partner: not partner.gmail_share_emails), "partner_id", False
        )
