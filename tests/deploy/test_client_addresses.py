"""Real, distinct client addresses: a DNR state-network client and a guest-network client, each in
its own network namespace, decided differently by the shipped mo-dnr policy, in both deployment
shapes (docs/deployment.md):

- one box: `aupgate run --workers 2` on the front box's address, clients connect directly;
- several boxes: the shipped HAProxy configuration on the front box, sending PROXY protocol v2
  to two gateway boxes, each `aupgate run --workers 2 --proxy-protocol-from <front>`.

At the fixed time (Tuesday 10:30, a work hour in America/Chicago) facebook.com is a warning for
state equipment (10.30.0.0/16, `social-state-equipment`) and blocked for personal devices on the
guest Wi-Fi (10.39.0.0/16, `social-personal-other`). Behind a balancer that hid the clients,
both would be decided as the balancer. See netns.py for the topology; it needs root, and skips
with the reason where namespaces cannot be made (CI runs as root and makes them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deploy_support import AUPGATE, ROOT, require, server_states, shipped_haproxy_config
from netns import Lab, LabUnavailableError

FIXED_TIME = "2026-11-24T10:30:00-06:00"
UPSTREAM = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, *a): pass
    def do_GET(self):
        body = ("Hello from " + self.headers.get("Host", "") + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", 8000), H).serve_forever()
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    made = Lab()
    try:
        made.create()
    except LabUnavailableError as exc:
        pytest.skip(f"no network namespaces here: {exc}")
    yield made
    made.destroy()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Policies, the agency CA folder and the compiled category index every box uses."""
    home = tmp_path_factory.mktemp("agency")
    shutil.copytree(ROOT / "policies", home / "policies")
    (home / "upstream.py").write_text(UPSTREAM)
    return home


@dataclass
class Box:
    name: str
    home: Path
    processes: list[subprocess.Popen[bytes]]

    def log(self) -> str:
        return (self.home / "gateway.log").read_text(errors="replace")

    def decisions(self) -> list[dict[str, Any]]:
        found = []
        for path in sorted(self.home.glob("audit.w*.jsonl")):
            for line in path.read_text().splitlines():
                event = json.loads(line)
                if event["event"] == "decision":
                    found.append(event)
        return found

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def start_box(lab: Lab, shared: Path, box: str, home: Path, host: str, port: int,
              *extra: str) -> Box:
    """An upstream web server on the box's loopback and `aupgate run --workers 2` on host:port."""
    home.mkdir()
    upstream = lab.popen(box, [shutil.which("python3") or "python3", str(shared / "upstream.py")])
    argv = [str(AUPGATE), "run", "--workers", "2", "--listen-host", host,
            "--listen-port", str(port), "--policy-dir", str(shared / "policies"),
            "--categories", str(ROOT / "categories" / "sources.yaml"),
            "--audit-log", str(home / "audit.jsonl"), "--fixed-time", FIXED_TIME,
            "--resolve", "*:80:127.0.0.1:8000", "--set", f"confdir={shared / 'conf'}",
            "--set", "aupgate_reload_seconds=0",
            "--admin", f"{host}:9180",  # the shipped HAProxy checks /healthz there
            *extra]
    with (home / "gateway.log").open("wb") as out:
        gateway = subprocess.Popen(
            lab.argv(box, argv), stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "AUPGATE_INDEX_DIR": str(shared / "index")})
    started = Box(box, home, [upstream, gateway])
    deadline = time.monotonic() + 90
    while "2 workers serving" not in started.log():
        if gateway.poll() is not None or time.monotonic() > deadline:
            started.stop()
            raise AssertionError(f"gateway on {box} did not start:\n{started.log()}")
        time.sleep(0.1)
    return started


def fetch(lab: Lab, client: str, proxy: str, url: str) -> tuple[int, str]:
    done = lab.run(client, ["curl", "-sS", "--max-time", "15", "--proxy", proxy,
                            "-w", "\n%{http_code}", url])
    body, _, code = done.stdout.rpartition("\n")
    return int(code or 0), body + done.stderr


def both_clients_through(lab: Lab, proxy: str, path: str) -> None:
    """From the state and the guest client: an allowed page, then facebook.com at `path`."""
    for client in ("state", "guest"):
        code, body = fetch(lab, client, proxy, "http://www.example.org/hello")
        assert code == 200 and "Hello from www.example.org" in body, body
        code, body = fetch(lab, client, proxy, f"http://www.facebook.com{path}")
        assert code == 403, body  # the warn page, and the block page


def assert_decided_apart(decisions: list[dict[str, Any]], path: str) -> None:
    """The state client is warned, the guest client blocked, each under its own address."""
    by_client = {d["client"]: d for d in decisions if d["path"] == path}
    assert set(by_client) == {"10.30.0.2", "10.39.0.2"}, decisions
    state, guest = by_client["10.30.0.2"], by_client["10.39.0.2"]
    assert (state["agency"], state["network"], state["device"]) == ("mo-dnr", "dnr-state",
                                                                    "state")
    assert (state["action"], state["rule"]) == ("warn", "social-state-equipment")
    assert (guest["agency"], guest["network"], guest["device"]) == ("mo-dnr", "dnr-guest-wifi",
                                                                    "personal")
    assert (guest["action"], guest["rule"]) == ("block", "social-personal-other")


def test_one_box_with_workers(lab: Lab, shared: Path, tmp_path: Path) -> None:
    box = start_box(lab, shared, "front", tmp_path / "front", "10.30.0.1", 3128)
    try:
        both_clients_through(lab, "http://10.30.0.1:3128", "/one-box")
        assert_decided_apart(box.decisions(), "/one-box")
        # Bound to the configured address only: the front box's guest-side address is closed.
        refused = lab.run("guest", ["curl", "-sS", "--max-time", "5", "--proxy",
                                    "http://10.39.0.1:3128", "http://www.example.org/"])
        assert refused.returncode == 7, refused  # curl: could not connect
    finally:
        box.stop()


def haproxy_config(tmp: Path, stats: Path) -> str:
    """The shipped haproxy.cfg with the lab's addresses and faster health checks."""
    text = shipped_haproxy_config(stats, [
        ("    bind :8080\n", "    bind 10.30.0.1:8080\n"),
        ("inter 2s fastinter 500ms downinter 2s fall 2 rise 3",
         "inter 300ms fastinter 200ms downinter 500ms fall 2 rise 2"),
        ("    server gw1 10.20.0.11:8080 check\n", "    server gw1 10.20.1.2:8080 check\n"),
        ("    server gw2 10.20.0.12:8080 check\n", "    server gw2 10.20.2.2:8080 check\n"),
    ])
    assert "default-server send-proxy-v2 " in text
    return text


def test_gateways_behind_haproxy_with_proxy_protocol(lab: Lab, shared: Path,
                                                     tmp_path: Path) -> None:
    haproxy = require("haproxy")
    boxes: list[Box] = []
    front: subprocess.Popen[bytes] | None = None
    try:
        for n in (1, 2):
            # Health checks arrive as v2 LOCAL from the front box, decided under the default
            # agency (the shipped check URL is MoDOT's PAC file).
            boxes.append(start_box(lab, shared, f"gw{n}", tmp_path / f"gw{n}", f"10.20.{n}.2",
                                   8080, "--proxy-protocol-from", f"10.20.{n}.1",
                                   "--default-agency", "modot"))
        sock = tmp_path / "admin.sock"
        config = tmp_path / "haproxy.cfg"
        config.write_text(haproxy_config(tmp_path, sock))
        check = lab.run("front", [haproxy, "-c", "-f", str(config)])
        assert check.returncode == 0, check.stdout + check.stderr
        with (tmp_path / "haproxy.log").open("wb") as out:
            front = lab.popen("front", [haproxy, "-db", "-f", str(config)], stdout=out,
                              stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            states = server_states(sock) if sock.exists() else {}
            if states and set(states.values()) == {"UP"}:
                break
            assert time.monotonic() < deadline, f"gateways never UP: {states}"
            time.sleep(0.2)
        both_clients_through(lab, "http://10.30.0.1:8080", "/behind-haproxy")
        decisions = [d for box in boxes for d in box.decisions()]
        assert_decided_apart(decisions, "/behind-haproxy")
        # The front box's own address never appears: its health checks ask /healthz on the
        # admin port, not through the proxy.
        front_side = {d["path"] for d in decisions if d["client"].startswith("10.20.")}
        assert not front_side, front_side
        for box in boxes:
            assert "refused" not in box.log(), box.log()
    finally:
        if front is not None:
            front.terminate()
            front.wait(timeout=10)
        for box in boxes:
            box.stop()
