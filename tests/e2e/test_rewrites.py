"""What the gateway adds to requests it lets through, seen by real upstreams named as the
vendors' hosts: tenant restrictions only on the sign-in hosts Microsoft and Google document,
YouTube restricted mode, forced safe search; never on any other host, and never the client's
own copy (the proxy replaces, it does not append).

The lab policy (tests/e2e/fixtures) names the EXAMPLE tenant lab.example and directory
11111111-2222-3333-4444-555555555555.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import Proxy, curl

pytestmark = pytest.mark.e2e

TENANT = "11111111-2222-3333-4444-555555555555"
MICROSOFT = {"restrict-access-to-tenants": f"lab.example,{TENANT}",
             "restrict-access-context": TENANT}
CONSUMER = {"sec-restrict-tenant-access-policy": "restrict-msa"}
GOOGLE = {"x-googapps-allowed-domains": "lab.example"}
YOUTUBE = {"youtube-restrict": "Strict"}
WATCHED = {*MICROSOFT, *CONSUMER, *GOOGLE, *YOUTUBE}


def seen_headers(proxy: Proxy, url: str, *args: str) -> dict[str, list[str]]:
    """The headers the upstream received (every copy of each, names lower-cased)."""
    r = curl(proxy, url, *args)
    assert r.status == 200, r
    received = json.loads(r.body)
    found: dict[str, list[str]] = {}
    for name, value in received.items():
        found.setdefault(name.lower(), []).append(value)
    return found


def watched(headers: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: values for name, values in headers.items()
            if name in WATCHED or name.replace("_", "-") in WATCHED}


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("login.microsoftonline.com", MICROSOFT),
        ("login.microsoft.com", MICROSOFT),
        ("login.windows.net", MICROSOFT),
        ("login.live.com", CONSUMER),
        ("accounts.google.com", GOOGLE),
        ("www.google.com", GOOGLE),
        ("www.youtube.com", YOUTUBE),
        ("www.example.org", {}),
        ("www.bing.com", {}),
        ("duckduckgo.com", {}),
    ],
)
def test_vendor_headers_on_exactly_their_hosts(proxy: Proxy, host: str,
                                               expected: dict[str, str]) -> None:
    got = watched(seen_headers(proxy, f"https://{host}/headers"))
    assert got == {name: [value] for name, value in expected.items()}


def test_a_client_cannot_preset_or_smuggle_its_own_copy(proxy: Proxy) -> None:
    """A permissive tenant list sent by the client, under several spellings and twice, is
    replaced by the agency's: exactly one copy arrives, the policy's."""
    got = seen_headers(
        proxy, "https://login.microsoftonline.com/headers",
        "-H", "Restrict-Access-To-Tenants: evil.example",
        "-H", "restrict-access-to-tenants: evil2.example",
        "-H", "Restrict_Access_To_Tenants: evil3.example",
        "-H", "Restrict-Access-Context: 99999999-9999-9999-9999-999999999999")
    assert watched(got) == {name: [value] for name, value in MICROSOFT.items()}


def test_a_client_cannot_weaken_youtube_restricted_mode(proxy: Proxy) -> None:
    got = seen_headers(proxy, "https://www.youtube.com/headers", "-H", "YouTube-Restrict: Off",
                       "-H", "Youtube_Restrict: Off")
    assert watched(got) == {"youtube-restrict": ["Strict"]}


def test_headers_stay_off_lookalike_hosts(proxy: Proxy) -> None:
    """Names that merely contain a sign-in host get nothing (plain HTTP here: any name)."""
    for host in ("login.microsoftonline.com.example.org", "xlogin.microsoftonline.com",
                 "google.com.example.org", "notgoogle.com"):
        got = watched(seen_headers(proxy, f"http://{host}/headers"))
        assert got == {}, host


def test_the_header_goes_on_plain_http_too(proxy: Proxy) -> None:
    got = watched(seen_headers(proxy, "http://login.microsoftonline.com/headers"))
    assert got == {name: [value] for name, value in MICROSOFT.items()}


def target(proxy: Proxy, url: str) -> str:
    r = curl(proxy, url)
    assert r.status == 200, r
    [line] = [h for h in r.headers.split("\r\n") if h.lower().startswith("x-seen-target:")]
    return line.split(":", 1)[1].strip()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.google.com/search?q=cats&safe=off", "/search?q=cats&safe=active"),
        ("https://www.google.com/search?q=cats&SAFE=off&saf%65=images",
         "/search?q=cats&safe=active"),
        ("https://www.bing.com/search?q=cats&adlt=off", "/search?q=cats&adlt=strict"),
        ("https://www.bing.com/images/search?q=cats", "/images/search?q=cats&adlt=strict"),
        ("https://duckduckgo.com/?q=cats&kp=-2", "/?q=cats&kp=1"),
        # not searches: untouched
        ("https://www.google.com/maps?q=cats", "/maps?q=cats"),
        ("https://www.example.org/search?q=cats&safe=off", "/search?q=cats&safe=off"),
    ],
)
def test_safe_search_is_forced(proxy: Proxy, url: str, expected: str) -> None:
    assert target(proxy, url) == expected


def test_rewrites_are_audited(proxy: Proxy) -> None:
    curl(proxy, "https://www.google.com/search?q=audited&safe=off")
    [event] = [e for e in proxy.events("decision", host="www.google.com")
               if "audited" in str(e.get("path"))]
    assert event["rewrites"] == ["tenant-restrictions:google", "safe-search:google"]
    assert event["path"] == "/search?q=audited&safe=active"  # the request as it went upstream
    text = proxy.audit_path.read_text()
    assert TENANT not in text  # names of what was added, never the values


def test_over_http2(proxy: Proxy) -> None:
    """The same replacement over HTTP/2 between client and proxy (lower-case names)."""
    r = curl(proxy, "https://login.microsoftonline.com/headers", "--http2",
             "-H", "restrict-access-to-tenants: evil.example")
    got: dict[str, Any] = {k.lower(): v for k, v in json.loads(r.body).items()}
    assert r.http_version == "2"
    assert got["restrict-access-to-tenants"] == MICROSOFT["restrict-access-to-tenants"]
