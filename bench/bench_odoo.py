"""Benchmark of the Odoo layer's linking and visibility queries (prints figures, asserts nothing).

Fills a database that has ``crm_gmail_sync`` installed with N synced emails (default 100,000)
of which M (default 10,000) involve one contact, times the hot paths as the owner and as a
colleague who sees them through "Share my emails", then rolls everything back.

    python3 bench/bench_odoo.py -d DB --db_host 127.0.0.1 --db_port 54329 \\
        --db_user odoo --db_password odoo --addons-path=/opt/odoo18/odoo/addons,. \\
        [--bench-total 100000] [--bench-linked 10000]
"""

import sys
import time


def _pop(argv, name, default):
    if name in argv:
        i = argv.index(name)
        value = int(argv[i + 1])
        del argv[i : i + 2]
        return value
    return default


def main(argv):
    total = _pop(argv, "--bench-total", 100_000)
    linked = _pop(argv, "--bench-linked", 10_000)
    import odoo
    from odoo import SUPERUSER_ID, api
    from odoo.tools import config

    config.parse_config(argv)
    db = config["db_name"]
    if isinstance(db, list):
        db = db[0]
    registry = odoo.modules.registry.Registry(db)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        try:
            run(env, total, linked)
        finally:
            cr.rollback()


def timed(label, func, repeat=3):
    best = None
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    print(f"{label:<60} {best * 1000:8.1f} ms")
    return result


def run(env, total, linked):
    env["ir.config_parameter"].set_param("crm_gmail_sync.seats", 1000)
    groups = [
        env.ref(xmlid).id
        for xmlid in (
            "base.group_user",
            "sales_team.group_sale_salesman_all_leads",
            "crm_gmail_sync.group_mail_addon",
        )
    ]
    Users = env["res.users"].with_context(no_reset_password=True)
    owner, colleague = Users.create(
        [
            {
                "name": name,
                "login": login,
                "email": f"{login}@bench.test",
                "groups_id": [(6, 0, groups)],
            }
            for name, login in (("Owner", "bench_owner"), ("Colleague", "bench_col"))
        ]
    )
    mailbox = env["crm.gmail.mailbox"].create(
        {
            "user_id": owner.id,
            "email": "bench_owner@bench.test",
            "host": "imap.invalid",
            "visibility": "shared",
        }
    )
    contact = env["res.partner"].create({"name": "Chris", "email": "chris@acme.test"})
    deal = env["crm.lead"].create({"name": "Deal", "type": "opportunity", "partner_id": contact.id})
    leads = env["crm.lead"].create(
        [{"name": f"L{i}", "email_from": f"cust{i}@x.test"} for i in range(80)]
    )
    env.flush_all()
    cr = env.cr
    start = time.perf_counter()
    cr.execute(
        """INSERT INTO crm_gmail_message (mailbox_id, owner_id, direction, date, subject,
                                          dedupe_key, email_from, create_uid, write_uid,
                                          create_date, write_date)
           SELECT %s, %s, 'received', now() - (g || ' minutes')::interval, 'Subject ' || g,
                  'mid:<' || g || '@bench>',
                  CASE WHEN g <= %s THEN 'chris@acme.test'
                       ELSE 'cust' || (g %% 5000) || '@x.test' END,
                  1, 1, now(), now()
             FROM generate_series(1, %s) g""",
        [mailbox.id, owner.id, linked, total],
    )
    cr.execute(
        """INSERT INTO crm_gmail_message_address (message_id, email, role)
           SELECT id, email_from, 'from' FROM crm_gmail_message WHERE mailbox_id = %s""",
        [mailbox.id],
    )
    cr.execute("ANALYZE crm_gmail_message")
    cr.execute("ANALYZE crm_gmail_message_address")
    print(
        f"{'fill ' + str(total) + ' emails (' + str(linked) + ' on one contact)':<60} "
        f"{(time.perf_counter() - start) * 1000:8.1f} ms"
    )
    contact.with_user(owner).gmail_share_emails = True
    env.flush_all()

    Message = env["crm.gmail.message"]
    for label, user in (("owner", owner), ("colleague (shared)", colleague)):
        c = contact.with_user(user)
        d = deal.with_user(user)
        ls = leads.with_user(user)

        def contact_page(c=c):
            c.invalidate_recordset()
            return len(c.gmail_message_ids)

        def deal_page(d=d):
            d.invalidate_recordset()
            return len(d.gmail_message_ids)

        def lead_list(ls=ls):
            ls.invalidate_recordset()
            return sum(ls.mapped("gmail_message_count"))

        n = timed(f"[{label}] contact Emails page ids", contact_page)
        timed(f"[{label}] deal Emails page ids (via main contact)", deal_page)
        timed(f"[{label}] 80 leads' email counts (one batch)", lead_list)
        timed(
            f"[{label}] Emails tab: search first 80",
            lambda u=user: Message.with_user(u).search([], limit=80),
        )
        count = timed(
            f"[{label}] Emails tab: search_count",
            lambda u=user: Message.with_user(u).search_count([]),
        )
        timed(
            f"[{label}] read_group by owner",
            lambda u=user: Message.with_user(u).read_group([], ["owner_id"], ["owner_id"]),
        )
        print(f"    {label}: {n} emails on the contact, {count} readable in all")


if __name__ == "__main__":
    main(sys.argv[1:])
