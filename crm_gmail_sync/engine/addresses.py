"""Email address normalisation and header address parsing.

The same :func:`normalize_email` is used for synced participants and for the
addresses of leads and contacts, so that linking compares like with like.
"""

from __future__ import annotations

import functools
import unicodedata
from email.utils import getaddresses

from .types import Address


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


def normalize_email(value: str | None) -> str:
    """Return the canonical form of one address, or ``""`` when it is not one.

    Surrounding whitespace and angle brackets go, case is folded, the domain
    is compared in Unicode whether written as IDN or punycode, and ``+tags``
    are kept (``chris@x.io`` is not ``chris+crm@x.io``).

    >>> normalize_email("  Chris@Example.COM ")
    'chris@example.com'
    >>> normalize_email("info@xn--mnchen-3ya.de") == normalize_email("INFO@München.de")
    True
    >>> normalize_email("chris+crm@x.io")
    'chris+crm@x.io'
    >>> normalize_email("not an address")
    ''
    """
    if not value:
        return ""
    text = unicodedata.normalize("NFC", str(value)).strip().strip("<>").strip()
    text = "".join(text.split())  # no whitespace inside an address
    if text.count("@") != 1:
        return ""
    local, domain = text.rsplit("@", 1)
    domain = domain.rstrip(".")
    if not local or not domain or "." not in domain and domain != "localhost":
        return ""
    return f"{local.lower()}@{_domain_to_unicode(domain.lower())}"


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
    try:
        pairs = getaddresses([value])
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
