"""Sending: emails written in Odoo and sent through their owner's own mailbox.

What it is
----------
An outgoing email is a ``crm.gmail.message`` like a synced one (its mailbox, owner,
participants, attachments, conversation and visibility are the same fields, read by the
same record rules), with a ``send_state``: *queued* (for :data:`UNDO_SECONDS` it can still
be undone), *sending*, *sent*, or *failed* with a ``failure_type`` and the server's words.
It shows on its records and in its conversation the moment it is queued.

How it works
------------
- :meth:`_gmail_queue` builds the MIME message once (``engine/outgoing.py``), with its
  Message-ID, keeps its bytes (``raw_mime``) and stores the email through the sync's own
  storing path (:meth:`_create_from_engine`), so that it is stored exactly as a synced
  copy would be; Bcc addresses are participants visible to the owner only.
- :meth:`_cron_send` (every minute) claims the due emails (``FOR UPDATE SKIP LOCKED``),
  marks them *sending* and commits, then opens one SMTP session per mailbox and sends each
  email once, committing its outcome at once. Temporary failures are queued again later
  (:data:`RETRY_DELAYS`), permanent ones wait for the user.
- **Never twice.** An email found *sending* (its worker died) or whose last attempt ended
  after the message's last byte (``unknown``) is looked up by Message-ID in the mailbox's
  Sent folder first: found, it is sent; not found, it is sent again.
- **The Sent copy once.** Gmail files mail sent through its SMTP in Sent itself; other IMAP
  servers get an ``APPEND``. When the sync meets the copy, :meth:`_gmail_adopt_sent` makes
  the outgoing email that copy (Gmail's ids, folder, UID) instead of storing it again.
"""

import base64
import datetime as dt
import logging

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..engine import normalize_email, parse_message
from ..engine.outgoing import (
    LimitError,
    OutgoingAttachment,
    OutgoingEmail,
    build_mime,
    check_limits,
    envelope_recipients,
    make_message_id,
    reply_references,
)
from ..engine.transport_imap import ImapTransport
from ..engine.transport_smtp import SEND_UNKNOWN, SendError, SmtpTransport
from ..engine.types import DIRECTION_SENT, PROTOCOL_IMAP, Account, Address

_logger = logging.getLogger(__name__)

UNDO_SECONDS = 10
RETRY_DELAYS = (60, 300, 900, 3600, 4 * 3600)  # seconds before the 1st, 2nd... retry
DAILY_LIMIT = 500  # Gmail's sending limit per rolling 24 hours (Workspace: 2,000)
DAILY_WARNING = 450
COMMIT_CONTEXT = "crm_gmail_sync_no_commit"


class CrmGmailMessage(models.Model):
    _inherit = "crm.gmail.message"

    # ------------------------------------------------------------ fields
    send_state = fields.Selection(
        [("queued", "Queued"), ("sending", "Sending"), ("sent", "Sent"), ("failed", "Failed")],
        string="Sending",
        readonly=True,
        copy=False,
        index=True,
        help="Emails written in Odoo: queued (can still be undone), sending, sent or failed.",
    )
    failure_type = fields.Selection(
        [
            ("auth", "Login refused"),
            ("recipient", "Recipient refused"),
            ("too_large", "Too large"),
            ("quota", "Sending limit reached"),
            ("network", "Server not reachable"),
            ("tls", "Secure connection failed"),
            ("refused", "Refused by the server"),
            ("unknown", "Outcome unknown"),
        ],
        readonly=True,
        copy=False,
    )
    failure_reason = fields.Text(string="Server's answer", readonly=True, copy=False)
    send_after = fields.Datetime(
        string="Send at", readonly=True, copy=False, help="Not before: undo until then."
    )
    send_attempts = fields.Integer(string="Attempts", readonly=True, copy=False)
    raw_mime = fields.Binary(string="Sent message", attachment=True, readonly=True, copy=False)

    # ------------------------------------------------------------ actions
    def action_gmail_reply(self):
        return self._gmail_compose_action("reply")

    def action_gmail_reply_all(self):
        return self._gmail_compose_action("reply_all")

    def _gmail_compose_action(self, mode, record=None):
        """The composer: a new email (about ``record``, a lead/deal or contact) or a
        reply / reply-all to this email."""
        context = {"default_reply_mode": mode}
        if mode != "new":
            self.ensure_one()
            context["default_parent_id"] = self.id
        if record:
            context.update(default_res_model=record._name, default_res_id=record.id)
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Write an email"),
            "res_model": "crm.gmail.composer",
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
            "context": context,
        }

    def action_gmail_send_now(self):
        for message in self._gmail_own_outgoing(("queued", "failed")):
            message.sudo().write({"send_state": "queued", "send_after": fields.Datetime.now()})
        self.env.ref("crm_gmail_sync.ir_cron_crm_gmail_sync_send")._trigger()
        return True

    def action_gmail_undo(self):
        """Take back a queued email (within the undo time): it is deleted, and a composer
        with its recipients, subject and text opens again."""
        self.ensure_one()
        message = self._gmail_own_outgoing(("queued",))
        if not message:
            raise UserError(self.env._("This email is on its way already: it cannot be undone."))
        # a claim is taken by the sender with FOR UPDATE: nothing is undone under its feet
        self.env.cr.execute(
            SQL(
                """SELECT id FROM crm_gmail_message
                    WHERE id = %s AND send_state = 'queued' FOR UPDATE NOWAIT""",
                message.id,
            )
        )
        action = self.env["crm.gmail.composer"]._gmail_action_from(message.sudo())
        message.sudo().unlink()
        return action

    def _gmail_own_outgoing(self, states):
        """These emails, when they are the current user's own outgoing ones in ``states``."""
        return self.filtered(
            lambda m: m.owner_id.id == self.env.uid and m.sudo().send_state in states
        )

    # ------------------------------------------------------------ business: queue
    @api.model
    def _gmail_queue(self, mailbox, mail, delay=UNDO_SECONDS):
        """Store the :class:`OutgoingEmail` ``mail`` of ``mailbox`` as queued; return it.

        Raises :class:`UserError` for what would be refused (Gmail's limits, bad
        addresses), before anything is stored."""
        try:
            check_limits(mail)
            raw = build_mime(mail)
        except LimitError as exc:
            raise UserError(self._gmail_limit_text(exc)) from None
        account = mailbox._engine_account()
        owner = frozenset(normalize_email(a) for a in account.owner_addresses if normalize_email(a))
        parsed = parse_message(raw, folder="", uid="", owner=owner)
        head = parsed.header
        head.direction = DIRECTION_SENT
        head.bcc = [Address(normalize_email(a.email), a.name) for a in mail.bcc]
        parsed.participants = sorted(head.participants(owner))
        record = self._create_from_engine(mailbox, [parsed], mailbox.user_id)
        record.write(
            {
                "send_state": "queued",
                "send_after": fields.Datetime.now() + dt.timedelta(seconds=delay),
                "raw_mime": base64.b64encode(raw),
            }
        )
        return record

    @api.model
    def _gmail_limit_text(self, exc):
        if exc.kind == "too_many_recipients":
            return self.env._(
                "This email has %(count)s recipients: Gmail sends to at most %(limit)s per "
                "email. Split it into several emails.",
                count=exc.values[0],
                limit=exc.values[1],
            )
        if exc.kind == "too_large":
            return self.env._(
                "This email is %(size)s MB: Gmail sends at most 25 MB per email. Leave out "
                "an attachment or share a link to it instead.",
                size=round(exc.values[0] / 1024 / 1024, 1),
            )
        if exc.kind == "no_recipient":
            return self.env._("Add at least one recipient (To, Cc or Bcc).")
        return self.env._(
            "Not an email address Gmail can send to: %(addresses)s",
            addresses=", ".join(exc.values),
        )

    @api.model
    def _gmail_outgoing(self, mailbox, to, cc, bcc, subject, body_html, attachments, parent=None):
        """The :class:`OutgoingEmail` of ``mailbox``'s owner (``to``/``cc``/``bcc``:
        engine Addresses; ``attachments``: ir.attachment records; ``parent``: the email
        replied to)."""
        user = mailbox.user_id
        sender = Address(mailbox.email.strip(), user.name or "")
        references, in_reply_to = [], ""
        if parent and parent.message_id_header:
            in_reply_to = parent.message_id_header
            references = reply_references(
                parent.message_id_header, (parent.references or "").split()
            )
        return OutgoingEmail(
            sender=sender,
            message_id=make_message_id(sender.email),
            to=list(to),
            cc=list(cc),
            bcc=list(bcc),
            subject=subject or "",
            html=body_html or "",
            attachments=[
                OutgoingAttachment(a.name, a.mimetype or "application/octet-stream", a.raw or b"")
                for a in attachments.sudo()
            ],
            in_reply_to=in_reply_to,
            references=references,
        )

    # ------------------------------------------------------------ business: send
    @api.model
    def _cron_send(self):
        """Send the due emails of every mailbox: one SMTP session per mailbox."""
        commit = not self.env.context.get(COMMIT_CONTEXT)
        claimed = self._gmail_claim_due()
        if commit:
            self.env.cr.commit()
        for mailbox, messages in claimed.grouped("mailbox_id").items():
            self._gmail_send_mailbox(mailbox, messages, commit)
        return len(claimed)

    @api.model
    def _gmail_claim_due(self):
        """The due emails, marked *sending* (a worker that dies leaves them so: the next
        run checks the Sent folder before sending any again)."""
        self.flush_model(["send_state", "send_after"])
        now = fields.Datetime.now()  # the clock send_after was set by (not the transaction's)
        rows = self.env.execute_query(
            SQL(
                """SELECT id, send_state FROM crm_gmail_message
                    WHERE (send_state = 'queued' AND send_after <= %(now)s)
                       OR (send_state = 'sending' AND failure_type = 'unknown'
                           AND send_after <= %(now)s)
                       OR (send_state = 'sending' AND write_date < %(stale)s)
                    ORDER BY send_after, id
                    LIMIT 500
                      FOR UPDATE SKIP LOCKED""",
                now=now,
                stale=now - dt.timedelta(minutes=10),
            )
        )
        if not rows:
            return self.browse()
        messages = self.sudo().browse([row[0] for row in rows])
        # a stale "sending" (or an earlier unknown outcome) is checked in Sent first
        messages.filtered(lambda m: m.send_state == "sending").write({"failure_type": "unknown"})
        messages.write({"send_state": "sending"})
        return messages

    @api.model
    def _gmail_send_mailbox(self, mailbox, messages, commit):
        """Send ``messages`` (claimed, *sending*) of ``mailbox`` in one SMTP session."""
        unknown = messages.filtered(lambda m: m.failure_type == SEND_UNKNOWN)
        if unknown:
            messages -= unknown
            self._gmail_resolve_unknown(mailbox, unknown)
            if commit:
                self.env.cr.commit()
        if not messages:
            return
        deferred = self._gmail_over_daily_limit(mailbox, messages)
        if deferred:
            deferred.write(
                {
                    "send_state": "queued",
                    "send_after": fields.Datetime.now() + dt.timedelta(hours=1),
                    "failure_type": "quota",
                    "failure_reason": self.env._(
                        "Close to Gmail's daily sending limit (%(limit)s emails in 24 "
                        "hours): sent later, so that Google does not lock the account.",
                        limit=DAILY_LIMIT,
                    ),
                }
            )
            messages -= deferred
        copies, attempted = [], self.browse()
        try:
            with SmtpTransport(self._gmail_smtp_account(mailbox)) as smtp:
                for message in messages:
                    attempted |= message
                    try:
                        self._gmail_send_one(smtp, message)
                    except SendError as exc:
                        self._gmail_failed(message, exc)
                        if not smtp.conn:  # the session went: the rest in the next run
                            break
                    else:
                        copies.append(message)
                    if commit:
                        self.env.cr.commit()
        except SendError as exc:  # connecting or logging in: no email was handed over
            for message in messages - attempted:
                message.send_attempts += 1  # so that the retries back off
                self._gmail_failed(message, exc)
            attempted = messages
        # never tried (the session went): queued again, not "sending" (which would read as
        # an unknown outcome)
        (messages - attempted).write(
            {"send_state": "queued", "send_after": fields.Datetime.now() + dt.timedelta(minutes=1)}
        )
        if copies and not self._gmail_files_sent_itself(mailbox):
            self._gmail_append_sent(mailbox, copies)
        if commit:
            self.env.cr.commit()

    def _gmail_send_one(self, smtp, message):
        raw = base64.b64decode(message.raw_mime)
        addresses = message.address_ids.filtered(lambda a: a.role in ("to", "cc", "bcc"))
        recipients = envelope_recipients(
            OutgoingEmail(
                sender=Address(message.mailbox_id.email),
                message_id="",
                to=[Address(a.email) for a in addresses],
            )
        )
        message.send_attempts += 1
        smtp.send(raw, message.mailbox_id.email.strip(), recipients)
        message.write({"send_state": "sent", "failure_type": False, "failure_reason": False})

    def _gmail_failed(self, message, exc):
        vals = {"failure_type": exc.kind, "failure_reason": exc.server_text or False}
        attempts = message.send_attempts
        if exc.kind == SEND_UNKNOWN and not self._gmail_files_sent_itself(message.mailbox_id):
            self._gmail_resolve_unknown(message.mailbox_id, message)  # waits for the user
            message.failure_type = SEND_UNKNOWN
            return
        if exc.temporary and attempts <= len(RETRY_DELAYS):
            delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1] if attempts else 0
            vals.update(
                send_state="queued",
                send_after=fields.Datetime.now() + dt.timedelta(seconds=delay),
            )
            if exc.kind == SEND_UNKNOWN:  # looked up in Sent before any next attempt
                vals["send_state"] = "sending"
                vals["send_after"] = fields.Datetime.now() + dt.timedelta(seconds=60)
        else:
            vals["send_state"] = "failed"
        message.write(vals)

    @api.model
    def _gmail_smtp_account(self, mailbox):
        imap = mailbox._engine_account()
        return Account(
            host=(mailbox.smtp_host or "").strip(),
            port=mailbox.smtp_port or None,
            protocol="smtp",
            security=mailbox.smtp_security or "ssl",
            login=imap.login,
            password=imap.password,
            oauth_token=imap.oauth_token,
            ca_file=imap.ca_file,
            timeout=imap.timeout,
        )

    @api.model
    def _gmail_imap_account(self, mailbox):
        account = mailbox._engine_account()
        return account if account.protocol == PROTOCOL_IMAP else None

    @api.model
    def _gmail_files_sent_itself(self, mailbox):
        """Gmail puts mail sent through its SMTP into Sent: no APPEND there."""
        host = (mailbox.smtp_host or "").strip().lower()
        return mailbox.provider == "gmail" or host.endswith(("gmail.com", "googlemail.com"))

    @api.model
    def _gmail_resolve_unknown(self, mailbox, messages):
        """Emails whose last attempt may have been accepted: sent when the Sent folder
        holds them (a server that files sent mail itself, as Gmail); sent again when it
        does not. Elsewhere nobody can tell: they wait for the user (never twice)."""
        account = self._gmail_imap_account(mailbox)
        if not self._gmail_files_sent_itself(mailbox) or not account:
            messages.write(
                {
                    "send_state": "failed",
                    "failure_reason": self.env._(
                        "The connection ended just after the email was handed over: the "
                        "server may have sent it. Check your Sent folder (or ask the "
                        "recipient) before sending it again."
                    ),
                }
            )
            return
        try:
            with ImapTransport(account) as imap:
                folder = imap.sent_folder()
                found = self.browse(
                    [
                        m.id
                        for m in messages
                        if folder and imap.find_message_id(folder, m.message_id_header)
                    ]
                )
        except Exception as exc:  # noqa: BLE001 - checked again at the next run
            _logger.warning(
                "crm_gmail_sync: mailbox %s: the Sent folder could not be checked (%s)",
                mailbox.id,
                type(exc).__name__,
            )
            messages.write({"send_after": fields.Datetime.now() + dt.timedelta(seconds=60)})
            return
        found.write({"send_state": "sent", "failure_type": False, "failure_reason": False})
        (messages - found).write(
            {"send_state": "queued", "send_after": fields.Datetime.now(), "failure_type": False}
        )

    @api.model
    def _gmail_append_sent(self, mailbox, messages):
        account = self._gmail_imap_account(mailbox)
        if account is None:
            return
        try:
            with ImapTransport(account) as imap:
                folder = imap.sent_folder()
                if not folder:
                    return
                for message in messages:
                    imap.append(folder, base64.b64decode(message.raw_mime))
        except Exception as exc:  # noqa: BLE001 - the email is sent; only its copy is missing
            _logger.warning(
                "crm_gmail_sync: mailbox %s: the copy in Sent could not be stored (%s)",
                mailbox.id,
                type(exc).__name__,
            )

    @api.model
    def _gmail_over_daily_limit(self, mailbox, messages):
        """The part of ``messages`` that would take the mailbox past
        :data:`DAILY_WARNING` emails in 24 hours."""
        sent = self.search_count(
            [
                ("mailbox_id", "=", mailbox.id),
                ("send_state", "=", "sent"),
                ("date", ">", fields.Datetime.now() - dt.timedelta(hours=24)),
            ]
        )
        room = max(0, DAILY_WARNING - sent)
        return messages[room:]

    # ------------------------------------------------------------ business: sync
    @api.model
    def _gmail_adopt_sent(self, mailbox, parsed_messages):
        """The synced messages that are not copies of this mailbox's outgoing emails; the
        outgoing emails take the copies' identity (one query to find them)."""
        ids = {m.header.message_id: m for m in parsed_messages if m.header.message_id}
        if not ids:
            return parsed_messages
        self.flush_model(["message_id_header", "send_state", "mailbox_id"])
        rows = self.env.execute_query(
            SQL(
                """SELECT id, message_id_header FROM crm_gmail_message
                    WHERE mailbox_id = %s AND send_state IS NOT NULL
                      AND message_id_header = ANY(%s)""",
                mailbox.id,
                list(ids),
            )
        )
        if not rows:
            return parsed_messages
        adopted = set()
        for record_id, message_id in rows:
            head = ids[message_id].header
            vals = {
                "dedupe_key": head.dedupe_key,
                "gmail_msgid": head.gmail_msgid or False,
                "gmail_thrid": head.gmail_thrid or False,
                "folder": head.folder or False,
                "server_uid": head.uid or False,
            }
            record = self.sudo().browse(record_id)
            if record.send_state in ("queued", "sending"):
                vals.update(send_state="sent", failure_type=False, failure_reason=False)
            record.write(vals)
            adopted.add(message_id)
        return [m for m in parsed_messages if m.header.message_id not in adopted]
