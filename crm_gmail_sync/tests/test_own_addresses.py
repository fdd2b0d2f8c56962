"""The owner's own addresses, end to end from the loopback Dovecot: the mailbox address, the
login and the aliases the owner confirms decide direction and are never customers; mail
in the Sent folder is sent whatever its From says, and its From addresses are offered."""

import secrets

from odoo.tests import tagged

from .common import DovecotCommon, make_raw

ALIAS = "sales@ourco.test"  # the owner's Gmail "Send mail as" address


@tagged("post_install", "-at_install")
class TestOwnAddresses(DovecotCommon):
    def setUp(self):
        super().setUp()
        self.box = self.mailbox_owner
        self.login = self.connect_new_server_user(self.box, "olivia.own", email="olivia@ourco.test")
        self.tag = secrets.token_hex(4)
        # A contact whose address is the alias (say, imported from the website's form):
        # still the owner's own address once confirmed, never a customer.
        self.env["res.partner"].create({"name": "Sales inbox", "email": ALIAS})

    def _append(self, sender, to, name, folder="INBOX"):
        raw = make_raw(sender, to, subject=name, message_id=f"<{name}.{self.tag}@x.test>")
        self.server.append(self.login, folder, raw)

    def _by_subject(self):
        messages = self.env["crm.gmail.message"].sudo().search([("mailbox_id", "=", self.box.id)])
        return {m.subject: m for m in messages}

    def _aliases(self):
        self.box.invalidate_recordset(["alias_ids"])
        return {a.email: a.state for a in self.box.alias_ids}

    def test_sent_folder_is_sent_and_offers_its_from(self):
        self._append(f"Sales <{ALIAS}>", "chris@acme.test", "s1", folder="Sent")
        self._append("olivia@ourco.test", "buyer@acme.test", "s2", folder="Sent")
        self._append("chris@acme.test", "olivia@ourco.test", "r1")
        self.box.with_user(self.user_owner).action_sync_now()
        stored = self._by_subject()
        self.assertEqual(set(stored), {"s1", "s2", "r1"})
        self.assertEqual(stored["s1"].direction, "sent", "in Sent, whatever its From says")
        self.assertEqual(stored["s2"].direction, "sent")
        self.assertEqual(stored["r1"].direction, "received")
        # the alias is not a participant of the owner's own sent mail
        self.assertEqual(stored["s1"].address_ids.mapped("email"), ["chris@acme.test"])
        # offered, not taken: only the owner decides which addresses are theirs
        self.assertEqual(self._aliases(), {ALIAS: "suggested"})
        self.assertNotIn(ALIAS, self.box._engine_account().owner_addresses)

    def test_confirmed_alias_decides_direction_and_is_no_customer(self):
        self.box.with_user(self.user_owner).write({"alias_ids": [(0, 0, {"email": ALIAS})]})
        self.assertEqual(self._aliases(), {ALIAS: "confirmed"})
        self.assertIn(ALIAS, self.box._engine_account().owner_addresses)
        # from the alias to a customer: sent; from a customer to the alias: received;
        # between the alias and a colleague only: nobody's customer mail
        self._append(ALIAS, "chris@acme.test", "a1")
        self._append("chris@acme.test", ALIAS, "a2")
        self._append(ALIAS, "carl@ourco.test", "a3")
        self._append("nobody@else.test", ALIAS, "a4")
        self.box.with_user(self.user_owner).action_sync_now()
        stored = self._by_subject()
        self.assertEqual(set(stored), {"a1", "a2"})
        self.assertEqual(stored["a1"].direction, "sent")
        self.assertEqual(stored["a2"].direction, "received")
        for message in stored.values():
            self.assertNotIn(ALIAS, message.address_ids.mapped("email"))
        self.assertEqual(self.box.count_not_customer, 2)

    def test_a_suggestion_confirmed_or_dismissed(self):
        self._append(ALIAS, "chris@acme.test", "s1", folder="Sent")
        self._append("other.me@ourco.test", "chris@acme.test", "s2", folder="Sent")
        self.box.with_user(self.user_owner).action_sync_now()
        self.assertEqual(self._aliases(), {ALIAS: "suggested", "other.me@ourco.test": "suggested"})
        aliases = self.box.alias_ids.with_user(self.user_owner)
        aliases.filtered(lambda a: a.email == ALIAS).action_confirm()
        aliases.filtered(lambda a: a.email != ALIAS).action_dismiss()
        self.assertEqual(self._aliases(), {ALIAS: "confirmed", "other.me@ourco.test": "dismissed"})
        # a dismissed address is not offered again; the confirmed one is the owner's
        self._append("other.me@ourco.test", "buyer@acme.test", "s3", folder="Sent")
        self.box.with_user(self.user_owner).action_sync_now()
        self.assertEqual(self._aliases(), {ALIAS: "confirmed", "other.me@ourco.test": "dismissed"})
        self.assertIn(ALIAS, self.box._engine_account().owner_addresses)

    def test_aliases_are_the_owners_business(self):
        self.box.with_user(self.user_owner).write({"alias_ids": [(0, 0, {"email": ALIAS})]})
        alias = self.box.alias_ids
        Alias = self.env["crm.gmail.mailbox.alias"]
        self.assertEqual(Alias.with_user(self.user_owner).search([]), alias)
        self.assertFalse(Alias.with_user(self.user_colleague).search([]))
        self.assertNotEqual(alias.with_user(self.user_colleague).sudo().display_name, ALIAS)
        self.assertEqual(alias.with_user(self.user_owner).sudo().display_name, ALIAS)
