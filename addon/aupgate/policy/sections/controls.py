"""The sections about what a request does and what the gateway adds to it: `publishing` (where an
upload publishes), `tenants` (the agency's own cloud tenants) and `safe_search`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aupgate.errors import did_you_mean
from aupgate.publishing import (
    DEFAULT_ENDPOINTS,
    PUBLISH_METHODS,
    Endpoint,
    Publishing,
    parse_pattern,
)
from aupgate.rewrites import YOUTUBE_MODES, RequestControls, SafeSearch, TenantRestrictions
from aupgate.yamlsource import FieldReader, join_field

__all__ = ["read_controls", "read_publishing"]

_ENDPOINT_KEYS = ("service", "urls", "methods")
# A tenant is named by a domain registered to it or by its directory ID (a GUID); a header value
# is a comma-separated list, so neither may hold a comma, a space or a control character.
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SERVICES = tuple(e.service for e in DEFAULT_ENDPOINTS)


def read_publishing(reader: FieldReader, top: Mapping[str, Any]) -> Publishing:
    """`publishing: {add: [{service, urls, methods}], remove: [service names]}`."""
    item = reader.mapping(top, "publishing", "publishing", ("add", "remove"))
    if item is None:
        return Publishing()
    removed: list[str] = []
    for i, name in reader.strings(item, "remove", "publishing"):
        if name not in _SERVICES:
            reader.problem(item["remove"], i, f"publishing.remove[{i}]",
                           f"no shipped publishing service is called '{name}'"
                           f"{did_you_mean(name, _SERVICES)}")
        elif name in removed:
            reader.problem(item["remove"], i, f"publishing.remove[{i}]",
                           f"'{name}' is listed twice")
        else:
            removed.append(name)
    added = [endpoint for i, _ in enumerate(reader.sequence(item, "add", "publishing.add"))
             if (endpoint := _read_endpoint(reader, item["add"], i)) is not None]
    return Publishing.of(added, removed)


def _read_endpoint(reader: FieldReader, raw: list[Any], i: int) -> Endpoint | None:
    field = f"publishing.add[{i}]"
    entry = reader.mapping(raw, i, field, _ENDPOINT_KEYS, ("service", "urls"))
    if entry is None:
        return None
    service = reader.string(entry, "service", field)
    patterns: list[str] = []
    for j, text in reader.strings(entry, "urls", field):
        try:
            parse_pattern(text)
        except ValueError as exc:
            reader.problem(entry["urls"], j, f"{field}.urls[{j}]", str(exc))
            continue
        patterns.append(text)
    methods = frozenset(PUBLISH_METHODS)
    if "methods" in entry:
        methods = reader.choices(entry, "methods", field, sorted(PUBLISH_METHODS), "method") \
            or frozenset()
    if not service or not patterns or not methods:
        return None
    return Endpoint(service, "agency", tuple(patterns), methods)


def read_controls(reader: FieldReader, top: Mapping[str, Any]) -> RequestControls:
    return RequestControls(_read_tenants(reader, top), _read_safe_search(reader, top))


def _clauses(reader: FieldReader, item: Mapping[str, Any], field: str) -> tuple[str, ...]:
    clauses = tuple(c for _, c in reader.strings(item, "clauses", field))
    if not clauses and "clauses" in item:  # a missing key is reported once, as missing
        reader.problem(item, "clauses", join_field(field, "clauses"),
                       "must cite the clauses it enforces")
    return clauses


def _read_tenants(reader: FieldReader, top: Mapping[str, Any]) -> TenantRestrictions | None:
    item = reader.mapping(top, "tenants", "tenants", ("clauses", "microsoft", "google"),
                          ("clauses",))
    if item is None:
        return None
    clauses = _clauses(reader, item, "tenants")
    ms = reader.mapping(item, "microsoft", "tenants.microsoft",
                        ("allow", "context", "block_consumer_accounts"), ("allow", "context"))
    google = reader.mapping(item, "google", "tenants.google", ("allow",), ("allow",))
    if ms is None and google is None:
        reader.problem(top, "tenants", "tenants", "names no provider (microsoft, google)")
    tenants: tuple[str, ...] = ()
    context: str | None = None
    consumer = False
    if ms is not None:
        tenants = _names(reader, ms, "allow", "tenants.microsoft", guid_ok=True)
        context = reader.string(ms, "context", "tenants.microsoft")
        if context is not None and not _GUID.match(context.lower()):
            reader.problem(ms, "context", "tenants.microsoft.context",
                           f"'{context}' is not a directory (tenant) ID: "
                           "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
            context = None
        value = ms.get("block_consumer_accounts", False)
        if not isinstance(value, bool):
            reader.problem(ms, "block_consumer_accounts",
                           "tenants.microsoft.block_consumer_accounts",
                           f"expected true or false, got {value!r}")
        consumer = value is True
    domains = _names(reader, google, "allow", "tenants.google") if google is not None else ()
    return TenantRestrictions(clauses, tenants, context and context.lower(), consumer, domains)


def _names(reader: FieldReader, parent: Mapping[str, Any], key: str, field: str, *,
           guid_ok: bool = False) -> tuple[str, ...]:
    """Domains (or, for Microsoft, tenant IDs): lower-case, each once."""
    found: list[str] = []
    for i, text in reader.strings(parent, key, field):
        name = text.strip().lower()
        if not (_DOMAIN.match(name) or (guid_ok and _GUID.match(name))):
            what = "a domain or a tenant ID" if guid_ok else "a domain"
            reader.problem(parent[key], i, f"{field}.{key}[{i}]", f"'{text}' is not {what}")
        elif name in found:
            reader.problem(parent[key], i, f"{field}.{key}[{i}]", f"'{name}' is listed twice")
        else:
            found.append(name)
    return tuple(found)


def _read_safe_search(reader: FieldReader, top: Mapping[str, Any]) -> SafeSearch | None:
    item = reader.mapping(top, "safe_search", "safe_search", ("clauses", "search", "youtube"),
                          ("clauses",))
    if item is None:
        return None
    clauses = _clauses(reader, item, "safe_search")
    search = item.get("search", "strict")
    if search not in ("strict", "off"):
        reader.problem(item, "search", "safe_search.search",
                       f"expected strict or off, got {search!r}")
    youtube = item.get("youtube", "strict")
    if youtube not in (*YOUTUBE_MODES, "off"):
        reader.problem(item, "youtube", "safe_search.youtube",
                       f"expected strict, moderate or off, got {youtube!r}")
    if search == "off" and youtube == "off":
        reader.problem(top, "safe_search", "safe_search", "forces nothing: remove the section")
    return SafeSearch(clauses, search == "strict", youtube if youtube in YOUTUBE_MODES else None)
