import contextlib
import logging
import os
import secrets

from odoo import SUPERUSER_ID, api, models
from odoo.exceptions import AccessError
from odoo.osv import expression

from .crm_gmail_restricted_mixin import readable_by_real_user

_logger = logging.getLogger(__name__)

MESSAGE_MODEL = "crm.gmail.message"
# Set by CrmGmailMessage._create_from_engine: the attachments of synced emails are written
# as in _file_write below. Other attachments keep Odoo's behaviour: an add-on does not
# change how the whole database stores its files.
STORE_CONTEXT = "crm_gmail_sync_store"
# Internal: _file_write asks Odoo's _get_path for the file's name only (see _same_content).
_NAME_ONLY_CONTEXT = "crm_gmail_sync_name_only"


class AttachmentStorageError(Exception):
    """An attachment's file could not be written: the filestore failed, not the email.

    Deliberately not among the mailbox's CONTENT_ERRORS: the batch is not stored, its
    cursor not saved, and the next run fetches it again.
    """


class IrAttachment(models.Model):
    _inherit = "ir.attachment"

    # An email's attachment is only ever seen, linked or copied by who may read the email,
    # decided for the real user (env.uid) also where Odoo works as superuser: it names
    # attachments as superuser (an attachment's original_id, a new activity's res_name,
    # the debug-mode AccessError), checks some links as superuser (mail.message's create
    # and write gather the attachments to check in a sudo recordset, so that an activity
    # marked done or a template could carry any attachment into a chatter message and an
    # outgoing email), and serves the chatter's attachment data as superuser.

    # ------------------------------------------------------------ compute
    @api.depends_context("uid")
    def _compute_display_name(self):
        hidden = self._gmail_hidden()
        super(IrAttachment, self - hidden)._compute_display_name()
        if hidden:
            hidden.display_name = self._gmail_neutral_name()

    # ------------------------------------------------------------ access
    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        # Odoo drops the attachments of unreadable records in Python, after the SQL's
        # offset and limit: whether a readable row comes back would then tell whether a
        # hidden one matched (a name, a checksum, the indexed content). The emails'
        # attachments are filtered in the SQL instead, by the email's record rule.
        if not self.env.su:
            messages = self.env[MESSAGE_MODEL]
            readable = ["|", ("res_model", "!=", MESSAGE_MODEL)]
            if messages.has_access("read"):
                readable.append(("res_id", "in", messages._search([])))
            else:
                readable.append((0, "=", 1))
            domain = expression.AND([domain, readable])
        return super()._search(domain, offset=offset, limit=limit, order=order)

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su and any(vals.get("res_model") == MESSAGE_MODEL for vals in vals_list):
            raise AccessError(self.env._("Only the sync adds attachments to a synced email."))
        return super().create(vals_list)

    def write(self, vals):
        if not self.env.su and (
            vals.get("res_model") == MESSAGE_MODEL
            or ("res_id" in vals and self._gmail_email_attachments())
        ):
            raise AccessError(self.env._("Only the sync adds attachments to a synced email."))
        return super().write(vals)

    @api.model
    def check(self, mode, values=None):
        if self and mode == "read" and self.env.su and self.env.uid != SUPERUSER_ID:
            emails = self._gmail_email_attachments()
            if emails:
                emails.sudo(False).check(mode)  # as the real user: refused unless readable
        return super().check(mode, values)

    def copy_data(self, default=None):
        if self._gmail_hidden():
            raise AccessError(
                self.env._("An attachment of an email you may not read cannot be copied.")
            )
        return super().copy_data(default=default)

    @api.model
    def create_unique(self, values_list):
        # Odoo hands out any attachment with the same content (searched as superuser):
        # never one of an email the user may not read, nor its existence.
        ids = []
        for values in values_list:
            found = self.browse(super().create_unique([values]))
            hidden = found._gmail_hidden()
            if hidden:
                found = (found - hidden) or self.create(values)
            ids += found.ids
        return ids

    def _to_store(self, store, /, *, fields=None, extra_fields=None):
        hidden = self._gmail_hidden()
        super(IrAttachment, self - hidden)._to_store(
            store, fields=fields, extra_fields=extra_fields
        )
        neutral = self._gmail_neutral_name()
        for attachment in hidden:
            store.add(
                attachment,
                {
                    "name": neutral,
                    "filename": neutral,
                    "res_name": False,
                    "mimetype": "application/octet-stream",
                    "checksum": False,
                    "size": 0,
                    "thread": False,
                    "type": "binary",
                    "url": False,
                },
            )

    # ------------------------------------------------------------ business
    def _gmail_email_attachments(self):
        """The attachments of synced emails among ``self``."""
        return self.filtered(lambda att: att.sudo().res_model == MESSAGE_MODEL)

    def _gmail_hidden(self):
        """The attachments of synced emails among ``self`` that the real user may not
        read (one query for them all)."""
        emails = self._gmail_email_attachments()
        return emails - readable_by_real_user(emails)

    @api.model
    def _gmail_relink_records(self, records):
        """After ``records`` (chatter messages, activities) were created: each synced
        email's attachment among their ``attachment_ids`` replaced by a copy on their
        document (as created: context defaults included). Odoo's create has checked that
        the user may read them; the copy checks it again (``copy_data``)."""
        for record in records.sudo():
            attachments = record.attachment_ids
            if attachments._gmail_email_attachments():
                record.write({"attachment_ids": [(6, 0, attachments.ids)]})  # relinks

    @api.model
    def _gmail_relink(self, commands, res_model, res_id):
        """The many2many ``commands`` of a chatter message or an activity, with every
        attachment of a synced email among them replaced by a copy on ``res_model`` /
        ``res_id``: the email keeps its own file (deleting it from the chatter must not
        delete it from the email), and only who may read the email may copy it (the
        copy's name and content are then theirs to post). Other commands are kept."""
        linked = []
        for command in commands or ():
            if isinstance(command, int):
                linked.append(command)
            elif command[0] == 4:
                linked.append(command[1])
            elif command[0] == 6:
                linked += command[2]
        emails = self.browse(linked)._gmail_email_attachments()
        if not emails:
            return commands
        # copy_data refuses an email the real user may not read, also under sudo; the copy
        # itself is made as superuser, as mail posts attachments (read access suffices)
        copied = emails.sudo().copy({"res_model": res_model, "res_id": res_id})
        copies = dict(zip(emails.ids, copied.ids))
        out = []
        for command in commands:
            if isinstance(command, int):
                out.append(copies.get(command, command))
            elif command[0] == 4:
                out.append((4, copies.get(command[1], command[1])))
            elif command[0] == 6:
                out.append((6, 0, [copies.get(aid, aid) for aid in command[2]]))
            else:
                out.append(command)
        return out

    @api.model
    def _gmail_neutral_name(self):
        return self.env._("Attachment (no access)")

    # ------------------------------------------------------------ filestore
    @api.model
    def _file_write(self, bin_value, checksum):
        """Write the file of a synced email's attachment so that a crash cannot cost it.

        Odoo writes straight under the content's name (its sha1) and logs a failure at
        info level: a worker killed mid-write leaves a partial file that the next attempt
        refuses as a collision, and a full disk leaves an attachment without its file.
        Here the file is written under a temporary name in the same directory, synced and
        renamed atomically (``os.replace``); a file under the content's name whose bytes do
        not match that name (cut short) is replaced; a failure raises
        :class:`AttachmentStorageError`. A genuine collision (another content with the
        same name) is still Odoo's to refuse.
        """
        if not self.env.context.get(STORE_CONTEXT):
            return super()._file_write(bin_value, checksum)
        try:
            fname, full_path = self.with_context(**{_NAME_ONLY_CONTEXT: True})._get_path(
                bin_value, checksum
            )
            if os.path.isfile(full_path):
                if self._same_content(bin_value, full_path):
                    return fname
                if self._file_checksum(full_path) == checksum:
                    return super()._file_write(bin_value, checksum)  # refuses the collision
                _logger.info("crm_gmail_sync: replacing %s, cut short", fname)
            self._file_replace(fname, full_path, bin_value)
        except OSError as exc:
            raise AttachmentStorageError(f"writing the file of {checksum}: {exc}") from exc
        return fname

    @api.model
    def _same_content(self, bin_data, filepath):
        # Called by Odoo's _get_path, which refuses an existing file with other bytes; for
        # _file_write's name-only question the content is compared there instead.
        if self.env.context.get(_NAME_ONLY_CONTEXT):
            return True
        return super()._same_content(bin_data, filepath)

    @api.model
    def _file_checksum(self, full_path):
        with open(full_path, "rb") as fp:
            return self._compute_checksum(fp.read())

    @api.model
    def _file_replace(self, fname, full_path, bin_value):
        """Put ``bin_value`` under ``full_path`` at once: readers see the old file or the
        whole new one, never a part."""
        tmp_fname = f"{fname}-{secrets.token_hex(8)}-tmp"  # no dot: Odoo's paths drop them
        # A worker killed mid-write leaves the temporary file to Odoo's filestore GC.
        self._mark_for_gc(tmp_fname)
        tmp_path = self._full_path(tmp_fname)
        try:
            with open(tmp_path, "xb") as fp:
                fp.write(bin_value)
                fp.flush()
                os.fsync(fp.fileno())
            os.replace(tmp_path, full_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)
            raise
        finally:
            self._unmark_for_gc(tmp_fname)
        _fsync_dir(os.path.dirname(full_path))
        self._mark_for_gc(fname)  # as Odoo does: in case the transaction aborts

    @api.model
    def _unmark_for_gc(self, fname):
        """Undo ``_mark_for_gc(fname)`` for a file that is gone, or the GC would log its
        absence. The checklist's layout is ``_mark_for_gc``'s; were it to change, the GC
        would merely log."""
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self._full_path("checklist"), fname))


def _fsync_dir(path):
    """Make a rename in directory ``path`` durable, where the platform can (POSIX)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):  # a filesystem that cannot sync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
