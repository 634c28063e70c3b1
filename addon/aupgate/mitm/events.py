"""The audit events the proxy writes, built from what mitmproxy and the addon know.

One function per event shape, so the hooks say *when* something is recorded and this module says
*what*: the decision line of an HTTP request (once status and size are known), of a CONNECT and
of a ClientHello passed through, domain fronting, engine errors, and the gateway's own start,
stop and reloads.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from mitmproxy import connection, ctx, http

from ..audit.log import AuditLog
from ..engine import Decision, strictest
from ..errors import AupgateError
from ..gateway import Gateway, ReloadOutcome, Snapshot
from ..hostname import normalise_host, registered_domain
from ..identity import Identity
from .deciding import Decider
from .flowtext import authority_host
from .guard import InjectedFaultError
from .options import Fault
from .state import MARK, FlowRecord, Tunnel

__all__ = [
    "agency_digests",
    "audit_connect",
    "audit_fronting",
    "audit_passthrough",
    "audit_refused_head",
    "audit_request",
    "hosts",
    "listen_text",
    "report_reload",
]

logger = logging.getLogger(__name__)


def audit_request(audit: AuditLog, flow: http.HTTPFlow, record: FlowRecord | None,
                  fault: Fault | None) -> None:
    """The decision line of one HTTP request, once (later calls for the same flow do nothing).

    The flow keeps a plain copy of what was decided and done (`state.MARK`), for whoever reads
    it back from a saved flow file.
    """
    if record is None or record.audited:
        return
    record.audited = True
    req = flow.request
    d = record.decision
    ident = record.identity
    policy = ident.policy
    response = flow.response
    status = size = None
    if response is not None:
        status = response.status_code
        raw = response.raw_content
        size = len(raw) if raw is not None else None
    if record.bytes_counted is not None:
        size = record.bytes_counted
    if fault is not None and fault.point == "audit" and fault.host in (None, req.host):
        raise InjectedFaultError("injected fault at audit")
    fields: dict[str, Any] = {
        "request_id": flow.id,
        "phase": record.phase,
        "client": ident.client_text,
        "user": ident.user,
        "agency": policy.agency if policy is not None else None,
        "policy_digest": ident.policy_digest,
        "method": req.method,
        "scheme": req.scheme,
        **hosts(d, authority_host(req.authority) if req.authority else req.host),
        "path": req.path,  # the audit log scrubs it (redaction.scrub_url)
        "http_version": req.http_version,
        "categories": d.categories if d is not None else (),
        "rule": d.rule if d is not None else None,
        "clauses": d.clauses if d is not None else (),
        "action": d.action if d is not None else None,
        "step": d.step if d is not None else None,
        "window": d.window if d is not None else None,
        "grant": d.grant if d is not None else None,
        "network": d.network if d is not None else None,
        "device": d.device if d is not None else None,
        "enforced": record.enforced,
        "status": status,
        "bytes": size,
        # what the request did, even when a response's content decided (judged as read)
        "direction": record.direction or (d.direction if d is not None else None),
        "request_bytes": record.request_bytes,
        "error": flow.error.msg if flow.error else None,
    }
    if record.extra:
        fields.update(record.extra)
    flow.metadata[MARK] = record.mark()
    audit.record("decision", fields)


def hosts(decision: Decision | None, raw: str) -> dict[str, str | None]:
    """`host`, the canonical name decided (what `review --host` matches), and `host_raw`, the
    spelling the request used, when it differs (`WWW.BET365.COM.`, `0x7f.0.0.3`)."""
    host = decision.host if decision is not None else _canonical(raw)
    if raw == host or not raw:
        return {"host": host or None}
    return {"host": host, "host_raw": raw}


def _canonical(raw: str) -> str:
    try:
        return normalise_host(raw)
    except AupgateError:
        return raw


def audit_refused_head(audit: AuditLog, decider: Decider, client: connection.Client,
                       status: int, reason: str) -> None:
    """A request head refused while it arrived (too large): who sent it, and why."""
    ident: Identity | None = None
    with contextlib.suppress(Exception):  # no policies loaded: the line still names the client
        ident = decider.identify(decider.snapshot(), client, {})
    audit.event(
        "decision", request_id=client.id, phase="request",
        client=ident.client_text if ident else None, user=None,
        agency=ident.policy.agency if ident and ident.policy else None,
        policy_digest=ident.policy_digest if ident else None, method=None, scheme=None,
        host=None, path=None, categories=[], rule=None, clauses=[], action=None,
        enforced="refused", reason=reason, status=status, bytes=None)


def audit_connect(audit: AuditLog, flow: http.HTTPFlow, ident: Identity, d: Decision | None,
                  enforced: str) -> None:
    """The decision line of a CONNECT (the tunnel's host, before any TLS)."""
    audit.event(
        "decision", request_id=flow.id, phase="connect", client=ident.client_text,
        user=ident.user, agency=ident.policy.agency if ident.policy else None,
        policy_digest=ident.policy_digest, method="CONNECT", scheme="https",
        **hosts(d, flow.request.host), port=flow.request.port, path=None,
        categories=list(d.categories) if d else [], rule=d.rule if d else None,
        clauses=list(d.clauses) if d else [], action=d.action if d else None,
        window=d.window if d else None, intercept=d.intercept if d else None,
        enforced=enforced, status=flow.response.status_code if flow.response else 200,
        bytes=None)


def audit_passthrough(audit: AuditLog, client_id: str, ident: Identity, decision: Decision,
                      sni: str | None, tunnel: Tunnel) -> None:
    """The decision line of a never-decrypt ClientHello: passed through, or its upstream failed."""
    assert ident.policy is not None
    audit.event(
        "decision", request_id=client_id, phase="tls", client=ident.client_text,
        user=ident.user, agency=ident.policy.agency, policy_digest=ident.policy_digest,
        method=None, scheme="https",
        host=decision.host, sni=sni, connect_host=tunnel.connect_host, path=None,
        categories=list(decision.categories), rule=decision.rule,
        clauses=list(decision.clauses), action=decision.action, window=decision.window,
        intercept="never", enforced="refused" if tunnel.refuse else "passthrough",
        status=None, bytes=None)


def audit_fronting(audit: AuditLog, request_id: str, ident: Identity,
                   decisions: Sequence[Decision], phase: str) -> None:
    """Names of one request that belong to different registered domains (domain fronting)."""
    if len(decisions) < 2:
        return
    domains = {_registered(d.host) for d in decisions}
    if len(domains) > 1:
        audit.event(
            "domain_mismatch", request_id=request_id, phase=phase,
            client=ident.client_text, user=ident.user,
            agency=ident.policy.agency if ident.policy else None,
            policy_digest=ident.policy_digest,
            names=[d.host for d in decisions],
            actions=[d.action for d in decisions],
            action=strictest(decisions).action)


def _registered(host: str) -> str:
    try:
        return registered_domain(host)
    except AupgateError:
        return host


def agency_digests(snap: Snapshot) -> dict[str, str]:
    """Each agency's policy file digest: what a decision's `policy_digest` refers to."""
    return {agency: policy.digest for agency, policy in sorted(snap.policies.policies.items())}


def report_reload(audit: AuditLog, gateway: Gateway | None, outcome: ReloadOutcome) -> None:
    """Log and audit one reload attempt: what changed, or why the last good set stays."""
    if outcome.ok:
        logger.warning("aupgate: reloaded %s (%s)", outcome.part, outcome.digest[:12])
        extra: dict[str, Any] = {}
        snap = gateway.current if gateway is not None else None
        if snap is not None and outcome.part == "policies":
            extra = {"agencies": sorted(snap.policies.policies),
                     "agency_digests": agency_digests(snap)}
        elif outcome.entries is not None:
            extra = {"entries": outcome.entries}
        audit.event("policy_reloaded", part=outcome.part, digest=outcome.digest,
                    warnings=[str(p) for p in outcome.problems], **extra)
        return
    for problem in outcome.problems:
        logger.error("aupgate: %s", problem)
    logger.error("aupgate: %s NOT reloaded: %d error(s); the last good %s stay in force",
                 outcome.part, len(outcome.errors), outcome.part)
    audit.event("policy_reload_failed", part=outcome.part, digest=outcome.digest,
                errors=[str(p) for p in outcome.errors])


def listen_text() -> str:
    """The addresses the proxy listens on, `HOST:PORT` (comma-separated when several)."""
    addresses: list[tuple[Any, ...]] = []
    server = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
    with contextlib.suppress(Exception):
        addresses = list(server.listen_addrs())
    if not addresses:
        addresses = [(ctx.options.listen_host or "127.0.0.1", ctx.options.listen_port)]
    return ", ".join(f"[{a[0]}]:{a[1]}" if ":" in str(a[0]) else f"{a[0]}:{a[1]}"
                     for a in addresses)
