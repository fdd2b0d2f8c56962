"""Fixtures of the pure suite: a private loopback Dovecot, fresh mail users, and the engine.

The addon's ``crm_gmail_sync/__init__.py`` imports Odoo. To import ``crm_gmail_sync.engine``
without it, a bare package module pointing at the addon directory is registered first, so Python
finds the subpackages there but never runs the addon's ``__init__``.
"""

from __future__ import annotations

import itertools
import os
import secrets
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from dovecot import Dovecot, DovecotUnavailable

ADDON_DIR = Path(__file__).resolve().parent.parent / "crm_gmail_sync"

if "crm_gmail_sync" not in sys.modules:
    _package = types.ModuleType("crm_gmail_sync")
    _package.__path__ = [str(ADDON_DIR)]
    sys.modules["crm_gmail_sync"] = _package


@dataclass(frozen=True)
class MailUser:
    """A Dovecot account: ``login`` (an email address) and the ``password`` it was created with."""

    login: str
    password: str


@pytest.fixture(scope="session")
def load_registry():
    """Shadow pytest-odoo's autouse fixture of that name: the pure suite needs no database.

    pytest-odoo, once installed, loads an Odoo registry before every test and errors out when no
    database is configured; this override applies to ``tests/`` only, not to the Odoo suite.
    """
    yield


@pytest.fixture(scope="session")
def dovecot():
    """A running private ``Dovecot`` (see ``tests/dovecot.py``), shared by the whole session.

    Without the dovecot binary the tests are skipped, except on CI (``CI=true``) where that fails.
    """
    try:
        server = Dovecot()
    except DovecotUnavailable as exc:
        message = f"{exc} -- IMAP/POP3 TESTS NOT RUN"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    server.start()
    yield server
    server.stop()


_user_numbers = itertools.count(1)


@pytest.fixture
def mail_user(dovecot) -> MailUser:
    """A new user with an empty mailbox, unique within the session (``u<N>@example.test``)."""
    user = MailUser(f"u{next(_user_numbers)}@example.test", secrets.token_urlsafe(12))
    dovecot.add_user(user.login, user.password)
    return user
