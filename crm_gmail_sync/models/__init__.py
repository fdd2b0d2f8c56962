# ruff: noqa: F401
# The mixins first: the models below inherit them.
from . import (
    crm_gmail_attachment_owner_mixin,
    crm_gmail_linked_mixin,
    crm_gmail_restricted_mixin,
)

# isort: split
# The mailbox's configuration, then the files that extend it: credentials, scheduler, sink.
from . import crm_gmail_mailbox

# isort: split
from . import (
    crm_gmail_conversation,
    crm_gmail_conversation_key,
    crm_gmail_credential,
    crm_gmail_mailbox_alias,
    crm_gmail_message,
    crm_gmail_message_address,
    crm_gmail_message_sharing,
    crm_gmail_outbox,
    crm_gmail_scheduler,
    crm_gmail_share,
    crm_gmail_sink,
    crm_lead,
    ir_attachment,
    mail_activity,
    mail_message,
    res_config_settings,
    res_groups,
    res_partner,
    res_users,
)
