"""Uploads through a real `aupgate run`: known and unknown length, form uploads carrying a
program, publishing endpoints; what the upstream received and what the audit line says.

The lab policy limits transfers to 1 MiB (`no-large`), blocks publishing (`no-publish`) and
programs sent out (`no-program-uploads`). An upload the proxy stops must never reach the
upstream whole: the upstream records how many body bytes arrived and whether the body ended.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import CURL, MIB, Proxy, Upstreams, curl

pytestmark = pytest.mark.e2e


def wait_for_event(proxy: Proxy, path: str, timeout: float = 15) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in proxy.events("decision") if e.get("path") == path]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no decision for {path}:\n{proxy.log()}")


def test_small_upload_of_known_length_passes_and_is_recorded(
        proxy: Proxy, upstreams: Upstreams) -> None:
    r = curl(proxy, "http://www.example.org/upload/small", "--data-binary", "x" * 5000)
    assert r.status == 200, r
    assert upstreams.upload("www.example.org", "/upload/small") == (5000, True)
    event = wait_for_event(proxy, "/upload/small")
    assert (event["direction"], event["request_bytes"], event["action"]) == ("upload", 5000,
                                                                             "allow")


def test_upload_of_known_length_over_the_limit_never_leaves(
        proxy: Proxy, upstreams: Upstreams, tmp_path: Path) -> None:
    """A stated 5 MiB body over the 1 MiB limit is decided before a byte of it is read: the
    upstream never sees the request; the connection is closed rather than the body buffered."""
    data = tmp_path / "five.bin"
    data.write_bytes(b"y" * (5 * MIB))
    r = curl(proxy, "http://www.example.org/upload/big", "--data-binary", f"@{data}")
    assert r.status in (0, 403), r  # closed before any answer (curl: empty reply / reset)
    assert upstreams.seen("www.example.org", "/upload/big") == 0
    event = wait_for_event(proxy, "/upload/big")
    assert (event["rule"], event["action"], event["enforced"]) == ("no-large", "block",
                                                                     "blocked")
    assert event["direction"] == "upload" and event["request_bytes"] == 5 * MIB
    assert event["content"] == ["large-transfer"]


def test_upload_just_under_the_page_limit_gets_the_block_page(proxy: Proxy,
                                                               upstreams: Upstreams) -> None:
    """A blocked upload small enough to read first is answered with the page."""
    r = curl(proxy, "http://www.example.org/upload/page.exe", "-H",
             "Content-Type: application/octet-stream", "--data-binary", "MZ" * 1000)
    assert r.status == 403 and "blocked" in r.body, r
    assert upstreams.seen("www.example.org", "/upload/page.exe") == 0
    event = wait_for_event(proxy, "/upload/page.exe")
    assert event["rule"] == "no-program-uploads" and event["content"] == ["executable"]


def test_chunked_upload_is_counted_and_stopped_past_the_limit(
        proxy: Proxy, upstreams: Upstreams, tmp_path: Path) -> None:
    """No Content-Length: the body is counted as it streams; past 1 MiB the upload stops, the
    upstream connection is aborted, and the upstream never gets a complete body."""
    data = tmp_path / "five.bin"
    data.write_bytes(b"z" * (5 * MIB))
    r = curl(proxy, "http://www.example.org/upload/chunked", "-H", "Transfer-Encoding: chunked",
             "--data-binary", f"@{data}", timeout=20)
    assert r.status != 200, r
    event = wait_for_event(proxy, "/upload/chunked")
    assert (event["rule"], event["enforced"], event["phase"]) == ("no-large", "cut", "upload")
    assert event["direction"] == "upload"
    assert MIB < event["request_bytes"] <= MIB + 256 * 1024
    deadline = time.monotonic() + 10
    while upstreams.upload("www.example.org", "/upload/chunked") is None and (
            time.monotonic() < deadline):
        time.sleep(0.05)
    got = upstreams.upload("www.example.org", "/upload/chunked")
    assert got is not None and got[1] is False and got[0] <= MIB + 256 * 1024, got


def test_small_chunked_upload_passes_whole(proxy: Proxy, upstreams: Upstreams) -> None:
    r = curl(proxy, "http://www.example.org/upload/chunked-small", "-H",
             "Transfer-Encoding: chunked", "--data-binary", "q" * 70000)
    assert r.status == 200, r
    assert upstreams.upload("www.example.org", "/upload/chunked-small") == (70000, True)
    event = wait_for_event(proxy, "/upload/chunked-small")
    assert event["request_bytes"] == 70000 and event["direction"] == "upload"


def test_program_in_a_form_upload_is_stopped(proxy: Proxy, upstreams: Upstreams,
                                             tmp_path: Path) -> None:
    """MoDOT 22: a program sent out inside a browser's file-upload form is seen as its part's
    head streams by, and the upload stops before the file's bytes leave."""
    program = tmp_path / "setup.exe"
    program.write_bytes(b"MZ" + b"\0" * (300 * 1024))
    r = curl(proxy, "http://www.example.org/upload/form", "-F", "title=report",
             "-F", f"file=@{program};type=application/octet-stream")
    assert r.status != 200, r
    event = wait_for_event(proxy, "/upload/form")
    assert (event["rule"], event["enforced"], event["content"]) == (
        "no-program-uploads", "cut", ["executable"])
    got = upstreams.upload("www.example.org", "/upload/form")
    assert got is None or got[1] is False, got


def test_form_upload_of_a_document_passes(proxy: Proxy, upstreams: Upstreams,
                                          tmp_path: Path) -> None:
    doc = tmp_path / "report.pdf"
    doc.write_bytes(b"%PDF-1.7\n" + b"0" * 20000)
    r = curl(proxy, "http://www.example.org/upload/form-ok", "-F", f"file=@{doc}")
    assert r.status == 200, r
    got = upstreams.upload("www.example.org", "/upload/form-ok")
    assert got is not None and got[1] is True


@pytest.mark.parametrize(
    ("name", "eol", "pad"),
    [
        ('"setup.exe."', "\r\n", 0),
        ('"SETUP.EXE"', "\r\n", 0),
        ("\"x\";filename*=UTF-8''a.msi", "\r\n", 0),
        ("\"x.png\"; filename*=UTF-8''setup%2Eexe", "\r\n", 0),  # RFC 5987 percent-encoding
        ('"install.ps1"', "\n", 0),  # bare LF line ends, as lenient servers read them
        ('"setup.exe"', "\r\n", 40000),  # the name hidden behind a padded part head
    ],
)
def test_program_names_spelled_otherwise_are_seen(proxy: Proxy, name: str, eol: str,
                                                  pad: int) -> None:
    """The part head as an attacker might write it, sent raw."""
    boundary = "XyZ"
    padding = f"X-Pad: {'p' * pad}{eol}" if pad else ""
    body = (f"--{boundary}{eol}{padding}Content-Disposition: form-data; name=\"f\"; "
            f"filename={name}{eol}Content-Type: image/png{eol}{eol}MZ{eol}--{boundary}--{eol}"
            ).encode()
    path = f"/upload/raw-{abs(hash((name, eol, pad)))}"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(f"POST http://www.example.org{path} HTTP/1.1\r\nHost: www.example.org\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        s.settimeout(10)
        try:
            reply = s.recv(4096)
        except OSError:  # reset: stopped
            reply = b""
    assert not reply.startswith(b"HTTP/1.1 200"), reply  # closed or reset, never passed
    event = wait_for_event(proxy, path)
    assert event["rule"] == "no-program-uploads"


def test_publishing_is_blocked_and_reading_stays_allowed(proxy: Proxy,
                                                         upstreams: Upstreams) -> None:
    """DNR's publishing clause: posting to a paste service or a file host's upload API is
    blocked; reading the same sites is not."""
    read = curl(proxy, "https://pastebin.com/raw/abc")
    assert read.status == 200, read
    post = curl(proxy, "https://pastebin.com/", "--data", "paste_code=secret+minutes")
    assert post.status == 403 and "blocked" in post.body, post
    assert upstreams.seen("pastebin.com", "/") == 0
    up = curl(proxy, "https://content.dropboxapi.com/2/files/upload", "-H",
              "Content-Type: application/octet-stream", "--data-binary", "data")
    assert up.status == 403, up
    events = {e["path"]: e for e in proxy.events("decision") if e.get("host") in (
        "pastebin.com", "content.dropboxapi.com")}
    assert events["/raw/abc"]["direction"] == "read" and events["/raw/abc"]["action"] == "allow"
    assert events["/"]["direction"] == "publish" and events["/"]["rule"] == "no-publish"
    assert events["/2/files/upload"]["direction"] == "publish"


def test_a_get_with_a_body_is_an_upload_not_a_read(proxy: Proxy, upstreams: Upstreams) -> None:
    """Direction comes from the body, not the method: a body smuggled on a GET still counts."""
    r = curl(proxy, "http://www.example.org/upload/get-body", "-X", "GET", "-H",
             "Content-Type: application/octet-stream", "--data-binary", "MZ")
    event = wait_for_event(proxy, "/upload/get-body")
    assert event["direction"] == "upload", (r, event)


def test_h2_upload_without_a_length_is_never_sent_unframed(
        proxy: Proxy, upstreams: Upstreams, tmp_path: Path) -> None:
    """HTTP/2 needs no Content-Length. mitmproxy 11 would forward such a body to an HTTP/1
    server with no framing (its bytes read as further requests): the gateway refuses to."""
    data = tmp_path / "h2.bin"
    data.write_bytes(b"w" * (3 * MIB))
    argv = [CURL, "-sS", "--http2", "--proxy", proxy.url, "--cacert", str(proxy.mitm_ca),
            "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
            "-H", "Content-Length:", "-H", "Transfer-Encoding:",
            "--data-binary", f"@{data}", "https://www.example.org/upload/h2"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.stdout.split()[-1:] == ["2"], done  # it was HTTP/2
    event = wait_for_event(proxy, "/upload/h2")
    assert (event["enforced"], event["phase"], event["direction"]) == (
        "refused", "upload", "upload"), (done.stdout, event)
    got = upstreams.upload("www.example.org", "/upload/h2")
    assert got is None or got[0] == 0, got  # not a byte of the body
