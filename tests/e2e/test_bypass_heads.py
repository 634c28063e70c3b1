"""Oversized, slow and malformed request heads (issue 12, items 4 and 15), through a real proxy.

Heads past the limits are refused (414 for the request line, 431 for the head) before anything
is decided, and an HTTP/1 head is cut off while it arrives, so the proxy's memory stays bounded
(measured here: resident memory before and after). Known smuggling shapes are refused with the
fixed h11 and h2 installed over mitmproxy's pins (Makefile), and obs-fold headers are refused.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from .conftest import Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy
from .rawclient import connect, exchange, h2_request, read_all, rss_kib, status_of

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def heads(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
          upstreams: Upstreams) -> Iterator[Proxy]:
    started = start_proxy(tmp_path_factory.mktemp("heads"), certs, upstreams)
    yield started
    stop_proxy(started)


def _reached(upstreams: Upstreams, path: str) -> int:
    return sum(n for (_, p), n in (upstreams.http.seen + upstreams.https.seen).items()
               if p.startswith(path))


def _send_huge(port: int, head_start: bytes, filler: int) -> bytes:
    """Send a head that never ends in time (`filler` bytes more) and return the answer."""
    sock = connect(port, timeout=30)
    answer: list[bytes] = []

    def reader() -> None:
        answer.append(read_all(sock, timeout=30))

    thread = threading.Thread(target=reader)
    thread.start()
    with contextlib.suppress(OSError):  # the proxy closes once the limit is passed
        sock.sendall(head_start)
        chunk = b"a" * 65536
        for _ in range(filler // len(chunk)):
            sock.sendall(chunk)
    thread.join(timeout=40)
    sock.close()
    return answer[0] if answer else b""


def test_a_20_mb_url_is_refused_414_and_memory_stays_bounded(
        heads: Proxy, upstreams: Upstreams) -> None:
    pid = heads.process.pid
    before = rss_kib(pid)
    answers: list[bytes] = []
    threads = [threading.Thread(target=lambda: answers.append(_send_huge(
        heads.port, b"GET http://www.example.org/huge-url?", 20 * MIB))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 5 and all(status_of(a) == 414 for a in answers), answers
    grown = rss_kib(pid) - before
    print(f"five 20 MB URLs at once: resident memory {before} KiB -> +{grown} KiB")
    assert grown < 40 * 1024, f"resident memory grew by {grown} KiB"
    assert _reached(upstreams, "/huge-url") == 0
    refused = [e for e in heads.events("decision", phase="request", status=414)]
    assert len(refused) == 5 and all(e["enforced"] == "refused" for e in refused), refused
    assert max(len(line) for line in heads.audit_path.read_text().splitlines()) < 8192


def test_a_huge_header_is_refused_431(heads: Proxy, upstreams: Upstreams) -> None:
    answer = _send_huge(heads.port, b"GET http://www.example.org/huge-header HTTP/1.1\r\n"
                                    b"Host: www.example.org\r\nX-Big: ", 2 * MIB)
    assert status_of(answer) == 431, answer[:200]
    assert _reached(upstreams, "/huge-header") == 0


def test_too_many_headers_are_refused_431(heads: Proxy, upstreams: Upstreams) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(300))
    answer = exchange(heads.port, b"GET http://www.example.org/many-headers HTTP/1.1\r\n"
                                  b"Host: www.example.org\r\n" + many + b"\r\n")
    assert status_of(answer) == 431, answer[:200]
    assert _reached(upstreams, "/many-headers") == 0
    [line] = heads.events("decision", phase="request", status=431, enforced="refused",
                          path="/many-headers")
    assert "header fields" in line["reason"]


def test_a_slow_partial_head_neither_blocks_others_nor_passes(
        heads: Proxy, upstreams: Upstreams) -> None:
    """A head trickling in is held (bounded), others are served meanwhile, and past the limit
    it is refused; one abandoned half-way is dropped without a trace upstream."""
    slow = connect(heads.port, timeout=30)
    slow.sendall(b"GET http://www.example.org/slow-head HTTP/1.1\r\nHost: www.example.org\r\n"
                 b"X-Slow: ")
    for _ in range(20):
        slow.sendall(b"s" * 1024)
    ok = curl(heads, "http://www.example.org/meanwhile")
    assert ok.status == 200, ok
    with contextlib.suppress(OSError):
        for _ in range(60):
            slow.sendall(b"s" * 1024)
    assert status_of(read_all(slow, timeout=10)) == 431
    slow.close()
    abandoned = connect(heads.port)
    abandoned.sendall(b"GET http://www.example.org/abandoned HTTP/1.1\r\nHost: www.exa")
    abandoned.close()
    assert curl(heads, "http://www.example.org/after").status == 200
    assert _reached(upstreams, "/slow-head") == 0 and _reached(upstreams, "/abandoned") == 0


def test_a_long_url_under_the_limit_is_decided_and_audited_cut(
        heads: Proxy, upstreams: Upstreams) -> None:
    long_path = "/long-url-" + "x" * 12_000
    r = curl(heads, "http://www.bet365.com" + long_path)
    assert r.status == 403, r
    [line] = [e for e in heads.events("decision", phase="request", host="www.bet365.com")
              if e["path"].startswith("/long-url-")]
    assert len(line["path"]) < 4200 and "…[cut " in line["path"], line["path"][-40:]


def test_http2_oversized_head_is_refused(heads: Proxy, upstreams: Upstreams) -> None:
    status, _, ended = h2_request(heads.port, "www.example.org", heads.mitm_ca, [
        (":method", "GET"), (":scheme", "https"), (":authority", "www.example.org"),
        (":path", "/h2-big-head")] + [(f"x-h{i}", "v" * 1000) for i in range(100)])
    assert status == 431 or (status is None and ended), (status, ended)
    assert _reached(upstreams, "/h2-big-head") == 0


# --------------------------------------------------------------------------- smuggling (item 15)


def test_chunk_with_a_bad_terminator_is_refused(heads: Proxy, upstreams: Upstreams) -> None:
    """CVE-2025-43859: h11 <= 0.14 took any two bytes for the CRLF after a chunk."""
    answer = exchange(heads.port, b"POST http://www.example.org/chunk-xx HTTP/1.1\r\n"
                                  b"Host: www.example.org\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  b"5\r\nhelloXX0\r\n\r\n", timeout=5)
    assert status_of(answer) in (0, 400), answer[:200]
    assert _reached(upstreams, "/chunk-xx") == 0


def test_http2_header_value_with_crlf_is_refused(heads: Proxy, upstreams: Upstreams) -> None:
    """GHSA-847f-9342-265h: CR/LF in an HTTP/2 header value would become a second HTTP/1
    header (here a Transfer-Encoding) when the request is forwarded over HTTP/1."""
    status, _, ended = h2_request(heads.port, "www.example.org", heads.mitm_ca, [
        (":method", "GET"), (":scheme", "https"), (":authority", "www.example.org"),
        (":path", "/h2-crlf"), ("x-injected", "a\r\ntransfer-encoding: chunked")])
    assert status in (None, 400) and (status == 400 or ended), (status, ended)
    assert _reached(upstreams, "/h2-crlf") == 0


def test_the_fixed_h2_itself_refuses_crlf_in_a_header_value(
        heads: Proxy, upstreams: Upstreams) -> None:
    """Proof that the fixed h2 parses the traffic: the value never reaches the gateway's own
    check (`requestshape`, which would answer 400 and audit a refusal), because h2 4.3 ends the
    connection with a protocol error first. With h2 4.1.0 (mitmproxy's pin) this fails: the
    request gets the gateway's 400."""
    status, _, ended = h2_request(heads.port, "www.example.org", heads.mitm_ca, [
        (":method", "GET"), (":scheme", "https"), (":authority", "www.example.org"),
        (":path", "/h2-crlf-h2"), ("x-injected", "a\r\ntransfer-encoding: chunked")])
    assert status is None and ended, (status, ended)
    assert heads.events("decision", path="/h2-crlf-h2") == []
    assert _reached(upstreams, "/h2-crlf-h2") == 0


def test_the_running_proxy_says_it_parses_with_the_fixed_h11_and_h2(heads: Proxy) -> None:
    """The proxy's own `proxy_start` line names the versions it loaded (not what the set-up
    meant to install), and no outdated-library warning was printed."""
    [start] = heads.events("proxy_start")
    found = start["libraries"]
    assert found["h11"] == "0.16.0" and found["h2"] == "4.3.0", found
    assert found["mitmproxy"] == "11.0.2" and found["hyperframe"] == "6.1.0", found
    assert "known request-smuggling flaws" not in heads.log()


def test_obs_fold_header_is_refused(heads: Proxy, upstreams: Upstreams) -> None:
    """RFC 9112 5.2: a proxy must reject or unfold obs-fold; it was forwarded verbatim."""
    answer = exchange(heads.port, b"GET http://www.example.org/obs-fold HTTP/1.1\r\n"
                                  b"Host: www.example.org\r\nX-Folded: first\r\n second\r\n"
                                  b"Connection: close\r\n\r\n")
    assert status_of(answer) == 400, answer[:200]
    assert _reached(upstreams, "/obs-fold") == 0
    [line] = heads.events("decision", phase="request", enforced="refused", path="/obs-fold")
    assert line["status"] == 400


def test_http2_still_proxies_with_the_fixed_h2(heads: Proxy) -> None:
    ok = curl(heads, "https://www.example.org/h2-fixed", "--http2")
    assert ok.status == 200 and ok.http_version == "2", ok
    blocked = curl(heads, "https://www.bet365.com/h2-fixed", "--http2")
    assert blocked.status == 403 and blocked.http_version == "2", blocked
