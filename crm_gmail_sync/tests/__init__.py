# ruff: noqa: F401
from . import (
    test_access,
    test_conversation_leaks,
    test_conversation_ui,
    test_conversations,
    test_crash_storage,
    test_leaks,
    test_licence,
    test_lifecycle,
    test_linking,
    test_own_addresses,
    test_privacy_http,
    test_scheduler,
    test_sync,
    test_sync_robustness,
    test_ui,
    test_workers,
)
