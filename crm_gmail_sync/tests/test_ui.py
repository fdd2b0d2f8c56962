"""The Emails tab in the real web client: headless Chromium runs the tours of
``static/tests/tours/emails_tab_tour.js`` against the test's own HTTP server.

Run by ``tools/run-tests`` (pytest-odoo with ``--odoo-http``). Without Chrome/Chromium Odoo
skips browser tests; with ``CI=true`` that is a failure instead (``.ci/run`` installs Debian's
``chromium``).
"""

from odoo.fields import Command
from odoo.tests import tagged

from .common import SEAT, TAB, TAB_VISIBLE, TourCase, make_raw

SUBJECT = "Tour: quote for 40 widgets"  # the tour looks for this text


@tagged("post_install", "-at_install")
class TestEmailsTabUi(TourCase):
    """Who sees the CRM "Emails" menu, list and deal page: seat AND Emails tab profile."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The default profile (salesman) implies the Emails tab: take it away so that the
        # profile is granted explicitly below, and a salesman can hold a seat without it.
        cls.env.ref("sales_team.group_sale_salesman")._remove_group(cls.env.ref(TAB))
        cls.user_owner.write({"groups_id": [Command.link(cls.env.ref(TAB).id)]})
        cls.user_noseat.write({"groups_id": [Command.link(cls.env.ref(TAB).id)]})
        cls.user_seat_notab = cls.user_colleague  # a seat, CRM access, no Emails tab
        for user in (cls.user_owner, cls.user_noseat, cls.user_seat_notab):
            user.password = user.login  # start_tour(login=x) signs in with password x
        # the customer (main contact of the deal) writes to the owner's private mailbox
        cls.message = cls.store(
            cls.mailbox_owner,
            [make_raw("Chris Customer <chris@acme.test>", "olivia@ourco.test", subject=SUBJECT)],
        )

    def start_tour(self, url_path, tour_name, step_delay=None, **kwargs):
        # the tours open the deal from "My Pipeline", the CRM app's first page
        self.deal.user_id = self.env["res.users"].search([("login", "=", kwargs["login"])])
        return super().start_tour(url_path, tour_name, step_delay, **kwargs)

    def assertGroups(self, user, seat, tab):
        """The precondition of each tour, so that a tour checks what its name says."""
        self.assertEqual(
            (user.has_group(SEAT), user.has_group(TAB), user.has_group(TAB_VISIBLE)),
            (seat, tab, seat and tab),
        )

    def test_seat_and_tab_profile_see_emails(self):
        self.assertGroups(self.user_owner, seat=True, tab=True)
        self.assertEqual(self.message.subject, SUBJECT)
        self.assertEqual(self.deal.partner_id, self.contact)
        self.assertIn(self.message, self.deal.with_user(self.user_owner).gmail_message_ids)
        self.start_tour("/odoo", "crm_gmail_sync_emails_tab_shown", login=self.user_owner.login)

    def test_tab_profile_without_seat_sees_no_emails(self):
        self.assertGroups(self.user_noseat, seat=False, tab=True)
        self.start_tour("/odoo", "crm_gmail_sync_emails_tab_hidden", login=self.user_noseat.login)

    def test_seat_without_tab_profile_sees_no_emails(self):
        self.assertGroups(self.user_seat_notab, seat=True, tab=False)
        self.start_tour(
            "/odoo", "crm_gmail_sync_emails_tab_hidden", login=self.user_seat_notab.login
        )
