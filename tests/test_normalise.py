"""Every spelling of a destination an attacker can use must collapse to one canonical form."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aupgate import hostname, normalise
from aupgate.errors import UrlError
from aupgate.hostname import normalise_host, registered_domain
from aupgate.normalise import Url, parse_url

MODEST = settings(max_examples=200, deadline=None)


# --------------------------------------------------------------------------- hosts

HOST_SPELLINGS = [
    pytest.param("example.com", "example.com", id="already-canonical"),
    pytest.param("Example.COM.", "example.com", id="case-and-trailing-dot"),
    pytest.param("%62et365.com", "bet365.com", id="percent-encoded-letter"),
    pytest.param("%42ET365.COM", "bet365.com", id="percent-encoded-upper-case"),
    pytest.param("BÜCHER.example", "xn--bcher-kva.example", id="idn-mixed-case"),
    pytest.param("bücher.example", "xn--bcher-kva.example", id="idn-lower-case"),
    pytest.param("b%C3%BCcher.example", "xn--bcher-kva.example", id="idn-percent-encoded-utf8"),
    pytest.param("xn--BCHER-kva.example", "xn--bcher-kva.example", id="punycode-upper-case"),
    pytest.param("ｂｅｔ３６５。ｃｏｍ", "bet365.com", id="fullwidth-and-ideographic-dot"),
    pytest.param("bet365\uff0ecom", "bet365.com", id="fullwidth-full-stop"),
    pytest.param("bet365\uff61com", "bet365.com", id="halfwidth-ideographic-full-stop"),
    pytest.param("bet\u00ad365.com", "bet365.com", id="soft-hyphen-ignored"),
    pytest.param("bet\u200b365.com", "bet365.com", id="zero-width-space-ignored"),
    pytest.param("\u212aino.com", "kino.com", id="kelvin-sign-is-k"),
    pytest.param("foo_bar.tripod.com", "foo_bar.tripod.com", id="underscore-label"),
    pytest.param("straße.de", "xn--strae-oqa.de", id="sharp-s-non-transitional"),
    pytest.param("💩.la", "xn--ls8h.la", id="emoji-label"),
    pytest.param("localhost", "localhost", id="single-label"),
    pytest.param("1a.example.1b", "1a.example.1b", id="alphanumeric-last-label-is-a-name"),
]


@pytest.mark.parametrize(("raw", "expected"), HOST_SPELLINGS)
def test_host_spellings_collapse(raw: str, expected: str) -> None:
    """Case, trailing dot, percent-encoding and Unicode look-alikes cannot dodge a domain entry."""
    assert normalise_host(raw) == expected


IPV4_SPELLINGS = [
    pytest.param("127.0.0.1", id="dotted-quad"),
    pytest.param("2130706433", id="single-decimal"),
    pytest.param("0x7f.1", id="hex-two-parts"),
    pytest.param("0x7F000001", id="single-hex"),
    pytest.param("0177.0.0.1", id="octal-part"),
    pytest.param("017700000001", id="single-octal"),
    pytest.param("0x7f.0x0.0x0.0x1", id="all-hex"),
    pytest.param("127.1", id="two-parts"),
    pytest.param("127.0.1", id="three-parts"),
    pytest.param("127.0.0.1.", id="trailing-dot"),
    pytest.param("%31%32%37.0.0.1", id="percent-encoded-digits"),
    pytest.param("１２７。０。０。１", id="fullwidth-digits-and-dots"),
    pytest.param("[::ffff:7f00:1]", id="ipv4-mapped-ipv6"),
    pytest.param("[::FFFF:127.0.0.1]", id="ipv4-mapped-ipv6-dotted"),
    pytest.param("::ffff:7f00:1", id="ipv4-mapped-ipv6-bare"),
]


@pytest.mark.parametrize("raw", IPV4_SPELLINGS)
def test_ipv4_spellings_are_dotted_quad(raw: str) -> None:
    """Every IPv4 spelling a browser accepts hits the same "127.0.0.1" category entry."""
    assert normalise_host(raw) == "127.0.0.1"


IPV6_SPELLINGS = [
    pytest.param("[::1]", "::1", id="bracketed"),
    pytest.param("::1", "::1", id="bare"),
    pytest.param("[0:0:0:0:0:0:0:1]", "::1", id="uncompressed"),
    pytest.param("[2001:DB8::1]", "2001:db8::1", id="upper-case"),
    pytest.param("[2001:0db8:0000:0000:0000:0000:0000:0001]", "2001:db8::1", id="leading-zeros"),
]


@pytest.mark.parametrize(("raw", "expected"), IPV6_SPELLINGS)
def test_ipv6_spellings_are_compressed(raw: str, expected: str) -> None:
    """IPv6 is compared compressed, lower-case and without brackets, however it was written."""
    assert normalise_host(raw) == expected


REJECTED_HOSTS = [
    pytest.param("", "empty", id="empty"),
    pytest.param(".", "empty", id="only-a-dot"),
    pytest.param("a..b", "empty label", id="double-dot"),
    pytest.param(".example.com", "empty label", id="leading-dot"),
    pytest.param("example.com..", "empty label", id="two-trailing-dots"),
    pytest.param("\u00ad.com", "empty label", id="label-of-ignorables"),
    pytest.param("a" * 64 + ".com", "label longer than 63", id="long-label"),
    pytest.param("a." * 126 + "com", "longer than 253", id="long-name"),
    pytest.param("a%2fb.com", "contains '/'", id="encoded-slash"),
    pytest.param("a\uff0fb.com", "contains '/'", id="fullwidth-slash"),
    pytest.param("bet365.com%40evil.com", "contains '@'", id="encoded-at"),
    pytest.param("bet365.com%3a80", "':' outside an IPv6", id="encoded-colon"),
    pytest.param("a:80", "':' outside an IPv6", id="port-in-host"),
    pytest.param("exa mple.com", "whitespace", id="space"),
    pytest.param("a%20b.com", "whitespace", id="encoded-space"),
    pytest.param("a%09b.com", "whitespace", id="encoded-tab"),
    pytest.param("a\u3000b.com", "whitespace", id="ideographic-space"),
    pytest.param("a%00b.com", "control character", id="encoded-nul"),
    pytest.param("a\x7fb.com", "control character", id="delete"),
    pytest.param("a\\b.com", "contains '\\\\'", id="backslash"),
    pytest.param("%2562et365.com", "contains '%'", id="double-percent-encoding"),
    pytest.param("%ff.com", "not valid UTF-8", id="bad-utf8"),
    pytest.param("a\u0085b.com", "internationalised", id="c1-control"),
    pytest.param("xn--zz.com", "not valid punycode", id="bad-punycode"),
    pytest.param("example.123", "not an IPv4", id="numeric-last-label"),
    pytest.param("example.0x1f", "not an IPv4", id="hex-last-label"),
    pytest.param("08.0.0.1", "not an IPv4", id="bad-octal"),
    pytest.param("1.2.3.4.5", "more than four", id="five-parts"),
    pytest.param("256.0.0.1", "out of range", id="part-above-255"),
    pytest.param("4294967296", "out of range", id="above-32-bits"),
    pytest.param("1.2.3.0x100", "out of range", id="last-part-too-big"),
    pytest.param("[fe80::1%25eth0]", "zone", id="encoded-zone-id"),
    pytest.param("[fe80::1%eth0]", "zone", id="zone-id"),
    pytest.param("[::1", "unbalanced", id="unclosed-bracket"),
    pytest.param("[127.0.0.1]", "not a valid IPv6", id="ipv4-in-brackets"),
    pytest.param("x" * 5000, "too long", id="huge-input"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTED_HOSTS)
def test_malformed_hosts_are_refused(raw: str, reason: str) -> None:
    """A host no resolver would accept as one name is refused, never guessed at."""
    with pytest.raises(UrlError, match="invalid host") as caught:
        normalise_host(raw)
    assert reason in str(caught.value)


def test_host_error_names_host_and_problem() -> None:
    """The message says which host and what is wrong, for the administrator reading the log."""
    with pytest.raises(UrlError) as caught:
        normalise_host("a..b")
    assert str(caught.value) == "invalid host 'a..b': empty label"


# --------------------------------------------------------------------------- URLs


def test_absolute_form_end_to_end() -> None:
    """Userinfo, default port, dot segments and fragment all go; the query stays."""
    url = parse_url("http://user:pw@Host:80/a/../b?q=1#frag")
    assert url == Url("http", "host", None, "/b", "q=1", is_ip=False)


URL_DESTINATIONS = [
    pytest.param("http://user:pw@Host:80/a?q#f", None, "http", "host", None, id="absolute-form"),
    pytest.param("http://bet365.com@www.modot.org/", None, "http", "www.modot.org", None, id="at"),
    pytest.param("http://a@b@c.com/x", None, "http", "c.com", None, id="last-at-wins"),
    pytest.param("http://evil.com\\@good.com/", None, "http", "evil.com", None, id="backslash-at"),
    pytest.param("http:\\\\evil.com\\x", None, "http", "evil.com", None, id="backslashes"),
    pytest.param("http:///bet365.com/", None, "http", "bet365.com", None, id="three-slashes"),
    pytest.param("http:bet365.com", None, "http", "bet365.com", None, id="no-slashes"),
    pytest.param("HTTPS://A.COM", None, "https", "a.com", None, id="upper-case-scheme"),
    pytest.param("  http://a.com/\n", None, "http", "a.com", None, id="surrounding-space"),
    pytest.param("ht\ttp://bet\n365.com/", None, "http", "bet365.com", None, id="tab-newline"),
    pytest.param("http://%62et365.com/", None, "http", "bet365.com", None, id="encoded-host"),
    pytest.param("http://127.1:8080/", None, "http", "127.0.0.1", 8080, id="short-ipv4"),
    pytest.param("http://[::ffff:7f00:1]/", None, "http", "127.0.0.1", None, id="mapped-ipv6"),
    pytest.param("http://[::1]:8080/x", None, "http", "::1", 8080, id="ipv6-with-port"),
    pytest.param("example.com/path", None, "", "example.com", None, id="scheme-less"),
    pytest.param("example.com:8080/x", None, "", "example.com", 8080, id="scheme-less-port"),
    pytest.param("bet365.com:443", None, "", "bet365.com", 443, id="connect-authority"),
    pytest.param("[::1]:443", None, "", "::1", 443, id="connect-ipv6"),
    pytest.param("http:8080", None, "", "http", 8080, id="connect-host-named-http"),
    pytest.param("/path?x", "Example.COM", "", "example.com", None, id="origin-form"),
    pytest.param("/p", "example.com:8080", "", "example.com", 8080, id="origin-form-port"),
    pytest.param("//evil.com/x", "good.com", "", "good.com", None, id="origin-form-double-slash"),
    pytest.param("http://a.com/", "b.com", "http", "a.com", None, id="url-host-beats-header"),
    pytest.param("https://a.com:443/", None, "https", "a.com", None, id="https-default"),
    pytest.param("http://a.com:80/", None, "http", "a.com", None, id="http-default"),
    pytest.param("ws://a.com:80", None, "ws", "a.com", None, id="ws-default"),
    pytest.param("wss://a.com:443", None, "wss", "a.com", None, id="wss-default"),
    pytest.param("ftp://a.com:21/", None, "ftp", "a.com", None, id="ftp-default"),
    pytest.param("https://a.com:0443/", None, "https", "a.com", None, id="zero-padded-default"),
    pytest.param("https://a.com:80/", None, "https", "a.com", 80, id="non-default-port"),
    pytest.param("http://a.com:/", None, "http", "a.com", None, id="empty-port"),
    pytest.param("gopher://A.com:70/", None, "gopher", "a.com", 70, id="unknown-scheme"),
]


@pytest.mark.parametrize(("raw", "host_header", "scheme", "host", "port"), URL_DESTINATIONS)
def test_url_destination(
    raw: str, host_header: str | None, scheme: str, host: str, port: int | None
) -> None:
    """Each URL form resolves to the host a WHATWG browser would actually contact."""
    url = parse_url(raw, host_header)
    assert (url.scheme, url.host, url.port) == (scheme, host, port)
    assert url.is_ip == (host[0].isdigit() or ":" in host)


URL_PATHS = [
    pytest.param("http://a.com", "/", id="empty-path"),
    pytest.param("http://a.com/a/../b", "/b", id="dot-dot"),
    pytest.param("http://a.com/%7Euser/%2e%2E/x", "/x", id="encoded-dot-dot"),
    pytest.param("http://a.com/a/%2e/b", "/a/b", id="encoded-dot"),
    pytest.param("http://a.com/../../etc", "/etc", id="never-above-root"),
    pytest.param("http://a.com/a/b/..", "/a/", id="trailing-dot-dot"),
    pytest.param("http://a.com\\radio\\..\\news", "/news", id="backslash-dot-segments"),
    pytest.param("http://a.com/radi%6F", "/radio", id="encoded-unreserved-decoded"),
    pytest.param("http://a.com/a%2fb", "/a%2Fb", id="encoded-slash-kept-upper-cased"),
    pytest.param("http://a.com/caf\u00e9 x", "/caf%C3%A9%20x", id="non-ascii-and-space-encoded"),
    pytest.param("http://a.com/100%", "/100%25", id="lone-percent"),
    pytest.param("http://evil.com\\@good.com/", "/@good.com/", id="backslash-then-at"),
    pytest.param("gopher://a.com/a\\b", "/a%5Cb", id="backslash-literal-in-unknown-scheme"),
    pytest.param("http://a.com/a#/../../b", "/a", id="fragment-dropped"),
]


@pytest.mark.parametrize(("raw", "path"), URL_PATHS)
def test_url_path(raw: str, path: str) -> None:
    """Encoded or dotted spellings of a path cannot slip past a URL-prefix entry."""
    assert parse_url(raw).path == path


URL_QUERIES = [
    pytest.param("http://a.com/?b=%7e&A=1#f", "b=%7e&A=1", id="raw-fragment-dropped"),
    pytest.param("http://a.com?x", "x", id="no-path"),
    pytest.param("http://a.com/?", "", id="empty"),
    pytest.param("http://a.com/?a\\b?c", "a\\b?c", id="backslash-and-question-mark-kept"),
    pytest.param("http://a.com/?q=caf\u00e9 x", "q=caf%C3%A9%20x", id="unsendable-encoded"),
]


@pytest.mark.parametrize(("raw", "query"), URL_QUERIES)
def test_url_query(raw: str, query: str) -> None:
    """The query stays as sent (only bytes that cannot be on the wire get encoded)."""
    assert parse_url(raw).query == query


REJECTED_URLS = [
    pytest.param("/path", "origin-form needs a Host header", id="origin-form-without-host"),
    pytest.param("http://a.com:65536/", "above 65535", id="port-too-big"),
    pytest.param("http://a.com:8x/", "not a number", id="port-not-numeric"),
    pytest.param("http://a.com:-1/", "not a number", id="port-negative"),
    pytest.param("http://a.com:\uff18\uff10/", "not a number", id="port-fullwidth-digits"),
    pytest.param("http://", "empty", id="no-host"),
    pytest.param("http:///", "empty", id="only-slashes"),
    pytest.param("gopher:///x", "empty", id="unknown-scheme-no-host"),
    pytest.param("http://::1/", "brackets", id="ipv6-without-brackets"),
    pytest.param("http://[::1/", "unclosed", id="ipv6-unclosed"),
    pytest.param("http://[::1]x/", "after the IPv6", id="text-after-ipv6"),
    pytest.param("http://a..b/", "empty label", id="bad-host"),
    pytest.param("http://a.com/\ud800", "lone surrogate", id="surrogate-in-path"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTED_URLS)
def test_malformed_urls_are_refused(raw: str, reason: str) -> None:
    """A URL we cannot place is refused with a reason rather than classified as something else."""
    with pytest.raises(UrlError) as caught:
        parse_url(raw)
    assert reason in str(caught.value)


def test_bad_host_header_is_refused() -> None:
    """Origin-form takes its host from the Host header, with the same adversarial checks."""
    with pytest.raises(UrlError, match="empty label"):
        parse_url("/x", "a..b")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("http://user:s3cret@a.com/", id="valid"),
        pytest.param("http://user:s3cret@a..b/", id="bad-host"),
        pytest.param("http://user:s3cret@a.com:99999/", id="bad-port"),
        pytest.param("http://user:s3cret@a.com/\ud800", id="bad-path"),
    ],
)
def test_userinfo_never_leaks(raw: str) -> None:
    """Credentials in a URL reach neither the Url, its str(), nor an error message (logs)."""
    try:
        shown = repr(parse_url(raw)) + str(parse_url(raw))
    except UrlError as e:
        shown = str(e)
    assert "s3cret" not in shown
    assert "user" not in shown


@pytest.mark.parametrize(
    ("url", "text"),
    [
        pytest.param(Url("http", "host", None, "/b", "q=1", False), "http://host/b?q=1", id="http"),
        pytest.param(Url("http", "::1", 8080, "/", "", True), "http://[::1]:8080/", id="ipv6"),
        pytest.param(Url("", "example.com", 443, "/", "", False), "example.com:443/", id="bare"),
    ],
)
def test_str_is_a_canonical_url(url: Url, text: str) -> None:
    """str(Url) is what audit records show: canonical, brackets for IPv6, no userinfo."""
    assert str(url) == text


def test_host_path_is_the_url_prefix_key() -> None:
    """URL-prefix entries like "colombia.com/radio" match against host + canonical path."""
    assert parse_url("http://Colombia.COM/x/../radio/").host_path == "colombia.com/radio/"


# --------------------------------------------------------------------------- registered domains

REGISTERED = [
    pytest.param("mail.google.com", "google.com", id="subdomain"),
    pytest.param("google.com", "google.com", id="already-registered"),
    pytest.param("Mail.Google.COM.", "google.com", id="normalised-first"),
    pytest.param("www.bbc.co.uk", "bbc.co.uk", id="two-label-suffix"),
    pytest.param("co.uk", "co.uk", id="bare-suffix"),
    pytest.param("com", "com", id="bare-tld"),
    pytest.param("waiterrant.blogspot.com", "blogspot.com", id="private-suffixes-ignored"),
    pytest.param("www.bücher.de", "xn--bcher-kva.de", id="idn"),
    pytest.param("127.0.0.1", "127.0.0.1", id="ipv4"),
    pytest.param("0x7f.1", "127.0.0.1", id="ipv4-odd-spelling"),
    pytest.param("[::1]", "::1", id="ipv6"),
    pytest.param("localhost", "localhost", id="single-label"),
    pytest.param("a.b.corp", "b.corp", id="unknown-tld-default-rule"),
]


@pytest.mark.parametrize(("host", "expected"), REGISTERED)
def test_registered_domain(host: str, expected: str) -> None:
    """Subdomains group under the domain their owner registered, per the bundled suffix list."""
    assert registered_domain(host) == expected


def test_registered_domain_refuses_bad_host() -> None:
    """An invalid name has no registered domain; it must not be silently grouped anywhere."""
    with pytest.raises(UrlError, match="empty label"):
        registered_domain("a..b")


def test_suffix_list_never_touches_network_or_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The bundled suffix list is the only source: no socket, no cache file, env URLs ignored."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TLDEXTRACT_CACHE", str(tmp_path / "tldextract"))
    monkeypatch.setenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "https://publicsuffix.org/list/x.dat")

    hostname._extractor.cache_clear()  # made again here, under the refusals above
    extractor = hostname._extractor()
    parts = extractor("forums.news.bbc.co.uk")

    assert (parts.domain, parts.suffix) == ("bbc", "co.uk")
    assert extractor.suffix_list_urls == ()
    assert extractor.include_psl_private_domains is False
    assert list(tmp_path.rglob("*")) == []


# --------------------------------------------------------------------------- properties

LABEL = st.from_regex(r"[a-z0-9][a-z0-9-]{0,9}", fullmatch=True).filter(
    lambda s: not s.startswith("xn--")
)
TLD = st.from_regex(r"[a-z]{2,6}", fullmatch=True)


@st.composite
def domains(draw: st.DrawFn) -> str:
    return ".".join([*draw(st.lists(LABEL, min_size=0, max_size=3)), draw(TLD)])


HOSTISH = st.text(
    alphabet=st.sampled_from(
        [*"abcXYZ0179-_.%[]:x", "n", "ü", "Ä", "ß", "é", "ｂ", "１", "\u3002", "\uff0e", "\u00ad"]
    ),
    max_size=30,
)
ODD_HOSTS = st.sampled_from(
    [
        "[::1]",
        "[::ffff:7f00:1]",
        "127.1",
        "0x7f.1",
        "2130706433",
        "BÜCHER.example",
        "%62et365.com",
        "foo_bar.tripod.com",
        "Example.COM.",
        "http",
    ]
)
PATH_TEXT = st.text(
    alphabet=st.sampled_from([*"/./..%2eE7fAz~@:;=+!?#&\\ ", "é", "\t", "\x01"]), max_size=25
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    schemes = ["http://", "https://", "ws://", "wss://", "HTTP://", "ftp://", "gopher://", "http:"]
    scheme = draw(st.sampled_from([*schemes, ""]))
    userinfo = draw(st.sampled_from(["", "user@", "u:p@", "a@b@"]))
    host = draw(st.one_of(domains(), ODD_HOSTS, HOSTISH))
    port = draw(st.sampled_from(["", ":", ":80", ":443", ":8080", ":0021", ":70"]))
    tail = draw(PATH_TEXT)
    return f"{scheme}{userinfo}{host}{port}{tail}"


@MODEST
@given(st.one_of(domains(), ODD_HOSTS, HOSTISH, st.text(max_size=40)))
def test_normalise_host_is_idempotent(raw: str) -> None:
    """A canonical host is a fixed point, so re-normalising a stored name never moves it."""
    try:
        host = normalise_host(raw)
    except UrlError:
        return
    assert normalise_host(host) == host


@MODEST
@given(urls())
def test_str_round_trips(raw: str) -> None:
    """Re-parsing str(Url) gives the same Url, so audit records name exactly what was decided."""
    try:
        url = parse_url(raw)
    except UrlError:
        return
    assert parse_url(str(url)) == url


@MODEST
@given(urls())
def test_fast_path_agrees_with_general_parser(raw: str) -> None:
    """The shortcut for common URLs cannot be used to reach a different classification."""
    try:
        expected: Url | str = normalise._parse_general(raw, None)
    except UrlError:
        expected = "UrlError"
    try:
        got: Url | str = parse_url(raw)
    except UrlError:
        got = "UrlError"
    assert got == expected


@pytest.mark.slow
@MODEST
@given(domains(), st.sampled_from(["http", "https", "ws", "wss"]), st.data())
def test_case_dot_and_default_port_variants_are_equal(
    host: str, scheme: str, data: st.DataObject
) -> None:
    """Upper case, one trailing dot or the scheme's default port never make a new destination."""
    flips = data.draw(st.lists(st.booleans(), min_size=len(host), max_size=len(host)))
    variant = "".join(c.upper() if flip else c for c, flip in zip(host, flips, strict=True))
    dot = data.draw(st.sampled_from(["", "."]))
    port = data.draw(st.sampled_from(["", f":{normalise.DEFAULT_PORTS[scheme]}"]))
    assert normalise_host(variant + dot) == host
    assert parse_url(f"{scheme}://{variant}{dot}{port}/p") == parse_url(f"{scheme}://{host}/p")


@MODEST
@given(st.text(max_size=60), st.one_of(st.none(), st.text(max_size=20)))
def test_only_url_error_escapes(raw: str, host_header: str | None) -> None:
    """Arbitrary text gives a result or UrlError, never a crash inside the proxy."""
    for call, kind in (
        (lambda: normalise_host(raw), str),
        (lambda: registered_domain(raw), str),
        (lambda: parse_url(raw, host_header), Url),
        (lambda: parse_url("/" + raw, host_header), Url),
    ):
        try:
            result = call()
        except UrlError:
            continue
        assert isinstance(result, kind)
