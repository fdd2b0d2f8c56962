"""Run the engine's doctests (small pure helpers document themselves by example)."""

import doctest
import importlib
import pkgutil

import pytest

import crm_gmail_sync.engine as engine

MODULES = [m.name for m in pkgutil.iter_modules(engine.__path__)]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(f"crm_gmail_sync.engine.{name}")
    result = doctest.testmod(module)
    assert result.failed == 0
