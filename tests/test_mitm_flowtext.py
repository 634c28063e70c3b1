"""The adapter's request URLs: built from mitmproxy's parts, equal to what `parse_url` reads."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aupgate.errors import UrlError
from aupgate.mitm.flowtext import RequestUrls
from aupgate.normalise import parse_url, url_text

HOSTS = ["www.example.org", "WWW.Example.ORG.", "127.0.0.1", "0x7f.1", "::1", "b\u00fccher.de",
         "xn--bcher-kva.de", "a_b.example", "10.0.0.1."]
PATHS = ["/", "/index.html", "/a/b/../c", "/a/./b", "/%7euser", "/%7Euser", "/a%2fb", "/a b",
         "/caf\u00e9", "/a\\b", "//double", "/x#frag", "/.aupgate/continue", "/a;b=c:d@e",
         "/a/%2e%2e/b", "/%", "/~!$&'()*+,;=:@"]
QUERIES = ["", "q=1", "q=1&token=x", "a=b#frag", "a b", "x=%20", "caf\u00e9=1", "a=\"b\"",
           "{}|^`"]


@pytest.mark.parametrize(("scheme", "port"), [("http", 80), ("https", 443), ("http", 8080)])
def test_request_url_is_parse_url(scheme: str, port: int) -> None:
    """The shortcut and the parser agree on every combination, first request and repeats."""
    urls = RequestUrls()
    for host, path, query in itertools.product(HOSTS, PATHS, QUERIES):
        expected = parse_url(url_text(scheme, host, port, path, query))
        for attempt in ("first", "repeat"):  # the host is learnt on the first
            got = urls.url(scheme, host, port, path, query)
            assert got == expected, (attempt, host, path, query)


_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x17F), max_size=30)


@settings(max_examples=400, deadline=None)
@given(path=_text, query=_text, host=st.sampled_from(HOSTS))
def test_request_url_matches_parse_url_for_any_path(host: str, path: str, query: str) -> None:
    urls = RequestUrls()
    urls.url("http", host, 80, "/", "")  # learn the host first, so the shortcut is tried
    text = url_text("http", host, 80, "/" + path, query)
    try:
        expected = parse_url(text)
    except UrlError:
        with pytest.raises(UrlError):
            urls.url("http", host, 80, "/" + path, query)
        return
    assert urls.url("http", host, 80, "/" + path, query) == expected
