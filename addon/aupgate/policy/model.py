"""The policy model: one agency's validated policy as immutable data.

`loader.py` builds it from YAML; the engine decides with it. Nothing here reads files or clocks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from aupgate.categories.ids import CATEGORY_IDS, UNCATEGORIZED
from aupgate.categories.overrides import CategoryOverrides
from aupgate.directory.config import DirectorySettings, KerberosSettings
from aupgate.directory.membership import reference_key
from aupgate.errors import Problem
from aupgate.hostname import is_under
from aupgate.memo import remember
from aupgate.publishing import Publishing
from aupgate.rewrites import RequestControls

from .schedule import Schedule

Action = Literal["allow", "log", "warn", "block"]
ACTIONS: tuple[Action, ...] = ("allow", "log", "warn", "block")
"""Every action, least severe first: the one order of severity (the strictest decision wins,
reports list actions most severe first)."""
SEVERITY: dict[str, int] = {action: rank for rank, action in enumerate(ACTIONS)}
STOPPING: frozenset[str] = frozenset({"warn", "block"})
"""The actions that stop a request until something happens (a stated reason, or never)."""
ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
"""What an agency, rule, group or grant id may be."""
CLAUSE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")
DEVICES: tuple[str, ...] = ("state", "personal")
DIRECTIONS: tuple[str, ...] = ("read", "upload", "publish")
"""What a request does: sends no body (`read`), sends one (`upload`), or sends one to a
publishing endpoint (`publish`, which is an upload too: `aupgate.publishing`)."""
POLICY_CATEGORIES: frozenset[str] = frozenset((*CATEGORY_IDS, UNCATEGORIZED))

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Document:
    """The written policy a file encodes."""

    title: str
    date: str
    source: str


@dataclass(frozen=True, slots=True)
class Clause:
    """One clause of the document, and how (or whether) the proxy enforces it."""

    id: str
    title: str
    text: str
    not_enforceable: str | None = None
    proxy_limits: str | None = None


@dataclass(frozen=True, slots=True)
class Network:
    """A client network and what being on it says about the device."""

    name: str
    cidrs: tuple[IPNetwork, ...]
    device: str | None = None
    department: str | None = None
    line: int | None = field(default=None, compare=False)  # where the file defines it


@dataclass(frozen=True, slots=True)
class Group:
    """A policy group: the users its YAML `members` list names, and everyone in the directory
    groups its `directory` list names (by name or DN, as written; `directory_keys` are their
    match keys, see `aupgate.directory.membership`)."""

    name: str
    description: str
    members: frozenset[str]
    directory: tuple[str, ...] = ()
    directory_keys: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Site:
    """What a site condition or allow/deny list covers: categories, domains, URL prefixes."""

    categories: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    urls: tuple[tuple[str, str], ...] = ()  # (host, path prefix)

    def holds(self, categories: tuple[str, ...], suffixes: tuple[str, ...], path: str) -> bool:
        """True when the request's categories, host suffixes or URL hit this site."""
        if self.categories and not self.categories.isdisjoint(categories):
            return True
        if self.domains and not self.domains.isdisjoint(suffixes):
            return True
        if not self.urls:
            return False
        return any(host in suffixes and path.startswith(prefix) for host, prefix in self.urls)

    def covers(self, other: Site) -> bool:
        """True when every request `other` holds for, this holds for too."""
        if not other.categories <= self.categories:
            return False
        if not all(_domain_under(d, self.domains) for d in other.domains):
            return False
        return all(
            _domain_under(host, self.domains)
            or any(is_under(host, h) and path.startswith(p) for h, p in self.urls)
            for host, path in other.urls
        )

    def __bool__(self) -> bool:
        return bool(self.categories or self.domains or self.urls)


def _domain_under(host: str, domains: Iterable[str]) -> bool:
    return any(is_under(host, d) for d in domains)


@dataclass(frozen=True, slots=True)
class Match:
    """A rule's conditions; None means "any". All given conditions must hold."""

    site: Site | None = None
    windows: frozenset[str] | None = None
    devices: frozenset[str] | None = None
    groups: frozenset[str] | None = None
    users: frozenset[str] | None = None
    networks: frozenset[str] | None = None
    content: frozenset[str] | None = None
    directions: frozenset[str] | None = None  # resolved: `upload` includes `publish`

    @property
    def is_transfer(self) -> bool:
        """A rule about what the request or response carries (`content`, `direction`): such rules
        are judged on allow-listed sites too (docs/policy-language.md, "Precedence")."""
        return self.content is not None or self.directions is not None

    def covers(self, other: Match) -> bool:
        """True when this match holds for every request `other` holds for.

        A content rule is never covered by a rule without one: content rules are consulted again
        when the response headers arrive, after the request-time rule has let the request through.
        Likewise a transfer rule is never covered by a rule that is not one: on allow-listed
        sites only transfer rules are walked.
        """
        if other.content is not None and self.content is None:
            return False
        if other.is_transfer and not self.is_transfer:
            return False
        if self.site is not None and (other.site is None or not self.site.covers(other.site)):
            return False
        pairs = (
            (self.windows, other.windows),
            (self.devices, other.devices),
            (self.groups, other.groups),
            (self.users, other.users),
            (self.networks, other.networks),
            (self.content, other.content),
            (self.directions, other.directions),
        )
        return all(
            mine is None or (theirs is not None and theirs <= mine) for mine, theirs in pairs
        )


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    clauses: tuple[str, ...]
    match: Match
    action: Action
    reason: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """A written exception: these users or groups are excused from these rules until a date."""

    id: str
    rules: frozenset[str]
    users: frozenset[str]
    groups: frozenset[str]
    action: Action
    approved_by: str
    reason: str
    expires: date

    def holders_include(self, user: str | None, groups: frozenset[str]) -> bool:
        """Whether the user, or one of their groups, is named by this grant."""
        return (user is not None and user in self.users) or not self.groups.isdisjoint(groups)

    def applies(self, rule_id: str, user: str | None, groups: frozenset[str], today: date) -> bool:
        if rule_id not in self.rules or today > self.expires:
            return False
        return self.holders_include(user, groups)


@dataclass(frozen=True, slots=True)
class Budget:
    """A daily personal-use budget: activity in these categories (and windows, devices) that a
    rule let through counts, per user (or client without a login) and agency-local day; once
    `limit` is reached, such requests get `action` until midnight. See `aupgate.budgets`."""

    id: str
    clauses: tuple[str, ...]
    categories: frozenset[str]
    windows: frozenset[str] | None
    devices: frozenset[str] | None
    unit: Literal["minutes", "bytes"]
    limit: int  # distinct minutes with activity, or bytes of response bodies
    action: Action  # block (the budget page) or log (flagged for review)
    reason: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A fixed outcome with its justification: the default, or an allow/deny list."""

    action: Action
    clauses: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class SiteList:
    site: Site
    verdict: Verdict
    overrides: frozenset[str] = frozenset()
    """Allow list only: the block rules its entries are meant to lift (the agency's own mail is
    webmail too); lint reports any other block rule an entry's category falls under."""


PORT_POLICY_RULE = "port-policy"
"""The rule id a decision made by the port policy carries (`Policy.ports`)."""


@dataclass(frozen=True, slots=True)
class PortPolicy:
    """Which ports the gateway opens, as Squid's `SSL_ports` and `Safe_ports` do.

    `tunnel`: ports a CONNECT (and an https URL) may name, 443 always among them. `http`: ports a
    plain-HTTP URL may name, 80 always among them. `raw`: tunnel ports on which bytes that are
    neither TLS nor HTTP may be relayed (none unless listed). Anything else gets `verdict`.
    """

    tunnel: frozenset[int] = frozenset({443})
    http: frozenset[int] = frozenset({80})
    raw: frozenset[int] = frozenset()
    verdict: Verdict = Verdict(
        "block", (), "Only the web's own ports (80 for HTTP, 443 for HTTPS) are open through "
        "the gateway; this policy opens no others.")


@dataclass(frozen=True, slots=True)
class ProxyEndpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PacSettings:
    """How browsers reach the gateway: what `aupgate pac` writes into the PAC file.

    `on_proxy_failure` is the explicit choice the issue asks for: "closed" lists only proxies (no
    proxy reachable means no web), "direct" appends DIRECT (the web keeps working, unfiltered).
    """

    proxies: tuple[ProxyEndpoint, ...]
    on_proxy_failure: Literal["closed", "direct"] = "closed"
    spread: Literal["none", "hash"] = "none"
    intranet_networks: tuple[IPNetwork, ...] = ()
    intranet_domains: tuple[str, ...] = ()
    bypass: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HelpDesk:
    """Whom an employee asks about a block, as the agency's pages show it (`help_desk`).

    `logo` is what an `<img src>` may carry: a `data:` URI made from an image file the policy
    names (checked and size-limited when loaded) or an `https:` URL; never SVG.
    """

    name: str
    phone: str | None = None
    link: str | None = None
    logo: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """One agency's policy, validated. Pure data: the engine does the deciding."""

    agency: str
    name: str
    document: Document
    contact: str
    schedule: Schedule
    clauses: Mapping[str, Clause]
    rules: tuple[Rule, ...]
    default: Verdict
    networks: tuple[Network, ...] = ()
    groups: Mapping[str, Group] = field(default_factory=dict)
    grants: tuple[Grant, ...] = ()
    allow: SiteList | None = None
    deny: SiteList | None = None
    never_decrypt: Site | None = None
    transfer_limit_bytes: int | None = None
    pac: PacSettings | None = None
    overrides: CategoryOverrides | None = None  # the agency's amendments to the shared lists
    help_desk: HelpDesk | None = None
    publishing: Publishing = field(default_factory=Publishing)  # where an upload publishes
    controls: RequestControls = field(default_factory=RequestControls)  # tenants, safe search
    ports: PortPolicy = PortPolicy()
    budgets: tuple[Budget, ...] = ()
    directory: DirectorySettings | None = None  # logins checked against LDAP / AD (`directory:`)
    kerberos: KerberosSettings | None = None  # single sign-on (`kerberos:`)
    source: str = ""
    digest: str = ""
    _user_groups: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False)
    # directory group match key -> the policy groups that name that directory group
    _directory_groups: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False)
    # Derived lookup tables and memoised rule selections, filled by the engine on first use: a
    # policy is immutable, so anything computed from it stays true for its lifetime.
    memo: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def groups_of(self, user: str | None,
                  directory_keys: frozenset[str] = frozenset()) -> frozenset[str]:
        """The policy groups a (case-folded) user belongs to: those listing them in `members`,
        and those naming one of their directory groups (`directory_keys`, the match keys of the
        groups the directory reported for the login)."""
        listed = self._user_groups.get(user, _NO_GROUPS) if user is not None else _NO_GROUPS
        if not directory_keys or not self._directory_groups:
            return listed
        memo: dict[tuple[str | None, frozenset[str]], frozenset[str]] = self.memo.setdefault(
            "directory_groups", {})
        key = (user, directory_keys)
        found = memo.get(key)
        if found is None:
            named = self._directory_groups
            found = listed.union(*(named[k] for k in directory_keys if k in named))
            remember(memo, key, found, _GROUP_MEMO_LIMIT)
        return found

    def group_sources(self, user: str | None,
                      directory_keys: frozenset[str] = frozenset()) -> dict[str, list[str]]:
        """For `explain`: each policy group the user is in, and why (`members`, or each
        directory reference of the group the user's directory groups meet)."""
        sources: dict[str, list[str]] = {}
        for group in self.groups.values():
            why = ["members"] if user is not None and user in group.members else []
            why += [ref for ref, key in zip(group.directory, _keys_in_order(group), strict=True)
                    if key in directory_keys]
            if why:
                sources[group.name] = why
        return sources

    def network_for(self, client: IPAddress | None) -> Network | None:
        """The most specific network containing `client`."""
        if client is None:
            return None
        best: tuple[int, Network] | None = None
        for network in self.networks:
            for cidr in network.cidrs:
                inside = client.version == cidr.version and client in cidr
                if inside and (best is None or cidr.prefixlen > best[0]):
                    best = (cidr.prefixlen, network)
        return best[1] if best else None

    def grant_for(
        self, rule_id: str, user: str | None, groups: frozenset[str], today: date
    ) -> Grant | None:
        for grant in self.grants:
            if grant.applies(rule_id, user, groups, today):
                return grant
        return None

    def enforcing(self, clause_id: str) -> tuple[str, ...]:
        """Ids of the rules (and lists/default) that cite a clause."""
        names = [rule.id for rule in self.rules if clause_id in rule.clauses]
        names += [budget.id for budget in self.budgets if clause_id in budget.clauses]
        if self.deny and clause_id in self.deny.verdict.clauses:
            names.append("deny-list")
        if self.allow and clause_id in self.allow.verdict.clauses:
            names.append("allow-list")
        if clause_id in self.default.clauses:
            names.append("default")
        names += self.controls.citing(clause_id)
        if clause_id in self.ports.verdict.clauses:
            names.append(PORT_POLICY_RULE)
        return tuple(names)


_NO_GROUPS: frozenset[str] = frozenset()
_GROUP_MEMO_LIMIT = 4096


def _keys_in_order(group: Group) -> list[str]:
    """The match key of each of the group's directory references, in the order written."""
    return [reference_key(ref) for ref in group.directory]


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Every agency's policy, plus the warnings that did not stop them loading."""

    policies: Mapping[str, Policy]
    warnings: tuple[Problem, ...] = ()
    retired: frozenset[str] = frozenset()  # agencies a reload may drop (retirement.py)

    def agency_for(self, client: IPAddress | None) -> Policy | None:
        """The agency whose networks contain `client` (most specific prefix wins)."""
        best: tuple[int, Policy] | None = None
        for policy in self.policies.values():
            network = policy.network_for(client)
            if network is None or client is None:
                continue
            prefix = max(c.prefixlen for c in network.cidrs if client in c)
            if best is None or prefix > best[0]:
                best = (prefix, policy)
        return best[1] if best else None
