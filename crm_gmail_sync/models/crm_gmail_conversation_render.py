"""The message cards of a conversation, as the chatter shows messages.

How it works
------------
:func:`render_cards` takes the emails of one conversation that the user may read (oldest
first) and renders the QWeb template ``crm_gmail_sync.conversation_cards``: one card per
email (the copies of the same email in several mailboxes are one card, saying whose
mailboxes hold it), with the sender (linked to the contact when there is one), the
recipients, the date without seconds in the user's time zone, the body sanitised at sync
time with its quoted history folded (``<details>``, no script), its inline ``cid:``
images pointing at the email's own attachments (served by ``/web/image`` under the
email's access rights), and its other attachments under the body with a preview and a
download link.
"""

from lxml import etree, html
from markupsafe import Markup
from odoo.tools import SQL, format_datetime

QUOTE = "data-o-mail-quote"  # what Odoo's sanitiser marks as quoted history


def render_cards(env, messages, leads, partners):
    """The HTML of the cards of ``messages`` (a superuser recordset of readable emails,
    oldest first) for ``env``'s user, with links to ``leads`` and ``partners`` (records
    the user may read)."""
    if not messages:
        return False
    uid = env.uid
    groups = {}
    for message in messages:
        groups.setdefault(message.message_id_header or f"id:{message.id}", []).append(message)
    copies = [
        next((m for m in group if m.owner_id.id == uid), group[0]) for group in groups.values()
    ]
    attachments = _attachments(env, [m.id for m in copies])
    senders = _senders(env, copies)
    cards = []
    for group, message in zip(groups.values(), copies):
        files = attachments.get(message.id, [])
        body, shown = _body(env, message.body_html or "", files)
        sender = senders.get(message.id, {})
        cards.append(
            {
                "id": message.id,
                "sender": sender.get("name") or message.email_from or "",
                "sender_url": sender.get("url"),
                "avatar": sender.get("avatar") or "/base/static/img/avatar_grey.png",
                "sent": message.direction == "sent",
                "to": message.email_to or "",
                "cc": message.email_cc or "",
                "bcc": message.email_bcc or "",
                "date": format_datetime(
                    env, message.date, tz=env.user.tz or "UTC", dt_format="short"
                ),
                "body": body,
                "attachments": [f for f in files if f["id"] not in shown],
                "mailboxes": ", ".join(
                    dict.fromkeys(m.owner_id.partner_id.name or "" for m in group)
                ),
                "several": len(group) > 1,
            }
        )
    links = [
        {"name": lead.display_name, "url": f"/odoo/crm.lead/{lead.id}", "kind": lead.type}
        for lead in leads
    ] + [
        {"name": partner.display_name, "url": f"/odoo/res.partner/{partner.id}", "kind": "contact"}
        for partner in partners
    ]
    return env["ir.qweb"]._render(
        "crm_gmail_sync.conversation_cards", {"cards": cards, "links": links}
    )


def _attachments(env, message_ids):
    """``{message id: [attachment dict]}`` of these readable emails: one query."""
    rows = env.execute_query_dict(
        SQL(
            """SELECT id, res_id, name, mimetype, file_size, description
                 FROM ir_attachment
                WHERE res_model = 'crm.gmail.message' AND res_id = ANY(%s)
                ORDER BY res_id, id""",
            message_ids,
        )
    )
    out = {}
    for row in rows:
        image = (row["mimetype"] or "").startswith("image/")
        out.setdefault(row["res_id"], []).append(
            {
                "id": row["id"],
                "name": row["name"],
                "cid": (row["description"] or "").strip("<>"),
                "image": image,
                "size": _size(row["file_size"] or 0),
                "url": f"/web/content/{row['id']}",
                "download": f"/web/content/{row['id']}?download=true",
                "thumbnail": f"/web/image/{row['id']}/96x96" if image else None,
            }
        )
    return out


def _senders(env, messages):
    """``{message id: {name, url, avatar}}``: a received email's sender (its contact when
    the user may read one), a sent email's owner."""
    emails = {}
    for message in messages:
        if message.direction == "received":
            sender = message.address_ids.filtered(lambda a: a.role == "from")[:1]
            if sender:
                emails[message.id] = (sender.email, sender.name)
    partners = {}
    if emails:
        found = env["res.partner"].search_read(
            [("gmail_email_key", "in", [e for e, _n in emails.values()])],
            ["gmail_email_key", "name"],
        )
        for partner in found:
            partners.setdefault(partner["gmail_email_key"], partner)
    out = {}
    for message in messages:
        if message.id in emails:
            email, name = emails[message.id]
            partner = partners.get(email)
            out[message.id] = {
                "name": name or (partner and partner["name"]) or email,
                "url": partner and f"/odoo/res.partner/{partner['id']}",
                "avatar": partner and f"/web/image/res.partner/{partner['id']}/avatar_128",
            }
        elif message.direction == "sent":
            owner = message.owner_id
            out[message.id] = {
                "name": owner.partner_id.name,
                "avatar": f"/web/image/res.users/{owner.id}/avatar_128",
            }
    return out


def _body(env, body, files):
    """``(Markup, ids of the attachments shown inline)``: ``cid:`` images pointed at the
    email's attachments, quoted history folded."""
    if not body.strip():
        return Markup(""), set()
    by_cid = {f["cid"]: f for f in files if f["cid"]}
    try:
        root = html.fragment_fromstring(body, create_parent="div")
    except (etree.ParserError, ValueError):
        return Markup(body), set()
    shown = set()
    for img in root.iter("img"):
        src = img.get("src") or ""
        if src.lower().startswith("cid:"):
            found = by_cid.get(src[4:].strip("<>"))
            if found:
                img.set("src", f"/web/image/{found['id']}")
                shown.add(found["id"])
            else:
                img.set("src", "")
    for element in list(root.iter()):
        if not isinstance(element.tag, str) or element.get(QUOTE) is None:
            continue
        parent = element.getparent()
        if parent is None or parent.get(QUOTE) is not None or parent.tag == "details":
            continue
        if "signature" in (element.get("class") or ""):
            continue  # Odoo marks signatures too: they are no history, and hold logos
        details = etree.Element("details", {"class": "o_gmail_quote"})
        summary = etree.SubElement(
            details, "summary", {"class": "text-muted", "title": env._("Show the quoted text")}
        )
        summary.text = "•••"
        tail, element.tail = element.tail, None  # lxml moves an element with its tail
        element.addprevious(details)
        details.append(element)
        details.tail = tail
    parts = [etree.tostring(child, encoding="unicode", method="html") for child in root]
    text = _escape(root.text or "")
    return Markup(text + "".join(parts)), shown


def _escape(text):
    return str(Markup.escape(text))


def _size(size):
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""
