"""Category lists and the index that answers "what kind of site is this?" for every request.

Policies speak in categories ("block gambling", "log webmail at lunch"), and the evidence for a
category is a third-party or hand-curated list of domains and URL prefixes. This module reads those
lists (four formats: plain, hosts, UT1 folders, adblock), tells the administrator about every line
it could not use instead of dropping it, and defines `CategoryIndex`, what the engine asks of
category data for every request. Two indexes answer it: `ListIndex` here, built in memory
straight from the lists (the reference, and what tests build from a handful of entries), and
`CompiledIndex` (`compiled.py`), one memory-mapped file that `load_index` compiles once and every
process then opens in milliseconds.

Matching follows squidGuard, which the UT1 lists are written for: a domain entry covers the host and
all its subdomains on label boundaries; a URL entry `host/path` covers requests to that host (or a
subdomain) whose path starts with the entry's path. The most specific entry wins, so
`ads.netlog.com` (advertising) beats `netlog.com` (social networking), and the losing categories
are still reported in `all_categories`.

The module is pure: it never imports mitmproxy and never reads the clock.
"""

from __future__ import annotations

import bisect
import difflib
import gzip
import ipaddress
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import yaml

from .errors import CategoryError, Problem, UrlError
from .normalise import normalise_host, parse_url

__all__ = [
    "CATEGORY_IDS",
    "FORMATS",
    "UNCATEGORIZED",
    "CategoryIndex",
    "Classification",
    "Entry",
    "EntryError",
    "Hit",
    "ListIndex",
    "LoadReport",
    "Rejected",
    "Skipped",
    "SourceReport",
    "SourceSpec",
    "classification_of",
    "load_index",
    "load_lists",
    "parse_entry",
    "read_entries",
    "read_numbered",
    "read_sources",
]

CATEGORY_IDS: tuple[str, ...] = (
    "social-networking",
    "webmail",
    "gambling",
    "p2p-file-sharing",
    "streaming-media",
    "adult",
    "instant-messaging",
    "voip",
    "file-hosting",
    "software-downloads",
    "dating",
    "games",
    "shopping",
    "advertising",
    "remote-access",
    "vpn-proxy",
    "malware-phishing",
    "banking",
    "health",
)
"""The category ids policies may name; fixed, and documented in docs/categories.md."""

UNCATEGORIZED = "uncategorized"
"""The pseudo-category a policy names for requests that match no list; no list may carry it."""

Format = Literal["ut1", "plain", "hosts", "adblock"]
FORMATS: tuple[Format, ...] = ("ut1", "plain", "hosts", "adblock")

# Names a hosts file maps for the machine's own sake; they say nothing about any site.
_HOSTS_HOUSEKEEPING = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
        "0.0.0.0",  # noqa: S104 (a name in a hosts file, not an address we bind)
    }
)
_SCHEMES = ("http://", "https://")
_WHITESPACE = re.compile(r"\s")


# --- entries -------------------------------------------------------------------------------------


class Entry(NamedTuple):
    """One usable list entry: a domain (`path` None) or a URL prefix `host` + `path`."""

    host: str
    path: str | None = None

    def __str__(self) -> str:
        return self.host if self.path is None else self.host + self.path


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
    host = _host(host_part)
    return Entry(host) if rest is None else Entry(host, _path(host, rest))


def _host(raw: str) -> str:
    """Normalise an entry's host exactly as request hosts are, or say why it cannot be one."""
    if not raw:
        raise EntryError("no host name")
    try:
        return normalise_host(raw)
    except UrlError as e:
        raise EntryError(str(e)) from e


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _path(host: str, raw: str) -> str:
    """Normalise a URL entry's path (and query) the way request paths are, keeping case.

    A fragment is dropped: browsers never send it, so an entry that kept one could never match.
    """
    try:
        url = parse_url(f"http://[{host}]{raw}" if ":" in host else f"http://{host}{raw}")
    except UrlError as e:
        raise EntryError(str(e)) from e
    return f"{url.path}?{url.query}" if url.query else url.path


# --- reading list files --------------------------------------------------------------------------


class Rejected(NamedTuple):
    """A line (or, in a hosts file, one name on a line) that could not be used: a warning."""

    line: int
    text: str
    reason: str


class Skipped(NamedTuple):
    """A well-formed line that names no whole site (an adblock cosmetic or exception rule).

    Not a mistake in the list, so not a warning per line: skipped lines are counted by reason in
    the load report and the import manifest, so nobody wonders where 40,000 lines went.
    """

    line: int
    text: str
    reason: str


LineResult = Entry | Rejected | Skipped
Numbered = tuple[int, LineResult]


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """Yield (line number, text) for each line; text is None for a line that is not UTF-8.

    Raises:
        CategoryError: the file cannot be read at all (missing, or a broken gzip stream); a list
            that stops half-way must stop the load rather than silently shrink a category.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError:
                    yield number, None
    except (OSError, EOFError, zlib.error) as e:
        where = number + 1 if number else None
        raise CategoryError([Problem(str(path), where, "", f"cannot read: {e}")]) from e


def read_plain(path: Path, kind: Literal["any", "domains", "urls"] = "any") -> Iterator[Numbered]:
    """Read a plain list: one domain or `host/path` per line, `#` comments, blank lines skipped.

    `kind` narrows what a line may be, for UT1's `domains` and `urls` files, where a line of the
    wrong kind means the file is not what its name says.
    """
    for number, text in _lines(path):
        if text is None:
            yield number, Rejected(number, "", "not UTF-8")
            continue
        line = _strip_comment(text)
        if not line:
            continue
        try:
            entry = parse_entry(line)
        except EntryError as e:
            yield number, Rejected(number, line, str(e))
            continue
        if kind == "domains" and entry.path is not None:
            yield number, Rejected(number, line, "a URL in a domains file")
        elif kind == "urls" and entry.path is None:
            yield number, Rejected(number, line, "no path in a urls file")
        else:
            yield number, entry


def _strip_comment(text: str) -> str:
    """Drop a whole-line `#` comment or one after whitespace; `#` inside a URL is a fragment."""
    line = text.strip()
    if line.startswith("#"):
        return ""
    for sep in (" #", "\t#"):
        cut = line.find(sep)
        if cut >= 0:
            line = line[:cut].rstrip()
    return line


def read_hosts(path: Path) -> Iterator[Numbered]:
    """Read a hosts file: `ADDRESS name [name...]`, where the address is a sinkhole and ignored."""
    for number, text in _lines(path):
        if text is None:
            yield number, Rejected(number, "", "not UTF-8")
            continue
        line = text.split("#", 1)[0].strip()
        if line:
            for result in _hosts_line(number, line):
                yield number, result


def _hosts_line(number: int, line: str) -> Iterator[LineResult]:
    address, *names = line.split()
    if not _is_ip(address):
        yield Rejected(number, line, "does not start with an IP address (a plain list?)")
        return
    if not names:
        yield Rejected(number, line, "an address without host names")
        return
    for name in names:
        if name.lower() in _HOSTS_HOUSEKEEPING:
            yield Rejected(number, name, "a hosts-file housekeeping name, not a site")
            continue
        try:
            yield Entry(_host(name))
        except EntryError as e:
            yield Rejected(number, name, str(e))


# Adblock syntax that hides page elements or rewrites pages: about how a page looks, not which
# site it is. `#@#` and friends are their exceptions.
_COSMETIC = ("##", "#@#", "#?#", "#@?#", "#$#", "#@$#", "#%#", "#@%#", "$$", "$@$")
# Options that do not narrow a `||domain^` rule to some requests: the whole site is meant.
_WHOLE_SITE_OPTIONS = frozenset({"important", "all", "document", "doc", "popup"})
_GENERIC_START = ("-", "_", ".", "&", "?", "=", "/", ":", ",", ";", "%")
_SKIP_COSMETIC = "cosmetic rule (hides page elements), names no site"
_SKIP_EXCEPTION = "exception rule (@@), names no site to categorise"


def read_adblock(path: Path) -> Iterator[Numbered]:
    """Read an adblock-syntax list (EasyList, AdGuard DNS): `||domain^` rules and plain domains.

    Only rules that name a whole site become entries: `||host^` (also `||host`, `||host^$important`
    and the other whole-site options) as a domain entry, `||host/path` as a URL prefix, and bare
    domain lines. Cosmetic rules, exceptions (`@@`), rules narrowed by options (`$third-party`),
    wildcard and regular-expression rules, start anchors and generic URL fragments are valid
    adblock but say nothing a category can use: they are `Skipped`, counted by reason. `!`
    comments and `[Adblock Plus 2.0]` headers are ignored like `#` comments elsewhere.
    """
    for number, text in _lines(path):
        if text is None:
            yield number, Rejected(number, "", "not UTF-8")
            continue
        line = text.strip()
        if not line or line[0] == "!" or (line[0] == "[" and line[-1] == "]"):
            continue
        if line[0] == "#" and not line.startswith(_COSMETIC):
            continue  # a hosts-style comment, which DNS-level lists use
        yield number, _adblock_line(number, line)


def _adblock_line(number: int, line: str) -> LineResult:
    if any(marker in line for marker in _COSMETIC):
        return Skipped(number, line, _SKIP_COSMETIC)
    if line.startswith("@@"):
        return Skipped(number, line, _SKIP_EXCEPTION)
    if len(line) > 1 and line[0] == "/" and line[-1] == "/":
        return Skipped(number, line, "regular-expression rule, names no single site")
    if line.startswith("||"):
        return _adblock_domain_rule(number, line)
    if line[0] == "|":
        return Skipped(number, line, "start-anchored rule (|...), matches one exact URL form")
    if "*" in line or "^" in line or "$" in line or line.startswith(_GENERIC_START):
        return Skipped(number, line, "generic URL pattern, names no site")
    try:
        return parse_entry(line)
    except EntryError as e:
        return Rejected(number, line, str(e))


def _adblock_domain_rule(number: int, line: str) -> LineResult:
    """`||host^[$options]` or `||host/path`: an entry when it covers the whole site or prefix."""
    body, _, options = line[2:].partition("$")
    if options:
        narrowing = sorted(
            o for o in options.lower().split(",") if o.strip() not in _WHOLE_SITE_OPTIONS
        )
        if narrowing:
            return Skipped(
                number, line, f"options narrow the rule to some requests (${narrowing[0]})"
            )
    if body.endswith("^|"):
        body = body[:-2]
    elif body.endswith(("^", "|")):
        body = body[:-1]
    if "*" in body or "^" in body or "|" in body:
        return Skipped(number, line, "wildcard or separator inside the rule, not a whole site")
    try:
        return parse_entry(body)
    except EntryError as e:
        return Rejected(number, line, str(e))


def ut1_files(folder: Path) -> list[tuple[Path, Literal["domains", "urls"]]]:
    """The list files of a UT1 category folder: `domains` and `urls`, each optionally gzipped."""
    found: list[tuple[Path, Literal["domains", "urls"]]] = []
    for name in ("domains", "urls"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found.append((candidate, "domains" if name == "domains" else "urls"))
    return found


def source_files(path: Path, fmt: Format) -> list[Path]:
    """The files a source is read from: a UT1 folder's list files, else the file itself."""
    if fmt == "ut1":
        return [file for file, _ in ut1_files(path)]
    return [path]


def read_numbered(path: Path, fmt: Format) -> Iterator[tuple[Path, int, LineResult]]:
    """Read one source of any format, yielding (file, line number, entry or rejection)."""
    if fmt == "ut1":
        for file, kind in ut1_files(path):
            for number, result in read_plain(file, kind):
                yield file, number, result
        return
    if fmt == "hosts":
        numbered = read_hosts(path)
    elif fmt == "adblock":
        numbered = read_adblock(path)
    else:
        numbered = read_plain(path)
    for number, result in numbered:
        yield path, number, result


def read_entries(path: Path, fmt: Format) -> Iterator[tuple[Path, LineResult]]:
    """Read one source of any format, yielding (file, entry or rejection)."""
    for file, _number, result in read_numbered(path, fmt):
        yield file, result


# --- sources.yaml --------------------------------------------------------------------------------

_SOURCE_KEYS = ("path", "format", "category", "source", "licence", "snapshot")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One list named in sources.yaml, with its path resolved against the file's folder."""

    path: Path
    format: Format
    category: str
    source: str
    licence: str
    snapshot: str
    line: int


def read_sources(sources_file: Path) -> list[SourceSpec]:
    """Read and validate sources.yaml; every problem is collected before raising.

    Raises:
        CategoryError: the file is unreadable or names an unknown key, category or format, or a
            list that does not exist.
    """
    name = str(sources_file)
    try:
        root = yaml.compose(sources_file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except OSError as e:
        raise CategoryError([Problem(name, None, "", f"cannot read: {e.strerror}")]) from e
    except yaml.YAMLError as e:
        line = (
            e.problem_mark.line + 1
            if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark
            else None
        )
        raise CategoryError([Problem(name, line, "", f"not valid YAML: {e}")]) from e
    problems: list[Problem] = []
    specs = _read_source_list(root, sources_file, problems)
    if problems:
        raise CategoryError(problems)
    return specs


def _read_source_list(
    root: yaml.Node | None, sources_file: Path, problems: list[Problem]
) -> list[SourceSpec]:
    name = str(sources_file)
    if not isinstance(root, yaml.MappingNode):
        problems.append(Problem(name, _line(root), "", "expected a mapping with key 'sources'"))
        return []
    items: yaml.Node | None = None
    for key, value in root.value:
        if key.value == "sources":
            items = value
        else:
            problems.append(
                Problem(name, _line(key), str(key.value), "unknown key (expected 'sources')")
            )
    if items is None:
        problems.append(Problem(name, _line(root), "sources", "missing"))
        return []
    if not isinstance(items, yaml.SequenceNode):
        problems.append(Problem(name, _line(items), "sources", "expected a list"))
        return []
    specs: list[SourceSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items.value):
        spec = _read_source(item, f"sources[{i}]", sources_file, problems)
        if spec is None:
            continue
        key = str(spec.path)
        if key in seen:
            problems.append(
                Problem(
                    name, spec.line, f"sources[{i}].path", f"already listed at line {seen[key]}"
                )
            )
        else:
            seen[key] = spec.line
            specs.append(spec)
    return specs


def _read_source(
    node: yaml.Node, where: str, sources_file: Path, problems: list[Problem]
) -> SourceSpec | None:
    name = str(sources_file)
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(name, _line(node), where, "expected a mapping"))
        return None
    before = len(problems)
    values = _scalar_values(node, where, name, problems)
    _check_category(values, where, name, problems)
    fmt = _check_format(values, where, name, problems)
    path = _check_path(values, fmt, where, sources_file, problems)
    if len(problems) > before or fmt is None or path is None:
        return None
    return SourceSpec(
        path=path,
        format=fmt,
        category=values["category"][0],
        source=values["source"][0],
        licence=values["licence"][0],
        snapshot=values["snapshot"][0],
        line=_line(node) or 0,
    )


def _scalar_values(
    node: yaml.MappingNode, where: str, name: str, problems: list[Problem]
) -> dict[str, tuple[str, int]]:
    """A source's keys with their string values and lines; wrong, repeated or missing keys."""
    values: dict[str, tuple[str, int]] = {}
    present: set[str] = set()
    for key, value in node.value:
        field_name = f"{where}.{key.value}"
        line = _line(value) or 0
        if key.value not in _SOURCE_KEYS:
            expected = ", ".join(sorted(_SOURCE_KEYS))
            message = f"unknown key (expected one of: {expected})"
            problems.append(Problem(name, _line(key), field_name, message))
        elif key.value in present:
            problems.append(Problem(name, _line(key), field_name, "given twice"))
        elif not isinstance(value, yaml.ScalarNode) or not str(value.value).strip():
            problems.append(Problem(name, line, field_name, "expected a non-empty string"))
        else:
            values[key.value] = (str(value.value), line)
        present.add(str(key.value))
    for key in _SOURCE_KEYS:
        if key not in present:
            problems.append(Problem(name, _line(node), where, f"missing key '{key}'"))
    return values


def _check_category(
    values: dict[str, tuple[str, int]], where: str, name: str, problems: list[Problem]
) -> None:
    if "category" not in values:
        return
    category, line = values["category"]
    if category in CATEGORY_IDS:
        return
    if category == UNCATEGORIZED:
        message = f"'{UNCATEGORIZED}' means 'on no list'; a list cannot carry it"
    else:
        message = f"unknown category '{category}'{_did_you_mean(category, CATEGORY_IDS)}"
    problems.append(Problem(name, line, f"{where}.category", message))


def _check_format(
    values: dict[str, tuple[str, int]], where: str, name: str, problems: list[Problem]
) -> Format | None:
    if "format" not in values:
        return None
    fmt, line = values["format"]
    for known in FORMATS:
        if fmt == known:
            return known
    expected = ", ".join(FORMATS)
    problems.append(
        Problem(
            name, line, f"{where}.format", f"unknown format '{fmt}' (expected one of: {expected})"
        )
    )
    return None


def _check_path(
    values: dict[str, tuple[str, int]],
    fmt: Format | None,
    where: str,
    sources_file: Path,
    problems: list[Problem],
) -> Path | None:
    if "path" not in values or fmt is None:
        return None  # without a known format there is no telling whether a file or folder is due
    rel, line = values["path"]
    path = sources_file.parent / rel
    message = None
    if fmt == "ut1":
        if not path.is_dir():
            message = f"no such folder: {rel}"
        elif not ut1_files(path):
            message = f"no domains or urls file (optionally .gz) in {rel}"
    elif not path.is_file():
        message = f"no such file: {rel}"
    if message:
        problems.append(Problem(str(sources_file), line, f"{where}.path", message))
        return None
    return path


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


# --- the index -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Classification:
    """What the lists say about one request.

    Attributes:
        categories: the winning (most specific) entry's categories, sorted; several when several
            lists carry that same entry (bet365.com is gambling and malware-phishing).
        all_categories: every category of every matching entry, sorted, for audit and explain.
        matched: the winning entry, `bet365.com` or `colombia.com/radio`; None when nothing matched.
    """

    categories: tuple[str, ...]
    all_categories: tuple[str, ...]
    matched: str | None


_NO_MATCH = Classification((), (), None)


class Hit(NamedTuple):
    """One entry that matches a request, with the categories the lists give it."""

    entry: Entry
    categories: tuple[str, ...]


def rank(entry: Entry) -> tuple[bool, int, int]:
    """How specific an entry is: any URL prefix beats any domain, then more labels, longer path.

    Only entries that match the same request are compared, so their hosts are suffixes of one
    another and the number of dots orders them.
    """
    return (entry.path is not None, entry.host.count("."), len(entry.path or ""))


def classification_of(hits: Iterable[Hit]) -> Classification:
    """The classification a set of matching entries gives, by the rules in docs/categories.md.

    The indexes compute this faster their own way; this is the definition they must agree with,
    and what agency overrides use once they have changed the set of hits.
    """
    by_entry: dict[Entry, set[str]] = {}
    for entry, categories in hits:
        by_entry.setdefault(entry, set()).update(categories)
    if not by_entry:
        return _NO_MATCH
    best = max(by_entry, key=rank)
    union = tuple(sorted({c for categories in by_entry.values() for c in categories}))
    return Classification(tuple(sorted(by_entry[best])), union, str(best))


class _UrlNode:
    """A host that carries URL-prefix entries (and perhaps a domain entry too).

    Kept apart from the plain `host -> categories` values so that the common case, a host with
    only a domain entry or none, costs one dict lookup per label. The paths are sorted so that the
    prefixes of a request path are found by bisection: docs.google.com alone has ~500 entries.
    """

    __slots__ = ("categories", "domain", "paths")

    def __init__(
        self,
        domain: tuple[str, ...] | None,
        paths: tuple[str, ...],
        categories: tuple[tuple[str, ...], ...],
    ) -> None:
        self.domain = domain
        self.paths = paths  # sorted
        self.categories = categories  # categories[i] belongs to paths[i]

    def matches(self, path: str) -> list[int]:
        """Indices of every entry path that is a prefix of `path`, longest first.

        The greatest entry <= a target is the target's longest prefix among the entries if it is
        a prefix at all; if not, every prefix of the target that is an entry is also a prefix of
        their common prefix, so the search continues from that, below the entry just seen.
        """
        paths = self.paths
        found: list[int] = []
        target, high = path, len(paths)
        while target and high:
            i = bisect.bisect_right(paths, target, 0, high) - 1
            if i < 0:
                break
            entry = paths[i]
            if target.startswith(entry):
                found.append(i)
                target = entry[:-1]
            else:
                target = _common_prefix(entry, target)
            high = i
        return found


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]


_Node = tuple[str, ...] | _UrlNode


class CategoryIndex(ABC):
    """What the engine asks of category data: `classify` for every request, `matches` to explain.

    `load_index` gives the compiled, memory-mapped index; `from_entries` builds a `ListIndex` in
    memory from a few entries (tests, documentation examples). Both answer identically; the
    property tests hold them to `classification_of`.
    """

    __slots__ = ()

    @classmethod
    def from_entries(cls, pairs: Iterable[tuple[str, str]]) -> CategoryIndex:
        """An in-memory index of `(entry, category)` pairs; see `ListIndex.from_entries`."""
        return ListIndex.from_entries(pairs)

    @abstractmethod
    def classify(self, host: str, path: str = "/") -> Classification:
        """Classify a request by its normalised host and path (`path?query` lets URL entries
        with a query part match)."""

    @abstractmethod
    def matches(self, host: str, path: str = "/") -> list[Hit]:
        """Every entry that matches the request, in no particular order."""

    @abstractmethod
    def categories_of(self, entry: Entry) -> tuple[str, ...]:
        """The categories the lists give exactly this entry; () when it is on no list."""

    @abstractmethod
    def __len__(self) -> int:
        """The number of distinct entries (a host with a domain and URL entries counts each)."""

    @abstractmethod
    def category_counts(self) -> dict[str, int]:
        """Distinct entries carrying each category, in CATEGORY_IDS order."""


class ListIndex(CategoryIndex):
    """Domain and URL-prefix entries with their categories, in Python dicts.

    Built straight from the lists (`load_lists`) or from pairs (`from_entries`). Fast to query but
    seconds to build and about 100 MiB per process for the shipped lists, which is why the proxy
    uses the compiled index; this one is the reference the compiled index is tested against.
    """

    __slots__ = ("_chains", "_counts", "_nodes")

    def __init__(self, nodes: dict[str, _Node], counts: dict[str, int]) -> None:
        self._nodes = nodes
        self._counts = counts
        # Everything about a request except its path depends only on the most specific host with
        # entries, so that is worked out once per such host and remembered (at most one per entry).
        self._chains: dict[str, _Chain] = {}

    @classmethod
    def from_entries(cls, pairs: Iterable[tuple[str, str]]) -> ListIndex:
        """Build an index from `(entry, category)` pairs, entries in plain-list syntax.

        Raises:
            CategoryError: an entry that cannot be used or a category that is not in CATEGORY_IDS.
        """
        builder = _Builder()
        problems = []
        for number, (text, category) in enumerate(pairs, start=1):
            if category not in CATEGORY_IDS:
                message = f"unknown category '{category}'{_did_you_mean(category, CATEGORY_IDS)}"
                problems.append(Problem("<entries>", number, "category", message))
                continue
            try:
                builder.add(parse_entry(text), category)
            except EntryError as e:
                problems.append(Problem("<entries>", number, "entry", f"cannot use {text!r}: {e}"))
        if problems:
            raise CategoryError(problems)
        return builder.build()

    def __len__(self) -> int:
        """The number of distinct entries (a host with a domain and URL entries counts each)."""
        return sum(
            bool(n) if isinstance(n, tuple) else (n.domain is not None) + len(n.paths)
            for n in self._nodes.values()
        )

    def category_counts(self) -> dict[str, int]:
        """Distinct entries carrying each category, in CATEGORY_IDS order."""
        return dict(self._counts)

    def classify(self, host: str, path: str = "/") -> Classification:
        """Classify a request by its normalised host and path.

        Looks up the host's suffixes (`com`, `example.com`, `b.example.com`...), so label
        boundaries come for free and the longest suffix that is an entry is the most specific
        domain entry. What follows from that host is worked out once and remembered; only URL
        prefixes depend on the path.

        Args:
            host: the canonical host (lower case, no trailing dot), as `normalise_host` gives.
            path: the request path, starting with "/"; append `?query` to let URL entries with a
                query part match.
        """
        # From the top label down: every parent of an entry is a key (with an empty tuple when it
        # is no entry itself), so the first suffix that is not a key ends the search. A host
        # matching nothing usually costs two lookups, however many labels it has.
        nodes = self._nodes
        node: _Node | None = None
        first = ""
        dot = host.rfind(".")
        while True:
            suffix = host[dot + 1 :]
            found = nodes.get(suffix)
            if found is None:
                break
            if found:
                node, first = found, suffix
            if dot < 0:
                break
            dot = host.rfind(".", 0, dot)
        if node is None:
            return _NO_MATCH
        chain = self._chains.get(first)
        if chain is None:
            chain = self._chain(first, node)
        if not chain.url_nodes:
            return chain.domain_result
        return _with_urls(chain, path)

    def categories_of(self, entry: Entry) -> tuple[str, ...]:
        node = self._nodes.get(entry.host)
        if not isinstance(node, _UrlNode):
            return node or () if entry.path is None else ()
        if entry.path is None:
            return node.domain or ()
        i = bisect.bisect_left(node.paths, entry.path)
        return node.categories[i] if i < len(node.paths) and node.paths[i] == entry.path else ()

    def matches(self, host: str, path: str = "/") -> list[Hit]:
        """Every entry on the host's suffixes whose path (if any) is a prefix of `path`."""
        hits: list[Hit] = []
        suffix = host
        while True:
            node = self._nodes.get(suffix)
            if isinstance(node, _UrlNode):
                if node.domain is not None:
                    hits.append(Hit(Entry(suffix), node.domain))
                hits.extend(
                    Hit(Entry(suffix, node.paths[i]), node.categories[i])
                    for i in node.matches(path)
                )
            elif node:
                hits.append(Hit(Entry(suffix), node))
            dot = suffix.find(".")
            if dot < 0:
                return hits
            suffix = suffix[dot + 1 :]

    def _chain(self, first: str, node: _Node | None) -> _Chain:
        """Walk from the most specific host with entries to the top, once, and remember it."""
        domain_win: str | None = None
        winner: tuple[str, ...] = ()
        matched: list[tuple[str, ...]] = []
        url_nodes: list[tuple[str, _UrlNode]] = []
        suffix = first
        while True:
            if isinstance(node, _UrlNode):
                url_nodes.append((suffix, node))
                domain = node.domain
            else:
                domain = node or None  # () marks a parent of entries, not an entry
            if domain is not None:
                matched.append(domain)
                if domain_win is None:
                    domain_win, winner = suffix, domain
            dot = suffix.find(".")
            if dot < 0:
                break
            suffix = suffix[dot + 1 :]
            node = self._nodes.get(suffix)
        chain = _Chain(_classification(domain_win, winner, matched), tuple(url_nodes))
        self._chains[first] = chain
        return chain


class _Chain:
    """What all requests whose most specific host with entries is the same host share."""

    __slots__ = ("domain_result", "url_nodes")

    def __init__(
        self, domain_result: Classification, url_nodes: tuple[tuple[str, _UrlNode], ...]
    ) -> None:
        self.domain_result = domain_result  # the answer when no URL entry matches the path
        self.url_nodes = url_nodes  # hosts on the chain with URL entries, most specific first


def _with_urls(chain: _Chain, path: str) -> Classification:
    """The answer when URL entries are on the chain: any URL match beats every domain match."""
    url_win: str | None = None
    winner: tuple[str, ...] = ()
    matched: list[tuple[str, ...]] = []
    for suffix, node in chain.url_nodes:
        hits = node.matches(path)
        if hits and url_win is None:
            url_win, winner = suffix + node.paths[hits[0]], node.categories[hits[0]]
        matched.extend(node.categories[i] for i in hits)
    if url_win is None:
        return chain.domain_result
    return _classification(url_win, winner, [*matched, chain.domain_result.all_categories])


def _classification(
    matched_entry: str | None, winner: tuple[str, ...], matched: list[tuple[str, ...]]
) -> Classification:
    """The result for a winning entry; interned category tuples make the common case cheap."""
    if matched_entry is None:
        return _NO_MATCH
    if all(m is winner or not m for m in matched):
        return Classification(winner, winner, matched_entry)
    union = tuple(sorted({c for categories in matched for c in categories}))
    return Classification(winner, union, matched_entry)


class _Builder:
    """Accumulates entries; category tuples are interned so 400k entries share a few dozen."""

    def __init__(self) -> None:
        self._domains: dict[str, tuple[str, ...]] = {}
        self._urls: dict[str, dict[str, tuple[str, ...]]] = {}
        self._tuples: dict[tuple[tuple[str, ...], str], tuple[str, ...]] = {}

    def add(self, entry: Entry, category: str) -> None:
        if entry.path is None:
            old = self._domains.get(entry.host, ())
            self._domains[entry.host] = self._with(old, category)
        else:
            paths = self._urls.setdefault(entry.host, {})
            paths[entry.path] = self._with(paths.get(entry.path, ()), category)

    def _with(self, categories: tuple[str, ...], category: str) -> tuple[str, ...]:
        key = (categories, category)
        interned = self._tuples.get(key)
        if interned is None:
            interned = tuple(sorted({*categories, category}))
            # Reuse an equal tuple reached by another route: (a,)+b and (b,)+a are one object.
            for existing in self._tuples.values():
                if existing == interned:
                    interned = existing
                    break
            self._tuples[key] = interned
        return interned

    def build(self) -> ListIndex:
        nodes: dict[str, _Node] = dict(self._domains)
        for host, paths in self._urls.items():
            ordered = sorted(paths)
            categories = tuple(paths[p] for p in ordered)
            nodes[host] = _UrlNode(self._domains.get(host), tuple(ordered), categories)
        for entry in list(nodes):
            _add_parents(nodes, entry)
        return ListIndex(nodes, self._count())

    def _count(self) -> dict[str, int]:
        counts = dict.fromkeys(CATEGORY_IDS, 0)
        for categories in self._domains.values():
            for c in categories:
                counts[c] += 1
        for paths in self._urls.values():
            for categories in paths.values():
                for c in categories:
                    counts[c] += 1
        return counts


def _add_parents(nodes: dict[str, _Node], host: str) -> None:
    """Mark every parent of an entry with (), so `classify` can stop at the first unknown suffix.

    A key already present had its parents marked when it was added (or will have, if an entry).
    """
    dot = host.find(".")
    while dot >= 0:
        host = host[dot + 1 :]
        if host in nodes:
            return
        nodes[host] = ()
        dot = host.find(".")


# --- loading -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceReport:
    """What one source contributed: usable entries, rejected lines and repeated entries.

    `skipped` counts well-formed lines that name no site (adblock cosmetic and exception rules).
    """

    path: str
    category: str
    entries: int
    rejected: int
    duplicates: int
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class LoadReport:
    """Per-source counts and every line that could not be used (as warnings)."""

    sources: tuple[SourceReport, ...]
    problems: tuple[Problem, ...]
    category_counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """A few lines an operator reads at start-up: totals, per-category counts, warnings."""
        entries = sum(s.entries for s in self.sources)
        rejected = sum(s.rejected for s in self.sources)
        duplicates = sum(s.duplicates for s in self.sources)
        skipped = sum(s.skipped for s in self.sources)
        lines = [
            f"{len(self.sources)} category lists: {entries} entries loaded, "
            f"{rejected} lines rejected, {duplicates} duplicates"
            + (f", {skipped} rules naming no site skipped" if skipped else "")
        ]
        if self.category_counts:
            width = max(len(c) for c in self.category_counts)
            for category, count in self.category_counts.items():
                lines.append(f"  {category:<{width}}  {count:>7} distinct entries")
        for s in self.sources:
            if s.rejected:
                lines.append(f"  {s.path}: {s.rejected} lines rejected (see warnings)")
        return "\n".join(lines)


def load_index(sources_file: Path) -> tuple[CategoryIndex, LoadReport]:
    """The index of every list sources.yaml names, and the report of loading them.

    This is the compiled index (`compiled.py`), opened in milliseconds and shared between
    processes; it is compiled first when missing, and rebuilt when a list, sources.yaml or the
    list-reading code changed or the file is corrupt (`indexcache.py`). Lines that cannot be used
    are warnings in the report, as with `load_lists`.

    Raises:
        CategoryError: sources.yaml is invalid, a list cannot be read at all, or no compiled
            index can be written.
    """
    from .indexcache import load_compiled  # here: indexcache builds on this module

    return load_compiled(sources_file)


def load_lists(sources_file: Path) -> tuple[ListIndex, LoadReport]:
    """Read sources.yaml and every list it names into an in-memory `ListIndex`.

    Lines that cannot be used are reported as warnings and the rest is loaded: a list of 200,000
    entries with a few odd lines is still worth using.

    Raises:
        CategoryError: sources.yaml is invalid, or a list cannot be read at all.
    """
    builder = _Builder()
    reports: list[SourceReport] = []
    problems: list[Problem] = []
    for spec in read_sources(sources_file):
        reports.append(_load_source(spec, builder, problems))
    index = builder.build()
    return index, LoadReport(tuple(reports), tuple(problems), index.category_counts())


def _load_source(spec: SourceSpec, builder: _Builder, problems: list[Problem]) -> SourceReport:
    """Feed one source into the builder, counting entries, rejections, skips and repeats."""
    seen: set[Entry] = set()
    entries = rejected = duplicates = skipped = 0
    for file, result in read_entries(spec.path, spec.format):
        if isinstance(result, Rejected):
            rejected += 1
            problems.append(rejection(file, result))
        elif isinstance(result, Skipped):
            skipped += 1
        elif result in seen:
            duplicates += 1
        else:
            seen.add(result)
            entries += 1
            builder.add(result, spec.category)
    return SourceReport(str(spec.path), spec.category, entries, rejected, duplicates, skipped)


def rejection(file: Path, rejected: Rejected) -> Problem:
    """The load-report warning for a line that could not be used, naming file and line."""
    text = f"cannot use {rejected.text!r}: " if rejected.text else ""
    return Problem(str(file), rejected.line, "", f"{text}{rejected.reason}", severity="warning")
