"""The German translation is complete: every source string of the addons has a translation."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# (addon, at least this many strings: a template that lost its strings fails too)
ADDONS = [("crm_gmail_sync", 100), ("crm_gmail_sync_queue", 2)]


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


@pytest.mark.parametrize(("addon", "minimum"), ADDONS)
def test_german_translation_is_complete(addon, minimum):
    template = entries(ROOT / addon / "i18n" / f"{addon}.pot")
    german = entries(ROOT / addon / "i18n" / "de.po")
    assert len(template) >= minimum
    missing = sorted(set(template) - {k for k, v in german.items() if v})
    assert missing == []


@pytest.mark.parametrize(("addon", "minimum"), ADDONS)
def test_placeholders_survive_translation(addon, minimum):
    for msgid, msgstr in entries(ROOT / addon / "i18n" / "de.po").items():
        assert sorted(re.findall(r"%\(\w+\)s", msgid)) == sorted(
            re.findall(r"%\(\w+\)s", msgstr)
        ), msgid
