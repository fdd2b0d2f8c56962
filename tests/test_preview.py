"""The preview and the roles the engine hands over, ready to store (no Odoo needed).

The expected previews are what the Odoo layer used to compute from the same bodies,
``html_to_inner_content(html_sanitize(...))`` (checked against Odoo 18 when written; the
Odoo suite's ``TestPreview`` checks the stored field end to end).
"""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_gmail_sync.engine import Address, HeaderInfo, ParsedMessage, parse_message
from crm_gmail_sync.engine.preview import PREVIEW_LENGTH, make_preview, visible_text

SAMPLES = Path(__file__).parent / "samples"

ODOO_TEST_HTML = (
    "<html><head><style>.x{color:red}</style><title>T</title></head><body>"
    "<script>var stolen = 'SCRIPT-TEXT';</script><!-- COMMENT-TEXT -->"
    "<p>Dear Olivia,</p><p>the <b>offer</b> is fine.</p>"
    "<form><input type='hidden' value='FORM-VALUE'></form></body></html>"
)


@pytest.mark.parametrize(
    "html,expected",
    [
        (ODOO_TEST_HTML, "Dear Olivia, the offer is fine."),  # the Odoo suite's TestPreview
        ("<p>html\x00with\x00nul</p>", "html with nul"),  # its robustness test: NUL is a space
        ("<p>a\x01\x0bb\x1b</p>", "ab"),  # other controls go, as libxml2 drops them
        (
            '<div dir="ltr">Hi Anna,<div><br></div><div>see&nbsp;you</div></div>\r\n'
            '<div class="gmail_quote">On Mon wrote:<br><blockquote>old</blockquote></div>',
            "Hi Anna, see you On Mon wrote: old",
        ),
        (
            "<table><tr><td>Name</td><td>Value</td></tr><tr><td>a</td><td>b</td></tr></table>",
            "NameValue ab",  # cells run together, rows do not: as Odoo's
        ),
        ("<ul><li>one</li><li>two</li></ul>", "onetwo"),
        ("<textarea>draft</textarea>after", "after"),  # form controls are killed
        ("<html>top<p>x</p></html>", "top x"),
        ("<o:p>&nbsp;</o:p>Outlook<o:p></o:p>", "Outlook"),
        ("<head><title>T</title>stray</head><body>b</body>", "strayb"),
        ("<![if !mso]>shown<![endif]><!--[if mso]>hidden<![endif]-->", "shown"),
        ("<p>x<!-- a > b -->y</p>", "xy"),  # Odoo leaks " b -->" here; a comment stays hidden
        ("<p>&lt;b&gt; &amp; &eacute;</p>", "<b> & é"),
        ("<!-- only a comment -->", ""),
    ],
)
def test_html_preview_is_what_the_reader_sees(html, expected):
    assert make_preview("ignored text body", html) == expected


@pytest.mark.parametrize(
    "name,expected",
    [
        ("attachments.eml", "Grüße"),
        ("no_message_id.eml", "Body without a Message-ID."),
        ("raw_8bit_headers.eml", "Ärger und Freude"),
        ("unknown_charset.eml", "Schöne Grüße"),
    ],
)
def test_sample_previews(name, expected):
    assert parse_message((SAMPLES / name).read_bytes()).preview == expected


def test_plain_text_preview_and_length():
    assert make_preview("Only <text> & more") == "Only <text> & more"  # the Odoo suite's
    assert make_preview("  a\r\n\r\n b\t c  ") == "a b c"
    long = "word " * 100
    assert make_preview(long) == long.strip()[:PREVIEW_LENGTH]
    assert len(make_preview("", "<p>" + "x" * 10_000 + "</p>")) == PREVIEW_LENGTH
    assert make_preview("", "") == "" and make_preview("") == ""


def test_reading_stops_once_the_preview_is_full():
    """A huge body is not read to its end: the text found first cannot change."""
    html = "<p>" + "word " * 100 + "</p>" + "<div>" * 200_000
    assert visible_text(html, enough=PREVIEW_LENGTH).split() == ["word"] * 100
    assert make_preview("", html) == ("word " * 100)[:PREVIEW_LENGTH]


@given(st.text(max_size=300), st.text(alphabet="<>/!-=\"' &;abpdivscrtyle\n", max_size=300))
def test_preview_never_fails(text, html):
    out = make_preview(text, html)
    assert len(out) <= PREVIEW_LENGTH and out == " ".join(out.split())


def _head(direction="received", **groups):
    def addresses(values):
        return [Address(*a) if isinstance(a, tuple) else Address(a) for a in values]

    return HeaderInfo(
        "INBOX", "1", "k", direction=direction, **{g: addresses(v) for g, v in groups.items()}
    )


def test_roles_each_participant_once_in_role_order():
    head = _head(
        from_=[("anna@c.example", "Anna")],
        to=["me@own.example", ("bob@c.example", "Bob"), "anna@c.example"],
        cc=["carl@c.example", "bob@c.example"],
        reply_to=["replies@c.example"],
        bcc=["hidden@c.example"],
    )
    participants = ["anna@c.example", "bob@c.example", "carl@c.example", "replies@c.example"]
    msg = ParsedMessage(head, "t", participants=participants + ["hidden@c.example"])
    got = [(role, a.email, a.name) for role, a in msg.roles]
    assert got == [
        ("from", "anna@c.example", "Anna"),
        ("to", "bob@c.example", "Bob"),
        ("cc", "carl@c.example", ""),
        ("reply_to", "replies@c.example", ""),
    ]  # no owner (not a participant), no Bcc on received mail
    head.direction = "sent"
    assert ("bcc", "hidden@c.example") in [(r, a.email) for r, a in msg.roles]
