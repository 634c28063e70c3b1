"""Fixed outcomes: the `default`, the `allow` and `deny` lists, and `never_decrypt`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aupgate.yamlsource import FieldReader

from ..model import STOPPING, Action, Site, SiteList, Verdict
from .rules import read_action
from .sites import read_domains, read_site, read_urls

__all__ = ["read_never_decrypt", "read_site_list", "read_verdict"]

def read_verdict(
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
    action = read_action(reader, item, key) if require_action else fixed_action
    reason = reader.string(item, "reason", key)
    clauses = tuple(c for _, c in reader.strings(item, "clauses", key))
    if action in STOPPING and not clauses:
        reader.problem(parent, key, f"{key}.clauses", f"a '{action}' outcome must cite a clause")
    if action is None or reason is None:
        return None
    return Verdict(action, clauses, reason)


def read_site_list(
    reader: FieldReader,
    top: Mapping[str, Any],
    key: str,
    action: Action,
    rule_ids: tuple[str, ...] | None = None,
) -> SiteList | None:
    """The `allow` or `deny` list; `rule_ids` given, the list may name in `overrides` the block
    rules it is meant to lift (the allow list)."""
    if key not in top:
        return None
    extra = ("domains", "urls") + (("overrides",) if rule_ids is not None else ())
    verdict = read_verdict(
        reader, top, key, require_action=False, extra_keys=extra, fixed_action=action
    )
    item = top[key]
    if verdict is None or not isinstance(item, dict):
        return None
    site = Site(
        domains=frozenset(read_domains(reader, item, "domains", key)),
        urls=tuple(read_urls(reader, item, "urls", key)),
    )
    if not site:
        reader.problem(top, key, key, "lists no domains or urls")
    overrides: frozenset[str] = frozenset()
    if rule_ids is not None and "overrides" in item:
        overrides = reader.choices(item, "overrides", key, rule_ids, "rule") or frozenset()
    return SiteList(site, verdict, overrides)


def read_never_decrypt(reader: FieldReader, top: Mapping[str, Any]) -> Site | None:
    """Sites whose TLS is passed through untouched (banking, health): host-level rules only."""
    item = reader.mapping(
        top, "never_decrypt", "never_decrypt", ("categories", "domains", "reason"), ("reason",)
    )
    if item is None:
        return None
    site = read_site(reader, item, "never_decrypt")
    if not site:
        reader.problem(top, "never_decrypt", "never_decrypt", "lists no categories or domains")
    return site
