"""Address normalisation: examples and properties."""

import string

from hypothesis import given
from hypothesis import strategies as st

from crm_gmail_sync.engine.addresses import normalize_email, parse_addresses

LOCAL = st.text(string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20)
LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
UNI_LABEL = st.text("abcdeäöüßéñ", min_size=1, max_size=10)
DOMAIN = st.lists(LABEL, min_size=1, max_size=3).map(lambda ls: ".".join(ls) + ".com")


def test_examples():
    assert normalize_email("  Chris@Example.COM ") == "chris@example.com"
    assert normalize_email("<chris@x.io>") == "chris@x.io"
    assert normalize_email("chris+crm@x.io") != normalize_email("chris@x.io")
    assert normalize_email("info@xn--mnchen-3ya.de") == "info@münchen.de"
    assert normalize_email("INFO@MÜNCHEN.DE") == "info@münchen.de"
    assert normalize_email("a@b.com.") == "a@b.com"
    for bad in ("", None, "no-at-sign", "a@b@c.com", "@x.com", "x@", "x@nodot"):
        assert normalize_email(bad) == ""


def test_parse_addresses_dedupes_and_decodes():
    got = parse_addresses(
        ['"Müller, Jörg" <JOERG@Example.com>, joerg@example.com', "bad, <ok@x.io>"]
    )
    assert [(a.email, a.name) for a in got] == [
        ("joerg@example.com", "Müller, Jörg"),
        ("ok@x.io", ""),
    ]


@given(
    LOCAL,
    DOMAIN,
    st.sampled_from([str.upper, str.lower, str.title, lambda s: s]),
    st.text(" \t", max_size=3),
)
def test_case_and_whitespace_do_not_matter(local, domain, case, pad):
    plain = normalize_email(f"{local}@{domain}")
    assert plain
    assert normalize_email(pad + case(f"{local}@{domain}") + pad) == plain


@given(LOCAL, DOMAIN)
def test_idempotent(local, domain):
    once = normalize_email(f"{local}@{domain}")
    assert normalize_email(once) == once


@given(LOCAL, st.lists(UNI_LABEL, min_size=1, max_size=2))
def test_idn_unicode_equals_punycode(local, labels):
    domain = ".".join(labels) + ".de"
    try:
        puny = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return  # not a valid IDN: nothing to compare
    assert normalize_email(f"{local}@{puny}") == normalize_email(f"{local}@{domain}")


@given(st.text(max_size=60))
def test_never_raises(text):
    result = normalize_email(text)
    assert result == "" or result.count("@") == 1
    parse_addresses(text)
