"""Deciding: facts about one request in, one cited decision out.

`decide` is pure and runs for every request the proxy sees, so it does each piece of work once
(classification, window, host suffixes, groups) and then walks the rules in file order. The
precedence it implements is the one `docs/policy-language.md` documents: deny list, allow list
(except for what the request carries: transfer rules judge allow-listed sites too), first
matching rule (relaxed by a live grant), default; then the port policy, which turns anything
short of a block on a port it keeps shut into its own block.

A grant relaxes only the rule it names. When the user holds a live grant for the first matching
rule, the walk goes on: the next matching rule applies too, unless a grant the user holds relaxes
it as well, and so on; the decision is the strictest of the relaxed rules and the first matching
rule no grant of the user relaxes (on a tie, the earliest). When every matching rule is relaxed,
the strictest relaxed one decides (the default is for requests no rule matches). So a grant on
the adult rule does not let its holder past a later messaging block for a site that is both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from .categories.ids import UNCATEGORIZED
from .categories.index import CategoryIndex, Classification
from .content import detect_url_content
from .hostname import host_suffixes
from .memo import remember
from .normalise import Url
from .policy.model import (
    PORT_POLICY_RULE,
    SEVERITY,
    Action,
    Grant,
    IPAddress,
    Network,
    Policy,
    Rule,
    Verdict,
)
from .ports import port_allowed

__all__ = ["Decision", "Facts", "Step", "decide", "decide_content", "direction_of", "strictest"]

Step = Literal["ports", "deny-list", "allow-list", "rule", "grant", "default", "budget"]


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known about a request before deciding."""

    url: Url
    user: str | None = None
    client: IPAddress | None = None
    device: str | None = None  # stated device class; otherwise the client's network says
    method: str = "GET"
    sends_body: bool = False  # the request carries a body (an upload); publishing is worked out
    kinds: frozenset[str] = frozenset()  # content kinds the request's own body shows
    # the match keys of the directory groups the login reported (directory.membership_keys)
    directory_groups: frozenset[str] = frozenset()


class Decision(NamedTuple):
    """The outcome and everything needed to explain it, audit it and show it on a page.

    A NamedTuple rather than a frozen dataclass: one is built per request, and building a
    17-field frozen dataclass costs several times more than the rest of a memoised decision.
    """

    action: Action
    agency: str
    rule: str
    clauses: tuple[str, ...]
    reason: str
    step: Step
    window: str
    categories: tuple[str, ...]
    all_categories: tuple[str, ...]
    matched: str | None
    host: str
    url: str
    user: str | None = None
    device: str | None = None
    network: str | None = None
    grant: str | None = None
    intercept: str = "auto"
    direction: str = "read"
    relaxed: tuple[tuple[str, str], ...] = ()
    """(rule, grant) pairs: earlier matching rules that a grant of this user relaxed on the way
    to the rule that decided (empty when the first matching rule decided, relaxed or not)."""

    def to_json(self) -> dict[str, Any]:
        """The object `aupgate explain --json` prints, one per decision."""
        return {
            "action": self.action,
            "agency": self.agency,
            "rule": self.rule,
            "clauses": list(self.clauses),
            "reason": self.reason,
            "step": self.step,
            "window": self.window,
            "categories": list(self.categories),
            "all_categories": list(self.all_categories),
            "matched": self.matched,
            "host": self.host,
            "url": self.url,
            "user": self.user,
            "device": self.device,
            "network": self.network,
            "grant": self.grant,
            "intercept": self.intercept,
            "direction": self.direction,
            "relaxed": [{"rule": rule, "grant": grant} for rule, grant in self.relaxed],
        }


_new_decision = tuple.__new__


def strictest(decisions: Sequence[Decision]) -> Decision:
    """The most severe of several decisions for one request (its names: request host, Host
    header, SNI); on a tie the first, the request's own name, wins."""
    best = decisions[0]
    for d in decisions[1:]:
        if SEVERITY[d.action] > SEVERITY[best.action]:
            best = d
    return best


def decide(policy: Policy, index: CategoryIndex, facts: Facts, now: datetime) -> Decision:
    """Decide one request under one agency's policy at `now`.

    Rules with a `content` condition take part when the URL shows that content (a tracker
    announce, a `.torrent` link) or the request's own body does (`facts.kinds`: an upload); the
    rest of their work is done by `decide_content` once the response headers arrive.
    """
    kinds = detect_url_content(facts.url.path, facts.url.query) | facts.kinds
    decision = _decide(policy, index, facts, now, kinds, content_only=False)
    assert decision is not None  # the default always answers when content_only is False
    url = facts.url
    if decision.action != "block" and not port_allowed(policy.ports, url.scheme, url.port):
        # A port is a service: no list, rule or grant opens one the port policy keeps shut. A
        # block keeps its own rule, which says more about the site than its port does.
        ports = policy.ports.verdict
        decision = decision._replace(action=ports.action, rule=PORT_POLICY_RULE,
                                     clauses=ports.clauses, reason=ports.reason, step="ports",
                                     grant=None)
    return decision


def decide_content(
    policy: Policy, index: CategoryIndex, facts: Facts, kinds: frozenset[str], now: datetime
) -> Decision | None:
    """The decision of the first content rule that `kinds` meets, or None to keep the request's.

    Sites on the agency's allow list are not exempt: the allow list vouches for the site, not for
    what it serves (an installer through allow-listed web mail is still software). Sites on the
    deny list were refused already.
    """
    if not kinds:
        return None
    return _decide(policy, index, facts, now, kinds, content_only=True)


_MEMO_LIMIT = 65536
_UNSEEN = object()  # a memo miss, distinct from a remembered None ("in no network")


@dataclass(slots=True)
class _RuleTable:
    """What a policy's rules need per request, precomputed once per policy.

    Rules mostly test a handful of small facts (categories, window, device, groups, network,
    content kinds); only domain and URL conditions look at the host itself. So each request is
    reduced to those facts plus one bitmask saying which rules' domain/URL conditions hold, and the
    first matching rule for that key is remembered: the walk over the rules happens once per
    distinct key, not once per request.
    """

    domain_bits: dict[str, int]
    url_bits: dict[str, tuple[tuple[str, int], ...]]
    uses_users: bool
    grants_by_rule: dict[str, tuple[Grant, ...]]
    selections: dict[tuple[Any, ...], tuple[int, ...]]
    networks: dict[IPAddress | None, Network | None]
    sites: dict[tuple[str, str], _SiteFacts]
    sites_index: CategoryIndex | None = None  # the index `sites` was computed with


class _SiteFacts(NamedTuple):
    """Everything a policy derives from the host and path alone (cached per host and target)."""

    classification: Classification
    categories: tuple[str, ...]
    listed: Step | None  # "deny-list", "allow-list" or None
    never_decrypt: bool
    site_mask: int


def _rule_table(policy: Policy) -> _RuleTable:
    table = policy.memo.get("rules")
    if table is None:
        domain_bits: dict[str, int] = {}
        urls: dict[str, list[tuple[str, int]]] = {}
        for i, rule in enumerate(policy.rules):
            site = rule.match.site
            if site is None:
                continue
            for domain in site.domains:
                domain_bits[domain] = domain_bits.get(domain, 0) | (1 << i)
            for host, prefix in site.urls:
                urls.setdefault(host, []).append((prefix, 1 << i))
        grants: dict[str, list[Grant]] = {}
        for grant in policy.grants:
            for rule_id in grant.rules:
                grants.setdefault(rule_id, []).append(grant)
        table = policy.memo["rules"] = _RuleTable(
            domain_bits=domain_bits,
            url_bits={host: tuple(entries) for host, entries in urls.items()},
            uses_users=any(rule.match.users is not None for rule in policy.rules),
            grants_by_rule={rule_id: tuple(found) for rule_id, found in grants.items()},
            selections={},
            networks={},
            sites={},
        )
    return table


def _site_facts(
    policy: Policy, table: _RuleTable, index: CategoryIndex, host: str, target: str
) -> _SiteFacts:
    """Classification and list/rule site matches for one host and target, computed once.

    A page load asks about the same host dozens of times; everything here depends only on the
    host, the path and query, and the (immutable) policy and index.
    """
    if table.sites_index is not index:  # a reloaded index: earlier classifications are stale
        table.sites.clear()
        table.sites_index = index
    key = (host, target)
    facts = table.sites.get(key)
    if facts is not None:
        return facts
    if policy.overrides is None:
        classification = index.classify(host, target)
    else:  # the agency's own additions, removals and re-categorisations of list entries
        classification = policy.overrides.classify(index, host, target)
    suffixes = host_suffixes(host)
    listed: Step | None = None
    if policy.deny is not None and policy.deny.site.holds((), suffixes, target):
        listed = "deny-list"
    elif policy.allow is not None and policy.allow.site.holds((), suffixes, target):
        listed = "allow-list"
    facts = _SiteFacts(
        classification=classification,
        categories=classification.categories or (UNCATEGORIZED,),
        listed=listed,
        never_decrypt=policy.never_decrypt is not None
        and policy.never_decrypt.holds(classification.all_categories, suffixes, target),
        site_mask=_site_mask(table, suffixes, target),
    )
    return remember(table.sites, key, facts, _MEMO_LIMIT)


def _site_mask(table: _RuleTable, suffixes: tuple[str, ...], target: str) -> int:
    """Bit i set when rule i's `domains` or `urls` condition holds for this host and target."""
    mask = 0
    if table.domain_bits or table.url_bits:
        for suffix in suffixes:
            mask |= table.domain_bits.get(suffix, 0)
            for prefix, bit in table.url_bits.get(suffix, ()):
                if target.startswith(prefix):
                    mask |= bit
    return mask


def _network(policy: Policy, table: _RuleTable, client: IPAddress | None) -> Network | None:
    found = table.networks.get(client, _UNSEEN)
    if found is not _UNSEEN:
        return found  # type: ignore[return-value]
    return remember(table.networks, client, policy.network_for(client), _MEMO_LIMIT)


def _decide(
    policy: Policy,
    index: CategoryIndex,
    facts: Facts,
    now: datetime,
    kinds: frozenset[str],
    *,
    content_only: bool,
) -> Decision | None:
    url = facts.url
    table = _rule_table(policy)
    site = _site_facts(policy, table, index, url.host, url.target)
    window = policy.schedule.window_at(now)
    network = _network(policy, table, facts.client)
    network_name = network.name if network else None
    device = facts.device or (network.device if network else None)
    user = facts.user.lower() if facts.user else None
    groups = policy.groups_of(user, facts.directory_groups)
    categories = site.categories
    direction = direction_of(policy, facts)

    def verdict(
        v: Verdict,
        step: Step,
        rule: str,
        grant: str | None = None,
        relaxed: tuple[tuple[str, str], ...] = (),
    ) -> Decision:
        # Positional, in Decision's field order: the keyword form costs a Python-level
        # __new__ call per decision (every field is checked by the engine and conformance tests).
        return _new_decision(Decision, (
            v.action, policy.agency, rule, v.clauses, v.reason, step, window, categories,
            site.classification.all_categories, site.classification.matched, url.host,
            str(url), user, device, network_name, grant,
            "never" if site.never_decrypt else "auto", direction, relaxed,
        ))

    def allow_listed() -> Decision:
        assert policy.allow is not None
        return verdict(policy.allow.verdict, "allow-list", "allow-list")

    mode = _CONTENT if content_only else _ALL
    if site.listed == "deny-list":
        if content_only:
            return None
        assert policy.deny is not None
        return verdict(policy.deny.verdict, "deny-list", "deny-list")
    if site.listed == "allow-list":
        # The allow list decides the site, not what the request or response carries: the
        # transfer rules (content, direction) still judge it.
        if not kinds and direction == "read":
            return None if content_only else allow_listed()
        mode = _CONTENT if content_only else _TRANSFER

    key = (
        mode,
        categories,
        window,
        device,
        user if table.uses_users else None,
        groups,
        network_name,
        kinds,
        direction,
        site.site_mask,
    )
    chain = table.selections.get(key)
    if chain is None:
        chain = _matching_chain(
            policy,
            table,
            mode,
            categories,
            window,
            device,
            user,
            groups,
            network_name,
            kinds,
            direction,
            site.site_mask,
        )
        remember(table.selections, key, chain, _MEMO_LIMIT)
    if not chain:
        if content_only:
            return None
        if mode == _TRANSFER:
            return allow_listed()
        return verdict(policy.default, "default", "default")

    rules = policy.rules
    if len(chain) == 1 and rules[chain[0]].id not in table.grants_by_rule:
        rule = rules[chain[0]]  # the common case: no grant could relax the rule that matched
        return verdict(Verdict(rule.action, rule.clauses, rule.reason), "rule", rule.id)
    best: Decision | None = None
    relaxed: list[tuple[str, str]] = []
    for i in chain:
        rule = rules[i]
        grant = _live_grant(policy, table, rule.id, user, groups, now)
        if grant is None:
            decided = verdict(
                Verdict(rule.action, rule.clauses, rule.reason), "rule", rule.id,
                relaxed=tuple(relaxed),
            )
            if best is None or SEVERITY[decided.action] > SEVERITY[best.action]:
                return decided
            return best
        relaxed_verdict = Verdict(
            grant.action,
            rule.clauses,
            f"{grant.reason} (exception approved by {grant.approved_by}, "
            f"until {grant.expires.isoformat()})",
        )
        decided = verdict(relaxed_verdict, "grant", rule.id, grant.id, tuple(relaxed))
        if best is None or SEVERITY[decided.action] > SEVERITY[best.action]:
            best = decided
        relaxed.append((rule.id, grant.id))
    assert best is not None  # the chain is not empty
    return best


def _live_grant(
    policy: Policy,
    table: _RuleTable,
    rule_id: str,
    user: str | None,
    groups: frozenset[str],
    now: datetime,
) -> Grant | None:
    """The first grant that relaxes `rule_id` for this user at `now`, if any."""
    for grant in table.grants_by_rule.get(rule_id, ()):
        # Holders first: the agency-local date costs a time-zone conversion, needed only when
        # this user could hold the grant.
        if grant.holders_include(user, groups) and grant.applies(
            rule_id, user, groups, policy.schedule.local(now).date()
        ):
            return grant
    return None


_ALL, _TRANSFER, _CONTENT = 0, 1, 2
"""Which rules a walk considers: all of them; only transfer rules (an allow-listed site, for what
the request carries); only content rules (a response, once its headers arrive)."""


def direction_of(policy: Policy, facts: Facts) -> str:
    """`read`, `upload`, or `publish` (an upload to one of the policy's publishing endpoints)."""
    if not facts.sends_body:
        return "read"
    url = facts.url
    if policy.publishing.service_for(url.host, url.path, facts.method) is not None:
        return "publish"
    return "upload"


def _matching_chain(
    policy: Policy,
    table: _RuleTable,
    mode: int,
    categories: tuple[str, ...],
    window: str,
    device: str | None,
    user: str | None,
    groups: frozenset[str],
    network: str | None,
    kinds: frozenset[str],
    direction: str,
    site_mask: int,
) -> tuple[int, ...]:
    """The matching rules a decision may walk (the walk the memo saves): every matching rule up
    to and including the first that no grant names, since nothing can relax that one.

    It depends only on the memo key's facts; whether this user holds a live grant for a rule
    in it is asked per request.
    """
    found: list[int] = []
    for i, rule in enumerate(policy.rules):
        if mode == _CONTENT and rule.match.content is None:
            continue
        if mode == _TRANSFER and not rule.match.is_transfer:
            continue
        if _holds(rule, i, categories, window, device, groups, user, network, kinds, direction,
                  site_mask):
            found.append(i)
            if rule.id not in table.grants_by_rule:
                break
    return tuple(found)


def _holds(
    rule: Rule,
    index: int,
    categories: tuple[str, ...],
    window: str,
    device: str | None,
    groups: frozenset[str],
    user: str | None,
    network: str | None,
    kinds: frozenset[str],
    direction: str,
    site_mask: int,
) -> bool:
    """Whether every condition of rule number `index` holds."""
    m = rule.match
    if m.content is not None and m.content.isdisjoint(kinds):
        return False
    if m.directions is not None and direction not in m.directions:
        return False
    if m.windows is not None and window not in m.windows:
        return False
    if m.devices is not None and device not in m.devices:
        return False
    if m.users is not None and user not in m.users:
        return False
    if m.groups is not None and m.groups.isdisjoint(groups):
        return False
    if m.networks is not None and network not in m.networks:
        return False
    if m.site is None:
        return True
    if m.site.categories and not m.site.categories.isdisjoint(categories):
        return True
    return bool(site_mask >> index & 1)
