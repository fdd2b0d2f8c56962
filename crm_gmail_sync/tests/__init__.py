# ruff: noqa: F401
from . import (
    test_access,
    test_leaks,
    test_licence,
    test_lifecycle,
    test_linking,
    test_sync,
    test_sync_robustness,
    test_ui,
)
