"""Build raw test messages (shared by the tests and the benchmark)."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.utils import format_datetime, formataddr


def make_message(
    frm: str,
    to: str | list[str],
    subject: str = "Hello",
    *,
    msgid: str | None = None,
    date: dt.datetime | None = None,
    body: str = "Hello there.",
    html: str | None = None,
    cc: list[str] | None = None,
    bcc: list[str] | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    attachments: list[tuple[str, str, bytes]] = (),
    from_name: str = "",
    related: list[tuple[str, str, str, bytes]] = (),
) -> bytes:
    """An RFC 5322 message as bytes; ``attachments`` are ``(filename, mimetype, content)``.

    ``related`` are inline parts of the HTML body, ``(content_id, filename, mimetype, content)``
    with the Content-ID without angle brackets (``src="cid:logo@demo"`` in ``html``): the HTML
    part becomes a multipart/related of it and them, each ``Content-Disposition: inline``.
    """
    if related and not html:
        raise ValueError("related parts need an html body")
    msg = EmailMessage()
    msg["From"] = formataddr((from_name, frm)) if from_name else frm
    msg["To"] = ", ".join([to] if isinstance(to, str) else to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if bcc:
        msg["Bcc"] = ", ".join(bcc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or dt.datetime.now(dt.timezone.utc))
    if msgid:
        msg["Message-ID"] = msgid
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    if related:
        html_part = msg.get_payload()[1]
        for content_id, filename, mimetype, content in related:
            maintype, subtype = mimetype.split("/", 1)
            html_part.add_related(
                content,
                maintype=maintype,
                subtype=subtype,
                cid=f"<{content_id}>",
                filename=filename,
                disposition="inline",
            )
    for filename, mimetype, content in attachments:
        maintype, subtype = mimetype.split("/", 1)
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()
