from odoo import models


class MailMessage(models.Model):
    """Chatter messages and outgoing mail hold copies of synced emails' attachments."""

    _name = "mail.message"
    _inherit = ["mail.message", "crm.gmail.attachment.owner.mixin"]
    _gmail_document_fields = ("model", "res_id")
