"""Scale-out: two gateways (`aupgate run`) behind a real HAProxy using the shipped configuration.

The HAProxy configuration is deploy/haproxy/haproxy.cfg itself, with only the addresses, the
health-check ports (each gateway's admin endpoint, /healthz) and the check intervals rewritten
for loopback (each rewrite is asserted, so a change to the shipped file cannot silently leave
this test checking something else). It sends
the PROXY protocol (v2) to the gateways, which trust HAProxy's address (127.0.0.1). A bounded
load runs from many client source addresses (127.0.0.x, so source hashing spreads them, and each
gateway must audit each request under its real client address); one gateway is SIGKILLed
mid-run; once HAProxy has marked it down, no request may fail, and both gateways' audit logs
must be valid JSON lines with intact hash chains.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import (
    Upstream,
    Worker,
    free_port,
    require,
    server_states,
    shipped_haproxy_config,
    start_worker,
    wait_for_port,
)

from aupgate.audit.chain import walk

CLIENTS = 16  # source addresses 127.0.0.10 .. 127.0.0.25
LOAD_SECONDS = 7.0
KILL_AFTER = 2.5
PAUSE = 0.1  # per client between requests: at most 160 req/s, under one worker's capacity


def haproxy_config(
    tmp: Path, front: int, stats: int, workers: list[Worker], upstream_port: int
) -> str:
    """The shipped haproxy.cfg, rewritten for loopback ports and fast health checks."""
    text = shipped_haproxy_config(tmp / "admin.sock", [
        ("    bind :8080\n", f"    bind 127.0.0.1:{front}\n"),
        (
            "inter 2s fastinter 500ms downinter 2s fall 2 rise 3",
            "inter 200ms fastinter 100ms downinter 500ms fall 2 rise 2",
        ),
        ("    bind 127.0.0.1:8404\n", f"    bind 127.0.0.1:{stats}\n"),
    ])
    lines = text.splitlines()
    assert any(line.startswith("    server gw") for line in lines)
    assert any("default-server send-proxy-v2 " in line for line in lines)
    lines = [line for line in lines if not line.startswith("    server gw")]
    at = next(i for i, line in enumerate(lines) if line.startswith("    default-server ")) + 1
    # each gateway's own admin port for its health check (the shipped file: 9180 on every box)
    lines[at:at] = [f"    server gw{w.port} 127.0.0.1:{w.port} check port {w.admin}"
                    for w in workers]
    return "\n".join(lines) + "\n"


@dataclass
class Outcome:
    client: str
    started: float
    ended: float
    ok: bool
    detail: str


def one_request(client: str, front: int, path: str) -> tuple[bool, str]:
    """GET through the gateway from `client`'s own source address, one connection per request."""
    try:
        with socket.create_connection(
            ("127.0.0.1", front), timeout=5, source_address=(client, 0)
        ) as s:
            s.sendall(
                f"GET http://www.example.org{path} HTTP/1.1\r\nHost: www.example.org\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    status = data.split(b"\r\n", 1)[0]
    if status.split(b" ")[1:2] != [b"200"] or b"Hello from www.example.org" not in data:
        return False, data[:200].decode(errors="replace")
    return True, ""


@pytest.fixture
def workers(tmp_path: Path, upstream: Upstream) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for name in ("w1", "w2"):
            started.append(start_worker(tmp_path / name, upstream,
                                        extra=("--proxy-protocol-from", "127.0.0.1"),
                                        admin=True))
        yield started
    finally:
        for worker in started:
            worker.stop()


@pytest.mark.e2e
def test_worker_killed_mid_run(tmp_path: Path, upstream: Upstream, workers: list[Worker]) -> None:
    """Kill one of two workers under load: after HAProxy marks it down, nothing fails."""
    haproxy = require("haproxy")
    front, stats = free_port(), free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(tmp_path, front, stats, workers, upstream.port))
    check = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = (tmp_path / "haproxy.log").open("wb")
    process = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=log, stderr=log)
    try:
        wait_for_port(front, process=process, log=tmp_path / "haproxy.log")
        sock = tmp_path / "admin.sock"
        deadline = time.monotonic() + 15
        while set(server_states(sock).values()) != {"UP"}:
            assert time.monotonic() < deadline, f"workers never UP: {server_states(sock)}"
            time.sleep(0.1)
        _run_load_and_kill(front, sock, workers)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _run_load_and_kill(front: int, sock: Path, workers: list[Worker]) -> None:
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(number: int) -> None:
        address = f"127.0.0.{10 + number}"
        count = 0
        while not stop.is_set():
            started = time.monotonic()
            ok, detail = one_request(address, front, f"/load/{number}/{count}")
            with lock:
                outcomes.append(Outcome(address, started, time.monotonic(), ok, detail))
            count += 1
            time.sleep(PAUSE)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    begin = time.monotonic()
    for thread in threads:
        thread.start()

    time.sleep(KILL_AFTER)
    victim = workers[0]
    served_before = _decisions(victim.audit_path)
    killed_at = time.monotonic()
    victim.kill()
    down_at = None
    while time.monotonic() - begin < LOAD_SECONDS:
        # "UP 1/2" is a worker going down but still in rotation; "DOWN" is out of it.
        if down_at is None and server_states(sock).get(f"gw{victim.port}", "").startswith("DOWN"):
            down_at = time.monotonic()
        time.sleep(0.02)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)

    assert served_before > 0, "the killed gateway had served nothing: source hashing did not spread"
    assert down_at is not None, "HAProxy never marked the killed worker down"
    assert down_at - killed_at < 3.0, f"detection took {down_at - killed_at:.2f}s"
    after = [o for o in outcomes if o.started >= down_at]
    failed_after = [o for o in after if not o.ok]
    failed_before = [o for o in outcomes if o.started < down_at and not o.ok]
    summary = (
        f"{len(outcomes)} requests, {len(failed_before)} failed before the worker was marked down "
        f"({down_at - killed_at:.2f}s after the kill), {len(failed_after)} after"
    )
    print(summary)
    assert len(after) > 50, summary
    assert not failed_after, (
        summary
        + "\n"
        + "\n".join(
            f"{o.client} +{o.started - down_at:.2f}s: {o.detail}" for o in failed_after[:10]
        )
    )
    assert {o.client for o in after} == {f"127.0.0.{10 + n}" for n in range(CLIENTS)}

    survivor = workers[1]
    assert _decisions(survivor.audit_path) > 0
    clients = {f"127.0.0.{10 + n}" for n in range(CLIENTS)}
    for worker in workers:
        _assert_valid_audit(worker.audit_path)
        # Through HAProxy each request is audited under its own client, not HAProxy's address
        # (its health checks go to the admin endpoint and write no audit line).
        seen = _clients(worker.audit_path)
        assert seen <= clients, seen
        assert len(seen & clients) >= 2, seen


def _decisions(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(
        1
        for line in path.read_bytes().splitlines()
        if b'"event": "decision"' in line or b'"event":"decision"' in line
    )


def _clients(path: Path) -> set[str]:
    return {
        str(event["client"])
        for event in map(json.loads, path.read_bytes().splitlines())
        if event.get("event") == "decision"
    }


def _assert_valid_audit(path: Path) -> None:
    """Every line is a JSON object with an event; the file's hash chain is unbroken."""
    raw = path.read_bytes()
    lines = raw.splitlines(keepends=True)
    assert lines, f"{path} is empty"
    for number, line in enumerate(lines, start=1):
        event = json.loads(line)
        assert isinstance(event, dict) and "event" in event and "time" in event, (number, line)
    chain = walk(str(path), lines)
    assert chain.broken is None, str(chain.broken)
