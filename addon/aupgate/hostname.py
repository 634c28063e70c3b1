"""Host names and IP literals in one canonical spelling, and the domains a host belongs to.

A category list says ``bet365.com``; a client that wants to reach it may write ``BET365.COM.``,
``%62et365.com``, ``ｂｅｔ３６５。ｃｏｍ`` or ``bet\\u00ad365.com``. Every spelling a client would
resolve to the same place comes out of `normalise_host` as the same string, and anything that
cannot be canonicalised is refused with a `UrlError` (the request gets an answer, never a guess).
URLs are taken apart in `normalise`; this module owns the host inside them.

WHATWG rules where they differ from RFC 3986, because that is what browsers do: IPv4 literals may
be spelt ``2130706433`` or ``0x7f.1``, and a name whose last label is a number must be an IPv4
address.

IDNA: UTS #46 mapping comes from the third-party ``idna`` package (``idna.uts46_remap``,
non-transitional, without the STD3 rules so that ``foo_bar.tripod.com`` survives); the labels it
leaves non-ASCII are then punycoded with the stdlib ``punycode`` codec. We do not use
``idna.encode`` because its strict IDNA2008 validity checks reject names browsers accept
(emoji, underscores), and we do not use the stdlib ``idna`` codec because it implements IDNA
2003 without the UTS #46 mapping (fullwidth letters, soft hyphens, ideographic dots).

Registered domains come from ``tldextract`` using only the public suffix list bundled with the
package: no network, no disk cache.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote

import idna

from aupgate.errors import UrlError

if TYPE_CHECKING:
    import tldextract

__all__ = [
    "host_and_kind",
    "host_suffixes",
    "is_under",
    "normalise_host",
    "quoted",
    "registered_domain",
]

MAX_HOST: Final = 253
_MAX_LABEL: Final = 63
_MAX_RAW_HOST: Final = 4096
"""Longer than any valid host could be even fully percent-encoded; refused before IDNA work."""

# Already-canonical ASCII names skip decoding and IDNA altogether. The last label must not
# start with a digit, because "example.123" and "0x7f" need the IPv4 rules.
_FAST_HOST: Final = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z_-][a-z0-9_-]{0,62}\.?")
_ASCII_LABEL: Final = re.compile(r"[a-z0-9_-]+")
_FORBIDDEN_HOST_CHAR: Final = re.compile(r"[^A-Za-z0-9_.\-\u0080-\U0010ffff]")
_IDEOGRAPHIC_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def normalise_host(raw: str) -> str:
    """Return the canonical spelling of a host name or IP literal.

    Raises:
        UrlError: the host is empty, malformed, or uses characters no valid host can contain.
    """
    return host_and_kind(raw)[0]


def host_and_kind(raw: str) -> tuple[str, bool]:
    """Canonical host and whether it is an IP address; the fast path for plain names.

    Raises:
        UrlError: as `normalise_host`.
    """
    if _FAST_HOST.fullmatch(raw) and "xn--" not in raw:
        host = raw[:-1] if raw[-1] == "." else raw
        if len(host) <= MAX_HOST:
            return host, False
    return _host_and_kind_slow(raw)


@functools.lru_cache(maxsize=4096)
def _host_and_kind_slow(raw: str) -> tuple[str, bool]:
    """Full normalisation, cached because IDN and odd spellings repeat across requests."""
    if len(raw) > _MAX_RAW_HOST:
        raise host_error(raw, "too long")
    text = _percent_decode_host(raw)
    if not text:
        raise host_error(raw, "empty")
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
        raise host_error(raw, "percent-encoding is not valid UTF-8") from None


def _ipv6(text: str, raw: str) -> str:
    """Compressed IPv6 without brackets; IPv4-mapped addresses become the IPv4 they carry."""
    inner = text[1:-1] if text[0] == "[" and text[-1] == "]" else text
    if "[" in inner or "]" in inner:
        raise host_error(raw, "unbalanced brackets")
    if "%" in inner:
        raise host_error(raw, "IPv6 zone identifiers are not allowed")
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError:
        raise host_error(raw, "not a valid IPv6 address") from None
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
        raise host_error(raw, "empty")
    labels = mapped.split(".")
    if "" in labels:
        raise host_error(raw, "empty label")
    if _ends_in_number(labels[-1]):
        return _ipv4(labels, raw), True
    host = ".".join([_label_to_ascii(label, raw) for label in labels])
    if len(host) > MAX_HOST:
        raise host_error(raw, f"longer than {MAX_HOST} octets")
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
    raise host_error(raw, f"contains {what}")


def _uts46(text: str, raw: str) -> str:
    """UTS #46 mapping: case fold, NFC, fullwidth to ASCII, drop ignorables, map dots."""
    try:
        return idna.uts46_remap(text.translate(_IDEOGRAPHIC_DOTS), std3_rules=False)
    except idna.IDNAError as e:
        raise host_error(raw, f"not allowed in an internationalised name ({e})") from None


def _label_to_ascii(label: str, raw: str) -> str:
    """One label in its DNS form: punycode for non-ASCII, checked charset and length."""
    if label.isascii():
        if not _ASCII_LABEL.fullmatch(label):
            raise host_error(raw, f"invalid label {label!r}")
        if label.startswith("xn--"):
            _check_punycode(label, raw)
        ascii_label = label
    else:
        ascii_label = "xn--" + label.encode("punycode").decode("ascii")
    if len(ascii_label) > _MAX_LABEL:
        raise host_error(raw, f"label longer than {_MAX_LABEL} octets")
    return ascii_label


def _check_punycode(label: str, raw: str) -> None:
    """An ``xn--`` label must decode, or it is not a name any client could have meant."""
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        decoded = ""
    if not decoded:
        raise host_error(raw, f"label {label!r} is not valid punycode")


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
        raise host_error(raw, "ends in a number but has more than four IPv4 parts")
    numbers = [_ipv4_number(label) for label in labels]
    if any(n is None for n in numbers):
        raise host_error(raw, "ends in a number but is not an IPv4 address")
    parts = [n for n in numbers if n is not None]
    if any(n > 255 for n in parts[:-1]) or parts[-1] >= 256 ** (5 - len(parts)):
        raise host_error(raw, "IPv4 address out of range")
    value = parts[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(parts[:-1]))
    return str(ipaddress.IPv4Address(value))


def host_error(raw: str, reason: str) -> UrlError:
    """One message shape for every host problem: which host, then what is wrong with it."""
    return UrlError(f"invalid host {quoted(raw)}: {reason}")


def quoted(text: str) -> str:
    """Quote attacker-controlled text for a message: escaped and bounded."""
    return repr(text if len(text) <= 100 else text[:97] + "...")


# --------------------------------------------------------------------------- domains


@functools.cache
def _extractor() -> tldextract.TLDExtract:
    """A suffix-list extractor that uses only the snapshot shipped inside tldextract.

    ``suffix_list_urls=()`` means nothing is ever fetched (and the environment variable that
    could add URLs is not read); ``cache_dir=None`` means nothing is read from or written to disk.
    Made on first use: tldextract brings in `requests`, a fifth of a command's start-up, and
    most commands never ask for a registered domain.
    """
    import tldextract

    return tldextract.TLDExtract(
        cache_dir=None, suffix_list_urls=(), include_psl_private_domains=False
    )


@functools.lru_cache(maxsize=16384)
def registered_domain(host: str) -> str:
    """The registrable domain ("mail.google.com" -> "google.com").

    An IP address or a bare public suffix returns the (normalised) host itself. A name under
    a suffix the list does not know gets the PSL default rule "*": its last two labels.

    Raises:
        UrlError: the host is not a valid host name.
    """
    canonical, is_ip = host_and_kind(host)
    if is_ip:
        return canonical
    parts = _extractor()(canonical)
    if parts.suffix:
        return f"{parts.domain}.{parts.suffix}" if parts.domain else canonical
    return ".".join(canonical.split(".")[-2:])


def host_suffixes(host: str) -> tuple[str, ...]:
    """`a.b.c` -> (`a.b.c`, `b.c`, `c`): the names a domain entry or condition can match on."""
    suffixes = [host]
    dot = host.find(".")
    while dot != -1:
        suffixes.append(host[dot + 1 :])
        dot = host.find(".", dot + 1)
    return tuple(suffixes)


def is_under(host: str, domain: str) -> bool:
    """Whether `host` is `domain` or one of its subdomains, on label boundaries."""
    return host == domain or host.endswith("." + domain)


_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@functools.lru_cache(maxsize=4096)
def looks_like_domain(name: str) -> bool:
    """Whether `name` reads as a domain name under a public suffix (`example.com`,
    `www.gov.uk`): a URL's last path segment spelled so names a domain, not a file
    (`/lookup/example.com` is not a `.com` program)."""
    text = name.lower().rstrip(".")
    labels = text.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return False
    parts = _extractor()(text)
    return bool(parts.suffix and parts.domain)
