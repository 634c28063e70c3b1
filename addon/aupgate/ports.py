"""The port policy: which ports a request, a tunnel or a raw tunnel may name.

As Squid's `SSL_ports` and `Safe_ports`: a tunnel (CONNECT, an https or wss URL) only to 443 and
the ports the agency lists, plain HTTP (http, ws) only to 80 and the ports it lists, and bytes that
are neither TLS nor HTTP only on tunnel ports it lists as raw. Pure: ports in, yes or no out.
"""

from __future__ import annotations

from .policy.model import PortPolicy

__all__ = ["TUNNEL_SCHEMES", "port_allowed", "raw_allowed"]

TUNNEL_SCHEMES = frozenset({"https", "wss"})
HTTP_SCHEMES = frozenset({"http", "ws"})


def port_allowed(ports: PortPolicy, scheme: str, port: int | None) -> bool:
    """Whether a URL of `scheme` may name `port` (None: the scheme's default port)."""
    if scheme in TUNNEL_SCHEMES:
        return (port or 443) in ports.tunnel
    if scheme in HTTP_SCHEMES:
        return (port or 80) in ports.http
    return True  # a bare host, or a scheme the gateway does not proxy: no port to judge


def raw_allowed(ports: PortPolicy, port: int) -> bool:
    """Whether a tunnel to `port` may carry bytes that are neither TLS nor HTTP."""
    return port in ports.raw
