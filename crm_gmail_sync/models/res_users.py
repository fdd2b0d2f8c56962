from odoo import api, fields, models

from .res_groups import GROUP_SEAT


class ResUsers(models.Model):
    _inherit = "res.users"

    # ------------------------------------------------------------ fields
    gmail_mailbox_ids = fields.One2many(
        "crm.gmail.mailbox", "user_id", string="Mailboxes", groups="base.group_system"
    )

    # ------------------------------------------------------------ CRUD
    @api.model_create_multi
    def create(self, vals_list):
        with self.env["res.groups"]._crm_gmail_sync_membership_change():
            return super().create(vals_list)

    def write(self, vals):
        if "active" not in vals and not any(
            key == "groups_id" or key.startswith(("in_group_", "sel_groups_")) for key in vals
        ):
            return super().write(vals)
        with self.env["res.groups"]._crm_gmail_sync_membership_change():
            return super().write(vals)

    def unlink(self):
        # Through the ORM, not the database's cascade, which would leave the emails'
        # attachments behind, unchecked (see crm.gmail.mailbox.unlink).
        Mailbox = self.env["crm.gmail.mailbox"].sudo().with_context(active_test=False)
        Mailbox.search([("user_id", "in", self.ids)]).unlink()
        self.env["crm.gmail.message"].sudo().search([("owner_id", "in", self.ids)]).unlink()
        return super().unlink()

    # ------------------------------------------------------------ actions
    def action_crm_gmail_open_mailbox(self):
        """Open the current user's active mailbox, or a new one."""
        return self.env["crm.gmail.mailbox"].action_open_my_mailbox()

    def _crm_gmail_has_seat(self):
        self.ensure_one()
        return self._has_group(GROUP_SEAT)
