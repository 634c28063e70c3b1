"""Who is asking: the client's address, the agency it falls under, and the proxy login.

The proxy and `aupgate explain` answer the question the same way, here: an agency named
explicitly (`explain --agency`) decides; otherwise the agency whose networks hold the client
address (the most specific prefix wins); otherwise the gateway's default agency, if it has one.
No agency at all means the request is refused (the gateway serves agency networks only).

The address comes from mitmproxy as a socket peername, which may carry an IPv6 `%scope` or wrap an
IPv4 client in IPv4-mapped IPv6; `client_address` unwraps it the way mitmproxy's own `block` addon
does, so a client is one address however it connected.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from .policy.model import IPAddress, Policy, PolicySet

__all__ = ["Identity", "client_address", "identify"]


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
    # the match keys of the user's directory groups (aupgate.directory.membership_keys)
    directory_groups: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.client_text and self.client is not None:
            self.client_text = str(self.client)

    @property
    def policy_digest(self) -> str | None:
        """The sha256 of the agency's policy file that decides for this client (audit)."""
        return self.policy.digest or None if self.policy is not None else None

    def with_user(self, user: str | None,
                  directory_groups: frozenset[str] = frozenset()) -> Identity:
        """The same client and agency, with a proxy login (and its directory groups)."""
        return Identity(self.client, user, self.policy, self.client_text, directory_groups)


def identify(
    policies: PolicySet,
    client: IPAddress | None,
    user: str | None = None,
    *,
    agency: str | None = None,
    default_agency: str | None = None,
    directory_groups: frozenset[str] = frozenset(),
) -> Identity:
    """The identity a request is decided under; `policy` is None when no agency applies.

    Args:
        agency: an agency chosen explicitly (`explain --agency`): it decides, whatever the
            address; an unknown id gives no policy.
        default_agency: the agency for a client in no agency's networks (`--default-agency`).
        directory_groups: the match keys of the groups the directory reported for `user`
            (`aupgate.directory.membership.membership_keys`); policy groups naming any of
            them hold for the user.
    """
    if agency:
        policy = policies.policies.get(agency)
    else:
        policy = policies.agency_for(client)
        if policy is None and default_agency:
            policy = policies.policies.get(default_agency)
    return Identity(client, user, policy, directory_groups=directory_groups)
