"""Proxy logins for agencies with a directory: the 407, the `Proxy-Authorization` it brings
back, and the user and groups every request of the connection is then decided with.

The hooks hand over a request or CONNECT whose agency has a `directory:` section, with what to do
once its identity is known (`proceed`). What is known already is answered at once: a request in a
tunnel whose CONNECT logged in, a request repeating the header the connection logged in with, a
request without a header on a connection Kerberos authenticated (Negotiate is connection-based).
Anything else needs the directory (or the keytab), and that is awaited: mitmproxy waits for the
awaitable a hook returns, and the directory's blocking calls run in its own threads, so the event
loop keeps serving other traffic meanwhile.

- no header: 407 with the agency's challenges (Negotiate first when Kerberos is configured, then
  `Basic realm="<agency> internet gateway"`) and the login page; nothing is audited (every
  browser's first request looks like this);
- a good login: the connection remembers it (a keyed digest of the header, never the header),
  the header is removed before the request goes anywhere, `login` is audited (bounded);
- a refused login: 407 again, `login_failed` audited;
- the directory down: `directory_unavailable` audited and the "sign-in service cannot be
  reached" page (503): for plain HTTP at once; for HTTPS inside the tunnel (the CONNECT is let
  through to a tunnel that can never reach the site, so the browser shows the page), or at the
  CONNECT itself for never-decrypt sites and with `aupgate_https_block=refuse`. Logins in the
  cache keep working; with `on_unavailable: grace` so do recent ones (see the directory package).

Logins need the explicit proxy mode (a browser sends `Proxy-Authorization` only to a proxy it
was told about); in any other mode a directory agency's requests are refused with a page.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mitmproxy import ctx, http
from mitmproxy.proxy import mode_specs

from ..audit.log import AuditLog
from ..directory import (
    DirectoryUnavailable,
    LoginFailed,
    LoginOk,
    LoginOutcome,
    NegotiateToken,
    parse_authorization,
)
from ..directory.membership import membership_keys
from ..identity import Identity
from ..pages import Page, page_for, render
from .deciding import Decider
from .directories import Directories, DirectoryLogin
from .flowtext import shown_url
from .guard import Later
from .loginaudit import LoginAudit
from .responses import answer, make_response, respond
from .state import FlowRecord, FlowRecords

__all__ = ["ConnectionLogin", "LoginHost", "Logins"]

HEADER = "proxy-authorization"
ASK = ("This agency's internet gateway needs you to sign in with your agency account (user "
       "name and password) before you can use the internet.")
REFUSED = ("The user name or password was not accepted. Sign in with your agency account; "
           "your IT service desk can help if it keeps being refused.")
UNAVAILABLE = ("The directory that checks agency logins cannot be reached right now, so the "
               "gateway cannot let you in. Try again in a few minutes; if it persists, call "
               "your IT service desk.")
NOT_A_PROXY = ("This agency's gateway needs you to sign in, which browsers do only when the "
               "gateway is configured as their proxy (PAC file or proxy settings).")

Proceed = Callable[[Identity], None]


class LoginHost(Protocol):
    """What the logins need of the addon."""

    audit: AuditLog
    decider: Decider
    records: FlowRecords

    def refuse_tunnel(self, client_id: str, message: str) -> None: ...


@dataclass(slots=True)
class ConnectionLogin:
    """Who proved themselves on one client connection, and how."""

    digest: bytes  # keyed digest of the Proxy-Authorization value that proved it
    method: str  # basic | negotiate
    user: str | None
    groups: frozenset[str]  # the match keys of the user's directory groups
    tunnel: bool = False  # proved on a CONNECT that opened a tunnel: its requests are this user's
    unavailable: bool = False  # a tunnel opened while the directory was down: pages only

    def identity(self, ident: Identity) -> Identity:
        return ident.with_user(self.user, self.groups)


def is_explicit_proxy(flow: http.HTTPFlow) -> bool:
    """Whether the client talks to the gateway as its proxy (where Proxy-Authorization exists)."""
    return isinstance(flow.client_conn.proxy_mode, mode_specs.RegularMode | mode_specs.UpstreamMode)


class Logins:
    """The proxy's own login handling for directory agencies (replacing mitmproxy's proxyauth)."""

    def __init__(self, host: LoginHost) -> None:
        self.host = host
        self.directories = Directories()
        self.events = LoginAudit()
        self._connections: dict[str, ConnectionLogin] = {}
        self._key = os.urandom(32)  # the digests are useless outside this process

    def forget(self, client_id: str) -> None:
        """The client connection closed."""
        self._connections.pop(client_id, None)

    def then(self, flow: http.HTTPFlow, ident: Identity, proceed: Proceed,
             connect: bool) -> Later:
        """Log the request's client in (or use the login its connection has), then `proceed`
        with the identity; or answer it (407, a page). An awaitable when the directory or the
        keytab must be asked. Agencies without a directory (and unknown clients) proceed at
        once, as they are."""
        policy = ident.policy
        if policy is None or policy.directory is None:
            proceed(ident)
            return None
        login = self.directories.login_for(policy)
        if login is None:  # the policy was put in force without its login: never let it pass
            raise RuntimeError(f"no directory login for agency {policy.agency}")
        if not is_explicit_proxy(flow):
            self.host.records[flow] = FlowRecord(ident, None, "refused")
            respond(flow, self._page(flow, ident, "error", NOT_A_PROXY))
            return None
        state = self._connections.get(flow.client_conn.id)
        if state is not None and state.tunnel and not connect:
            if state.unavailable:
                self._unavailable_page(flow, ident)
            else:
                proceed(state.identity(ident))
            return None
        headers = flow.request.headers.get_all(HEADER)
        if not headers:
            if state is not None and state.method == "negotiate" and not state.unavailable:
                self._proceed(flow, state, state.identity(ident), proceed, connect)
            else:
                self._challenge(flow, ident, login, ASK)
            return None
        if len(headers) > 1:  # which one would count? neither
            refusal = LoginFailed("malformed", "", "several Proxy-Authorization headers")
            self.events.failed(self.host.audit, flow.id, ident, refusal.audit_fields(),
                               "unknown", time.monotonic())
            self._challenge(flow, ident, login, REFUSED)
            return None
        digest = self._digest(headers[0])
        if state is not None and state.digest == digest and not state.unavailable:
            self._proceed(flow, state, state.identity(ident), proceed, connect)
            return None
        return self._login(flow, ident, login, headers[0], digest, proceed, connect)

    # ------------------------------------------------------------------ asking the directory

    async def _login(self, flow: http.HTTPFlow, ident: Identity, login: DirectoryLogin,
                     header: str, digest: bytes, proceed: Proceed, connect: bool) -> None:
        parsed = parse_authorization(header)
        scheme = header.strip().partition(" ")[0].lower()
        method = scheme if scheme in ("basic", "negotiate") else "unknown"
        principal: str | None = None
        outcome: LoginOutcome
        if isinstance(parsed, NegotiateToken):
            if login.acceptor is None:
                outcome = LoginFailed("malformed", "", "Negotiate is not offered by this agency")
            else:
                from ..directory.negotiate import KerberosRefused  # gssapi: only with Kerberos

                accepted = await login.acceptor.accept_header_async(header)
                if isinstance(accepted, KerberosRefused):
                    self._refused(flow, ident, login, accepted.audit_fields(), method)
                    return
                principal = accepted.principal
                outcome = await login.authenticator.lookup(accepted.user)
        else:
            outcome = await login.authenticator.authenticate_header(header)
        self._connections.pop(flow.client_conn.id, None)
        if isinstance(outcome, LoginOk):
            self.events.login(self.host.audit, flow.id, ident, outcome, method,
                              time.monotonic(), principal)
            if self._client_left(flow):
                return
            name = outcome.user.name.lower()
            state = ConnectionLogin(digest, method, name, membership_keys(outcome.user.groups))
            self._connections[flow.client_conn.id] = state
            self._proceed(flow, state, state.identity(ident), proceed, connect)
        elif isinstance(outcome, DirectoryUnavailable):
            self.events.failed(self.host.audit, flow.id, ident, outcome.audit_fields(), method,
                               time.monotonic())
            if not self._client_left(flow):
                self._directory_down(flow, ident, method, connect)
        else:
            self._refused(flow, ident, login, outcome.audit_fields(), method)

    @staticmethod
    def _client_left(flow: http.HTTPFlow) -> bool:
        """The client closed its connection while the directory answered: its disconnect hook
        may have run already, so nothing is remembered for it (a tunnel, a login) that would
        never be forgotten, and the flow is killed rather than let go on undecided. The login
        or its failure is still audited."""
        if flow.client_conn.timestamp_end is None:
            return False
        if flow.killable:
            flow.kill()  # type: ignore[no-untyped-call]
        return True

    def _proceed(self, flow: http.HTTPFlow, state: ConnectionLogin, ident: Identity,
                 proceed: Proceed, connect: bool) -> None:
        """Logged in: the credentials go no further than the gateway; decide as this user."""
        if HEADER in flow.request.headers:
            del flow.request.headers[HEADER]
        proceed(ident)
        if connect and flow.response is None:
            state.tunnel = True  # the tunnel is open: every request in it is this user's

    def _refused(self, flow: http.HTTPFlow, ident: Identity, login: DirectoryLogin,
                 fields: dict[str, Any], method: str) -> None:
        self.events.failed(self.host.audit, flow.id, ident, fields, method, time.monotonic())
        self._challenge(flow, ident, login, REFUSED)

    def _directory_down(self, flow: http.HTTPFlow, ident: Identity, method: str,
                        connect: bool) -> None:
        """The page that says the directory cannot be reached, where the client can see it."""
        if not connect:
            self._unavailable_page(flow, ident)
            return
        if ctx.options.aupgate_https_block == "refuse" or self._never_decrypted(flow, ident):
            answer(flow, make_response(render(
                self._page(flow, ident, "login-unavailable", UNAVAILABLE),
                flow.request.headers.get("accept"))))
            return
        # Let the CONNECT open a tunnel that can never reach the site, so the page can be shown
        # inside it (browsers do not show the body of a refused CONNECT).
        self._connections[flow.client_conn.id] = ConnectionLogin(
            b"", method, None, frozenset(), tunnel=True, unavailable=True)
        self.host.refuse_tunnel(flow.client_conn.id, "the sign-in service is unavailable")

    def _never_decrypted(self, flow: http.HTTPFlow, ident: Identity) -> bool:
        decider = self.host.decider
        decision, _ = decider.decide_names(decider.snapshot(), ident, "https",
                                           flow.request.port, "/", "", [flow.request.host],
                                           "connect")
        return decision.intercept == "never"

    # ------------------------------------------------------------------ answers

    def _page(self, flow: http.HTTPFlow, ident: Identity, kind: str, reason: str) -> Page:
        req = flow.request
        url = f"{req.host}:{req.port}" if req.method == "CONNECT" else shown_url(req)
        return page_for(kind, flow.id, req.host, url, None, ident.policy, reason=reason)

    def _challenge(self, flow: http.HTTPFlow, ident: Identity, login: DirectoryLogin,
                   reason: str) -> None:
        """407 with the agency's challenges, Negotiate first, and the login page."""
        page = self._page(flow, ident, "login", reason)
        response = make_response(render(page, flow.request.headers.get("accept")))
        response.headers.set_all("Proxy-Authenticate", list(login.challenges))
        answer(flow, response)

    def _unavailable_page(self, flow: http.HTTPFlow, ident: Identity) -> None:
        """503: the directory cannot be reached; audited as a refused request."""
        self.host.records[flow] = FlowRecord(ident, None, "refused")
        respond(flow, self._page(flow, ident, "login-unavailable", UNAVAILABLE))

    def _digest(self, header: str) -> bytes:
        return hashlib.blake2b(header.encode("utf-8", "surrogateescape"), key=self._key,
                               digest_size=16, person=b"aupgate-conn").digest()
