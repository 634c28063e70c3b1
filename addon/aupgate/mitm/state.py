"""What the addon remembers about flows and client connections, kept in the addon itself.

mitmproxy copies, saves (`-w`, `save_stream_file`), replays and exports flows by serialising
their state, `flow.metadata` included. So the addon keeps its own record of a flow (which
references the policy and, through it, the memory-mapped category index) in a
`WeakKeyDictionary` keyed by the flow, as mitmproxy's own `proxyauth` keys its logins by
connection: the record lives exactly as long as the flow. `flow.metadata` gets only plain marks
that serialise and mean something to whoever reads a saved flow (`MARK`, `ANSWERED`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from mitmproxy import http

from ..engine import Decision
from ..identity import Identity
from ..normalise import Url

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


@dataclass(slots=True)
class FlowRecord:
    """What the audit event of one HTTP request will say; filled in as the flow progresses."""

    identity: Identity
    decision: Decision | None
    enforced: str  # passed | blocked | warned | pass-used | refused | error | continue | cut
    phase: str = "request"
    url: Url | None = None  # the request's own URL as decided (content rules reuse it)
    bytes_counted: int | None = None
    audited: bool = False
    extra: dict[str, Any] | None = None  # fields only some events have (content, work_reason)

    def mark(self) -> dict[str, Any]:
        """The plain, serialisable summary a saved flow keeps in `flow.metadata[MARK]`."""
        d = self.decision
        return {
            "phase": self.phase,
            "action": d.action if d is not None else None,
            "rule": d.rule if d is not None else None,
            "clauses": list(d.clauses) if d is not None else [],
            "enforced": self.enforced,
            "agency": self.identity.policy.agency if self.identity.policy is not None else None,
        }


class FlowRecords:
    """The addon's records of the flows in progress, dropped with the flows themselves."""

    __slots__ = ("_records",)

    def __init__(self) -> None:
        self._records: weakref.WeakKeyDictionary[http.HTTPFlow, FlowRecord] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, flow: http.HTTPFlow) -> FlowRecord | None:
        return self._records.get(flow)

    def put(self, flow: http.HTTPFlow, record: FlowRecord) -> FlowRecord:
        self._records[flow] = record
        return record

    def __len__(self) -> int:
        return len(self._records)
