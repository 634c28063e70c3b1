"""The admin endpoint's parts without a proxy: the address it may bind, what the metrics count
from audit events, the state they read, the supervisor's health, and the server itself."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from aupgate.audit.file import AuditFile
from aupgate.audit.log import AuditLog
from aupgate.mitm.admin import (
    AdminServer,
    WorkersCollector,
    loop_answers,
    parse_admin,
    workers_health,
)
from aupgate.mitm.metrics import GatewayMetrics, health_problems


@pytest.mark.parametrize(("text", "listen", "expected"), [
    ("", "127.0.0.1", None),
    ("9100", "0.0.0.0", ("127.0.0.1", 9100)),
    ("127.0.0.1:9100", "10.0.0.5", ("127.0.0.1", 9100)),
    ("127.0.0.2:9100", "10.0.0.5", ("127.0.0.2", 9100)),
    ("[::1]:9100", "0.0.0.0", ("::1", 9100)),
    ("10.0.0.5:9100", "10.0.0.5", ("10.0.0.5", 9100)),  # the interface the proxy serves
    ("[fd00::5]:9100", "fd00::5", ("fd00::5", 9100)),
])
def test_admin_address(text: str, listen: str, expected: tuple[str, int] | None) -> None:
    assert parse_admin(text, listen) == expected


@pytest.mark.parametrize(("text", "listen", "why"), [
    ("0.0.0.0:9100", "0.0.0.0", "binds only to a loopback"),  # a wildcard, even when listening so
    ("[::]:9100", "::", "binds only to a loopback"),
    ("10.0.0.6:9100", "10.0.0.5", "binds only to a loopback"),  # another interface
    ("10.0.0.5:9100", "", "binds only to a loopback"),
    ("localhost:9100", "127.0.0.1", "is not an IP address"),  # names are resolved by nobody
    ("127.0.0.1:", "127.0.0.1", "is not a port number"),
    ("127.0.0.1:0", "127.0.0.1", "is not a port number"),
    ("127.0.0.1:65536", "127.0.0.1", "is not a port number"),
    ("127.0.0.1:+80", "127.0.0.1", "is not a port number"),
    ("::1:9100", "127.0.0.1", "in brackets"),  # an IPv6 address needs brackets
    ("127.0.0.1 :9100", "127.0.0.1", "is not an IP address"),
])
def test_admin_address_refused(text: str, listen: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_admin(text, listen)


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_decisions_counted_by_agency_action_category_and_outcome() -> None:
    metrics = GatewayMetrics()
    log = AuditLog([io.StringIO()])
    log.observer = metrics.observe
    log.event("decision", phase="request", agency="modot", action="block", enforced="blocked",
              categories=["gambling", "games"])
    log.event("decision", phase="request", agency="modot", action="allow", enforced="passed",
              categories=[])
    log.event("decision", phase="connect", agency="modot", action="allow", enforced="passed",
              categories=["news"])
    log.event("decision", phase="request", agency=None, action=None, enforced="refused")
    log.event("decision", phase="boundary", agency="mo-dnr", action="block", enforced="closed",
              categories=["radio"])
    assert sample(metrics, "aupgate_requests_total", agency="modot", action="block",
                  enforced="blocked") == 1
    assert sample(metrics, "aupgate_requests_total", agency="none", action="none",
                  enforced="refused") == 1
    # a CONNECT or a boundary closure is a decision, not an HTTP request
    assert sample(metrics, "aupgate_requests_total", agency="modot", action="allow",
                  enforced="passed") == 1
    assert sample(metrics, "aupgate_requests_total", agency="mo-dnr", action="block",
                  enforced="closed") is None
    for category in ("gambling", "games"):
        assert sample(metrics, "aupgate_decisions_total", agency="modot", phase="request",
                      action="block", category=category) == 1
    assert sample(metrics, "aupgate_decisions_total", agency="modot", phase="request",
                  action="allow", category="none") == 1
    assert sample(metrics, "aupgate_decisions_total", agency="mo-dnr", phase="boundary",
                  action="block", category="radio") == 1


def test_reloads_and_engine_errors_counted() -> None:
    metrics = GatewayMetrics()
    metrics.observe("policy_reload_failed", {"part": "policies"})
    assert sample(metrics, "aupgate_reload_failing", part="policies") == 1
    metrics.observe("policy_reloaded", {"part": "policies"})
    assert sample(metrics, "aupgate_reload_failing", part="policies") == 0
    assert sample(metrics, "aupgate_reloads_total", part="policies", outcome="ok") == 1
    assert sample(metrics, "aupgate_reloads_total", part="policies", outcome="failed") == 1
    metrics.observe("engine_error", {"phase": "tls"})
    assert sample(metrics, "aupgate_engine_errors_total", phase="tls") == 1


def test_window_boundaries_and_the_passes_they_ended_counted() -> None:
    metrics = GatewayMetrics()
    log = AuditLog([io.StringIO()])
    log.observer = metrics.observe
    fields = {"policy_digest": "0" * 64, "at": "2026-11-24T13:00:00-06:00",
              "window_before": "lunch", "window": "work", "open": 5, "closed": 4}
    log.event("window_boundary", agency="lab", why="window", passes_ended=2, **fields)
    log.event("window_boundary", agency="lab", why="window", passes_ended=0, **fields)
    log.event("window_boundary", agency="lab", why="grant", passes_ended=1, **fields)
    assert sample(metrics, "aupgate_window_boundaries_total", agency="lab", why="window") == 2
    assert sample(metrics, "aupgate_window_boundaries_total", agency="lab", why="grant") == 1
    assert sample(metrics, "aupgate_boundary_passes_ended_total", agency="lab") == 3
    # nothing else counts it: a boundary is not a request, nor a decision line of its own
    assert sample(metrics, "aupgate_requests_total", agency="lab", action="none",
                  enforced="none") is None


def test_observer_failure_costs_no_audit_line() -> None:
    out = io.StringIO()
    log = AuditLog([out])

    def broken(event: str, fields: dict[str, object]) -> None:
        raise RuntimeError("boom")

    log.observer = broken
    log.event("decision", phase="request")
    assert '"decision"' in out.getvalue()


def test_audit_write_errors_and_health(tmp_path: Path) -> None:
    metrics = GatewayMetrics()
    path = tmp_path / "audit.jsonl"
    log = AuditLog([handle := AuditFile(path)], owned=[handle])
    assert health_problems(None, log) == ["no policy loaded"]
    metrics.refresh(None, log)
    assert sample(metrics, "aupgate_policy_loaded") == 0
    assert sample(metrics, "aupgate_audit_writable") == 1
    path.unlink()
    path.mkdir()  # every write now fails
    handle.request_reopen()
    log.event("decision")
    log.event("decision")
    metrics.refresh(None, log)
    metrics.refresh(None, log)  # counted once, however often it is read
    assert sample(metrics, "aupgate_audit_write_errors_total") == 2
    assert sample(metrics, "aupgate_audit_writable") == 0
    assert any("audit log cannot be written" in p for p in health_problems(None, log))
    path.rmdir()
    log.event("decision")
    metrics.refresh(None, log)
    assert sample(metrics, "aupgate_audit_writable") == 1
    reopened = AuditLog([])  # a new audit log (options changed) counts from zero
    metrics.refresh(None, reopened)
    assert sample(metrics, "aupgate_audit_write_errors_total") == 2
    log.close()


def test_supervisor_health_from_what_workers_published() -> None:
    alive = [0]
    registry = CollectorRegistry()
    registry.register(WorkersCollector(lambda: (alive[0], 2, 0)))
    assert workers_health(registry) == ["no worker serving", "no worker has reported yet"]
    published = GatewayMetrics(registry)
    published.policy_loaded.set(1)
    published.audit_writable.set(1)
    alive[0] = 1
    assert workers_health(registry) == []
    published.audit_writable.set(0)
    assert workers_health(registry) == ["audit log cannot be written (in at least one worker)"]


def test_server_answers_metrics_healthz_and_nothing_else() -> None:
    metrics = GatewayMetrics()
    problems: list[str] = []
    refreshed = []
    server = AdminServer(("127.0.0.1", 0), metrics.registry, lambda: problems,
                         lambda: refreshed.append(1))
    base = f"http://127.0.0.1:{server.address[1]}"
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=10) as answer:
            assert answer.read() == generate_latest(metrics.registry)
        assert refreshed == [1]
        with urllib.request.urlopen(base + "/healthz", timeout=10) as answer:
            assert answer.read() == b"ok\n"
        problems.append("no policy loaded")
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(base + "/healthz", timeout=10)
        with failed.value as answer:
            assert answer.code == 503 and answer.read() == b"no policy loaded\n"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/metricsx", timeout=10)
        with missing.value as answer:
            assert answer.code == 404
    finally:
        server.close()


def test_a_stuck_event_loop_fails_the_health_check() -> None:
    loop = asyncio.new_event_loop()
    release = threading.Event()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        assert loop_answers(loop, 5)
        loop.call_soon_threadsafe(release.wait)  # the loop is now busy with one callback
        assert not loop_answers(loop, 0.3)
        release.set()
        assert loop_answers(loop, 5)
    finally:
        release.set()
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
    assert not loop_answers(loop, 0.1)  # closed: stopping


def test_a_worker_that_stopped_refreshing_fails_the_supervisor_health_check() -> None:
    registry = CollectorRegistry()
    registry.register(WorkersCollector(lambda: (2, 2, 0)))
    published = GatewayMetrics(registry)
    published.refresh(None, AuditLog([]))
    published.policy_loaded.set(1)
    assert workers_health(registry) == []
    published.heartbeat.set(time.time() - 30)
    [problem] = workers_health(registry)
    assert "has not refreshed its state for 30 s" in problem


@pytest.mark.slow  # waits out the 10 s deadline of an idle client
def test_server_survives_idle_and_garbage_clients() -> None:
    metrics = GatewayMetrics()
    server = AdminServer(("127.0.0.1", 0), metrics.registry, lambda: [])
    address = ("127.0.0.1", server.address[1])
    try:
        with socket.create_connection(address, timeout=5) as idle, \
                socket.create_connection(address, timeout=5) as garbage:
            garbage.sendall(b"\x16\x03\x01\x00\xff" + b"\x00" * 300 + b"\r\n\r\n")
            answer_bytes = b""
            while chunk := garbage.recv(4096):
                answer_bytes += chunk
            assert b"Error code: 400" in answer_bytes  # refused (as HTTP/0.9), not a crash
            # an idle client and a garbage one do not stop the next scrape
            with urllib.request.urlopen(f"http://127.0.0.1:{address[1]}/healthz",
                                        timeout=10) as answer:
                assert answer.read() == b"ok\n"
            idle.settimeout(20)
            assert idle.recv(1) == b""  # closed by the server's deadline
    finally:
        server.close()
