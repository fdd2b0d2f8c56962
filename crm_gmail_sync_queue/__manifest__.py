{  # noqa: B018 - an Odoo manifest is a bare dict
    "name": "CRM Gmail Sync - Job Queue",
    "summary": "Sync each due mailbox as one job of OCA queue_job, spread over every server",
    "version": "18.0.1.0.0",
    "category": "Sales/CRM",
    "license": "LGPL-3",
    "author": "crm_gmail_sync",
    "depends": ["crm_gmail_sync", "queue_job"],
    "data": ["data/queue_job_data.xml"],
    "installable": True,
    "auto_install": True,
}
