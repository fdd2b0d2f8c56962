from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.exceptions import AccessError, ValidationError
from odoo.fields import Command
from odoo.tests import tagged

from .common import SEAT, TAB, TAB_VISIBLE, GmailSyncCommon, make_raw


@tagged("post_install", "-at_install")
class TestLicence(GmailSyncCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.profile_tab = cls.env["res.groups"].create(
            {"name": "Profile with Emails tab", "implied_ids": [Command.link(cls.env.ref(TAB).id)]}
        )
        cls.menu = cls.env.ref("crm_gmail_sync.crm_gmail_message_menu")
        cls.menu_root = cls.env.ref("crm_gmail_sync.crm_gmail_message_menu_root")
        # A CRM profile without the Emails tab: the salesman profile grants it by default.
        cls.env.ref("sales_team.group_sale_salesman")._remove_group(cls.env.ref(TAB))

    def assertSeatError(self):
        return self.assertRaisesText(ValidationError, "seat")

    def _user(self, login, seat, tab):
        groups = ["base.group_user", "sales_team.group_sale_salesman_all_leads"]
        if seat:
            groups.append(SEAT)
        user = mail_new_test_user(self.env, login=login, groups=",".join(groups))
        if tab:
            self.profile_tab.write({"users": [Command.link(user.id)]})
        return user

    def _tab_shown(self, user):
        visible_menus = self.env["ir.ui.menu"].with_user(user)._visible_menu_ids()
        menu_shown = self.menu.id in visible_menus and self.menu_root.id in visible_menus
        arch_lead = self.env["crm.lead"].with_user(user).get_views([(False, "form")])
        arch_partner = self.env["res.partner"].with_user(user).get_views([(False, "form")])
        page_lead = 'name="gmail_emails"' in arch_lead["views"]["form"]["arch"]
        page_partner = 'name="gmail_emails"' in arch_partner["views"]["form"]["arch"]
        self.assertEqual(menu_shown, page_lead, "menu and lead page disagree")
        self.assertEqual(menu_shown, page_partner, "menu and contact page disagree")
        self.assertEqual(menu_shown, user.has_group(TAB_VISIBLE))
        return menu_shown

    def test_four_row_table(self):
        table = [
            (True, True, True),
            (True, False, False),
            (False, True, False),
            (False, False, False),
        ]
        for seat, tab, shown in table:
            with self.subTest(seat=seat, tab=tab):
                user = self._user(f"gs_row_{seat}_{tab}", seat, tab)
                self.assertEqual(user.has_group(SEAT), seat)
                self.assertEqual(user.has_group(TAB), tab)
                self.assertEqual(self._tab_shown(user), shown)

    def test_table_follows_group_changes(self):
        user = self._user("gs_changes", seat=False, tab=False)
        self.assertFalse(self._tab_shown(user))
        user.write({"groups_id": [Command.link(self.env.ref(SEAT).id)]})
        self.assertFalse(self._tab_shown(user))
        self.profile_tab.write({"users": [Command.link(user.id)]})
        self.assertTrue(self._tab_shown(user))
        # losing the seat through the group's side hides the tab again
        self.env.ref(SEAT).write({"users": [Command.unlink(user.id)]})
        self.assertFalse(self._tab_shown(user))
        # granting the tab through the profile (implied groups) works too
        user.write({"groups_id": [Command.link(self.env.ref(SEAT).id)]})
        self.assertTrue(self._tab_shown(user))
        # manual tampering with the technical group is corrected
        self.env.ref(TAB_VISIBLE).write({"users": [Command.unlink(user.id)]})
        self.assertTrue(user.has_group(TAB_VISIBLE))

    def test_default_profile(self):
        """Salespeople get the Emails tab profile by default (before our _remove_group)."""
        salesman = self.env.ref("sales_team.group_sale_salesman")
        salesman._apply_group(self.env.ref(TAB))
        user = self._user("gs_default_profile", seat=True, tab=False)
        self.assertTrue(user.has_group(TAB))
        self.assertTrue(self._tab_shown(user))

    def test_seat_limit(self):
        seats, used = self.env["res.groups"]._crm_gmail_sync_seats()
        self.env["ir.config_parameter"].sudo().set_param("crm_gmail_sync.seats", used + 1)
        self._user("gs_last_seat", seat=True, tab=True)
        with self.assertSeatError():
            self._user("gs_one_too_many", seat=True, tab=True)
        extra = self._user("gs_extra", seat=False, tab=True)
        with self.assertSeatError():
            extra.write({"groups_id": [Command.link(self.env.ref(SEAT).id)]})
        with self.assertSeatError():
            self.env.ref(SEAT).write({"users": [Command.link(extra.id)]})
        # a profile implying the seat cannot hand out seats beyond the limit either
        profile = self.env["res.groups"].create({"name": "Seat profile"})
        profile.write({"users": [Command.link(extra.id)]})
        with self.assertSeatError():
            profile.write({"implied_ids": [Command.link(self.env.ref(SEAT).id)]})
        # a deactivated user frees the seat; reactivating beyond the limit is refused
        self.user_colleague.active = False
        extra.write({"groups_id": [Command.link(self.env.ref(SEAT).id)]})
        with self.assertSeatError():
            self.user_colleague.active = True
        # lowering the setting below the seats in use is refused
        settings = self.env["res.config.settings"].create({"crm_gmail_sync_seats": 1})
        with self.assertSeatError():
            settings.execute()

    def test_no_seat_no_mailbox_no_share_no_mail(self):
        noseat = self.user_noseat
        with self.assertRaises(AccessError):
            self.env["crm.gmail.mailbox"].with_user(noseat).create(
                {"email": "nina@ourco.test", "host": "127.0.0.1"}
            )
        with self.assertSeatError():
            self.env["crm.gmail.mailbox"].create(
                {"user_id": noseat.id, "email": "nina@ourco.test", "host": "127.0.0.1"}
            )
        with self.assertSeatError():
            self.contact.with_user(noseat).gmail_share_emails = True
        # the owner loses the seat: their mail is shown to nobody and not fetched
        message = self.store(self.mailbox_owner, [make_raw("chris@acme.test", "olivia@ourco.test")])
        self.assertTrue(message.with_user(self.user_owner).is_accessible)
        self.env.ref(SEAT).write({"users": [Command.unlink(self.user_owner.id)]})
        Message = self.env["crm.gmail.message"]
        self.assertFalse(Message.with_user(self.user_owner).search([("id", "=", message.id)]))
        self.assertNotIn(
            self.mailbox_owner,
            self.env["crm.gmail.mailbox"].search(self.mailbox_owner._fetchable_domain()),
        )
        self.assertFalse(self.mailbox_owner._sync_one())

    def test_one_active_mailbox_per_user(self):
        with self.assertRaisesText(ValidationError, "active mailbox"):
            self.env["crm.gmail.mailbox"].create(
                {"user_id": self.user_owner.id, "email": "second@ourco.test", "host": "x.test"}
            )
        self.mailbox_owner.active = False
        second = self.env["crm.gmail.mailbox"].create(
            {"user_id": self.user_owner.id, "email": "second@ourco.test", "host": "x.test"}
        )
        self.assertTrue(second.active)

    def test_secret_owner_and_admin_only(self):
        Mailbox = self.env["crm.gmail.mailbox"]
        own = Mailbox.with_user(self.user_owner).search([])
        self.assertEqual(own, self.mailbox_owner)
        # the mailbox is the owner's and the admin's; its secret is write-only (test_leaks)
        self.assertFalse(self.mailbox_owner.with_user(self.user_owner).password)
        self.assertFalse(self.mailbox_owner.with_user(self.user_admin).password)
        self.assertTrue(self.mailbox_owner.with_user(self.user_admin).password_set)
        self.assertEqual(self.mailbox_owner._engine_account().password, "s3cret-owner")
        with self.assertRaises(AccessError):
            self.mailbox_owner.with_user(self.user_colleague).read(["password"])
        with self.assertRaises(AccessError):
            self.mailbox_owner.with_user(self.user_noseat).read(["password"])
        self.assertNotIn("s3cret", repr(self.mailbox_owner._engine_account()))
        # messages expose no path to the mailbox's secret for a colleague
        message = self.store(
            self.mailbox_colleague, [make_raw("chris@acme.test", "carl@ourco.test")]
        )
        self.contact.with_user(self.user_colleague).gmail_share_emails = True
        as_owner = message.with_user(self.user_owner)
        self.assertTrue(as_owner.is_accessible)
        with self.assertRaises(AccessError):
            as_owner.mailbox_id.read(["password", "login"])

    def test_messages_in_german(self):
        from ..engine import AuthError

        self.env["res.lang"]._activate_lang("de_DE")
        self.user_owner.lang = "de_DE"
        text = self.mailbox_owner._error_text(AuthError(server_text="[AUTHENTICATIONFAILED]"))
        self.assertIn("Der Server hat die Anmeldung abgelehnt", text)
        self.assertIn("Antwort des Servers: [AUTHENTICATIONFAILED]", text)
        seats, used = self.env["res.groups"]._crm_gmail_sync_seats()
        self.env["ir.config_parameter"].sudo().set_param("crm_gmail_sync.seats", used)
        with self.assertRaisesText(ValidationError, "Lizenz"):
            self.env["res.users"].with_context(lang="de_DE").create(
                {
                    "name": "Zu viel",
                    "login": "gs_zu_viel",
                    "groups_id": [Command.link(self.env.ref(SEAT).id)],
                }
            )

    def test_settings_interval_and_views(self):
        cron = self.env.ref("crm_gmail_sync.ir_cron_crm_gmail_sync_fetch")
        self.assertEqual((cron.interval_number, cron.interval_type), (5, "minutes"))
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.crm_gmail_sync_interval, 5)
        settings.crm_gmail_sync_interval = 15
        settings.execute()
        self.assertEqual((cron.interval_number, cron.interval_type), (15, "minutes"))
        with self.assertRaisesText(ValidationError, "minute"):
            self.env["res.config.settings"].create({"crm_gmail_sync_interval": 0}).execute()
        # every screen loads for the users who reach it
        for model, user in (
            ("crm.gmail.mailbox", self.user_owner),
            ("crm.gmail.mailbox", self.user_admin),
            ("crm.gmail.message", self.user_owner),
            ("crm.gmail.message", self.user_noseat),
        ):
            views = self.env[model].with_user(user).get_views([(False, "list"), (False, "form")])
            self.assertEqual(set(views["views"]), {"list", "form"})
        action = self.mailbox_owner.with_user(self.user_owner).action_open_my_mailbox()
        self.assertEqual(action["res_id"], self.mailbox_owner.id)
        self.assertEqual(self.mailbox_owner.with_user(self.user_owner).message_count, 0)
