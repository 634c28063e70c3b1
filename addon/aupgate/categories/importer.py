"""Importing a category list: check it, copy it in unchanged, name it in sources.yaml, record it.

An agency adds a list (a newer UT1 tree, a hosts file from a vendor, an adblock list) with
`aupgate categories import`. The file is copied byte for byte into `categories/imported/NAME/`
(licences such as CC BY-SA want the original recognisable, and the readers already understand each
format), a `sources.yaml` item names it with its provenance, and `categories/manifest.yaml`
records what the import found: line counts, every reason lines were rejected or skipped (with
examples), duplicates inside the list, entries other lists already had in the same category, and
conflicts: entries other lists file under a different category. Nothing is dropped or merged
quietly; a conflict is not an error (ads.netlog.com is advertising although netlog.com is social
networking), but the administrator sees it before the proxy uses it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from aupgate.errors import CategoryError, Problem
from aupgate.yamlsource import line_of, load_yaml, plain

from .cache import load_index
from .compiled import CompiledIndex
from .entries import Entry
from .ids import CATEGORY_IDS, category_problem
from .readers import Format, Rejected, Skipped, count_lines, read_numbered, source_files, ut1_files
from .sources import edit_sources, read_sources
from .ut1 import UT1_MAP

__all__ = [
    "IMPORT_DIR",
    "MANIFEST_NAME",
    "ImportRequest",
    "ListImport",
    "load_mapping",
    "plan_import",
    "run_import",
]

IMPORT_DIR = "imported"
MANIFEST_NAME = "manifest.yaml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_QUOTED = re.compile(r"'[^']*'")
_EXAMPLES = 5
_MANIFEST_HEADER = """\
# Provenance of every list imported with `aupgate categories import` (written by it).
# Per list: where it came from, its licence and snapshot, and what the import found in it.
"""

LineProgress = Callable[[int, str], None]


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """What the administrator asked for; see `aupgate categories import --help`."""

    source: Path
    format: Format
    name: str
    origin: str  # where the list came from, for provenance
    licence: str
    snapshot: str
    category: str | None = None  # --as
    mapping: dict[str, str] | None = None  # UT1 folder -> category, for a whole UT1 tree


@dataclass(slots=True)
class Tally:
    """Lines of one kind (rejected, skipped) by generalised reason, with a few examples."""

    count: int = 0
    reasons: dict[str, list[Any]] = field(default_factory=dict)  # reason -> [count, examples]

    def add(self, reason: str, file: str, line: int, text: str) -> None:
        self.count += 1
        slot = self.reasons.setdefault(_QUOTED.sub("'…'", reason), [0, []])
        slot[0] += 1
        if len(slot[1]) < _EXAMPLES:
            slot[1].append(f"{file}:{line}: {text}" if text else f"{file}:{line}")

    def as_yaml(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "reasons": {r: {"count": n, "examples": ex} for r, (n, ex) in self.reasons.items()},
        }


@dataclass(slots=True)
class ListImport:
    """One list of an import: where it goes, what it feeds, what reading it found."""

    source: Path
    format: Format
    category: str
    dest: str  # path relative to the categories folder, as sources.yaml names it
    lines: int = 0
    entries: int = 0
    duplicates: int = 0
    rejected: Tally = field(default_factory=Tally)
    skipped: Tally = field(default_factory=Tally)
    overlaps: int = 0  # entries other lists already give the same category
    conflicts: int = 0  # entries other lists file under at least one other category
    conflicts_by_category: dict[str, int] = field(default_factory=dict)
    conflict_examples: list[str] = field(default_factory=list)
    sha256: str = ""


def load_mapping(spec: str) -> dict[str, str]:
    """`--mapping`: `ut1` for the documented UT1 mapping, else a YAML file `{folder: category}`.

    Raises:
        CategoryError: the file cannot be read or maps to an unknown category.
    """
    if spec == "ut1":
        return dict(UT1_MAP)
    raw = load_yaml(Path(spec), error=CategoryError, text=True)
    if not isinstance(raw, dict) or not raw:
        message = "expected a mapping of list folder names to category ids"
        raise CategoryError([Problem(spec, None, "", message)])
    problems = [
        Problem(spec, line_of(raw, folder), str(folder), message)
        for folder, category in raw.items()
        if (message := category_problem(str(category)))
    ]
    if problems:
        raise CategoryError(problems)
    return {str(k): str(v) for k, v in raw.items()}


def plan_import(request: ImportRequest, sources_file: Path) -> tuple[list[ListImport], list[str]]:
    """The lists an import would add, and the folders of a UT1 tree no mapping covers.

    Raises:
        CategoryError: the request cannot be carried out (unknown category, missing source,
            a name already imported, a folder that is not UT1).
    """
    where = str(request.source)
    problems: list[Problem] = []
    if not _NAME.match(request.name):
        problems.append(Problem(where, None, "name", f"'{request.name}' is not [a-z0-9._-]+"))
    if not request.source.exists():
        problems.append(Problem(where, None, "", "no such file or folder"))
    if problems:
        raise CategoryError(problems)
    base = f"{IMPORT_DIR}/{request.name}"
    unmapped: list[str] = []
    if request.mapping is not None:
        if request.format != "ut1" or not request.source.is_dir():
            message = "--mapping needs a UT1 tree: a folder of category folders, --format ut1"
            raise CategoryError([Problem(where, None, "", message)])
        lists = []
        for folder in sorted(p for p in request.source.iterdir() if p.is_dir()):
            if not ut1_files(folder):
                continue
            category = request.mapping.get(folder.name)
            if category is None:
                unmapped.append(folder.name)
            else:
                lists.append(ListImport(folder, "ut1", category, f"{base}/{folder.name}"))
        if not lists:
            raise CategoryError([Problem(where, None, "", "no mapped UT1 folder in this tree")])
    else:
        if request.category is None:
            raise CategoryError([Problem(where, None, "", "say --as CATEGORY or --mapping")])
        if message := category_problem(request.category):
            raise CategoryError([Problem(where, None, "as", message)])
        if request.format == "ut1":
            if not request.source.is_dir() or not ut1_files(request.source):
                message = "a UT1 list is a folder holding domains and/or urls (optionally .gz)"
                raise CategoryError([Problem(where, None, "", message)])
            dest = base
        elif request.source.is_dir():
            raise CategoryError([Problem(where, None, "", "a folder; use --format ut1")])
        else:
            dest = f"{base}/{request.source.name}"
        lists = [ListImport(request.source, request.format, request.category, dest)]
    return lists, unmapped


def analyse(
    item: ListImport,
    index: CompiledIndex | None,
    *,
    own_files: Iterable[str] = (),
    progress: LineProgress | None = None,
) -> None:
    """Read one list and fill in its counts, reasons, overlaps and conflicts.

    `own_files` are the list files of an earlier import being replaced: entries they gave are
    not counted as overlaps or conflicts with themselves.
    """
    own = set(own_files)
    bit_names = set(CATEGORY_IDS)
    seen: set[Entry] = set()
    files = source_files(item.source, item.format)
    item.lines = sum(count_lines(f) for f in files)
    item.sha256 = _digest(files)
    done = 0
    for file, number, result in read_numbered(item.source, item.format):
        if progress is not None and number - done >= 4096:
            done = number
            progress(number, file.name)
        if isinstance(result, Rejected):
            item.rejected.add(result.reason, file.name, number, result.text)
        elif isinstance(result, Skipped):
            item.skipped.add(result.reason, file.name, number, result.text)
        elif result in seen:
            item.duplicates += 1
        else:
            seen.add(result)
            item.entries += 1
            if index is not None:
                _compare(item, index, result, own, bit_names)


def _compare(
    item: ListImport, index: CompiledIndex, entry: Entry, own: set[str], known: set[str]
) -> None:
    """Count an entry other lists already carry: same category (overlap) or others (conflict)."""
    categories = index.categories_of(entry)
    if not categories:
        return
    if own:
        categories = tuple(
            sorted({o.source.category for o in index.origins(entry) if o.file not in own})
        )
    others = [c for c in categories if c != item.category and c in known]
    if item.category in categories:
        item.overlaps += 1
    if others:
        item.conflicts += 1
        for c in others:
            item.conflicts_by_category[c] = item.conflicts_by_category.get(c, 0) + 1
        if len(item.conflict_examples) < _EXAMPLES:
            item.conflict_examples.append(f"{entry}: also {', '.join(others)}")


def _digest(files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()


def run_import(
    request: ImportRequest,
    sources_file: Path,
    *,
    today: date,
    replace: bool = False,
    dry_run: bool = False,
    index: CompiledIndex | None = None,
    progress: LineProgress | None = None,
) -> tuple[list[ListImport], list[str]]:
    """Plan, analyse and (unless `dry_run`) carry out an import; returns what was found.

    Overlaps and conflicts are looked up in `index` (default: the current compiled index).

    Raises:
        CategoryError: the import cannot be carried out; nothing has been changed then.
    """
    lists, unmapped = plan_import(request, sources_file)
    folder = sources_file.parent
    listed = {
        str(spec.path.relative_to(folder))
        for spec in read_sources(sources_file)
        if spec.path.is_relative_to(folder)
    }
    clashes = [item.dest for item in lists if item.dest in listed]
    if clashes and not replace:
        message = f"already imported as {', '.join(clashes)} (use --replace to update it)"
        raise CategoryError([Problem(str(sources_file), None, "", message)])
    if index is None:
        index = load_index(sources_file)[0]
    for item in lists:
        own = [str(f) for f in source_files(folder / item.dest, item.format)] if replace else []
        analyse(item, index, own_files=own, progress=progress)
    if dry_run:
        return lists, unmapped
    for item in lists:
        _copy(item, folder)
    _edit_sources(sources_file, lists, request)
    _write_manifest(folder / MANIFEST_NAME, lists, request, today)
    return lists, unmapped


def _copy(item: ListImport, folder: Path) -> None:
    """Copy the list's files unchanged; a replaced UT1 folder loses files the new one lacks."""
    target = folder / item.dest
    if item.format == "ut1":
        target.mkdir(parents=True, exist_ok=True)
        for old in ut1_files(target):
            old[0].unlink()
        for file, _ in ut1_files(item.source):
            shutil.copyfile(file, target / file.name)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.source, target)


def _edit_sources(sources_file: Path, lists: list[ListImport], request: ImportRequest) -> None:
    """Name the new lists in sources.yaml (replacing items with the same path)."""
    edit_sources(
        sources_file,
        [
            {
                "path": item.dest,
                "format": item.format,
                "category": item.category,
                "source": request.origin,
                "licence": request.licence,
                "snapshot": request.snapshot,
            }
            for item in lists
        ],
    )


def _write_manifest(
    manifest: Path, lists: list[ListImport], request: ImportRequest, today: date
) -> None:
    """Record each list's provenance and findings, replacing earlier records of the same path."""
    records: list[dict[str, Any]] = []
    if manifest.exists():
        loaded = plain(load_yaml(manifest, error=CategoryError)) or {}
        records = list(loaded.get("imports", [])) if isinstance(loaded, dict) else []
    dests = {item.dest for item in lists}
    records = [r for r in records if r.get("path") not in dests]
    for item in lists:
        records.append(
            {
                "name": request.name,
                "path": item.dest,
                "format": item.format,
                "category": item.category,
                "imported_from": str(request.source if request.mapping is None else item.source),
                "source": request.origin,
                "licence": request.licence,
                "snapshot": request.snapshot,
                "imported": today.isoformat(),
                "sha256": item.sha256,
                "lines": item.lines,
                "entries": item.entries,
                "duplicates": item.duplicates,
                "rejected": item.rejected.as_yaml(),
                "skipped": item.skipped.as_yaml(),
                "already_listed_in_same_category": item.overlaps,
                "conflicts": {
                    "entries": item.conflicts,
                    "by_category": dict(sorted(item.conflicts_by_category.items())),
                    "examples": item.conflict_examples,
                },
            }
        )
    body = yaml.safe_dump({"imports": records}, sort_keys=False, allow_unicode=True, width=200)
    manifest.write_text(_MANIFEST_HEADER + body, encoding="utf-8")
