"""`aupgate pac`: the PAC file (and `wpad.dat`) that sends an agency's browsers to its gateway.

The policy's `pac` section says which proxies browsers use, what goes DIRECT, and what happens
when no proxy answers. This module turns it into a small JavaScript file that uses only the
standard PAC functions (`isPlainHostName`, `dnsDomainIs`, `isInNet`, `myIpAddress`), because
the same file is evaluated by Chromium, Firefox, Windows' WinHTTP/WPAD and macOS, each with its
own engine and its own gaps.

Choices the generated file makes, and why:

- **No name resolution.** `isInNet(host, ...)` and `dnsResolve(host)` on a *name* block the
  browser's proxy resolution on a DNS lookup for every request (and a lookup that fails or hangs
  stalls the page). Intranet networks are therefore tested only when the host is already an
  address literal; intranet *names* must be listed under `intranet.domains`.
- **Anything not recognised goes to the proxy.** A name the file does not know (a trailing dot,
  an unusual spelling) is sent to the gateway, which filters it: the mistake fails safe.
- **IPv6 literals are never "plain host names".** `isPlainHostName("fd00::1")` is true in every
  engine (there is no dot), which would let any IPv6 literal URL bypass the gateway.
- **Loopback is always DIRECT**: a browser's own `127.0.0.1` must never be fetched by the
  gateway on the client's behalf (that would be the gateway's loopback, not the client's).
- **Failover is the PAC list itself**: `PROXY a:8080; PROXY b:8080` makes the browser try `b`
  when `a` refuses or times out. `on_proxy_failure: direct` appends `DIRECT` (the web keeps
  working, unfiltered and unaudited); `closed` does not (no proxy, no web). Both are stated in
  the file's header so whoever reads it knows which was chosen.
- **Stable spreading** (`spread: hash`): each client hashes its own address (`myIpAddress()`) to
  pick a rotation of the proxy list. A client always gets the same order (its sessions and
  caches stay on one gateway) and every proxy still appears in every order, so failover is
  unchanged. `client_hash` below is the same function in Python, so tests and operators can
  say which gateway a given client prefers.

The output is deterministic (no timestamp, only the policy file's name and digest): the same
policy gives the same bytes on every gateway, so a deployment can compare before replacing and a
diff shows exactly what changed.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from pathlib import Path

from .policy.model import PacSettings, Policy, ProxyEndpoint

__all__ = [
    "PAC_CONTENT_TYPE",
    "client_hash",
    "proxy_orders",
    "proxy_string",
    "render_pac",
    "result_for_client",
]

PAC_CONTENT_TYPE = "application/x-ns-proxy-autoconfig"
"""The media type browsers expect for a PAC or wpad.dat file (some ignore a file without it)."""

_HASH_MODULUS = 65521
"""Largest prime below 2**16: keeps `h * 31 + c` far inside a double's exact integers in JS."""

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


def client_hash(address: str) -> int:
    """The hash the PAC file computes over `myIpAddress()`, mirrored in Python.

    A polynomial string hash modulo a prime, over the address *text*: it works for IPv4 and
    IPv6 alike, needs no parsing in JavaScript, and consecutive addresses land on different
    proxies (their last characters differ).
    """
    value = 0
    for char in address:
        value = (value * 31 + ord(char)) % _HASH_MODULUS
    return value


def _endpoint(proxy: ProxyEndpoint) -> str:
    """`host:port`, with an IPv6 address in brackets as PAC results require."""
    host = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
    return f"{host}:{proxy.port}"


def proxy_string(proxies: Sequence[ProxyEndpoint], on_proxy_failure: str) -> str:
    """One PAC result: the proxies in order, then `DIRECT` only when failing open was chosen."""
    parts = [f"PROXY {_endpoint(p)}" for p in proxies]
    if on_proxy_failure == "direct":
        parts.append("DIRECT")
    return "; ".join(parts)


def proxy_orders(settings: PacSettings) -> tuple[str, ...]:
    """Every PAC result a client may get: one per rotation with `spread: hash`, else one.

    Rotation (not shuffling) keeps the agency's order as the fallback sequence: the client whose
    first choice is gw2 falls back to gw3, then gw1, and every proxy is in every list.
    """
    proxies = settings.proxies
    if settings.spread != "hash" or len(proxies) < 2:
        return (proxy_string(proxies, settings.on_proxy_failure),)
    return tuple(
        proxy_string(proxies[i:] + proxies[:i], settings.on_proxy_failure)
        for i in range(len(proxies))
    )


def result_for_client(settings: PacSettings, client: str) -> str:
    """The PAC result for an external host as seen from `client` (its `myIpAddress()`)."""
    orders = proxy_orders(settings)
    return orders[client_hash(client) % len(orders)]


def _js(value: str) -> str:
    """A JavaScript string literal. JSON with ASCII escapes is valid JS, U+2028 included."""
    return json.dumps(value, ensure_ascii=True)


def _array(items: Sequence[tuple[str, str]], indent: str = "  ") -> str:
    """A JS array literal of pre-rendered items, one per line with a trailing comment."""
    if not items:
        return "[]"
    lines = []
    for i, (item, comment) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"{indent}{item}{comma}  // {comment}")
    return "[\n" + "\n".join(lines) + "\n]"


def _net4(net: ipaddress.IPv4Network) -> str:
    """`["10.0.0.0", "255.0.0.0"]`: isInNet takes an address and a dotted mask."""
    return f"[{_js(str(net.network_address))}, {_js(str(net.netmask))}]"


def render_pac(policy: Policy, settings: PacSettings | None = None) -> str:
    """The PAC file for `policy` (its own `pac` section unless `settings` is given).

    Raises ValueError when there is no `pac` section or it lists no proxy.
    """
    settings = settings if settings is not None else policy.pac
    if settings is None:
        raise ValueError(
            f"agency '{policy.agency}' has no pac section in {policy.source or 'its policy'}; "
            "add one (docs/policy-language.md, 'Browser configuration')"
        )
    if not settings.proxies:
        raise ValueError(f"agency '{policy.agency}': pac.proxies lists no proxy")

    domains: list[tuple[str, str]] = []
    for domain in settings.intranet_domains:
        domains.append((_js(domain), "intranet"))
    for domain in settings.bypass:
        if domain not in settings.intranet_domains:
            domains.append((_js(domain), "bypass"))

    nets4: list[tuple[str, str]] = [(_net4(_LOOPBACK), "loopback")]
    nets6: list[tuple[str, str]] = []
    for net in settings.intranet_networks:
        if isinstance(net, ipaddress.IPv4Network):
            nets4.append((_net4(net), "intranet"))
        else:
            nets6.append((_js(str(net)), "intranet"))

    orders = proxy_orders(settings)
    failure = (
        "fall back to DIRECT (the web keeps working, unfiltered and unaudited)"
        if settings.on_proxy_failure == "direct"
        else "fail closed (no DIRECT fallback: no proxy, no web)"
    )
    spread = (
        f"each client starts at one of {len(orders)} rotations of the list, chosen by a hash "
        "of its own address"
        if len(orders) > 1
        else "every client tries the proxies in the order listed"
    )
    proxies = ", ".join(_endpoint(p) for p in settings.proxies)

    out: list[str] = [
        f"// Proxy auto-configuration for {policy.name} (agency {policy.agency}).",
        f"// Generated by `aupgate pac --agency {policy.agency}` from "
        f"{Path(policy.source).name if policy.source else 'the policy'}"
        + (f" (sha256 {policy.digest[:16]})." if policy.digest else "."),
        "// Do not edit: change the policy's pac section and regenerate.",
        f"// Proxies: {proxies}; {spread}.",
        f"// If no proxy answers: {failure}.",
        "// Served as proxy.pac and wpad.dat with Content-Type: " + PAC_CONTENT_TYPE + ".",
        "",
    ]
    if domains:
        out.append(f"var DIRECT_DOMAINS = {_array(domains)};")
    out.append(f"var DIRECT_NETS = {_array(nets4)};")
    if nets6:
        out.append(f"var DIRECT_NETS6 = {_array(nets6)};")
    if len(orders) == 1:
        out.append(f"var PROXIES = {_js(orders[0])};")
    else:
        rotations = [(_js(order), f"rotation {i}") for i, order in enumerate(orders)]
        out.append(f"var PROXY_ORDERS = {_array(rotations)};")
    out += [
        "",
        "function FindProxyForURL(url, host) {",
        "  var i;",
        "  host = host.toLowerCase();",
        "  // A name without dots is on the local network; an IPv6 literal has no dots either.",
        '  if (isPlainHostName(host) && host.indexOf(":") < 0) return "DIRECT";',
    ]
    if domains:
        out += [
            "  for (i = 0; i < DIRECT_DOMAINS.length; i++) {",
            '    if (host == DIRECT_DOMAINS[i] || dnsDomainIs(host, "." + DIRECT_DOMAINS[i]))'
            ' return "DIRECT";',
            "  }",
        ]
    out += [
        "  // Networks are tested only for address literals: isInNet on a name resolves it,",
        "  // a blocking DNS lookup for every request.",
        "  if (/^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$/.test(host)) {",
        "    for (i = 0; i < DIRECT_NETS.length; i++) {",
        '      if (isInNet(host, DIRECT_NETS[i][0], DIRECT_NETS[i][1])) return "DIRECT";',
        "    }",
        "  }",
    ]
    if nets6:
        out += [
            "  // isInNetEx (IPv6) is an extension; where a browser lacks it, the proxy is used.",
            '  if (host.indexOf(":") >= 0 && typeof isInNetEx == "function") {',
            "    for (i = 0; i < DIRECT_NETS6.length; i++) {",
            '      if (isInNetEx(host, DIRECT_NETS6[i])) return "DIRECT";',
            "    }",
            "  }",
        ]
    if len(orders) == 1:
        out.append("  return PROXIES;")
    else:
        out += [
            "  // Stable per client: the same address always picks the same rotation.",
            "  var ip = myIpAddress(), h = 0;",
            f"  for (i = 0; i < ip.length; i++) h = (h * 31 + ip.charCodeAt(i)) % {_HASH_MODULUS};",
            "  return PROXY_ORDERS[h % PROXY_ORDERS.length];",
        ]
    out.append("}")
    return "\n".join(out) + "\n"
