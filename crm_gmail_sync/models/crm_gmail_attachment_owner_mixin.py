from odoo import api, models


class CrmGmailAttachmentOwnerMixin(models.AbstractModel):
    """A record of Odoo's mail with ``attachment_ids`` on a document (a chatter message,
    an outgoing mail, an activity): it never links a synced email's own attachment but
    gets a copy on its document, made only for who may read the email (see
    ``ir.attachment._gmail_relink``). The email keeps its file whatever happens to the
    copy; for anybody else Odoo's own check of the attachments refuses them."""

    _name = "crm.gmail.attachment.owner.mixin"
    _description = "Record holding copies of synced emails' attachments"
    _gmail_document_fields = ("model", "res_id")  # the record's document

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        # after the create: the document may come from context defaults
        self.env["ir.attachment"]._gmail_relink_records(records)
        return records

    def write(self, vals):
        if not (vals.get("attachment_ids") and self):
            return super().write(vals)
        model_field, id_field = self._gmail_document_fields
        Attachment = self.env["ir.attachment"]
        for record in self:
            commands = Attachment._gmail_relink(
                vals["attachment_ids"], record[model_field], record[id_field]
            )
            super(CrmGmailAttachmentOwnerMixin, record).write(dict(vals, attachment_ids=commands))
        return True
