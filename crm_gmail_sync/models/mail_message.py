from odoo import api, models


class MailMessage(models.Model):
    """A chatter message (or an outgoing mail.mail) never links a synced email's own
    attachment: it gets a copy on the message's document, made only for who may read the
    email (see ``ir.attachment._gmail_relink``); for anybody else Odoo's own check of the
    message's attachments refuses it (see ``ir.attachment.check``)."""

    _inherit = "mail.message"

    @api.model_create_multi
    def create(self, vals_list):
        messages = super().create(vals_list)
        # after the create: the document may come from context defaults
        self.env["ir.attachment"]._gmail_relink_records(messages)
        return messages

    def write(self, vals):
        if vals.get("attachment_ids") and self:
            Attachment = self.env["ir.attachment"]
            for message in self:
                commands = Attachment._gmail_relink(
                    vals["attachment_ids"], message.model, message.res_id
                )
                super(MailMessage, message).write(dict(vals, attachment_ids=commands))
            return True
        return super().write(vals)
