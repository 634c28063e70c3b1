"""The admin endpoint of a real `aupgate run`: /metrics scraped over HTTP and read with
prometheus-client's own parser, /healthz failing while the audit file cannot be written, and
with `--workers 2` the supervisor's sum of both workers and its view of them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import (
    AUPGATE,
    FIXTURES,
    Certs,
    Proxy,
    Upstreams,
    curl,
    free_port,
    start_proxy,
    stop_proxy,
    until,
)

pytestmark = pytest.mark.e2e


def fetch(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    status, text = fetch(port, "/metrics")
    assert status == 200, text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
           upstreams: Upstreams) -> Iterator[tuple[Proxy, int]]:
    port = free_port()
    started = start_proxy(tmp_path_factory.mktemp("admin"), certs, upstreams,
                          "--admin", str(port))
    yield started, port
    stop_proxy(started)


def test_metrics_count_decisions_by_agency_action_and_category(
        single: tuple[Proxy, int]) -> None:
    proxy, port = single
    for n in range(3):
        assert curl(proxy, f"http://www.example.org/m{n}").status == 200
    assert curl(proxy, "http://www.bet365.com/sports").status == 403
    samples = scrape(port)
    allowed = [e for e in proxy.events("decision") if e["action"] == "allow"]
    assert value(samples, "aupgate_requests_total", agency="lab", action="allow",
                 enforced="passed") == len(allowed) >= 3
    assert value(samples, "aupgate_requests_total", agency="lab", action="block",
                 enforced="blocked") == 1
    assert value(samples, "aupgate_decisions_total", agency="lab", phase="request",
                 action="block", category="gambling") == 1
    assert value(samples, "aupgate_workers_alive") is None  # one process: no supervisor


def test_metrics_show_policy_digests_and_audit_state(single: tuple[Proxy, int]) -> None:
    proxy, port = single
    [start] = proxy.events("proxy_start")
    samples = scrape(port)
    assert value(samples, "aupgate_policy_loaded") == 1
    assert value(samples, "aupgate_audit_writable") == 1
    assert value(samples, "aupgate_audit_write_errors_total") == 0
    assert value(samples, "aupgate_policy_info", part="policies",
                 digest=start["policy_digest"]) == 1
    assert value(samples, "aupgate_policy_info", part="categories",
                 digest=start["categories_digest"]) == 1
    for agency, digest in start["agency_digests"].items():
        assert value(samples, "aupgate_agency_policy_info", agency=agency, digest=digest) == 1


def test_broken_reload_is_counted_and_the_gateway_stays_healthy(
        single: tuple[Proxy, int]) -> None:
    proxy, port = single
    policy = proxy.policy_dir / "lab.yaml"
    good = policy.read_text()
    policy.write_text(good + "\nrules: [\n")  # not YAML
    try:
        until(lambda: value(scrape(port), "aupgate_reload_failing", part="policies") == 1, 20,
              "the failed reload in /metrics")
        samples = scrape(port)
        assert value(samples, "aupgate_reloads_total", part="policies", outcome="failed") == 1
        assert fetch(port, "/healthz") == (200, "ok\n")  # the last good policy is in force
    finally:
        policy.write_text(good + "\n# fixed\n")
    until(lambda: value(scrape(port), "aupgate_reload_failing", part="policies") == 0, 20,
          "the good reload in /metrics")
    [reloaded] = proxy.events("policy_reloaded", part="policies")
    samples = scrape(port)
    assert value(samples, "aupgate_policy_info", part="policies",
                 digest=reloaded["digest"]) == 1
    [start] = proxy.events("proxy_start")
    assert value(samples, "aupgate_policy_info", part="policies",
                 digest=start["policy_digest"]) == 0  # in force before, no longer


def test_healthz_fails_while_the_audit_file_cannot_be_written(single: tuple[Proxy, int]) -> None:
    proxy, port = single
    assert fetch(port, "/healthz") == (200, "ok\n")
    path = proxy.audit_path
    moved = path.with_name("audit.jsonl.1")
    path.rename(moved)
    path.mkdir()  # the path the gateway writes to is now a directory: every write fails
    try:
        os.kill(proxy.process.pid, signal.SIGHUP)  # reopen now (rotation would, too)
        curl(proxy, "http://www.example.org/while-failing")
        _, body = until(lambda: (r := fetch(port, "/healthz"))[0] == 503 and r, 20,
                             "healthz to fail")
        assert "audit log cannot be written" in body and str(path) in body
        samples = scrape(port)
        assert value(samples, "aupgate_audit_writable") == 0
        errors = value(samples, "aupgate_audit_write_errors_total")
        assert errors is not None and errors >= 1
    finally:
        path.rmdir()
    assert curl(proxy, "http://www.example.org/after").status == 200
    until(lambda: fetch(port, "/healthz") == (200, "ok\n"), 20, "healthz to recover")
    assert proxy.events("audit_gap")


def test_only_metrics_and_healthz_are_served(single: tuple[Proxy, int]) -> None:
    _, port = single
    assert fetch(port, "/")[0] == 404
    assert fetch(port, "/metrics/../healthz")[0] == 404
    assert fetch(port, "/healthz?x=1")[0] == 200  # the query is not part of the path


@pytest.mark.parametrize("address", ["0.0.0.0:9", "[::]:9", "192.0.2.1:9", "localhost:9",
                                     "127.0.0.1:0", "127.0.0.1:70000"])
def test_admin_binds_only_to_loopback_or_the_listen_address(tmp_path: Path,
                                                            address: str) -> None:
    shutil.copytree(FIXTURES, tmp_path / "fixtures")  # the index is compiled beside the lists
    done = subprocess.run(
        [str(AUPGATE), "run", "--workers", "1", "--listen-port", str(free_port()),
         "--policy-dir", str(tmp_path / "fixtures" / "policies"),
         "--categories", str(tmp_path / "fixtures" / "categories" / "sources.yaml"),
         "--admin", address], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done
    assert "aupgate_admin" in done.stderr


def test_admin_port_in_use_stops_the_start(tmp_path: Path, certs: Certs,
                                          upstreams: Upstreams) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AssertionError, match="cannot serve the admin endpoint"):
            start_proxy(tmp_path, certs, upstreams, "--admin", str(port))


# --------------------------------------------------------------------------- --workers 2


def test_supervisor_serves_the_sum_of_its_workers(tmp_path: Path, certs: Certs,
                                                  upstreams: Upstreams) -> None:
    port = free_port()
    proxy = start_proxy(tmp_path, certs, upstreams, "--admin", f"127.0.0.1:{port}", workers=2)
    try:
        proxy.wait_for("2 workers serving", 60)
        until(lambda: value(scrape(port), "aupgate_workers_alive") == 2, 20, "2 workers alive")
        assert fetch(port, "/healthz") == (200, "ok\n")
        for n in range(12):
            assert curl(proxy, f"http://www.example.org/w{n}").status == 200
        files = [proxy.home / f"audit.w{i}.jsonl" for i in (0, 1)]
        served = [sum(1 for line in f.read_text().splitlines() if '"/w' in line) for f in files]
        samples = scrape(port)
        assert value(samples, "aupgate_requests_total", agency="lab", action="allow",
                     enforced="passed") == 12
        assert value(samples, "aupgate_workers_configured") == 2
        assert value(samples, "aupgate_policy_loaded") == 1
        assert value(samples, "aupgate_audit_writable") == 1
        # a worker killed: its counts stay, the supervisor sees it gone, then back
        pid = _worker_pid(files[served.index(max(served))])
        # a stuck worker (stopped: its event loop runs nothing) fails the box's health check
        os.kill(pid, signal.SIGSTOP)
        try:
            _, body = until(lambda: (r := fetch(port, "/healthz"))[0] == 503 and r, 30,
                            "healthz to notice the stuck worker")
            assert "has not refreshed its state" in body
        finally:
            os.kill(pid, signal.SIGCONT)
        until(lambda: fetch(port, "/healthz") == (200, "ok\n"), 30, "healthz to recover")
        os.kill(pid, signal.SIGKILL)
        until(lambda: value(scrape(port), "aupgate_worker_restarts_total") == 1, 30,
              "the restart in /metrics")
        until(lambda: value(scrape(port), "aupgate_workers_alive") == 2, 60,
              "the restarted worker serving")
        samples = scrape(port)
        assert value(samples, "aupgate_requests_total", agency="lab", action="allow",
                     enforced="passed") == 12  # the dead worker's counts were kept
        assert not any("aupgate_admin" in arg for arg in _worker_cmdlines(proxy.process.pid))
    finally:
        stop_proxy(proxy)
    assert not list(Path("/tmp").glob(f"aupgate-metrics-*/*_{proxy.process.pid}.db"))


def _worker_pid(audit: Path) -> int:
    starts = [json.loads(line) for line in audit.read_text().splitlines()
              if '"proxy_start"' in line]
    return int(starts[-1]["pid"])


def _worker_cmdlines(supervisor: int) -> list[str]:
    done = subprocess.run(["ps", "-o", "args=", "--ppid", str(supervisor)],
                          capture_output=True, text=True, check=False)
    return done.stdout.splitlines()


def test_mitmdump_script_serves_the_admin_endpoint(tmp_path: Path, certs: Certs,
                                                   upstreams: Upstreams) -> None:
    """`mitmdump -s .../script.py --set aupgate_admin=...`: the same endpoint, counting the same."""
    port = free_port()
    proxy = start_proxy(tmp_path, certs, upstreams, "--set", f"aupgate_admin=127.0.0.1:{port}",
                        mitmdump=True)
    try:
        assert fetch(port, "/healthz") == (200, "ok\n")
        assert curl(proxy, "http://www.bet365.com/mitmdump").status == 403
        assert value(scrape(port), "aupgate_requests_total", agency="lab", action="block",
                     enforced="blocked") == 1
    finally:
        stop_proxy(proxy)
    with pytest.raises(OSError):  # stopped with the proxy
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
