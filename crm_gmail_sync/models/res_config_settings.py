from odoo import api, fields, models
from odoo.exceptions import ValidationError

from .crm_gmail_scheduler import MAX_WORKERS


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    crm_gmail_sync_seats = fields.Integer(
        string="Mail add-on seats",
        config_parameter="crm_gmail_sync.seats",
        help="How many users may hold the Mail add-on (a licence seat each).",
    )
    crm_gmail_sync_seats_used = fields.Integer(
        string="Seats in use", compute="_compute_crm_gmail_sync_seats_used"
    )
    crm_gmail_sync_interval = fields.Integer(
        string="Fetch every (minutes)",
        compute="_compute_crm_gmail_sync_interval",
        inverse="_inverse_crm_gmail_sync_interval",
        readonly=False,
    )
    crm_gmail_sync_workers = fields.Integer(
        string="Sync workers",
        compute="_compute_crm_gmail_sync_workers",
        inverse="_inverse_crm_gmail_sync_workers",
        readonly=False,
        help="How many mailboxes are synced at the same time: one scheduled action each.",
    )
    crm_gmail_sync_since_days = fields.Integer(
        string="First sync: days back",
        config_parameter="crm_gmail_sync.since_days",
        default=90,
        help="How far back the first sync of a mailbox reaches (0: everything).",
    )
    crm_gmail_sync_admin_reads_all = fields.Boolean(
        string="Settings admins read all synced emails",
        config_parameter="crm_gmail_sync.admin_reads_all",
        help="Off (recommended): admins see other users' emails only as any colleague would.",
    )

    @api.depends("company_id")
    def _compute_crm_gmail_sync_seats_used(self):
        used = self.env["res.groups"].sudo()._crm_gmail_sync_seats()[1]
        for settings in self:
            settings.crm_gmail_sync_seats_used = used

    @api.depends("company_id")
    def _compute_crm_gmail_sync_interval(self):
        minutes = self.env["crm.gmail.mailbox"]._gmail_interval()
        for settings in self:
            settings.crm_gmail_sync_interval = minutes

    def _inverse_crm_gmail_sync_interval(self):
        for settings in self:
            if settings.crm_gmail_sync_interval < 1:
                raise ValidationError(self.env._("The fetch interval is at least one minute."))
            if settings.crm_gmail_sync_interval == self.env["crm.gmail.mailbox"]._gmail_interval():
                continue  # unchanged: a running fetch (its row locked) is left alone
            self.env["crm.gmail.mailbox"]._gmail_worker_crons().sudo().write(
                {"interval_number": settings.crm_gmail_sync_interval, "interval_type": "minutes"}
            )

    @api.depends("company_id")
    def _compute_crm_gmail_sync_workers(self):
        workers = len(self.env["crm.gmail.mailbox"]._gmail_worker_crons()) or 1
        for settings in self:
            settings.crm_gmail_sync_workers = workers

    def _inverse_crm_gmail_sync_workers(self):
        for settings in self:
            if not 1 <= settings.crm_gmail_sync_workers <= MAX_WORKERS:
                raise ValidationError(
                    self.env._(
                        "Sync workers: between 1 and %(max)s.",
                        max=MAX_WORKERS,
                    )
                )
            self.env["crm.gmail.mailbox"]._gmail_set_workers(settings.crm_gmail_sync_workers)

    def set_values(self):
        if self.crm_gmail_sync_seats < 0:
            raise ValidationError(self.env._("The number of seats cannot be negative."))
        super().set_values()
        self.env["res.groups"].sudo()._crm_gmail_sync_check_seats()
