"""Benchmark of the conversations (``crm.gmail.conversation``) at scale, in one run (prints
figures and ratios, asserts nothing).

One command starts what it needs and removes it again: a private PostgreSQL cluster on
127.0.0.1 and a free port (``tools/pg.sh``), a fresh database with ``crm_gmail_sync``::

    python3 bench/bench_conversations.py [--owners 100] [--emails 10000]
        [--conversations 2000] [--customers 200] [--big-owners 4] [--share-percent 20]
        [--thread 200] [--upgrade-emails 100000] [--rounds 7] [--cases 1234] [--quick]
        [--explain miss|all|none] [--show-queries] [--dir /tmp/bench-conversations]
        [--pg-port 0] [--keep] [--reuse]

About 4-5 minutes on 2 cores with the defaults (installing the addon about 1, loading the
data under 1). The data is filled with SQL (``INSERT ... SELECT`` over ``generate_series``,
foreign-key triggers off), not the ORM, with the secondary indexes of the two big tables
built after the load; columns the addon derives itself from stored rows (if it has any, as
an upgrade would fill them) are filled by its own method; then ``VACUUM ANALYZE``:

- ``--owners`` salespeople with a seat (``group_mail_addon``, the Emails tab through
  ``sales_team.group_sale_salesman_all_leads``; users and mailboxes through the ORM), one
  mailbox each: shared for the even ones and the ``--big-owners`` first, private otherwise;
- ``--emails`` emails per mailbox in ``--conversations`` conversations of its own (sizes
  skewed: the k-th has about ``emails / (2 sqrt(k conversations))`` emails, 5 on average),
  each conversation with one customer among the owner's ``--customers`` (skewed too), a
  reply chain (``In-Reply-To``/``References``, every other email sent), a Gmail thread id in
  the even mailboxes; every 50th email is a copy of a colleague's email the owner got in Cc
  (the same Message-ID in two mailboxes: one conversation, one email for ``message_count``);
- customers are leads (half), contacts (a quarter) and contacts with a deal (a quarter);
  each owner of a shared mailbox shared (``crm.gmail.share`` with ``email_keys``)
  ``--share-percent`` of their customers;
- one big customer lead: a quarter of the conversations of each of the ``--big-owners``
  first owners (2,000 conversations, about 10,000 emails with the defaults), shared by all
  of them;
- one conversation of ``--thread`` emails (realistic HTML bodies with quoted history, a
  tenth with an attachment, a few inline images), a fifth of them also in the mailbox of
  owner 2, on a lead both shared.

Measured (warm caches, after a first warm-up call; median of ``--rounds``; the record cache
cleared before each call as for a new request; server time in-process around the ORM call,
the part spent in PostgreSQL from the cursor's query hooks; queries from
``cr.sql_log_count``), as owner 0 and as a colleague (a private-mailbox owner reading the
shared mail):

1. the lead's Emails page: ``crm.lead.web_read`` with the spec of page ``gmail_emails``
   (``gmail_conversation_ids`` with the embedded list's fields and ``limit``, the page's
   other fields);
2. the Emails tab's first page: ``crm.gmail.conversation.web_search_read([], list view
   fields, limit=80, count_limit=10001)`` as the web client calls it (its ``search_count``
   included, also timed alone), plus filters and a grouping as extra figures;
3. the form of the ``--thread`` conversation: ``web_read`` of the form's fields;
4. the upgrade: ``crm.gmail.conversation.key._gmail_assign_all()`` on ``--upgrade-emails``
   emails whose ``conversation_id`` was cleared (key table empty), in a transaction rolled
   back afterwards (then ``VACUUM``: the next runs read tables as autovacuum keeps them).

A call whose warm-up takes over 2 s is timed 3 times only. ``--cases 12`` runs some cases;
``--quick`` leaves out case 2's extra figures.

``--explain miss`` (the default) prints the ``EXPLAIN (ANALYZE, BUFFERS)`` of the slowest
queries of each call that misses its target (``all``: of every call); ``--show-queries``
lists every call's queries with their time. ``--keep`` leaves the cluster directory
(``--dir``); ``--reuse`` (after a ``--keep`` run with the same sizes) skips the install
and the load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "crm_gmail_sync_bench_conv"
SEAT = "crm_gmail_sync.group_mail_addon"
SALES = "sales_team.group_sale_salesman_all_leads"
TAB_VISIBLE = "crm_gmail_sync.group_emails_tab_visible"
DOMAIN = "mail.bench.test"  # Message-IDs
BASE_DATE = "2026-01-01 08:00:00"
BIG = -1  # customer index of the big lead
THREAD = -2  # customer index of the lead of the long conversation
PG_SETTINGS = {  # loading 1M rows; queries keep PostgreSQL's defaults (work_mem, jit, ...)
    "shared_buffers": "1GB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "synchronous_commit": "off",
}
CONTEXT = {"lang": "en_US", "tz": "Europe/Brussels", "allowed_company_ids": [1]}


# ---------------------------------------------------------------- infrastructure
def sh_pg(script: str, work: Path, port: int, *extra: str) -> str:
    """Run ``script`` in bash with tools/pg.sh sourced ($1 dir, $2 port, $3... extra)."""
    proc = subprocess.run(
        ["bash", "-c", f"set -e; . tools/pg.sh; {script}", "bench", str(work / "pg"), str(port)]
        + list(extra),
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_pg(work: Path, port: int) -> None:
    """The private cluster (a kept one stopped first: it may listen on another port),
    restarted once with the settings of :data:`PG_SETTINGS`."""
    sh_pg('pg_stop "$1"; pg_start "$1" "$2"', work, port)
    conn = superuser(work, port, "postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for name, value in PG_SETTINGS.items():
            cur.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    conn.close()
    sh_pg('pg_stop "$1"; pg_start "$1" "$2"', work, port)


def superuser(work: Path, port: int, db: str = DB):
    """A psycopg2 connection as ``postgres`` over the cluster's socket (trust)."""
    import psycopg2

    return psycopg2.connect(host=str(work / "pg"), port=port, user="postgres", dbname=db)


def write_rc(work: Path, port: int) -> Path:
    addons = sh_pg('odoo_addons_path "$PWD"', work, port)
    rc = work / "odoo.rc"
    rc.write_text(
        f"""[options]
db_host = 127.0.0.1
db_port = {port}
db_user = odoo
db_password = odoo
db_name = {DB}
dbfilter = ^{DB}$
addons_path = {addons}
data_dir = {work}/data
without_demo = all
http_interface = 127.0.0.1
"""
    )
    return rc


def install(work: Path, rc: Path) -> None:
    with open(work / "install.log", "wb") as log:
        status = subprocess.call(
            [sys.executable, "-m", "odoo", "-c", str(rc), "-d", DB, "-i", "crm_gmail_sync"]
            + ["--stop-after-init", "--log-level=warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if status:
        sys.exit(f"installing crm_gmail_sync failed; see {work / 'install.log'}")


# ---------------------------------------------------------------- the generated corpus
@dataclass
class Layout:
    """Which email is where: the per-mailbox pattern every owner's mailbox repeats."""

    emails: int
    conversations: int
    customers: int
    rows_j: list = field(default_factory=list)  # (j, k, pos, parent_j, root_j)
    rows_k: list = field(default_factory=list)  # (k, size, day_offset, customer)


def coprime_near(n: int, fraction: float) -> int:
    a = max(int(n * fraction), 1)
    while math.gcd(a, n) != 1:
        a += 1
    return a


def layout(emails: int, conversations: int, customers: int) -> Layout:
    """Email j of a mailbox sits at position ``p = j * A mod emails`` of a permutation; the
    conversation of position p is ``k = conversations * (p / emails)^2`` (so conversation
    sizes fall as 1/sqrt(k)), its emails the consecutive positions of one k, each replying
    to the one before. The customer of conversation k is skewed the same way."""
    E, C = emails, conversations
    a = coprime_near(E, 0.6180339887)
    a_inv = pow(a, -1, E)
    k_of_p = [(C * p * p) // (E * E) for p in range(E)]
    first: dict[int, int] = {}
    for p, k in enumerate(k_of_p):
        first.setdefault(k, p)
    out = Layout(E, C, customers)
    for j in range(E):
        p = (j * a) % E
        k = k_of_p[p]
        pos = p - first[k]
        parent = ((p - 1) * a_inv) % E if pos else None
        out.rows_j.append((j, k, pos, parent, (first[k] * a_inv) % E))
    sizes: dict[int, int] = {}
    for k in k_of_p:
        sizes[k] = sizes.get(k, 0) + 1
    b = coprime_near(C, 0.3819660113)
    for k, size in sorted(sizes.items()):
        q = (k * b) % C
        out.rows_k.append((k, size, (k * 7919 + 13) % 700, (customers * q * q) // (C * C)))
    return out


def thread_body(i: int, previous: str, image: str | None) -> str:
    """A realistic HTML body: a few paragraphs, a signature, the quoted previous email."""
    words = (
        "thank you for the quick answer about the delivery of the second batch, we checked "
        "the figures with our warehouse and the prices you sent match the offer of last month "
        "except for the transport costs that we would like to discuss again next week"
    )
    paragraphs = "".join(f"<p>{words} (point {i}.{n}).</p>" for n in range(1, 4))
    img = f'<p><img src="cid:{image}" alt="scan"></p>' if image else ""
    quote = (
        f'<div data-o-mail-quote="1"><p data-o-mail-quote="1">On Monday, someone wrote:</p>'
        f'<blockquote data-o-mail-quote="1">{previous}</blockquote></div>'
        if previous
        else ""
    )
    return f"<div><p>Hello,</p>{paragraphs}{img}<p>Best regards,<br>Sales</p></div>{quote}"


# ---------------------------------------------------------------- setting up (ORM part)
def setup_orm(registry, args) -> dict:
    """Users with seats, their mailboxes, templates for the SQL copies, the two named
    leads: through the ORM (a few hundred records); committed."""
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        env["ir.config_parameter"].set_param("crm_gmail_sync.seats", args.owners + 10)
        env["ir.config_parameter"].set_param("crm_gmail_sync.admin_reads_all", False)
        groups = [env.ref(x).id for x in ("base.group_user", SALES, SEAT)]
        Users = env["res.users"].with_context(no_reset_password=True)
        users = Users.create(
            [
                {
                    "name": f"Sales Rep {o:03d}",
                    "login": f"bench_rep{o:03d}",
                    "email": f"rep{o:03d}@ourco.test",
                    "groups_id": [(6, 0, groups)],
                    "tz": "Europe/Brussels",
                }
                for o in range(args.owners)
            ]
        )
        mailboxes = env["crm.gmail.mailbox"].create(
            [
                {
                    "user_id": user.id,
                    "email": user.email,
                    "login": user.email,
                    "provider": "imap",
                    "host": "imap.invalid",
                    "visibility": "shared" if shared_mailbox(o, args) else "private",
                }
                for o, user in enumerate(users)
            ]
        )
        lead_template = env["crm.lead"].create(
            {"name": "Template", "type": "lead", "email_from": "template@bench.test"}
        )
        partner_template = env["res.partner"].create(
            {"name": "Template", "email": "template-partner@bench.test"}
        )
        big = env["crm.lead"].create(
            {
                "name": "Big Corp: framework agreement",
                "type": "lead",
                "email_from": "anna.big@bigcorp.test",
                "contact_name": "Anna Big",
                "user_id": users[0].id,
            }
        )
        thread = env["crm.lead"].create(
            {
                "name": "Long Thread Ltd: rollout",
                "type": "lead",
                "email_from": "tom.thread@longthread.test",
                "contact_name": "Tom Thread",
                "user_id": users[0].id,
            }
        )
        env.flush_all()
        visible = env.ref(TAB_VISIBLE).users & users
        state = {
            "users": users.ids,
            "mailboxes": mailboxes.ids,
            "lead_template": lead_template.id,
            "partner_template": partner_template.id,
            "big_lead": big.id,
            "thread_lead": thread.id,
            "tab_visible": len(visible),
        }
        cr.commit()
    return state


def shared_mailbox(o: int, args) -> bool:
    return o % 2 == 0 or o < args.big_owners


def colleague_index(args) -> int:
    """The first private-mailbox owner: reads the others' mail only where shared."""
    return next(o for o in range(args.big_owners, args.owners) if not shared_mailbox(o, args))


# ---------------------------------------------------------------- loading (SQL part)
def copy_rows(cur, table: str, rows) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    buf.seek(0)
    cur.copy_from(buf, table)


def template_insert(cur, table: str, template_id: int, overrides: dict, source: str) -> None:
    """``INSERT INTO table SELECT`` a copy of the template row for each row of ``source``
    (alias ``bc``), with ``overrides`` (column -> SQL expression)."""
    cur.execute(
        """SELECT column_name FROM information_schema.columns
            WHERE table_name = %s AND table_schema = 'public' ORDER BY ordinal_position""",
        [table],
    )
    columns = [row[0] for row in cur.fetchall()]
    exprs = [overrides.get(c, f't."{c}"') for c in columns]
    cur.execute(
        f"""INSERT INTO {table} ({", ".join(f'"{c}"' for c in columns)})
            SELECT {", ".join(exprs)} FROM {table} t, ({source}) bc WHERE t.id = %s""",
        [template_id],
    )


def secondary_indexes(cur, table: str) -> list[tuple[str, str]]:
    """The indexes of ``table`` that no constraint owns: ``[(name, definition)]``."""
    cur.execute(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.tablename = %s
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
        [table],
    )
    return cur.fetchall()


def derived_columns(registry) -> str | None:
    """Columns the addon derives from the loaded rows and keeps up to date itself (as its
    upgrade would fill them), when it has any: filled by its own method."""
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"active_test": False})
        Message = env["crm.gmail.message"]
        if not hasattr(Message, "_gmail_refresh_shared"):
            return None
        Message._gmail_refresh_shared()
        cr.commit()
    return "crm.gmail.message._gmail_refresh_shared()"


def load(work: Path, port: int, args, state: dict, registry) -> dict:
    """Fill emails, participants, conversations, customers and shares with SQL."""
    t0 = time.perf_counter()
    N, E, C, CU = args.owners, args.emails, args.conversations, args.customers
    lay = layout(E, C, CU)
    copies = N > 1
    conn = superuser(work, port)
    cur = conn.cursor()
    cur.execute("SET session_replication_role = replica")  # no FK triggers: consistent by design
    cur.execute("SET work_mem = '256MB'")
    steps = []

    def step(name):
        steps.append((name, time.perf_counter()))

    # -- the pattern tables
    cur.execute(
        """CREATE TEMP TABLE bench_j (j int PRIMARY KEY, k int, pos int, parent_j int,
                                      root_j int);
           CREATE TEMP TABLE bench_k (k int PRIMARY KEY, size int, day_offset int, cust int);
           CREATE TEMP TABLE bench_owner (o int PRIMARY KEY, user_id int, mailbox_id int,
                                          email text, name text, shared bool, gmail bool);
           CREATE TEMP TABLE bench_cust (c int PRIMARY KEY, o int, local int, kind text,
                                         email text, name text, assistant text,
                                         lead_id int, partner_id int)"""
    )
    copy_rows(cur, "bench_j", lay.rows_j)
    copy_rows(cur, "bench_k", lay.rows_k)
    copy_rows(
        cur,
        "bench_owner",
        [
            (
                o,
                uid,
                state["mailboxes"][o],
                f"rep{o:03d}@ourco.test",
                f"Sales Rep {o:03d}",
                "t" if shared_mailbox(o, args) else "f",
                "t" if o % 2 == 0 else "f",
            )
            for o, uid in enumerate(state["users"])
        ],
    )
    cur.execute("SELECT max(id) FROM crm_lead")
    next_lead = cur.fetchone()[0] + 1
    cur.execute("SELECT max(id) FROM res_partner")
    next_partner = cur.fetchone()[0] + 1
    customers = []
    for c in range(N * CU):
        kind = ("lead", "partner", "lead", "deal")[c % 4]
        lead_id = partner_id = None
        if kind in ("lead", "deal"):
            lead_id, next_lead = next_lead, next_lead + 1
        if kind in ("partner", "deal"):
            partner_id, next_partner = next_partner, next_partner + 1
        domain = f"client{c % 997}.test"
        customers.append(
            (c, c // CU, c % CU, kind, f"buyer{c}@{domain}", f"Buyer {c}")
            + (f"office{c}@{domain}", lead_id, partner_id)
        )
    customers.append(
        (BIG, 0, 0, "named", "anna.big@bigcorp.test", "Anna Big", "office@bigcorp.test")
        + (state["big_lead"], None)
    )
    customers.append(
        (THREAD, 0, 0, "named", "tom.thread@longthread.test", "Tom Thread")
        + ("office@longthread.test", state["thread_lead"], None)
    )
    copy_rows(cur, "bench_cust", customers)
    cur.execute("ANALYZE bench_j; ANALYZE bench_k; ANALYZE bench_owner; ANALYZE bench_cust")
    step("pattern tables")

    # -- customers: leads, deals, contacts (copies of a template row)
    template_insert(
        cur,
        "res_partner",
        state["partner_template"],
        {
            "id": "bc.partner_id",
            "name": "bc.name",
            "complete_name": "bc.name",
            "email": "bc.email",
            "email_normalized": "bc.email",
            "gmail_email_key": "bc.email",
            "commercial_partner_id": "bc.partner_id",
            "create_date": "now()",
            "write_date": "now()",
        },
        "SELECT * FROM bench_cust WHERE partner_id IS NOT NULL",
    )
    template_insert(
        cur,
        "crm_lead",
        state["lead_template"],
        {
            "id": "bc.lead_id",
            "name": "CASE bc.kind WHEN 'deal' THEN 'Deal ' ELSE 'Lead ' END || bc.name",
            "type": "CASE bc.kind WHEN 'deal' THEN 'opportunity' ELSE 'lead' END",
            "email_from": "bc.email",
            "email_normalized": "bc.email",
            "gmail_email_key": "bc.email",
            "email_domain_criterion": "split_part(bc.email, '@', 2)",
            "contact_name": "bc.name",
            "partner_id": "bc.partner_id",
            "user_id": "(SELECT user_id FROM bench_owner WHERE o = bc.o)",
            "create_date": "now()",
            "write_date": "now()",
        },
        "SELECT * FROM bench_cust WHERE lead_id IS NOT NULL AND kind <> 'named'",
    )
    cur.execute("SELECT setval('crm_lead_id_seq', (SELECT max(id) FROM crm_lead))")
    cur.execute("SELECT setval('res_partner_id_seq', (SELECT max(id) FROM res_partner))")
    step("customers (leads, deals, contacts)")

    # -- which email is what: one row per stored email
    cur.execute(
        """CREATE TEMP TABLE bench_rows AS
           SELECT r.o * %(E)s + r.j + 1 AS id, r.o, r.src, r.sj, b.k, b.pos, b.parent_j,
                  b.root_j, r.src * %(C)s + b.k + 1 AS conv_id, k.day_offset,
                  CASE WHEN r.src < %(big)s AND b.k %% 4 = 0 THEN %(BIG)s
                       ELSE r.src * %(CU)s + k.cust END AS cust,
                  CASE WHEN r.src <> r.o OR b.pos %% 2 = 0 THEN 'received' ELSE 'sent' END
                      AS direction,
                  r.src <> r.o AS is_copy,
                  r.sj %% 50 = 6 AND %(copies)s AS cc_colleague,
                  r.sj %% 10 = 5 AS cc_office,
                  r.sj %% 10 = 3 AS has_att
             FROM (SELECT o, j,
                          CASE WHEN %(copies)s AND j %% 50 = 7 THEN (o + %(N)s - 1) %% %(N)s
                               ELSE o END AS src,
                          CASE WHEN %(copies)s AND j %% 50 = 7 THEN j - 1 ELSE j END AS sj
                     FROM generate_series(0, %(N)s - 1) o, generate_series(0, %(E)s - 1) j) r
             JOIN bench_j b ON b.j = r.sj
             JOIN bench_k k ON k.k = b.k""",
        {"E": E, "C": C, "CU": CU, "N": N, "big": args.big_owners, "BIG": BIG, "copies": copies},
    )
    cur.execute("ANALYZE bench_rows")
    step("email layout")

    mid = f"'<' || r.src || '.' || %s || '@{DOMAIN}>'"
    cur.execute(
        "INSERT INTO crm_gmail_conversation (id) SELECT generate_series(1, %s)",
        [N * C + 1],
    )
    cur.execute(
        f"""INSERT INTO crm_gmail_message
               (id, mailbox_id, owner_id, conversation_id, direction, date, subject, body_html,
                preview, message_id_header, in_reply_to, "references", gmail_thrid, dedupe_key,
                email_from, email_to, email_cc, folder, server_uid, size, has_attachments,
                create_uid, write_uid, create_date, write_date)
           SELECT r.id, ow.mailbox_id, ow.user_id, r.conv_id, r.direction,
                  timestamp '{BASE_DATE}' - r.day_offset * interval '1 day'
                      + r.pos * interval '3 hours' + r.src * interval '7 seconds',
                  CASE WHEN r.pos = 0 THEN '' ELSE 'Re: ' END || 'Order ' || r.conv_id
                      || ': delivery dates and prices',
                  '<p>Hello,</p><p>about order ' || r.conv_id || ' (message ' || r.pos
                      || '): the delivery is planned for next week, the prices as offered.</p>'
                      || '<p>Best regards</p>',
                  'Hello, about order ' || r.conv_id || ' (message ' || r.pos
                      || '): the delivery is planned for next week, the prices as offered.',
                  {mid % "r.sj"},
                  CASE WHEN r.parent_j IS NOT NULL THEN {mid % "r.parent_j"} END,
                  CASE WHEN r.parent_j IS NOT NULL THEN {mid % "r.root_j"}
                       || CASE WHEN r.parent_j <> r.root_j THEN ' ' || {mid % "r.parent_j"}
                               ELSE '' END END,
                  CASE WHEN ow.gmail THEN (1700000000000000000 + r.conv_id)::text END,
                  'mid:' || {mid % "r.sj"},
                  CASE WHEN r.direction = 'sent' OR r.is_copy AND r.pos %% 2 = 1
                       THEN '"' || so.name || '" <' || so.email || '>'
                       ELSE '"' || cu.name || '" <' || cu.email || '>' END,
                  CASE WHEN r.direction = 'sent' OR r.is_copy AND r.pos %% 2 = 1
                       THEN '"' || cu.name || '" <' || cu.email || '>'
                       ELSE '"' || so.name || '" <' || so.email || '>' END,
                  NULLIF(concat_ws(', ',
                      CASE WHEN r.cc_colleague OR r.is_copy THEN cc.email END,
                      CASE WHEN r.cc_office THEN cu.assistant END), ''),
                  CASE WHEN r.direction = 'sent' THEN '[Gmail]/Sent Mail' ELSE 'INBOX' END,
                  (r.sj + 1)::text, 4000 + (r.sj %% 50) * 1000, r.has_att,
                  1, 1, now(), now()
             FROM bench_rows r
             JOIN bench_owner ow ON ow.o = r.o
             JOIN bench_owner so ON so.o = r.src
             JOIN bench_owner cc ON cc.o = (r.src + 1) %% %s
             JOIN bench_cust cu ON cu.c = r.cust""",
        [N],
    )
    step(f"{N * E:,} emails")
    # the participants, as the sync stores them: never the mailbox owner's own address
    cur.execute(
        """INSERT INTO crm_gmail_message_address
               (message_id, email, name, role, create_uid, write_uid, create_date, write_date)
           SELECT r.id, v.email, v.name, v.role, 1, 1, now(), now()
             FROM bench_rows r
             JOIN bench_owner so ON so.o = r.src
             JOIN bench_owner cc ON cc.o = (r.src + 1) %% %s
             JOIN bench_cust cu ON cu.c = r.cust
            CROSS JOIN LATERAL (VALUES
                (cu.email, cu.name,
                 CASE WHEN r.direction = 'sent' OR r.is_copy AND r.pos %% 2 = 1 THEN 'to'
                      ELSE 'from' END),
                (CASE WHEN r.is_copy THEN so.email END, so.name,
                 CASE WHEN r.pos %% 2 = 1 THEN 'from' ELSE 'to' END),
                (CASE WHEN r.cc_colleague AND NOT r.is_copy THEN cc.email END, cc.name, 'cc'),
                (CASE WHEN r.cc_office THEN cu.assistant END, NULL, 'cc')
            ) v(email, name, role)
            WHERE v.email IS NOT NULL
            ORDER BY r.id""",
        [N],
    )
    step("participants")

    # -- the long conversation (case 3)
    thread_rows = thread_emails(args, state, N * E)
    columns = list(thread_rows[0][0])
    from psycopg2.extras import execute_values

    execute_values(
        cur,
        f"""INSERT INTO crm_gmail_message ({", ".join(f'"{c}"' for c in columns)}) VALUES %s""",
        [tuple(row[c] for c in columns) for row, _addr, _att in thread_rows],
    )
    execute_values(
        cur,
        """INSERT INTO crm_gmail_message_address
               (message_id, email, name, role, create_uid, write_uid, create_date, write_date)
           VALUES %s""",
        [a for _r, addr, _att in thread_rows for a in addr],
        template="(%s, %s, %s, %s, 1, 1, now(), now())",
    )
    execute_values(
        cur,
        """INSERT INTO ir_attachment (name, type, res_model, res_id, mimetype, file_size,
                                      description, public, company_id, create_uid, write_uid,
                                      create_date, write_date)
           VALUES %s""",
        [a for _r, _addr, att in thread_rows for a in att],
        template="(%s, 'binary', 'crm.gmail.message', %s, %s, %s, %s, false, 1, 1, 1, "
        "now(), now())",
    )
    for seq, table in (
        ("crm_gmail_message_id_seq", "crm_gmail_message"),
        ("crm_gmail_message_address_id_seq", "crm_gmail_message_address"),
        ("crm_gmail_conversation_id_seq", "crm_gmail_conversation"),
    ):
        cur.execute(f"SELECT setval('{seq}', (SELECT max(id) FROM {table}))")
    step(f"the {args.thread}-email conversation")

    # -- shares ("Share my emails" with the addresses of the time)
    cur.execute(
        """INSERT INTO crm_gmail_share (user_id, lead_id, partner_id, email_keys,
                                        create_uid, write_uid, create_date, write_date)
           SELECT ow.user_id,
                  CASE WHEN bc.kind <> 'partner' THEN bc.lead_id END,
                  CASE WHEN bc.kind = 'partner' THEN bc.partner_id END,
                  bc.email, 1, 1, now(), now()
             FROM bench_cust bc JOIN bench_owner ow ON ow.o = bc.o
            WHERE ow.shared AND bc.c >= 0 AND (bc.local * 37 + bc.o) %% 100 < %s
           UNION ALL
           SELECT ow.user_id, bc.lead_id, NULL, bc.email, 1, 1, now(), now()
             FROM bench_cust bc JOIN bench_owner ow
               ON bc.c = %s AND ow.o < %s OR bc.c = %s AND ow.o IN (0, 2)""",
        [args.share_percent, BIG, args.big_owners, THREAD],
    )
    step("shares")
    conn.commit()

    # -- indexes built after the load, then statistics
    conn.autocommit = True
    for table in ("crm_gmail_message", "crm_gmail_message_address"):
        for _name, definition in state["indexes"][table]:
            cur.execute(definition)
    step("secondary indexes")
    conn.close()
    refreshed = derived_columns(registry)
    if refreshed:
        step(refreshed)
    conn = superuser(work, port)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(
        """VACUUM ANALYZE crm_gmail_message, crm_gmail_message_address, crm_gmail_conversation,
                          crm_gmail_share, crm_lead, res_partner, ir_attachment"""
    )
    step("VACUUM ANALYZE")
    cur.execute(
        """SELECT pg_size_pretty(pg_total_relation_size('crm_gmail_message')),
                  pg_size_pretty(pg_total_relation_size('crm_gmail_message_address')),
                  (SELECT count(*) FROM crm_gmail_message),
                  (SELECT count(*) FROM crm_gmail_message_address),
                  (SELECT count(*) FROM crm_gmail_conversation),
                  (SELECT count(*) FROM crm_gmail_share),
                  (SELECT count(*) FROM crm_lead), (SELECT count(*) FROM res_partner)"""
    )
    sizes = cur.fetchone()
    conn.close()
    times, last = [], t0
    for name, at in steps:
        times.append((name, at - last))
        last = at
    return {"load_s": time.perf_counter() - t0, "steps": times, "sizes": sizes}


def drop_indexes(work: Path, port: int) -> dict:
    """Drop the secondary indexes of the big tables before the load (rebuilt after)."""
    conn = superuser(work, port)
    cur = conn.cursor()
    out = {}
    for table in ("crm_gmail_message", "crm_gmail_message_address"):
        out[table] = secondary_indexes(cur, table)
        for name, _definition in out[table]:
            cur.execute(f'DROP INDEX "{name}"')
    conn.commit()
    conn.close()
    return out


def thread_emails(args, state: dict, first_id: int) -> list:
    """The long conversation: ``(message vals, [address rows], [attachment rows])``."""
    T = args.thread
    N = args.owners
    conv = N * args.conversations + 1
    other = 2 if N > 2 else None
    owner_mail, owner_name = "rep000@ourco.test", "Sales Rep 000"
    customer, customer_name = "tom.thread@longthread.test", "Tom Thread"
    out = []
    next_id = first_id + 1
    previous = ""
    for i in range(T):
        sent = i % 2 == 1
        image = f"scan{i}@longthread.test" if i % 40 == 11 else None
        body = thread_body(i, previous, image)
        previous = body[:1200]
        message_id = f"<thread.{i}@{DOMAIN}>"
        date = (dt.datetime(2025, 12, 1, 8) + dt.timedelta(hours=2 * i)).isoformat(" ")
        refs = " ".join(f"<thread.{n}@{DOMAIN}>" for n in range(max(0, i - 10), i)) or None
        mailboxes = [(0, False)] + ([(other, True)] if other is not None and i % 5 == 2 else [])
        for o, copy in mailboxes:
            vals = {
                "id": next_id,
                "mailbox_id": state["mailboxes"][o],
                "owner_id": state["users"][o],
                "conversation_id": conv,
                "direction": "sent" if sent and not copy else "received",
                "date": date,
                "subject": ("Re: " if i else "") + "Rollout plan and training dates",
                "body_html": body,
                "preview": "Hello, thank you for the quick answer about the delivery",
                "message_id_header": message_id,
                "in_reply_to": f"<thread.{i - 1}@{DOMAIN}>" if i else None,
                "references": refs,
                "gmail_thrid": "1790000000000000001",
                "dedupe_key": f"mid:{message_id}",
                "email_from": f'"{owner_name}" <{owner_mail}>' if sent else customer,
                "email_to": customer if sent else f'"{owner_name}" <{owner_mail}>',
                "email_cc": "rep002@ourco.test" if i % 5 == 2 else None,
                "folder": "INBOX",
                "server_uid": str(i + 1),
                "size": len(body) + 2000,
                "has_attachments": i % 10 == 4,
                "create_uid": 1,
                "write_uid": 1,
                "create_date": date,
                "write_date": date,
            }
            role = "to" if sent else "from"
            addresses = [(next_id, customer, customer_name, role)]
            if copy:
                addresses.append((next_id, owner_mail, owner_name, "from" if sent else "to"))
            elif i % 5 == 2:
                addresses.append((next_id, "rep002@ourco.test", "Sales Rep 002", "cc"))
            attachments = []
            if i % 10 == 4:
                attachments.append((f"offer-{i}.pdf", next_id, "application/pdf", 184_320, None))
            if image:
                attachments.append((f"scan{i}.png", next_id, "image/png", 48_000, f"<{image}>"))
            out.append((vals, addresses, attachments))
            next_id += 1
    return out


# ---------------------------------------------------------------- measuring
@dataclass
class Figure:
    label: str
    times: list
    queries: list
    sql_times: list
    first_queries: int
    result: object = None
    trace: list = field(default_factory=list)

    @property
    def ms(self) -> float:
        return statistics.median(self.times) * 1000

    @property
    def sql_ms(self) -> float:
        return statistics.median(self.sql_times) * 1000

    def query_text(self) -> str:
        lo, hi = min(self.queries), max(self.queries)
        return f"{lo}" if lo == hi else f"{lo}-{hi}"


@contextmanager
def query_log():
    """``[(seconds, cursor, query, params)]`` of the queries run meanwhile (Odoo's hooks)."""
    thread = threading.current_thread()
    log = []
    hooks = getattr(thread, "query_hooks", None)
    thread.query_hooks = [lambda cr, q, p, start, delay: log.append((delay, cr, q, p))]
    try:
        yield log
    finally:
        if hooks is None:
            del thread.query_hooks
        else:
            thread.query_hooks = hooks


def measure(env, label, func, rounds, slow=2.0) -> Figure:
    """A first call (warm-up: a user's first request fills the ormcaches of its rules),
    then ``rounds`` calls (3 when the warm-up took over ``slow`` seconds), each after
    clearing the record cache as a new request does."""
    cr = env.cr
    env.invalidate_all()
    before = cr.sql_log_count
    start = time.perf_counter()
    func()
    if time.perf_counter() - start > slow:
        rounds = min(rounds, 3)
    first = cr.sql_log_count - before
    times, counts, sql_times, result, trace = [], [], [], None, []
    for _ in range(rounds):
        env.invalidate_all()
        with query_log() as log:
            before = cr.sql_log_count
            start = time.perf_counter()
            result = func()
            times.append(time.perf_counter() - start)
            counts.append(cr.sql_log_count - before)
        sql_times.append(sum(entry[0] for entry in log))
        trace = log
    return Figure(label, times, counts, sql_times, first, result, trace)


def explain(env, figure: Figure, top: int = 2) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the slowest queries of the figure's last call."""
    slowest = sorted(figure.trace, key=lambda entry: entry[0], reverse=True)[:top]
    for delay, cr, query, params in slowest:
        text = cr.mogrify(query, params).decode()
        if not text.lstrip().upper().startswith(("SELECT", "WITH")):
            continue
        env.cr.execute("EXPLAIN (ANALYZE, BUFFERS) " + text)
        plan = "\n".join(f"        {row[0]}" for row in env.cr.fetchall())
        print(f"    -- {delay * 1000:.1f} ms in the call: {' '.join(text.split())[:3000]}")
        print(plan)


def show_queries(figure: Figure) -> None:
    for n, (delay, cr, query, params) in enumerate(figure.trace, 1):
        text = " ".join(cr.mogrify(query, params).decode().split())
        print(f"      q{n} {delay * 1000:7.1f} ms  {text[:400]}")


def arch_fields(env, xmlid: str, model: str, xpath: str):
    """``(spec, limit)`` of the fields under ``xpath`` in the view's arch, as the web client
    builds it (relational fields with their ``display_name``, an embedded list with its
    own fields)."""
    from lxml import etree

    arch = etree.fromstring(env.ref(xmlid).arch_db.encode())
    node = arch.xpath(xpath)[0]
    return _node_spec(env, model, node), int(node.get("limit") or 80)


def _node_spec(env, model: str, node) -> dict:
    spec = {}
    for f in node.iter("field"):
        if _inside(f, node):
            continue
        name = f.get("name")
        if name in spec:
            continue
        field = env[model]._fields[name]
        sub = f.find("list")
        if sub is not None:
            spec[name] = {"fields": _node_spec(env, field.comodel_name, sub)}
        elif field.type in ("many2one", "many2many", "one2many"):
            spec[name] = {"fields": {"display_name": {}}}
        else:
            spec[name] = {}
    return spec


def _inside(field, node) -> bool:
    """Whether ``field`` is inside another field (an embedded view) below ``node``."""
    parent = field.getparent()
    while parent is not None and parent is not node:
        if parent.tag == "field":
            return True
        parent = parent.getparent()
    return False


def specs(env):
    lead_list, lead_limit = arch_fields(
        env,
        "crm_gmail_sync.crm_lead_view_form",
        "crm.gmail.conversation",
        "//field[@name='gmail_conversation_ids']/list",
    )
    # the page's own fields (those of its embedded list aside) and the stat button's
    from lxml import etree

    arch = etree.fromstring(env.ref("crm_gmail_sync.crm_lead_view_form").arch_db.encode())
    page = arch.xpath("//page[@name='gmail_emails']")[0]
    lead = {"display_name": {}, "gmail_conversation_count": {}}
    for node in page.iter("field"):
        if not any(parent.tag == "field" for parent in node.iterancestors()):
            lead[node.get("name")] = {}
    lead["gmail_conversation_ids"] = {
        "fields": lead_list,
        "limit": lead_limit,
        "context": {"form_view_ref": "crm_gmail_sync.crm_gmail_conversation_view_form"},
    }
    tab, _ = arch_fields(
        env,
        "crm_gmail_sync.crm_gmail_conversation_view_list",
        "crm.gmail.conversation",
        "//list",
    )
    form, _ = arch_fields(
        env,
        "crm_gmail_sync.crm_gmail_conversation_view_form",
        "crm.gmail.conversation",
        "//form",
    )
    return lead, lead_limit, tab, {"display_name": {}, **form}


def run_measurements(registry, args, state) -> list:
    """Cases 1-3 (as ``--cases`` says) in one transaction, rolled back."""
    from odoo import SUPERUSER_ID, api

    rows = []  # (section, Figure, target ms, target queries, note)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        owner = env["res.users"].browse(state["users"][0])
        colleague = env["res.users"].browse(state["users"][colleague_index(args)])
        readers = (("owner", owner), ("colleague", colleague))
        specs_ = specs(env)
        for case, func in (("1", case_lead_page), ("2", case_emails_tab), ("3", case_form)):
            if case in args.cases:
                func(env, args, state, readers, specs_, rows)
                print()
        cr.rollback()
    return rows


def record(env, args, rows, section, fig, target_ms=None, target_q=None, note=""):
    rows.append((section, fig, target_ms, target_q, note))
    report(env, args, fig, target_ms, target_q, note)


def case_lead_page(env, args, state, readers, specs_, rows) -> None:
    lead_spec, lead_limit, _tab, _form = specs_
    big = state["big_lead"]
    env.cr.execute(
        """SELECT count(*), count(DISTINCT conversation_id),
                  count(DISTINCT COALESCE(message_id_header, id::text))
             FROM crm_gmail_message m
            WHERE EXISTS (SELECT 1 FROM crm_gmail_message_address a
                           WHERE a.message_id = m.id AND a.email = 'anna.big@bigcorp.test')"""
    )
    big_rows, big_convs, big_distinct = env.cr.fetchone()
    print(
        f"== 1. The lead's Emails page (lead {big}: {big_rows:,} stored emails, "
        f"{big_distinct:,} distinct, in {big_convs:,} conversations, in the mailboxes "
        f"of the first {args.big_owners} owners, all shared; median of {args.rounds})"
    )
    print(
        f"   spec: list of {lead_limit} with "
        + ", ".join(lead_spec["gmail_conversation_ids"]["fields"])
        + "; + "
        + ", ".join(k for k in lead_spec if k != "gmail_conversation_ids")
    )
    for who, user in readers:
        rec = env["crm.lead"].with_user(user).with_context(CONTEXT).browse(big)
        fig = measure(
            env, f"[{who}] lead Emails page", lambda rec=rec: rec.web_read(lead_spec), args.rounds
        )
        res = fig.result[0]
        loaded = sum(1 for row in res["gmail_conversation_ids"] if len(row) > 1)
        note = (
            f"{len(res['gmail_conversation_ids'])} conversation ids, {loaded} rows read, "
            f"count {res['gmail_conversation_count']}"
        )
        record(env, args, rows, "1", fig, 150, 10, note)


def case_emails_tab(env, args, state, readers, specs_, rows) -> None:
    _lead, _limit, tab_spec, _form = specs_
    big = state["big_lead"]
    env.cr.execute("SELECT count(*), count(DISTINCT conversation_id) FROM crm_gmail_message")
    total, total_convs = env.cr.fetchone()
    print(
        f"== 2. The Emails tab ({total:,} emails in {total_convs:,} conversations; list "
        f"fields {', '.join(tab_spec)}; limit 80, count_limit 10001 as the web client; "
        f"median of {args.rounds})"
    )
    Conv = env["crm.gmail.conversation"]
    for who, user in readers:
        C = Conv.with_user(user).with_context(CONTEXT)
        n_emails, n_convs = readable_counts(env, user)
        print(f"   {who}: reads {n_emails:,} emails in {n_convs:,} conversations")

        def page(domain, C=C):
            return C.web_search_read(domain, tab_spec, limit=80, count_limit=10001)

        fig = measure(
            env, f"[{who}] Emails tab first page (web_search_read)", lambda: page([]), args.rounds
        )
        note = f"{len(fig.result['records'])} rows, length {fig.result['length']}"
        record(env, args, rows, "2", fig, 300, None, note)
        extras = [
            ("of which its search_count(limit=10001)", lambda C=C: C.search_count([], limit=10001)),
            ("search_count (no limit: the pager's full count)", lambda C=C: C.search_count([])),
            (
                "filter Waiting for our reply (last_direction = received)",
                lambda: page([("last_direction", "=", "received")]),
            ),
            ("filter the big lead (its stat button)", lambda: page([("lead_ids", "in", [big])])),
            (
                "search participants ilike 'buyer12'",
                lambda: page([("participants", "ilike", "buyer12")]),
            ),
            (
                "group by owner (web_read_group owner_ids)",
                lambda C=C: C.web_read_group([], [], ["owner_ids"], lazy=True),
            ),
        ]
        if args.quick:
            extras = extras[:1]
        for label, func in extras:
            fig = measure(env, f"[{who}]   {label}", func, args.rounds)
            res = fig.result
            if isinstance(res, dict) and "records" in res:
                note = f"{len(res['records'])} rows, length {res['length']}"
            elif isinstance(res, dict) and "groups" in res:
                note = f"{res['length']} groups"
            else:
                note = f"= {res}"
            record(env, args, rows, "2x", fig, note=note)


def case_form(env, args, state, readers, specs_, rows) -> None:
    _lead, _limit, _tab, form_spec = specs_
    conv_thread = args.owners * args.conversations + 1
    env.cr.execute(
        """SELECT count(*), count(DISTINCT message_id_header) FROM crm_gmail_message
            WHERE conversation_id = %s""",
        [conv_thread],
    )
    n_rows, n_distinct = env.cr.fetchone()
    print(
        f"== 3. A conversation of {n_distinct} emails ({n_rows} stored: copies in a second "
        f"mailbox) opens: web_read of the form's {', '.join(form_spec)}; median of "
        f"{args.rounds}"
    )
    Conv = env["crm.gmail.conversation"]
    for who, user in readers:
        rec = Conv.with_user(user).with_context(CONTEXT).browse(conv_thread)
        fig = measure(
            env, f"[{who}] conversation form", lambda rec=rec: rec.web_read(form_spec), args.rounds
        )
        res = fig.result[0]
        note = (
            f"message_count {res['message_count']}, cards_html "
            f"{len(res['cards_html'] or '') // 1024} KiB"
        )
        record(env, args, rows, "3", fig, 200, None, note)


def readable_counts(env, user):
    """How many emails and conversations ``user`` reads (as the record rule says)."""
    Message = env["crm.gmail.message"].with_user(user)
    query = Message._search([])
    env.cr.execute(query.select("count(*)", "count(DISTINCT crm_gmail_message.conversation_id)"))
    return env.cr.fetchone()


def report(env, args, fig: Figure, target_ms, target_q, note: str) -> None:
    met = ""
    if target_ms:
        ok = fig.ms < target_ms and (target_q is None or max(fig.queries) <= target_q)
        met = f"  {fig.ms / target_ms:4.2f}x target {'ok' if ok else 'MISS'}"
    print(
        f"   {fig.label:<66} {fig.ms:8.1f} ms (SQL {fig.sql_ms:7.1f}) {fig.query_text():>5} q"
        f" (1st {fig.first_queries:>2}){met}  {note}"
    )
    if args.show_queries:
        show_queries(fig)
    missed = target_ms and ("MISS" in met)
    if args.explain == "all" or (args.explain == "miss" and missed):
        explain(env, fig)


def vacuum(args) -> None:
    """VACUUM ANALYZE the tables the cases read (what autovacuum keeps in production)."""
    conn = superuser(Path(args.dir), args.port)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            """VACUUM ANALYZE crm_gmail_message, crm_gmail_message_address,
                              crm_gmail_conversation, crm_gmail_conversation_key"""
        )
    conn.close()


def run_upgrade(registry, args) -> tuple:
    """``_gmail_assign_all`` on ``--upgrade-emails`` emails whose conversation was cleared,
    with an empty key table (the 18.0.1.3.0 migration); rolled back."""
    from odoo import SUPERUSER_ID, api

    n = args.upgrade_emails
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"active_test": False})
        cr.execute("SELECT count(*) FROM crm_gmail_conversation_key")
        keys_before = cr.fetchone()[0]
        cr.execute(
            """SELECT count(*), count(DISTINCT conversation_id) FROM crm_gmail_message
                WHERE id <= %s""",
            [n],
        )
        emails, convs_before = cr.fetchone()
        cr.execute("UPDATE crm_gmail_message SET conversation_id = NULL WHERE id <= %s", [n])
        cr.execute("ANALYZE crm_gmail_message")
        env.invalidate_all()
        with query_log() as log:
            before = cr.sql_log_count
            start = time.perf_counter()
            count = env["crm.gmail.conversation.key"]._gmail_assign_all()
            elapsed = time.perf_counter() - start
            queries = cr.sql_log_count - before
        sql = sum(entry[0] for entry in log)
        cr.execute(
            """SELECT count(DISTINCT conversation_id), count(*) FILTER (WHERE conversation_id
                      IS NULL) FROM crm_gmail_message WHERE id <= %s""",
            [n],
        )
        convs_after, left = cr.fetchone()
        cr.execute("SELECT count(*) FROM crm_gmail_conversation_key")
        keys_after = cr.fetchone()[0]
        slowest = sorted(log, key=lambda e: e[0], reverse=True)[:4]
        cr.rollback()
    vacuum(args)  # the rolled-back update left dead rows and cleared visibility bits
    print(
        f"== 4. The upgrade: _gmail_assign_all() on {emails:,} emails without conversation "
        f"(key table: {keys_before} keys)"
    )
    print(
        f"   {count:,} emails assigned in {elapsed:.2f} s ({queries} queries, SQL "
        f"{sql:.2f} s, Python {elapsed - sql:.2f} s); {convs_after:,} conversations "
        f"(the loaded data had {convs_before:,} for them), {keys_after:,} keys, {left} left"
    )
    for delay, _cr, query, _params in slowest:
        code = query.code if hasattr(query, "code") else query
        print(f"      {delay:6.2f} s  {' '.join(str(code).split())[:110]}")
    print()
    return elapsed, queries, count


# ---------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--owners", type=int, default=100, help="salespeople with a mailbox")
    parser.add_argument("--emails", type=int, default=10_000, help="emails per mailbox")
    parser.add_argument(
        "--conversations", type=int, default=2_000, help="conversations per mailbox"
    )
    parser.add_argument("--customers", type=int, default=200, help="customers per owner")
    parser.add_argument(
        "--big-owners", type=int, default=4, help="owners holding the big lead's emails"
    )
    parser.add_argument(
        "--share-percent", type=int, default=20, help="customers shared per shared mailbox"
    )
    parser.add_argument("--thread", type=int, default=200, help="emails of the long conversation")
    parser.add_argument("--upgrade-emails", type=int, default=100_000, help="case 4")
    parser.add_argument("--rounds", type=int, default=7, help="timed calls per figure (median)")
    parser.add_argument("--cases", default="1234", help="which cases to run, e.g. 12")
    parser.add_argument("--quick", action="store_true", help="case 2 without the extras")
    parser.add_argument("--explain", choices=("miss", "all", "none"), default="miss")
    parser.add_argument("--show-queries", action="store_true")
    parser.add_argument("--dir", default="/tmp/bench-conversations")
    parser.add_argument("--pg-port", type=int, default=0, help="0: a free port")
    parser.add_argument("--keep", action="store_true", help="leave --dir and its cluster")
    parser.add_argument("--reuse", action="store_true", help="reuse a --keep run's database")
    args = parser.parse_args()
    if args.owners < args.big_owners + 2 or args.big_owners < 1:
        parser.error("--owners must exceed --big-owners by 2 (a private-mailbox colleague)")
    if args.conversations < 4 or args.emails < args.conversations:
        parser.error("--emails >= --conversations >= 4")

    work = Path(args.dir)
    sizes_key = {
        k: getattr(args, k)
        for k in ("owners", "emails", "conversations", "customers", "big_owners")
        + ("share_percent", "thread")
    }
    state_file = work / "state.json"
    reuse = False
    if args.reuse and state_file.exists():
        saved = json.loads(state_file.read_text())
        reuse = saved.get("sizes") == sizes_key
        if not reuse:
            print("--reuse: the kept database has other sizes; starting afresh")
    t0 = time.perf_counter()
    port = args.port = args.pg_port or free_port()
    if not reuse:
        if (work / "pg" / "data").exists():
            sh_pg('pg_stop "$1"', work, port)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        os.chmod(work, 0o755)
    try:
        start_pg(work, port)
        rc = write_rc(work, port)
        if reuse:
            state, loaded = saved["state"], saved["loaded"]
            print(f"reusing the database of {work} (sizes {sizes_key})")
            vacuum(args)
        else:
            install(work, rc)
            t_install = time.perf_counter() - t0
            print(f"database {DB} with crm_gmail_sync installed in {t_install:.0f} s")
        import odoo
        from odoo.tools import config

        config.parse_config(["-c", str(rc), "--log-level=warn"])
        registry = odoo.modules.registry.Registry(DB)
        if not reuse:
            t1 = time.perf_counter()
            state = setup_orm(registry, args)
            t_orm = time.perf_counter() - t1
            state["indexes"] = drop_indexes(work, port)
            loaded = load(work, port, args, state, registry)
            loaded["orm_s"] = t_orm
            state_file.write_text(
                json.dumps({"sizes": sizes_key, "state": state, "loaded": loaded})
            )
        print_load(args, state, loaded)
        rows = run_measurements(registry, args, state)
        upgrade = run_upgrade(registry, args) if "4" in args.cases else None
        print_summary(args, rows, upgrade, loaded)
        with registry.cursor() as cr:
            cr.execute("SHOW server_version")
            version = cr.fetchone()[0]
        print(
            f"machine: {os.cpu_count()} CPUs (shared, figures are noisy), Python "
            f"{sys.version.split()[0]}, PostgreSQL {version} ("
            + ", ".join(f"{k} {v}" for k, v in PG_SETTINGS.items())
            + f"; work_mem and jit as default), Odoo {odoo.release.version}; "
            f"whole run {time.perf_counter() - t0:.0f} s"
        )
        odoo.sql_db.close_all()
    finally:
        if not args.keep:
            sh_pg('pg_stop "$1"', work, port)
            shutil.rmtree(work, ignore_errors=True)
        else:
            sh_pg('pg_stop "$1"', work, port)
            print(f"kept {work} (cluster stopped; --reuse starts it again)")


def print_load(args, state, loaded) -> None:
    s = loaded["sizes"]
    print(
        f"sizes: {args.owners} owners (seats; {state['tab_visible']} with the Emails tab), "
        f"{args.emails:,} emails and {args.conversations:,} conversations per mailbox, "
        f"{args.customers} customers per owner, {args.share_percent}% of them shared by the "
        f"owners of shared mailboxes; colleague = owner {colleague_index(args)} (private mailbox)"
    )
    print(
        f"loaded: {s[2]:,} emails ({s[0]}), {s[3]:,} participants ({s[1]}), {s[4]:,} "
        f"conversations, {s[5]:,} shares, {s[6]:,} leads/deals, {s[7]:,} contacts"
    )
    steps = ", ".join(f"{name} {sec:.1f} s" for name, sec in loaded["steps"])
    print(
        f"load: users and mailboxes (ORM) {loaded['orm_s']:.1f} s; SQL {loaded['load_s']:.1f} s "
        f"({steps})"
    )
    print()


def print_summary(args, rows, upgrade, loaded) -> None:
    print("== Summary (median server time; queries of a warm call)")
    print(f"| {'what':<70} | {'figure':<26} | {'target':<18} | {'ratio':>5} |")
    print(f"|{'-' * 72}|{'-' * 28}|{'-' * 20}|{'-' * 7}|")
    for section, fig, target_ms, target_q, _note in rows:
        if section == "2x" and "search_count(limit" not in fig.label:
            continue
        figure = f"{fig.ms:.1f} ms, {fig.query_text()} queries"
        target = ""
        ratio = ""
        if target_ms:
            target = f"< {target_ms} ms" + (f", <= {target_q} q" if target_q else "")
            ratio = f"{fig.ms / target_ms:.2f}"
        print(
            f"| {section + '. ' + fig.label.strip():<70} | {figure:<26} | {target:<18} "
            f"| {ratio:>5} |"
        )
    if upgrade is None:
        print()
        return
    elapsed, queries, count = upgrade
    print(
        f"| {'4. _gmail_assign_all() on ' + f'{count:,}' + ' emails':<70} | "
        f"{f'{elapsed:.1f} s, {queries} queries':<26} | {'well under 60 s':<18} | "
        f"{elapsed / 60:5.2f} |"
    )
    load_s = f"{loaded['load_s']:.0f} s"
    print(f"| {'load (SQL, indexes, VACUUM ANALYZE)':<70} | {load_s:<26} | {'':<18} | {'':>5} |")
    print()


if __name__ == "__main__":
    main()
