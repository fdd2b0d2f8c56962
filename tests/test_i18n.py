"""The German translation is complete: every source string of the addon has a translation."""

import re
from pathlib import Path

I18N = Path(__file__).resolve().parent.parent / "crm_gmail_sync" / "i18n"


def entries(path):
    """``{msgid: msgstr}`` of a .po/.pot file (the header entry left out)."""
    text = path.read_text(encoding="utf-8")
    out = {}
    for block in re.split(r"\n\s*\n", text):
        msgid = re.search(r'^msgid ((?:".*"\n?)+)', block, re.M)
        msgstr = re.search(r'^msgstr ((?:".*"\n?)+)', block, re.M)
        if not msgid or not msgstr:
            continue
        join = lambda m: "".join(re.findall(r'"(.*)"', m.group(1)))  # noqa: E731
        if join(msgid):
            out[join(msgid)] = join(msgstr)
    return out


def test_german_translation_is_complete():
    template = entries(I18N / "crm_gmail_sync.pot")
    german = entries(I18N / "de.po")
    assert len(template) > 100
    missing = sorted(set(template) - {k for k, v in german.items() if v})
    assert missing == []


def test_placeholders_survive_translation():
    for msgid, msgstr in entries(I18N / "de.po").items():
        assert sorted(re.findall(r"%\(\w+\)s", msgid)) == sorted(
            re.findall(r"%\(\w+\)s", msgstr)
        ), msgid
