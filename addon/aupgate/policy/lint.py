"""Lint: rules that can never decide, list entries that never take effect, and an allow list that
contradicts a block rule.

Rules are walked in file order and the first matching rule no grant relaxes decides (see
`engine`), so a rule is dead when earlier rules, none of them named by a grant, match every
request it matches: one earlier rule (`Match.covers`), or several together. The union check
splits the later rule into atoms (one window, one category or domain or URL, one group, one
device, one network, one content kind each) and asks whether every atom is covered by some
earlier rule. That is sound (every request the later rule matches falls in some atom, and the
rule covering that atom matches the request) but not complete: a rule covered only because two
categories always come together on the lists is not noticed.

Two more checks need the category index, so `aupgate check` runs them (`lint_with_index`):

- a domain (or URL) a rule names that the lists put in a category an earlier rule decides with
  the same or broader other conditions: that entry never takes effect for the domain itself;
- an allow-list entry that a block rule names (the entry, a parent domain or a URL under it), or
  whose category a block rule with no other condition blocks: the allow list comes before every
  rule, so the block never applies to it. Every allow list exists to exempt sites from category
  rules, so the category case is reported only for unconditional blocks (a prohibition "at all
  times" that the allow list silently lifts).

Everything here is pure: the located YAML data and the index are handed in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from itertools import product
from typing import Any

from aupgate.categories.ids import UNCATEGORIZED
from aupgate.categories.index import CategoryIndex
from aupgate.errors import Problem, UrlError
from aupgate.hostname import host_suffixes, is_under, normalise_host
from aupgate.yamlsource import FieldReader

from .model import Grant, Match, Policy, Rule, Site
from .schedule import WINDOWS

__all__ = ["check_reachable", "lint_with_index"]

_MAX_ATOMS = 20_000  # past this many atoms a rule is not split (it would not be written by hand)


# --------------------------------------------------------------------------- dead rules


def check_reachable(
    reader: FieldReader,
    raw_rules: Sequence[Any],
    rules: Sequence[Rule],
    grants: Sequence[Grant],
    unreadable: frozenset[str],
    possible_windows: frozenset[str] = frozenset(WINDOWS),
) -> None:
    """Report every rule that earlier rules, alone or together, leave nothing to decide.

    Rules that a grant names do not count as covering: their holders walk on past them.
    `unreadable` rules had a condition that could not be read (already reported), so their
    match is incomplete and "covered" would be a false second error.
    """
    granted = {rule_id for grant in grants for rule_id in grant.rules}
    for i, rule in enumerate(rules):
        if rule.id in unreadable:
            continue
        earlier = [r for r in rules[:i] if r.id not in granted and r.id not in unreadable]
        if not earlier:
            continue
        item = _raw_rule(raw_rules, rule.id)
        field = f"rules[{_index_of(raw_rules, rule.id, i)}].match"
        single = next((r for r in earlier if r.match.covers(rule.match)), None)
        if single is not None:
            reader.problem(
                item, "match", field,
                f"can never match: rule '{single.id}' (line {single.line}) comes first and "
                "covers every request this rule covers",
            )
            continue
        union = _covering_union(rule.match, earlier, possible_windows)
        if union:
            names = ", ".join(f"'{r.id}' (line {r.line})" for r in union)
            reader.problem(
                item, "match", field,
                f"can never match: rules {names} come first and together cover every request "
                "this rule covers",
            )


def _covering_union(
    match: Match, earlier: Sequence[Rule], possible: frozenset[str]
) -> list[Rule] | None:
    """The earlier rules that cover every atom of `match` (in file order), or None."""
    used: dict[str, Rule] = {}
    atoms = _atoms(match, possible)
    if atoms is None:
        return None
    for atom in atoms:
        cover = next((r for r in earlier if r.match.covers(atom)), None)
        if cover is None:
            return None
        used.setdefault(cover.id, cover)
    order = {r.id: n for n, r in enumerate(earlier)}
    return sorted(used.values(), key=lambda r: order[r.id]) if len(used) > 1 else None


def _atoms(match: Match, possible: frozenset[str]) -> Iterator[Match] | None:
    """`match` split into atoms, one value per condition; None when there would be too many."""

    def one_each(values: frozenset[str] | None) -> list[frozenset[str] | None]:
        return [None] if values is None else [frozenset({v}) for v in sorted(values)]

    windows = one_each(match.windows if match.windows is not None else possible)
    sites: list[Site | None] = [None]
    if match.site is not None:
        site = match.site
        sites = [Site(categories=frozenset({c})) for c in sorted(site.categories)]
        sites += [Site(domains=frozenset({d})) for d in sorted(site.domains)]
        sites += [Site(urls=(u,)) for u in site.urls]
    dimensions = (
        sites, windows, one_each(match.devices), one_each(match.groups), one_each(match.users),
        one_each(match.networks), one_each(match.content),
    )
    count = 1
    for values in dimensions:
        count *= max(1, len(values))
    if count > _MAX_ATOMS:
        return None
    return (
        Match(site, w, d, g, u, n, c)
        for site, w, d, g, u, n, c in product(*dimensions)
    )


def _raw_rule(raw_rules: Sequence[Any], rule_id: str) -> Any:
    return next(
        (r for r in raw_rules if isinstance(r, dict) and r.get("id") == rule_id), raw_rules
    )


def _index_of(raw_rules: Sequence[Any], rule_id: str, fallback: int) -> int:
    for i, item in enumerate(raw_rules):
        if isinstance(item, dict) and item.get("id") == rule_id:
            return i
    return fallback


# --------------------------------------------------------------------------- with the index


def lint_with_index(policy: Policy, top: Mapping[str, Any], index: CategoryIndex) -> list[Problem]:
    """The checks that need to know what the lists say: hidden rule entries, allow-list
    contradictions. `top` is the policy file as located YAML data (for lines)."""
    reader = FieldReader(policy.source)
    raw_rules = top.get("rules") if isinstance(top.get("rules"), list) else []
    assert isinstance(raw_rules, list)
    granted = {rule_id for grant in policy.grants for rule_id in grant.rules}
    for i, rule in enumerate(policy.rules):
        if rule.match.site is None:
            continue
        raw = _raw_rule(raw_rules, rule.id)
        m = raw.get("match") if isinstance(raw, dict) else None
        if not isinstance(m, dict):
            continue
        field = f"rules[{_index_of(raw_rules, rule.id, i)}].match"
        for key, j, host, path in _entries(m):
            where = f"{field}.{key}[{j}]"
            listed = _listed(policy, host, path)
            if listed == "allow" and rule.action == "block":
                continue  # an allow-list entry contradicting a block rule: reported at the entry
            if listed is not None:
                reader.problem(
                    m[key], j, where,
                    f"'{_shown(host, path)}' is on the {listed} list, which comes before every "
                    "rule: this entry never takes effect", "warning")
                continue
            categories = _categories(policy, index, host, path)
            hider = _hiding_rule(policy.rules[:i], rule, categories, granted)
            if hider is not None:
                reader.problem(
                    m[key], j, where,
                    f"'{_shown(host, path)}' is listed as {', '.join(categories)}, so rule "
                    f"'{hider.id}' (line {hider.line}), which comes first with the same or "
                    "broader conditions, decides it: this entry never takes effect for it",
                    "warning")
    _allow_contradictions(reader, policy, top, index)
    return reader.problems


def _entries(m: Mapping[str, Any]) -> Iterator[tuple[str, int, str, str]]:
    """(key, position, host, path) of each readable `domains` and `urls` entry, as written."""
    for key in ("domains", "urls"):
        values = m.get(key)
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list):
            continue
        for j, text in enumerate(values):
            if not isinstance(text, str):
                continue
            host, path = text, "/"
            if key == "urls":
                host, _, rest = text.removeprefix("https://").removeprefix("http://").partition(
                    "/")
                path = "/" + rest
            try:
                yield key, j, normalise_host(host), path
            except UrlError:
                continue  # the loader reported it


def _shown(host: str, path: str) -> str:
    return host if path == "/" else host + path


def _listed(policy: Policy, host: str, path: str) -> str | None:
    suffixes = host_suffixes(host)
    if policy.deny is not None and policy.deny.site.holds((), suffixes, path):
        return "deny"
    if policy.allow is not None and policy.allow.site.holds((), suffixes, path):
        return "allow"
    return None


def _categories(policy: Policy, index: CategoryIndex, host: str, path: str) -> tuple[str, ...]:
    if policy.overrides is None:
        found = index.classify(host, path)
    else:
        found = policy.overrides.classify(index, host, path)
    return found.categories or (UNCATEGORIZED,)


def _hiding_rule(
    earlier: Sequence[Rule], rule: Rule, categories: tuple[str, ...], granted: set[str]
) -> Rule | None:
    """The first earlier rule that matches the entry's categories and covers the rule's other
    conditions (and that no grant names), if any."""
    rest = replace(rule.match, site=None)
    for other in earlier:
        site = other.match.site
        if other.id in granted or site is None or site.categories.isdisjoint(categories):
            continue
        if replace(other.match, site=None).covers(rest):
            return other
    return None


def _allow_contradictions(
    reader: FieldReader, policy: Policy, top: Mapping[str, Any], index: CategoryIndex
) -> None:
    allow = top.get("allow")
    if policy.allow is None or not isinstance(allow, dict):
        return
    overrides = policy.allow.overrides
    blocks = [r for r in policy.rules if r.action == "block" and r.match.site is not None]
    lifted: set[str] = set()
    for key, j, host, path in _entries(allow):
        where = f"allow.{key}[{j}]"
        shown = _shown(host, path)
        named = next((r for r in blocks if _names(r.match.site, host, path)), None)
        if named is not None:
            reader.problem(
                allow[key], j, where,
                f"'{shown}' is on the allow list, which comes before every rule, but block rule "
                f"'{named.id}' (line {named.line}) names it: the block never applies to it",
                "warning")
            continue
        categories = _categories(policy, index, host, path)
        for rule in blocks:
            site = rule.match.site
            assert site is not None
            if site.categories.isdisjoint(categories):
                continue
            if rule.id in overrides:
                lifted.add(rule.id)
            elif _unconditional(rule.match):
                reader.problem(
                    allow[key], j, where,
                    f"'{shown}' is listed as {', '.join(categories)}, which block rule "
                    f"'{rule.id}' (line {rule.line}) prohibits at all times for everyone; the "
                    "allow list comes first, so the prohibition never applies to it (name the "
                    "rule in allow.overrides if that is the intent)",
                    "warning")
                break
    raw = allow.get("overrides")
    for k, name in enumerate(raw if isinstance(raw, list) else []):
        if name in overrides and name not in lifted:
            reader.problem(
                raw, k, f"allow.overrides[{k}]",
                f"no allow-list entry is in a category rule '{name}' blocks: nothing to "
                "override", "warning")


def _names(site: Site | None, host: str, path: str) -> bool:
    """Whether a block rule's site names a domain or URL that lies wholly within this allow-list
    entry (the same domain, a subdomain, a URL under it): that part of the rule never applies.
    An allow entry narrower than the rule's (a subdomain carved out of a blocked domain) is an
    exception, not a contradiction."""
    if site is None:
        return False
    if path == "/" and any(is_under(d, host) for d in site.domains):
        return True
    return any(is_under(h, host) and p.startswith(path) for h, p in site.urls)


def _unconditional(match: Match) -> bool:
    """A rule that holds whoever asks, whenever, from wherever, whatever the transfer."""
    return (
        match.windows is None
        and match.devices is None
        and match.groups is None
        and match.users is None
        and match.networks is None
        and match.content is None
    )
