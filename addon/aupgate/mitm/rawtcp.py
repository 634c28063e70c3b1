"""Tunnels that carry neither TLS nor HTTP, and what a tunnel's CONNECT decision means inside it.

After a CONNECT answered 200, mitmproxy looks at the client's first bytes: TLS is intercepted (or
passed through, never-decrypt), HTTP is parsed, and anything else goes to its raw TCP layer,
which opens the upstream connection and relays bytes nobody decides: SSH, OpenVPN over TCP, an
obfuscated tunnel. `check` (the `tcp_start` hook) lets such a tunnel through only when its
CONNECT was allowed (allow or log) *and* its port is one the agency lists as `ports.raw`;
otherwise the upstream connection is refused (`Tunnel.refuse`, applied in `server_connect`,
before anything is sent) and the client's connection closed. Either way it is audited
(`phase: tcp`). In `page` mode a blocked CONNECT is answered 200 so that a page can be shown
inside it: those bytes never reach the blocked host either.

`within_tunnel`: requests inside a tunnel are held to its CONNECT's decision when that is
stricter (a CONNECT to a shut port carrying plain HTTP, a blocked host's tunnel in page mode).
"""

from __future__ import annotations

from mitmproxy import tcp

from ..audit.log import AuditLog
from ..engine import Decision
from ..policy.model import PORT_POLICY_RULE, SEVERITY
from ..ports import raw_allowed
from .deciding import Decider
from .state import Tunnel

__all__ = ["RAW_REASON", "check", "within_tunnel"]

RAW_REASON = ("The tunnel carried neither TLS nor HTTP (SSH, a VPN, another service), which is "
              "relayed only to ports the agency opens for it.")
PASSING = frozenset({"allow", "log"})


def within_tunnel(tunnel: Tunnel, decision: Decision) -> Decision:
    """The request's decision, or its tunnel's CONNECT decision when that is stricter."""
    known = tunnel.connect_decision
    if known is not None and SEVERITY[known.action] > SEVERITY[decision.action]:
        return known
    return decision


def check(decider: Decider, tunnels: dict[str, Tunnel], audit: AuditLog,
          flow: tcp.TCPFlow) -> None:
    """Decide a raw TCP flow before its upstream connection opens; audit what was done."""
    client = flow.client_conn
    snap = decider.snapshot()
    tunnel = tunnels.get(client.id)
    if tunnel is None:  # no CONNECT seen (transparent mode, tcp_hosts)
        tunnel = tunnels[client.id] = Tunnel(decider.identify(snap, client, {}), client=client)
    ident = tunnel.identity
    address = flow.server_conn.address
    host, port = (str(address[0]), int(address[1])) if address else ("", 0)
    decision = tunnel.connect_decision
    if decision is None and ident.policy is not None and host:
        decision, _ = decider.decide_names(snap, ident, "https", port, "/", "", [host],
                                           "connect")
    policy = ident.policy
    if decision is not None and policy is not None and decision.action in PASSING and (
            not raw_allowed(policy.ports, port)):
        ports = policy.ports.verdict
        decision = decision._replace(action="block", rule=PORT_POLICY_RULE,
                                     clauses=ports.clauses, reason=RAW_REASON, step="ports",
                                     grant=None)
    passed = decision is not None and decision.action in PASSING
    if not passed:
        tunnel.refuse = f"raw tunnel refused by policy: {decision.rule if decision else 'none'}"
    elif tunnel.opaque is None:  # relayed unread: decided again at a window boundary (reassess)
        tunnel.opaque, tunnel.decision, tunnel.port = "tcp", decision, port
    audit.event(
        "decision", request_id=flow.id, phase="tcp", client=ident.client_text, user=ident.user,
        agency=policy.agency if policy else None, policy_digest=ident.policy_digest,
        method=None, scheme="tcp", host=decision.host if decision else host, port=port,
        path=None, categories=list(decision.categories) if decision else [],
        rule=decision.rule if decision else None,
        clauses=list(decision.clauses) if decision else [],
        action=decision.action if decision else None,
        reason=decision.reason if decision else "No agency serves this client.",
        window=decision.window if decision else None,
        enforced="passed" if passed else "refused", status=None, bytes=None)
