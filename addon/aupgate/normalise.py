"""Adversarial host and URL normalisation: one canonical spelling per destination.

A category list says ``bet365.com``; a user who wants to reach it may write ``BET365.COM.``,
``%62et365.com``, ``ｂｅｔ３６５。ｃｏｍ``, ``bet\\u00ad365.com`` or
``http://bet365.com@www.modot.org/`` (which is *not* bet365). Every spelling a client would
resolve to the same place must come out of here as the same string, and anything we cannot
canonicalise is refused with a `UrlError` (the request gets an answer, never a guess).

Parsing follows the WHATWG URL standard where it differs from RFC 3986, because that is what
browsers do: backslashes are slashes in http(s)/ws(s) URLs, the *last* ``@`` in the authority
ends the userinfo, IPv4 literals may be spelt ``2130706433`` or ``0x7f.1``, and a name whose last
label is a number must be an IPv4 address.

IDNA: UTS #46 mapping comes from the third-party ``idna`` package (``idna.uts46_remap``,
non-transitional, without the STD3 rules so that ``foo_bar.tripod.com`` survives); the labels it
leaves non-ASCII are then punycoded with the stdlib ``punycode`` codec. We do not use
``idna.encode`` because its strict IDNA2008 validity checks reject names browsers accept
(emoji, underscores), and we do not use the stdlib ``idna`` codec because it implements IDNA
2003 without the UTS #46 mapping (fullwidth letters, soft hyphens, ideographic dots).

Registered domains come from ``tldextract`` using only the public suffix list bundled with the
package: no network, no disk cache.

Callers in the proxy should feed `parse_url` the URL mitmproxy actually connects to (built
from ``flow.request.host``/``port``), not the raw request line: mitmproxy's own parser reads
``http://evil.com\\@good.com/`` as host ``good.com`` while WHATWG (and this module) read
``evil.com``, and classification must follow the connection.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

import idna
import tldextract

from aupgate.errors import UrlError

__all__ = ["Url", "normalise_host", "parse_url", "registered_domain"]

DEFAULT_PORTS: Final[dict[str, int]] = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
"""Ports that are the same as no port at all for a scheme (so they are dropped)."""

_SPECIAL_SCHEMES: Final = frozenset(DEFAULT_PORTS)
"""WHATWG "special" schemes: host required, backslash is a slash, slashes after ':' optional."""

_MAX_HOST: Final = 253
_MAX_LABEL: Final = 63
_MAX_RAW_HOST: Final = 4096
"""Longer than any valid host could be even fully percent-encoded; refused before IDNA work."""

# Already-canonical ASCII names skip decoding and IDNA altogether. The last label must not
# start with a digit, because "example.123" and "0x7f" need the IPv4 rules.
_FAST_HOST: Final = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z_-][a-z0-9_-]{0,62}\.?")
_ASCII_LABEL: Final = re.compile(r"[a-z0-9_-]+")
_FORBIDDEN_HOST_CHAR: Final = re.compile(r"[^A-Za-z0-9_.\-\u0080-\U0010ffff]")
_IDEOGRAPHIC_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})

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


# --------------------------------------------------------------------------- hosts


def normalise_host(raw: str) -> str:
    """Return the canonical spelling of a host name or IP literal.

    Raises:
        UrlError: the host is empty, malformed, or uses characters no valid host can contain.
    """
    return _host_and_kind(raw)[0]


def _host_and_kind(raw: str) -> tuple[str, bool]:
    """Canonical host and whether it is an IP address; the fast path for plain names."""
    if _FAST_HOST.fullmatch(raw) and "xn--" not in raw:
        host = raw[:-1] if raw[-1] == "." else raw
        if len(host) <= _MAX_HOST:
            return host, False
    return _host_and_kind_slow(raw)


@functools.lru_cache(maxsize=4096)
def _host_and_kind_slow(raw: str) -> tuple[str, bool]:
    """Full normalisation, cached because IDN and odd spellings repeat across requests."""
    if len(raw) > _MAX_RAW_HOST:
        raise _host_error(raw, "too long")
    text = _percent_decode_host(raw)
    if not text:
        raise _host_error(raw, "empty")
    if text[0] == "[" or text.count(":") > 1:
        return _ipv6(text, raw), True
    return _domain_or_ipv4(text, raw)


def _percent_decode_host(raw: str) -> str:
    """Decode %XX once (WHATWG), so ``%62et365.com`` is bet365.com; bad UTF-8 is refused."""
    if "%" not in raw:
        return raw
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise _host_error(raw, "percent-encoding is not valid UTF-8") from None


def _ipv6(text: str, raw: str) -> str:
    """Compressed IPv6 without brackets; IPv4-mapped addresses become the IPv4 they carry."""
    inner = text[1:-1] if text[0] == "[" and text[-1] == "]" else text
    if "[" in inner or "]" in inner:
        raise _host_error(raw, "unbalanced brackets")
    if "%" in inner:
        raise _host_error(raw, "IPv6 zone identifiers are not allowed")
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError:
        raise _host_error(raw, "not a valid IPv6 address") from None
    mapped = address.ipv4_mapped
    return str(mapped) if mapped is not None else str(address)


def _domain_or_ipv4(text: str, raw: str) -> tuple[str, bool]:
    """Map a name through UTS #46, then treat it as IPv4 if its last label is a number."""
    _check_host_chars(text, raw)
    mapped = text.lower() if text.isascii() else _uts46(text, raw)
    _check_host_chars(mapped, raw)
    if mapped.endswith("."):
        mapped = mapped[:-1]
    if not mapped:
        raise _host_error(raw, "empty")
    labels = mapped.split(".")
    if "" in labels:
        raise _host_error(raw, "empty label")
    if _ends_in_number(labels[-1]):
        return _ipv4(labels, raw), True
    host = ".".join([_label_to_ascii(label, raw) for label in labels])
    if len(host) > _MAX_HOST:
        raise _host_error(raw, f"longer than {_MAX_HOST} octets")
    return host, False


def _check_host_chars(text: str, raw: str) -> None:
    """Refuse ASCII that no host may contain: '/', '@', ':', '%', whitespace, controls..."""
    bad = _FORBIDDEN_HOST_CHAR.search(text)
    if bad is None:
        return
    char = bad.group()
    if char.isspace():
        what = "whitespace"
    elif not char.isprintable():
        what = "a control character"
    elif char == ":":
        what = "':' outside an IPv6 literal"
    else:
        what = repr(char)
    raise _host_error(raw, f"contains {what}")


def _uts46(text: str, raw: str) -> str:
    """UTS #46 mapping: case fold, NFC, fullwidth to ASCII, drop ignorables, map dots."""
    try:
        return idna.uts46_remap(text.translate(_IDEOGRAPHIC_DOTS), std3_rules=False)
    except idna.IDNAError as e:
        raise _host_error(raw, f"not allowed in an internationalised name ({e})") from None


def _label_to_ascii(label: str, raw: str) -> str:
    """One label in its DNS form: punycode for non-ASCII, checked charset and length."""
    if label.isascii():
        if not _ASCII_LABEL.fullmatch(label):
            raise _host_error(raw, f"invalid label {label!r}")
        if label.startswith("xn--"):
            _check_punycode(label, raw)
        ascii_label = label
    else:
        ascii_label = "xn--" + label.encode("punycode").decode("ascii")
    if len(ascii_label) > _MAX_LABEL:
        raise _host_error(raw, f"label longer than {_MAX_LABEL} octets")
    return ascii_label


def _check_punycode(label: str, raw: str) -> None:
    """An ``xn--`` label must decode, or it is not a name any client could have meant."""
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        decoded = ""
    if not decoded:
        raise _host_error(raw, f"label {label!r} is not valid punycode")


# --------------------------------------------------------------------------- IPv4 (WHATWG)


def _ends_in_number(label: str) -> bool:
    """WHATWG "ends in a number": all digits, or something the IPv4 number parser accepts."""
    if label.isascii() and label.isdigit():
        return True
    return _ipv4_number(label) is not None


def _ipv4_number(part: str) -> int | None:
    """One IPv4 part as WHATWG reads it: 0x.. is hex, 0.. is octal, else decimal."""
    if not part or not part.isascii():
        return None
    radix = 10
    if part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, radix = part[1:], 8
    if not part:
        return 0
    try:
        return int(part, radix) if part.isalnum() else None
    except ValueError:
        return None


def _ipv4(labels: list[str], raw: str) -> str:
    """Dotted-quad for any IPv4 spelling WHATWG accepts (127.1, 2130706433, 0x7f.0.0.01)."""
    if len(labels) > 4:
        raise _host_error(raw, "ends in a number but has more than four IPv4 parts")
    numbers = [_ipv4_number(label) for label in labels]
    if any(n is None for n in numbers):
        raise _host_error(raw, "ends in a number but is not an IPv4 address")
    parts = [n for n in numbers if n is not None]
    if any(n > 255 for n in parts[:-1]) or parts[-1] >= 256 ** (5 - len(parts)):
        raise _host_error(raw, "IPv4 address out of range")
    value = parts[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(parts[:-1]))
    return str(ipaddress.IPv4Address(value))


def _host_error(raw: str, reason: str) -> UrlError:
    """One message shape for every host problem: which host, then what is wrong with it."""
    return UrlError(f"invalid host {_show(raw)}: {reason}")


def _show(text: str) -> str:
    """Quote attacker-controlled text for a message: escaped and bounded."""
    return repr(text if len(text) <= 100 else text[:97] + "...")


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
    if len(host) > _MAX_HOST or "xn--" in host or (path is not None and "/." in path):
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
        raise UrlError(f"invalid URL {_show(raw)}: origin-form needs a Host header")
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
            raise _host_error(authority, "unclosed '['")
        host_text, after = authority[: close + 1], authority[close + 1 :]
        if after and after[0] != ":":
            raise _host_error(authority, "text after the IPv6 literal")
        port_text = after[1:]
    elif authority.count(":") > 1:
        raise _host_error(authority, "an IPv6 address needs brackets in a URL")
    else:
        host_text, _, port_text = authority.partition(":")
    host, is_ip = _host_and_kind(host_text)
    port = _port(port_text, authority)
    if port is not None and DEFAULT_PORTS.get(scheme) == port:
        port = None
    return host, is_ip, port


def _port(text: str, authority: str) -> int | None:
    """A decimal port 0-65535; empty means none (WHATWG allows ``host:``)."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise UrlError(f"invalid port in {_show(authority)}: {_show(text)} is not a number")
    port = int(text)
    if port > 65535:
        raise UrlError(f"invalid port in {_show(authority)}: {port} is above 65535")
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


# --------------------------------------------------------------------------- domains


def _make_extractor() -> tldextract.TLDExtract:
    """A suffix-list extractor that uses only the snapshot shipped inside tldextract.

    ``suffix_list_urls=()`` means nothing is ever fetched (and the environment variable that
    could add URLs is not read); ``cache_dir=None`` means nothing is read from or written to disk.
    """
    return tldextract.TLDExtract(
        cache_dir=None, suffix_list_urls=(), include_psl_private_domains=False
    )


_EXTRACT: Final = _make_extractor()


@functools.lru_cache(maxsize=16384)
def registered_domain(host: str) -> str:
    """The registrable domain ("mail.google.com" -> "google.com").

    An IP address or a bare public suffix returns the (normalised) host itself. A name under
    a suffix the list does not know gets the PSL default rule "*": its last two labels.

    Raises:
        UrlError: the host is not a valid host name.
    """
    canonical, is_ip = _host_and_kind(host)
    if is_ip:
        return canonical
    parts = _EXTRACT(canonical)
    if parts.suffix:
        return f"{parts.domain}.{parts.suffix}" if parts.domain else canonical
    return ".".join(canonical.split(".")[-2:])
