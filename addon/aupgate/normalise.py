"""URLs in one canonical form: equal destinations compare equal.

A user who wants to reach a listed site may write ``http://bet365.com@www.modot.org/`` (which is
*not* bet365), backslashes for slashes, percent-escapes and dot segments. Every form a client
would send to the same place comes out of `parse_url` as the same `Url`, and anything that cannot
be canonicalised is refused with a `UrlError`. The host inside a URL is `hostname`'s business.

Parsing follows the WHATWG URL standard where it differs from RFC 3986, because that is what
browsers do: backslashes are slashes in http(s)/ws(s) URLs, the *last* ``@`` in the authority
ends the userinfo.

Callers in the proxy should feed `parse_url` the URL mitmproxy actually connects to (built
from ``flow.request.host``/``port``), not the raw request line: mitmproxy's own parser reads
``http://evil.com\\@good.com/`` as host ``good.com`` while WHATWG (and this module) read
``evil.com``, and classification must follow the connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from aupgate.errors import UrlError
from aupgate.hostname import MAX_HOST, host_and_kind, host_error, quoted

__all__ = ["DEFAULT_PORTS", "Url", "parse_url", "url_text"]

DEFAULT_PORTS: Final[dict[str, int]] = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
"""Ports that are the same as no port at all for a scheme (so they are dropped).

The one table of default ports: the proxy's URL building and the pages use it too."""

_SPECIAL_SCHEMES: Final = frozenset(DEFAULT_PORTS)
"""WHATWG "special" schemes: host required, backslash is a slash, slashes after ':' optional."""

_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_PORT_AFTER_COLON: Final = re.compile(r"[0-9]+(?:[/?#\\]|\Z)")
_AUTHORITY_END_SPECIAL: Final = re.compile(r"[/?#\\]")
_AUTHORITY_END_OTHER: Final = re.compile(r"[/?#]")

_C0_OR_SPACE: Final = "".join(chr(c) for c in range(0x21))
_TAB_OR_NEWLINE: Final = str.maketrans("", "", "\t\n\r")

_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# A path made only of these (no '%', no '\\', nothing to encode) is already canonical unless it
# has a dot segment, which always shows up as "/." because paths start with "/".
_PLAIN_PATH: Final = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
_PATH_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/]")
_QUERY_ESCAPE: Final = re.compile(r"[^\x21-\x7e]")

# The shape of nearly every request the proxy sees, already canonical apart from a default
# port or a fragment: no userinfo, plain lower-case name, plain path, printable query.
_FAST_URL: Final = re.compile(
    r"(https?|wss?)://"
    r"((?:[a-z0-9_-]{1,63}\.)*[a-z_-][a-z0-9_-]{0,62})"
    r"(?::([0-9]{1,5}))?"
    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*)?"
    r"(?:\?([!\"$-~]*))?"
    r"(?:#.*)?",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Url:
    """A request target in canonical form: equal destinations compare equal.

    ``scheme`` is "" when only a host or authority was given (a CONNECT target, a bare
    ``host/path``, or origin-form plus a Host header). Userinfo is never kept.
    """

    scheme: str
    host: str
    port: int | None
    path: str
    query: str
    is_ip: bool

    @property
    def host_path(self) -> str:
        """Host and path joined, the key URL-prefix category entries are matched against."""
        return self.host + self.path

    @property
    def target(self) -> str:
        """Path and query: what URL-prefix entries and rules match, since some lists name a
        query (`index.php?showforum=11`) and a prefix ending in the path still matches."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def __str__(self) -> str:
        """Canonical URL text for audit records; `parse_url` reads it back to an equal Url."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port is None else f":{self.port}"
        query = f"?{self.query}" if self.query else ""
        prefix = f"{self.scheme}://" if self.scheme else ""
        return f"{prefix}{host}{port}{self.path}{query}"


# --------------------------------------------------------------------------- URLs


def parse_url(raw: str, host_header: str | None = None) -> Url:
    """Parse absolute-form, scheme-less ``host[:port]/path``, authority-form or origin-form.

    ``host_header`` is only used for origin-form (``/path?x``); an absolute URL's own host
    always wins, and a caller that cares about domain fronting compares the two itself.

    Raises:
        UrlError: the URL cannot be parsed or its host or port is invalid.
    """
    fast = _fast_url(raw)
    return fast if fast is not None else _parse_general(raw, host_header)


def _parse_general(raw: str, host_header: str | None) -> Url:
    """Every form `parse_url` accepts; `_fast_url` must agree with it wherever both apply."""
    text = _strip_url(raw)
    try:
        if text.startswith("/"):
            return _origin_form(text, host_header, raw)
        return _absolute_or_bare(text)
    except UnicodeEncodeError:
        # Not echoing the URL: it may carry userinfo, which must not reach any log.
        raise UrlError("invalid URL: path or query holds a lone surrogate") from None


def _fast_url(raw: str) -> Url | None:
    """The common case without the general parser, or None to take the full path."""
    match = _FAST_URL.fullmatch(raw)
    if match is None:
        return None
    scheme, host, port_text, path, query = match.groups()
    if len(host) > MAX_HOST or "xn--" in host or (path is not None and "/." in path):
        return None
    port = None if port_text is None else int(port_text)
    if port is not None and port > 65535:
        return None
    if port == DEFAULT_PORTS[scheme]:
        port = None
    return Url(scheme, host, port, path or "/", query or "", False)


def _strip_url(raw: str) -> str:
    """WHATWG pre-processing: trim C0 controls and spaces, drop tabs and newlines anywhere."""
    text = raw.strip(_C0_OR_SPACE)
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_TAB_OR_NEWLINE)
    return text


def _origin_form(text: str, host_header: str | None, raw: str) -> Url:
    """``/path?q`` as a server sees it: the host can only come from the Host header.

    ``//evil.com/x`` here is a path on the Host header's server, not a host.
    """
    if host_header is None:
        raise UrlError(f"invalid URL {quoted(raw)}: origin-form needs a Host header")
    host, is_ip, port = _host_port(_strip_url(host_header), "")
    path, query = _path_query(text, special=True)
    return Url("", host, port, path, query, is_ip)


def _absolute_or_bare(text: str) -> Url:
    """``scheme://userinfo@host:port/path?query#fragment`` or the same without scheme."""
    scheme, rest = _split_scheme(text)
    # A bare ``host/path`` is read the way a browser completes it: as http, backslashes and all.
    special = scheme in _SPECIAL_SCHEMES or scheme == ""
    # Special schemes skip any run of slashes and backslashes (WHATWG); others had "//".
    rest = rest.lstrip("/\\") if special else rest[2:]
    end = (_AUTHORITY_END_SPECIAL if special else _AUTHORITY_END_OTHER).search(rest)
    cut = len(rest) if end is None else end.start()
    userinfo_and_host = rest[:cut]
    host, is_ip, port = _host_port(userinfo_and_host.rpartition("@")[2], scheme)
    path, query = _path_query(rest[cut:], special)
    return Url(scheme, host, port, path, query, is_ip)


def _split_scheme(text: str) -> tuple[str, str]:
    """Scheme and remainder, or ("", text) when the colon belongs to ``host:port``.

    ``example.com:8080/x`` looks like a scheme to WHATWG; we only take a scheme when it is
    followed by ``//`` or is a special scheme not followed by a bare port (so ``http:8080``
    is host "http", port 8080, as a CONNECT target would mean it).
    """
    match = _SCHEME.match(text)
    if match is None:
        return "", text
    scheme, rest = match.group(1).lower(), text[match.end() :]
    if rest.startswith("//"):
        return scheme, rest
    if scheme in _SPECIAL_SCHEMES and not _PORT_AFTER_COLON.match(rest):
        return scheme, rest
    return "", text


def _host_port(authority: str, scheme: str) -> tuple[str, bool, int | None]:
    """Split ``host[:port]`` (brackets for IPv6), normalise both, drop the default port."""
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise host_error(authority, "unclosed '['")
        host_text, after = authority[: close + 1], authority[close + 1 :]
        if after and after[0] != ":":
            raise host_error(authority, "text after the IPv6 literal")
        port_text = after[1:]
    elif authority.count(":") > 1:
        raise host_error(authority, "an IPv6 address needs brackets in a URL")
    else:
        host_text, _, port_text = authority.partition(":")
    host, is_ip = host_and_kind(host_text)
    port = _port(port_text, authority)
    if port is not None and DEFAULT_PORTS.get(scheme) == port:
        port = None
    return host, is_ip, port


def _port(text: str, authority: str) -> int | None:
    """A decimal port 0-65535; empty means none (WHATWG allows ``host:``)."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise UrlError(f"invalid port in {quoted(authority)}: {quoted(text)} is not a number")
    port = int(text)
    if port > 65535:
        raise UrlError(f"invalid port in {quoted(authority)}: {port} is above 65535")
    return port


def _path_query(tail: str, special: bool) -> tuple[str, str]:
    """Drop the fragment, split off the query, canonicalise the path."""
    tail = tail.partition("#")[0]
    path, _, query = tail.partition("?")
    if special and "\\" in path:
        path = path.replace("\\", "/")
    return _normalise_path(path), _encode_query(query)


def _normalise_path(path: str) -> str:
    """Canonical percent-encoding, then RFC 3986 dot-segment removal; "" becomes "/"."""
    if not path:
        return "/"
    if _PLAIN_PATH.fullmatch(path) and "/." not in path:
        return path
    return _remove_dot_segments(_PATH_ESCAPE.sub(_path_escape, path))


def _path_escape(match: re.Match[str]) -> str:
    """Decode %XX of unreserved characters, upper-case other escapes, encode the rest.

    A lone '%' becomes %25 so that decoding our output gives what decoding the input gave.
    """
    hex_pair = match.group(1)
    if hex_pair is not None:
        char = chr(int(hex_pair, 16))
        return char if char in _UNRESERVED else "%" + hex_pair.upper()
    return _percent_encode(match.group())


def _percent_encode(text: str) -> str:
    """UTF-8 percent-encoding; surrogate escapes (undecodable bytes) become their byte."""
    return "".join(f"%{byte:02X}" for byte in text.encode("utf-8", "surrogateescape"))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path: "." and ".." resolved, never above the root."""
    segments = path.split("/")[1:]
    if "." not in segments and ".." not in segments:
        return path
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    trailing = "/" if segments[-1] in (".", "..") and kept else ""
    return "/" + "/".join(kept) + trailing


def _encode_query(query: str) -> str:
    """Keep the query as given, except bytes that cannot appear raw in a request line."""
    if not query or _QUERY_ESCAPE.search(query) is None:
        return query
    return _QUERY_ESCAPE.sub(lambda m: _percent_encode(m.group()), query)


def url_text(scheme: str, host: str, port: int | None, path: str, query: str) -> str:
    """A URL's text from its parts, IPv6 in brackets, the scheme's default port left out.

    What `parse_url` reads back into a `Url` of the same parts (canonicalised); the proxy builds
    the URL it decides this way from what mitmproxy took apart.
    """
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    port_text = "" if port is None or port == DEFAULT_PORTS.get(scheme) else f":{port}"
    prefix = f"{scheme}://" if scheme else ""
    return f"{prefix}{shown}{port_text}{path}" + (f"?{query}" if query else "")
