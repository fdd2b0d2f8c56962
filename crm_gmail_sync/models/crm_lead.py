from odoo import api, models


class CrmLead(models.Model):
    _name = "crm.lead"
    _inherit = ["crm.lead", "crm.gmail.linked.mixin"]
    _gmail_email_field = "email_from"
    _gmail_share_field = "lead_id"

    def _gmail_link_keys(self):
        """A lead's own address; a deal also shows the mail of its main contact."""
        keys = super()._gmail_link_keys()
        if self.type == "opportunity" and self.partner_id.gmail_email_key:
            keys.append(self.partner_id.gmail_email_key)
        return keys

    @api.model
    def _gmail_relink_fields(self):
        return {*super()._gmail_relink_fields(), "type", "partner_id"}

    @api.model
    def _gmail_link_depends(self):
        return [*super()._gmail_link_depends(), "type", "partner_id.gmail_email_key"]
