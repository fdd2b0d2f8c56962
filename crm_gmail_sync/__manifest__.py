{  # noqa: B018 - an Odoo manifest is a bare dict
    "name": "CRM Gmail Sync",
    "summary": "Show every email with a customer on its lead, contact and deal, "
    "fetched from the salesperson's own Gmail or IMAP/POP3 mailbox",
    "version": "18.0.1.2.0",
    "category": "Sales/CRM",
    "license": "LGPL-3",
    "author": "crm_gmail_sync",
    "depends": ["crm", "mail"],
    "data": [
        "security/crm_gmail_sync_groups.xml",
        "security/ir.model.access.csv",
        "security/crm_gmail_sync_rules.xml",
        "data/ir_cron.xml",
        "views/crm_gmail_mailbox_views.xml",
        "views/crm_gmail_message_views.xml",
        "views/crm_lead_views.xml",
        "views/res_partner_views.xml",
        "views/res_users_views.xml",
        "views/res_config_settings_views.xml",
        "views/crm_gmail_sync_menus.xml",
    ],
    "demo": ["demo/crm_gmail_sync_demo.xml"],
    "assets": {
        "web.assets_tests": ["crm_gmail_sync/static/tests/tours/**/*"],
    },
    "installable": True,
    "application": False,
}
