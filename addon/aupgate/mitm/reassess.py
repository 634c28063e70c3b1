"""At a window boundary: re-decide what is still open, close what the new window stops.

A request is decided when it arrives. A WebSocket, a streaming response or a tunnel opened at
12:59 under a lunch-time rule would otherwise carry on through the afternoon under the same
decision. So when an agency's window ends (`boundaries.BoundaryWatch`), everything of that agency
still open is decided again, as of now, the way it was decided when it opened:

- HTTP flows in progress (a response streaming or still awaited): the request's names, and the
  content rules for what the response turned out to be;
- WebSockets: the request that opened them;
- tunnels aupgate cannot read into (never-decrypt sites passed through, raw TCP after a CONNECT):
  the CONNECT host and the SNI.

What is now blocked, or warned without a live pass, is closed: its client connection is ended,
as mitmproxy ends an idle one (the connection handler's task is cancelled; mitmproxy then closes
the upstream side and runs its own end-of-flow hooks). A warn page cannot be shown in a stream
already running, and the passes given in the window that ended end with it (`passes.WindowEnd`).
Requests on the same client connection (HTTP/2 streams beside the closed one) end with it; the
browser retries them, and they are decided anew. Each closed flow gets a `decision` line
(`phase: boundary`, `enforced: closed`), and each boundary one `window_boundary` line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, http

from ..audit.log import AuditLog
from ..engine import Decision, strictest
from ..gateway import Snapshot
from ..identity import Identity
from ..policy.boundaries import Boundary
from ..policy.model import Policy
from .boundaries import BoundaryWatch, window_tag
from .deciding import Decider
from .passes import WindowEnd
from .state import ANSWERED, FlowRecord, Tunnel
from .warnflow import WarnFlow

__all__ = ["Boundaries", "Outcome", "Room", "at_boundary", "close_client"]

logger = logging.getLogger(__name__)


def close_client(client_id: str, why: str) -> bool:
    """End a client connection as mitmproxy ends an idle one; False if it is gone already."""
    proxyserver: Any = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
    handler = proxyserver.connections.get(client_id) if proxyserver is not None else None
    if handler is None:
        return False
    io = handler.transports.get(handler.client)
    if io is None or io.handler is None:
        return False
    io.handler.cancel(why)
    return True


OpenWebSocket = tuple[http.HTTPFlow, Decision | None, str | None]
"""An open WebSocket: its flow, what let it open, and whose warn pass covered it (`take_holder`)."""


class Boundaries:
    """The addon's side of window boundaries, so its hooks need only a line each: the timers
    (`BoundaryWatch`), the WebSockets still open, and the re-decision when a boundary comes."""

    def __init__(self, decider: Decider, warn: WarnFlow, audit: Callable[[], AuditLog],
                 records: Mapping[http.HTTPFlow, FlowRecord], tunnels: Mapping[str, Tunnel],
                 ) -> None:
        self._decider, self._warn, self._audit = decider, warn, audit
        self._records, self._tunnels = records, tunnels
        self.websockets: dict[str, OpenWebSocket] = {}
        self.watch = BoundaryWatch(decider.now, self._at_boundary)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """The proxy serves: a clock set by `aupgate_clock_from` starts, the timers are armed."""
        self._decider.start_clock()
        self.arm(loop)

    def arm(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """One timer per agency for its next boundary (again after a reload; none while the
        clock is frozen)."""
        loop = loop or asyncio.get_running_loop()
        gateway = self._decider.gateway
        self.watch.arm(loop, gateway.current.policies.policies if gateway else {},
                       frozen=self._decider.clock_frozen)

    def stop(self) -> None:
        self.watch.stop()

    def window_end(self, policy: Policy | None) -> WindowEnd | None:
        """When the window a pass given now would be given in ends (`passes.WindowEnd`)."""
        return self.watch.window_end(policy)

    def response(self, flow: http.HTTPFlow, record: FlowRecord | None) -> None:
        """A request's answer is in: a WebSocket follows and stays open, so it is re-decided
        at window boundaries until `websocket_end`."""
        if flow.websocket is not None:
            self.websockets[flow.id] = (flow, record.decision if record else None,
                                        record.holder if record else None)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self.websockets.pop(flow.id, None)

    def _at_boundary(self, policy: Policy, boundary: Boundary) -> None:
        room = Room(self._decider, self._warn, self._audit(), self._records, self.websockets,
                    self._tunnels)
        at_boundary(room, policy, boundary)


@dataclass(slots=True)
class Outcome:
    """What one boundary did in one agency."""

    passes_ended: int = 0
    open: int = 0  # flows and tunnels re-decided
    closed: int = 0


@dataclass(frozen=True, slots=True)
class Room:
    """What the re-decision reads: the addon's parts, handed over by the addon."""

    decider: Decider
    warn: WarnFlow
    audit: AuditLog
    records: Mapping[http.HTTPFlow, FlowRecord]
    websockets: dict[str, OpenWebSocket]  # open, by flow id
    tunnels: Mapping[str, Tunnel]


def at_boundary(room: Room, policy: Policy, boundary: Boundary) -> Outcome:
    """Re-decide everything of `policy`'s agency still open; close what must stop; audit it."""
    agency = policy.agency
    outcome = Outcome(passes_ended=room.warn.passes.end_window(window_tag(agency, boundary)))
    snap = room.decider.snapshot()
    for flow, record in list(room.records.items()):
        if record.decision is None or record.audited or record.phase == "continue" or (
                flow.metadata.get(ANSWERED) or flow.error is not None):
            continue  # answered by aupgate, refused, or over
        _one(room, snap, agency, outcome, "http", flow, record)
    for flow_id, (flow, opened, holder) in list(room.websockets.items()):
        if flow.error is not None or not flow.live:
            room.websockets.pop(flow_id, None)  # over (its end was not seen)
        else:
            _one(room, snap, agency, outcome, "websocket", flow, None, opened, holder)
    for client_id, tunnel in list(room.tunnels.items()):
        if tunnel.opaque is not None and tunnel.client is not None and not tunnel.refuse:
            _tunnel(room, snap, agency, outcome, client_id, tunnel)
    room.audit.event(
        "window_boundary", agency=agency, policy_digest=policy.digest,
        at=boundary.at.isoformat(), why=boundary.why, window_before=boundary.before,
        window=boundary.after, passes_ended=outcome.passes_ended, open=outcome.open,
        closed=outcome.closed)
    if outcome.closed or outcome.passes_ended:
        logger.info("aupgate: %s: %s -> %s at %s: %d open re-decided, %d closed, %d passes "
                    "ended", agency, boundary.before, boundary.after, boundary.at.isoformat(),
                    outcome.open, outcome.closed, outcome.passes_ended)
    return outcome


def _stops(room: Room, ident: Identity, decision: Decision, holder: str | None = None) -> bool:
    """Block, or warn without a live pass of this login or browser (`holder`)."""
    return decision.action == "block" or (
        decision.action == "warn" and not room.warn.has_pass(ident, decision.host, holder))


def _one(room: Room, snap: Snapshot, agency: str, outcome: Outcome, kind: str,
         flow: http.HTTPFlow, record: FlowRecord | None, opened: Decision | None = None,
         holder: str | None = None) -> None:
    """Re-decide one HTTP flow (its request, and its content if the response showed any);
    `opened` is what let a WebSocket open and `holder` whose pass covered it (an HTTP flow's
    record says both)."""
    decider = room.decider
    ident = decider.identify(snap, flow.client_conn, flow.metadata)
    if ident.policy is None or ident.policy.agency != agency:
        return
    outcome.open += 1
    before = record.decision if record is not None else opened
    req = flow.request
    try:
        path, _, query = req.path.partition("?")
        decision, _, url = decider.decide_request(snap, ident, flow, path, query)
        kinds = (record.extra or {}).get("content") if record is not None else None
        if kinds:
            found = decider.decide_content(flow, ident, url, frozenset(kinds))
            if found is not None:
                decision = strictest([decision, found])
    except Exception as exc:  # fail closed: what cannot be decided does not go on
        logger.exception("aupgate: re-deciding %s at a window boundary failed", req.host)
        _closed_by_error(room, flow.id, ident, req.host, exc)
        outcome.closed += close_client(flow.client_conn.id, "window boundary")
        return
    if not _stops(room, ident, decision, record.holder if record is not None else holder):
        return
    response = flow.response
    fields: dict[str, Any] = {
        "method": req.method, "scheme": req.scheme, "host": req.host, "path": req.path,
        "status": response.status_code if response is not None else None,
        "bytes": record.bytes_counted if record is not None else None,
    }
    if record is not None:
        record.audited = True  # this is its line; the error that follows the close adds none
        record.decision, record.phase, record.enforced = decision, "boundary", "closed"
    _audit_closed(room.audit, flow.id, kind, ident, decision, before, fields)
    outcome.closed += close_client(flow.client_conn.id, "window boundary")


def _tunnel(room: Room, snap: Snapshot, agency: str, outcome: Outcome, client_id: str,
            tunnel: Tunnel) -> None:
    """Re-decide a tunnel aupgate cannot read into, by its CONNECT host and SNI."""
    decider = room.decider
    assert tunnel.client is not None
    ident = decider.identify(snap, tunnel.client, {})
    if tunnel.identity.user:
        ident = ident.with_user(tunnel.identity.user)
    if ident.policy is None or ident.policy.agency != agency:
        return
    names = [tunnel.connect_host, tunnel.sni]
    if not any(names):
        return
    outcome.open += 1
    try:
        decision, _ = decider.decide_names(snap, ident, "https", tunnel.port, "/", "", names)
    except Exception as exc:
        logger.exception("aupgate: re-deciding a tunnel at a window boundary failed")
        _closed_by_error(room, client_id, ident, tunnel.connect_host or tunnel.sni or "", exc)
        outcome.closed += close_client(client_id, "window boundary")
        return
    if not _stops(room, ident, decision):
        return
    tunnel.refuse = f"closed at a window boundary: {decision.rule}"
    _audit_closed(room.audit, client_id, tunnel.opaque or "tunnel", ident, decision,
                  tunnel.decision, {"method": None, "scheme": "https", "host": decision.host,
                                    "port": tunnel.port, "sni": tunnel.sni,
                                    "connect_host": tunnel.connect_host, "path": None,
                                    "status": None, "bytes": None})
    outcome.closed += close_client(client_id, "window boundary")


def _audit_closed(audit: AuditLog, request_id: str, kind: str, ident: Identity,
                  d: Decision, before: Decision | None, fields: dict[str, Any]) -> None:
    """The `decision` line of a flow or tunnel closed at a boundary."""
    assert ident.policy is not None
    audit.record("decision", {
        "request_id": request_id, "phase": "boundary", "flow": kind,
        "client": ident.client_text, "user": ident.user, "agency": ident.policy.agency,
        "policy_digest": ident.policy_digest, **fields,
        "categories": d.categories, "rule": d.rule, "clauses": d.clauses, "action": d.action,
        "step": d.step, "window": d.window, "grant": d.grant, "network": d.network,
        "device": d.device, "enforced": "closed",
        "action_before": before.action if before is not None else None,
        "rule_before": before.rule if before is not None else None,
        "window_before": before.window if before is not None else None,
    })


def _closed_by_error(room: Room, request_id: str, ident: Identity, host: str,
                     exc: Exception) -> None:
    room.audit.event("engine_error", request_id=request_id, phase="boundary",
                     client=ident.client_text, host=host, error=repr(exc), action="block")
