from odoo import api, fields, models


class CrmGmailMessageAddress(models.Model):
    """A participant of a synced email, normalised: what linking compares."""

    _name = "crm.gmail.message.address"
    _inherit = ["crm.gmail.restricted.mixin"]
    _description = "Synced email participant"
    _order = "message_id, id"
    _rec_name = "email"

    message_id = fields.Many2one(
        "crm.gmail.message", required=True, index=True, ondelete="cascade", readonly=True
    )
    email = fields.Char(required=True, readonly=True)
    name = fields.Char(readonly=True)
    role = fields.Selection(
        [("from", "From"), ("to", "To"), ("cc", "Cc"), ("reply_to", "Reply-To"), ("bcc", "Bcc")],
        required=True,
        readonly=True,
    )

    @api.model
    def _gmail_neutral_name(self):
        return self.env._("Participant (no access)")

    def init(self):
        # Linking looks messages up by address: (email, message_id) answers it from
        # the index alone.
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS crm_gmail_message_address_email_message_idx
                   ON crm_gmail_message_address (email, message_id)"""
        )
