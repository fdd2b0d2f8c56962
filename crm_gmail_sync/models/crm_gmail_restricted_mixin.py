"""Display names decided for the real user.

Odoo computes the ``display_name`` of a referenced record as superuser in many places: a
many2one's value in ``read``/``onchange`` (a new participant pointing at an email), a new
activity's ``res_name``, the mail composer's ``record_name`` and ``subject``, an
attachment's ``original_id``, the record list of an ``AccessError`` in debug mode. The
records of this addon are named after private mail (a subject, an address, a file name),
so their names are decided for the real user, ``env.uid``, also under ``sudo()``: the
record's own name when that user may read it, a neutral name otherwise.
"""

from odoo import api, models


def readable_by_real_user(records):
    """The records of ``records`` that ``records.env.uid`` may read, ignoring ``sudo()``.

    One query for the whole recordset. New records (``NewId``) are judged by their origin;
    a new record without one holds only what its user typed, and is readable.
    """
    origin = {record: record._origin.id for record in records}
    stored = {rid for rid in origin.values() if rid}
    real = records.sudo(False).with_context(active_test=False)
    if stored and real.browse().has_access("read"):
        found = set(real.search([("id", "in", list(stored))]).ids)
    else:
        found = set()
    return records.filtered(lambda record: not origin[record] or origin[record] in found)


class CrmGmailRestrictedMixin(models.AbstractModel):
    """A record whose name reveals nothing to whoever may not read it."""

    _name = "crm.gmail.restricted.mixin"
    _description = "Record named only for its readers"

    @api.depends_context("uid")
    def _compute_display_name(self):
        readable = self._gmail_named_for_user()
        super(CrmGmailRestrictedMixin, readable)._compute_display_name()
        hidden = self - readable
        if hidden:
            hidden.display_name = self._gmail_neutral_name()

    def _gmail_named_for_user(self):
        """The records of ``self`` whose own name the real user may see."""
        return readable_by_real_user(self)

    @api.model
    def _gmail_neutral_name(self):
        """The name of a record the real user may not read."""
        raise NotImplementedError
