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
        users = super().create(vals_list)
        self.env["res.groups"]._crm_gmail_sync_refresh()
        return users

    def write(self, vals):
        res = super().write(vals)
        if "active" in vals or any(
            key == "groups_id" or key.startswith(("in_group_", "sel_groups_")) for key in vals
        ):
            self.env["res.groups"]._crm_gmail_sync_refresh()
        return res

    # ------------------------------------------------------------ actions
    def action_crm_gmail_open_mailbox(self):
        """Open the current user's active mailbox, or a new one."""
        return self.env["crm.gmail.mailbox"].action_open_my_mailbox()

    def _crm_gmail_has_seat(self):
        self.ensure_one()
        return self._has_group(GROUP_SEAT)
