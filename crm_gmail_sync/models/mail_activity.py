from odoo import api, models


class MailActivity(models.Model):
    """An activity never links a synced email's own attachment: it gets a copy on the
    activity's document, made only for who may read the email (see
    ``ir.attachment._gmail_relink``)."""

    _inherit = "mail.activity"

    @api.model_create_multi
    def create(self, vals_list):
        Attachment = self.env["ir.attachment"]
        for vals in vals_list:
            if vals.get("attachment_ids"):
                res_model = vals.get("res_model") or (
                    self.env["ir.model"].sudo().browse(vals.get("res_model_id")).model
                )
                vals["attachment_ids"] = Attachment._gmail_relink(
                    vals["attachment_ids"], res_model, vals.get("res_id")
                )
        return super().create(vals_list)

    def write(self, vals):
        if vals.get("attachment_ids") and self:
            Attachment = self.env["ir.attachment"]
            for activity in self:
                commands = Attachment._gmail_relink(
                    vals["attachment_ids"], activity.res_model, activity.res_id
                )
                super(MailActivity, activity).write(dict(vals, attachment_ids=commands))
            return True
        return super().write(vals)
