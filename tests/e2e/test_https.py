"""HTTPS through a real `aupgate run`: interception, never-decrypt pass-through, SNI blocking,
domain fronting, HTTP/2."""

from __future__ import annotations

from .conftest import Certs, Proxy, Upstreams, curl, curl_many


def test_intercepted_site_passes(proxy: Proxy) -> None:
    r = curl(proxy, "https://www.example.org/secure")
    assert r.status == 200, r
    assert r.body == "upstream www.example.org GET /secure\n"
    assert proxy.events("decision", phase="connect", host="www.example.org")
    assert proxy.events("decision", phase="request", host="www.example.org", path="/secure")


def test_blocked_https_site_shows_page(proxy: Proxy, upstreams: Upstreams) -> None:
    """The client trusts the agency CA, so the block page is served over TLS."""
    r = curl(proxy, "https://www.bet365.com/odds", "-H", "Accept: text/html")
    assert r.status == 403, r
    assert "clause 1: Gambling" in r.body
    assert upstreams.seen("www.bet365.com", "/odds") == 0


def test_http2_request_is_decided(proxy: Proxy) -> None:
    r = curl(proxy, "https://www.bet365.com/h2", "--http2")
    assert r.status == 403 and r.http_version == "2", r
    ok = curl(proxy, "https://www.example.org/h2", "--http2")
    assert ok.status == 200 and ok.http_version == "2", ok


def test_never_decrypt_site_is_passed_through(proxy: Proxy, certs: Certs) -> None:
    """Banking is never decrypted: the client sees the bank's own certificate."""
    r = curl(proxy, "https://www.bankofamerica.com/account", cacert=certs.ca_pem)
    assert r.status == 200, r
    assert r.body == "upstream www.bankofamerica.com GET /account\n"
    [tls] = proxy.events("decision", phase="tls", host="www.bankofamerica.com")
    assert tls["enforced"] == "passthrough"
    # no decrypted request was seen: only host-level decisions exist for it
    assert not proxy.events("decision", phase="request", host="www.bankofamerica.com")


def test_never_decrypt_block_is_refused_at_connect(proxy: Proxy, upstreams: Upstreams) -> None:
    r = curl(proxy, "https://www.teamviewer.com/")
    assert r.exit != 0 and "403" in r.stderr, r
    [event] = proxy.events("decision", phase="connect", host="www.teamviewer.com")
    assert event["enforced"] == "refused" and event["rule"] == "no-remote-access"
    assert upstreams.seen("www.teamviewer.com", "/") == 0


def test_sni_only_block_of_never_decrypt_category(
    proxy: Proxy, certs: Certs, upstreams: Upstreams
) -> None:
    """CONNECT names an allowed host, the SNI a blocked never-decrypt one: stopped at SNI,
    without decrypting and without contacting the upstream."""
    before = upstreams.https.seen.total()
    r = curl(proxy, "https://www.teamviewer.com/session", "--connect-to",
             "www.teamviewer.com:443:www.bankofamerica.com:443", cacert=certs.ca_pem)
    assert r.exit != 0 and r.status == 0, r
    [event] = proxy.events("decision", phase="tls", sni="www.teamviewer.com")
    assert event["enforced"] == "refused" and event["rule"] == "no-remote-access"
    assert upstreams.https.seen.total() == before


def test_domain_fronting_by_sni_is_refused(proxy: Proxy, upstreams: Upstreams) -> None:
    """CONNECT to an allowed host, SNI and Host of a gambling site: the strictest name wins."""
    r = curl(proxy, "https://www.bet365.com/front", "--connect-to",
             "www.bet365.com:443:www.example.org:443")
    assert r.status == 403, r
    assert upstreams.seen("www.bet365.com", "/front") == 0
    mismatch = proxy.events("domain_mismatch")
    assert any(set(e["names"]) >= {"www.example.org", "www.bet365.com"} for e in mismatch)


def test_domain_fronting_by_host_header_is_refused(proxy: Proxy, upstreams: Upstreams) -> None:
    """CONNECT and SNI allowed, Host header a gambling site (classic CDN fronting)."""
    r = curl(proxy, "https://www.example.org/fronted", "-H", "Host: www.bet365.com")
    assert r.status == 403, r
    assert upstreams.seen("www.bet365.com", "/fronted") == 0


def test_https_response_side_block(proxy: Proxy) -> None:
    r = curl(proxy, "https://www.example.org/download")
    assert r.status == 403 and "Software" in r.body, r


def test_warn_then_continue_over_https(proxy: Proxy, upstreams: Upstreams) -> None:
    """The interstitial and its continue form work inside an intercepted TLS connection; the
    pass cookie is Secure there (and host-only, HttpOnly, SameSite=Lax, as over HTTP)."""
    jar = str(proxy.home / "cookies-tls.txt")
    first = curl(proxy, "https://www.facebook.com/tls-page", "-H", "Accept: text/html")
    assert first.status == 403 and 'name="reason"' in first.body, first
    token = first.body.split('name="token" value="')[1].split('"')[0]
    go = curl(proxy, "https://www.facebook.com/.aupgate/continue",
              "--data-urlencode", f"token={token}",
              "--data-urlencode", "reason=answering a constituent message", "-c", jar)
    assert go.status == 303, go
    [cookie] = [h for h in go.headers.splitlines() if h.lower().startswith("set-cookie:")]
    assert "aupgate_pass=" in cookie and "domain" not in cookie.lower(), cookie
    for flag in ("; Path=/", "; HttpOnly", "; SameSite=Lax", "; Secure", "; Max-Age=900"):
        assert flag in cookie, cookie
    assert upstreams.seen("www.facebook.com", "/.aupgate/continue") == 0
    after = curl(proxy, "https://www.facebook.com/tls-page", "-b", jar)
    assert after.status == 200 and after.body == "upstream www.facebook.com GET /tls-page\n"


def test_kept_alive_https_requests_through_resolve(proxy: Proxy, upstreams: Upstreams) -> None:
    """Inside one intercepted tunnel, many HTTP/1.1 requests to a --resolve'd name share one
    upstream connection (they used to open one each, and the sixth hung)."""
    urls = [f"https://www.example.org/tls-keepalive-{i}" for i in range(8)]
    results = curl_many(proxy, urls, "--http1.1", timeout=20)
    assert [status for status, _ in results] == [200] * len(urls)
    assert [connects for _, connects in results] == [1] + [0] * (len(urls) - 1)
    peers = {upstreams.peer("www.example.org", f"/tls-keepalive-{i}") for i in range(8)}
    assert len(peers) == 1, peers


def test_many_http2_requests_through_resolve(proxy: Proxy) -> None:
    """HTTP/2 from the client to an HTTP/1.1 upstream: mitmproxy gives each stream its own
    upstream connection (its rule, not ours, since an HTTP/2 client may multiplex); none hangs."""
    urls = [f"https://www.example.org/h2-keepalive-{i}" for i in range(8)]
    results = curl_many(proxy, urls, "--http2", timeout=20)
    assert results == [(200, 1)] + [(200, 0)] * (len(urls) - 1)
