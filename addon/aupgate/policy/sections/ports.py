"""The `ports` section: which ports the gateway opens (Squid's `SSL_ports` and `Safe_ports`).

Without the section a policy opens 443 to tunnels and 80 to plain HTTP, nothing else, and no raw
tunnels; the section lists ports opened besides those and cites the clauses a refusal rests on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aupgate.yamlsource import FieldReader, join_field

from ..model import PortPolicy
from .lists import read_verdict

__all__ = ["read_ports"]

_KEYS = ("tunnel", "http", "raw")


def read_ports(reader: FieldReader, top: Mapping[str, Any]) -> PortPolicy:
    """The policy's port policy; the defaults when the section is absent or wrong."""
    if "ports" not in top:
        return PortPolicy()
    verdict = read_verdict(reader, top, "ports", require_action=False, extra_keys=_KEYS,
                           fixed_action="block")
    item = top["ports"]
    if verdict is None or not isinstance(item, dict):
        return PortPolicy()
    defaults = PortPolicy()
    tunnel = defaults.tunnel | _ports(reader, item, "tunnel")
    http = defaults.http | _ports(reader, item, "http")
    raw = _ports(reader, item, "raw")
    for port in sorted(raw - tunnel):
        reader.problem(item, "raw", "ports.raw",
                       f"port {port} is not a tunnel port (443 or one listed in ports.tunnel): "
                       "raw bytes can only follow a CONNECT")
    return PortPolicy(tunnel=tunnel, http=http, raw=raw & tunnel, verdict=verdict)


def _ports(reader: FieldReader, item: Mapping[str, Any], key: str) -> frozenset[int]:
    """A list of port numbers (a single number is a list of one)."""
    value = item.get(key)
    if value is None:
        return frozenset()
    field = join_field("ports", key)
    found: set[int] = set()
    listed = value if isinstance(value, list) else [value]
    for i, port in enumerate(listed):
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            container, at = (value, i) if listed is value else (item, key)
            reader.problem(container, at, f"{field}[{i}]",
                           f"expected a port number (1-65535), got {port!r}")
        else:
            found.add(port)
    return frozenset(found)
