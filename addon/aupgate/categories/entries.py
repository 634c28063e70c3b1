"""One list entry: a domain (covering its subdomains) or a URL prefix, in canonical form.

Entries are normalised exactly as request hosts and paths are (`hostname`, `normalise`), so a list
line and a request that mean the same site compare equal.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from aupgate.errors import UrlError
from aupgate.hostname import is_under, normalise_host
from aupgate.normalise import parse_url

__all__ = ["Entry", "EntryError", "Hit", "covers", "entry_host", "parse_entry", "rank"]

_SCHEMES = ("http://", "https://")
_WHITESPACE = re.compile(r"\s")


class Entry(NamedTuple):
    """One usable list entry: a domain (`path` None) or a URL prefix `host` + `path`."""

    host: str
    path: str | None = None

    def __str__(self) -> str:
        return self.host if self.path is None else self.host + self.path


class Hit(NamedTuple):
    """One entry that matches a request, with the categories the lists give it."""

    entry: Entry
    categories: tuple[str, ...]


class EntryError(ValueError):
    """A list line that cannot be used; the message says why, for the administrator."""


def parse_entry(text: str) -> Entry:
    """Parse one plain-format entry: `domain`, `*.domain`, `.domain` or `[scheme://]host/path`.

    A leading `*.` or `.` is accepted and dropped because a domain entry covers its subdomains
    anyway; lists written for other filters use those spellings for the same meaning.

    Raises:
        EntryError: the entry names no usable host or path.
    """
    text = text.strip()
    if _WHITESPACE.search(text):
        raise EntryError("contains whitespace (a hosts-format line? declare format: hosts)")
    lowered = text[:8].lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            break
    slash = text.find("/")
    host_part, rest = (text, None) if slash < 0 else (text[:slash], text[slash:])
    if host_part.startswith("*."):
        host_part = host_part[2:]
    elif host_part.startswith("."):
        host_part = host_part[1:]
    host = entry_host(host_part)
    return Entry(host) if rest is None else Entry(host, _path(host, rest))


def entry_host(raw: str) -> str:
    """Normalise an entry's host exactly as request hosts are, or say why it cannot be one."""
    if not raw:
        raise EntryError("no host name")
    try:
        return normalise_host(raw)
    except UrlError as e:
        raise EntryError(str(e)) from e


def _path(host: str, raw: str) -> str:
    """Normalise a URL entry's path (and query) the way request paths are, keeping case.

    A fragment is dropped: browsers never send it, so an entry that kept one could never match.
    """
    try:
        url = parse_url(f"http://[{host}]{raw}" if ":" in host else f"http://{host}{raw}")
    except UrlError as e:
        raise EntryError(str(e)) from e
    return f"{url.path}?{url.query}" if url.query else url.path


def rank(entry: Entry) -> tuple[bool, int, int]:
    """How specific an entry is: any URL prefix beats any domain, then more labels, longer path.

    Only entries that match the same request are compared, so their hosts are suffixes of one
    another and the number of dots orders them.
    """
    return (entry.path is not None, entry.host.count("."), len(entry.path or ""))


def covers(entry: Entry, host: str, path: str | None) -> bool:
    """Whether `entry` matches a request for `host` and `path` (None: any path of the host is
    meant, as when one entry is compared with another domain entry)."""
    if not is_under(host, entry.host):
        return False
    return entry.path is None or (path is not None and path.startswith(entry.path))
