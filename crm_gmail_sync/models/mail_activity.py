from odoo import api, models


class MailActivity(models.Model):
    """An activity never links a synced email's own attachment: it gets a copy on the
    activity's document, made only for who may read the email (see
    ``ir.attachment._gmail_relink``)."""

    _inherit = "mail.activity"

    @api.model_create_multi
    def create(self, vals_list):
        activities = super().create(vals_list)
        # after the create: the document may come from context defaults
        self.env["ir.attachment"]._gmail_relink_records(activities)
        return activities

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
