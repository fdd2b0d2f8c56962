import importlib.util
from pathlib import Path

from odoo.tests import tagged

from .common import GmailSyncCommon, make_raw

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def load_migration(version, name):
    """A migration script of the addon, as a module (its file name is no identifier)."""
    spec = importlib.util.spec_from_file_location(
        f"crm_gmail_sync_migration_{version.replace('.', '_')}", MIGRATIONS / version / name
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@tagged("post_install", "-at_install")
class TestLinking(GmailSyncCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.m_chris, cls.m_buyer, cls.m_erin, cls.m_erin_new, cls.m_idn, cls.m_tag = cls.store(
            cls.mailbox_owner,
            [
                make_raw("Chris <CHRIS@acme.test>", "olivia@ourco.test", subject="chris"),
                make_raw("olivia@ourco.test", "buyer@acme.test", subject="buyer"),
                make_raw("erin@lead.test", "olivia@ourco.test", subject="erin"),
                make_raw("olivia@ourco.test", "erin.new@lead.test", subject="erin new"),
                make_raw("info@xn--mnchen-3ya.test", "olivia@ourco.test", subject="idn"),
                make_raw("chris+crm@acme.test", "olivia@ourco.test", subject="tag"),
            ],
        )

    def test_keys_normalised(self):
        self.assertEqual(self.contact.gmail_email_key, "chris@acme.test")
        lead = self.env["crm.lead"].create({"name": "x", "email_from": "  Erin@LEAD.test "})
        self.assertEqual(lead.gmail_email_key, "erin@lead.test")
        self.assertEqual(lead.with_user(self.user_owner).gmail_message_ids, self.m_erin)
        partner = self.env["res.partner"].create({"name": "M", "email": "INFO@München.test"})
        self.assertEqual(partner.with_user(self.user_owner).gmail_message_ids, self.m_idn)

    def test_plus_tags_are_kept(self):
        self.assertEqual(self.contact.with_user(self.user_owner).gmail_message_ids, self.m_chris)
        tagged_partner = self.env["res.partner"].create(
            {"name": "T", "email": "chris+crm@acme.test"}
        )
        self.assertEqual(tagged_partner.with_user(self.user_owner).gmail_message_ids, self.m_tag)

    def test_lead_and_address_change(self):
        lead = self.lead.with_user(self.user_owner)
        self.assertEqual(lead.gmail_message_ids, self.m_erin)
        self.assertEqual(lead.gmail_message_count, 1)
        self.lead.email_from = "erin.new@lead.test"
        lead.invalidate_recordset()
        self.assertEqual(lead.gmail_message_ids, self.m_erin_new)
        self.lead.email_from = False
        lead.invalidate_recordset()
        self.assertFalse(lead.gmail_message_ids)
        self.assertEqual(lead.gmail_message_count, 0)

    def test_no_address_no_emails(self):
        partner = self.env["res.partner"].create({"name": "No mail"})
        self.assertFalse(partner.with_user(self.user_owner).gmail_message_ids)
        lead = self.env["crm.lead"].create({"name": "No mail"})
        self.assertFalse(lead.with_user(self.user_owner).gmail_message_ids)

    def test_deal_shows_main_contact(self):
        deal = self.deal.with_user(self.user_owner)
        self.assertEqual(deal.gmail_message_ids, self.m_buyer | self.m_chris)
        # newest first, whatever address linked them
        dates = deal.gmail_message_ids.mapped("date")
        self.assertEqual(dates, sorted(dates, reverse=True))
        # a lead (not a deal) shows only its own address
        self.deal.type = "lead"
        deal.invalidate_recordset()
        self.assertEqual(deal.gmail_message_ids, self.m_buyer)
        self.deal.type = "opportunity"
        self.deal.partner_id = self.contact_other
        self.deal.email_from = "buyer@acme.test"
        deal.invalidate_recordset()
        self.assertEqual(deal.gmail_message_ids, self.m_buyer)

    def _count_compute_queries(self, records):
        records = records.with_user(self.user_owner)
        self.env.flush_all()
        records.mapped("gmail_email_key"), records.mapped("type"), records.mapped("partner_id")
        records.invalidate_recordset(["gmail_message_ids", "gmail_message_count"])
        before = self.env.cr.sql_log_count
        records.mapped("gmail_message_ids")
        return self.env.cr.sql_log_count - before

    def test_batch_compute_constant_queries(self):
        """Linking costs the same number of queries for 3 or 30 records (no per-record query)."""
        Lead = self.env["crm.lead"]
        few = Lead.create([{"name": f"F{i}", "email_from": "erin@lead.test"} for i in range(3)])
        many = Lead.create(
            [
                {
                    "name": f"M{i}",
                    "email_from": f"m{i}@lead.test",
                    "type": "opportunity",
                    "partner_id": self.contact.id,
                }
                for i in range(30)
            ]
        )
        self._count_compute_queries(self.lead)  # warm the rule and group caches
        count_few = self._count_compute_queries(few)
        count_many = self._count_compute_queries(many)
        self.assertEqual(count_few, count_many)
        self.assertEqual(count_many, 1)
        for lead in few.with_user(self.user_owner):
            self.assertEqual(lead.gmail_message_ids, self.m_erin)

    def test_search_by_linked_emails(self):
        Lead = self.env["crm.lead"].with_user(self.user_owner)
        found = Lead.search([("gmail_message_ids", "in", self.m_chris.ids)])
        self.assertIn(self.deal, found)
        Partner = self.env["res.partner"].with_user(self.user_owner)
        self.assertIn(self.contact, Partner.search([("gmail_message_ids", "in", self.m_chris.ids)]))

    def test_deactivated_owner_hidden_on_records(self):
        self.user_owner.active = False
        self.assertFalse(self.contact.with_user(self.user_colleague).gmail_message_ids)
        self.assertFalse(self.contact.with_user(self.user_owner).gmail_message_ids)

    def test_switched_mailbox(self):
        self.mailbox_owner.active = False
        new = self.env["crm.gmail.mailbox"].create(
            {"user_id": self.user_owner.id, "email": "olivia2@ourco.test", "host": "127.0.0.1"}
        )
        contact = self.contact.with_user(self.user_owner)
        self.assertFalse(contact.gmail_message_ids)
        new.active = False
        self.mailbox_owner.active = True
        contact.invalidate_recordset()
        self.assertEqual(contact.gmail_message_ids, self.m_chris)

    def test_name_and_address_form_links(self):
        """``Name <address>``, as Odoo's mail gateway fills a lead's ``email_from``."""
        lead = self.env["crm.lead"].create(
            {"name": "From the gateway", "email_from": '"Erin, Lead" <Erin@Lead.test>'}
        )
        self.assertEqual(lead.gmail_email_key, "erin@lead.test")
        self.assertEqual(lead.with_user(self.user_owner).gmail_message_ids, self.m_erin)
        partner = self.env["res.partner"].create(
            {"name": "Chris", "email": "Chris Customer <chris@acme.test>"}
        )
        self.assertEqual(partner.with_user(self.user_owner).gmail_message_ids, self.m_chris)
        two = self.env["crm.lead"].create(
            {"name": "Two", "email_from": "erin@lead.test, chris@acme.test"}
        )
        self.assertFalse(two.gmail_email_key, "two addresses are none, as email_normalize says")

    def test_upgrade_recomputes_name_form_keys_and_fills_shares(self):
        migration = load_migration("18.0.1.1.0", "post-migrate.py")
        lead = self.env["crm.lead"].create(
            {"name": "Old", "email_from": "Erin <erin@lead.test>", "type": "opportunity"}
        )
        self.env["crm.gmail.share"].sudo().create(
            {"user_id": self.user_owner.id, "lead_id": lead.id}
        )
        self.env.flush_all()
        # the state a 18.0.1.0.0 database is in: the old keys, shares without addresses
        self.env.cr.execute("UPDATE crm_lead SET gmail_email_key = NULL WHERE id = %s", [lead.id])
        self.env.invalidate_all()
        migration.migrate(self.env.cr, "18.0.1.0.0")
        self.env.invalidate_all()
        self.assertEqual(lead.gmail_email_key, "erin@lead.test")
        share = self.env["crm.gmail.share"].sudo().search([("lead_id", "=", lead.id)])
        self.assertEqual(share.email_keys, "erin@lead.test")
