"""Where the compiled index lives, whether it may be used, and rebuilding it when not.

`load_index(sources.yaml)` gives the index every process uses: digest the sources (every
byte, tens of milliseconds), open the index file and check it (magic, version, size, sha256 of
its body), compare its recorded source digest, and use it only if all agree. A missing, stale or
corrupt index is rebuilt, never trusted: the reason is logged, the new file is written beside it
under a temporary name and renamed into place, so a process that opened the old one keeps a
consistent (old) index and one that opens it now gets the new one. An exclusive lock makes
concurrent starters (one per worker process) compile once and share the result.

The file lives beside sources.yaml (`categories/index.aupidx`, git-ignored), or in
`$AUPGATE_INDEX_DIR` when set (e.g. `/var/cache/aupgate` when the categories folder is read-only
for the proxy user). If the folder beside sources.yaml cannot be written, the user's cache folder
(`$XDG_CACHE_HOME/aupgate` or `~/.cache/aupgate`) is used instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aupgate.errors import CategoryError, Problem

from .compiled import CompiledIndex, IndexFileError
from .compiler import CompileStats, ProgressFn, compile_sources, sources_digest
from .loadreport import LoadReport
from .readers import source_files
from .sources import read_sources

__all__ = [
    "ENV_INDEX_DIR",
    "INDEX_NAME",
    "Freshness",
    "check_index",
    "index_locations",
    "load_index",
    "rebuild",
]

INDEX_NAME = "index.aupidx"
ENV_INDEX_DIR = "AUPGATE_INDEX_DIR"
ISOLATE_BYTES = 4 * 2**20  # lists larger than this are compiled in a child process

logger = logging.getLogger(__name__)

State = Literal["current", "missing", "stale", "corrupt"]


@dataclass(frozen=True, slots=True)
class Freshness:
    """Whether an index file may be used for a sources.yaml, and if not, why."""

    path: Path
    state: State
    reason: str


def index_locations(sources_file: Path) -> list[Path]:
    """Where the index for a sources.yaml may live, in the order they are tried."""
    name = hashlib.sha256(str(sources_file.resolve()).encode()).hexdigest()[:16] + ".aupidx"
    if configured := os.environ.get(ENV_INDEX_DIR):
        return [Path(configured) / name]
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return [sources_file.parent / INDEX_NAME, Path(cache) / "aupgate" / name]


def _open_checked(path: Path, base: Path, digest: str) -> tuple[CompiledIndex | None, Freshness]:
    try:
        index = CompiledIndex.open(path, base)
    except FileNotFoundError:
        return None, Freshness(path, "missing", "no compiled index yet")
    except IndexFileError as e:
        return None, Freshness(path, "corrupt", str(e))
    except OSError as e:
        return None, Freshness(path, "corrupt", f"cannot read: {e}")
    if index.digest != digest:
        return None, Freshness(
            path, "stale", "a source list, sources.yaml or the list code changed"
        )
    return index, Freshness(path, "current", "matches its sources")


def check_index(sources_file: Path, index_file: Path | None = None) -> Freshness:
    """Whether the index for `sources_file` is current, without rebuilding anything.

    Raises:
        CategoryError: sources.yaml is invalid.
    """
    digest = sources_digest(sources_file)
    first: Freshness | None = None
    for path in [index_file] if index_file else index_locations(sources_file):
        index, fresh = _open_checked(path, sources_file.parent, digest)
        if index is not None:
            return fresh
        if first is None or (first.state == "missing" and fresh.state != "missing"):
            first = fresh
    assert first is not None
    return first


def load_index(
    sources_file: Path, *, index_file: Path | None = None, progress: ProgressFn | None = None
) -> tuple[CompiledIndex, LoadReport]:
    """The index of every list sources.yaml names, and the report of loading them.

    This is the compiled index (`compiled.py`), opened in milliseconds and shared between
    processes; it is compiled first when missing, and rebuilt when a list, sources.yaml or the
    list-reading code changed or the file is corrupt. Lines that cannot be used are warnings in
    the report, as with `listindex.load_lists`.

    Raises:
        CategoryError: sources.yaml is invalid, a list cannot be read, or no index can be written.
    """
    specs = read_sources(sources_file)
    digest = sources_digest(sources_file, specs)
    candidates = [index_file] if index_file else index_locations(sources_file)
    reasons: list[Freshness] = []
    for path in candidates:
        index, fresh = _open_checked(path, sources_file.parent, digest)
        if index is not None:
            return index, index.report
        reasons.append(fresh)
    first = reasons[0]
    log = logger.info if first.state == "missing" else logger.warning
    log("category index %s is %s (%s); compiling it", first.path, first.state, first.reason)
    index = rebuild(sources_file, candidates, digest=digest, progress=progress)[0]
    return index, index.report


def rebuild(
    sources_file: Path,
    candidates: list[Path] | None = None,
    *,
    digest: str | None = None,
    progress: ProgressFn | None = None,
    force: bool = False,
    isolate: bool | None = None,
) -> tuple[CompiledIndex, CompileStats | None]:
    """Compile the index into the first location that can be written; stats None if another
    process compiled it meanwhile.

    Args:
        isolate: compile in a child process (None: when the lists exceed `ISOLATE_BYTES`).
            Compiling allocates about 250 bytes of short-lived Python objects per entry, which a
            long-running proxy would keep as heap afterwards (CPython seldom returns it).

    Raises:
        CategoryError: a list cannot be read, or no location can be written.
    """
    if digest is None:
        digest = sources_digest(sources_file)
    if candidates is None:
        candidates = index_locations(sources_file)
    if isolate is None:
        isolate = _source_bytes(sources_file) > ISOLATE_BYTES
    failures: list[str] = []
    for path in candidates:
        try:
            return _build_at(path, sources_file, digest, progress, force=force, isolate=isolate)
        except OSError as e:  # read-only folder, no space: try the next location
            failures.append(f"{path}: {e.strerror or e}")
            logger.warning("cannot write the category index at %s: %s", path, e)
    problems = [
        Problem(str(sources_file), None, "", f"cannot write a compiled index ({f})")
        for f in failures
    ]
    raise CategoryError(problems)


def _build_at(
    path: Path,
    sources_file: Path,
    digest: str,
    progress: ProgressFn | None,
    *,
    force: bool,
    isolate: bool,
) -> tuple[CompiledIndex, CompileStats | None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name(f".{path.name}.lock")):
        if not force:
            # Another worker may have compiled it while this one waited for the lock.
            index, _ = _open_checked(path, sources_file.parent, digest)
            if index is not None:
                return index, None
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            if isolate:
                stats = _compile_in_child(sources_file, temporary, digest)
            else:
                stats = _compile(sources_file, temporary, digest, progress)
            temporary.replace(path)
        finally:
            temporary.unlink(missing_ok=True)
    try:
        return CompiledIndex.open(path, sources_file.parent), stats
    except IndexFileError as e:  # pragma: no cover - what was just written must read back
        raise CategoryError(
            [Problem(str(path), None, "", f"compiled index unreadable: {e}")]
        ) from e


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """An exclusive advisory lock, held while one process compiles; others wait, then reuse."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _compile(
    sources_file: Path, target: Path, digest: str, progress: ProgressFn | None
) -> CompileStats:
    with target.open("wb") as out:
        stats = compile_sources(sources_file, out, digest=digest, progress=progress)
        out.flush()
        os.fsync(out.fileno())
    return stats


def _source_bytes(sources_file: Path) -> int:
    total = 0
    for spec in read_sources(sources_file):
        for file in source_files(spec.path, spec.format):
            with contextlib.suppress(OSError):
                total += file.stat().st_size
    return total


def _compile_in_child(sources_file: Path, target: Path, digest: str) -> CompileStats:
    """Run `python -m aupgate.categories.cache` to compile; its problems come back as JSON.

    If no child can be started (an interpreter that cannot run `-m`, such as a frozen binary),
    compile here after all: a proxy with a larger heap beats a proxy without categories.
    """
    addon = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (addon, os.environ.get("PYTHONPATH", "")) if p)
    module = "aupgate.categories.cache"
    command = [sys.executable, "-m", module, str(sources_file), str(target), digest]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path}
        )
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError) as e:
        logger.warning(
            "cannot compile the category index in a child process (%s); compiling here", e
        )
        return _compile(sources_file, target, digest, None)
    if done.returncode == 0:
        return CompileStats(answer)
    raise CategoryError(Problem(*problem) for problem in answer["problems"])


def main(argv: list[str] | None = None) -> int:
    """The child's side of `_compile_in_child`: SOURCES TARGET DIGEST; prints JSON."""
    sources, target, digest = argv if argv is not None else sys.argv[1:]
    try:
        stats = _compile(Path(sources), Path(target), digest, None)
    except CategoryError as e:
        problems = [[p.file, p.line, p.field, p.message, p.severity] for p in e.problems]
        print(json.dumps({"problems": problems}))
        return 1
    print(json.dumps(dict(stats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
