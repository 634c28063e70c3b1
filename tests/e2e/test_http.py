"""Plain HTTP through a real `aupgate run`: pass, block, warn-then-continue, response rules."""

from __future__ import annotations

import json
import socket

import pytest

from .conftest import Proxy, Upstreams, curl, curl_many


def test_allowed_site_passes_through(proxy: Proxy) -> None:
    r = curl(proxy, "http://www.example.org/hello?q=1")
    assert r.status == 200, r
    assert r.body == "upstream www.example.org GET /hello\n"
    [event] = proxy.events("decision", host="www.example.org", path="/hello?q=1")
    assert event["action"] == "allow" and event["status"] == 200 and event["bytes"] == len(r.body)
    assert event["agency"] == "lab" and event["client"] == "127.0.0.1"


def test_gambling_is_blocked_with_cited_page(proxy: Proxy, upstreams: Upstreams) -> None:
    """The block page names the policy, the clause and its text, category, window and contact."""
    r = curl(proxy, "http://www.bet365.com/sports", "-H", "Accept: text/html")
    assert r.status == 403, r
    for text in ("Test Laboratory Agency", "clause 1: Gambling", "strictly prohibited",
                 "gambling", "work", "Lab service desk"):
        assert text in r.body
    assert upstreams.seen("www.bet365.com", "/sports") == 0  # never reached the site
    [event] = proxy.events("decision", host="www.bet365.com", path="/sports")
    assert event["rule"] == "no-gambling" and event["clauses"] == ["1"]
    assert event["enforced"] == "blocked" and event["status"] == 403
    assert event["request_id"] in r.body


def test_block_page_json_and_text(proxy: Proxy) -> None:
    r = curl(proxy, "http://www.bet365.com/", "-H", "Accept: application/json")
    data = json.loads(r.body)
    assert data["aupgate"] == "block" and data["clauses"][0]["id"] == "1"
    r = curl(proxy, "http://www.bet365.com/")
    assert r.body.startswith("This site is blocked")


def test_secrets_stay_out_of_the_audit(proxy: Proxy) -> None:
    curl(proxy, "http://user:pw@www.example.org/login?password=hunter2&next=/home",
         "-H", "Cookie: session=abc", "-H", "Authorization: Basic dXNlcjpwdw==")
    text = proxy.audit_path.read_text()
    for secret in ("hunter2", "session=abc", "dXNlcjpwdw==", "user:pw"):
        assert secret not in text
    assert any(e.get("path") == "/login?password=REDACTED&next=/home"
               for e in proxy.events("decision"))


def test_warn_then_continue(proxy: Proxy, upstreams: Upstreams) -> None:
    """Social networking needs a work reason; after it, the host passes for a while, for the
    browser that gave it (its pass cookie)."""
    jar = str(proxy.home / "cookies-warn.txt")
    first = curl(proxy, "http://www.facebook.com/agency-page?x=1", "-H", "Accept: text/html")
    assert first.status == 403 and 'name="reason"' in first.body, first
    token = first.body.split('name="token" value="')[1].split('"')[0]
    # a wrong token does not open the site
    bad = curl(proxy, "http://www.facebook.com/.aupgate/continue",
               "--data", "token=forged&reason=posting+the+road+closure+notice")
    assert bad.status != 303
    go = curl(proxy, "http://www.facebook.com/.aupgate/continue",
              "--data-urlencode", f"token={token}",
              "--data-urlencode", "reason=posting the road closure notice", "-c", jar)
    assert go.status == 303, go
    assert "location: http://www.facebook.com/agency-page?x=1" in go.headers.lower()
    assert upstreams.seen("www.facebook.com", "/.aupgate/continue") == 0  # never forwarded
    after = curl(proxy, "http://www.facebook.com/agency-page?x=1", "-b", jar)
    assert after.status == 200 and "upstream www.facebook.com" in after.body
    [cont] = [e for e in proxy.events("decision") if e.get("work_reason")]
    assert cont["work_reason"] == "posting the road closure notice"
    assert cont["rule_continued"] == "social-warn"
    assert proxy.events("decision", host="www.facebook.com", enforced="pass-used")
    # the token is single-use
    again = curl(proxy, "http://www.facebook.com/.aupgate/continue",
                 "--data-urlencode", f"token={token}", "--data-urlencode", "reason=again please")
    assert again.status != 303


def test_log_action_passes_and_is_audited(proxy: Proxy) -> None:
    r = curl(proxy, "http://mail.yahoo.com/inbox")
    assert r.status == 200
    [event] = proxy.events("decision", host="mail.yahoo.com")
    assert event["action"] == "log" and event["rule"] == "log-webmail"


def test_host_header_mismatch_is_decided_too(proxy: Proxy, upstreams: Upstreams) -> None:
    """An allowed URL with a gambling Host header: the strictest name wins."""
    r = curl(proxy, "http://www.example.org/front", "-H", "Host: www.bet365.com")
    assert r.status == 403, r
    assert upstreams.seen("www.bet365.com", "/front") == 0
    assert proxy.events("domain_mismatch")


def test_websocket_handshake_is_decided(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"GET http://www.bet365.com/live HTTP/1.1\r\nHost: www.bet365.com\r\n"
                  b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 403"), reply


@pytest.mark.parametrize(
    ("path", "rule"),
    [("/radio", "no-audio"), ("/big.bin", "no-large"), ("/ubuntu.torrent", "no-torrent"),
     ("/download", "no-exe")],
)
def test_response_side_rules_block(proxy: Proxy, path: str, rule: str) -> None:
    """What the domain cannot tell, the response headers do: each gets the block page."""
    r = curl(proxy, f"http://www.example.org{path}", timeout=10)
    assert r.status == 403, r
    assert "blocked" in r.body
    [event] = proxy.events("decision", host="www.example.org", path=path)
    assert event["rule"] == rule
    # a .torrent URL is known before the response; the rest only from the response headers
    assert event["phase"] == ("request" if path.endswith(".torrent") else "response")


def test_tracker_announce_blocked_at_request(proxy: Proxy, upstreams: Upstreams) -> None:
    r = curl(proxy, "http://www.example.org/announce?info_hash=abc&peer_id=x")
    assert r.status == 403
    assert upstreams.seen("www.example.org", "/announce") == 0


def test_counted_transfer_is_cut(proxy: Proxy) -> None:
    """No Content-Length: bytes are counted while streaming and the transfer stops at 1 MiB."""
    r = curl(proxy, "http://www.example.org/stream-big.bin", timeout=10)
    assert r.exit != 0 or len(r.body) < 3 * 1024 * 1024
    assert len(r.body) <= 1024 * 1024 + 65536
    [event] = proxy.events("decision", path="/stream-big.bin")
    assert event["enforced"] == "cut" and event["rule"] == "no-large"


def test_small_stream_passes(proxy: Proxy) -> None:
    r = curl(proxy, "http://www.example.org/stream-small.bin")
    assert r.status == 200 and len(r.body) == 4 * 65536


def test_reserved_paths_are_never_forwarded(proxy: Proxy, upstreams: Upstreams) -> None:
    """/.aupgate/ belongs to the gateway: other paths, other methods, big bodies get a page."""
    for args in ((), ("--data-binary", "x" * 20000)):
        r = curl(proxy, "http://www.example.org/.aupgate/continue", *args)
        assert r.status == 404 and "belongs to the agency gateway" in r.body, r
    r = curl(proxy, "http://www.example.org/.aupgate/admin")
    assert r.status == 404
    assert upstreams.seen("www.example.org", "/.aupgate/continue") == 0
    assert upstreams.seen("www.example.org", "/.aupgate/admin") == 0


def test_kept_alive_requests_through_resolve(proxy: Proxy, upstreams: Upstreams) -> None:
    """Many requests on one client connection to names sent elsewhere by --resolve all pass, and
    each name reuses one upstream connection (the sixth used to hang: each request opened a new
    upstream connection, and mitmproxy allows five per address and client connection)."""
    hosts = ["www.example.org", "mail.yahoo.com", "localhost"]
    urls = [f"http://{host}/keepalive-{i}" for i in range(6) for host in hosts]
    results = curl_many(proxy, urls, timeout=20)
    assert [status for status, _ in results] == [200] * len(urls)
    assert [connects for _, connects in results] == [1] + [0] * (len(urls) - 1)  # one proxy conn
    for host in hosts:
        peers = {upstreams.peer(host, f"/keepalive-{i}") for i in range(6)}
        assert len(peers) == 1, (host, peers)  # one upstream connection per name, reused
    assert len(proxy.events("decision", phase="request", enforced="passed")) >= len(urls)


def test_content_warn_shows_the_warn_page_and_the_pass_covers_the_rerequest(
        proxy: Proxy, upstreams: Upstreams) -> None:
    """A warn decided on the response (an installer from vendor.test) answers with the warn page
    in place of the response; the work reason given there is a pass for the host, and the
    re-request, turning out the same, then passes, as after a request-time warn."""
    first = curl(proxy, "http://vendor.test/download?v=2", "-H", "Accept: text/html")
    assert first.status == 403 and 'name="reason"' in first.body, first
    assert "MZ" not in first.body
    assert "Software from the vendor" in first.body and "clause 7:" in first.body
    token = first.body.split('name="token" value="')[1].split('"')[0]
    jar = str(proxy.home / "cookies-vendor.txt")
    go = curl(proxy, "http://vendor.test/.aupgate/continue",
              "--data-urlencode", f"token={token}",
              "--data-urlencode", "reason=installing the plotter driver for the survey team",
              "-c", jar)
    assert go.status == 303, go
    assert "location: http://vendor.test/download?v=2" in go.headers.lower()
    after = curl(proxy, "http://vendor.test/download?v=2", "-b", jar)
    assert after.status == 200 and after.body.startswith("MZ"), after
    events = [e for e in proxy.events("decision", host="vendor.test")
              if e["path"] == "/download?v=2"]
    assert [(e["phase"], e["enforced"], e["rule"]) for e in events] == [
        ("response", "warned", "vendor-exe-warn"), ("response", "pass-used", "vendor-exe-warn")]
    [cont] = [e for e in proxy.events("decision", phase="continue")
              if e.get("rule_continued") == "vendor-exe-warn"]
    assert cont["continued_host"] == "vendor.test"
    # a pass is for its host: the same download elsewhere is still blocked
    other = curl(proxy, "http://www.example.org/download")
    assert other.status == 403 and "blocked" in other.body
