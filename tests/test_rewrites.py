"""What the gateway adds to a request it lets through (`RequestControls.rewrite`): tenant
restrictions on exactly the vendors' documented sign-in hosts, YouTube restricted mode, forced
safe-search parameters replacing every spelling a client might send."""

from __future__ import annotations

import pytest

from aupgate.rewrites import (
    RequestControls,
    SafeSearch,
    TenantRestrictions,
    header_key,
    set_query_parameter,
)

TENANTS = TenantRestrictions(("11",), ("agency.example", "11111111-2222-3333-4444-555555555555"),
                             "11111111-2222-3333-4444-555555555555", True, ("agency.example",))
CONTROLS = RequestControls(TENANTS, SafeSearch(("7.F",), True, "moderate"))


@pytest.mark.parametrize(
    ("host", "controls", "headers"),
    [
        ("login.microsoftonline.com", ["tenant-restrictions:microsoft"],
         {"Restrict-Access-To-Tenants": "agency.example,11111111-2222-3333-4444-555555555555",
          "Restrict-Access-Context": "11111111-2222-3333-4444-555555555555"}),
        ("login.windows.net", ["tenant-restrictions:microsoft"], None),
        ("login.live.com", ["tenant-restrictions:microsoft-consumer"],
         {"sec-Restrict-Tenant-Access-Policy": "restrict-msa"}),
        ("accounts.google.com", ["tenant-restrictions:google"],
         {"X-GoogApps-Allowed-Domains": "agency.example"}),
        ("mail.google.com", ["tenant-restrictions:google"], None),
        ("www.youtube.com", ["youtube-restricted:moderate"], {"YouTube-Restrict": "Moderate"}),
        ("youtubei.googleapis.com", ["youtube-restricted:moderate"], None),
        # look-alikes and neighbours get nothing
        ("login.microsoftonline.com.evil.example", [], {}),
        ("xlogin.microsoftonline.com", [], {}),
        ("notgoogle.com", [], {}),
        ("google.com.evil.example", [], {}),
        ("googleapis.com", [], {}),
        ("youtube.com.evil.example", [], {}),
        ("outlook.office365.com", [], {}),
    ],
)
def test_headers_on_exactly_the_documented_hosts(host: str, controls: list[str],
                                                 headers: dict[str, str] | None) -> None:
    got = CONTROLS.rewrite(host, "/", "")
    assert (list(got.controls) if got else []) == controls
    if headers is not None:
        assert (dict(got.headers) if got else {}) == headers


@pytest.mark.parametrize(
    ("host", "path", "query", "expected"),
    [
        ("www.google.com", "/search", "q=a&safe=off", "q=a&safe=active"),
        ("www.google.com", "/search", "q=a&SAFE=off&Saf%65=images&safe+=x", "q=a&safe=active"),
        ("www.google.co.uk", "/search", "q=a", "q=a&safe=active"),
        ("google.de", "/complete/search", "q=a", "q=a&safe=active"),
        ("www.bing.com", "/search", "q=a&adlt=off", "q=a&adlt=strict"),
        ("www.bing.com", "/Images/Search", "q=a", "q=a&adlt=strict"),
        ("duckduckgo.com", "/", "q=a&kp=-2&KP=-1", "q=a&kp=1"),
        ("html.duckduckgo.com", "/html/", "q=a", "q=a&kp=1"),
        # not searches
        ("www.google.com", "/maps", "q=a", None),
        ("duckduckgo.com", "/about", "", None),
        ("www.google.evil.example", "/search", "q=a", None),
        ("google.evil.example", "/search", "q=a", None),
        ("www.example.org", "/search", "q=a&safe=off", None),
    ],
)
def test_safe_search_parameters(host: str, path: str, query: str, expected: str | None) -> None:
    got = CONTROLS.rewrite(host, path, query)
    assert (got.query if got else None) == expected


def test_nothing_without_the_sections() -> None:
    assert not RequestControls()
    assert RequestControls().rewrite("login.microsoftonline.com", "/", "") is None
    no_consumer = RequestControls(TenantRestrictions(("11",), ("agency.example",)))
    assert no_consumer.rewrite("login.live.com", "/", "") is None
    no_youtube = RequestControls(safe_search=SafeSearch(("7.F",), True, None))
    assert no_youtube.rewrite("www.youtube.com", "/", "") is None
    assert CONTROLS.citing("11") == ("tenants",) and CONTROLS.citing("7.F") == ("safe_search",)


def test_helpers() -> None:
    assert header_key(" Restrict_Access_To_Tenants ") == "restrict-access-to-tenants"
    assert set_query_parameter("", "safe", "active") == "safe=active"
    assert set_query_parameter("a=1&&b=%20&safe", "safe", "active") == "a=1&b=%20&safe=active"
