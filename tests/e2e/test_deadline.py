"""The gateway's deadline for a site's answer (`aupgate_response_timeout`), through a real
`aupgate run`: a site that accepts the connection and never answers gets aupgate's timeout page
(504) with the request id, audited, in seconds rather than mitmproxy's ten idle minutes; a late
but timely answer, a slow body after a prompt head and a slow upload are not cut.

The deadline is 2 s here (the option); the waits are bounded generously for a busy machine.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from .conftest import Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy

DEADLINE = 2


class SilentSite:
    """A site on 127.0.0.1 that accepts connections and, by path, answers late, trickles its
    body, or never answers at all (nor a TLS ClientHello)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            path = head.split(b" ", 2)[1]
            if path == b"/late":  # answers, within the deadline
                time.sleep(DEADLINE / 2)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlate\n")
            elif path == b"/trickle":  # a prompt head, then a body slower than the deadline
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n")
                for _ in range(3):
                    time.sleep(DEADLINE * 0.6)
                    conn.sendall(b"0123456789")
            # anything else (/silent, a ClientHello that never ends in CRLFCRLF): no answer
            self.stopping.wait(120)
        except OSError:
            return

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def site() -> Iterator[SilentSite]:
    silent = SilentSite()
    yield silent
    silent.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, certs: Certs, upstreams: Upstreams,
       site: SilentSite) -> Iterator[Proxy]:
    started = start_proxy(tmp_path_factory.mktemp("deadline"), certs, upstreams,
                          "--set", f"aupgate_response_timeout={DEADLINE}",
                          "--set", f"aupgate_resolve=silent.test:80:127.0.0.1:{site.port}",
                          "--set", f"aupgate_resolve=silent.test:443:127.0.0.1:{site.port}")
    yield started
    stop_proxy(started)


@pytest.mark.e2e
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_silent_site_gets_the_timeout_page_within_the_deadline(gw: Proxy, scheme: str) -> None:
    """Over HTTP the site reads the request and says nothing; over HTTPS it never answers the
    gateway's ClientHello. Either way: 504, aupgate's page, the request id, and the audit."""
    started = time.monotonic()
    r = curl(gw, f"{scheme}://silent.test/silent", "-H", "Accept: text/html", timeout=60)
    took = time.monotonic() - started
    assert r.status == 504, r
    assert DEADLINE * 0.9 <= took < 45, took  # the deadline, not mitmproxy's ten minutes
    assert "silent.test took too long to answer" in r.body
    assert "mitmproxy" not in r.headers.lower() and "Errno" not in r.body
    [event] = gw.events("decision", host="silent.test", scheme=scheme, phase="request")
    assert event["status"] == 504 and event["enforced"] == "gateway-error"
    assert event["upstream_error"] == "timeout"
    assert f"within {DEADLINE} s (aupgate_response_timeout)" in event["error"]
    assert event["request_id"] in r.body


@pytest.mark.e2e
def test_an_answer_within_the_deadline_and_a_slow_body_pass(gw: Proxy) -> None:
    late = curl(gw, "http://silent.test/late", timeout=30)
    assert late.status == 200 and late.body == "late\n", late
    trickle = curl(gw, "http://silent.test/trickle", timeout=30)
    assert trickle.status == 200 and trickle.body == "0123456789" * 3, trickle
    for path in ("/late", "/trickle"):
        [event] = gw.events("decision", host="silent.test", path=path)
        assert event["status"] == 200 and event["enforced"] == "passed", event


@pytest.mark.e2e
def test_the_deadline_starts_when_the_upload_ends(gw: Proxy) -> None:
    """Sending the body takes longer than the deadline: the upload is the employee's time. A
    site that answers then passes; a silent one gets the page a deadline after the upload."""
    body = "x" * (3 * DEADLINE * 1024)  # about 3 deadlines at 1 KiB/s
    started = time.monotonic()
    r = curl(gw, "http://www.example.org/upload", "--data-binary", body, "--limit-rate", "1K",
             timeout=60)
    upload = time.monotonic() - started
    assert upload > 2 * DEADLINE, f"the upload was not slow: {upload:.1f}s"
    assert r.status == 200 and "upstream www.example.org POST /upload" in r.body, r
    started = time.monotonic()
    r = curl(gw, "http://silent.test/silent-upload", "--data-binary", body, "--limit-rate", "1K",
             timeout=60)
    took = time.monotonic() - started
    assert r.status == 504 and "took too long" in r.body, r
    assert took >= 2 * DEADLINE + DEADLINE * 0.9, f"cut during the upload, after {took:.1f}s"
