import importlib.util
import itertools
import os
import secrets
import subprocess
import sys
import unittest
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from unittest import SkipTest

from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.service import db as db_service
from odoo.sql_db import close_db, db_connect
from odoo.tests import HttpCase, TransactionCase
from odoo.tools import config

from ..engine import Batch, Outcome, SyncState, normalize_set, parse_message

SEAT = "crm_gmail_sync.group_mail_addon"
TAB = "crm_gmail_sync.group_emails_tab"
TAB_VISIBLE = "crm_gmail_sync.group_emails_tab_visible"

_counter = itertools.count(1)
PURE_TESTS = Path(__file__).resolve().parents[2] / "tests"  # the pure suite's fixtures
# the sync's loggers: the scheduler's and the sink's (muted together through their parent)
MAILBOX_LOGGER = "odoo.addons.crm_gmail_sync.models"


def load_pure_test_module(filename):
    """A module of the pure suite's ``tests/`` (its Dovecot fixture, its proxy), or None."""
    path = PURE_TESTS / filename
    if not path.exists():
        return None
    name = f"crm_gmail_sync_pure_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def make_raw(
    sender,
    to,
    subject="Hello",
    cc=None,
    bcc=None,
    body="Hi there",
    html=None,
    attachments=(),
    message_id=None,
    date=None,
):
    """A raw RFC 5322 message (bytes)."""
    import datetime as dt

    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    if bcc:
        msg["Bcc"] = bcc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc))
    msg["Message-ID"] = message_id or f"<gs-test-{next(_counter)}@example.test>"
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    for name, content, ctype in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


class GmailSyncCommon(TransactionCase):
    """Users, a customer lead/deal/contact and helpers to store emails."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # crm_gmail_sync_no_commit: the cron must not commit inside a test transaction
        cls.env = cls.env(
            context=dict(cls.env.context, tracking_disable=True, crm_gmail_sync_no_commit=True)
        )
        cls.env["ir.config_parameter"].sudo().set_param("crm_gmail_sync.seats", 20)
        cls.env["ir.config_parameter"].sudo().set_param("crm_gmail_sync.admin_reads_all", False)
        sales = "base.group_user,base.group_allow_export,sales_team.group_sale_salesman_all_leads"
        admin = "base.group_user,base.group_allow_export,base.group_system,"
        admin += "sales_team.group_sale_manager"
        for attr, login, name, email, groups in (
            ("user_owner", "gs_owner", "Olivia Owner", "olivia@ourco.test", f"{sales},{SEAT}"),
            (
                "user_colleague",
                "gs_colleague",
                "Carl Colleague",
                "carl@ourco.test",
                f"{sales},{SEAT}",
            ),
            ("user_noseat", "gs_noseat", "Nina Noseat", "nina@ourco.test", sales),
            ("user_admin", "gs_admin", "Adam Admin", "adam@ourco.test", f"{admin},{SEAT}"),
        ):
            user = mail_new_test_user(cls.env, login=login, name=name, email=email, groups=groups)
            setattr(cls, attr, user)
        Partner = cls.env["res.partner"]
        cls.contact = Partner.create({"name": "Chris Customer", "email": "chris@acme.test"})
        cls.contact_other = Partner.create({"name": "Dana Other", "email": "dana@other.test"})
        Lead = cls.env["crm.lead"]
        cls.lead = Lead.create(
            {"name": "Lead Erin", "type": "lead", "email_from": "erin@lead.test"}
        )
        cls.deal = Lead.create(
            {"name": "Deal with Acme", "type": "opportunity", "email_from": "buyer@acme.test"}
        )
        # A deal whose own address differs from its main contact's (as after an import):
        # setting partner_id through the ORM would copy one address onto the other.
        cls.env.flush_all()
        cls.env.cr.execute(
            "UPDATE crm_lead SET partner_id = %s WHERE id = %s", [cls.contact.id, cls.deal.id]
        )
        cls.env.invalidate_all()
        cls.mailbox_owner = cls.env["crm.gmail.mailbox"].create(
            {
                "user_id": cls.user_owner.id,
                "email": "olivia@ourco.test",
                "provider": "imap",
                "host": "127.0.0.1",
                "password": "s3cret-owner",
                "visibility": "private",
            }
        )
        cls.mailbox_colleague = cls.env["crm.gmail.mailbox"].create(
            {
                "user_id": cls.user_colleague.id,
                "email": "carl@ourco.test",
                "provider": "imap",
                "host": "127.0.0.1",
                "password": "s3cret-colleague",
                "visibility": "shared",
            }
        )

    def fetch_due(self):
        """The scheduled fetch as it runs once the interval has passed: every mailbox due."""
        self.env["crm.gmail.mailbox"].with_context(active_test=False).search([])._gmail_make_due()
        self.env["crm.gmail.mailbox"]._cron_fetch()

    @contextmanager
    def assertRaisesText(self, exception, text):
        """``assertRaises`` (which rolls back to a savepoint) plus a check of the message."""
        with self.assertRaises(exception) as cm:
            yield cm
        self.assertIn(text, str(cm.exception))

    @classmethod
    def store(cls, mailbox, raws, folder="INBOX"):
        """Store raw messages through the mailbox's batch writer; return the records."""
        account = mailbox._engine_account()
        owner = normalize_set(account.owner_addresses)
        messages = []
        for uid, raw in enumerate(raws, start=1):
            msg = parse_message(raw, folder=folder, uid=str(uid), owner=owner)
            msg.participants = sorted(msg.header.participants(owner))
            messages.append(msg)
        outcomes = [Outcome(folder, m.header.uid, "stored", m.dedupe_key) for m in messages]
        return mailbox.sudo()._store_batch(Batch(folder, messages, outcomes, SyncState()), owner)


class DovecotCommon(GmailSyncCommon):
    """With the pure suite's real Dovecot on loopback as ``cls.server``.

    Without Dovecot the class is skipped, except under ``CI=true``, where it fails.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        fixture = load_pure_test_module("dovecot.py")
        server, reason = None, f"{PURE_TESTS / 'dovecot.py'} not found"
        if fixture:
            try:
                server = fixture.Dovecot()
            except fixture.DovecotUnavailable as exc:
                reason = str(exc)
        if server is None:
            message = f"Dovecot unavailable ({reason}) -- {cls.__name__} NOT RUN"
            if os.environ.get("CI", "").lower() == "true":
                raise RuntimeError(message)
            raise SkipTest(message)
        server.start()
        cls.addClassCleanup(server.stop)
        cls.server = server

    def connect_new_server_user(self, mailbox, name, **vals):
        """Point ``mailbox`` at a fresh Dovecot user (server-side mail is not rolled back
        with the test) over IMAPS; its login."""
        login = f"{name}.{next(_counter)}.{secrets.token_hex(2)}@ourco.test"
        self.server.add_user(login, secrets.token_urlsafe(12))
        mailbox.write(
            {
                "host": self.server.host,
                "port": self.server.imaps_port,
                "security": "ssl",
                "login": login,
                "password": self.server.password(login),
                "ca_file": self.server.ca_file,
                **vals,
            }
        )
        return login


class WorkerDatabaseCase(DovecotCommon):
    """Real worker processes on committed data: a test's transaction is invisible to other
    processes (and holds locks that a worker would wait for), so the workers use a database
    of their own, created with the addon installed and dropped afterwards."""

    GUARD = 300  # seconds: how long a hung worker is waited for (a guard, not an assertion)
    DB_SUFFIX = "workers"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config_file = config.rcfile
        cls.db = f"{config['db_name']}_{cls.DB_SUFFIX}_{secrets.token_hex(4)}"
        cls.addClassCleanup(db_service.exp_drop, cls.db)
        install = subprocess.run(
            [
                sys.executable,
                "-m",
                "odoo",
                "-c",
                cls.config_file,
                "-d",
                cls.db,
                f"--db-filter=^{cls.db}$",
                "-i",
                "crm_gmail_sync",
                "--stop-after-init",
                "--log-level=warn",
            ],
            capture_output=True,
            text=True,
            timeout=cls.GUARD * 2,
            check=False,
        )
        if install.returncode:
            raise RuntimeError(f"installing into {cls.db} failed:\n{install.stdout[-5000:]}")
        cls.addClassCleanup(close_db, cls.db)

    def _wait_disconnected(self):
        """Until PostgreSQL has ended the killed worker's session (and released its locks):
        the server ends it itself, waiting up to GUARD seconds for it to be gone."""
        with db_connect("postgres").cursor() as cr:
            cr.execute(
                """SELECT bool_and(pg_terminate_backend(pid, %s))
                     FROM pg_stat_activity WHERE datname = %s""",
                [self.GUARD * 1000, self.db],
            )
            self.assertIsNot(cr.fetchone()[0], False, "the killed worker's session stays")


def _browser_executable():
    """The Chrome/Chromium that Odoo's ChromeBrowser will start, or None."""
    from odoo.tests.common import _find_executable

    try:
        return _find_executable()
    except (OSError, unittest.SkipTest):  # Odoo 18 raises SkipTest when there is none
        return None


class TourCase(HttpCase, GmailSyncCommon):
    """Browser tours (headless Chromium): without a browser they are skipped, except under
    ``CI=true``, where that is a failure."""

    def setUp(self):
        super().setUp()
        if not _browser_executable():
            message = (
                "no Chrome/Chromium found (Odoo looks for google-chrome, chromium, "
                "chromium-browser, google-chrome-stable): apt-get install chromium"
            )
            if os.environ.get("CI") == "true":
                self.fail(message)
            self.skipTest(message)

    def start_tour(self, url_path, tour_name, step_delay=None, **kwargs):
        # Odoo turns a browser that cannot start (no websocket-client, no DevTools port...)
        # into a skip; in CI a browser test that did not run is a failure.
        try:
            return super().start_tour(url_path, tour_name, step_delay, **kwargs)
        except unittest.SkipTest as exc:
            if os.environ.get("CI") == "true":
                self.fail(f"the browser test could not run: {exc}")
            raise
