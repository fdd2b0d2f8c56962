from odoo import api, models


class MailMessage(models.Model):
    """A chatter message (or an outgoing mail.mail) never links a synced email's own
    attachment: it gets a copy, made only for who may read the email (see
    ``ir.attachment._gmail_relink``)."""

    _inherit = "mail.message"

    @api.model_create_multi
    def create(self, vals_list):
        Attachment = self.env["ir.attachment"]
        for vals in vals_list:
            if vals.get("attachment_ids"):
                vals["attachment_ids"] = Attachment._gmail_relink(
                    vals["attachment_ids"], vals.get("model"), vals.get("res_id")
                )
        return super().create(vals_list)

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
