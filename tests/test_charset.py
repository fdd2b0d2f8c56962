"""RFC 2047 header decoding: whitespace and folding, compared with the stdlib's modern parser."""

import base64
import email
import email.policy
import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crm_gmail_sync.engine.charset import decode_header_value

# ordinary text: no "=" so that it never forms an encoded word with its neighbours
PLAIN = st.text(string.ascii_letters + string.digits + ".,:;!?()<>@'\"-_/äöüß€", min_size=1)
LATIN1 = string.ascii_letters + string.digits + " _?=.,:-äöüßéÄÖÜ"
UTF8 = LATIN1 + "€😀łŁ\t"
# between two tokens: blanks, at most one fold (CRLF + at least one WSP), or nothing at all
SEPARATOR = st.builds(
    lambda before, fold, after: before + fold + after,
    st.text(" \t", max_size=2),
    st.sampled_from(["", "", "\r\n"]),
    st.text(" \t", min_size=1, max_size=2),
) | st.just("")


def encoded_word(text: str, charset: str, encoding: str) -> str:
    """``text`` as one RFC 2047 encoded word, never containing whitespace."""
    data = text.encode(charset)
    if encoding in "bB":
        payload = base64.b64encode(data).decode()
    else:
        safe = set((string.ascii_letters + string.digits + "!*+-/").encode())
        payload = "".join("_" if b == 0x20 else chr(b) if b in safe else f"={b:02X}" for b in data)
    return f"=?{charset}?{encoding}?{payload}?="


ENCODED = st.one_of(
    st.builds(
        encoded_word, st.text(LATIN1, max_size=10), st.just("iso-8859-1"), st.sampled_from("qQbB")
    ),
    st.builds(
        encoded_word,
        st.text(UTF8, max_size=10),
        st.sampled_from(["utf-8", "UTF-8"]),
        st.sampled_from("qQbB"),
    ),
)
TOKEN = st.one_of(PLAIN.map(lambda w: w[:8]), ENCODED)


@st.composite
def headers(draw):
    tokens = draw(st.lists(TOKEN, min_size=1, max_size=8))
    out = [tokens[0]]
    for token in tokens[1:]:
        out.append(draw(SEPARATOR))
        out.append(token)
    return "".join(out)


def stdlib(header: str) -> str:
    """The stdlib's ``email.policy.default`` reading of a Subject header, collapsed as ours is."""
    msg = email.message_from_string("Subject: " + header + "\r\n\r\n", policy=email.policy.default)
    return " ".join(str(msg["Subject"]).split())


@settings(max_examples=400)
@given(headers())
@example("=?utf-8?q?Hallo?=\r\n Welt")
@example("=?utf-8?q?a?=\r\n\t=?iso-8859-1?b?5A==?=")
@example("x=?utf-8?q?a?=y =?utf-8?q?b?=")
def test_agrees_with_stdlib_default_policy(header):
    assert decode_header_value(header) == stdlib(header)


@pytest.mark.parametrize(
    "header,expected",
    [
        ("=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?K=F6ln?=", "Grüße aus Köln"),
        ("Re: =?utf-8?q?a?=\r\n =?utf-8?q?b?=", "Re: ab"),
        ("=?utf-8?q?Hallo?=\r\n Welt", "Hallo Welt"),
        ("Hallo\r\n\t=?utf-8?q?Welt?=", "Hallo Welt"),
        ("=?utf-8?q?a?= b\r\n =?utf-8?q?c?=", "a b c"),
        ("=?utf-8?q?a?=  \t =?utf-8?b?Yg==?=", "ab"),  # any blanks between two words go
        ("=?utf-8?q?a_?= =?utf-8?q?_b?=", "a b"),  # spaces inside words are text: kept, collapsed
        ("foo =?utf-8?q?bar?=baz", "foo barbaz"),  # as the stdlib: decoded in place
        ("foo=?utf-8?q?bar?=", "foobar"),
        ("=?utf-8?q?a?==?utf-8?q?b?=", "ab"),
        ("=?utf-8*de?q?a?= b", "a b"),  # RFC 2231 language tag
        ("  a \t\r\n  b  ", "a b"),  # fast path: no encoded word
    ],
)
def test_examples(header, expected):
    assert decode_header_value(header) == expected
    assert stdlib(header) == expected


@pytest.mark.parametrize(
    "header,expected",
    [
        ("=?utf-8?b?a?= x", "=?utf-8?b?a?= x"),  # not base64 (the stdlib guesses "")
        ("=?utf-8?b?#?= =?utf-8?q?ok?=", "=?utf-8?b?#?= ok"),  # text, so its blank stays
        ("=?utf-8?x?abc?= d", "=?utf-8?x?abc?= d"),  # no such encoding
        ("=?utf-8?q?a b?= c", "=?utf-8?q?a b?= c"),  # space inside
        ("=?utf-8?q?unclosed c", "=?utf-8?q?unclosed c"),
        ("=?x-bogus?q?Hallo?=\r\n Welt", "Hallo Welt"),  # unknown charset: decode_bytes' fallback
        ("=?utf-8?q?caf=E9?=", "caf\ufffd"),  # not UTF-8 after all: a replacement character
        ("Gr\udcc3\udcbc\udcc3\udc9fe =?utf-8?q?a?=", "Grüße a"),  # raw 8-bit, surrogate-escaped
    ],
)
def test_malformed_and_fallbacks(header, expected):
    assert decode_header_value(header) == expected


def _split_words(text, charset, encoding, size):
    """``text`` encoded as mailers do: cut every ``size`` bytes, whatever the characters."""
    data = text.encode(charset)
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    if encoding == "b":
        words = [base64.b64encode(c).decode() for c in chunks]
    else:
        words = ["".join(f"={b:02X}" for b in c) for c in chunks]
    return "\r\n ".join(f"=?{charset}?{encoding}?{w}?=" for w in words)


@given(
    st.text(alphabet="aäöüßé€😀中文 ", min_size=1, max_size=40),
    st.sampled_from(["b", "q"]),
    st.integers(min_value=1, max_value=7),
)
def test_a_character_split_across_words_is_one_character(text, encoding, size):
    """Mailers cut long text at a byte count: one character may begin in an encoded word
    and end in the next; the adjacent words are one text."""
    header = _split_words(text, "utf-8", encoding, size)
    assert decode_header_value(header) == " ".join(text.split())
    assert decode_header_value(header) == stdlib(header)


@pytest.mark.parametrize(
    "header, expected",
    [
        ("=?utf-8?q?M=C3?= =?utf-8?q?=BCller?=", "Müller"),
        ("=?UTF-8?B?8J+Y?=\r\n =?UTF-8?B?gA==?=", "😀"),
        ("=?utf-8?q?M=C3?= =?UTF-8?q?=BCller?= GmbH", "Müller GmbH"),  # charset: any case
        ("=?utf-8?q?a?= =?iso-8859-1?q?=E4?=", "aä"),  # two charsets: decoded apart
    ],
)
def test_split_characters(header, expected):
    assert decode_header_value(header) == expected
