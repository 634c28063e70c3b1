"""Deployment tests: real tools (HAProxy, Chromium, nginx, logrotate, systemd-analyze) driven on
loopback around real `aupgate run` workers.

Nothing is skipped: a missing tool fails the test with the package that `.ci/run` installs, so
a CI machine without it shows red instead of a quiet skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
FIXTURES = Path(__file__).parent / "fixtures"
AUPGATE = Path(sys.executable).with_name("aupgate")
FIXED_TIME = "2026-11-24T10:30:00-06:00"  # a Tuesday morning in the lab agency's time zone

PACKAGES = {
    "haproxy": "haproxy",
    "chromium": "chromium",
    "nginx": "nginx-light",
    "logrotate": "logrotate",
    "systemd-analyze": "systemd",
}


def require(tool: str) -> str:
    """The tool's path, or a failure naming the Debian package `.ci/run` installs."""
    found = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if found is None:
        package = PACKAGES.get(tool, tool)
        pytest.fail(
            f"{tool} is not installed: .ci/run installs it (apt-get install -y {package})",
            pytrace=False,
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int,
    timeout: float = 15.0,
    host: str = "127.0.0.1",
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Until something accepts on host:port; fails early, with its log, if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = log.read_text(errors="replace") if log else ""
            raise AssertionError(f"{process.args} exited {process.returncode}:\n{output}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {host}:{port} after {timeout}s")


# --------------------------------------------------------------------------- upstream


class _Handler(BaseHTTPRequestHandler):
    """A small web site: an HTML page naming the host and path it was asked for."""

    protocol_version = "HTTP/1.0"  # one request per connection: simple, like the load we make
    server: Upstream

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0]
        self.server.seen[host] += 1
        body = (
            f"<!doctype html><html><head><title>upstream {host}</title></head>"
            f'<body><p id="content">Hello from {host}{self.path}</p></body></html>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Upstream(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: Counter[str] = Counter()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# --------------------------------------------------------------------------- workers


@dataclass
class Worker:
    """One running `aupgate run` and its files."""

    port: int
    home: Path
    process: subprocess.Popen[bytes]
    admin: int | None = None  # the admin endpoint's port (/metrics, /healthz), if it serves one

    @property
    def audit_path(self) -> Path:
        return self.home / "audit.jsonl"

    @property
    def log_path(self) -> Path:
        return self.home / "output.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the worker dies as in a crash, with no chance to clean up."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def worker_argv(home: Path, port: int, upstream_port: int, *, confdir: Path | None = None,
                quiet: bool = False, workers: int = 1, extra: tuple[str, ...] = ()) -> list[str]:
    """`aupgate run` (one process unless `workers` says otherwise) on the fixture agency
    (copied into `home`), every name sent to the local upstream; the benchmark in bench/scale
    starts its gateways with this too."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "policies").exists():
        shutil.copytree(FIXTURES / "policies", home / "policies")
        shutil.copytree(FIXTURES / "categories", home / "categories")
    return [
        str(AUPGATE),
        "run",
        "--workers",
        str(workers),
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "--policy-dir",
        str(home / "policies"),
        "--categories",
        str(home / "categories" / "sources.yaml"),
        "--audit-log",
        str(home / "audit.jsonl"),
        "--default-agency",
        "lab",
        "--fixed-time",
        FIXED_TIME,
        "--resolve",
        f"*:80:127.0.0.1:{upstream_port}",
        "--resolve",
        f"*:{upstream_port}:127.0.0.1:{upstream_port}",
        "--set",
        f"confdir={confdir or home / 'conf'}",
        *(["--quiet"] if quiet else []),
        *extra,
    ]


def start_worker(home: Path, upstream: Upstream, port: int | None = None,
                 extra: tuple[str, ...] = (), *, admin: bool = False) -> Worker:
    """`aupgate run` (one process) on the fixture agency, every test name sent to the local
    upstream; `admin`: with its admin endpoint on a free loopback port."""
    port = port or free_port()
    admin_port = free_port() if admin else None
    if admin_port is not None:
        extra = (*extra, "--admin", f"127.0.0.1:{admin_port}")
    argv = worker_argv(home, port, upstream.port, extra=extra)
    with (home / "output.log").open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    worker = Worker(port, home, process, admin_port)
    deadline = time.monotonic() + 30
    while " listening at " not in worker.log():
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise AssertionError(f"aupgate run did not start:\n{worker.log()}")
        time.sleep(0.05)
    return worker


def server_states(sock: Path) -> dict[str, str]:
    """HAProxy's `show stat` over its admin socket: gateway server name -> status (UP, DOWN...)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(str(sock))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    states = {}
    for line in data.decode().splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[0] == "aupgate_gateways" and fields[1].startswith("gw"):
            states[fields[1]] = fields[17]
    return states


def shipped_haproxy_config(stats_socket: Path, rewrites: list[tuple[str, str]]) -> str:
    """deploy/haproxy/haproxy.cfg made runnable by a test (no chroot, user, syslog; its own
    admin socket), with the test's own rewrites after. Each rewrite is asserted, so a change to
    the shipped file cannot silently leave a test checking something else."""
    text = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    common = [
        ("    log /dev/log local0\n", ""),
        ("    chroot /var/lib/haproxy\n", ""),
        ("    user haproxy\n    group haproxy\n", ""),
        ("    log global\n", ""),
        ("    maxconn 20000\n", "    maxconn 2000\n"),  # within a test machine's file limit
        ("stats socket /run/haproxy/admin.sock mode 660 level admin",
         f"stats socket {stats_socket} mode 600 level admin"),
    ]
    for old, new in common + rewrites:
        assert old in text, f"deploy/haproxy/haproxy.cfg no longer contains {old!r}"
        text = text.replace(old, new)
    return text
