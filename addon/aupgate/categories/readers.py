"""Reading category lists: four formats, every unusable line reported, nothing dropped quietly.

Lists come as plain domain lists, hosts files, UT1 folders (`domains` and `urls`) and adblock
syntax, gzipped or not. Each reader yields, per line, an `Entry`, a `Rejected` line (a warning
naming file and line) or a `Skipped` line (well-formed, but naming no whole site), so an
administrator sees where every line went.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple

from aupgate.errors import CategoryError, Problem
from aupgate.files import open_lines

from .entries import Entry, EntryError, entry_host, parse_entry

__all__ = [
    "FORMATS",
    "Format",
    "LineResult",
    "Rejected",
    "Skipped",
    "count_lines",
    "read_entries",
    "read_numbered",
    "rejection",
    "source_files",
    "ut1_files",
]

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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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
    number = 0
    try:
        with open_lines(path) as f:
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
            yield Entry(entry_host(name))
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


def rejection(file: Path, rejected: Rejected) -> Problem:
    """The load-report warning for a line that could not be used, naming file and line."""
    text = f"cannot use {rejected.text!r}: " if rejected.text else ""
    return Problem(str(file), rejected.line, "", f"{text}{rejected.reason}", severity="warning")


def count_lines(file: Path) -> int:
    """Lines in a list file (gzipped or not); a last line without a newline counts."""
    count = 0
    last = b"\n"
    with open_lines(file) as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")
