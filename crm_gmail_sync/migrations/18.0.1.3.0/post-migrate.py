"""18.0.1.3.0: conversations.

- Every stored email gets its conversation, from its Message-ID, In-Reply-To,
  References and Gmail thread id (``crm.gmail.conversation.key._gmail_assign_all``): one
  pass over all emails, a few queries whatever their number.
- ``has_attachments``: an email with an attachment that is not an inline image (one
  without a Content-ID: the sync did not keep whether a part was inline).
"""

import logging

from odoo import SUPERUSER_ID, api

_logger = logging.getLogger(__name__)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {"active_test": False})
    count = env["crm.gmail.conversation.key"]._gmail_assign_all()
    cr.execute(
        """UPDATE crm_gmail_message m SET has_attachments = TRUE
            WHERE EXISTS (SELECT 1 FROM ir_attachment a
                           WHERE a.res_model = 'crm.gmail.message' AND a.res_id = m.id
                             AND COALESCE(a.description, '') = '')"""
    )
    _logger.info("crm_gmail_sync: %s emails put into their conversations", count)
