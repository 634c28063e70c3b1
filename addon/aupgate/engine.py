"""Deciding: facts about one request in, one cited decision out.

`decide` is pure and runs for every request the proxy sees, so it does each piece of work once
(classification, window, host suffixes, groups) and then walks the rules in file order. The
precedence it implements is the one `docs/policy-language.md` documents: deny list, allow list,
first matching rule (relaxed by a live grant), default.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .categories import UNCATEGORIZED, CategoryIndex, Classification
from .content import detect_content
from .normalise import Url
from .policy import Action, Policy, Rule, Verdict

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Step = Literal["deny-list", "allow-list", "rule", "grant", "default"]


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known about a request before deciding."""

    url: Url
    user: str | None = None
    client: IPAddress | None = None
    device: str | None = None  # stated device class; otherwise the client's network says


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome and everything needed to explain it, audit it and show it on a page."""

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
        }


def host_suffixes(host: str) -> tuple[str, ...]:
    """`a.b.c` -> (`a.b.c`, `b.c`, `c`): the names a domain condition can match on."""
    suffixes = [host]
    dot = host.find(".")
    while dot != -1:
        suffixes.append(host[dot + 1 :])
        dot = host.find(".", dot + 1)
    return tuple(suffixes)


def decide(policy: Policy, index: CategoryIndex, facts: Facts, now: datetime) -> Decision:
    """Decide one request under one agency's policy at `now`.

    Rules with a `content` condition take part when the URL alone shows that content (a tracker
    announce, a link to an `.exe`); the rest of their work is done by `decide_content` once the
    response headers arrive.
    """
    url = facts.url
    classification = index.classify(url.host, url.target)
    kinds = detect_content(
        content_type=None,
        content_length=None,
        disposition=None,
        path=url.path,
        query=url.query,
        limit_bytes=None,
    )
    decision = _decide(policy, classification, facts, now, kinds, content_only=False)
    assert decision is not None  # the default always answers when content_only is False
    return decision


def decide_content(
    policy: Policy, index: CategoryIndex, facts: Facts, kinds: frozenset[str], now: datetime
) -> Decision | None:
    """The decision of the first content rule that `kinds` meets, or None to keep the request's.

    Sites on the agency's allow list are exempt: the agency vouched for what they serve.
    """
    if not kinds:
        return None
    classification = index.classify(facts.url.host, facts.url.target)
    return _decide(policy, classification, facts, now, kinds, content_only=True)


def _decide(
    policy: Policy,
    classification: Classification,
    facts: Facts,
    now: datetime,
    kinds: frozenset[str],
    *,
    content_only: bool,
) -> Decision | None:
    url = facts.url
    window = policy.schedule.window_at(now)
    network = policy.network_for(facts.client)
    device = facts.device or (network.device if network else None)
    user = facts.user.lower() if facts.user else None
    groups = policy.groups_of(user)
    suffixes = host_suffixes(url.host)
    categories = classification.categories or (UNCATEGORIZED,)
    never_decrypt = policy.never_decrypt is not None and policy.never_decrypt.holds(
        classification.all_categories, suffixes, url.target
    )
    intercept = "never" if never_decrypt else "auto"

    def verdict(v: Verdict, step: Step, rule: str, grant: str | None = None) -> Decision:
        return Decision(
            action=v.action,
            agency=policy.agency,
            rule=rule,
            clauses=v.clauses,
            reason=v.reason,
            step=step,
            window=window,
            categories=categories,
            all_categories=classification.all_categories,
            matched=classification.matched,
            host=url.host,
            url=str(url),
            user=user,
            device=device,
            network=network.name if network else None,
            grant=grant,
            intercept=intercept,
        )

    if policy.deny is not None and policy.deny.site.holds((), suffixes, url.target):
        return None if content_only else verdict(policy.deny.verdict, "deny-list", "deny-list")
    if policy.allow is not None and policy.allow.site.holds((), suffixes, url.target):
        return None if content_only else verdict(policy.allow.verdict, "allow-list", "allow-list")

    network_name = network.name if network else None
    for rule in policy.rules:
        if content_only and rule.match.content is None:
            continue
        if _holds(
            rule,
            categories,
            suffixes,
            url.target,
            window,
            device,
            groups,
            user,
            network_name,
            kinds,
        ):
            grant = policy.grant_for(rule.id, user, groups, policy.schedule.local(now).date())
            if grant is not None:
                relaxed = Verdict(
                    grant.action,
                    rule.clauses,
                    f"{grant.reason} (exception approved by {grant.approved_by}, "
                    f"until {grant.expires.isoformat()})",
                )
                return verdict(relaxed, "grant", rule.id, grant.id)
            return verdict(Verdict(rule.action, rule.clauses, rule.reason), "rule", rule.id)
    return None if content_only else verdict(policy.default, "default", "default")


def _holds(
    rule: Rule,
    categories: tuple[str, ...],
    suffixes: tuple[str, ...],
    path: str,
    window: str,
    device: str | None,
    groups: frozenset[str],
    user: str | None,
    network: str | None,
    kinds: frozenset[str],
) -> bool:
    """Whether every condition of a rule holds; cheapest conditions first."""
    m = rule.match
    if m.content is not None and m.content.isdisjoint(kinds):
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
    return m.site is None or m.site.holds(categories, suffixes, path)
