"""The proxy-login prompt names the agency's gateway, not "mitmproxy".

mitmproxy's `proxyauth` addon (11.0) answers a request without valid credentials with a 407 whose
challenge is `Basic realm="mitmproxy"` (a module constant, `REALM`), and a bare page. Browsers
show the realm in the login prompt, so employees were asked to sign in to "mitmproxy". proxyauth
runs before aupgate's hooks; aupgate's `http_connect` and `requestheaders` then find that answer
and relabel it here: the same status and scheme, the realm `aupgate_login_realm` (by default the
client's agency's name, "City of Saint Paul internet gateway"), and aupgate's own page. Nothing of
mitmproxy is patched.
"""

from __future__ import annotations

from mitmproxy import http

from ..directory.challenge import basic_challenge
from ..identity import Identity
from ..pages import page_for, render
from .deciding import Decider
from .responses import make_response

__all__ = ["MITMPROXY_REALM", "realm_for", "relabel_login"]

MITMPROXY_REALM = 'realm="mitmproxy"'
GENERIC_REALM = "Agency internet gateway"


def realm_for(configured: str, ident: Identity | None) -> str:
    """`aupgate_login_realm`, else "<agency name> internet gateway", else a generic name."""
    if configured.strip():
        return " ".join(configured.split())
    policy = ident.policy if ident is not None else None
    return f"{policy.name} internet gateway" if policy is not None else GENERIC_REALM


def relabel_login(flow: http.HTTPFlow, decider: Decider, configured: str) -> bool:
    """Give proxyauth's 401/407 the gateway's realm and page; True when it was one."""
    response = flow.response
    if response is None or response.status_code not in (401, 407):
        return False
    ident = decider.identify(decider.snapshot(), flow.client_conn, {})
    realm = realm_for(configured, ident)
    header = "Proxy-Authenticate" if response.status_code == 407 else "WWW-Authenticate"
    values = response.headers.get_all(header)
    if not any(MITMPROXY_REALM in v for v in values):
        return False
    challenges = [basic_challenge(realm) if MITMPROXY_REALM in v else v for v in values]
    policy = ident.policy if ident is not None else None
    page = page_for("login", flow.id, flow.request.host, "", None, policy)
    answer = make_response(render(page, flow.request.headers.get("accept")))
    answer.status_code = response.status_code
    answer.headers.set_all(header, challenges)
    flow.response = answer
    return True
