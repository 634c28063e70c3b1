"""One employee's "continue" opens the warned site for that employee only (issue 12, item 7),
through a real proxy: two browsers behind one address (NAT, HAProxy, a terminal server), told
apart by the pass cookie the continue redirect sets; a login's pass follows the login."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy


def _continue(proxy: Proxy, url: str, *args: str) -> tuple[str, str]:
    """Warn page, then its form; returns (the 303's Set-Cookie line or "", its Location)."""
    first = curl(proxy, url, "-H", "Accept: text/html", *args)
    assert first.status == 403 and 'name="token"' in first.body, first
    token = first.body.split('name="token" value="')[1].split('"')[0]
    host = url.split("/")[2]
    go = curl(proxy, f"{url.split('/')[0]}//{host}/.aupgate/continue",
              "--data-urlencode", f"token={token}", "--data-urlencode",
              "reason=reading the road closure post", *args)
    assert go.status == 303, go
    cookie = next((h for h in go.headers.splitlines()
                   if h.lower().startswith("set-cookie:")), "")
    location = next(h for h in go.headers.splitlines() if h.lower().startswith("location:"))
    return cookie, location.split(":", 1)[1].strip()


def test_a_pass_is_the_browsers_not_the_address(proxy: Proxy, upstreams: Upstreams,
                                                tmp_path: Path) -> None:
    jar_a, jar_b = str(tmp_path / "a.txt"), str(tmp_path / "b.txt")
    url = "http://www.facebook.com/headers"
    cookie, location = _continue(proxy, url, "-c", jar_a, "-b", jar_a)
    assert location == url and "aupgate_pass=" in cookie
    assert "; HttpOnly" in cookie and "; SameSite=Lax" in cookie and "Secure" not in cookie
    # browser A, with its cookie: passes; the site never sees the gateway's cookie
    a = curl(proxy, url, "-b", jar_a, "-b", "theirs=1")
    assert a.status == 200, a
    seen = json.loads(a.body)
    assert seen.get("Cookie") == "theirs=1", seen
    # browser B behind the same address (127.0.0.1), no cookie: warned
    b = curl(proxy, url, "-c", jar_b, "-b", jar_b, "-H", "Accept: text/html")
    assert b.status == 403 and 'name="token"' in b.body, b
    # a forged or foreign cookie value holds no pass either
    forged = curl(proxy, url, "-b", "aupgate_pass=forged-value")
    assert forged.status == 403
    # the pass is for its host only
    other = curl(proxy, "http://m.facebook.com/x", "-b", jar_a)
    assert other.status == 403
    assert proxy.events("decision", host="www.facebook.com", enforced="pass-used")


@pytest.fixture(scope="module")
def with_logins(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
                upstreams: Upstreams) -> Iterator[Proxy]:
    """Proxy logins (mitmproxy's proxyauth): a login's pass follows the login."""
    started = start_proxy(tmp_path_factory.mktemp("logins"), certs, upstreams,
                          "--set", "proxyauth=any")
    yield started
    stop_proxy(started)


def _login(user: str) -> tuple[str, str]:
    token = base64.b64encode(f"{user}:pw".encode()).decode()
    return "--proxy-header", f"Proxy-Authorization: Basic {token}"


def test_a_logins_pass_follows_the_login_not_the_browser(with_logins: Proxy) -> None:
    url = "http://www.facebook.com/login-pass"
    cookie, _ = _continue(with_logins, url, *_login("jdoe"))
    assert cookie == ""  # a login needs no cookie: the pass is the login's
    assert curl(with_logins, url, *_login("jdoe")).status == 200
    assert curl(with_logins, url, *_login("asmith")).status == 403  # same address, other login
