"""Email address normalisation and header address parsing.

The same :func:`normalize_email` is used for synced participants and for the
addresses of leads and contacts, so that linking compares like with like.
"""

from __future__ import annotations

import email.utils
import functools
import re
import unicodedata
from email.utils import getaddresses

from .types import Address


@functools.lru_cache(maxsize=10_000)
def _domain_to_unicode(domain: str) -> str:
    """Canonical Unicode form of a domain: punycode decoded, IDNA nameprep applied.

    Round-tripping through the IDNA codec makes ``münchen.de``,
    ``MÜNCHEN.DE`` and ``xn--mnchen-3ya.de`` one value (and maps ``ß`` the way
    IDNA 2003 resolvers do). Invalid IDNs fall back to per-label decoding.
    """
    try:
        return domain.encode("idna").decode("idna")
    except (UnicodeError, ValueError):
        pass
    labels = []
    for label in domain.split("."):
        if label.startswith("xn--"):
            try:
                label = label.encode("ascii").decode("idna")
            except (UnicodeError, ValueError):
                pass
        labels.append(label)
    return ".".join(labels)


# A whole value that is one bare address: no display name, brackets, quotes, comments,
# list separators or blanks, so getaddresses() would return it unchanged.
_PLAIN_ADDRESS = re.compile(r'[^\s()<>@,;:\\"\[\]]+@[^\s()<>@,;:\\"\[\]]+')

# Characters no domain holds (an address literal's brackets aside).
_NOT_IN_DOMAIN = re.compile(r"[\s'\"?=!#$%&*+/^`{|}~(),;:<>\\]")

if getattr(email.utils, "supports_strict_parsing", False):  # Python with the CVE-2023-27043 fix

    def _getaddresses(values):
        return getaddresses(values, strict=False)  # what Odoo does: the lenient parser
else:
    _getaddresses = getaddresses


def normalize_email(value: str | None) -> str:
    """Return the canonical form of the one address in ``value``, or ``""``.

    ``value`` is an address or a header-like text holding exactly one, e.g.
    ``"Chris Customer <chris@acme.test>"``: which address is found, and that two
    or none give nothing, is Odoo's ``email_normalize(value, strict=True)`` (its
    ``email_split``: the stdlib's lenient ``getaddresses``, pairs without ``@``
    dropped, ``name email@x`` written without brackets understood). On top of it:
    whitespace inside the address goes, it is lower-cased (a non-ASCII local part
    too, unlike Odoo), the domain is compared in Unicode whether written as IDN or
    punycode, a trailing dot of the domain goes, and ``+tags`` are kept
    (``chris@x.io`` is not ``chris+crm@x.io``); what is not an address (no local
    part, a domain without a dot other than ``localhost``) gives ``""``. Unlike
    Odoo, a value with a stray ``@`` (``a@b@c.com``) is not searched for something
    address-like: it gives ``""``. Fast for a bare address. Never raises.

    >>> normalize_email("  Chris@Example.COM ")
    'chris@example.com'
    >>> normalize_email('"Doe, John" <John@X.io>')
    'john@x.io'
    >>> normalize_email("Chris Customer <chris@acme.test>")
    'chris@acme.test'
    >>> normalize_email("<chris@x.io>")
    'chris@x.io'
    >>> normalize_email("a@x.io, b@y.io")
    ''
    >>> normalize_email("info@xn--mnchen-3ya.de") == normalize_email("INFO@München.de")
    True
    >>> normalize_email("chris+crm@x.io")
    'chris+crm@x.io'
    >>> normalize_email("not an address")
    ''
    """
    if not value:
        return ""
    text = unicodedata.normalize("NFC", str(value)).strip()
    if not _PLAIN_ADDRESS.fullmatch(text):  # fast path: a bare address is its own split
        found = _email_split(text)
        if len(found) != 1:
            return ""
        text = found[0]
    text = "".join(text.split())  # no whitespace inside an address
    local, _, domain = text.rpartition("@")
    domain = domain.rstrip(".")
    if not local or "@" in local or not domain or "." not in domain and domain != "localhost":
        return ""
    if _NOT_IN_DOMAIN.search(domain):  # quotes, encoded-word or list debris: no domain
        return ""
    return f"{local.lower()}@{_domain_to_unicode(domain.lower())}"


def _email_split(text: str) -> list[str]:
    """The addresses Odoo's ``email_split`` finds in ``text``, without its ``@domain`` salvage."""
    try:
        pairs = _getaddresses([text])
    except Exception:  # noqa: BLE001 - malformed text holds no address
        return []
    found = []
    for name, address in pairs:
        if not address or "@" not in address:
            continue
        if not name and " " in address:  # ``Name name@x.io``: no brackets (Odoo's fallback)
            inside = [a for _, a in _getaddresses([address.replace(" ", ",")]) if "@" in a]
            address = inside[-1] if inside else address
        found.append(address)
    return found


def parse_addresses(values: list[str] | str | None, decode=None) -> list[Address]:
    """Parse header values (From/To/Cc/...) into :class:`Address` objects.

    ``decode`` turns a raw display name into text (RFC 2047); invalid
    entries are dropped, duplicates kept once, order preserved. Never raises.
    Results are cached per header value: correspondents repeat.

    >>> parse_addresses("Ann <ANN@x.io>, bob@y.io, ann@x.io")
    [Address(email='ann@x.io', name='Ann'), Address(email='bob@y.io', name='')]
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out, seen = [], set()
    for value in values:
        for address in _parse_value(str(value), decode):
            if address.email not in seen:
                seen.add(address.email)
                out.append(address)
    return out


@functools.lru_cache(maxsize=50_000)
def _parse_value(value: str, decode) -> tuple[Address, ...]:
    try:  # lenient, as normalize_email (and Odoo): a strict parser drops whole headers
        pairs = _getaddresses([value])
    except Exception:  # noqa: BLE001 - malformed headers degrade to no address
        pairs = []
    out = []
    for name, addr in pairs:
        email = normalize_email(addr)
        if email:
            if decode is not None:
                name = decode(name)
            out.append(Address(email=email, name=" ".join((name or "").split())))
    return tuple(out)


def normalize_set(values) -> frozenset[str]:
    """Normalise an iterable of addresses into a set, dropping invalid ones."""
    return frozenset(e for e in (normalize_email(v) for v in values or ()) if e)
