"""A conversation of synced emails, as the current user sees it.

What it is
----------
The emails that belong together by their Message-ID graph (see
``crm_gmail_conversation_key.py`` and ``engine/conversations.py``), across all mailboxes:
the same email in two users' mailboxes is in one conversation, and shows as one entry
where both copies are visible.

How it works
------------
A conversation row holds no content, only its identity. Everything a user sees of it
(subject, participants, count, dates, linked records, owners) is computed from the emails
*that user* may read, by the same rule as the emails themselves
(``crm.gmail.message.is_accessible``): a colleague who reads two shared emails of a
conversation of five sees a conversation of two, and nothing hints at the others, neither
its order in the list nor a count nor a name. A user who reads none of it does not see the
conversation at all (record rule).

Sorting and grouping work on those per-user values in SQL: :meth:`_field_to_sql` turns
``last_date``, ``message_count`` and ``subject`` into an aggregate over the user's readable
emails joined once per query, and :meth:`_read_group_groupby` groups by owner, lead/deal or
contact through the same readable emails. One query over the page's conversations computes
the rest (:meth:`_gmail_view_data`).
"""

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.osv import expression
from odoo.tools import SQL, Query

from .crm_gmail_conversation_render import render_cards

# per-user aggregates over the readable emails of each conversation, alias ``m``
AGGREGATES = {
    "last_date": "max(m.date)",
    "message_count": "count(DISTINCT COALESCE(m.message_id_header, m.id::text))",
    "subject": "(array_agg(m.subject ORDER BY m.date, m.id))[1]",
}


class CrmGmailConversation(models.Model):
    _name = "crm.gmail.conversation"
    _inherit = ["crm.gmail.restricted.mixin"]
    _description = "Email conversation"
    _log_access = False
    _order = "last_date desc, id desc"
    _rec_name = "subject"

    # ------------------------------------------------------------ fields
    # the emails the real user may read: computed for each user (a stored one2many would
    # be read without the comodel's record rules, and cached for every user alike)
    message_ids = fields.Many2many(
        "crm.gmail.message",
        string="Emails",
        compute="_compute_message_ids",
        search="_search_message_ids",
    )
    is_visible = fields.Boolean(
        string="Readable by me",
        compute="_compute_is_visible",
        search="_search_is_visible",
        help="Technical: the conversation holds an email the user may read (record rule).",
    )
    subject = fields.Char(compute="_compute_view", search="_search_subject")
    participants = fields.Char(compute="_compute_view", search="_search_participants")
    message_count = fields.Integer(
        string="Emails in it", compute="_compute_view", search="_search_message_count"
    )
    last_date = fields.Datetime(
        string="Last email", compute="_compute_view", search="_search_last_date"
    )
    last_direction = fields.Selection(
        [("received", "From the customer"), ("sent", "From us")],
        string="Last email is",
        compute="_compute_view",
        search="_search_last_direction",
    )
    direction = fields.Selection(
        [("received", "Received"), ("sent", "Sent")],
        string="Has emails",
        compute="_compute_view",
        search="_search_direction",
        help="Technical: search conversations by the direction of any of their emails.",
    )
    has_attachments = fields.Boolean(
        string="With attachments", compute="_compute_view", search="_search_has_attachments"
    )
    owner_ids = fields.Many2many(
        "res.users", string="Owners", compute="_compute_view", search="_search_owner_ids"
    )
    lead_ids = fields.Many2many(
        "crm.lead", string="Leads / deals", compute="_compute_links", search="_search_lead_ids"
    )
    partner_ids = fields.Many2many(
        "res.partner", string="Contacts", compute="_compute_links", search="_search_partner_ids"
    )
    is_mine = fields.Boolean(string="Mine", compute="_compute_view", search="_search_is_mine")
    shared_by = fields.Char(string="Shared by", compute="_compute_view")
    body = fields.Text(
        string="Email text",
        compute="_compute_body",
        search="_search_body",
        help="Technical: search conversations by the text of their emails.",
    )
    share_note = fields.Char(string="Sharing", compute="_compute_share_note")
    outbox_ids = fields.Many2many(
        "crm.gmail.message",
        string="Not sent yet",
        compute="_compute_outbox_ids",
        help="Your emails of this conversation that are queued, being sent or failed.",
    )
    cards_html = fields.Html(
        string="Emails of the conversation", compute="_compute_cards_html", sanitize=False
    )

    # ------------------------------------------------------------ compute
    @api.depends_context("uid")
    def _compute_view(self):
        data = self._gmail_view_data()
        for conversation in self:
            vals = data.get(conversation.id, {})
            conversation.subject = vals.get("subject") or False
            conversation.participants = vals.get("participants") or False
            conversation.message_count = vals.get("message_count", 0)
            conversation.last_date = vals.get("last_date", False)
            conversation.last_direction = vals.get("last_direction", False)
            conversation.direction = vals.get("last_direction", False)
            conversation.has_attachments = vals.get("has_attachments", False)
            conversation.owner_ids = [(6, 0, vals.get("owner_ids", []))]
            conversation.is_mine = self.env.uid in vals.get("owner_ids", ())
            conversation.shared_by = vals.get("shared_by") or False

    @api.depends_context("uid")
    def _compute_links(self):
        """The leads/deals and contacts the readable emails show on (apart from the rest
        of the list's values: an Emails page does not show them)."""
        Message = self.env["crm.gmail.message"]
        emails = {}
        if self.ids:
            visible = self._gmail_visible_query([("conversation_id", "in", self.ids)])
            m = SQL.identifier(visible.table)
            for conv, email in self.env.execute_query(
                SQL(
                    """SELECT DISTINCT %(m)s.conversation_id, a.email FROM %(from)s
                         JOIN crm_gmail_message_address a ON a.message_id = %(m)s.id
                          AND (a.role != 'bcc' OR %(m)s.owner_id = %(uid)s)
                        WHERE %(where)s""",
                    m=m,
                    uid=self.env.uid,
                    **{"from": visible.from_clause, "where": visible.where_clause},
                )
            ):
                emails.setdefault(conv, set()).add(email)
        links = Message._gmail_links({e for found in emails.values() for e in found})
        for conversation in self:
            found = emails.get(conversation.id, ())
            conversation.lead_ids = [
                (6, 0, sorted({i for e in found for i in links["leads"].get(e, ())}))
            ]
            conversation.partner_ids = [
                (6, 0, sorted({i for e in found for i in links["partners"].get(e, ())}))
            ]

    @api.depends_context("uid")
    def _compute_outbox_ids(self):
        Message = self.env["crm.gmail.message"]
        outbox = Message.search(
            [
                ("conversation_id", "in", self.ids),
                ("owner_id", "=", self.env.uid),
                ("send_state", "in", ("queued", "sending", "failed")),
            ]
        )
        for conversation in self:
            conversation.outbox_ids = outbox.filtered(
                lambda m, c=conversation: m.conversation_id == c
            )

    @api.depends_context("uid")
    def _compute_message_ids(self):
        messages = self._gmail_visible_messages()
        by_conversation = {}
        for message in messages:
            by_conversation.setdefault(message.conversation_id.id, []).append(message.id)
        for conversation in self:
            conversation.message_ids = [(6, 0, by_conversation.get(conversation.id, []))]

    @api.depends_context("uid")
    def _compute_is_visible(self):
        visible = self._gmail_visible_query([("conversation_id", "in", self.ids)])
        visible = {
            conv
            for (conv,) in self.env.execute_query(
                visible.select(SQL.identifier(visible.table, "conversation_id"))
            )
        }
        for conversation in self:
            conversation.is_visible = conversation.id in visible

    def _compute_body(self):
        self.body = False

    @api.depends_context("uid")
    def _compute_share_note(self):
        for conversation in self:
            mine = conversation._gmail_visible_messages().filtered(
                lambda m: m.owner_id.id == self.env.uid
            )
            conversation.share_note = mine._gmail_share_note()

    @api.depends_context("uid", "lang", "tz")
    def _compute_cards_html(self):
        for conversation in self:
            conversation.cards_html = render_cards(
                self.env,
                conversation._gmail_visible_messages(),
                conversation.lead_ids,
                conversation.partner_ids,
            )

    @api.model
    def _gmail_neutral_name(self):
        return self.env._("Conversation (no access)")

    # ------------------------------------------------------------ ORM
    def _field_to_sql(self, alias, fname, query=None, flush=True):
        if fname == "last_date" and query is not None:
            sub = query.make_alias(alias, f"gmail_{fname}")
            query.add_join(
                "LEFT JOIN",
                sub,
                SQL(
                    "(SELECT conversation_id, max(date) AS value FROM (%s) v GROUP BY 1)",
                    self._gmail_rows_sql(),
                ),
                SQL("%s = %s", SQL.identifier(sub, "conversation_id"), SQL.identifier(alias, "id")),
            )
            return SQL.identifier(sub, "value")
        if fname in AGGREGATES and query is not None:
            sub = query.make_alias(alias, f"gmail_{fname}")
            visible = self._gmail_visible_query()
            conversation = SQL.identifier(visible.table, "conversation_id")
            visible.groupby = conversation
            select = visible.select(
                SQL("%s AS conversation_id", conversation),
                SQL(AGGREGATES[fname].replace("m.", f'"{visible.table}".') + " AS value"),
            )
            query.add_join(
                "LEFT JOIN",
                sub,
                SQL("(%s)", select),
                SQL("%s = %s", SQL.identifier(sub, "conversation_id"), SQL.identifier(alias, "id")),
            )
            return SQL.identifier(sub, "value")
        return super()._field_to_sql(alias, fname, query, flush)

    def _order_to_sql(self, order, query, alias=None, reverse=False):
        # the per-user values tie often (a count of 1, a subject): break ties by id, so
        # that the order is the same whatever else the database holds
        sql = super()._order_to_sql(order, query, alias, reverse)
        if sql and query.groupby is None:
            sql = SQL("%s, %s", sql, SQL.identifier(alias or self._table, "id"))
        return sql

    def _read_group_groupby(self, groupby_spec, query):
        if groupby_spec in ("owner_ids", "lead_ids", "partner_ids"):
            sub = query.make_alias(self._table, f"gmail_{groupby_spec}")
            query.add_join(
                "LEFT JOIN",
                sub,
                SQL("(%s)", self._gmail_pairs_sql(groupby_spec)),
                SQL(
                    "%s = %s",
                    SQL.identifier(sub, "conversation_id"),
                    SQL.identifier(self._table, "id"),
                ),
            )
            return SQL.identifier(sub, "value")
        return super()._read_group_groupby(groupby_spec, query)

    # ------------------------------------------------------------ search
    def _gmail_where(self, message_domain):
        """The domain of the conversations holding a readable email of ``message_domain``."""
        visible = self._gmail_visible_query(message_domain)
        return [
            (
                "id",
                "in",
                SQL("(%s)", visible.select(SQL.identifier(visible.table, "conversation_id"))),
            )
        ]

    def _search_is_visible(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on %(field)s.", field="is_visible"))
        domain = [("id", "in", SQL("(SELECT conversation_id FROM (%s) v)", self._gmail_rows_sql()))]
        if (operator == "=") == value:
            return domain
        return ["!", *domain]

    def _search_subject(self, operator, value):
        return self._gmail_where([("subject", operator, value)])

    def _search_body(self, operator, value):
        return self._gmail_where([("body_html", operator, value)])

    def _search_participants(self, operator, value):
        if operator not in ("ilike", "=ilike", "like", "=like", "="):
            raise UserError(self.env._("Unsupported search on the participants."))
        match = ["|", ("email", operator, value), ("name", operator, value)]
        # a Bcc is the owner's business only: nobody else finds a conversation by it
        return self._gmail_where(
            [
                "|",
                ("address_ids", "any", [("role", "!=", "bcc"), *match]),
                "&",
                ("owner_id", "=", self.env.uid),
                ("address_ids", "any", match),
            ]
        )

    def _search_direction(self, operator, value):
        return self._gmail_where([("direction", operator, value)])

    def _search_has_attachments(self, operator, value):
        return self._gmail_where([("has_attachments", operator, value)])

    def _search_owner_ids(self, operator, value):
        return self._gmail_where([("owner_id", operator, value)])

    def _search_is_mine(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on %(field)s.", field="is_mine"))
        mine = (operator == "=") == value
        return self._gmail_where([("owner_id", "=" if mine else "!=", self.env.uid)])

    def _search_message_ids(self, operator, value):
        if operator == "!=" and value is False:
            return self._search_is_visible("=", True)
        if operator not in ("in", "=") or not (
            isinstance(value, Query) or _int_list(value) is not None
        ):
            raise UserError(self.env._("Unsupported search on %(field)s.", field="message_ids"))
        ids = value if isinstance(value, Query) else _int_list(value)
        return self._gmail_where([("id", "in", ids)])

    def _search_last_date(self, operator, value):
        return self._gmail_search_aggregate("last_date", operator, value)

    def _search_message_count(self, operator, value):
        return self._gmail_search_aggregate("message_count", operator, value)

    def _gmail_search_aggregate(self, fname, operator, value):
        """Conversations by a per-user aggregate (what the list shows and groups by)."""
        field = self._fields[fname]
        try:
            if operator not in ("=", "!=", "<", "<=", ">", ">=") or value is False:
                raise ValueError(operator)
            value = field.convert_to_column(value, self)
        except (ValueError, TypeError):
            raise UserError(self.env._("Unsupported search on %(field)s.", field=fname)) from None
        visible = self._gmail_visible_query()
        table = SQL.identifier(visible.table)
        aggregate = SQL(AGGREGATES[fname].replace("m.", f'"{visible.table}".'))
        return [
            (
                "id",
                "in",
                SQL(
                    """(SELECT %(t)s.conversation_id FROM %(from)s WHERE %(where)s
                         GROUP BY %(t)s.conversation_id HAVING %(agg)s %(op)s %(value)s)""",
                    t=table,
                    agg=aggregate,
                    op=SQL(operator),
                    value=value,
                    **{"from": visible.from_clause, "where": visible.where_clause},
                ),
            )
        ]

    def _search_last_direction(self, operator, value):
        values = [] if value is False else [value] if isinstance(value, str) else value
        if operator not in ("=", "!=", "in", "not in") or not (
            isinstance(values, (list, tuple)) and all(isinstance(v, str) for v in values)
        ):
            raise UserError(self.env._("Unsupported search on %(field)s.", field="last_direction"))
        values = list(values)
        visible = self._gmail_visible_query()
        table = SQL.identifier(visible.table)
        last = SQL(
            """SELECT DISTINCT ON (%(t)s.conversation_id) %(t)s.conversation_id AS c,
                      %(t)s.direction AS d
                 FROM %(from)s WHERE %(where)s
                ORDER BY %(t)s.conversation_id, %(t)s.date DESC, %(t)s.id DESC""",
            t=table,
            **{"from": visible.from_clause, "where": visible.where_clause},
        )
        negate = operator in ("!=", "not in")
        return [
            (
                "id",
                "in",
                SQL(
                    "(SELECT c FROM (%s) last WHERE %s d = ANY(%s))",
                    last,
                    SQL("NOT") if negate else SQL(),
                    values,
                ),
            )
        ]

    def _search_lead_ids(self, operator, value):
        return self._gmail_search_pairs("lead_ids", operator, value)

    def _search_partner_ids(self, operator, value):
        return self._gmail_search_pairs("partner_ids", operator, value)

    def _gmail_search_pairs(self, fname, operator, value):
        """Conversations by the leads/deals or contacts they show on: ids, a name (the
        search view's text), "is (not) set", an ``any`` the ORM resolved (a query);
        odd values are a user error, never SQL."""
        comodel = self.env[self._fields[fname].comodel_name]
        negative = operator in expression.NEGATIVE_TERM_OPERATORS
        if negative:
            operator = expression.TERM_OPERATORS_NEGATION[operator]
        if operator == "=" and value is False:  # "is not set": no such record
            negative, where = not negative, SQL("TRUE")
        elif operator in ("=", "in") and isinstance(value, Query):
            where = SQL("value IN %s", value.subselect())
        elif operator in ("=", "in") and _int_list(value) is not None:
            where = SQL("value = ANY(%s)", _int_list(value))
        elif operator in ("=", "like", "ilike", "=like", "=ilike") and isinstance(value, str):
            where = SQL(
                "value IN %s", comodel._search([("display_name", operator, value)]).subselect()
            )
        else:
            raise UserError(self.env._("Unsupported search on %(field)s.", field=fname))
        return [
            (
                "id",
                "not in" if negative else "in",
                SQL(
                    "(SELECT conversation_id FROM (%s) p WHERE %s)",
                    self._gmail_pairs_sql(fname),
                    where,
                ),
            )
        ]

    # ------------------------------------------------------------ actions
    def action_gmail_reply(self):
        return self._gmail_reply_action("reply")

    def action_gmail_reply_all(self):
        return self._gmail_reply_action("reply_all")

    def _gmail_reply_action(self, mode):
        """A reply to the conversation's latest email the user can read (not one of their
        own emails still on its way)."""
        self.ensure_one()
        latest = self.env["crm.gmail.message"].search(
            [
                ("conversation_id", "=", self.id),
                "|",
                ("send_state", "=", False),
                ("send_state", "=", "sent"),
            ],
            order="date desc, id desc",
            limit=1,
        )
        if not latest:
            raise UserError(self.env._("There is no email to reply to in this conversation."))
        return latest._gmail_compose_action(mode)

    @api.model
    def action_gmail_compose(self):
        """The composer for a new email (the Emails tab's "Compose")."""
        return self.env["crm.gmail.message"]._gmail_compose_action("new")

    def action_open(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "views": [(False, "form")],
            "target": "current",
        }

    # ------------------------------------------------------------ business
    @api.model
    def _gmail_rows_sql(self):
        """SQL ``(conversation_id, date, owner_id, mailbox_id)`` of the emails the real
        current user may read (also under sudo()), from the covering indexes alone."""
        return self.env["crm.gmail.message"]._accessible_rows_sql()

    @api.model
    def _gmail_visible_query(self, message_domain=()):
        """A query over the emails the *real* current user may read (also under sudo()),
        unordered, restricted by ``message_domain``."""
        Message = self.env["crm.gmail.message"].sudo().with_context(active_test=False)
        query = Message._search([("is_accessible", "=", True), *message_domain])
        query.order = None
        return query

    def _gmail_visible_messages(self):
        """The emails of these conversations the real current user may read, oldest first
        (a superuser recordset: read only what the rule lets the user read)."""
        Message = self.env["crm.gmail.message"].sudo().with_context(active_test=False)
        return Message.search(
            [("is_accessible", "=", True), ("conversation_id", "in", self.ids)], order="date, id"
        )

    @api.model
    def _gmail_pairs_sql(self, fname):
        """SQL ``(conversation_id, value)`` of the readable emails: their owners, or the
        leads/deals and contacts they show on (records the user may read)."""
        if fname == "owner_ids":
            return SQL(
                "SELECT DISTINCT conversation_id, owner_id AS value FROM (%s) v",
                self._gmail_rows_sql(),
            )
        visible = self._gmail_visible_query()
        m = SQL.identifier(visible.table)
        address = SQL(
            """JOIN crm_gmail_message_address a ON a.message_id = %s.id
                AND (a.role != 'bcc' OR %s.owner_id = %s)""",
            m,
            m,
            self.env.uid,
        )
        if fname == "partner_ids":
            # as _gmail_links: colleagues are no contact an email is "on"
            partners = self.env["crm.gmail.message"]._gmail_contacts_query()
            return SQL(
                """SELECT DISTINCT %s.conversation_id, p.id AS value FROM %s %s
                     JOIN res_partner p ON p.gmail_email_key = a.email
                    WHERE %s AND p.id IN %s""",
                m,
                visible.from_clause,
                address,
                visible.where_clause,
                partners.subselect(),
            )
        leads = self.env["crm.lead"]._search([])
        return SQL(
            """SELECT DISTINCT %s.conversation_id, l.id AS value FROM %s %s
                 JOIN crm_lead l ON l.gmail_email_key = a.email
                WHERE %s AND l.id IN %s
               UNION
               SELECT DISTINCT %s.conversation_id, l.id FROM %s %s
                 JOIN res_partner p ON p.gmail_email_key = a.email
                 JOIN crm_lead l ON l.partner_id = p.id AND l.type = 'opportunity'
                WHERE %s AND l.id IN %s""",
            m,
            visible.from_clause,
            address,
            visible.where_clause,
            leads.subselect(),
            m,
            visible.from_clause,
            address,
            visible.where_clause,
            leads.subselect(),
        )

    def _gmail_visible_rows(self):
        """:meth:`crm.gmail.message._gmail_rows` of the emails of these conversations the
        real current user may read, oldest first: one query."""
        if not self.ids:
            return []
        visible = self._gmail_visible_query([("conversation_id", "in", self.ids)])
        return self.env["crm.gmail.message"]._gmail_rows(
            visible.select(SQL.identifier(visible.table, "id"))
        )

    def _gmail_view_data(self):
        """``{conversation id: values}`` of what the list shows, for the real user: two
        queries for the whole page, whatever the number of emails."""
        Message = self.env["crm.gmail.message"]
        rows = self._gmail_visible_rows()
        uid = self.env.uid
        data = {}
        owners = {}
        for row in rows:
            vals = data.setdefault(
                row["conversation_id"],
                {"identities": set(), "owner_ids": [], "has_attachments": False},
            )
            vals.setdefault("subject", row["subject"])
            vals["identities"].add(row["identity"])
            vals["last_date"] = row["date"]
            vals["last_direction"] = row["direction"]
            vals["has_attachments"] |= bool(row["has_attachments"])  # NULL before 18.0.1.3.0
            if row["owner_id"] not in vals["owner_ids"]:
                vals["owner_ids"].append(row["owner_id"])
            owners[row["owner_id"]] = row["owner_name"]
        by_message = {row["id"]: row for row in rows}
        names_by_conv = {}
        addresses = Message._gmail_addresses(list(by_message), uid, by_message, contact_names=True)
        for address in addresses:
            conv = by_message[address["message_id"]]["conversation_id"]
            names = names_by_conv.setdefault(conv, {})
            if not names.get(address["email"]):
                names[address["email"]] = address["name"] or address["contact_name"]
        for conv, vals in data.items():
            vals["message_count"] = len(vals.pop("identities"))
            vals["participants"] = ", ".join(
                name or email for email, name in names_by_conv.get(conv, {}).items()
            )
            others = [owners[o] for o in vals["owner_ids"] if o != uid]
            vals["shared_by"] = ", ".join(others) or False
        return data

    @api.model
    def _gmail_conversations_of(self, keys):
        """``{address: {conversation id: last date}}`` of the readable emails with these
        participants (one query; Bcc only for the owner)."""
        return self.env["crm.gmail.message"]._conversations_by_address(keys)


def _int_list(value):
    """``value`` as a list of record ids (an id or a list of them), or None."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return values
    return None
