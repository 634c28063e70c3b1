"""Deciding for the proxy: who asks, which names a request gives, and the decision for each.

A request names its destination up to three times (the request target or CONNECT host, the Host
header or `:authority`, the TLS SNI) and they need not agree: each distinct name is decided and
the strictest decision wins (`engine.strictest`). The common request gives one name, and its
decision is remembered for the minute by request parts (`DecisionMemo`), so most requests cost a
dict lookup. The clock is read here, at the edge: `aupgate_fixed_time` freezes it, and
`aupgate_clock_from` starts it at a given time when the proxy serves and lets it run (tests and
demos of what happens at a window boundary).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mitmproxy import connection, http

from ..engine import Decision, Facts, decide, decide_content, strictest
from ..gateway import Gateway, Snapshot
from ..identity import Identity, client_address, identify
from ..normalise import Url, parse_url, url_text
from ..uploads import RequestBody
from .decisionmemo import DecisionMemo
from .flowtext import RequestUrls, authority_host
from .guard import InjectedFaultError
from .options import Fault

__all__ = ["Decider"]

logger = logging.getLogger(__name__)


class Decider:
    """The policies in force, the clock, and the memos that make a request's decision cheap."""

    def __init__(self) -> None:
        self.gateway: Gateway | None = None
        self.fixed_time: datetime | None = None
        self.clock_from: datetime | None = None
        self._clock_origin: float | None = None  # monotonic time the running clock started
        self.fault: Fault | None = None
        self.default_agency: str = ""
        self.urls = RequestUrls()
        self.decisions = DecisionMemo()
        # client connection id -> (policies' digest, the identity without a login)
        self._clients: dict[str, tuple[str, Identity]] = {}

    # ------------------------------------------------------------------ time and policies

    def now(self) -> datetime:
        if self.fixed_time is not None:
            return self.fixed_time
        if self.clock_from is not None:
            origin = self._clock_origin
            if origin is None:
                return self.clock_from  # not serving yet: the clock has not started
            return self.clock_from + timedelta(seconds=time.monotonic() - origin)
        return datetime.now(UTC)

    def freeze(self, fixed: datetime | None) -> None:
        """Decide at `fixed` from now on (None: the real clock); remembered decisions go.

        A frozen clock is a test aid: it is said at warning level every time it is set."""
        self.fixed_time = fixed
        self.decisions.freeze(fixed)
        if fixed is not None:
            logger.warning("!!! aupgate: POLICY CLOCK FROZEN AT %s (aupgate_fixed_time); "
                           "every decision uses this time. Never use this in production.",
                           fixed.isoformat())

    def set_clock(self, fixed: datetime | None, running_from: datetime | None) -> None:
        """`aupgate_fixed_time` and `aupgate_clock_from` (ValueError when both are set)."""
        if fixed is not None and running_from is not None:
            raise ValueError("aupgate_clock_from and aupgate_fixed_time exclude each other")
        self.freeze(fixed)  # says so at warning level when it freezes
        self.run_from(running_from)
        if running_from is not None:
            logger.warning("!!! aupgate: POLICY CLOCK SET: it runs from %s once the proxy "
                           "serves (aupgate_clock_from). Never use this in production.",
                           running_from.isoformat())

    def run_from(self, start: datetime | None) -> None:
        """Run the policy clock from `start` once `start_clock` is called (None: the real
        clock); remembered decisions go, and they are remembered by the policy clock's minute."""
        self.clock_from, self._clock_origin = start, None
        self.decisions.use_clock(None if start is None else self._epoch_seconds)

    def start_clock(self) -> None:
        """The proxy serves: a clock set by `run_from` starts running now (once)."""
        if self.clock_from is not None and self._clock_origin is None:
            self._clock_origin = time.monotonic()

    def _epoch_seconds(self) -> float:
        now = self.now()
        if now.tzinfo is None:  # agency-local: minutes fall on the same seconds in any zone
            return (now - datetime(1970, 1, 1)).total_seconds()
        return now.timestamp()

    @property
    def clock_frozen(self) -> bool:
        """True when the policy clock does not move (`aupgate_fixed_time`)."""
        return self.fixed_time is not None

    def snapshot(self) -> Snapshot:
        if self.gateway is None:
            raise RuntimeError("aupgate is not configured: no policies loaded")
        return self.gateway.current

    def forget_clients(self, client_id: str | None = None) -> None:
        """Drop one connection's remembered identity, or all (the default agency changed)."""
        if client_id is None:
            self._clients.clear()
        else:
            self._clients.pop(client_id, None)

    # ------------------------------------------------------------------ who

    def identify(self, snap: Snapshot, client: connection.Client,
                 metadata: dict[str, Any]) -> Identity:
        """Client address -> agency (or the default agency); the proxy login names the user.

        The address and its agency are worked out once per connection and policy set: a
        keep-alive connection carries many requests, and a reload may move the client.
        """
        cached = self._clients.get(client.id)
        if cached is None or cached[0] != snap.policy_digest:
            address = client_address(client.peername)
            # keyed by the policies' digest, not the snapshot: an idle connection must not keep
            # a replaced category index alive
            cached = self._clients[client.id] = (
                snap.policy_digest,
                identify(snap.policies, address, default_agency=self.default_agency))
        auth = metadata.get("proxyauth")
        if not auth:
            return cached[1]  # no login: the connection's identity, shared by its requests
        user = str(auth[0]) if isinstance(auth, tuple) and auth[0] else None
        return cached[1].with_user(user)

    # ------------------------------------------------------------------ what

    def check_fault(self, point: str, host: str) -> None:
        """Test mode: `aupgate_fault` makes this step raise, to prove the gateway fails closed."""
        fault = self.fault
        if fault is not None and fault.point == point and fault.host in (None, host):
            raise InjectedFaultError(f"injected fault at {point} for {host}")

    def decide(self, snap: Snapshot, ident: Identity, url: Url, point: str = "decide",
               method: str = "GET", body: RequestBody | None = None) -> Decision:
        self.check_fault(point, url.host)
        assert ident.policy is not None
        groups = ident.directory_groups
        if body is None or not body.sends_body:
            facts = Facts(url=url, user=ident.user, client=ident.client, method=method,
                          directory_groups=groups)
        else:  # an upload: its direction and what its body shows take part
            facts = Facts(url=url, user=ident.user, client=ident.client, method=method,
                          sends_body=True, kinds=body.kinds, directory_groups=groups)
        return decide(ident.policy, snap.index, facts, self.now())

    def decide_names(self, snap: Snapshot, ident: Identity, scheme: str, port: int,
                     path: str, query: str, names: Sequence[str | None],
                     point: str = "decide", known: Decision | None = None,
                     method: str = "GET", body: RequestBody | None = None,
                     ) -> tuple[Decision, list[Decision]]:
        """Decide each distinct name (request host, Host header, SNI) once; the strictest wins.

        `known` is a decision already taken for one of the names with the same scheme, port and
        target (the CONNECT host's, at the ClientHello): it is used for its name instead of
        deciding that name again.
        """
        decisions: list[Decision] = []
        seen: set[str] = set()
        for name in names:
            if not name:
                continue
            url = parse_url(url_text(scheme, name, port, path, query))
            if url.host in seen:
                continue
            seen.add(url.host)
            if known is not None and known.host == url.host:
                self.check_fault(point, url.host)
                decisions.append(known)
            else:
                decisions.append(self.decide(snap, ident, url, point, method, body))
        return strictest(decisions), decisions

    def decide_request(self, snap: Snapshot, ident: Identity, flow: http.HTTPFlow, path: str,
                       query: str, body: RequestBody | None = None,
                       ) -> tuple[Decision, list[Decision] | None, Url | None]:
        """A request's decision; each name's decision when it named several (else None); its URL
        (None with several names).

        The names this request gives for its destination (the request's host, the Host header or
        :authority, the SNI), each decided once; usually they are one name, decided once.
        """
        req = flow.request
        scheme, host, port = req.scheme, req.host, req.port
        lower = host.lower()
        first: list[str] = []
        others: list[str] = []
        authority = req.authority
        if authority:
            # An absolute-form target inside a tunnel, or HTTP/2's :authority: the name the
            # upstream routes on (RFC 9112 3.2.2), so it comes first and names the request when
            # every name is decided alike.
            named = authority_host(authority)
            if named.lower() != lower:
                first.append(named)
        host_header = req.host_header
        if host_header and host_header != authority:
            named = authority_host(host_header)
            if named.lower() != lower:
                others.append(named)
        if scheme == "https":
            sni = flow.client_conn.sni
            if sni and sni.lower() != lower:
                others.append(sni)
        method = req.method
        if first or others:
            decision, decisions = self.decide_names(snap, ident, scheme, port, path or "/",
                                                    query, [*first, host, *others], method=method,
                                                    body=body)
            return decision, decisions, None  # the request named several hosts
        if body is not None and body.sends_body:  # uploads are few: decided each time
            url = self.urls.url(scheme, host, port, path or "/", query)
            return self.decide(snap, ident, url, method=method, body=body), None, url
        policy = ident.policy
        key = (id(policy), ident.client_text, ident.user, ident.directory_groups, scheme, host,
               port, path, query)
        known = self.decisions.get(snap, key)
        if known is None or self.fault is not None:
            url = self.urls.url(scheme, host, port, path or "/", query)
            decision = self.decide(snap, ident, url, method=method)
            self.decisions.put(key, decision, url)
        else:
            decision, url = known
        return decision, None, url

    def decide_content(self, flow: http.HTTPFlow, ident: Identity, url: Url | None,
                       kinds: frozenset[str], sends_body: bool = False) -> Decision | None:
        """The content rules' decision for what the response (or the request's streaming body)
        turned out to be, if any. `sends_body` is True only for the request's own body (its
        direction is the request's); a response's content is downloaded, judged as read."""
        policy = ident.policy
        assert policy is not None
        if url is None:
            req = flow.request
            path, _, query = req.path.partition("?")
            url = self.urls.url(req.scheme, req.host, req.port, path or "/", query)
        facts = Facts(url=url, user=ident.user, client=ident.client, method=flow.request.method,
                      sends_body=sends_body, directory_groups=ident.directory_groups)
        return decide_content(policy, self.snapshot().index, facts, kinds, self.now())
