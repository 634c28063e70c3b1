"""The strict loader that turns an agency's YAML file into a `Policy`.

The loader never stops at the first mistake: it collects every problem with file, line and field,
so an administrator fixes a file in one pass. A policy with errors is never returned; a broken
reload therefore leaves the last good policy in force. See `docs/policy-language.md`. The model
itself is in `policy_model.py`; its names are re-exported here, so callers import one module.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .categories.overrides import read_overrides
from .content import CONTENT_KINDS
from .errors import PolicyError, Problem, UrlError, did_you_mean
from .hostname import normalise_host
from .policy_model import (
    ACTIONS,
    DEVICES,
    POLICY_CATEGORIES,
    Action,
    Clause,
    Document,
    Grant,
    Group,
    IPAddress,
    IPNetwork,
    Match,
    Network,
    PacSettings,
    Policy,
    PolicySet,
    ProxyEndpoint,
    Rule,
    Site,
    SiteList,
    Verdict,
)
from .schedule import ANY, DAY_NAMES, WINDOWS, Interval, Schedule, parse_interval
from .yamlsource import FieldReader, join_field, kind_of, line_of, load_yaml

__all__ = [
    "ACTIONS",
    "DEVICES",
    "POLICY_CATEGORIES",
    "Action",
    "Clause",
    "Document",
    "Grant",
    "Group",
    "IPAddress",
    "IPNetwork",
    "Match",
    "Network",
    "PacSettings",
    "Policy",
    "PolicySet",
    "ProxyEndpoint",
    "Rule",
    "Site",
    "SiteList",
    "Verdict",
    "load_policy",
    "load_policy_dir",
]

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_CLAUSE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")


# --------------------------------------------------------------------------- the loader

_TOP_KEYS = (
    "agency",
    "name",
    "document",
    "contact",
    "timezone",
    "schedule",
    "identity",
    "clauses",
    "rules",
    "default",
    "allow",
    "deny",
    "grants",
    "never_decrypt",
    "pac",
    "limits",
    "categories",
)
_REQUIRED_TOP = (
    "agency",
    "name",
    "document",
    "contact",
    "timezone",
    "schedule",
    "clauses",
    "rules",
    "default",
)


def load_policy(path: Path, *, today: date) -> tuple[Policy | None, list[Problem]]:
    """Read and validate one policy file.

    Returns the policy (None if there is any error) and every problem found, warnings included.
    `today` decides which grants have expired.
    """
    raw_bytes = path.read_bytes() if path.is_file() else b""
    try:
        data = load_yaml(path)
    except PolicyError as exc:
        return None, list(exc.problems)
    reader = FieldReader(str(path))
    if not isinstance(data, dict):
        message = f"a policy file must be a mapping of keys, got {kind_of(data)}"
        reader.problem(data, None, "", message)
        return None, reader.problems
    top = reader.mapping({"": data}, "", "", _TOP_KEYS, _REQUIRED_TOP)
    assert top is not None  # data is a mapping
    policy = _build_policy(reader, top, path, today)
    if policy is not None:
        policy = _with_source(policy, str(path), hashlib.sha256(raw_bytes).hexdigest())
    errors = [p for p in reader.problems if p.severity == "error"]
    return (None if errors else policy), reader.problems


def _with_source(policy: Policy, source: str, digest: str) -> Policy:
    return replace(policy, source=source, digest=digest)


def _build_policy(
    reader: FieldReader, top: dict[str, Any], path: Path, today: date
) -> Policy | None:
    agency = reader.string(top, "agency", "")
    if agency is not None:
        if not _ID.match(agency):
            reader.problem(top, "agency", "agency", f"'{agency}' is not a valid id ([a-z0-9-]+)")
        elif agency != path.stem:
            reader.problem(
                top, "agency", "agency", f"'{agency}' does not match the file name '{path.name}'"
            )
    name = reader.string(top, "name", "")
    contact = reader.string(top, "contact", "")
    document = _read_document(reader, top)
    schedule = _read_schedule(reader, top)
    networks, groups = _read_identity(reader, top)
    clauses = _read_clauses(reader, top)
    scope = _RuleScope(
        schedule=schedule,
        # Rules may name the file's window sets even when another schedule key is wrong.
        set_names=tuple(schedule.window_sets) if schedule else _window_set_names(top),
        networks=tuple(networks),
        groups=groups,
        possible=schedule.possible_windows() if schedule else frozenset(WINDOWS),
    )
    rules = _read_rules(reader, top, scope)
    default = _read_verdict(reader, top, "default", require_action=True)
    allow = _read_site_list(reader, top, "allow", "allow")
    deny = _read_site_list(reader, top, "deny", "block")
    grants = _read_grants(reader, top, rules, groups, today)
    never_decrypt = _read_never_decrypt(reader, top)
    pac = _read_pac(reader, top)
    limit = _read_limits(reader, top)
    overrides, override_problems = read_overrides(top, reader.file)
    reader.problems += override_problems
    _check_clause_map(reader, top, clauses, rules, default, allow, deny)
    _check_lists_disjoint(reader, top, allow, deny)
    if None in (agency, name, contact, document, schedule, default):
        return None
    assert agency and name and contact and document and schedule and default  # for mypy
    user_groups: dict[str, set[str]] = {}
    for group in groups.values():
        for member in group.members:
            user_groups.setdefault(member, set()).add(group.name)
    return Policy(
        agency=agency,
        name=name,
        document=document,
        contact=contact,
        schedule=schedule,
        clauses=clauses,
        rules=tuple(rules),
        default=default,
        networks=tuple(networks),
        groups=groups,
        grants=tuple(grants),
        allow=allow,
        deny=deny,
        never_decrypt=never_decrypt,
        transfer_limit_bytes=limit,
        pac=pac,
        overrides=overrides,
        _user_groups={u: frozenset(g) for u, g in user_groups.items()},
    )


def _read_document(reader: FieldReader, top: dict[str, Any]) -> Document | None:
    doc = reader.mapping(
        top, "document", "document", ("title", "date", "source"), ("title", "source")
    )
    if doc is None:
        return None
    title = reader.string(doc, "title", "document")
    source = reader.string(doc, "source", "document")
    when = doc.get("date")
    if title is None or source is None:
        return None
    return Document(title=title, date=str(when) if when is not None else "", source=source)


_SCHEDULE_KEYS = ("work_days", "work_hours", "lunch", "breaks", "holidays", "window_sets")


def _read_schedule(reader: FieldReader, top: dict[str, Any]) -> Schedule | None:
    zone_name = reader.string(top, "timezone", "")
    zone: ZoneInfo | None = None
    if zone_name is not None:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            reader.problem(top, "timezone", "timezone", f"unknown time zone '{zone_name}'")
    sched = reader.mapping(top, "schedule", "schedule", _SCHEDULE_KEYS, ("work_days", "work_hours"))
    if sched is None:
        return None
    days = reader.choices(sched, "work_days", "schedule", DAY_NAMES, "day")
    hours = _interval(reader, sched, "work_hours", "schedule.work_hours", sched.get("work_hours"))
    lunch = _interval(reader, sched, "lunch", "schedule.lunch", sched.get("lunch"))
    breaks: list[tuple[int, Interval]] = []  # (index in the file, interval)
    for i, text in reader.strings(sched, "breaks", "schedule"):
        interval = _interval(reader, sched["breaks"], i, f"schedule.breaks[{i}]", text)
        if interval is not None:
            breaks.append((i, interval))
    holidays = _read_holidays(reader, sched)
    if hours is not None:
        _check_day_shape(reader, sched, hours, lunch, breaks)
    sets = _read_window_sets(reader, sched)
    if zone is None or days is None or hours is None:
        return None
    return Schedule(
        timezone=zone,
        work_days=frozenset(DAY_NAMES.index(d) for d in days),
        work_hours=hours,
        lunch=lunch,
        breaks=tuple(sorted((b for _, b in breaks), key=lambda b: b.start)),
        holidays=holidays,
        window_sets=sets,
    )


def _interval(
    reader: FieldReader, parent: object, key: str | int, field: str, value: object
) -> Interval | None:
    if value is None:
        return None
    if not isinstance(value, str):
        reader.problem(parent, key, field, f"expected HH:MM-HH:MM, got {kind_of(value)}")
        return None
    try:
        return parse_interval(value)
    except ValueError as exc:
        reader.problem(parent, key, field, str(exc))
        return None


def _check_day_shape(
    reader: FieldReader,
    sched: dict[str, Any],
    hours: Interval,
    lunch: Interval | None,
    breaks: list[tuple[int, Interval]],
) -> None:
    """Lunch and breaks must sit inside work hours and never overlap one another."""
    named: list[tuple[str, object, str | int, Interval]] = []
    if lunch is not None:
        named.append(("schedule.lunch", sched, "lunch", lunch))
    named += [(f"schedule.breaks[{i}]", sched["breaks"], i, b) for i, b in breaks]
    for where, parent, key, interval in named:
        if not interval.within(hours):
            reader.problem(parent, key, where, f"{interval} is not inside work_hours {hours}")
    for i, (field_a, _pa, _ka, a) in enumerate(named):
        for field_b, parent_b, key_b, b in named[i + 1 :]:
            if a.overlaps(b):
                reader.problem(parent_b, key_b, field_b, f"{b} overlaps {field_a} {a}")


def _read_holidays(reader: FieldReader, sched: dict[str, Any]) -> frozenset[date]:
    value = sched.get("holidays")
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        reader.problem(
            sched,
            "holidays",
            "schedule.holidays",
            f"expected a list of dates, got {kind_of(value)}",
        )
        return frozenset()
    found: set[date] = set()
    for i, item in enumerate(value):
        if isinstance(item, date) and not isinstance(item, datetime):
            day = item
        else:
            try:
                day = date.fromisoformat(str(item))
            except ValueError:
                reader.problem(
                    value, i, f"schedule.holidays[{i}]", f"'{item}' is not a date (YYYY-MM-DD)"
                )
                continue
        if day in found:
            reader.problem(value, i, f"schedule.holidays[{i}]", f"{day} is listed twice")
        found.add(day)
    return frozenset(found)


def _read_window_sets(reader: FieldReader, sched: dict[str, Any]) -> dict[str, frozenset[str]]:
    sets_raw = reader.mapping(
        sched, "window_sets", "schedule.window_sets", _any_keys(sched.get("window_sets"))
    )
    sets: dict[str, frozenset[str]] = {}
    if sets_raw is None:
        return sets
    for name in sets_raw:
        field = f"schedule.window_sets.{name}"
        if name in WINDOWS or name == ANY:
            reader.problem(
                sets_raw, name, field, f"'{name}' is a window name and cannot name a set"
            )
            continue
        chosen = reader.choices(sets_raw, name, "schedule.window_sets", WINDOWS, "window")
        sets[name] = chosen or frozenset()
    return sets


def _any_keys(value: object) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, dict) else ()


def _window_set_names(top: Mapping[str, Any]) -> tuple[str, ...]:
    sched = top.get("schedule")
    return _any_keys(sched.get("window_sets")) if isinstance(sched, dict) else ()


_NETWORK_KEYS = ("name", "cidrs", "device", "department")
_GROUP_KEYS = ("description", "members")


def _read_identity(
    reader: FieldReader, top: dict[str, Any]
) -> tuple[list[Network], dict[str, Group]]:
    ident = reader.mapping(top, "identity", "identity", ("networks", "groups"))
    networks: list[Network] = []
    groups: dict[str, Group] = {}
    if ident is None:
        return networks, groups
    raw_networks = ident.get("networks", [])
    if not isinstance(raw_networks, list):
        reader.problem(
            ident, "networks", "identity.networks", f"expected a list, got {kind_of(raw_networks)}"
        )
        raw_networks = []
    seen_prefixes: dict[IPNetwork, str] = {}
    for i, _item in enumerate(raw_networks):
        field = f"identity.networks[{i}]"
        item = reader.mapping(raw_networks, i, field, _NETWORK_KEYS, ("name", "cidrs"))
        if item is None:
            continue
        name = reader.string(item, "name", field)
        if name is not None and any(n.name == name for n in networks):
            reader.problem(item, "name", f"{field}.name", f"network '{name}' is defined twice")
        cidrs: list[IPNetwork] = []
        for j, text in reader.strings(item, "cidrs", field):
            try:
                cidr = ipaddress.ip_network(text, strict=True)
            except ValueError as exc:
                reader.problem(item["cidrs"], j, f"{field}.cidrs[{j}]", f"bad CIDR '{text}': {exc}")
                continue
            if cidr in seen_prefixes:
                reader.problem(
                    item["cidrs"],
                    j,
                    f"{field}.cidrs[{j}]",
                    f"{cidr} is already in network '{seen_prefixes[cidr]}'",
                )
            seen_prefixes[cidr] = name or field
            cidrs.append(cidr)
        device = reader.string(item, "device", field)
        if device is not None and device not in DEVICES:
            reader.problem(
                item,
                "device",
                f"{field}.device",
                f"unknown device class '{device}' (one of: {', '.join(DEVICES)})",
            )
        if name is not None and cidrs:
            department = reader.string(item, "department", field)
            networks.append(
                Network(name, tuple(cidrs), device, department, line_of(raw_networks, i))
            )
    raw_groups = reader.mapping(ident, "groups", "identity.groups", _any_keys(ident.get("groups")))
    for gname in raw_groups or {}:
        field = f"identity.groups.{gname}"
        if not _ID.match(gname):
            reader.problem(raw_groups, gname, field, f"'{gname}' is not a valid id ([a-z0-9-]+)")
        group = reader.mapping(raw_groups, gname, field, _GROUP_KEYS, ("description",))
        if group is None:
            continue
        members = frozenset(m.lower() for _, m in reader.strings(group, "members", field))
        groups[gname] = Group(gname, reader.string(group, "description", field) or "", members)
    return networks, groups


_CLAUSE_KEYS = ("title", "text", "not_enforceable", "proxy_limits")


def _read_clauses(reader: FieldReader, top: dict[str, Any]) -> dict[str, Clause]:
    raw = reader.mapping(top, "clauses", "clauses", _any_keys(top.get("clauses")))
    clauses: dict[str, Clause] = {}
    for cid in raw or {}:
        field = f"clauses.{cid}"
        if not _CLAUSE_ID.match(cid):
            reader.problem(raw, cid, field, f"'{cid}' is not a valid clause id")
        item = reader.mapping(raw, cid, field, _CLAUSE_KEYS, ("title", "text"))
        if item is None:
            continue
        clauses[cid] = Clause(
            id=cid,
            title=reader.string(item, "title", field) or "",
            text=" ".join((reader.string(item, "text", field) or "").split()),
            not_enforceable=reader.string(item, "not_enforceable", field),
            proxy_limits=reader.string(item, "proxy_limits", field),
        )
        if clauses[cid].not_enforceable and clauses[cid].proxy_limits:
            reader.problem(
                item,
                "proxy_limits",
                f"{field}.proxy_limits",
                "a clause marked not_enforceable has no enforced part to limit",
            )
    if raw is not None and not clauses and isinstance(raw, dict) and not raw:
        reader.problem(top, "clauses", "clauses", "the clause map is empty")
    return clauses


_RULE_KEYS = ("id", "clauses", "match", "action", "reason")
_MATCH_KEYS = (
    "categories",
    "domains",
    "urls",
    "windows",
    "devices",
    "groups",
    "users",
    "networks",
    "content",
)


@dataclass(frozen=True, slots=True)
class _RuleScope:
    """What the rest of the file lets a rule name: its windows, window sets, networks, groups."""

    schedule: Schedule | None
    set_names: tuple[str, ...]
    networks: tuple[Network, ...]
    groups: Mapping[str, Group]
    possible: frozenset[str]  # the windows this schedule can ever be in


def _read_rules(reader: FieldReader, top: dict[str, Any], scope: _RuleScope) -> list[Rule]:
    raw = top.get("rules")
    if raw is None:
        return []
    if not isinstance(raw, list):
        reader.problem(top, "rules", "rules", f"expected a list, got {kind_of(raw)}")
        return []
    rules: list[Rule] = []
    for i, _item in enumerate(raw):
        field = f"rules[{i}]"
        item = reader.mapping(raw, i, field, _RULE_KEYS, ("id", "match", "action", "reason"))
        if item is None:
            continue
        before = len(reader.problems)
        rule = _read_rule(reader, item, field, scope)
        if rule is None:
            continue
        if any(r.id == rule.id for r in rules):
            reader.problem(item, "id", f"{field}.id", f"rule id '{rule.id}' is used twice")
            continue
        # A condition that could not be read is missing from rule.match; it is already
        # reported, and "covered" would then be a false second error.
        for earlier in rules if len(reader.problems) == before else ():
            if earlier.match.covers(rule.match):
                reader.problem(
                    item,
                    "match",
                    f"{field}.match",
                    f"can never match: rule '{earlier.id}' (line {earlier.line}) "
                    "comes first and covers every request this rule covers",
                )
                break
        rules.append(rule)
    return rules


def _read_rule(
    reader: FieldReader, item: dict[str, Any], field: str, scope: _RuleScope
) -> Rule | None:
    rid = reader.string(item, "id", field)
    if rid is not None and not _ID.match(rid):
        reader.problem(item, "id", f"{field}.id", f"'{rid}' is not a valid id ([a-z0-9-]+)")
    action = _read_action(reader, item, field)
    reason = reader.string(item, "reason", field)
    clauses = tuple(c for _, c in reader.strings(item, "clauses", field))
    if action in ("warn", "block") and not clauses:
        reader.problem(
            item, "action", f"{field}.clauses", f"a '{action}' rule must cite at least one clause"
        )
    mfield = f"{field}.match"
    m = reader.mapping(item, "match", mfield, _MATCH_KEYS)
    if m is None:
        return None
    if not m:
        reader.problem(item, "match", mfield, "must have at least one condition")
    match = _read_match(reader, m, mfield, scope)
    if rid is None or action is None or reason is None or match is None:
        return None
    return Rule(rid, clauses, match, action, reason, line_of(item))


def _read_action(reader: FieldReader, item: Mapping[str, Any], field: str) -> Action | None:
    action = reader.string(item, "action", field)
    if action is None:
        return None
    for known in ACTIONS:
        if action == known:
            return known
    reader.problem(
        item,
        "action",
        join_field(field, "action"),
        f"unknown action '{action}' (one of: {', '.join(ACTIONS)})",
    )
    return None


def _read_match(
    reader: FieldReader, m: dict[str, Any], field: str, scope: _RuleScope
) -> Match | None:
    site = _read_site(reader, m, field) if {"categories", "domains", "urls"} & m.keys() else None
    schedule = scope.schedule
    window_names = (*WINDOWS, ANY, *scope.set_names)
    windows = reader.choices(m, "windows", field, window_names, "window")
    # Without a usable schedule the names stay unresolved: never "any window", which would make
    # this rule look as if it covered the rules after it.
    resolved = windows
    if windows is not None and schedule is not None:
        resolved = schedule.resolve(windows)
        if windows and not (resolved & scope.possible):
            reader.problem(
                m,
                "windows",
                f"{field}.windows",
                f"can never match: this schedule has none of the windows {sorted(resolved)}",
            )
    devices = reader.choices(m, "devices", field, DEVICES, "device class")
    group_names = reader.choices(m, "groups", field, tuple(scope.groups), "group")
    users: frozenset[str] | None = None
    if "users" in m:
        users = frozenset(u.lower() for _, u in reader.strings(m, "users", field))
    network_names = reader.choices(
        m, "networks", field, tuple(n.name for n in scope.networks), "network"
    )
    content = reader.choices(m, "content", field, CONTENT_KINDS, "content kind")
    return Match(
        site,
        resolved,
        devices,
        group_names,
        users,
        network_names,
        content,
    )


def _read_site(reader: FieldReader, m: Mapping[str, Any], field: str) -> Site:
    categories = reader.choices(m, "categories", field, sorted(POLICY_CATEGORIES), "category")
    return Site(
        categories=categories or frozenset(),
        domains=frozenset(_read_domains(reader, m, "domains", field)),
        urls=tuple(_read_urls(reader, m, "urls", field)),
    )


def _read_domains(
    reader: FieldReader, parent: Mapping[str, Any], key: str, field: str
) -> Iterator[str]:
    for i, text in reader.strings(parent, key, field):
        try:
            yield normalise_host(text)
        except UrlError as exc:
            reader.problem(parent[key], i, f"{join_field(field, key)}[{i}]", str(exc))


def _read_urls(
    reader: FieldReader, parent: Mapping[str, Any], key: str, field: str
) -> Iterator[tuple[str, str]]:
    for i, text in reader.strings(parent, key, field):
        host, slash, path = text.removeprefix("https://").removeprefix("http://").partition("/")
        if not slash:
            reader.problem(
                parent[key],
                i,
                f"{join_field(field, key)}[{i}]",
                f"'{text}' is not a URL prefix (host/path); use domains for a whole site",
            )
            continue
        try:
            yield normalise_host(host), "/" + path
        except UrlError as exc:
            reader.problem(parent[key], i, f"{join_field(field, key)}[{i}]", str(exc))


def _read_verdict(
    reader: FieldReader,
    parent: Mapping[str, Any],
    key: str,
    *,
    require_action: bool,
    extra_keys: tuple[str, ...] = (),
    fixed_action: Action | None = None,
) -> Verdict | None:
    keys = ("clauses", "reason", *extra_keys) + (("action",) if require_action else ())
    required = ("reason",) + (("action",) if require_action else ())
    item = reader.mapping(parent, key, key, keys, required)
    if item is None:
        return None
    action = _read_action(reader, item, key) if require_action else fixed_action
    reason = reader.string(item, "reason", key)
    clauses = tuple(c for _, c in reader.strings(item, "clauses", key))
    if action in ("warn", "block") and not clauses:
        reader.problem(parent, key, f"{key}.clauses", f"a '{action}' outcome must cite a clause")
    if action is None or reason is None:
        return None
    return Verdict(action, clauses, reason)


def _read_site_list(
    reader: FieldReader, top: Mapping[str, Any], key: str, action: Action
) -> SiteList | None:
    if key not in top:
        return None
    verdict = _read_verdict(
        reader, top, key, require_action=False, extra_keys=("domains", "urls"), fixed_action=action
    )
    item = top[key]
    if verdict is None or not isinstance(item, dict):
        return None
    site = Site(
        domains=frozenset(_read_domains(reader, item, "domains", key)),
        urls=tuple(_read_urls(reader, item, "urls", key)),
    )
    if not site:
        reader.problem(top, key, key, "lists no domains or urls")
    return SiteList(site, verdict)


def _read_never_decrypt(reader: FieldReader, top: Mapping[str, Any]) -> Site | None:
    """Sites whose TLS is passed through untouched (banking, health): host-level rules only."""
    item = reader.mapping(
        top, "never_decrypt", "never_decrypt", ("categories", "domains", "reason"), ("reason",)
    )
    if item is None:
        return None
    site = _read_site(reader, item, "never_decrypt")
    if not site:
        reader.problem(top, "never_decrypt", "never_decrypt", "lists no categories or domains")
    return site


_PAC_KEYS = ("proxies", "on_proxy_failure", "spread", "intranet", "bypass")


def _read_pac(reader: FieldReader, top: Mapping[str, Any]) -> PacSettings | None:
    """`pac`: the proxies browsers use, failover, and what goes DIRECT."""
    item = reader.mapping(top, "pac", "pac", _PAC_KEYS, ("proxies",))
    if item is None:
        return None
    proxies: list[ProxyEndpoint] = []
    for i, text in reader.strings(item, "proxies", "pac"):
        host, sep, port = text.rpartition(":")
        try:
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                raise UrlError(f"'{text}' is not HOST:PORT")
            proxies.append(ProxyEndpoint(normalise_host(host), int(port)))
        except UrlError as exc:
            reader.problem(item["proxies"], i, f"pac.proxies[{i}]", str(exc))
    if "proxies" in item and not reader.strings(item, "proxies", "pac"):
        reader.problem(item, "proxies", "pac.proxies", "must list at least one proxy")
    failure = reader.string(item, "on_proxy_failure", "pac") or "closed"
    if failure not in ("closed", "direct"):
        reader.problem(
            item,
            "on_proxy_failure",
            "pac.on_proxy_failure",
            f"unknown choice '{failure}' (one of: closed, direct)",
        )
    spread = reader.string(item, "spread", "pac") or "none"
    if spread not in ("none", "hash"):
        reader.problem(
            item, "spread", "pac.spread", f"unknown choice '{spread}' (one of: none, hash)"
        )
    networks: list[IPNetwork] = []
    domains: list[str] = []
    intranet = reader.mapping(item, "intranet", "pac.intranet", ("networks", "domains"))
    if intranet is not None:
        for i, text in reader.strings(intranet, "networks", "pac.intranet"):
            try:
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as exc:
                reader.problem(
                    intranet["networks"],
                    i,
                    f"pac.intranet.networks[{i}]",
                    f"bad CIDR '{text}': {exc}",
                )
        domains = list(_read_domains(reader, intranet, "domains", "pac.intranet"))
    bypass = list(_read_domains(reader, item, "bypass", "pac"))
    return PacSettings(
        proxies=tuple(proxies),
        on_proxy_failure="direct" if failure == "direct" else "closed",
        spread="hash" if spread == "hash" else "none",
        intranet_networks=tuple(networks),
        intranet_domains=tuple(domains),
        bypass=tuple(bypass),
    )


def _read_limits(reader: FieldReader, top: Mapping[str, Any]) -> int | None:
    """`limits.transfer_mb`: the size over which a transfer is a `large-transfer` (MoDOT 9.D)."""
    item = reader.mapping(top, "limits", "limits", ("transfer_mb",))
    if item is None or "transfer_mb" not in item:
        return None
    value = item["transfer_mb"]
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        reader.problem(
            item,
            "transfer_mb",
            "limits.transfer_mb",
            f"expected a positive number of megabytes, got {value!r}",
        )
        return None
    return int(value * 1024 * 1024)


_GRANT_KEYS = ("id", "rules", "users", "groups", "action", "approved_by", "reason", "expires")


def _read_grants(
    reader: FieldReader,
    top: Mapping[str, Any],
    rules: list[Rule],
    groups: Mapping[str, Group],
    today: date,
) -> list[Grant]:
    raw = top.get("grants")
    if raw is None:
        return []
    if not isinstance(raw, list):
        reader.problem(top, "grants", "grants", f"expected a list, got {kind_of(raw)}")
        return []
    rule_ids = tuple(r.id for r in rules)
    grants: list[Grant] = []
    for i, _item in enumerate(raw):
        field = f"grants[{i}]"
        item = reader.mapping(
            raw, i, field, _GRANT_KEYS, ("id", "rules", "approved_by", "reason", "expires")
        )
        if item is None:
            continue
        gid = reader.string(item, "id", field)
        granted_rules = reader.choices(item, "rules", field, rule_ids, "rule")
        group_names = reader.choices(item, "groups", field, tuple(groups), "group") or frozenset()
        users = frozenset(u.lower() for _, u in reader.strings(item, "users", field))
        if not users and not group_names and "groups" not in item:
            reader.problem(raw, i, field, "names no users or groups")
        action = _read_action(reader, item, field) if "action" in item else "log"
        if action in ("warn", "block"):
            reader.problem(
                item,
                "action",
                f"{field}.action",
                f"a grant relaxes a rule: its action is allow or log, not '{action}'",
            )
        expires = _read_date(reader, item, "expires", f"{field}.expires")
        if expires is not None and expires < today:
            reader.problem(
                item,
                "expires",
                f"{field}.expires",
                f"grant '{gid}' expired on {expires} and has no effect",
                "warning",
            )
        approved_by = reader.string(item, "approved_by", field)
        reason = reader.string(item, "reason", field)
        if gid and granted_rules and action and approved_by and reason and expires:
            grants.append(
                Grant(gid, granted_rules, users, group_names, action, approved_by, reason, expires)
            )
    return grants


def _read_date(reader: FieldReader, item: Mapping[str, Any], key: str, field: str) -> date | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        reader.problem(item, key, field, f"'{value}' is not a date (YYYY-MM-DD)")
        return None


def _check_clause_map(
    reader: FieldReader,
    top: Mapping[str, Any],
    clauses: Mapping[str, Clause],
    rules: list[Rule],
    default: Verdict | None,
    allow: SiteList | None,
    deny: SiteList | None,
) -> None:
    """Every cited clause exists; every clause is enforced or says why it cannot be."""
    cited: dict[str, str] = {}
    raw_rules = top.get("rules") if isinstance(top.get("rules"), list) else []
    for i, rule in enumerate(rules):
        item = next(
            (r for r in raw_rules or [] if isinstance(r, dict) and r.get("id") == rule.id), None
        )
        for cid in rule.clauses:
            cited.setdefault(cid, rule.id)
            if cid not in clauses:
                reader.problem(
                    item,
                    "clauses",
                    f"rules[{_index_of(raw_rules, rule.id, i)}].clauses",
                    f"cites unknown clause '{cid}'{did_you_mean(cid, clauses)}",
                )
    for key, verdict in (
        ("default", default),
        ("allow", allow and allow.verdict),
        ("deny", deny and deny.verdict),
    ):
        if not verdict:
            continue
        for cid in verdict.clauses:
            cited.setdefault(cid, key)
            if cid not in clauses:
                reader.problem(
                    top.get(key),
                    "clauses",
                    f"{key}.clauses",
                    f"cites unknown clause '{cid}'{did_you_mean(cid, clauses)}",
                )
    raw_clauses = top.get("clauses")
    for cid, clause in clauses.items():
        item = raw_clauses.get(cid) if isinstance(raw_clauses, dict) else None
        if cid in cited and clause.not_enforceable:
            reader.problem(
                item,
                "not_enforceable",
                f"clauses.{cid}.not_enforceable",
                f"is marked not enforceable but '{cited[cid]}' cites it",
            )
        elif cid not in cited and not clause.not_enforceable:
            reader.problem(
                raw_clauses,
                cid,
                f"clauses.{cid}",
                "no rule cites this clause: cite it or say why it is not_enforceable",
            )


def _index_of(raw_rules: list[Any] | None, rule_id: str, fallback: int) -> int:
    for i, item in enumerate(raw_rules or []):
        if isinstance(item, dict) and item.get("id") == rule_id:
            return i
    return fallback


def _check_lists_disjoint(
    reader: FieldReader, top: Mapping[str, Any], allow: SiteList | None, deny: SiteList | None
) -> None:
    if allow is None or deny is None:
        return
    for domain in sorted(allow.site.domains & deny.site.domains):
        reader.problem(
            top.get("allow"),
            "domains",
            "allow.domains",
            f"'{domain}' is on both the allow and the deny list",
        )


# --------------------------------------------------------------------------- directories


def load_policy_dir(directory: Path, *, today: date) -> PolicySet:
    """Load every `*.yaml` policy in a directory; raises PolicyError listing every error.

    Agencies' client networks must not overlap: a client address decides the agency.
    """
    files = sorted(directory.glob("*.yaml"))
    problems: list[Problem] = []
    if not directory.is_dir():
        raise PolicyError([Problem(str(directory), None, "", "policy directory not found")])
    if not files:
        raise PolicyError([Problem(str(directory), None, "", "no policy files (*.yaml) found")])
    policies: dict[str, Policy] = {}
    for path in files:
        policy, found = load_policy(path, today=today)
        problems += found
        if policy is not None:
            policies[policy.agency] = policy
    problems += _cross_agency_overlaps(policies)
    if any(p.severity == "error" for p in problems):
        raise PolicyError(problems)
    return PolicySet(policies, tuple(problems))


def _cross_agency_overlaps(policies: Mapping[str, Policy]) -> list[Problem]:
    problems: list[Problem] = []
    seen: list[tuple[IPNetwork, str, str]] = []
    for policy in policies.values():
        for network in policy.networks:
            for cidr in network.cidrs:
                for other, agency, name in seen:
                    if (
                        agency != policy.agency
                        and cidr.version == other.version
                        and cidr.overlaps(other)
                    ):
                        problems.append(
                            Problem(
                                policy.source,
                                network.line,
                                f"identity.networks.{network.name}",
                                f"{cidr} overlaps {other} of agency '{agency}' (network '{name}'): "
                                "a client address must belong to one agency",
                            )
                        )
                seen.append((cidr, policy.agency, network.name))
    return problems
