"""How a policy's reference to a directory group meets the groups a user is in.

A policy names a directory group by its name (`Web Filter Admins`) or by its DN
(`CN=Web Filter Admins,OU=Groups,DC=agency,DC=example`); a reference with an `=` in it is a DN.
Both sides are reduced to the same keys, so matching is a set intersection the engine can do per
request without parsing anything:

- a name compares without regard to case (`casefold`), as directories compare `cn`;
- a DN compares attribute by attribute (`dn.dn_key`): case, spacing after commas and the
  escaping style (`\\,` or `\\2C`) do not matter; an escaped comma never equals a separator.

A user in a group has both keys of it: its name's and its DN's.
"""

from __future__ import annotations

from collections.abc import Iterable

from .dn import dn_key, is_dn
from .outcomes import Group

__all__ = ["is_dn_reference", "membership_keys", "reference_key", "reference_problem"]

MAX_REFERENCE_LENGTH = 1024


def is_dn_reference(reference: str) -> bool:
    """Whether a policy's group reference is a DN (it has an `=`) rather than a name."""
    return "=" in reference


def reference_key(reference: str) -> str:
    """The key a policy's group reference (name or DN) matches under."""
    if is_dn_reference(reference):
        return "dn:" + dn_key(reference)
    return "name:" + reference.strip().casefold()


def reference_problem(reference: str) -> str | None:
    """Why a group reference cannot be used, or None."""
    if not reference.strip():
        return "is empty"
    if len(reference) > MAX_REFERENCE_LENGTH:
        return f"longer than {MAX_REFERENCE_LENGTH} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in reference):
        return "contains control characters"
    if is_dn_reference(reference) and not is_dn(reference):
        return (f"'{reference}' has an '=' but is not a distinguished name "
                "(like CN=Staff,OU=Groups,DC=agency,DC=example)")
    return None


def membership_keys(groups: Iterable[Group]) -> frozenset[str]:
    """The keys of every group a user is in: each group's name key and DN key."""
    keys: set[str] = set()
    for group in groups:
        keys.add("name:" + group.name.strip().casefold())
        keys.add("dn:" + dn_key(group.dn))
    return frozenset(keys)
