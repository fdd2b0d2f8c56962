from odoo import models


class MailActivity(models.Model):
    """Activities hold copies of synced emails' attachments."""

    _name = "mail.activity"
    _inherit = ["mail.activity", "crm.gmail.attachment.owner.mixin"]
    _gmail_document_fields = ("res_model", "res_id")
