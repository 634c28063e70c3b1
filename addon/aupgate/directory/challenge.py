"""The `Proxy-Authenticate` challenges the gateway sends with a 407.

Negotiate comes first: a browser on a domain-joined PC picks the first scheme it can do, so it
signs in with its Kerberos ticket and never prompts; a browser that cannot falls back to Basic,
whose realm names the gateway (the text people see in the login prompt), not "mitmproxy".
"""

from __future__ import annotations

import base64

NEGOTIATE = "Negotiate"


def quoted_string(text: str) -> str:
    """An RFC 9110 quoted-string: backslash before `"` and `\\`; control characters refused."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("a realm cannot contain control characters")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def basic_challenge(realm: str) -> str:
    """`Basic realm="...", charset="UTF-8"` (RFC 7617: the browser then sends UTF-8)."""
    return f"Basic realm={quoted_string(realm)}, charset=\"UTF-8\""


def authenticate_challenges(realm: str, *, negotiate: bool, basic: bool = True) -> list[str]:
    """The challenge values in the order they must be sent, one header each."""
    values = [NEGOTIATE] if negotiate else []
    if basic:
        values.append(basic_challenge(realm))
    if not values:
        raise ValueError("at least one of Negotiate and Basic must be offered")
    return values


def negotiate_reply(token: bytes | None) -> str:
    """The `Negotiate <token>` value carrying the acceptor's final (mutual authentication)
    token, or bare `Negotiate` when there is none."""
    return NEGOTIATE if not token else f"{NEGOTIATE} {base64.b64encode(token).decode('ascii')}"
