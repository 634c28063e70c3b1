"""The shadow policy in the live proxy: every request decided under a candidate too, never
enforced, and each difference written as a `shadow_diff` audit event.

Costs, by design:
- **off** (`aupgate_shadow_policy_dir` empty): one attribute test per hook;
- **on**: one more decision per request, taken the way the live one is (each name the request
  gives, the strictest wins) and remembered for the minute by request parts, so a repeated
  request costs a dict lookup; the events are capped per minute (`aupgate_shadow_max_per_minute`)
  and what the cap held back is counted in the next event written (`suppressed`).

A broken shadow never touches enforcement: a shadow directory that does not load is reported
(`shadow_load_failed`) and the last good shadow stays (none at start-up); an exception while
deciding under the shadow is logged and counted, and the request goes on as the live policy
decided. The shadow decides with the category index in force and at the same moment as the live
decision; a request whose minute ended between the two (so its window may differ) is not compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from mitmproxy import http

from ..audit.log import AuditLog
from ..engine import Decision, Facts, decide, decide_content, strictest
from ..gateway import Snapshot
from ..identity import Identity, identify
from ..lifecycle.diffsum import change_kind
from ..normalise import parse_url, url_text
from ..shadowset import ShadowLoad, ShadowSet
from ..uploads import RequestBody
from .deciding import Decider
from .decisionmemo import DecisionMemo
from .flowtext import authority_host
from .guard import options_error
from .options import check_positive
from .state import FlowRecord

__all__ = ["Shadow"]

logger = logging.getLogger(__name__)


class Shadow:
    """The candidate decided beside the live policy; `active` is False when there is none."""

    def __init__(self, decider: Decider, audit: Callable[[], AuditLog]) -> None:
        self.decider = decider
        self.audit = audit
        self.active = False
        self.set: ShadowSet | None = None
        self.max_per_minute = 600
        self.errors = 0
        self._memo = DecisionMemo()
        self._idents: dict[tuple[int, str, str], Identity] = {}
        self._minute = -1
        self._written = 0
        self._suppressed = 0
        self._complained = -1
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ loading

    def configure(self, options: Any, updated: set[str], today: Callable[[], date]) -> None:
        """The `aupgate_shadow_*` options: the directory ("" turns the shadow off) and the cap."""
        if "aupgate_shadow_max_per_minute" in updated:
            try:
                check_positive("aupgate_shadow_max_per_minute",
                               options.aupgate_shadow_max_per_minute, allow_zero=True)
            except ValueError as exc:
                raise options_error(f"aupgate: {exc}") from exc
            self.max_per_minute = options.aupgate_shadow_max_per_minute
        if "aupgate_shadow_policy_dir" not in updated:
            return
        self._idents.clear()
        directory = options.aupgate_shadow_policy_dir
        if not directory:
            self.set, self.active = None, False
            return
        self.set = ShadowSet(Path(directory))
        self._report(self.audit(), self.set.load(today()), reload=False)
        self.active = self.set.policies is not None

    def _report(self, audit: AuditLog, outcome: ShadowLoad, *, reload: bool) -> None:
        shadow = self.set
        assert shadow is not None
        if outcome.ok:
            if not outcome.changed:
                return
            policies = shadow.policies
            assert policies is not None
            logger.warning("aupgate: shadow policies %s %s from %s (decided, never enforced)",
                           "reloaded" if reload else "loaded", outcome.digest[:12],
                           shadow.directory)
            audit.event("shadow_loaded", directory=str(shadow.directory), digest=outcome.digest,
                        reload=reload, agencies=sorted(policies.policies),
                        agency_digests={a: p.digest for a, p in sorted(policies.policies.items())},
                        warnings=[str(p) for p in outcome.problems])
            self._idents.clear()
            return
        # warnings, not errors: mitmdump stops when errors are logged during start-up, and a
        # shadow must never stop (or otherwise change) the gateway
        for problem in outcome.problems:
            logger.warning("aupgate: shadow: %s", problem)
        logger.warning("aupgate: shadow policies in %s NOT loaded (%d problem(s)); %s",
                     shadow.directory, len(outcome.problems),
                     "the last good shadow stays" if shadow.policies else "no shadow runs")
        audit.event("shadow_load_failed", directory=str(shadow.directory),
                    digest=outcome.digest, errors=[str(p) for p in outcome.problems],
                    kept=shadow.digest or None)

    def start(self, interval: Callable[[], int], today: Callable[[], date]) -> None:
        """Watch the shadow directory (in the running loop) for edits."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch(interval, today))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self, interval: Callable[[], int], today: Callable[[], date]) -> None:
        while True:
            seconds = interval()
            await asyncio.sleep(seconds or 5)
            shadow = self.set
            if not seconds or shadow is None:
                continue
            try:
                if shadow.changed():
                    outcome = await asyncio.to_thread(shadow.load, today())
                    self._report(self.audit(), outcome, reload=True)
                    self.active = shadow.policies is not None
            except Exception:  # the watcher must survive anything, and never touch enforcing
                logger.exception("aupgate: shadow reload check failed")

    # ------------------------------------------------------------------ comparing

    def request(self, snap: Snapshot, ident: Identity, flow: http.HTTPFlow,
                live: Decision, body: RequestBody | None = None) -> None:
        """Compare the live decision of an HTTP request with the shadow's (an upload's `body`
        takes part, as in the live decision)."""
        try:
            audit, now, default_agency = self._moment()
            req = flow.request
            path, _, query = req.path.partition("?")
            names: list[str] = [req.host]
            if req.host_header:
                names.append(authority_host(req.host_header))
            if req.scheme == "https" and flow.client_conn.sni:
                names.append(flow.client_conn.sni)
            self._compare(audit, snap, ident, flow.id, "request", live, now, default_agency,
                          req.scheme, req.port, path or "/", query, names,
                          {"method": req.method, "scheme": req.scheme, "host": req.host,
                           "path": req.path}, req.method, body)
        except Exception:
            self._failed()

    def connect(self, snap: Snapshot, ident: Identity, flow: http.HTTPFlow,
                live: Decision) -> None:
        """Compare the live decision of a CONNECT (its host only) with the shadow's."""
        try:
            audit, now, default_agency = self._moment()
            req = flow.request
            self._compare(audit, snap, ident, flow.id, "connect", live, now, default_agency,
                          "https", req.port, "/", "", [req.host],
                          {"method": "CONNECT", "scheme": "https", "host": req.host,
                           "port": req.port})
        except Exception:
            self._failed()

    def content(self, record: FlowRecord, flow: http.HTTPFlow, live: Decision | None,
                kinds: frozenset[str]) -> None:
        """Compare what the content rules decide once the response headers came."""
        try:
            audit, now, default_agency = self._moment()
            snap, ident, request_decision = self.decider.snapshot(), record.identity, \
                record.decision
            shadow_ident = self._identity(ident, default_agency)
            if shadow_ident is None or shadow_ident.policy is None:
                return
            req = flow.request
            path, _, query = req.path.partition("?")
            url = parse_url(url_text(req.scheme, req.host, req.port, path or "/", query))
            facts = Facts(url=url, user=ident.user, client=ident.client)
            shadow = decide_content(shadow_ident.policy, snap.index, facts, kinds, now)
            before = live or request_decision
            if shadow is None or before is None:
                return
            self._emit(audit, ident, flow.id, "response", before, shadow, shadow_ident,
                       {"method": req.method, "scheme": req.scheme, "host": req.host,
                        "path": req.path, "content": sorted(kinds)})
        except Exception:
            self._failed()

    def _moment(self) -> tuple[AuditLog, datetime, str]:
        decider = self.decider
        return self.audit(), decider.now(), decider.default_agency

    def _identity(self, ident: Identity, default_agency: str) -> Identity | None:
        shadow = self.set
        if shadow is None or shadow.policies is None:
            return None
        key = (id(shadow.policies), ident.client_text, default_agency)
        known = self._idents.get(key)
        if known is None:
            if len(self._idents) > 4096:
                self._idents.clear()
            known = self._idents[key] = identify(shadow.policies, ident.client,
                                                 default_agency=default_agency or None)
        return known.with_user(ident.user) if ident.user else known

    def _compare(self, audit: AuditLog, snap: Snapshot, ident: Identity, request_id: str,
                 phase: str, live: Decision, now: datetime, default_agency: str, scheme: str,
                 port: int, path: str, query: str, names: Sequence[str],
                 fields: dict[str, Any], method: str = "GET",
                 body: RequestBody | None = None) -> None:
        shadow_ident = self._identity(ident, default_agency)
        if shadow_ident is None:
            return
        live_policy = ident.policy
        if live_policy is not None and live_policy.schedule.window_at(now) != live.window:
            return  # the minute turned between the two decisions: not comparable
        policy = shadow_ident.policy
        if policy is None:
            self._emit(audit, ident, request_id, phase, live, None, shadow_ident, fields)
            return
        upload = body is not None and body.sends_body
        kinds = body.kinds if body is not None and upload else frozenset()
        key = (id(policy), ident.client_text, ident.user, scheme, tuple(names), port, path,
               query, method, upload, kinds)
        known = self._memo.get(snap, key)
        if known is None:
            decisions: list[Decision] = []
            seen: set[str] = set()
            for name in names:
                url = parse_url(url_text(scheme, name, port, path, query))
                if url.host in seen:
                    continue
                seen.add(url.host)
                facts = Facts(url=url, user=ident.user, client=ident.client, method=method,
                              sends_body=upload, kinds=kinds)
                decisions.append(decide(policy, snap.index, facts, now))
            shadow = strictest(decisions)
            self._memo.put(key, shadow, url)
        else:
            shadow = known[0]
        self._emit(audit, ident, request_id, phase, live, shadow, shadow_ident, fields)

    def _emit(self, audit: AuditLog, ident: Identity, request_id: str, phase: str,
              live: Decision, shadow: Decision | None, shadow_ident: Identity,
              fields: dict[str, Any]) -> None:
        kind: str | None
        if shadow is None:
            kind = "refused"
        elif shadow.agency != live.agency:
            kind = "agency"
        else:
            kind = change_kind(live, shadow)
        if kind is None:
            return
        minute = int(time.time()) // 60
        if minute != self._minute:
            self._minute, self._written = minute, 0
        if self._written >= self.max_per_minute:
            self._suppressed += 1
            return
        self._written += 1
        suppressed, self._suppressed = self._suppressed, 0
        policy = shadow_ident.policy
        audit.event(
            "shadow_diff", request_id=request_id, phase=phase, client=ident.client_text,
            user=ident.user, agency=live.agency, policy_digest=ident.policy_digest,
            **fields, categories=list(live.categories), window=live.window,
            action=live.action, rule=live.rule, clauses=list(live.clauses), step=live.step,
            shadow_agency=shadow.agency if shadow is not None else None,
            shadow_digest=policy.digest if policy is not None else None,
            shadow_action=shadow.action if shadow is not None else None,
            shadow_rule=shadow.rule if shadow is not None else None,
            shadow_clauses=list(shadow.clauses) if shadow is not None else [],
            shadow_step=shadow.step if shadow is not None else None,
            change=kind, suppressed=suppressed)

    def _failed(self) -> None:
        self.errors += 1
        minute = int(time.time()) // 60
        if minute != self._complained:
            self._complained = minute
            logger.exception("aupgate: deciding under the shadow policy failed (%d so far); "
                             "enforcement is unaffected", self.errors)
