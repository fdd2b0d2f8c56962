from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..engine import normalize_email


class CrmGmailLinkedMixin(models.AbstractModel):
    """A record with an Emails page: leads/deals and contacts.

    Emails are linked by the record's *current* normalised address (a deal adds its main
    contact's, see ``crm.lead``), and "Share my emails" is stored per user and record in
    ``crm.gmail.share``.
    """

    _name = "crm.gmail.linked.mixin"
    _description = "Record showing synced emails"
    _gmail_email_field = "email"  # the address field the emails are linked by
    _gmail_share_field = "partner_id"  # this model's field on crm.gmail.share

    # ------------------------------------------------------------ fields
    gmail_email_key = fields.Char(
        string="Normalised email (Gmail sync)",
        compute="_compute_gmail_email_key",
        store=True,
        index=True,
        help="Technical: the record's address as synced emails are linked to it.",
    )
    gmail_message_ids = fields.Many2many(
        "crm.gmail.message",
        string="Emails",
        compute="_compute_gmail_message_ids",
        search="_search_gmail_message_ids",
    )
    gmail_message_count = fields.Integer(string="Email count", compute="_compute_gmail_message_ids")
    gmail_conversation_ids = fields.Many2many(
        "crm.gmail.conversation",
        string="Conversations",
        compute="_compute_gmail_conversation_ids",
        search="_search_gmail_conversation_ids",
    )
    gmail_conversation_count = fields.Integer(
        string="Conversation count", compute="_compute_gmail_conversation_ids"
    )
    gmail_empty_state = fields.Selection(
        [
            ("no_seat", "No seat"),
            ("no_address", "No email address"),
            ("no_mailbox", "No mailbox"),
            ("no_email", "No email yet"),
        ],
        string="Why no emails show",
        compute="_compute_gmail_conversation_ids",
        help="Technical: the hint the Emails page gives when it has nothing to show.",
    )
    gmail_has_mailbox = fields.Boolean(string="Has a mailbox", compute="_compute_gmail_has_mailbox")
    gmail_share_emails = fields.Boolean(
        string="Share my emails",
        compute="_compute_gmail_share_emails",
        inverse="_inverse_gmail_share_emails",
        help="Let colleagues see your emails with this customer (shared mailbox only).",
    )
    gmail_share_outdated = fields.Boolean(
        string="Share misses the current address",
        compute="_compute_gmail_share_emails",
        help="You shared your emails here when the record had another address or main "
        "contact: the mail of its current address is not shared until you share again.",
    )

    # ------------------------------------------------------------ compute
    @api.depends(lambda self: [self._gmail_email_field])
    def _compute_gmail_email_key(self):
        # the stored keys before (the database's) and after: the share flags of both
        ids = [record.id for record in self if isinstance(record.id, int)]
        keys = set()
        if ids:
            keys = {
                key
                for (key,) in self.env.execute_query(
                    SQL(
                        "SELECT gmail_email_key FROM %s WHERE id = ANY(%s)",
                        SQL.identifier(self._table),
                        ids,
                    )
                )
            }
        for record in self:
            record.gmail_email_key = normalize_email(record[self._gmail_email_field]) or False
            if isinstance(record.id, int):
                keys.add(record.gmail_email_key)
        self.env["crm.gmail.message"]._gmail_mark_shared_dirty(keys=keys)

    def _gmail_link_keys(self):
        """The current addresses whose emails show on this record."""
        self.ensure_one()
        return [self.gmail_email_key] if self.gmail_email_key else []

    @api.depends(lambda self: self._gmail_link_depends())
    @api.depends_context("uid")
    def _compute_gmail_message_ids(self):
        link_keys = {record: record._gmail_link_keys() for record in self}
        by_address, rank = self.env["crm.gmail.message"]._ids_by_address(
            {k for keys in link_keys.values() for k in keys}
        )
        for record in self:
            ids = {mid for key in link_keys[record] for mid in by_address.get(key, ())}
            ordered = sorted(ids, key=rank.__getitem__)  # newest first
            record.gmail_message_ids = [(6, 0, ordered)]
            record.gmail_message_count = len(ordered)

    @api.depends(lambda self: self._gmail_link_depends())
    @api.depends_context("uid")
    def _compute_gmail_conversation_ids(self):
        """The record's conversations, newest activity first (by the emails the user may
        read), and the Emails page's hint when there are none."""
        user = self.env.user
        seat = user._crm_gmail_has_seat()
        link_keys = {record: record._gmail_link_keys() for record in self}
        by_address = (
            self.env["crm.gmail.conversation"]._gmail_conversations_of(
                {k for keys in link_keys.values() for k in keys}
            )
            if seat
            else {}
        )
        has_mailbox = None  # asked only for an empty page
        for record in self:
            last = {}
            for key in link_keys[record]:
                for conversation_id, date in by_address.get(key, {}).items():
                    if conversation_id not in last or last[conversation_id] < date:
                        last[conversation_id] = date
            ordered = sorted(last, key=lambda c: (last[c], c), reverse=True)
            record.gmail_conversation_ids = [(6, 0, ordered)]
            record.gmail_conversation_count = len(ordered)
            if not seat:
                record.gmail_empty_state = "no_seat"
            elif not link_keys[record]:
                record.gmail_empty_state = "no_address"
            elif ordered:
                record.gmail_empty_state = False
            else:
                if has_mailbox is None:
                    has_mailbox = self._gmail_user_has_mailbox()
                record.gmail_empty_state = "no_email" if has_mailbox else "no_mailbox"

    @api.depends_context("uid")
    def _compute_gmail_has_mailbox(self):
        self.gmail_has_mailbox = self._gmail_user_has_mailbox()

    @api.model
    def _gmail_user_has_mailbox(self):
        return bool(
            self.env["crm.gmail.mailbox"]
            .sudo()
            .search_count([("user_id", "=", self.env.uid)], limit=1)
        )

    @api.model
    def _gmail_link_depends(self):
        return ["gmail_email_key"]

    def _search_gmail_conversation_ids(self, operator, value):
        """Records by their conversations: those of the readable emails of these
        conversations (the record rules apply), as ``gmail_message_ids``."""
        if operator not in ("in", "=") or value is False:
            raise UserError(self.env._("Unsupported search on the conversations."))
        Message = self.env["crm.gmail.message"]
        emails = Message._search([("conversation_id", operator, value)])
        return Message._search_linked(self._name, "in", emails)

    def _search_gmail_message_ids(self, operator, value):
        return self.env["crm.gmail.message"]._search_linked(self._name, operator, value)

    @api.depends(lambda self: self._gmail_link_depends())
    @api.depends_context("uid")
    def _compute_gmail_share_emails(self):
        shared = self.env["crm.gmail.share"]._shared_keys(self, self._gmail_share_field)
        for record in self:
            keys = shared.get(record.id)
            record.gmail_share_emails = keys is not None
            record.gmail_share_outdated = keys is not None and not keys >= set(
                record._gmail_link_keys()
            )

    # ------------------------------------------------------------ ORM
    def write(self, vals):
        if "gmail_email_key" in vals and not self.env.su:
            # derived from the address: written directly it would move the record's mail
            raise UserError(
                self.env._("Change the record's email address instead of its normalised form.")
            )
        # a deal's main contact or its type decide whose mail shows (and is shared) on it
        relinks = (self._gmail_relink_fields() | {"gmail_email_key"}) & set(vals)
        if relinks:
            self._gmail_mark_links_dirty()
        res = super().write(vals)
        if relinks:
            self._gmail_mark_links_dirty()
        return res

    def unlink(self):
        self._gmail_mark_links_dirty()  # the record's shares go with it (the database's)
        return super().unlink()

    @api.model
    def _gmail_relink_fields(self):
        """Fields besides the address that change which addresses link to the record."""
        return set()

    def _gmail_mark_links_dirty(self):
        self.env["crm.gmail.message"]._gmail_mark_shared_dirty(
            keys={key for record in self.sudo() for key in record._gmail_link_keys()}
        )

    # ------------------------------------------------------------ actions
    def action_gmail_open_conversations(self):
        """The Emails tab, showing this record's conversations."""
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "crm_gmail_sync.crm_gmail_conversation_action"
        )
        field = "partner_ids" if self._name == "res.partner" else "lead_ids"
        action["domain"] = [(field, "in", self.ids)]
        action["display_name"] = self.env._("Emails: %(name)s", name=self.display_name)
        action["context"] = {}
        return action

    def action_gmail_compose(self):
        """ "Send email": the composer, To being this record's address."""
        self.ensure_one()
        return self.env["crm.gmail.message"]._gmail_compose_action("new", self)

    def action_gmail_my_mailbox(self):
        return self.env["crm.gmail.mailbox"].action_open_my_mailbox()

    def action_gmail_share_again(self):
        """Share the record's current addresses (after its address or contact changed)."""
        self.env["crm.gmail.share"]._set_shared(self, self._gmail_share_field, True)
        return True

    def _inverse_gmail_share_emails(self):
        Share = self.env["crm.gmail.share"]
        Share._set_shared(self.filtered("gmail_share_emails"), self._gmail_share_field, True)
        Share._set_shared(
            self.filtered(lambda record: not record.gmail_share_emails),
            self._gmail_share_field,
            False,
        )
