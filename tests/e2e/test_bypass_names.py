"""Every name a request carries is decided, and the audit names what was really requested
(issue 12, items 1, 3 and 11), through a real `aupgate run`.

Upstreams route on an absolute-form request target (RFC 9112 3.2.2), not on the CONNECT host or
Host, so a name hidden there inside a tunnel must be decided like the others; HTTP/2 has no
absolute form in `:path` at all (RFC 9113 8.3.1). Ports other than the web's are shut unless
the policy opens them (Squid's SSL_ports/Safe_ports). Evasive spellings are audited under the
canonical name, with the raw spelling beside it.
"""

from __future__ import annotations

import json
import subprocess

from .conftest import AUPGATE, Proxy, Upstreams, curl
from .rawclient import exchange, h2_request, read_all, status_of, tls_tunnel, tunnel


def _reached(upstreams: Upstreams, path: str) -> int:
    """How many requests for `path` any upstream saw, whatever host they named."""
    return sum(n for (_, p), n in (upstreams.http.seen + upstreams.https.seen).items()
               if p == path)


def test_absolute_form_in_a_plain_tunnel_is_decided(proxy: Proxy, upstreams: Upstreams) -> None:
    """`curl -p` tunnels to an allowed host, then asks for a blocked one in absolute form."""
    r = curl(proxy, "http://www.example.org/abs-plain", "-p",
             "--request-target", "http://www.bet365.com/abs-plain")
    assert r.status == 403, r
    assert _reached(upstreams, "/abs-plain") == 0
    [line] = proxy.events("decision", phase="request", path="/abs-plain")
    assert line["host"] == "www.bet365.com" and line["rule"] == "no-gambling", line
    [mismatch] = proxy.events("domain_mismatch", request_id=line["request_id"])
    assert set(mismatch["names"]) == {"www.bet365.com", "www.example.org"}


def test_absolute_form_inside_intercepted_tls_is_decided(
        proxy: Proxy, upstreams: Upstreams) -> None:
    r = curl(proxy, "https://www.example.org/abs-tls", "--http1.1",
             "--request-target", "https://www.bet365.com/abs-tls")
    assert r.status == 403, r
    assert "Gambling" in r.body
    assert _reached(upstreams, "/abs-tls") == 0
    [line] = proxy.events("decision", phase="request", path="/abs-tls")
    assert line["host"] == "www.bet365.com" and line["enforced"] == "blocked", line


def test_absolute_form_to_an_allowed_host_is_audited_under_that_host(
        proxy: Proxy, upstreams: Upstreams) -> None:
    """Both names allowed: the request goes on, and its line names the host it asked for."""
    r = curl(proxy, "http://www.example.org/abs-log", "-p",
             "--request-target", "http://mail.yahoo.com/abs-log")
    assert r.status == 200, r
    [line] = proxy.events("decision", phase="request", path="/abs-log")
    assert line["host"] == "mail.yahoo.com" and line["rule"] == "log-webmail", line
    [mismatch] = proxy.events("domain_mismatch", request_id=line["request_id"])
    assert set(mismatch["names"]) == {"mail.yahoo.com", "www.example.org"}


def test_absolute_form_to_a_warned_host_shows_the_warn_page(
        proxy: Proxy, upstreams: Upstreams) -> None:
    sock, head = tunnel(proxy.port, "www.example.org:80")
    assert status_of(head) == 200, head
    with sock:
        sock.sendall(b"GET http://www.facebook.com/abs-warn HTTP/1.1\r\n"
                     b"Host: www.example.org\r\nConnection: close\r\n\r\n")
        answer = read_all(sock)
    assert status_of(answer) == 403 and b"/.aupgate/continue" in answer, answer[:300]
    assert _reached(upstreams, "/abs-warn") == 0


def test_http2_absolute_path_is_refused(proxy: Proxy, upstreams: Upstreams) -> None:
    """`:path` carrying a URL to a blocked host, `:authority` an allowed one: never forwarded."""
    status, body, ended = h2_request(proxy.port, "www.example.org", proxy.mitm_ca, [
        (":method", "GET"), (":scheme", "https"), (":authority", "www.example.org"),
        (":path", "https://www.bet365.com/h2-abs")])
    assert status in (400, None), (status, body, ended)
    assert status == 400 or ended, (status, ended)
    assert _reached(upstreams, "/h2-abs") == 0
    assert _reached(upstreams, "https://www.bet365.com/h2-abs") == 0


def test_http2_authority_and_host_disagreeing_are_both_decided(
        proxy: Proxy, upstreams: Upstreams) -> None:
    status, _, ended = h2_request(proxy.port, "www.example.org", proxy.mitm_ca, [
        (":method", "GET"), (":scheme", "https"), (":authority", "www.bet365.com"),
        (":path", "/h2-authority")])
    assert status == 403, (status, ended)
    assert _reached(upstreams, "/h2-authority") == 0


# --------------------------------------------------------------------------- ports (item 3)


def test_connect_to_ssh_port_is_refused_by_the_port_policy(proxy: Proxy) -> None:
    """CONNECT to 22 of an allowed host: in page mode answered so a page can be shown, but no
    byte reaches port 22, and the CONNECT is audited as blocked by the port policy."""
    sock, _ = tunnel(proxy.port, "www.example.org:22")
    with sock:
        sock.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")
        rest = read_all(sock, timeout=5)
    assert b"SSH-" not in rest
    [line] = proxy.events("decision", phase="connect", host="www.example.org", port=22)
    assert line["rule"] == "port-policy" and line["action"] == "block", line
    assert line["clauses"] == ["13"], line
    raw = proxy.events("decision", phase="tcp", port=22)
    assert raw and raw[0]["enforced"] == "refused", raw


def test_plain_http_to_another_port_is_blocked(proxy: Proxy, upstreams: Upstreams) -> None:
    r = curl(proxy, "http://www.example.org:8080/port-8080")
    assert r.status == 403, r
    assert "Network services" in r.body
    [line] = proxy.events("decision", phase="request", path="/port-8080")
    assert line["rule"] == "port-policy" and line["step"] == "ports", line


def test_https_to_another_port_is_blocked_with_a_page(proxy: Proxy) -> None:
    r = curl(proxy, "https://www.example.org:8443/port-8443")
    assert r.status == 403, r
    [line] = proxy.events("decision", phase="connect", host="www.example.org", port=8443)
    assert line["rule"] == "port-policy", line


def test_plain_http_inside_a_tunnel_to_a_shut_port_is_held_to_the_connect(
        proxy: Proxy, upstreams: Upstreams) -> None:
    """A CONNECT to a shut port answered for a page: HTTP inside it is still blocked."""
    sock, head = tunnel(proxy.port, "www.example.org:8081")
    assert status_of(head) == 200, head
    with sock:
        sock.sendall(b"GET /inside-8081 HTTP/1.1\r\nHost: www.example.org\r\n"
                     b"Connection: close\r\n\r\n")
        answer = read_all(sock)
    assert status_of(answer) == 403, answer[:200]
    assert _reached(upstreams, "/inside-8081") == 0


# --------------------------------------------------------------------------- spellings (item 11)


def test_evasive_spellings_are_audited_canonically_and_found_by_review(proxy: Proxy) -> None:
    r = curl(proxy, "http://WWW.BET365.COM./spelling")
    assert r.status == 403, r
    [line] = proxy.events("decision", phase="request", path="/spelling")
    assert line["host"] == "www.bet365.com" and line["host_raw"] == "WWW.BET365.COM.", line
    exchange(proxy.port, b"GET http://0x7f.0.0.3/ip-spelling HTTP/1.1\r\nHost: 0x7f.0.0.3\r\n"
                         b"Connection: close\r\n\r\n", timeout=5)  # curl would respell it
    [ip_line] = proxy.events("decision", phase="request", path="/ip-spelling")
    assert ip_line["host"] == "127.0.0.3" and ip_line["host_raw"] == "0x7f.0.0.3", ip_line
    found = subprocess.run([str(AUPGATE), "review", "--host", "bet365.com", "--json",
                            str(proxy.audit_path)], capture_output=True, text=True, check=False)
    assert found.returncode == 0, found.stderr
    paths = [json.loads(x).get("path") for x in found.stdout.splitlines() if x.strip()]
    assert "/spelling" in paths, found.stdout


def test_tls_tunnel_helper_speaks_http1(proxy: Proxy) -> None:
    """The raw TLS helper the other tests rely on reaches a real page."""
    with tls_tunnel(proxy.port, "www.example.org", proxy.mitm_ca) as tls:
        tls.sendall(b"GET /helper HTTP/1.1\r\nHost: www.example.org\r\nConnection: close\r\n\r\n")
        assert status_of(read_all(tls)) == 200


def test_an_ip_literal_is_decided_as_itself(proxy: Proxy) -> None:
    """What the gateway cannot see (docs/security.md): an address with no name is decided as
    that address, which no category list names; it is audited as such."""
    r = curl(proxy, "http://127.0.0.1/ip-literal")
    assert r.status == 502, r  # allowed, and nothing listens on 127.0.0.1:80 here
    [line] = proxy.events("decision", phase="request", path="/ip-literal")
    assert line["host"] == "127.0.0.1" and line["categories"] == ["uncategorized"], line
    assert line["action"] == "allow", line
