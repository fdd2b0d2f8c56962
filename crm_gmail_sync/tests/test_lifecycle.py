"""The mailbox's life, end to end with the loopback Dovecot and the real database: who may
fetch when, concurrent runs, archiving, switching and deleting mailboxes, failures and
their recovery, POP3 and STARTTLS, and errors in the owner's language."""

import collections
import datetime as dt
import itertools
import json
import secrets

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.fields import Command
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..models.crm_gmail_scheduler import LOCK_NAMESPACE
from .common import MAILBOX_LOGGER, SEAT, DovecotCommon, make_raw

_numbers = itertools.count(1)
OWNER = "olivia@ourco.test"
WARNING = "mail.mail_activity_data_warning"


@tagged("post_install", "-at_install")
class TestLifecycle(DovecotCommon):
    def setUp(self):
        super().setUp()
        self.tag = secrets.token_hex(4)  # Message-IDs unique to this test
        self.box = self.mailbox_owner
        self.login = self._server_user()
        self._point(self.box, self.login)

    # ------------------------------------------------------------ helpers
    def _server_user(self, password=None):
        """A fresh Dovecot user (server-side mail is not rolled back with the test)."""
        login = f"olivia.life.{next(_numbers)}.{self.tag}@ourco.test"
        self.server.add_user(login, password or secrets.token_urlsafe(12))
        return login

    def _point(self, box, login, port=None, security="ssl", provider="imap", ca=True, **vals):
        box.write(
            {
                "provider": provider,
                "host": self.server.host,
                "port": port or self.server.imaps_port,
                "security": security,
                "login": login,
                "password": self.server.password(login),
                "ca_file": self.server.ca_file if ca else False,
                **vals,
            }
        )

    def _mid(self, name):
        return f"<{name}.{self.tag}@acme.test>"

    def _append(self, name, sender="chris@acme.test", login=None, folder="INBOX", to=OWNER, **kw):
        kw.setdefault("date", dt.datetime.now(dt.timezone.utc))  # in the first sync's window
        raw = make_raw(sender, to, subject=name, message_id=self._mid(name), **kw)
        return self.server.append(login or self.login, folder, raw)

    def _messages(self, box=None):
        box = box or self.box
        return self.env["crm.gmail.message"].sudo().search([("mailbox_id", "=", box.id)])

    def _subjects(self, box=None):
        return collections.Counter(self._messages(box).mapped("subject"))

    def _visible_to(self, user):
        domain = [("message_id_header", "like", f".{self.tag}@")]
        return self.env["crm.gmail.message"].with_user(user).search(domain)

    def _activities(self, box=None):
        box = box or self.box
        return self.env["mail.activity"].search(
            [("res_model", "=", box._name), ("res_id", "=", box.id)]
        )

    def _fetch(self):
        self.fetch_due()

    def _sync_interrupted(self, interrupt, batch_size=2):
        """Sync the mailbox as the cron does (a commit after each batch), running
        ``interrupt`` after the first batch is committed."""
        self.env["ir.config_parameter"].sudo().set_param("crm_gmail_sync.batch_size", batch_size)
        commits = []

        def commit():
            commits.append(len(self._messages()))
            if len(commits) == 1:
                interrupt()

        return self.box._sync_one(commit=commit), commits

    # ------------------------------------------------------------ concurrency
    @mute_logger(MAILBOX_LOGGER)
    def test_sync_now_while_the_cron_holds_the_mailbox(self):
        box = self.box
        self._append("c1")
        other = self.registry.cursor()  # another worker: the cron syncing this mailbox
        self.addCleanup(other.close)
        other.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, box.id])
        action = box.with_user(self.user_owner).action_sync_now()
        params = action["params"]
        self.assertEqual(params["type"], "warning", params["message"])
        self.assertIn("already being synced", params["message"])
        self.assertNotIn("Sync finished", params["message"])
        self.assertFalse(self._messages())
        self.assertFalse(box.last_error)
        self.assertEqual(box.state, "draft")
        # nor does the cron store it twice: it passes the mailbox without an error
        self._fetch()
        self.assertFalse(self._messages())
        self.assertFalse(box.last_error)
        # the other run ends: the next "Sync now" stores the mail, once
        other.rollback()
        action = box.with_user(self.user_owner).action_sync_now()
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
        self.assertEqual(self._subjects(), {"c1": 1})
        box.with_user(self.user_owner).action_sync_now()
        self._fetch()
        self.assertEqual(self._subjects(), {"c1": 1})
        self.assertEqual((box.count_stored, box.count_duplicate), (1, 0))

    def test_sync_now_of_an_archived_mailbox_says_so(self):
        box = self.box
        self._append("c1")
        box.active = False
        with self.assertRaisesText(UserError, "archived"):
            box.with_user(self.user_owner).action_sync_now()
        self.assertFalse(self._messages())

    # ------------------------------------------------------------ seat, user, archive
    def _check_stops_and_resumes(self, stop, restore, sync_now_error):
        """``stop`` between two runs and during a run: nothing more is fetched, the mail
        stays but nobody sees it; ``restore`` shows it again and resumes, once each."""
        box = self.box
        self._append("a1")
        self._fetch()
        self.assertEqual(self._subjects(), {"a1": 1})
        # between two runs
        stop()
        self._append("a2")
        self._fetch()
        self.assertFalse(box._sync_one())
        with self.assertRaises(sync_now_error):
            box.with_user(self.user_admin).action_sync_now()
        self.assertEqual(self._subjects(), {"a1": 1})
        self.assertFalse(self._visible_to(self.user_owner))
        self.assertFalse(self._visible_to(self.user_admin))
        self.assertFalse(self.contact.with_user(self.user_owner).gmail_message_ids)
        restore()
        self.assertEqual(self._visible_to(self.user_owner).mapped("subject"), ["a1"])
        # during a run: what the run stored before stays, nothing after it is fetched
        for name in ("a3", "a4", "a5", "a6"):
            self._append(name)
        synced, commits = self._sync_interrupted(stop)
        self.assertFalse(synced)
        self.assertEqual(commits, [3])
        self.assertEqual(self._subjects(), {"a1": 1, "a2": 1, "a3": 1})
        self.assertFalse(self._visible_to(self.user_owner))
        # restored: the rest comes, each email once, from where the run stopped
        restore()
        self._fetch()
        self.assertEqual(self._subjects(), dict.fromkeys(["a1", "a2", "a3", "a4", "a5", "a6"], 1))
        self.assertEqual((box.count_stored, box.count_duplicate), (6, 0))
        self.assertEqual(len(self._visible_to(self.user_owner)), 6)
        self.assertEqual(box.state, "connected")

    def test_owner_loses_the_seat(self):
        seat = self.env.ref(SEAT)
        owner = self.user_owner
        self._check_stops_and_resumes(
            lambda: seat.write({"users": [Command.unlink(owner.id)]}),
            lambda: seat.write({"users": [Command.link(owner.id)]}),
            AccessError,
        )

    def test_owner_deactivated(self):
        owner = self.user_owner
        self._check_stops_and_resumes(
            lambda: owner.write({"active": False}),
            lambda: owner.write({"active": True}),
            UserError,
        )

    def test_mailbox_archived(self):
        box = self.box
        self._check_stops_and_resumes(
            lambda: box.write({"active": False}),
            lambda: box.write({"active": True}),
            UserError,
        )

    def test_switch_to_another_address_and_back(self):
        old = self.box
        self._append("old1")
        self._fetch()
        self.assertEqual(self._subjects(old), {"old1": 1})
        # the address of a mailbox with synced mail is not edited in place (its mail and
        # cursor belong to the old address): the owner switches to a new mailbox
        with self.assertRaisesText(UserError, "archive"):
            old.with_user(self.user_owner).email = "olivia.new@ourco.test"
        self.assertEqual(old.email, OWNER)
        # a second active mailbox is refused, by the ORM and by the database
        Mailbox = self.env["crm.gmail.mailbox"].with_user(self.user_owner)
        with self.assertRaisesText(ValidationError, "active mailbox"):
            Mailbox.create({"email": "olivia.new@ourco.test", "host": self.server.host})
        old.with_user(self.user_owner).action_archive()
        new_login = self._server_user()
        new = Mailbox.create({"email": "olivia.new@ourco.test", "provider": "imap"})
        self._point(new.sudo(), new_login)
        self._append("new1", login=new_login, to="olivia.new@ourco.test")
        self._append("old2")  # arrives in the old mailbox meanwhile
        self._fetch()
        self.assertEqual(self._subjects(new), {"new1": 1})
        self.assertEqual(self._subjects(old), {"old1": 1})  # not fetched, not deleted
        self.assertEqual(self._visible_to(self.user_owner).mapped("subject"), ["new1"])
        with self.assertRaisesText(ValidationError, "active mailbox"):
            old.with_user(self.user_owner).action_unarchive()
        # switching back shows the old mail again and resumes from the old cursor
        new.with_user(self.user_owner).action_archive()
        old.with_user(self.user_owner).action_unarchive()
        self._fetch()
        self.assertEqual(self._subjects(old), {"old1": 1, "old2": 1})
        self.assertEqual((old.count_stored, old.count_duplicate), (2, 0))
        self.assertEqual(
            sorted(self._visible_to(self.user_owner).mapped("subject")), ["old1", "old2"]
        )
        self.assertEqual(self._subjects(new), {"new1": 1})

    def test_new_server_account_is_read_from_its_start(self):
        """Another account behind the mailbox (login or server): its UIDs are not those
        the old cursor counted, even when its UIDVALIDITY happens to be the same."""
        box = self.box
        for name in ("a1", "a2", "a3"):
            self._append(name)
        self._fetch()
        self.assertEqual(json.loads(box.sync_state)["INBOX"]["high"], 3)
        other = self._server_user()
        self._append("b1", login=other)
        self._append("b2", login=other)
        validity = self.server.uidvalidity(self.login, "INBOX")
        self.server.set_uidvalidity(other, "INBOX", validity)
        self._point(box, other)
        self._fetch()
        self.assertEqual(self._subjects(), dict.fromkeys(["a1", "a2", "a3", "b1", "b2"], 1))

    def test_email_address_decides_sent_or_received(self):
        """Before a first sync the address may be corrected; the new one is the owner's."""
        box = self.box
        box.email = "old.alias@ourco.test"
        box.email = "new.alias@ourco.test"
        self._append("from-new", sender="new.alias@ourco.test", to="chris@acme.test")
        self._append("from-old", sender="old.alias@ourco.test", to="chris@acme.test")
        self._append("from-login", sender=self.login, to="erin@lead.test", folder="Sent")
        self._fetch()
        direction = {m.subject: m.direction for m in self._messages()}
        self.assertEqual(
            direction, {"from-new": "sent", "from-old": "received", "from-login": "sent"}
        )
        old = self._messages().filtered(lambda m: m.subject == "from-old")
        self.assertIn("old.alias@ourco.test", old.address_ids.mapped("email"))
        new = self._messages().filtered(lambda m: m.subject == "from-new")
        self.assertEqual(new.address_ids.mapped("email"), ["chris@acme.test"])

    # ------------------------------------------------------------ deleting
    def _stored_with_attachment(self):
        self._append("att", attachments=[("secret.pdf", b"%PDF private", "application/pdf")])
        self._fetch()
        message = self._messages()
        self.assertEqual(len(message), 1)
        self.assertEqual(message.attachment_ids.mapped("name"), ["secret.pdf"])
        return message, message.attachment_ids, message.address_ids

    def _assert_gone(self, message, attachment, addresses):
        self.assertFalse(message.exists())
        self.assertFalse(addresses.exists())
        if attachment.sudo().exists():  # an orphan: Odoo checks nothing on it any more
            for user in (self.user_colleague, self.user_noseat, self.user_admin):
                with self.assertRaises(AccessError, msg=user.login):
                    attachment.with_user(user).read(["name", "raw"])
        self.assertFalse(attachment.sudo().exists(), "orphaned attachment left behind")

    def test_unlink_mailbox_removes_its_emails_and_attachments(self):
        message, attachment, addresses = self._stored_with_attachment()
        self.box.with_user(self.user_owner).unlink()
        self._assert_gone(message, attachment, addresses)

    def test_unlink_owner_removes_their_emails_and_attachments(self):
        message, attachment, addresses = self._stored_with_attachment()
        self.user_owner.unlink()
        self._assert_gone(message, attachment, addresses)

    # ------------------------------------------------------------ failures and recovery
    @mute_logger(MAILBOX_LOGGER)
    def test_wrong_password_then_the_right_one(self):
        box = self.box
        right = self.server.password(self.login)
        self._append("before")
        self._fetch()
        as_owner = box.with_user(self.user_owner)
        as_owner.password = "wrong-1"
        action = as_owner.action_test_connection()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn("refused the login", action["params"]["message"])
        self.assertEqual(len(self._activities()), 1)
        for _run in range(3):  # the cron passes it; "Sync now" fails again
            self._fetch()
            self.assertEqual(as_owner.action_sync_now()["params"]["type"], "danger")
        self.assertEqual(len(self._activities()), 1)
        # another wrong password: still one activity for the owner
        as_owner.password = "wrong-2"
        self.assertEqual(box.state, "draft")
        self._append("while-broken")
        self._fetch()
        self.assertEqual((box.state, box.last_error_kind), ("error", "auth"))
        activities = self._activities()
        self.assertEqual(len(activities), 1)
        self.assertEqual(activities.user_id, self.user_owner)
        # the right one: fetching resumes where it stopped and the activity is done
        as_owner.password = right
        self._fetch()
        self.assertEqual(
            (box.state, box.last_error, box.last_error_kind), ("connected", False, False)
        )
        self.assertEqual(self._subjects(), {"before": 1, "while-broken": 1})
        self.assertEqual(box.count_duplicate, 0)
        self.assertFalse(self._activities())
        # a later failure tells the owner again
        as_owner.password = "wrong-3"
        self._fetch()
        self.assertEqual(len(self._activities()), 1)

    # ------------------------------------------------------------ protocols
    def _check_protocol(self, **point):
        box = self.box
        self._point(box, self.login, **point)
        action = box.with_user(self.user_owner).action_test_connection()
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
        self._append("p1")
        self._append("news", sender="news@spam.test")
        self._fetch()
        self.assertEqual((box.state, box.last_error), ("connected", False))
        self.assertEqual(self._subjects(), {"p1": 1})
        self.assertEqual(self._messages().direction, "received")
        self._fetch()
        self._append("p2", sender="erin@lead.test", attachments=[("a.txt", b"x", "text/plain")])
        box.with_user(self.user_owner).action_sync_now()
        self.assertEqual(self._subjects(), {"p1": 1, "p2": 1})
        self.assertEqual((box.count_stored, box.count_duplicate), (2, 0))
        p2 = self._messages().filtered(lambda m: m.subject == "p2")
        self.assertEqual(p2.attachment_ids.mapped("name"), ["a.txt"])
        self.assertIn(p2, self.lead.with_user(self.user_owner).gmail_message_ids)
        return box

    def test_pop3_over_tls(self):
        box = self._check_protocol(provider="pop3", port=self.server.pop3s_port)
        self.assertEqual(set(json.loads(box.sync_state)), {"INBOX"})

    def test_pop3_with_stls(self):
        self._check_protocol(provider="pop3", port=self.server.pop3_port, security="starttls")

    def test_imap_with_starttls(self):
        self._check_protocol(port=self.server.imap_port, security="starttls")

    @mute_logger(MAILBOX_LOGGER)
    def test_untrusted_certificate_in_the_owners_language(self):
        self.env["res.lang"]._activate_lang("de_DE")
        self.user_owner.lang = "de_DE"
        box = self.box
        self._point(box, self.login, ca=False)
        self._append("c1")
        action = box.with_user(self.user_owner).action_test_connection()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn(
            "Es konnte keine sichere Verbindung aufgebaut werden", action["params"]["message"]
        )
        self.assertEqual((box.state, box.last_error_kind), ("error", "tls"))
        # the cron (in the owner's language too) and "Sync now"
        self._fetch()
        self.assertEqual((box.state, box.last_error_kind), ("error", "tls"))
        self.assertTrue(box.last_error.startswith("Es konnte keine sichere Verbindung"))
        action = box.with_user(self.user_owner).action_sync_now()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn("Es konnte keine sichere Verbindung", action["params"]["message"])
        self.assertFalse(self._messages())
        # trusting the server's CA resumes
        box.ca_file = self.server.ca_file
        self._fetch()
        self.assertEqual(box.state, "connected")
        self.assertEqual(self._subjects(), {"c1": 1})

    # ------------------------------------------------------------ settings
    def test_seats_lowered_below_the_holders(self):
        Groups = self.env["res.groups"]
        seat = self.env.ref(SEAT)
        _seats, used = Groups._crm_gmail_sync_seats()
        self.assertGreaterEqual(used, 3)
        with self.assertRaisesText(ValidationError, "seat"):
            self.env["res.config.settings"].create({"crm_gmail_sync_seats": used - 1}).execute()
        param = self.env["ir.config_parameter"].sudo()
        self.env.cr.execute(  # not get_param: its cache outlives the savepoint's rollback
            "SELECT value FROM ir_config_parameter WHERE key = 'crm_gmail_sync.seats'"
        )
        self.assertEqual(self.env.cr.fetchone(), ("20",))
        # lowered behind the settings' back (System Parameters): holders can still be
        # removed one by one and users without a seat added, but no seat is handed out
        param.set_param("crm_gmail_sync.seats", 0)
        seat.write({"users": [Command.unlink(self.user_colleague.id)]})
        self.user_admin.write({"groups_id": [Command.unlink(seat.id)]})
        self.assertEqual(Groups._crm_gmail_sync_seats(), (0, used - 2))
        self.env["res.users"].create({"name": "No seat", "login": "gs_life_noseat"})
        with self.assertRaisesText(ValidationError, "seat"):
            seat.write({"users": [Command.link(self.user_noseat.id)]})
        with self.assertRaisesText(ValidationError, "seat"):
            seat.write({"users": [Command.link(self.user_colleague.id)]})

    def test_interval_setting_drives_the_cron(self):
        cron = self.env.ref("crm_gmail_sync.ir_cron_crm_gmail_sync_fetch")
        self.env["res.config.settings"].create({"crm_gmail_sync_interval": 90}).execute()
        self.assertEqual((cron.interval_number, cron.interval_type), (90, "minutes"))
        self.assertTrue(cron.active)
        cron.write({"interval_number": 2, "interval_type": "hours"})
        self.assertEqual(self.env["res.config.settings"].create({}).crm_gmail_sync_interval, 120)
