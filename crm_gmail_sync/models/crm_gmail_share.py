from odoo import api, fields, models
from odoo.exceptions import ValidationError


class CrmGmailShare(models.Model):
    """ "Share my emails" of one owner on one lead/deal or contact."""

    _name = "crm.gmail.share"
    _description = "Shared emails of a user on a record"

    user_id = fields.Many2one(
        "res.users",
        required=True,
        index=True,
        ondelete="cascade",
        default=lambda self: self.env.user,
    )
    lead_id = fields.Many2one("crm.lead", index=True, ondelete="cascade")
    partner_id = fields.Many2one("res.partner", index=True, ondelete="cascade")

    _sql_constraints = [
        ("lead_uniq", "unique(user_id, lead_id)", "This lead is already shared."),
        ("partner_uniq", "unique(user_id, partner_id)", "This contact is already shared."),
        (
            "one_target",
            "CHECK((lead_id IS NULL) != (partner_id IS NULL))",
            "A share is on a lead or on a contact.",
        ),
    ]

    @api.constrains("user_id")
    def _check_seat(self):
        for share in self:
            if not share.user_id._crm_gmail_has_seat():
                raise ValidationError(
                    self.env._("Only users with a Mail add-on seat can share their emails.")
                )

    @api.model
    def _set_shared(self, records, field, shared):
        """Turn "Share my emails" of the current user on or off for ``records``."""
        if not records:
            return
        if not self.env.user._crm_gmail_has_seat():
            raise ValidationError(
                self.env._("Only users with a Mail add-on seat can share their emails.")
            )
        existing = self.sudo().search([("user_id", "=", self.env.uid), (field, "in", records.ids)])
        if shared:
            missing = records - existing[field]
            self.sudo().create([{"user_id": self.env.uid, field: rec.id} for rec in missing])
        else:
            existing.unlink()
