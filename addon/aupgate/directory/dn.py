"""Distinguished names: comparing them and reading a group's name from one.

Directories return the same DN in different spellings (`CN=Staff,OU=Groups` from memberOf,
`cn=staff,ou=groups` from a search, `\\2C` or `\\,` for a comma), so DNs are compared by a key
built from their parsed parts, never as raw strings.
"""

from __future__ import annotations

import functools
import string

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn


def unescape_dn_value(value: str) -> str:
    """An RDN value without RFC 4514 escaping: `Finance\\, Budget` → `Finance, Budget`,
    `Zo\\C3\\AB` → `Zoë`. Scanned left to right, so an escaped backslash before hex digits
    stays a backslash."""
    out = bytearray()
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            pair = value[i + 1:i + 3]
            if len(pair) == 2 and all(c in string.hexdigits for c in pair):
                out += bytes.fromhex(pair)
                i += 3
                continue
            out += value[i + 1].encode()
            i += 2
            continue
        out += char.encode()
        i += 1
    return out.decode("utf-8", errors="replace")


def _parts(dn: str) -> list[tuple[str, str, str]] | None:
    """The DN's (type, unescaped value, separator) triples; spaces around separators allowed
    (`CN=Staff, OU=Groups` as people write it), the strict parse kept for escaped end spaces."""
    for strip in (True, False):
        try:
            return [(attr.strip(), unescape_dn_value(value), sep)
                    for attr, value, sep in parse_dn(dn, strip=strip)]
        except (LDAPInvalidDnError, ValueError, IndexError):
            continue
    return None


@functools.lru_cache(maxsize=8192)
def dn_key(dn: str) -> str:
    """A comparison key: attribute types and values case-folded, escaping undone. Built with
    repr, so an escaped comma inside a value (`cn=a\\,ou=b`) never equals a real separator
    (`cn=a,ou=b`). Remembered (bounded): a login's groups are keyed on every login, and the
    same few hundred group DNs come back all day, where parsing one costs tens of
    microseconds."""
    parts = _parts(dn)
    if parts is None:
        return repr(dn.strip().casefold())
    return repr([(a.casefold(), v.casefold(), s) for a, v, s in parts])


def rdn_value(dn: str, attribute: str | None = None) -> str | None:
    """The value of the DN's first RDN (only if its type is `attribute`, when given)."""
    parts = _parts(dn)
    if not parts:
        return None
    attr, value, _sep = parts[0]
    if attribute is not None and attr.casefold() != attribute.casefold():
        return None
    return value


def is_dn(dn: str) -> bool:
    """Whether `dn` parses as a distinguished name (at least one `type=value` part)."""
    return bool(_parts(dn))
