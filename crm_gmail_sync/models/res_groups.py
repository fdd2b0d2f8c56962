from contextlib import contextmanager

from odoo import api, models
from odoo.exceptions import ValidationError
from odoo.fields import Command

GROUP_SEAT = "crm_gmail_sync.group_mail_addon"
GROUP_TAB = "crm_gmail_sync.group_emails_tab"
GROUP_TAB_VISIBLE = "crm_gmail_sync.group_emails_tab_visible"
PARAM_SEATS = "crm_gmail_sync.seats"


class ResGroups(models.Model):
    _inherit = "res.groups"

    # ------------------------------------------------------------ CRUD
    @api.model_create_multi
    def create(self, vals_list):
        if not any("users" in vals or "implied_ids" in vals for vals in vals_list):
            return super().create(vals_list)
        with self._crm_gmail_sync_membership_change():
            return super().create(vals_list)

    def write(self, vals):
        refreshing = self.env.context.get("crm_gmail_sync_refreshing")
        if refreshing or ("users" not in vals and "implied_ids" not in vals):
            return super().write(vals)
        with self._crm_gmail_sync_membership_change():
            return super().write(vals)

    # ------------------------------------------------------------ business
    @api.model
    @contextmanager
    def _crm_gmail_sync_membership_change(self):
        """Around a change of who holds which group: afterwards, check the seats (refusing
        only a change that adds holders) and refresh the technical group."""
        used = self._crm_gmail_sync_seats()[1]
        yield
        self._crm_gmail_sync_refresh(used_before=used)

    @api.model
    def _crm_gmail_sync_groups(self):
        """The seat, profile and technical groups, or ``None`` while the module loads."""
        seat = self.env.ref(GROUP_SEAT, raise_if_not_found=False)
        tab = self.env.ref(GROUP_TAB, raise_if_not_found=False)
        visible = self.env.ref(GROUP_TAB_VISIBLE, raise_if_not_found=False)
        if not (seat and tab and visible):
            return None
        return seat, tab, visible

    @api.model
    def _crm_gmail_sync_seats(self):
        """``(seats configured, seats used by active users)``."""
        groups = self._crm_gmail_sync_groups()
        seats = self.env["ir.config_parameter"].sudo().get_param(PARAM_SEATS) or 0
        try:
            seats = max(int(seats), 0)
        except ValueError:
            seats = 0
        if not groups:
            return seats, 0
        self.env["res.users"].flush_model(["groups_id", "active"])
        self.env["res.groups"].flush_model(["users"])
        self.env.cr.execute(
            """SELECT count(*) FROM res_groups_users_rel r
                 JOIN res_users u ON u.id = r.uid
                WHERE r.gid = %s AND u.active""",
            [groups[0].id],
        )
        return seats, self.env.cr.fetchone()[0]

    @api.model
    def _crm_gmail_sync_check_seats(self, used_before=None):
        """Refuse more seats in use than configured. With ``used_before`` (the seats in
        use before a change), only a change that adds holders is refused: with fewer
        seats than holders (System Parameters), holders can still be removed, and users
        without a seat added."""
        seats, used = self._crm_gmail_sync_seats()
        if used > seats and (used_before is None or used > used_before):
            raise ValidationError(
                self.env._(
                    "The Mail add-on has %(seats)s seat(s), but %(used)s active users would "
                    "hold one. Remove the Mail add-on from a user or raise the number of "
                    "seats in Settings > CRM > Gmail sync.",
                    seats=seats,
                    used=used,
                )
            )

    @api.model
    def _crm_gmail_sync_refresh(self, used_before=None):
        """Check the seat limit and keep the technical "Emails tab visible" group exact.

        Odoo groups are alternatives (``groups="a,b"`` means a *or* b), but the Emails
        tab needs a seat *and* the profile group: the technical group holds exactly
        the users who have both, and menus and form pages are restricted to it.
        """
        if self.env.context.get("crm_gmail_sync_refreshing"):
            return
        groups = self._crm_gmail_sync_groups()
        if not groups:
            return
        seat, tab, visible = groups
        self._crm_gmail_sync_check_seats(used_before)
        cr = self.env.cr
        cr.execute(
            """SELECT uid FROM res_groups_users_rel WHERE gid = %s
               INTERSECT
               SELECT uid FROM res_groups_users_rel WHERE gid = %s""",
            [seat.id, tab.id],
        )
        wanted = {row[0] for row in cr.fetchall()}
        cr.execute("SELECT uid FROM res_groups_users_rel WHERE gid = %s", [visible.id])
        current = {row[0] for row in cr.fetchall()}
        commands = [Command.link(uid) for uid in sorted(wanted - current)]
        commands += [Command.unlink(uid) for uid in sorted(current - wanted)]
        if commands:
            visible.sudo().with_context(crm_gmail_sync_refreshing=True, active_test=False).write(
                {"users": commands}
            )
