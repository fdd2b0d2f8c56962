# ruff: noqa: F401
from . import (
    crm_gmail_linked_mixin,
    crm_gmail_mailbox,
    crm_gmail_message,
    crm_gmail_message_address,
    crm_gmail_share,
    crm_lead,
    res_config_settings,
    res_groups,
    res_partner,
    res_users,
)
