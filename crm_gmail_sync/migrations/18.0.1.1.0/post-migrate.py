"""18.0.1.1.0: addresses in "Name <address>" form link; shares cover what they covered.

- A lead's or contact's address written as ``Name <address>`` (how Odoo's mail gateway
  fills a lead's ``email_from``) now normalises to the address: recompute those keys.
- A share now covers the addresses its record had when it was shared: existing shares
  take the addresses their records have now, which is what they covered until now.
"""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {"active_test": False})
    for model in ("crm.lead", "res.partner"):
        records = env[model].search([(env[model]._gmail_email_field, "like", "<")])
        records._compute_gmail_email_key()
    env.flush_all()
    shares = env["crm.gmail.share"].search([("email_keys", "=", False)])
    for share in shares:
        record = share.lead_id or share.partner_id
        share.email_keys = " ".join(sorted(record._gmail_link_keys())) or False
    env.flush_all()
