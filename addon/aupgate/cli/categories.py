"""`aupgate categories import|compile|lookup`: managing category lists from the command line.

Each command parses, calls the library (`importer`, `cache`, the index), prints and returns an
exit code, like the rest of `aupgate`; problems arrive as `CategoryError` and `cli.main` prints
them. Progress is drawn on stderr, and only on a terminal.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aupgate.categories.cache import check_index, index_locations, load_index, rebuild
from aupgate.categories.compiled import CompiledIndex, Origin
from aupgate.categories.corrections import Applied, Correction
from aupgate.categories.entries import Entry, rank
from aupgate.categories.importer import ImportRequest, ListImport, load_mapping, run_import
from aupgate.categories.index import Classification, Hit, classification_of
from aupgate.categories.overrides import CategoryOverrides
from aupgate.categories.readers import FORMATS
from aupgate.errors import CategoryError, Problem, UrlError
from aupgate.hostname import normalise_host
from aupgate.normalise import parse_url

from .common import add_categories_option, categories_path, load_policies, now, unknown_agency
from .progress import Progress

__all__ = ["add_categories_parser", "cmd_compile", "cmd_import", "cmd_lookup"]


def add_categories_parser(subparsers: Any) -> None:
    """Add `categories` with its `import`, `compile` and `lookup` subcommands."""
    parser = subparsers.add_parser("categories", help="import, compile and look up category lists")
    sub = parser.add_subparsers(dest="categories_command", required=True, metavar="ACTION")

    imp = sub.add_parser(
        "import",
        help="add a list (or a UT1 tree) to sources.yaml, with provenance and a report",
        description="Check a list, copy it unchanged into categories/imported/NAME/, name it in "
        "sources.yaml, record its provenance and findings in categories/manifest.yaml, and "
        "recompile the index. Rejected lines, duplicates and conflicts are reported.",
    )
    imp.add_argument("source", type=Path, help="list file, UT1 category folder, or UT1 tree")
    imp.add_argument("--format", required=True, choices=FORMATS, help="the list's format")
    target = imp.add_mutually_exclusive_group(required=True)
    target.add_argument("--as", dest="category", metavar="CATEGORY", help="category it feeds")
    target.add_argument(
        "--mapping",
        metavar="ut1|FILE",
        help="UT1 tree: 'ut1' for the documented mapping, or a YAML file {folder: category}",
    )
    imp.add_argument("--name", help="folder under categories/imported/ (default: from SOURCE)")
    imp.add_argument("--licence", required=True, help="the list's licence, as its authors state it")
    imp.add_argument("--source", dest="origin", help="where it came from (default: SOURCE)")
    imp.add_argument("--snapshot", help="version or date of the list (default: the file's date)")
    imp.add_argument("--replace", action="store_true", help="update an earlier import of NAME")
    imp.add_argument("--dry-run", action="store_true", help="report only; change nothing")
    add_categories_option(imp)
    imp.set_defaults(func=cmd_import)

    comp = sub.add_parser(
        "compile",
        help="compile the lists into the index file the proxy maps (done on first use anyway)",
    )
    comp.add_argument("--output", type=Path, help="index file (default: beside sources.yaml)")
    comp.add_argument("--check", action="store_true", help="only say whether it is current")
    comp.add_argument("--force", action="store_true", help="compile even if it is current")
    add_categories_option(comp)
    comp.set_defaults(func=cmd_compile)

    look = sub.add_parser(
        "lookup",
        help="every list entry and line matching a host or URL, and which one won",
    )
    look.add_argument("target", help="host name or URL")
    look.add_argument("--json", action="store_true", help="print one JSON object")
    look.add_argument("--agency", help="apply this agency's category overrides (its policy)")
    look.add_argument("--policy-dir", type=Path, default=None, help="directory of policies")
    add_categories_option(look)
    look.set_defaults(func=cmd_lookup)


# --------------------------------------------------------------------------- import


def cmd_import(args: argparse.Namespace) -> int:
    sources_file = categories_path(args)
    source: Path = args.source
    request = ImportRequest(
        source=source,
        format=args.format,
        name=args.name or _default_name(source),
        origin=args.origin or str(source.resolve()),
        licence=args.licence,
        snapshot=args.snapshot or _file_date(source),
        category=args.category,
        mapping=load_mapping(args.mapping) if args.mapping else None,
    )
    bar = Progress(f"reading {source.name}")
    lists, unmapped = run_import(
        request,
        sources_file,
        today=now().date(),
        replace=args.replace,
        dry_run=args.dry_run,
        progress=lambda done, label: bar.update(done, f"reading {label}"),
    )
    bar.close()
    for item in lists:
        print(render_import(item))
    if unmapped:
        print(f"not imported (no category in the mapping): {', '.join(unmapped)}")
    if args.dry_run:
        print("dry run: nothing changed")
        return 0
    started = time.perf_counter()
    compiled, _stats = _compile_with_progress(sources_file, None, force=False)
    print(
        f"sources.yaml and {sources_file.parent / 'manifest.yaml'} updated; index "
        f"{compiled.path} compiled in {time.perf_counter() - started:.1f}s "
        f"({len(compiled):,} entries)"
    )
    return 0


def _default_name(source: Path) -> str:
    stem = source.name.removesuffix(".gz")
    stem = stem.rsplit(".", 1)[0] if "." in stem and not source.is_dir() else stem
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._") or "list"


def _file_date(source: Path) -> str:
    """Without --snapshot, the list file's own date is the best evidence of its version."""
    try:
        stamp = datetime.fromtimestamp(source.stat().st_mtime, tz=UTC).date()
    except OSError:
        return "unknown"
    return f"file dated {stamp.isoformat()}"


def render_import(item: ListImport) -> str:
    """What an import found in one list, for the administrator at the terminal."""
    out = [
        f"{item.source} ({item.format}) -> {item.dest} as {item.category}",
        f"  {item.lines:,} lines: {item.entries:,} entries, {item.duplicates:,} duplicates, "
        f"{item.rejected.count:,} rejected, {item.skipped.count:,} skipped",
    ]
    for label, tally in (("rejected", item.rejected), ("skipped", item.skipped)):
        for reason, (count, examples) in sorted(tally.reasons.items(), key=lambda r: -r[1][0]):
            out.append(f"  {label} {count:,}: {reason} (e.g. {examples[0]})")
    if item.overlaps:
        out.append(f"  already {item.category} on other lists: {item.overlaps:,} entries")
    if item.conflicts:
        by = ", ".join(f"{c} {n:,}" for c, n in sorted(item.conflicts_by_category.items()))
        out.append(f"  conflicts: {item.conflicts:,} entries other lists file elsewhere ({by})")
        out.extend(f"    {example}" for example in item.conflict_examples)
    return "\n".join(out)


# --------------------------------------------------------------------------- compile


def _compile_with_progress(
    sources_file: Path, output: Path | None, *, force: bool
) -> tuple[CompiledIndex, Any]:
    bar = Progress("compiling")
    candidates = [output] if output else index_locations(sources_file)
    try:
        index, stats = rebuild(
            sources_file,
            candidates,
            progress=lambda done, label: bar.update(done, f"compiling {label}"),
            force=force,
            isolate=False,  # this process ends soon: no heap to protect, and progress shows
        )
    finally:
        bar.close()
    return index, stats


def cmd_compile(args: argparse.Namespace) -> int:
    sources_file = categories_path(args)
    if args.check:
        fresh = check_index(sources_file, args.output)
        print(f"{fresh.path}: {fresh.state} ({fresh.reason})")
        return 0 if fresh.state == "current" else 1
    started = time.perf_counter()
    index, stats = _compile_with_progress(sources_file, args.output, force=args.force)
    elapsed = time.perf_counter() - started
    if stats is None:
        print(f"{index.path}: current, nothing to do ({len(index):,} entries)")
        return 0
    print(
        f"{index.path}: {len(index):,} entries ({stats['keys']:,} keys) from "
        f"{len(index.sources)} lists, {stats['lines']:,} lines, {stats['rejected']:,} rejected; "
        f"{index.size / 2**20:.1f} MiB, compiled in {elapsed:.1f}s"
    )
    return 0


# --------------------------------------------------------------------------- lookup


def cmd_lookup(args: argparse.Namespace) -> int:
    host, target = _target(args.target)
    index, _ = load_index(categories_path(args))
    listed = index.list_matches(host, target)
    shared, applied = index.corrections.explain(listed, host, target)
    rows: list[Row] = [Row(hit, index.origins(hit.entry), "") for hit in listed]
    corrected = _mark_corrections(rows, shared, applied)
    hits = shared
    overrides, source = _agency_overrides(args)
    if overrides is not None:
        hits = overrides.hits(index, host, target)
        kept = set(hits)
        for row in rows:
            if row.hit in shared and row.hit not in kept:
                row.note = f"taken off by {args.agency}'s categories ({source})"
        rows += [
            Row(hit, [], f"{args.agency}'s categories ({source})")
            for hit in hits
            if hit not in set(shared)
        ]
    rows.sort(key=lambda row: rank(row.hit.entry), reverse=True)
    result = classification_of(hits)
    if overrides is None:
        assert result == index.classify(host, target)  # the index and the definition agree
    kept = set(hits)
    won = next((r for r in rows if str(r.hit.entry) == result.matched and r.hit in kept), None)
    if won is not None:
        won.won = True
    if args.json:
        print(json.dumps(lookup_json(host, target, result, rows, corrected), indent=2))
    else:
        print(render_lookup(host, target, result, rows, corrected))
    return 0


def _mark_corrections(rows: list[Row], shared: list[Hit], applied: list[Applied]) -> list[str]:
    """Note on each list row what a correction took off it, add a row for each entry a
    correction added (`to`), and return one line per correction that changed something."""
    by_entry: dict[Entry, list[Correction]] = {}
    lines = []
    for correction, changed in applied:
        for entry in changed:
            by_entry.setdefault(entry, []).append(correction)
        if changed or correction.target is not None:
            move = f"{correction.source} -> {correction.target or '(removed)'}"
            lines.append(
                f"{correction.scope} {move} ({correction.file}:{correction.line}: "
                f"{correction.reason})"
            )
    for row in rows:
        found = by_entry.get(row.hit.entry, [])
        if found:
            taken = ", ".join(sorted({c.source for c in found}))
            where = ", ".join(f"{c.file}:{c.line}" for c in found)
            row.note = f"corrected: {taken} taken off ({where})"
    listed = {row.hit for row in rows}
    for hit in dict.fromkeys(shared):  # a corrected entry may equal the one a `to` adds
        if hit not in listed:
            c = next(c for c, _ in applied if c.scope == hit.entry and c.target in hit.categories)
            rows.append(Row(hit, [], f"added by a correction ({c.file}:{c.line})"))
    return lines


@dataclass(slots=True)
class Row:
    """One matching entry: the categories it carries, the list lines behind it, and a note
    when an agency's overrides added or removed it."""

    hit: Hit
    origins: list[Origin]
    note: str
    won: bool = False


def _agency_overrides(args: argparse.Namespace) -> tuple[CategoryOverrides | None, str]:
    if not args.agency:
        return None, ""
    policies = load_policies(args, now().date(), warnings=False)
    policy = policies.policies.get(args.agency)
    if policy is None:
        message = unknown_agency(policies, args.agency)
        raise CategoryError([Problem("lookup", None, "agency", message)])
    return policy.overrides, policy.source


def _target(text: str) -> tuple[str, str]:
    try:
        if "/" in text or "://" in text:
            url = parse_url(text if "://" in text else f"http://{text}")
            return url.host, url.target
        return normalise_host(text), "/"
    except UrlError as e:
        raise CategoryError([Problem("lookup", None, "", str(e))]) from e


def render_lookup(
    host: str, target: str, result: Classification, rows: list[Row], corrected: list[str]
) -> str:
    """Every matching entry with the list lines behind it; the winner first, marked; then
    each correction that changed the answer, with its file, line and reason."""
    verdict = ", ".join(result.categories) or "uncategorized"
    lines = [
        f"{host}{target}: {verdict}" + (f" (matched {result.matched})" if result.matched else "")
    ]
    lines += [f"  corrected: {line}" for line in corrected]
    if not rows:
        lines.append("  on no list")
    sources: dict[str, int] = {}
    for row in rows:
        hit, origins = row.hit, row.origins
        mark = "won " if row.won else "    "
        lines.append(f"  {mark}{hit.entry!s:<40} {', '.join(hit.categories)}")
        if row.note:
            lines.append(f"        {row.note}")
        for origin in origins:
            number = sources.setdefault(_provenance(origin), len(sources) + 1)
            where = f"{origin.file}:{origin.line}"
            lines.append(f"        {where:<60} {origin.source.category} [{number}]")
    for text, number in sources.items():
        lines.append(f"  [{number}] {text}")
    return "\n".join(lines)


def _provenance(origin: Origin) -> str:
    s = origin.source
    return f"{s.category}: {s.source}; licence {s.licence}; snapshot {s.snapshot}"


def lookup_json(
    host: str, target: str, result: Classification, rows: list[Row], corrected: list[str]
) -> dict[str, Any]:
    return {
        "host": host,
        "path": target,
        "categories": list(result.categories),
        "all_categories": list(result.all_categories),
        "matched": result.matched,
        "corrections": corrected,
        "hits": [
            {
                "entry": str(row.hit.entry),
                "won": row.won,
                "categories": list(row.hit.categories),
                "note": row.note or None,
                "lines": [
                    {
                        "file": o.file,
                        "line": o.line,
                        "category": o.source.category,
                        "source": o.source.source,
                        "licence": o.source.licence,
                        "snapshot": o.source.snapshot,
                    }
                    for o in row.origins
                ],
            }
            for row in rows
        ],
    }
