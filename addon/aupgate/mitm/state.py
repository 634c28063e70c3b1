"""What the addon remembers about flows and client connections, kept in the addon itself.

mitmproxy copies, saves (`-w`, `save_stream_file`), replays and exports flows by serialising
their state, `flow.metadata` included. So the addon keeps its own record of a flow (which
references the policy and, through it, the category index) in a
`WeakKeyDictionary` keyed by the flow, as mitmproxy's own `proxyauth` keys its logins by
connection: the record lives exactly as long as the flow. `flow.metadata` gets only plain marks
that serialise and mean something to whoever reads a saved flow (`MARK`, `ANSWERED`). A record
is dropped once its request is audited (the `response` or `error` hook), or with its flow.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from mitmproxy import connection, http

from ..engine import Decision
from ..identity import Identity
from ..normalise import Url
from ..uploads import RequestBody

__all__ = ["ANSWERED", "MARK", "FlowRecord", "FlowRecords", "Tunnel"]

MARK = "aupgate"
"""`flow.metadata` key: what aupgate decided and did, as plain data (see `FlowRecord.mark`)."""
ANSWERED = "aupgate_answered"
"""`flow.metadata` key, True when aupgate answered the request itself (a page, a redirect)."""


@dataclass(slots=True)
class Tunnel:
    """What was decided for one client connection's CONNECT and ClientHello."""

    identity: Identity
    connect_host: str | None = None
    connect_decision: Decision | None = None  # reused at the ClientHello when the SNI agrees
    refuse: str | None = None  # set: fail the upstream connection with this message
    client: connection.Client | None = None
    port: int = 443
    sni: str | None = None
    # set while bytes pass that aupgate cannot read: "passthrough" (never decrypted) or "tcp"
    # (not TLS nor HTTP); such a tunnel is re-decided, as a whole, at a window boundary
    opaque: str | None = None
    decision: Decision | None = None  # what let the opaque tunnel through

    def pass_through(self, sni: str | None, port: int, decision: Decision) -> None:
        """Bytes aupgate cannot read pass (never-decrypt): remembered so that the tunnel is
        decided again, as a whole, at a window boundary (`reassess`)."""
        self.opaque, self.sni, self.port, self.decision = "passthrough", sni, port, decision


@dataclass(slots=True)
class FlowRecord:
    """What the audit event of one HTTP request will say; filled in as the flow progresses."""

    identity: Identity
    decision: Decision | None
    enforced: str  # passed | blocked | warned | pass-used | refused | error | continue | cut
    phase: str = "request"
    url: Url | None = None  # the request's own URL as decided (content rules reuse it)
    bytes_counted: int | None = None
    sends_body: bool = False  # the request carries a body (its direction is upload or publish)
    direction: str | None = None  # what the request does, as decided at requestheaders
    request_bytes: int | None = None  # its body: stated, or counted as it streamed
    audited: bool = False
    extra: dict[str, Any] | None = None  # fields only some events have (content, work_reason)
    holder: str | None = None  # whose warn pass would cover it (login or browser; warnflow)

    @classmethod
    def of_request(cls, identity: Identity, decision: Decision, url: Url | None,
                   body: RequestBody) -> FlowRecord:
        """The record of a request decided at `requestheaders`, with what its body is."""
        return cls(identity, decision, "passed", url=url, sends_body=body.sends_body,
                   direction=decision.direction,
                   request_bytes=body.length if body.sends_body else None,
                   extra={"content": sorted(body.kinds)} if body.kinds else None)

    def content_named_by(self, decision: Decision) -> str | None:
        """The content kind, of those detected for this flow, that the deciding rule names."""
        policy = self.identity.policy
        rule = next((r for r in policy.rules if r.id == decision.rule), None) if policy else None
        found = set((self.extra or {}).get("content") or ())
        named = found & set(rule.match.content or ()) if rule is not None else found
        return min(named) if named else None

    def mark(self) -> dict[str, Any]:
        """The plain, serialisable summary a saved flow keeps in `flow.metadata[MARK]`.

        Only atomic values, so the garbage collector does not track the mark: a process that
        keeps many flows (mitmweb, a benchmark) would otherwise walk every one on each full
        collection. The rule names the clauses (`aupgate clauses`).
        """
        d = self.decision
        return {
            "phase": self.phase,
            "action": d.action if d is not None else None,
            "rule": d.rule if d is not None else None,
            "enforced": self.enforced,
            "agency": self.identity.policy.agency if self.identity.policy is not None else None,
        }


FlowRecords = weakref.WeakKeyDictionary[http.HTTPFlow, FlowRecord]
"""The addon's records of the flows in progress, each dropped with its flow."""
