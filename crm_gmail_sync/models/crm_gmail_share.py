from odoo import api, fields, models
from odoo.exceptions import AccessError, ValidationError


class CrmGmailShare(models.Model):
    """ "Share my emails" of one owner on one lead/deal or contact.

    A share covers the addresses the record had when its owner shared it
    (``email_keys``): when a colleague changes the record's address or main contact, the
    mail of the new address stays unshared until the owner shares again.
    """

    _name = "crm.gmail.share"
    _description = "Shared emails of a user on a record"

    # ------------------------------------------------------------ fields
    user_id = fields.Many2one(
        "res.users",
        required=True,
        index=True,
        ondelete="cascade",
        default=lambda self: self.env.user,
    )
    lead_id = fields.Many2one("crm.lead", index=True, ondelete="cascade")
    partner_id = fields.Many2one("res.partner", index=True, ondelete="cascade")
    email_keys = fields.Char(
        string="Shared addresses",
        readonly=True,
        help="The record's normalised addresses when its owner shared it, space-separated.",
    )

    _sql_constraints = [
        ("lead_uniq", "unique(user_id, lead_id)", "This lead is already shared."),
        ("partner_uniq", "unique(user_id, partner_id)", "This contact is already shared."),
        (
            "one_target",
            "CHECK((lead_id IS NULL) != (partner_id IS NULL))",
            "A share is on a lead or on a contact.",
        ),
    ]

    # ------------------------------------------------------------ constraints
    @api.constrains("user_id")
    def _check_seat(self):
        for share in self:
            if not share.user_id._crm_gmail_has_seat():
                raise ValidationError(
                    self.env._("Only users with a Mail add-on seat can share their emails.")
                )

    # ------------------------------------------------------------ CRUD
    @api.model_create_multi
    def create(self, vals_list):
        self._guard_own_choice()
        shares = super().create(vals_list)
        shares._gmail_mark_dirty()
        return shares

    def write(self, vals):
        self._guard_own_choice()
        self._gmail_mark_dirty()
        res = super().write(vals)
        self._gmail_mark_dirty()
        return res

    def unlink(self):
        self._guard_own_choice()
        self._gmail_mark_dirty()
        return super().unlink()

    def _gmail_mark_dirty(self):
        """The emails of these shares' addresses are to be flagged again (see
        crm_gmail_message_sharing.py)."""
        self.env["crm.gmail.message"]._gmail_mark_shared_dirty(
            keys={key for share in self for key in (share.email_keys or "").split()}
        )

    @api.model
    def _guard_own_choice(self):
        """Shares change only through "Share my emails", in their user's own name (record
        rules do not check what a write puts into a row)."""
        if not self.env.su:
            raise AccessError(
                self.env._(
                    '"Share my emails" is each user\'s own choice: tick it on the Emails page '
                    "of the lead, deal or contact, for your own emails only."
                )
            )

    # ------------------------------------------------------------ business
    @api.model
    def _set_shared(self, records, field, shared):
        """Turn "Share my emails" of the current user on or off for ``records``; sharing
        again covers the records' current addresses."""
        if not records:
            return
        if not self.env.user._crm_gmail_has_seat():
            raise ValidationError(
                self.env._("Only users with a Mail add-on seat can share their emails.")
            )
        existing = self._own_shares(records, field)
        if not shared:
            existing.unlink()
            return
        by_record = {share[field]: share for share in existing}
        missing = []
        for record in records:
            keys = " ".join(sorted(record._gmail_link_keys())) or False
            share = by_record.get(record)
            if share is None:
                missing.append({"user_id": self.env.uid, field: record.id, "email_keys": keys})
            elif share.email_keys != keys:
                share.email_keys = keys
        self.sudo().create(missing)

    @api.model
    def _shared_keys(self, records, field):
        """``{record id: set of shared addresses}`` of the current user's shares."""
        return {
            share[field].id: set((share.email_keys or "").split())
            for share in self._own_shares(records, field)
        }

    @api.model
    def _own_shares(self, records, field):
        """The current user's shares on ``records`` (read as superuser: the rows are
        nobody else's business, and the rule would hide nothing of the user's own)."""
        return self.sudo().search_fetch(
            [("user_id", "=", self.env.uid), (field, "in", records.ids)], [field, "email_keys"]
        )
