# ruff: noqa: F401
from . import crm_gmail_composer
