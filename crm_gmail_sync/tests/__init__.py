# ruff: noqa: F401
from . import test_access, test_licence, test_linking, test_sync, test_ui
