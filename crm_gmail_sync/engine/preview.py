"""The preview of a synced email: the start of the text its reader sees.

The Odoo layer shows a message's HTML body after Odoo's sanitiser (``html_sanitize``)
and used to take the preview from that, through ``html_to_inner_content``. The engine
cannot call Odoo, so :func:`visible_text` reads the raw HTML with the stdlib's
:class:`html.parser.HTMLParser` and keeps what the sanitiser keeps:

- the content of ``script``, ``style``, ``title``, ``head`` and of what the sanitiser
  kills with its content (``noscript``, ``iframe``, ``object``, ``applet``,
  ``frameset``, and the form controls ``button``, ``select``, ``textarea``) is dropped;
  so are comments (the sanitiser keeps them and ``html_to_inner_content`` strips them
  as tags, which lets the text after a ``>`` inside a comment through: not here);
- text is otherwise kept from every element, known or not, and entities are decoded;
- word boundaries fall where Odoo's have them: a start tag of ``p``, ``div``, ``br``,
  ``tr``, ``pre``, ``progress``, ``track`` (the tags ``html_to_inner_content`` turns
  into a space) and a line break separate words; other tags do not (``a<b>b</b>`` is
  ``ab``); text outside any element separates, as the implied ``<p>`` libxml2 opens
  for it does;
- NUL becomes a space and the other C0 controls (but tab, line feed and carriage
  return) and the non-characters U+FFFE/U+FFFF go, as libxml2 does.

Plain text gives its own preview: ``plaintext2html`` followed by
``html_to_inner_content`` gives back the same words.

>>> make_preview("", "<html><head><style>p{}</style><title>T</title></head>"
...              "<body><p>Dear <b>Olivia</b>,</p><!-- x > y --><p>fine.</p></body></html>")
'Dear Olivia, fine.'
>>> make_preview("Only <text>\\n\\n & more")
'Only <text> & more'
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: Characters of the stored preview (``crm.gmail.message.preview``).
PREVIEW_LENGTH = 200

# html_to_inner_content turns these start tags (as lxml writes the sanitised HTML) into a
# space: its pattern is ``<(div|p|br|tr)[^>]*>``, matching every kept tag that begins so.
_SPACE_TAGS = frozenset({"br", "div", "p", "pre", "progress", "tr", "track"})
# killed with their content by Odoo's sanitiser (its kill_tags, lxml's forms/frames/embedded)
_KILL_TAGS = frozenset(
    {
        "script",
        "style",
        "title",
        "noscript",
        "iframe",
        "object",
        "applet",
        "frameset",
        "button",
        "select",
        "textarea",
    }
)
_VOID_TAGS = frozenset(
    "area base basefont br col command embed frame hr img input isindex keygen link meta "
    "param source track wbr".split()
)
# what may stay inside <head>; any other tag, or text, ends the head (libxml2)
_HEAD_TAGS = frozenset({"title", "style", "script", "meta", "link", "base", "noscript"})
_CONTROLS = dict.fromkeys([*range(1, 9), 11, 12, *range(14, 32), 0xFFFE, 0xFFFF])
_CONTROLS[0] = " "
_EMPTY_COMMENT = re.compile(r"<!--->|<!-->")
_CHUNK = 8192


def make_preview(text: str, html: str = "", length: int = PREVIEW_LENGTH) -> str:
    """The preview of a message with text body ``text`` and HTML body ``html``: the
    first ``length`` characters of its visible text (of ``html`` when it is not empty,
    else of ``text``), runs of white space made one space. Never raises.

    >>> make_preview("plain", "<p>rich</p>")
    'rich'
    >>> make_preview("a  b\\tc", "", length=3)
    'a b'
    """
    source = visible_text(html, length) if html else (text or "")
    return " ".join(source.split())[:length]


def visible_text(html: str, enough: int | None = None) -> str:
    """The text of ``html`` a reader sees (see the module's description), with white
    space as found. ``enough``: stop reading once that many characters of collapsed text
    are found (the rest cannot change them).

    >>> visible_text("<ul><li>one<li>two</ul><div>three</div>")
    'onetwo three'
    >>> visible_text("<textarea>not shown")
    ''
    """
    html = _EMPTY_COMMENT.sub("<!-- -->", html.replace("--!>", "-->")).translate(_CONTROLS)
    parser = _Visible()
    try:
        for start in range(0, len(html), _CHUNK):
            parser.feed(html[start : start + _CHUNK])
            if enough is not None and parser.collapsed_length() > enough:
                return "".join(parser.parts)
        parser.close()
    except Exception:  # noqa: BLE001 - a preview never fails a message: tags dropped
        return re.sub(r"<[^>]*>", " ", html)
    return "".join(parser.parts)


class _Visible(HTMLParser):
    """Collects the visible text of a document in ``parts``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open: list[str] = []  # the elements open around the current position
        self.kill = ""  # the element whose content is being dropped
        self.kill_depth = 0
        self.kill_at = 0  # len(self.open) where it began
        self.in_head = False
        self.in_body = False  # inside an element's content (libxml2: no implied <p>)

    def collapsed_length(self) -> int:
        return len(" ".join("".join(self.parts).split()))

    def handle_starttag(self, tag, attrs):
        if self.kill:
            self.kill_depth += tag == self.kill
            return
        if tag == "html":
            return
        if tag == "head":
            self.in_head = not self.in_body
            return
        if tag in _KILL_TAGS:
            self.kill, self.kill_depth, self.kill_at = tag, 1, len(self.open)
            return
        if tag != "body" and tag not in _VOID_TAGS:
            self.open.append(tag)
        if tag == "body" or not (self.in_head and tag in _HEAD_TAGS):
            self.in_head, self.in_body = False, True
        if tag in _SPACE_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if self.kill:
            if tag == self.kill:
                self.kill_depth -= 1
                if not self.kill_depth:
                    self.kill = ""
            elif tag in self.open[: self.kill_at]:
                self.kill = ""  # an unclosed one ends with an element around it (libxml2)
                self._close(tag)
            return
        if tag in self.open:
            self._close(tag)
        if tag == "head":
            self.in_head = False
        elif tag in ("body", "html"):
            self.in_body = False

    def _close(self, tag):
        while self.open and self.open.pop() != tag:
            pass

    def handle_data(self, data):
        if self.kill:
            return
        if not self.in_body and data.strip():
            self.in_head, self.in_body = False, True
            self.parts.append(" ")  # the <p> libxml2 opens for text outside any element
        self.parts.append(data)
