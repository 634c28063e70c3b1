"""`on_audit_failure: fail-closed` (issue 12, item 14): a request's decision is on disk before
the request goes upstream, and a request that cannot be recorded never reaches the site.

The upstream here reads the proxy's audit file at the moment a request reaches it, so "recorded
before forwarded" is observed, not inferred. The disk fills up for real: the running proxy is
given a file-size limit (prlimit, RLIMIT_FSIZE) at its audit file's current size, so its next
write fails with EFBIG as on a full file system, and the limit is lifted again to show recovery.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy


class Witness(ThreadingHTTPServer):
    """An upstream that notes, for each path it is asked for, whether the audit file already
    held a line for that path."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.audit: Path | None = None
        self.recorded_first: dict[str, bool] = {}


class _Handler(BaseHTTPRequestHandler):
    server: Witness
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        audit = self.server.audit
        text = audit.read_text() if audit is not None and audit.exists() else ""
        self.server.recorded_first[self.path] = f'"path":"{self.path}"' in text
        body = b"witnessed\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def witness() -> Iterator[Witness]:
    server = Witness()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory, certs: Certs, upstreams: Upstreams,
           witness: Witness) -> Iterator[Proxy]:
    started = start_proxy(
        tmp_path_factory.mktemp("fail-closed"), certs, upstreams,
        "--set", "aupgate_on_audit_failure=fail-closed",
        "--set", f"aupgate_resolve=witness.test:80:127.0.0.1:{witness.server_address[1]}")
    witness.audit = started.audit_path
    yield started
    stop_proxy(started)


def test_the_decision_is_on_disk_before_the_request_reaches_the_site(
        closed: Proxy, witness: Witness) -> None:
    r = curl(closed, "http://witness.test/first")
    assert r.status == 200 and r.body == "witnessed\n", r
    assert witness.recorded_first["/first"] is True
    lines = closed.events("decision", phase="request", path="/first")
    assert [e["enforced"] for e in lines] == ["forwarding", "passed"], lines
    assert lines[0]["status"] is None and lines[1]["status"] == 200


def test_a_full_disk_stops_the_request_before_the_site(closed: Proxy, witness: Witness) -> None:
    pid = closed.process.pid
    full = closed.audit_path.stat().st_size
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (full, hard))  # the soft limit: no privilege
    try:
        r = curl(closed, "http://witness.test/while-full")
        assert r.status >= 500, r
        assert "/while-full" not in witness.recorded_first  # never reached the site
        again = curl(closed, "http://witness.test/still-full")
        assert again.status >= 500 and "/still-full" not in witness.recorded_first
        assert closed.audit_path.stat().st_size <= full
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))
    assert closed.process.poll() is None  # EFBIG failed the write, not the gateway
    deadline = time.monotonic() + 10
    while True:  # the next request retries the file, and is served once it is written
        back = curl(closed, "http://witness.test/after")
        if back.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert back.status == 200, back
    assert witness.recorded_first["/after"] is True
    assert closed.events("audit_gap")
    assert "cannot write audit log" in closed.log()
