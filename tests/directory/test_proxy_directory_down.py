"""The directory going away under a real `aupgate run`: down when the gateway starts, restarted
(and killed) while requests flow, and the grace period. Each test has a slapd of its own."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_support import (
    basic,
    https_through_tunnel,
    invalid_lines,
    lab_policy,
    login,
    start_directory_proxy,
    wait_until,
)
from slapd_server import PASSWORDS, SlapdServer

from e2e.conftest import Certs, Proxy, Upstreams, stop_proxy

pytestmark = pytest.mark.e2e

ALICE = ("alice", PASSWORDS["alice"])
BOB = ("bob", PASSWORDS["bob"])
CAROL = ("carol", PASSWORDS["carol"])


@pytest.fixture
def start(tmp_path: Path, certs: Certs, upstreams: Upstreams,
          password_file: Path) -> Iterator[object]:
    """Start a proxy on a directory (stopped at the end of the test)."""
    started: list[Proxy] = []

    def run(server: SlapdServer, **directory: object) -> Proxy:
        home = tmp_path / f"proxy-{len(started)}"
        proxy = start_directory_proxy(home, certs, upstreams,
                                      lab_policy(server.ldap_url, password_file, **directory))
        started.append(proxy)
        return proxy

    yield run
    for proxy in started:
        stop_proxy(proxy)


def test_down_at_start_then_back(start: object, own_slapd: SlapdServer) -> None:
    """The gateway starts without its directory; logins get the clear page (plain HTTP at once,
    HTTPS inside the tunnel, a never-decrypt site at the CONNECT); once the directory is back,
    the same logins work, without a restart."""
    own_slapd.stop()
    proxy = start(own_slapd)  # type: ignore[operator]
    plain = login(proxy, "http://www.example.org/down", *ALICE)
    assert plain.status == 503, plain
    assert "sign-in service cannot be reached" in plain.body
    assert "Test Laboratory Agency" in plain.body
    status, answer = https_through_tunnel(proxy, "www.example.org", basic(*ALICE))
    assert status == 503 and b"sign-in service cannot be reached" in answer
    status, _head = https_through_tunnel(proxy, "www.bankofamerica.com", basic(*ALICE))
    assert status == 503  # never decrypted: refused at the CONNECT itself
    unavailable = proxy.events("directory_unavailable")
    assert unavailable and unavailable[0]["user"] == "alice"
    assert "detail" in unavailable[0] and unavailable[0]["method"] == "basic"
    refused = [e for e in proxy.events("decision") if e.get("path") == "/down"]
    assert refused and refused[-1]["enforced"] == "refused"

    own_slapd.start()
    assert login(proxy, "http://www.example.org/back", *ALICE).status == 200
    status, _ = https_through_tunnel(proxy, "www.example.org", basic(*ALICE))
    assert status == 200
    assert invalid_lines(proxy) == []


@pytest.mark.parametrize("kill", [False, True], ids=["restart", "sigkill"])
def test_restarted_mid_traffic(start: object, own_slapd: SlapdServer, kill: bool) -> None:
    """Logins that each need the directory (nothing cached) keep flowing while slapd restarts:
    every answer is a login or the unavailable page, never an error, and after the restart the
    gateway reconnects by itself."""
    proxy = start(own_slapd, cache="{success_ttl: 0, failure_ttl: 0}")  # type: ignore[operator]
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def traffic() -> None:
        users = [ALICE, BOB]
        n = 0
        while not stop.is_set():
            result = login(proxy, f"http://www.example.org/flow-{n}", *users[n % 2])
            statuses[result.status] += 1
            n += 1

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        wait_until(lambda: statuses[200] >= 5, what="logins before the restart")
        own_slapd.restart(kill=kill)
        before = statuses[200]
        wait_until(lambda: statuses[200] >= before + 10, what="logins after the restart")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert set(statuses) <= {200, 503}, statuses
    assert login(proxy, "http://www.example.org/after", *CAROL).status == 200
    assert not proxy.events("engine_error")


def test_grace_serves_recent_logins_while_the_directory_is_down(start: object,
                                                                own_slapd: SlapdServer) -> None:
    """on_unavailable: grace. alice's login, confirmed a moment ago, keeps working (with her
    groups) although its cache entry is stale; a wrong password or a user never seen does not."""
    proxy = start(own_slapd, on_unavailable="grace", grace_period="1h",  # type: ignore[operator]
                  cache="{success_ttl: 1, failure_ttl: 0}")
    assert login(proxy, "http://www.example.org/seen", *ALICE).status == 200
    own_slapd.stop()
    time.sleep(1.2)  # past success_ttl: only the grace period can serve alice now
    assert login(proxy, "http://www.example.org/grace", *ALICE).status == 200
    assert login(proxy, "http://mail.yahoo.com/", *ALICE).status == 403  # groups kept
    assert login(proxy, "http://www.example.org/wrong", "alice", "not-her-password"
                 ).status == 503
    assert login(proxy, "http://www.example.org/never", *BOB).status == 503
    graced = proxy.events("login", user="alice", source="grace")
    assert len(graced) == 1
    assert invalid_lines(proxy) == []
    assert [e["user"] for e in proxy.events("decision")
            if e.get("path") == "/grace"] == ["alice"]
