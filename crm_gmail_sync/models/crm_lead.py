from odoo import api, fields, models

from ..engine import normalize_email


class CrmLead(models.Model):
    _inherit = "crm.lead"

    # ------------------------------------------------------------ fields
    gmail_email_key = fields.Char(
        string="Normalised email (Gmail sync)",
        compute="_compute_gmail_email_key",
        store=True,
        index=True,
        help="Technical: the lead's address as synced emails are linked to it.",
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
        help="Let colleagues see your emails with this customer (shared mailbox only).",
    )

    # ------------------------------------------------------------ compute
    @api.depends("email_from")
    def _compute_gmail_email_key(self):
        for lead in self:
            lead.gmail_email_key = normalize_email(lead.email_from) or False

    def _gmail_link_keys(self):
        """The current addresses whose emails show on this lead (a deal: also its contact's)."""
        self.ensure_one()
        keys = [self.gmail_email_key]
        if self.type == "opportunity":
            keys.append(self.partner_id.gmail_email_key)
        return [k for k in keys if k]

    @api.depends("gmail_email_key", "type", "partner_id.gmail_email_key")
    @api.depends_context("uid")
    def _compute_gmail_message_ids(self):
        link_keys = {lead: lead._gmail_link_keys() for lead in self}
        by_address, rank = self.env["crm.gmail.message"]._ids_by_address(
            {k for keys in link_keys.values() for k in keys}
        )
        for lead in self:
            ids = {mid for key in link_keys[lead] for mid in by_address.get(key, ())}
            ordered = sorted(ids, key=rank.__getitem__)
            lead.gmail_message_ids = [(6, 0, ordered)]
            lead.gmail_message_count = len(ordered)

    def _search_gmail_message_ids(self, operator, value):
        return self.env["crm.gmail.message"]._search_linked(self._name, operator, value)

    @api.depends_context("uid")
    def _compute_gmail_share_emails(self):
        shares = (
            self.env["crm.gmail.share"]
            .sudo()
            .search([("user_id", "=", self.env.uid), ("lead_id", "in", self.ids)])
        )
        shared = set(shares.lead_id.ids)
        for lead in self:
            lead.gmail_share_emails = lead.id in shared

    def _inverse_gmail_share_emails(self):
        Share = self.env["crm.gmail.share"]
        Share._set_shared(self.filtered("gmail_share_emails"), "lead_id", True)
        Share._set_shared(self.filtered(lambda lead: not lead.gmail_share_emails), "lead_id", False)
