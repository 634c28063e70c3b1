"""The strict loader that turns an agency's YAML file into a `Policy`.

The loader never stops at the first mistake: it collects every problem with file, line and field,
so an administrator fixes a file in one pass. A policy with errors is never returned; a broken
reload therefore leaves the last good policy in force. See `docs/policy-language.md`.

Each section of the file has its reader in `sections/` (schedule, identity, rules, sites, lists,
grants, pac, helpdesk, controls, directory); the checks across sections and across agencies are
in `checks.py`; this module reads the top level, the document and clauses, and a directory of
files.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from aupgate.categories.overrides import read_overrides
from aupgate.errors import PolicyError, Problem
from aupgate.yamlsource import FieldReader, keys_of, kind_of, load_yaml

from .checks import check_clause_map, check_lists_disjoint, cross_agency_overlaps
from .lint import check_reachable
from .logo import logo_data_uri
from .model import CLAUSE_ID, ID, Clause, Document, Policy, PolicySet
from .retirement import RETIRED_FILE, parse_retired
from .schedule import WINDOWS
from .sections.budgets import read_budgets
from .sections.controls import read_controls, read_publishing
from .sections.directory import read_directory
from .sections.grants import read_grants
from .sections.helpdesk import read_help_desk
from .sections.identity import read_identity
from .sections.lists import read_never_decrypt, read_site_list, read_verdict
from .sections.pac import read_pac
from .sections.ports import read_ports
from .sections.rules import RuleScope, read_rules
from .sections.schedule import read_schedule, window_set_names

__all__ = ["load_policy", "load_policy_dir"]

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
    "help_desk",
    "publishing",
    "tenants",
    "safe_search",
    "ports",
    "budgets",
    "directory",
    "kerberos",
)
_OPTIONAL_TOP = frozenset(
    {"identity", "allow", "deny", "grants", "never_decrypt", "pac", "limits", "categories",
     "help_desk", "publishing", "tenants", "safe_search", "ports", "budgets", "directory",
     "kerberos"}
)
_REQUIRED_TOP = tuple(key for key in _TOP_KEYS if key not in _OPTIONAL_TOP)


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
        if reader.problems[-1].line is None:  # a bare value or an empty file: its first line
            reader.problems[-1] = replace(reader.problems[-1], line=1)
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
        if not ID.match(agency):
            reader.problem(top, "agency", "agency", f"'{agency}' is not a valid id ([a-z0-9-]+)")
        elif agency != path.stem:
            reader.problem(
                top, "agency", "agency", f"'{agency}' does not match the file name '{path.name}'"
            )
    name = reader.string(top, "name", "")
    contact = reader.string(top, "contact", "")
    document = read_document(reader, top)
    schedule = read_schedule(reader, top, today)
    networks, groups = read_identity(reader, top)
    directory, kerberos = read_directory(reader, top, groups)
    clauses = read_clauses(reader, top)
    scope = RuleScope(
        schedule=schedule,
        # Rules may name the file's window sets even when another schedule key is wrong.
        set_names=tuple(schedule.window_sets) if schedule else window_set_names(top),
        networks=tuple(networks),
        groups=groups,
        possible=schedule.possible_windows() if schedule else frozenset(WINDOWS),
    )
    rules, unreadable = read_rules(reader, top, scope)
    default = read_verdict(reader, top, "default", require_action=True)
    allow = read_site_list(reader, top, "allow", "allow", tuple(r.id for r in rules))
    deny = read_site_list(reader, top, "deny", "block")
    grants = read_grants(reader, top, rules, groups, today)
    raw_rules = top.get("rules")
    check_reachable(reader, raw_rules if isinstance(raw_rules, list) else [], rules, grants,
                    unreadable, scope.possible)
    budgets = read_budgets(reader, top, schedule, scope.set_names, rules)
    never_decrypt = read_never_decrypt(reader, top)
    pac = read_pac(reader, top)
    limit = read_limits(reader, top)
    help_desk = read_help_desk(reader, top, functools.partial(logo_data_uri, base=path.parent))
    ports = read_ports(reader, top)
    overrides, override_problems = read_overrides(top, reader.file)
    reader.problems += override_problems
    publishing = read_publishing(reader, top)
    controls = read_controls(reader, top)
    check_clause_map(reader, top, clauses, rules, default, allow, deny, controls,
                     ports.verdict, budgets)
    check_lists_disjoint(reader, top, allow, deny)
    if None in (agency, name, contact, document, schedule, default):
        return None
    assert agency and name and contact and document and schedule and default  # for mypy
    user_groups: dict[str, set[str]] = {}
    directory_groups: dict[str, set[str]] = {}
    for group in groups.values():
        for member in group.members:
            user_groups.setdefault(member, set()).add(group.name)
        for key in group.directory_keys:
            directory_groups.setdefault(key, set()).add(group.name)
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
        help_desk=help_desk,
        publishing=publishing,
        controls=controls,
        ports=ports,
        budgets=tuple(budgets),
        directory=directory,
        kerberos=kerberos,
        _user_groups={u: frozenset(g) for u, g in user_groups.items()},
        _directory_groups={k: frozenset(g) for k, g in directory_groups.items()},
    )


def read_document(reader: FieldReader, top: dict[str, Any]) -> Document | None:
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


_CLAUSE_KEYS = ("title", "text", "not_enforceable", "proxy_limits")


def read_clauses(reader: FieldReader, top: dict[str, Any]) -> dict[str, Clause]:
    raw = reader.mapping(top, "clauses", "clauses", keys_of(top.get("clauses")))
    clauses: dict[str, Clause] = {}
    for cid in raw or {}:
        field = f"clauses.{cid}"
        if not CLAUSE_ID.match(cid):
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


def read_limits(reader: FieldReader, top: Mapping[str, Any]) -> int | None:
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
    problems += cross_agency_overlaps(policies)
    retired, found = read_retired(directory)
    problems += found
    if any(p.severity == "error" for p in problems):
        raise PolicyError(problems)
    return PolicySet(policies, tuple(problems), retired)


def read_retired(directory: Path) -> tuple[frozenset[str], list[Problem]]:
    """The agencies `retired.txt` lets a reload drop (none when there is no such file)."""
    path = directory / RETIRED_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return frozenset(), []
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return frozenset(), [Problem(str(path), None, "", f"cannot read: {reason}")]
    return parse_retired(text, str(path))
