"""What happens to a request the policy lets through, before it goes upstream: the vendors'
headers and parameters the agency's policy asks for (`aupgate.rewrites`: tenant restrictions,
safe search, YouTube restricted mode), and a body that must be counted or read as it streams
(`uploads.upload_stream`).

Headers are *replaced*: every copy the client sent, under any spelling a server might read as the
same name, is removed first (mitmproxy keeps repeated headers, and some servers read `_` as `-`),
so a client cannot pre-set a more permissive tenant list or restricted mode, nor smuggle a second
copy next to ours.
"""

from __future__ import annotations

from collections.abc import Callable

from mitmproxy import http

from ..engine import Decision
from ..policy.model import Policy
from ..rewrites import header_key
from ..uploads import RequestBody
from . import uploads
from .deciding import Decider
from .state import FlowRecord

__all__ = ["apply_rewrites", "forward"]


def forward(
    flow: http.HTTPFlow,
    record: FlowRecord,
    body: RequestBody,
    *,
    decider: Decider,
    pass_covers: Callable[[FlowRecord, Decision], bool],
    fail: Callable[[BaseException], None],
    audit: Callable[[http.HTTPFlow], None],
) -> None:
    """Ready a passing request for upstream: rewrites, then the body's stream if it needs one."""
    policy = record.identity.policy
    assert policy is not None
    apply_rewrites(flow, policy, record)
    limit = policy.transfer_limit_bytes
    boundary = uploads.needs_stream(body, flow.request, limit)
    if boundary is None:
        return
    ident = record.identity
    flow.request.stream = uploads.upload_stream(
        flow, record, limit, boundary,
        decide=lambda kinds: decider.decide_content(flow, ident, record.url, kinds, True),
        pass_covers=lambda decision: pass_covers(record, decision),
        fail=fail,
        audit=lambda: audit(flow))


def apply_rewrites(flow: http.HTTPFlow, policy: Policy, record: FlowRecord) -> None:
    """Set the policy's vendor headers and search parameters on a request going upstream."""
    controls = policy.controls
    if not controls:
        return
    req = flow.request
    target, _, query = req.path.partition("?")  # the query is edited as sent
    url = record.url
    if url is not None:
        host, path = url.host, url.path
    else:  # a request that named several hosts: its own host decides where it goes
        host, path = req.host.lower().rstrip("."), target
    rewrite = controls.rewrite(host, path, query)
    if rewrite is None:
        return
    if rewrite.headers:
        replaced = {header_key(name) for name, _ in rewrite.headers}
        kept = [(name, value) for name, value in req.headers.fields
                if header_key(name.decode("latin-1")) not in replaced]
        added = [(name.encode(), value.encode()) for name, value in rewrite.headers]
        req.headers = http.Headers(kept + added)
    if rewrite.query is not None:
        req.path = f"{target}?{rewrite.query}"
    record.extra = {**(record.extra or {}), "rewrites": list(rewrite.controls)}
