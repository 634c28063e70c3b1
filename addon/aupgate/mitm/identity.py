"""Who is asking: the client's address, its agency, and the proxy login.

The address is what ties a request to an agency (its networks) and a device class; mitmproxy gives
it as a socket peername, which may carry an IPv6 `%scope` or wrap an IPv4 client in IPv4-mapped
IPv6, so it is unwrapped here the way mitmproxy's own `block` addon does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ..policy.model import Policy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(peername: tuple[Any, ...] | None) -> IPAddress | None:
    """The client's IP from a peername: `%scope` stripped, IPv4-mapped IPv6 unwrapped."""
    if not peername:
        return None
    try:
        address = ipaddress.ip_address(str(peername[0]).rsplit("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        return address.ipv4_mapped or address
    return address


@dataclass(slots=True)
class Identity:
    """Who is asking: the client address, the proxy login, and the agency they fall under."""

    client: IPAddress | None
    user: str | None
    policy: Policy | None
    client_text: str = ""  # the address as text ("" when unknown), worked out once per connection

    def __post_init__(self) -> None:
        if not self.client_text and self.client is not None:
            self.client_text = str(self.client)

    @property
    def policy_digest(self) -> str | None:
        """The sha256 of the agency's policy file that decides for this client (audit)."""
        return self.policy.digest or None if self.policy is not None else None
