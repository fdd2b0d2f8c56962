"""18.0.1.4.0: the stored sharing flag of synced emails.

``crm.gmail.message.is_shared`` (see ``models/crm_gmail_message_sharing.py``), which the
record rule now reads, is computed for every stored email: one statement.
"""

import logging

from odoo import SUPERUSER_ID, api

_logger = logging.getLogger(__name__)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {"active_test": False})
    count = env["crm.gmail.message"]._gmail_refresh_shared()
    _logger.info("crm_gmail_sync: %s emails flagged as shared", count)
