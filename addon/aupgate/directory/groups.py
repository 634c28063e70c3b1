"""A user's groups: direct ones from `memberOf` and the group search, then groups of groups.

Nested groups come from Active Directory's LDAP_MATCHING_RULE_IN_CHAIN in one query where the
server is AD, and from a walk up the membership attribute elsewhere (OpenLDAP's memberof overlay
lists direct groups only). The walk is breadth first, remembers every group it has seen (so a
cycle ends it) and stops at `max_depth` levels and at a query budget, logging when it does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from ldap3.utils.conv import escape_filter_chars

from .config import DirectorySettings, GroupSettings
from .dn import dn_key, rdn_value
from .outcomes import Group

if TYPE_CHECKING:
    from .entry import Entry, Scope

log = logging.getLogger(__name__)

IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN
WALK_QUERY_BUDGET = 256


class GroupSearcher(Protocol):
    def search(self, base: str, search_filter: str, attributes: Sequence[str], *,
               scope: Scope = ..., size_limit: int = ...) -> list[Entry]: ...

    def is_active_directory(self) -> bool: ...


def _name(entry: Entry, groups: GroupSettings) -> str:
    return entry.first(groups.name_attribute) or rdn_value(entry.dn) or entry.dn


class _Found:
    """Groups by DN key, in the order found; the first way a group was found is kept."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}

    def add(self, group: Group) -> bool:
        key = dn_key(group.dn)
        if key in self.groups:
            return False
        self.groups[key] = group
        return True


def resolve_groups(directory: GroupSearcher, user: Entry, user_name: str,
                   settings: DirectorySettings) -> tuple[Group, ...]:
    g = settings.groups
    found = _Found()
    if g.member_of:
        for dn in user.values(g.member_of):
            found.add(Group(dn, rdn_value(dn) or dn, "memberOf"))
    if g.search_filter:
        search_filter = g.search_filter.format(dn=escape_filter_chars(user.dn),
                                               user=escape_filter_chars(user_name))
        for entry in directory.search(settings.group_search_base, search_filter,
                                      [g.name_attribute]):
            found.add(Group(entry.dn, _name(entry, g), "search"))
    mode = g.nested
    if mode == "auto":
        mode = "in_chain" if directory.is_active_directory() else "walk"
    if mode == "in_chain" and not _in_chain(directory, user, settings, found):
        log.warning("the directory returned no groups for LDAP_MATCHING_RULE_IN_CHAIN although "
                    "%s has direct groups: it does not support the rule; walking nested groups "
                    "instead (set directory.groups.nested: walk)", user.dn)
        mode = "walk"
    if mode == "walk":
        _walk(directory, settings, found)
    return tuple(found.groups.values())


def _in_chain(directory: GroupSearcher, user: Entry, settings: DirectorySettings,
              found: _Found) -> bool:
    """Every group the user is in at any depth, in one query; False if the server plainly does
    not support the rule (no results although the user has member-linked direct groups)."""
    g = settings.groups
    search_filter = (f"({g.nested_member_attribute}:{IN_CHAIN}:="
                     f"{escape_filter_chars(user.dn)})")
    entries = directory.search(settings.group_search_base, search_filter, [g.name_attribute])
    if not entries and any(group.source == "memberOf" for group in found.groups.values()):
        return False
    for entry in entries:
        found.add(Group(entry.dn, _name(entry, g), "nested"))
    return True


def _walk(directory: GroupSearcher, settings: DirectorySettings, found: _Found) -> None:
    g = settings.groups
    frontier = [group.dn for group in found.groups.values()]
    queries = 0
    for _depth in range(g.max_depth):
        next_frontier: list[str] = []
        for child in frontier:
            if queries >= WALK_QUERY_BUDGET:
                log.warning("nested group walk stopped after %d queries", queries)
                return
            queries += 1
            search_filter = f"({g.nested_member_attribute}={escape_filter_chars(child)})"
            for entry in directory.search(settings.group_search_base, search_filter,
                                          [g.name_attribute]):
                if found.add(Group(entry.dn, _name(entry, g), "nested", via=child)):
                    next_frontier.append(entry.dn)
        if not next_frontier:
            return
        frontier = next_frontier
    if frontier:
        log.info("nested group walk stopped at max_depth %d", g.max_depth)
