"""Where an upload publishes (`Publishing.service_for`) and a request's direction
(`engine.direction_of`): the shipped endpoints, an agency's additions and removals, and the
spellings of a path or host that try to get a post past them."""

from __future__ import annotations

import pytest

from aupgate.engine import Facts, direction_of
from aupgate.normalise import parse_url
from aupgate.publishing import Endpoint, Publishing, parse_pattern

SHIPPED = Publishing()


@pytest.mark.parametrize(
    ("url", "method", "service"),
    [
        ("https://content.dropboxapi.com/2/files/upload", "POST", "Dropbox"),
        ("https://pastebin.com/", "POST", "Pastebin"),
        ("https://pastebin.com/api/api_post.php", "put", "Pastebin"),  # any case of method
        ("https://graph.facebook.com/v19.0/me/feed", "POST", "Facebook"),
        ("https://graph.facebook.com/me/feed", "POST", "Facebook"),  # ** is any depth
        ("https://blog.agency.example/wp-admin/post.php", "POST", "WordPress (any site)"),
        ("https://example.org/news/wp-comments-post.php", "POST", "WordPress (any site)"),
        ("https://x.com/i/api/graphql/AbC123/CreateTweet", "POST", "X (Twitter)"),
        # spellings a server reads as the same address
        ("https://CONTENT.DropboxAPI.com./2/files/upload", "POST", "Dropbox"),
        ("https://content.dropboxapi.com/2/FILES/Upload", "POST", "Dropbox"),
        ("https://content.dropboxapi.com/2/files/%75pload", "POST", "Dropbox"),
        ("https://content.dropboxapi.com/2/x/../files/upload", "POST", "Dropbox"),
        ("https://content.dropboxapi.com/2/files//upload", "POST", "Dropbox"),  # merge_slashes
        ("https://blog.example//wp-admin///post.php", "POST", "WordPress (any site)"),
        # not publishing
        ("https://pastebin.com/raw/abc", "GET", None),
        ("https://pastebin.com/", "DELETE", None),
        ("https://graph.facebook.com/v19.0/me/friends", "POST", None),
        ("https://www.facebook.com/api/graphql/", "POST", None),  # generic: also reads
        ("https://notpastebin.com/", "POST", None),  # label boundaries only
        ("https://pastebin.com.example.org/", "POST", None),
        ("https://content.dropboxapi.com/2/files/download", "POST", None),
    ],
)
def test_shipped_endpoints(url: str, method: str, service: str | None) -> None:
    u = parse_url(url)
    assert SHIPPED.service_for(u.host, u.path, method) == service


def test_an_agency_adds_and_removes() -> None:
    mine = Publishing.of(add=[Endpoint("Portal", "agency", ("portal.example/upload/*/file",),
                                       frozenset({"PUT"}))],
                         remove=["Pastebin"])
    assert mine.service_for("portal.example", "/upload/42/file", "PUT") == "Portal"
    assert mine.service_for("eu.portal.example", "/upload/42/file", "PUT") == "Portal"
    assert mine.service_for("portal.example", "/upload/42/file", "POST") is None  # its methods
    assert mine.service_for("portal.example", "/upload/42/43/file", "PUT") is None  # * is one
    assert mine.service_for("pastebin.com", "/", "POST") is None
    assert mine.service_for("paste.ee", "/", "POST") == "paste.ee"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("upload", "does not start with a host name"),
        ("/upload", "does not start with a host name"),
        ("portal.example/up load", "may not hold spaces"),
        ("portal.example/upload?x=1", "a query or a fragment"),
        ("portal..example/x", "does not start with a host name"),
    ],
)
def test_bad_patterns(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_pattern(text)


def test_direction_comes_from_the_body() -> None:
    class _P:  # the one attribute direction_of reads
        publishing = SHIPPED

    def direction(url: str, method: str, sends: bool) -> str:
        return direction_of(_P(), Facts(url=parse_url(url), method=method,  # type: ignore[arg-type]
                                        sends_body=sends))

    assert direction("https://pastebin.com/", "POST", True) == "publish"
    assert direction("https://pastebin.com/", "POST", False) == "read"  # no body: nothing sent
    assert direction("https://example.org/form", "POST", True) == "upload"
    assert direction("https://example.org/form", "GET", True) == "upload"
