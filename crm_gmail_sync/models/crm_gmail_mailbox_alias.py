from odoo import api, fields, models
from odoo.exceptions import AccessError, ValidationError

from ..engine import normalize_email


class CrmGmailMailboxAlias(models.Model):
    """One more address of a mailbox's owner: an alias or a Gmail "Send mail as" address.

    The owner's own addresses (the mailbox address, its login and the confirmed aliases)
    decide an email's direction, never count as a customer and are left out of reply-all.
    The sync offers the From addresses it finds in the Sent folder as *suggested*; only
    the owner's confirmation makes one theirs.
    """

    _name = "crm.gmail.mailbox.alias"
    _inherit = ["crm.gmail.restricted.mixin"]
    _description = "Own address of a mailbox owner"
    _order = "mailbox_id, state, email"
    _rec_name = "email"

    # ------------------------------------------------------------ fields
    mailbox_id = fields.Many2one(
        "crm.gmail.mailbox", required=True, index=True, ondelete="cascade", readonly=True
    )
    email = fields.Char(string="Address", required=True)
    state = fields.Selection(
        [
            ("confirmed", "Mine"),
            ("suggested", "Found in Sent"),
            ("dismissed", "Not mine"),
        ],
        required=True,
        default="confirmed",
        help="Mine: counts as your own address. Found in Sent: a From address of your sent "
        "mail, offered until you decide. Not mine: not offered again.",
    )

    _sql_constraints = [
        ("email_mailbox_uniq", "unique(mailbox_id, email)", "This address is already listed."),
    ]

    @api.model
    def _gmail_neutral_name(self):
        return self.env._("Address (no access)")

    # ------------------------------------------------------------ constraints
    @api.constrains("email")
    def _check_email(self):
        for alias in self:
            if not normalize_email(alias.email):
                raise ValidationError(
                    self.env._("%(email)s is not a valid email address.", email=alias.email)
                )

    # ------------------------------------------------------------ CRUD
    @api.model_create_multi
    def create(self, vals_list):
        # The mailbox is checked before the row exists: the database's unique check would
        # otherwise tell anybody which addresses a mailbox lists.
        self.env["crm.gmail.mailbox"].browse(
            {vals.get("mailbox_id") for vals in vals_list} - {None, False}
        ).check_access("write")
        for vals in vals_list:
            if vals.get("email"):
                vals["email"] = normalize_email(vals["email"]) or vals["email"]
        return super().create(vals_list)

    def write(self, vals):
        if "mailbox_id" in vals and not self.env.su:
            # record rules check a row before a write, not after: no moving it elsewhere
            raise AccessError(self.env._("An address cannot be moved to another mailbox."))
        if vals.get("email"):
            vals = dict(vals, email=normalize_email(vals["email"]) or vals["email"])
        return super().write(vals)

    # ------------------------------------------------------------ actions
    def action_confirm(self):
        self.state = "confirmed"

    def action_dismiss(self):
        self.state = "dismissed"

    # ------------------------------------------------------------ business
    @api.model
    def _suggest(self, mailbox, addresses):
        """Offer ``addresses`` (normalised From addresses of the Sent folder that are not
        the owner's yet) to ``mailbox``'s owner, those not listed already: one query and
        one create."""
        if not addresses:
            return
        listed = set(self.sudo().search([("mailbox_id", "=", mailbox.id)]).mapped("email"))
        self.sudo().create(
            [
                {"mailbox_id": mailbox.id, "email": email, "state": "suggested"}
                for email in sorted(set(addresses) - listed)
            ]
        )
