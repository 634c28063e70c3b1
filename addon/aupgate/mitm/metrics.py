"""What one gateway process counts for Prometheus, and the health it reports (aupgate.mitm.admin).

The numbers come from the two things that already know them, so nothing on the request path
changes: every audit event passes `GatewayMetrics.observe` on its way to the audit log
(decisions by agency, action, category and what was done; reloads; engine errors; window
boundaries and the warn passes they ended), and the state
of the gateway (the policy set and its digests, whether the audit file can be written, its write
errors) is read by `refresh` from the live objects: when scraped in a single process, and every
second in each worker of `aupgate run --workers` (prometheus-client's multiprocess mode: each
worker writes its values to files in `PROMETHEUS_MULTIPROC_DIR`, which the supervisor sums).

Labels are bounded: agencies and categories come from the loaded policies and the fixed category
ids, actions and phases from fixed sets; host names, users and clients are never labels.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics import MetricWrapperBase

from ..audit.log import AuditLog
from ..gateway import Gateway
from ..memo import remember

__all__ = ["REFRESH_SECONDS", "GatewayMetrics", "health_problems"]

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
"""How often a worker of `--workers` publishes its state gauges (the supervisor reads them)."""

MEMO_LIMIT = 4096
"""Kinds of decision line remembered with their counters (emptied, not evicted, when full)."""

_NOT_REQUESTS = frozenset({"connect", "tls", "server_connect", "boundary"})
"""Decision lines about a connection, not an HTTP request (every other phase is a request's:
request, response, upload, stream, continue, request-access)."""


def _label(value: Any) -> str:
    return "none" if value is None or value == "" else str(value)


def health_problems(gateway: Gateway | None, audit: AuditLog) -> list[str]:
    """Why this gateway should not get traffic (empty: healthy)."""
    problems = []
    if gateway is None or not gateway.current.policies.policies:
        problems.append("no policy loaded")
    for handle in audit.files:
        if not handle.healthy:
            problems.append(f"audit log cannot be written: {handle.last_error}")
    return problems


class GatewayMetrics:
    """The metrics of one gateway process, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "aupgate_requests", "HTTP requests decided, by agency, action and what was done "
            "(passed, blocked, warned, pass-used, refused, error, cut...)",
            ["agency", "action", "enforced"], registry=r)
        self.decisions = Counter(
            "aupgate_decisions", "Decision lines (requests, CONNECTs, TLS passthrough) by "
            "agency, phase, action and category; one per category of the decision ('none': "
            "uncategorised), so a sum over categories counts some twice",
            ["agency", "phase", "action", "category"], registry=r)
        self.engine_errors = Counter(
            "aupgate_engine_errors", "Flows failed closed because deciding raised, by phase",
            ["phase"], registry=r)
        self.window_boundaries = Counter(
            "aupgate_window_boundaries", "Window boundaries reached (an agency's window ended, or "
            "a grant's last day), by agency and why (window, grant)", ["agency", "why"],
            registry=r)
        self.boundary_passes_ended = Counter(
            "aupgate_boundary_passes_ended", "Warn passes ended at a window boundary (given in "
            "the window that ended), by agency", ["agency"], registry=r)
        self.reloads = Counter(
            "aupgate_reloads", "Hot reload attempts by part (policies, categories) and outcome "
            "(ok; failed: the last good set stays in force)", ["part", "outcome"], registry=r)
        self.reload_failing = Gauge(
            "aupgate_reload_failing", "1 while the latest reload of this part failed (the files "
            "on disk are broken; the last good set is in force)", ["part"], registry=r,
            multiprocess_mode="livemax")
        self.audit_write_errors = Counter(
            "aupgate_audit_write_errors", "Audit events that could not be written (each is "
            "counted in the next audit_gap line)", registry=r)
        self.audit_writable = Gauge(
            "aupgate_audit_writable", "1 when every audit file can be written (0 in any worker "
            "makes it 0)", registry=r, multiprocess_mode="livemin")
        self.policy_loaded = Gauge(
            "aupgate_policy_loaded", "1 when a policy set is loaded (0 in any worker makes it 0)",
            registry=r, multiprocess_mode="livemin")
        self.policy_info = Gauge(
            "aupgate_policy_info", "1 for the digest of the policy set and of the category "
            "lists in force (0: a digest in force earlier)", ["part", "digest"], registry=r,
            multiprocess_mode="livemax")
        self.agency_info = Gauge(
            "aupgate_agency_policy_info", "1 for each agency's policy file digest in force",
            ["agency", "digest"], registry=r, multiprocess_mode="livemax")
        self.heartbeat = Gauge(
            "aupgate_refreshed_timestamp_seconds", "When the state above was last read from the "
            "gateway (with --workers: the oldest of the live workers, each every second from "
            "its event loop; an old one is a stuck worker)", registry=r,
            multiprocess_mode="livemin")
        self._children: dict[tuple[Any, ...], Any] = {}
        # one entry per kind of decision line (agency, phase, action, outcome, category set)
        self._decision_counters: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._shown: dict[tuple[str, tuple[str, ...]], MetricWrapperBase] = {}
        self._audit_seen: tuple[int, int] = (0, 0)  # (id of the AuditLog, errors counted)

    # ------------------------------------------------------------------ events (the hot path)

    def observe(self, event: str, fields: dict[str, Any]) -> None:
        """Count one audit event (called by the audit log for every event it records)."""
        if event == "decision":
            get = fields.get
            key = (get("agency"), get("phase"), get("action"), get("enforced"),
                   tuple(get("categories") or ()))
            counters = self._decision_counters.get(key)
            if counters is None:
                counters = remember(self._decision_counters, key, self._counters_for(*key),
                                    MEMO_LIMIT)
            for counter in counters:
                counter.inc()
        elif event == "engine_error":
            self._child(self.engine_errors, _label(fields.get("phase"))).inc()
        elif event == "window_boundary":
            agency = _label(fields.get("agency"))
            self._child(self.window_boundaries, agency, _label(fields.get("why"))).inc()
            self._child(self.boundary_passes_ended, agency).inc(fields.get("passes_ended") or 0)
        elif event in ("policy_reloaded", "policy_reload_failed"):
            part = _label(fields.get("part"))
            failed = event == "policy_reload_failed"
            self._child(self.reloads, part, "failed" if failed else "ok").inc()
            self._child(self.reload_failing, part).set(1 if failed else 0)

    def _counters_for(self, agency: Any, phase: Any, action: Any, enforced: Any,
                      categories: tuple[Any, ...]) -> tuple[Any, ...]:
        """The counters one kind of decision line increments (remembered per kind)."""
        agency, phase, action = _label(agency), _label(phase), _label(action)
        counters = [self._child(self.decisions, agency, phase, action, str(category))
                    for category in categories or ("none",)]
        if phase not in _NOT_REQUESTS:
            counters.append(self._child(self.requests, agency, action, _label(enforced)))
        return tuple(counters)

    def _child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: labels() takes a lock and builds a tuple."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # ------------------------------------------------------------------ state (read, not counted)

    def refresh(self, gateway: Gateway | None, audit: AuditLog) -> None:
        """Set the state gauges from the live gateway and audit log."""
        files = audit.files
        self.audit_writable.set(1 if all(f.healthy for f in files) else 0)
        errors = sum(f.write_errors for f in files)
        log_id, counted = self._audit_seen
        if log_id != id(audit):
            counted = 0  # a reopened audit log counts from zero
        if errors > counted:
            self.audit_write_errors.inc(errors - counted)
        self._audit_seen = (id(audit), errors)
        snap = gateway.current if gateway is not None else None
        policies = snap.policies.policies if snap is not None else {}
        self.policy_loaded.set(1 if policies else 0)
        shown: dict[tuple[str, tuple[str, ...]], MetricWrapperBase] = {}
        if snap is not None:
            shown[("policy", ("policies", snap.policy_digest))] = self.policy_info
            shown[("policy", ("categories", snap.categories_digest))] = self.policy_info
            for agency, policy in policies.items():
                shown[("agency", (agency, policy.digest))] = self.agency_info
        for key, metric in shown.items():
            self._child(metric, *key[1]).set(1)
        for key, metric in self._shown.items():
            if key not in shown:
                self._child(metric, *key[1]).set(0)  # in force before; kept at 0, not removed
        self._shown = {**self._shown, **shown}
        self.heartbeat.set(time.time())

    async def publish(self, gateway_of: Callable[[], Gateway | None],
                      audit_of: Callable[[], AuditLog]) -> None:
        """A worker's loop: refresh the state gauges every second for the supervisor to read."""
        while True:
            try:
                self.refresh(gateway_of(), audit_of())
            except Exception:  # metrics must never stop the gateway
                logger.exception("aupgate: could not refresh the metrics")
            await asyncio.sleep(REFRESH_SECONDS)
