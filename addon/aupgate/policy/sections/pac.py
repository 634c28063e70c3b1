"""The `pac` section: the proxies browsers use, failover, and what goes DIRECT."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aupgate.errors import UrlError
from aupgate.hostname import normalise_host
from aupgate.yamlsource import FieldReader

from ..model import IPNetwork, PacSettings, ProxyEndpoint
from .identity import read_cidr
from .sites import read_domains

__all__ = ["read_pac"]

_PAC_KEYS = ("proxies", "on_proxy_failure", "spread", "intranet", "bypass")


def read_pac(reader: FieldReader, top: Mapping[str, Any]) -> PacSettings | None:
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
            cidr = read_cidr(reader, intranet["networks"], i, f"pac.intranet.networks[{i}]", text)
            if cidr is not None:
                networks.append(cidr)
        domains = list(read_domains(reader, intranet, "domains", "pac.intranet"))
    bypass = list(read_domains(reader, item, "bypass", "pac"))
    return PacSettings(
        proxies=tuple(proxies),
        on_proxy_failure="direct" if failure == "direct" else "closed",
        spread="hash" if spread == "hash" else "none",
        intranet_networks=tuple(networks),
        intranet_domains=tuple(domains),
        bypass=tuple(bypass),
    )
