"""What employees see on the wire: aupgate's own pages for failures, request access over HTTPS,
the gateway-named login prompt and an expired continue form, through a real `aupgate run`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import Certs, Proxy, Upstreams, curl, free_port, start_proxy, stop_proxy


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
       upstreams: Upstreams) -> Iterator[Proxy]:
    """The lab proxy with a name whose upstream refuses connections (nothing listens there)."""
    closed = free_port()
    started = start_proxy(tmp_path_factory.mktemp("pages"), certs, upstreams,
                          "--set", f"aupgate_resolve=refused.test:80:127.0.0.1:{closed}",
                          "--set", f"aupgate_resolve=refused.test:443:127.0.0.1:{closed}")
    yield started
    stop_proxy(started)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_refused_upstream_gets_aupgates_page_and_is_audited(gw: Proxy, scheme: str) -> None:
    r = curl(gw, f"{scheme}://refused.test/x", "-H", "Accept: text/html")
    assert r.status == 502, r
    assert "refused.test could not be reached" in r.body
    assert "Errno" not in r.body and "Connect call failed" not in r.body
    assert "mitmproxy" not in r.headers.lower(), r.headers
    [event] = gw.events("decision", host="refused.test", path="/x", scheme=scheme,
                        phase="request")
    assert event["status"] == 502 and event["enforced"] == "gateway-error"
    assert event["upstream_error"] == "unreachable" and "111" in event["error"]
    assert event["request_id"] in r.body


def test_upstream_certificate_failure_gets_the_tls_page(gw: Proxy) -> None:
    """The upstream's certificate does not name this host: the gateway sends nothing to it."""
    r = curl(gw, "https://badcert.test/secret")
    assert r.status == 502, r
    assert "secure connection could not be verified" in r.body
    [event] = gw.events("decision", host="badcert.test", phase="request")
    assert event["upstream_error"] == "upstream-tls" and event["status"] == 502


def test_request_access_over_https_is_recorded(gw: Proxy, upstreams: Upstreams) -> None:
    """The block page's form posts to the blocked host; the gateway decides it again, records
    the explanation (a password typed in it replaced) and never forwards the form."""
    r = curl(gw, "https://www.bet365.com/.aupgate/request-access", "--data-urlencode",
             "explanation=fraud investigation case 12, password: hunter2", "--data-urlencode",
             "path=/odds?x=1", "--data-urlencode", "rule=forged")
    assert r.status == 200 and "request for access was sent" in r.body, r
    [event] = gw.events("access_request", host="www.bet365.com")
    assert event["rule"] == "no-gambling" and event["action"] == "block"
    assert event["path"] == "/odds"
    assert "hunter2" not in gw.audit_path.read_text()
    assert event["explanation"].startswith("fraud investigation case 12, password: REDACTED")
    assert upstreams.seen("www.bet365.com", "/.aupgate/request-access") == 0


def test_request_access_needs_words_and_is_rate_limited(gw: Proxy) -> None:
    short = curl(gw, "http://www.bet365.com/.aupgate/request-access", "-d", "explanation=pls")
    assert short.status == 403 and "Write at least 2 words" in short.body
    statuses = [curl(gw, "http://www.bet365.com/.aupgate/request-access", "-d",
                     f"explanation=need it for work {i}").status for i in range(8)]
    assert statuses.count(429) >= 3, statuses  # at most 5 a minute per client
    assert len(gw.events("access_request", host="www.bet365.com")) <= 6


def test_expired_continue_form_gets_its_own_page(gw: Proxy) -> None:
    r = curl(gw, "http://www.facebook.com/.aupgate/continue", "-d",
             "token=used-or-expired&reason=posting the storm closure notice")
    assert r.status == 403 and "continue form has expired" in r.body, r
    [event] = gw.events("decision", host="www.facebook.com", phase="continue")
    assert event["enforced"] == "continue-rejected" and event["continue_problem"] == "expired"


def test_short_reason_keeps_the_form(gw: Proxy) -> None:
    warn = curl(gw, "http://www.facebook.com/page", "-H", "Accept: application/json")
    token = __import__("json").loads(warn.body)["continue"]["fields"]["token"]
    again = curl(gw, "http://www.facebook.com/.aupgate/continue", "-d",
                 f"token={token}&reason=work", "-H", "Accept: text/html")
    assert again.status == 403 and "Write at least 2 words" in again.body
    assert f'value="{token}"' in again.body  # the same token: the form still works
    done = curl(gw, "http://www.facebook.com/.aupgate/continue", "-d",
                f"token={token}&reason=posting the storm closure notice")
    assert done.status == 303, done


def test_login_prompt_names_the_agency_gateway(tmp_path_factory: pytest.TempPathFactory,
                                               certs: Certs, upstreams: Upstreams) -> None:
    proxy = start_proxy(tmp_path_factory.mktemp("login"), certs, upstreams,
                        "--set", "proxyauth=alice:wonderland")
    try:
        for url in ("http://www.example.org/", "https://www.example.org/"):
            r = curl(proxy, url)
            assert r.status == 407 or "407" in r.stderr, r
        r = curl(proxy, "http://www.example.org/")
        assert 'Proxy-Authenticate: Basic realm="Test Laboratory Agency internet gateway"' in \
            r.headers, r.headers
        assert "mitmproxy" not in r.headers and "Sign in" in r.body
    finally:
        stop_proxy(proxy)
