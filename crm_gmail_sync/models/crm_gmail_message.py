import datetime as dt

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.osv import expression
from odoo.tools import SQL, html_sanitize, plaintext2html

from ..engine.types import DIRECTION_SENT
from .crm_gmail_conversation_render import render_cards
from .crm_gmail_restricted_mixin import readable_by_real_user
from .ir_attachment import STORE_CONTEXT
from .res_groups import GROUP_SEAT

PARAM_ADMIN_READS_ALL = "crm_gmail_sync.admin_reads_all"
SHARED_MAILBOXES = SQL("SELECT id FROM crm_gmail_mailbox WHERE visibility = 'shared'")


class CrmGmailMessage(models.Model):
    """One synced customer email, stored once per mailbox."""

    _name = "crm.gmail.message"
    _inherit = ["crm.gmail.restricted.mixin"]
    _description = "Synced email"
    _order = "date desc, id desc"
    _rec_name = "subject"

    # ------------------------------------------------------------ fields
    mailbox_id = fields.Many2one(
        "crm.gmail.mailbox",
        required=True,
        index=True,
        ondelete="cascade",
        readonly=True,
    )
    owner_id = fields.Many2one(
        "res.users",
        required=True,
        index=True,
        ondelete="cascade",
        readonly=True,
    )
    visibility = fields.Selection(related="mailbox_id.visibility", string="Mailbox visibility")
    direction = fields.Selection(
        [("received", "Received"), ("sent", "Sent")],
        required=True,
        default="received",
        readonly=True,
    )
    email_from = fields.Char(string="From", readonly=True)
    email_to = fields.Char(string="To", readonly=True)
    email_cc = fields.Char(string="Cc", readonly=True)
    email_reply_to = fields.Char(string="Reply-To", readonly=True)
    email_bcc = fields.Char(
        string="Bcc",
        compute="_compute_email_bcc",
        help="Shown to the mailbox owner only.",
    )
    date = fields.Datetime(required=True, index=True, readonly=True)
    subject = fields.Char(readonly=True)
    # Sanitised once, in _engine_vals, with the options of a sanitising Html field:
    # a sanitising field would clean every body twice on create (column and cache), and
    # synced emails are never written afterwards (no write access, see the access CSV).
    body_html = fields.Html(string="Body", readonly=True, sanitize=False)
    preview = fields.Char(readonly=True)
    thread_key = fields.Char(index=True, readonly=True)
    conversation_id = fields.Many2one(
        "crm.gmail.conversation", index=True, readonly=True, ondelete="set null"
    )
    has_attachments = fields.Boolean(
        string="With attachments",
        readonly=True,
        help="The email has attachments besides the images shown in its text.",
    )
    message_id_header = fields.Char(string="Message-ID", index=True, readonly=True)
    in_reply_to = fields.Char(string="In-Reply-To", readonly=True)
    references = fields.Text(readonly=True)
    gmail_msgid = fields.Char(string="Gmail message id", readonly=True)
    gmail_thrid = fields.Char(string="Gmail thread id", readonly=True)
    dedupe_key = fields.Char(required=True, readonly=True)
    folder = fields.Char(readonly=True)
    server_uid = fields.Char(string="Server UID", readonly=True)
    size = fields.Integer(readonly=True)
    address_ids = fields.One2many(
        "crm.gmail.message.address", "message_id", string="Participants", readonly=True
    )
    attachment_ids = fields.One2many(
        "ir.attachment",
        "res_id",
        string="Attachments",
        readonly=True,
        domain=[("res_model", "=", "crm.gmail.message")],
    )
    attachment_count = fields.Integer(compute="_compute_attachment_count")
    card_html = fields.Html(string="Email", compute="_compute_card_html", sanitize=False)
    is_accessible = fields.Boolean(
        string="Readable by me",
        compute="_compute_is_accessible",
        search="_search_is_accessible",
        help="Technical: the visibility rule of synced emails, used by the record rule.",
    )

    _sql_constraints = [
        (
            "dedupe_key_mailbox_uniq",
            "unique(mailbox_id, dedupe_key)",
            "An email is stored only once per mailbox.",
        ),
    ]

    # ------------------------------------------------------------ compute
    @api.depends("address_ids.role", "address_ids.email")
    @api.depends_context("uid")
    def _compute_email_bcc(self):
        for message in self:
            if message.owner_id.id != self.env.uid:
                message.email_bcc = False
                continue
            bcc = message.sudo().address_ids.filtered(lambda a: a.role == "bcc")
            message.email_bcc = ", ".join(bcc.mapped("email")) or False

    def _compute_attachment_count(self):
        data = self.env["ir.attachment"]._read_group(
            [("res_model", "=", self._name), ("res_id", "in", self.ids)], ["res_id"], ["__count"]
        )
        counts = dict(data)
        for message in self:
            message.attachment_count = counts.get(message.id, 0)

    @api.depends_context("uid", "lang", "tz")
    def _compute_card_html(self):
        """The email as a card, as its conversation shows it (for who may read it)."""
        readable = readable_by_real_user(self)
        for message in self:
            if message not in readable:
                message.card_html = False
                continue
            email = message.sudo()
            emails = [
                a.email
                for a in email.address_ids
                if a.role != "bcc" or email.owner_id.id == self.env.uid
            ]
            links = self._gmail_links(emails)
            leads = {lid for e in emails for lid in links["leads"].get(e, ())}
            partners = {pid for e in emails for pid in links["partners"].get(e, ())}
            message.card_html = render_cards(
                self.env,
                email,
                self.env["crm.lead"].browse(sorted(leads)),
                self.env["res.partner"].browse(sorted(partners)),
            )

    @api.depends_context("uid")
    def _compute_is_accessible(self):
        # For the current *user*, also in superuser mode: check_access() and has_access()
        # (and ir.attachment's check through them) evaluate the record rule with
        # self.sudo().filtered_domain(), which reads this field as superuser.
        records = self.sudo(False)
        visible = set(records.search([("id", "in", records.ids)])._ids) if self.ids else set()
        for message in self:
            message.is_accessible = message.id in visible

    def _search_is_accessible(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on %(field)s.", field="is_accessible"))
        self._flush_visibility_inputs()
        domain = self._accessible_domain()
        if (operator == "=") == value:
            return domain
        return ["!", *expression.normalize_domain(domain)]

    @api.model
    def _gmail_neutral_name(self):
        return self.env._("Email (no access)")

    # ------------------------------------------------------------ actions
    def action_open_conversation(self):
        self.ensure_one()
        return self.conversation_id.action_open()

    # ------------------------------------------------------------ business
    @api.model
    def _flush_visibility_inputs(self):
        """Write pending ORM changes that the visibility SQL reads."""
        self.env["crm.gmail.mailbox"].flush_model(["active", "visibility", "user_id"])
        self.env["res.users"].flush_model(["active", "groups_id"])
        self.env["res.groups"].flush_model(["users"])
        self.env["crm.gmail.share"].flush_model()
        self.env["crm.lead"].flush_model(["gmail_email_key", "partner_id", "type"])
        self.env["res.partner"].flush_model(["gmail_email_key"])
        self.env["crm.gmail.message.address"].flush_model()
        self.flush_model(["owner_id", "mailbox_id", "is_shared"])
        self._gmail_refresh_dirty()

    @api.model
    def _accessible_domain(self):
        """The domain of the emails the current user may read (the record rule's meaning).

        - only emails of an active mailbox whose owner is active and holds a seat, and
          only for readers who hold a seat themselves (the Mail add-on);
        - the owner reads them all;
        - anybody else reads an email of a *shared* mailbox when its owner shared a
          lead/deal/contact whose *current* address is among its participants (a deal:
          its own address or its main contact's); Bcc never links for others;
        - Settings admins follow the same rule unless ``crm_gmail_sync.admin_reads_all``.

        Conditions on the row itself (not ``id IN (all readable ids)``), so that
        PostgreSQL combines them with the caller's own filters and indexes.
        """
        mode = self._accessible_mode()
        if mode == "none":
            return expression.FALSE_DOMAIN  # without the Mail add-on no synced mail at all
        domain = [("mailbox_id", "in", self._readable_mailboxes_sql())]
        if mode == "all":
            return domain
        # is_shared: the owner's share covers the email (crm_gmail_message_sharing.py);
        # the mailbox's visibility is read live, as the owner can switch it at any time
        return [
            *domain,
            "|",
            ("owner_id", "=", self.env.uid),
            "&",
            ("is_shared", "=", True),
            ("mailbox_id", "in", SQL("(%s)", SHARED_MAILBOXES)),
        ]

    @api.model
    def _accessible_rows_sql(self):
        """SQL ``(conversation_id, date, owner_id, mailbox_id)`` of the emails the current
        user may read: :meth:`_accessible_domain` as a ``UNION ALL`` of its two branches,
        the owner's own emails and the others' shared ones, so that each is read from its
        covering index alone (the ``OR`` of the domain makes PostgreSQL scan the table)."""
        self._flush_visibility_inputs()
        columns = SQL("conversation_id, date, owner_id, mailbox_id")
        mode = self._accessible_mode()
        if mode == "none":
            return SQL("SELECT %s FROM crm_gmail_message WHERE FALSE", columns)
        readable = self._readable_mailboxes_sql()
        if mode == "all":
            return SQL("SELECT %s FROM crm_gmail_message WHERE mailbox_id IN %s", columns, readable)
        # "mailbox_id + 0": the mailboxes are a filter on the index's rows, never a way in
        # (a misestimated mailbox list would make PostgreSQL read every shared mailbox's
        # emails from the table instead of the small partial index)
        return SQL(
            """SELECT %(columns)s FROM crm_gmail_message
                WHERE owner_id = %(uid)s AND mailbox_id + 0 IN %(readable)s
               UNION ALL
               SELECT %(columns)s FROM crm_gmail_message
                WHERE is_shared AND owner_id != %(uid)s AND mailbox_id + 0 IN %(readable)s
                  AND mailbox_id + 0 IN (%(shared)s)""",
            columns=columns,
            uid=self.env.uid,
            readable=readable,
            shared=SHARED_MAILBOXES,
        )

    @api.model
    def _accessible_mode(self):
        """``"none"`` (no seat: no synced mail), ``"all"`` (a Settings admin with
        ``crm_gmail_sync.admin_reads_all``) or ``"rule"``."""
        if self.env.user._is_system() and self.env["ir.config_parameter"].sudo().get_param(
            PARAM_ADMIN_READS_ALL
        ) in ("1", "True", "true"):
            return "all"
        if not self.env.user._has_group(GROUP_SEAT):
            return "none"
        return "rule"

    @api.model
    def _readable_mailboxes_sql(self):
        """SQL ``(SELECT id ...)``: the active mailboxes of active owners with a seat."""
        seat_id = self.env["ir.model.data"]._xmlid_to_res_id(GROUP_SEAT)  # cached
        return SQL(
            """(SELECT b.id FROM crm_gmail_mailbox b
                  JOIN res_users u ON u.id = b.user_id AND u.active
                 WHERE b.active
                   AND EXISTS (SELECT 1 FROM res_groups_users_rel r
                                WHERE r.uid = b.user_id AND r.gid = %s))""",
            seat_id,
        )

    @api.model
    def _ids_by_address(self, keys):
        """``({address: [message ids]}, {message id: rank})`` of the readable emails
        with these participants, rank 0 being the newest.

        One query for any number of addresses; the record rules of the current user
        apply. Bcc counts only for the owner.
        """
        keys = [k for k in set(keys) if k]
        if not keys:
            return {}, {}
        self._flush_visibility_inputs()
        self.flush_model(["date"])
        query, alias = self._linked_query()
        rows = self._linked_rows(
            keys,
            query,
            SQL.identifier(alias, "email"),
            SQL.identifier(self._table, "id"),
            SQL.identifier(self._table, "date"),
        )
        rows.sort(key=lambda row: (row[2], row[1]), reverse=True)
        out, rank = {}, {}
        for email, message_id, _date in rows:
            out.setdefault(email, []).append(message_id)
            rank.setdefault(message_id, len(rank))
        return out, rank

    @api.model
    def _linked_query(self):
        """``(query, alias)``: the readable emails joined to their participants among the
        addresses of ``gs_linked`` (see :meth:`_linked_rows`), Bcc only for the owner;
        unordered."""
        query = self._search([("id", "in", SQL("(SELECT message_id FROM gs_linked)"))])
        query.order = None  # ORDER BY date would make PostgreSQL walk every email
        alias = query.make_alias(self._table, "gs_address")
        query.add_join(
            "JOIN",
            alias,
            SQL.identifier("gs_linked"),
            SQL(
                "%s = %s AND (%s != 'bcc' OR %s = %s)",
                SQL.identifier(alias, "message_id"),
                SQL.identifier(self._table, "id"),
                SQL.identifier(alias, "role"),
                SQL.identifier(self._table, "owner_id"),
                self.env.uid,
            ),
        )
        return query, alias

    @api.model
    def _linked_rows(self, keys, query, *columns):
        """One query: the participants with the addresses ``keys`` first (index on
        (email, message_id)), materialised so that PostgreSQL starts there, then the
        record rules' conditions of ``query`` on those emails only."""
        return self.env.execute_query(
            SQL(
                """WITH gs_linked AS MATERIALIZED (
                       SELECT message_id, email, role FROM crm_gmail_message_address
                        WHERE email = ANY(%s))
                   %s""",
                keys,
                query.select(*columns),
            )
        )

    @api.model
    def _search_linked(self, model, operator, value):
        """Search ``crm.lead``/``res.partner`` by their linked emails (``in`` ids only)."""
        if operator not in ("in", "=") or value is False:
            raise UserError(self.env._("Unsupported search on the linked emails."))
        ids = [value] if isinstance(value, int) else value
        # The participants the current user may read: the record rules hide the emails
        # of others and the Bcc of anybody but the owner, so that this is no oracle.
        addresses = self.env["crm.gmail.message.address"].search([("message_id", "in", ids)])
        keys = set(addresses.mapped("email"))
        if model == "crm.lead":
            return [
                "|",
                ("gmail_email_key", "in", list(keys)),
                "&",
                ("type", "=", "opportunity"),
                ("partner_id.gmail_email_key", "in", list(keys)),
            ]
        return [("gmail_email_key", "in", list(keys))]

    @api.model
    def _conversations_by_address(self, keys):
        """``{address: {conversation id: last date}}`` of the readable emails with these
        participants: one query, the record rules of the current user applying (Bcc only
        for the owner), as :meth:`_ids_by_address`."""
        keys = [k for k in set(keys) if k]
        if not keys:
            return {}
        self._flush_visibility_inputs()
        self.flush_model(["date", "conversation_id"])
        query, alias = self._linked_query()
        email = SQL.identifier(alias, "email")
        conversation = SQL.identifier(self._table, "conversation_id")
        query.groupby = SQL("%s, %s", email, conversation)
        rows = self._linked_rows(
            keys, query, email, conversation, SQL("max(%s)", SQL.identifier(self._table, "date"))
        )
        out = {}
        for address, conversation_id, date in rows:
            if conversation_id:
                out.setdefault(address, {})[conversation_id] = date
        return out

    @api.model
    def _gmail_rows(self, ids_sql):
        """The values the conversation list reads of the emails whose ids the SQL
        ``ids_sql`` selects (the caller restricted it to what the user may read), oldest
        first: one query."""
        return self.env.execute_query_dict(
            SQL(
                """SELECT m.id, m.conversation_id, m.subject, m.date, m.direction, m.owner_id,
                          m.has_attachments,
                          COALESCE(m.message_id_header, 'id:' || m.id) AS identity,
                          p.name AS owner_name
                     FROM crm_gmail_message m
                     JOIN res_users u ON u.id = m.owner_id
                     JOIN res_partner p ON p.id = u.partner_id
                    WHERE m.id IN (%s)
                    ORDER BY m.date, m.id""",
                ids_sql,
            )
        )

    @api.model
    def _gmail_addresses(self, message_ids, uid, rows_by_id, contact_names=False):
        """The participants of these (readable) emails, Bcc only of the user's own: one
        query. With ``contact_names``, a participant without a name in the email gets
        the name of its contact (``contact_name``, among those the user may read)."""
        if not message_ids:
            return []
        contact = SQL("NULL")
        if contact_names:
            contact = SQL(
                """CASE WHEN COALESCE(a.name, '') = '' THEN
                       (SELECT c.name FROM res_partner c
                         WHERE c.gmail_email_key = a.email AND c.id IN %s
                         ORDER BY c.id LIMIT 1) END""",
                self._gmail_contacts_query().subselect(),
            )
        rows = self.env.execute_query_dict(
            SQL(
                """SELECT a.message_id, a.email, a.name, a.role, %s AS contact_name
                     FROM crm_gmail_message_address a
                    WHERE a.message_id = ANY(%s) ORDER BY a.message_id, a.id""",
                contact,
                message_ids,
            )
        )
        return [
            row
            for row in rows
            if row["role"] != "bcc" or rows_by_id[row["message_id"]]["owner_id"] == uid
        ]

    @api.model
    def _gmail_contacts_query(self, emails=None):
        """The contacts (the current user may read) emails are "on": those with an
        address (among ``emails``), colleagues aside (as for the customer test of the
        sync)."""
        return self.env["res.partner"]._search(
            [
                ("gmail_email_key", "in", emails) if emails else ("gmail_email_key", "!=", False),
                ("user_ids", "not any", [("share", "=", False)]),
            ]
        )

    @api.model
    def _gmail_links(self, emails):
        """``{"leads": {address: [ids]}, "partners": {address: [ids]}}``: the leads/deals
        and contacts these addresses show on, among those the current user may read (a
        deal through its main contact too)."""
        emails = [e for e in emails if e]
        out = {"leads": {}, "partners": {}, "names": {}}
        if not emails:
            return out
        leads = self.env["crm.lead"]._search(
            [
                "|",
                ("gmail_email_key", "in", emails),
                "&",
                ("type", "=", "opportunity"),
                ("partner_id.gmail_email_key", "in", emails),
            ]
        )
        partners = self._gmail_contacts_query(emails)
        wanted = set(emails)
        for kind, record_id, own, contact, name in self.env.execute_query(
            SQL(
                """SELECT 'lead', l.id, l.gmail_email_key,
                          CASE WHEN l.type = 'opportunity' THEN p.gmail_email_key END, NULL
                     FROM crm_lead l LEFT JOIN res_partner p ON p.id = l.partner_id
                    WHERE l.id IN %s
                   UNION ALL
                   SELECT 'partner', id, gmail_email_key, NULL, name
                     FROM res_partner WHERE id IN %s
                    ORDER BY 1, 2""",
                leads.subselect(),
                partners.subselect(),
            )
        ):
            if kind == "lead":
                for key in {own, contact} & wanted:
                    out["leads"].setdefault(key, []).append(record_id)
            else:
                out["partners"].setdefault(own, []).append(record_id)
                out["names"].setdefault(own, name)
        return out

    def _gmail_share_note(self):
        """What the owner is told about who else sees these emails of theirs."""
        if not self:
            return False
        mailboxes = self.mapped("mailbox_id")
        if all(box.visibility == "private" for box in mailboxes):
            return self.env._("Private mailbox: only you see these emails.")
        self._gmail_refresh_dirty()
        if any(m.is_shared and m.mailbox_id.visibility == "shared" for m in self):
            return self.env._(
                'Shared: colleagues see your emails here, as you ticked "Share my emails" '
                "on the lead, deal or contact."
            )
        return self.env._(
            'Not shared: tick "Share my emails" on the lead, deal or contact to let '
            "colleagues see them."
        )

    # ------------------------------------------------------------ sync storage
    @api.model
    def _create_from_engine(self, mailbox, parsed_messages, owner):
        """Store the engine's :class:`ParsedMessage` list of ``mailbox``: one ``create``
        each for the emails, their participants and their attachments.

        The engine decided the participants' roles and the preview (``msg.roles``,
        ``msg.preview``); ``owner`` is no longer needed and kept for the callers."""
        if not parsed_messages:
            return self.browse()
        records = self.create([_no_nul(self._engine_vals(mailbox, msg)) for msg in parsed_messages])
        address_vals, attachment_vals = [], []
        for record, msg in zip(records, parsed_messages):
            address_vals += map(_no_nul, self._engine_address_vals(record, msg))
            attachment_vals += [
                _no_nul(
                    {
                        "name": att.filename or "attachment",
                        "raw": att.content,
                        "mimetype": att.mimetype,
                        "res_model": self._name,
                        "res_id": record.id,
                        "description": att.content_id or False,
                    }
                )
                for att in msg.attachments
            ]
        self.env["crm.gmail.message.address"].create(address_vals)
        if attachment_vals:
            # Odoo's filestore GC removes the checklisted files that no committed row names,
            # under LOCK ir_attachment IN SHARE MODE: held off until this transaction ends,
            # it cannot take a file written (or found and reused) here before its row exists.
            self.env.cr.execute("LOCK TABLE ir_attachment IN ROW EXCLUSIVE MODE")
            # written so that a crash or a full disk cannot cost an email: ir_attachment.py
            self.env["ir.attachment"].with_context(**{STORE_CONTEXT: True}).create(attachment_vals)
        self._gmail_refresh_shared(SQL("SELECT unnest(%s::int[])", records.ids))
        # last: the assignment holds a lock on conversations until the batch's commit
        self.env["crm.gmail.conversation.key"]._gmail_assign(records)
        return records

    @api.model
    def _engine_vals(self, mailbox, msg):
        head = msg.header
        date = head.date
        if date is not None:
            if date.tzinfo is not None:
                date = date.astimezone(dt.timezone.utc).replace(tzinfo=None)
        if msg.body_html:
            body = html_sanitize(msg.body_html, sanitize_attributes=True, sanitize_form=True)
        else:
            body = plaintext2html(msg.body_text) if msg.body_text else False
        return {
            "mailbox_id": mailbox.id,
            "owner_id": mailbox.user_id.id,
            "dedupe_key": head.dedupe_key,
            "direction": "sent" if head.direction == DIRECTION_SENT else "received",
            "email_from": _format(head.from_),
            "email_to": _format(head.to),
            "email_cc": _format(head.cc),
            "email_reply_to": _format(head.reply_to),
            "date": date or fields.Datetime.now(),
            "subject": head.subject or False,
            "body_html": body,
            # what the reader sees: never text the sanitiser removes (see engine/preview.py)
            "preview": msg.preview or False,
            "thread_key": msg.thread_key or False,
            "message_id_header": head.message_id or False,
            "in_reply_to": head.in_reply_to or False,
            "references": " ".join(head.references) or False,
            "gmail_msgid": head.gmail_msgid or False,
            "gmail_thrid": head.gmail_thrid or False,
            "folder": head.folder or False,
            "server_uid": head.uid or False,
            "size": head.size or 0,
            "has_attachments": any(not att.inline for att in msg.attachments),
        }

    @api.model
    def _engine_address_vals(self, record, msg):
        return [
            {
                "message_id": record.id,
                "email": address.email,
                "name": address.name or False,
                "role": role,
            }
            for role, address in msg.roles
        ]


def _no_nul(vals):
    """``vals`` without NUL characters in its texts: PostgreSQL cannot store them, and
    decoded mail can hold them (quoted-printable ``=00``, base64, encoded words)."""
    return {
        key: value.replace("\x00", "") if isinstance(value, str) else value
        for key, value in vals.items()
    }


def _format(addresses):
    parts = []
    for address in addresses:
        if address.name:
            name = address.name.replace('"', "'")
            parts.append(f'"{name}" <{address.email}>')
        else:
            parts.append(address.email)
    return ", ".join(parts) or False
