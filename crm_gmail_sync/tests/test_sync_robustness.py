"""End to end from the loopback Dovecot into Odoo: nothing lost, nothing duplicated, flags
untouched, bad input stored (or counted) without stopping the mailbox."""

import collections
import hashlib
import json
import os
import secrets
from contextlib import contextmanager
from unittest.mock import patch

from odoo.exceptions import AccessError
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..engine import sync as engine_sync
from ..engine.transport_imap import ImapTransport
from ..models import crm_gmail_message as message_module
from .common import MAILBOX_LOGGER, DovecotCommon, load_pure_test_module, make_raw

OWNER = "olivia@ourco.test"
# The drop must land inside a message literal: an attachment well above the proxy's budget.
ATTACHMENT = bytes(range(256)) * 160  # 40 KiB, about 55 KB on the wire
DROP_AFTER = 30_000


class Crash(Exception):
    """Stands for the worker dying (killed, out of memory) at a chosen point."""


@tagged("post_install", "-at_install")
class TestSyncRobustness(DovecotCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.DroppingProxy = load_pure_test_module("proxy.py").DroppingProxy

    def setUp(self):
        super().setUp()
        # Server-side mail is not rolled back with the test: a fresh server user per test.
        self.box = self.mailbox_owner
        self.login = self.connect_new_server_user(self.box, "olivia.robust")
        self.tag = secrets.token_hex(4)  # Message-IDs unique to this test

    # ------------------------------------------------------------ helpers
    def _mid(self, name):
        return f"<{name}.{self.tag}@acme.test>"

    def _append(self, sender, name, folder="INBOX", flags="", **kw):
        raw = make_raw(sender, OWNER, subject=name, message_id=self._mid(name), **kw)
        return self.server.append(self.login, folder, raw, flags=flags)

    def _messages(self):
        return self.env["crm.gmail.message"].sudo().search([("mailbox_id", "=", self.box.id)])

    def _mid_counts(self):
        return collections.Counter(self._messages().mapped("message_id_header"))

    def _exactly_once(self, names):
        return collections.Counter(self._mid(name) for name in names)

    def _cursor_high(self, folder="INBOX"):
        return json.loads(self.box.sync_state or "{}")[folder]["high"]

    @contextmanager
    def _second_download_cut(self, proxy, calls):
        """The proxy drops the connection inside the answer to the second body download
        (inside the message literal); ``calls`` records the UIDs of each download."""
        real = ImapTransport.fetch_bodies

        def cut_second_download(transport, wanted):
            calls.append(list(wanted))
            if len(calls) == 2:
                proxy.arm(DROP_AFTER)
            return real(transport, wanted)

        with patch.object(ImapTransport, "fetch_bodies", cut_second_download):
            yield

    def _set_batch_size(self, size):
        self.env["ir.config_parameter"].sudo().set_param("crm_gmail_sync.batch_size", size)

    # ------------------------------------------------------------ 1. dropped connection
    @mute_logger(MAILBOX_LOGGER)
    def test_connection_dropped_mid_fetch_loses_nothing(self):
        if self.DroppingProxy is None:
            self.skipTest("tests/proxy.py not found")
        box = self.box
        self._append("chris@acme.test", "c0")
        proxy = self.DroppingProxy(self.server.imaps_port)
        self.addCleanup(proxy.close)
        box.port = proxy.port  # TLS end to end, through the proxy
        box.action_sync_now()
        self.assertEqual(box.state, "connected")
        self.assertEqual(self._mid_counts(), self._exactly_once(["c0"]))

        # Header batches of two, oldest first: [c1 c2] [n1 c3] [c4 n2] [c5 c6]
        uids = {}
        for name, sender in [
            ("c1", "chris@acme.test"),
            ("c2", "erin@lead.test"),
            ("n1", "news@spam.test"),
            ("c3", "buyer@acme.test"),
            ("c4", "chris@acme.test"),
            ("n2", "carl@ourco.test"),
            ("c5", "erin@lead.test"),
            ("c6", "chris@acme.test"),
        ]:
            uids[name] = self._append(
                sender, name, attachments=[("data.bin", ATTACHMENT, "application/octet-stream")]
            )
        self._set_batch_size(2)
        calls = []
        with self._second_download_cut(proxy, calls):
            action = box.with_user(self.user_owner).action_sync_now()
        self.assertEqual(proxy.drops, 1)
        self.assertEqual(calls, [[uids["c1"], uids["c2"]], [uids["c3"]]])
        # a clear, translated network error, not a traceback; the owner is told
        self.assertEqual(box.last_error_kind, "network")
        self.assertTrue(
            box.last_error.startswith("The mail server could not be reached or dropped"),
            box.last_error,
        )
        self.assertNotIn("Traceback", box.last_error)
        self.assertTrue(box.last_error_date)
        self.assertEqual(action["params"]["type"], "danger", action["params"]["message"])
        self.assertEqual(action["params"]["message"], box.last_error)
        # a dropped connection is transient: the mailbox stays scheduled
        self.assertNotEqual(box.state, "error")
        self.assertIn(box, self.env["crm.gmail.mailbox"].search(box._fetchable_domain()))
        # what was stored before the drop stays, and the cursor stops right after it
        self.assertEqual(self._mid_counts(), self._exactly_once(["c0", "c1", "c2"]))
        self.assertEqual(self._cursor_high(), uids["c2"])

        # the next scheduled run, the proxy passing everything, stores the rest exactly once
        self.fetch_due()
        self.assertEqual(
            self._mid_counts(), self._exactly_once(["c0", "c1", "c2", "c3", "c4", "c5", "c6"])
        )
        self.assertEqual(proxy.drops, 1)
        self.assertEqual(
            set(self._messages().attachment_ids.mapped("checksum")),
            {hashlib.sha1(ATTACHMENT).hexdigest()},
        )
        self.assertEqual(len(self._messages().attachment_ids), 6)
        self.assertEqual(self._cursor_high(), uids["c6"])
        self.assertEqual(box.state, "connected")
        self.assertFalse(box.last_error)
        self.assertFalse(box.last_error_kind)
        self.assertEqual((box.count_stored, box.count_not_customer, box.count_duplicate), (7, 2, 0))

    @mute_logger(MAILBOX_LOGGER)
    def test_a_mailbox_storing_mail_is_connected(self):
        """An interrupted first sync has stored mail: the mailbox shows connected, and
        the dropped connection's error beside it."""
        if self.DroppingProxy is None:
            self.skipTest("tests/proxy.py not found")
        box = self.box
        self.assertEqual(box.state, "draft")
        for name in ("c1", "c2", "c3"):
            self._append(
                "chris@acme.test",
                name,
                attachments=[("data.bin", ATTACHMENT, "application/octet-stream")],
            )
        proxy = self.DroppingProxy(self.server.imaps_port)
        self.addCleanup(proxy.close)
        box.port = proxy.port
        self._set_batch_size(1)
        calls = []
        with self._second_download_cut(proxy, calls):
            box.with_user(self.user_owner).action_sync_now()
        self.assertEqual(proxy.drops, 1)
        self.assertEqual(len(self._messages()), 1)
        self.assertEqual(box.last_error_kind, "network")
        self.assertEqual(box.state, "connected")
        # the next run finishes, still connected, the error gone
        self.fetch_due()
        self.assertEqual(len(self._messages()), 3)
        self.assertEqual(box.state, "connected")
        self.assertFalse(box.last_error)

    # ------------------------------------------------------------ 2. crash before the cursor
    @mute_logger(MAILBOX_LOGGER)
    def test_crash_before_cursor_is_saved_loses_nothing(self):
        """The worker dies after a batch's emails were created, before its cursor is saved."""
        box = self.box
        names = [f"k{n}" for n in range(1, 7)]
        for name in names:
            self._append("chris@acme.test", name)
        self._set_batch_size(2)
        Mailbox = type(self.env["crm.gmail.mailbox"])
        real_save = Mailbox._save_cursor
        saves = []

        def crash_on_second_cursor(records, state, outcomes):
            saves.append(len(self._messages()))
            if len(saves) == 2:
                raise Crash("worker killed")
            return real_save(records, state, outcomes)

        with patch.object(Mailbox, "_save_cursor", crash_on_second_cursor):
            # As in production, where the cron commits after each batch: catch the crash
            # without rolling back what the run stored before it.
            try:
                box._sync_one(commit=lambda: None)
            except Crash:
                pass
        # the crash happened with the second batch's emails created but not its cursor
        self.assertEqual(saves, [2, 4])
        # that batch is undone as a whole; the first one and its cursor stay
        self.assertEqual(len(self._messages()), 2)
        self.assertEqual(box.count_stored, 2)
        self.assertTrue(box.sync_state)
        # the next run stores the rest, once each
        self.fetch_due()
        self.assertEqual(self._mid_counts(), self._exactly_once(names))
        self.assertEqual((box.count_stored, box.count_duplicate), (6, 0))
        self.assertEqual(box.state, "connected")

    def test_batches_stored_but_cursor_lost_are_not_duplicated(self):
        """Emails committed, their cursor lost: they come again and are recognised."""
        box = self.box
        names = [f"s{n}" for n in range(1, 8)]
        for name in names:
            self._append("chris@acme.test", name)
        self._set_batch_size(3)
        committed = []  # the cursor after each committed batch
        box._sync_one(commit=lambda: committed.append(box.sync_state))
        self.assertEqual(len(committed), 4)  # INBOX: 3, 3, 1; Sent: its first cursor
        self.assertEqual(self._mid_counts(), self._exactly_once(names))
        # back to the cursor after the first batch, as if the later ones were never saved
        box.sync_state = committed[0]
        self.fetch_due()
        self.assertEqual(self._mid_counts(), self._exactly_once(names))
        self.assertEqual((box.count_stored, box.count_duplicate), (7, 4))
        self.assertEqual(box.sync_state, committed[-1])
        # and a new email after that is stored
        self._append("chris@acme.test", "s8")
        self.fetch_due()
        self.assertEqual(self._mid_counts(), self._exactly_once([*names, "s8"]))

    # ------------------------------------------------------------ 3. a 30 MB attachment
    def test_thirty_megabyte_attachment_private_and_flags_untouched(self):
        box = self.box
        big = os.urandom(30 * 1024 * 1024)
        uid_big = self._append(
            "chris@acme.test",
            "big",
            attachments=[("Quarterly figures.bin", big, "application/octet-stream")],
        )
        uid_read = self._append("chris@acme.test", "read", flags="\\Seen")
        uid_flagged = self._append("erin@lead.test", "flagged", flags="\\Flagged")
        before = self.server.flags(self.login, "INBOX")
        self.assertEqual(before, {uid_big: set(), uid_read: {"\\Seen"}, uid_flagged: {"\\Flagged"}})
        self.fetch_due()
        self.assertEqual(self.server.flags(self.login, "INBOX"), before)
        self.assertEqual(box.state, "connected")
        self.assertEqual(self._mid_counts(), self._exactly_once(["big", "read", "flagged"]))
        message = self._messages().filtered(lambda m: m.subject == "big")
        self.assertGreater(message.size, len(big))
        attachment = message.attachment_ids
        self.assertEqual(len(attachment), 1)
        self.assertEqual(attachment.name, "Quarterly figures.bin")
        self.assertEqual(attachment.file_size, len(big))
        self.assertEqual(attachment.mimetype, "application/octet-stream")
        self.assertEqual(attachment.checksum, hashlib.sha1(big).hexdigest())
        # the owner reads it, content and all
        mine = attachment.with_user(self.user_owner)
        self.assertEqual(hashlib.sha1(mine.raw).digest(), hashlib.sha1(big).digest())
        self.assertEqual(
            message.with_user(self.user_owner).attachment_ids.mapped("name"),
            ["Quarterly figures.bin"],
        )
        # a colleague (a seat, Sales rights) gets nothing of a private mailbox's attachment
        theirs = attachment.with_user(self.user_colleague)
        with self.assertRaises(AccessError):
            theirs.read(["name", "datas"])
        with self.assertRaises(AccessError):
            theirs.raw  # noqa: B018 - reading the field is the access
        Attachment = self.env["ir.attachment"].with_user(self.user_colleague)
        self.assertFalse(
            Attachment.search([("res_model", "=", message._name), ("res_id", "=", message.id)])
        )
        self.assertFalse(Attachment.search([("name", "=", "Quarterly figures.bin")]))

    # ------------------------------------------------------------ 4. malformed input
    def test_malformed_customer_mail_among_good_ones(self):
        box = self.box
        tag = self.tag
        crlf = b"\r\n"

        def raw(*lines, body=b"body"):
            return crlf.join([*lines, b"", body, b""])

        malformed = {
            # unclosed multipart, bad base64 and quoted-printable, no date, a broken subject
            "broken": raw(
                b"From: Chris <chris@acme.test>",
                b"To: ;;;, " + OWNER.encode() + b",",
                b"Date: not a date at all",
                b"Subject: =?utf-8?b?!!!notbase64?=",
                b"Message-ID: <broken.%s@acme.test>" % tag.encode(),
                b'Content-Type: multipart/mixed; boundary="NEVERCLOSED"',
                body=crlf.join(
                    [
                        b"--NEVERCLOSED",
                        b"Content-Type: text/plain; charset=utf-8",
                        b"Content-Transfer-Encoding: base64",
                        b"",
                        b"!!!! this is not base64 ****",
                        b"--NEVERCLOSED",
                        b'Content-Type: application/octet-stream; name="data.bin"',
                        b"Content-Transfer-Encoding: quoted-printable",
                        b"",
                        b"=ZZ=4",
                    ]
                ),
            ),
            # a charset nobody knows, in the headers and the body
            "charset": raw(
                b"From: =?x-klingon?q?Kr=F6ger?= <erin@lead.test>",
                b"To: " + OWNER.encode(),
                b"Subject: =?x-klingon?b?R3L832Vu?= und =?utf-8?q?Gr=C3=BC=C3=9Fe?=",
                b"Message-ID: <charset.%s@acme.test>" % tag.encode(),
                b'Content-Type: text/plain; charset="x-klingon"',
                b"Content-Transfer-Encoding: 8bit",
                body=b"Sch\xf6ne Gr\xfc\xdfe",
            ),
            # raw Latin-1 bytes in the headers, invalid UTF-8 in a UTF-8 body
            "eightbit": raw(
                b"From: J\xf6rg M\xfcller <chris@acme.test>",
                b"To: " + OWNER.encode(),
                b"Subject: caf\xe9 \xff\xfe",
                b"Message-ID: <eightbit.%s@acme.test>" % tag.encode(),
                b"Content-Type: text/plain; charset=utf-8",
                b"Content-Transfer-Encoding: 8bit",
                body=b"ok \xff\xfe\xc3( ok",
            ),
            # NUL characters, encoded (raw NULs never reach us: IMAP servers replace them)
            "nul": raw(
                b"From: =?utf-8?q?Ch=00ris?= <chris@acme.test>",
                b"To: " + OWNER.encode(),
                b"Subject: =?utf-8?q?nul=00inside?=",
                b"Message-ID: <nul.%s@acme.test>" % tag.encode(),
                b'Content-Type: multipart/alternative; boundary="B"',
                body=crlf.join(
                    [
                        b"--B",
                        b"Content-Type: text/plain; charset=utf-8",
                        b"Content-Transfer-Encoding: quoted-printable",
                        b"",
                        b"text=00with=00nul",
                        b"--B",
                        b"Content-Type: text/html; charset=utf-8",
                        b"Content-Transfer-Encoding: base64",
                        b"",
                        b"PHA+aHRtbAB3aXRoAG51bDwvcD4=",  # <p>html\0with\0nul</p>
                        b"--B--",
                    ]
                ),
            ),
            # garbage header lines and control characters
            "garbage": raw(
                b"From: chris@acme.test",
                b"To: " + OWNER.encode(),
                b"Message-ID: <garbage.%s@acme.test>" % tag.encode(),
                b"Subject: garbage \x01\x1b[31m",
                b"X-Long: " + b"x" * 5000,
                b"\x01\x02: weird",
                b"Content-Type: text/html",
                body=b"<p>a\x01\x0bb\x1b</p>",
            ),
        }
        self._append("chris@acme.test", "good1")
        for raw_message in malformed.values():
            self.server.append(self.login, "INBOX", raw_message)
        self._append("erin@lead.test", "good2")
        self.fetch_due()
        # nothing lost: every message is stored, degraded where it had to be, once each
        self.assertEqual(self._mid_counts(), self._exactly_once(["good1", "good2", *malformed]))
        self.assertEqual(box.state, "connected")
        self.assertFalse(box.last_error)
        self.assertEqual((box.count_stored, box.count_unparseable), (7, 0))
        messages = {m.message_id_header.split(".")[0][1:]: m for m in self._messages()}
        self.assertIn("Hi there", messages["good1"].body_html)
        self.assertIn("Hi there", messages["good2"].body_html)
        self.assertTrue(messages["charset"].subject.endswith(" und Grüße"))
        self.assertIn("café", messages["eightbit"].subject)
        self.assertEqual(messages["eightbit"].email_from, '"Jörg Müller" <chris@acme.test>')
        nul = messages["nul"]
        self.assertEqual(nul.subject, "nulinside")
        self.assertIn("with", nul.body_html)
        self.assertNotIn("\x00", nul.body_html)
        self.assertEqual(nul.email_from, '"Chris" <chris@acme.test>')
        self.assertEqual(nul.address_ids.name, "Chris")
        self.assertEqual(nul.preview, "html with nul")  # the (sanitised) body shown
        # each is linked to its customer
        linked = self.contact.with_user(self.user_owner).gmail_message_ids
        for name in ("broken", "eightbit", "nul", "garbage"):
            self.assertIn(messages[name], linked, name)

    @mute_logger(MAILBOX_LOGGER)
    def test_unparseable_message_is_counted_and_passed(self):
        box = self.box
        self._append("chris@acme.test", "fine1")
        self._append("chris@acme.test", "poison")
        self._append("chris@acme.test", "fine2")
        real = engine_sync.parse_message

        def picky(raw, **kw):
            if self._mid("poison").encode() in raw:
                raise ValueError("cannot read this one")
            return real(raw, **kw)

        with patch.object(engine_sync, "parse_message", picky):
            self.fetch_due()
        self.assertEqual(self._mid_counts(), self._exactly_once(["fine1", "fine2"]))
        self.assertEqual((box.count_stored, box.count_unparseable), (2, 1))
        self.assertEqual(box.state, "connected")
        self.assertFalse(box.last_error)
        # the cursor went past it: it is not retried on every run
        self.fetch_due()
        self.assertEqual((box.count_stored, box.count_unparseable), (2, 1))

    @mute_logger(MAILBOX_LOGGER, "odoo.sql_db")  # the refused INSERT is logged as a bad query
    def test_email_the_database_refuses_does_not_block_the_mailbox(self):
        """An email PostgreSQL refuses is counted and passed; the rest of its batch is
        stored. (NULs are cleaned up today; without that clean-up they are such an email.)"""
        box = self.box
        self._set_batch_size(50)  # all three in one batch
        self._append("chris@acme.test", "before")
        # a body the engine decodes to "a\0b" (quoted-printable "=00")
        refused = make_raw("chris@acme.test", OWNER, message_id=self._mid("refused"))
        cte = b"Content-Transfer-Encoding: "
        self.assertIn(cte + b"7bit", refused)
        refused = refused.replace(cte + b"7bit", cte + b"quoted-printable")
        refused = refused.replace(b"Hi there", b"a=00b")
        self.server.append(self.login, "INBOX", refused)
        self._append("erin@lead.test", "after")
        with patch.object(message_module, "_no_nul", lambda vals: vals):
            self.fetch_due()
        self.assertEqual(self._mid_counts(), self._exactly_once(["before", "after"]))
        self.assertEqual((box.count_stored, box.count_unparseable), (2, 1))
        self.assertEqual(box.state, "connected")
        self.assertFalse(box.last_error)
        # the cursor went past it; new mail still arrives
        self._append("chris@acme.test", "later")
        self.fetch_due()
        self.assertEqual(self._mid_counts(), self._exactly_once(["before", "after", "later"]))
        self.assertEqual((box.count_stored, box.count_unparseable), (3, 1))
