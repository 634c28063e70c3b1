"""Where the compiled index lives, whether it may be used, and rebuilding it when not.

`load_index(sources.yaml)` gives the index every process uses: digest the sources (every
byte, tens of milliseconds), read the index file and check it (magic, version, size, sha256 of
its body), compare its recorded source digest, and use it only if all agree. A missing, stale or
corrupt index is rebuilt, never trusted: the reason is logged, the new file is written beside it
under a temporary name, flushed and renamed into place, so a process that read the old one keeps
a consistent (old) index and one that reads it now gets the new one. An exclusive lock makes
concurrent starters (one per worker process) compile once and share the result.

A process keeps its own verified copy of what it read (`indexfile`), so a file changed under it
does no harm; `reopen_index` is what the gateway calls when it notices the file in use was
replaced: a good replacement is used, anything else is rebuilt from the lists.

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
from .corrections import stale_problems
from .indexfile import IndexVersionError
from .loadreport import LoadReport
from .readers import source_files
from .sources import read_source_config, read_sources

__all__ = [
    "ENV_INDEX_DIR",
    "INDEX_NAME",
    "Freshness",
    "check_index",
    "index_locations",
    "load_index",
    "rebuild",
    "reopen_index",
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
    except IndexVersionError as e:
        return None, Freshness(path, "stale", f"written by another aupgate version: {e}")
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

    The report's warnings also name every stale correction (one that no longer changes
    anything: the lists changed, so it should go).

    Raises:
        CategoryError: sources.yaml or the corrections file is invalid, a list cannot be read, or
            no index can be written.
    """
    digest = sources_digest(sources_file, read_source_config(sources_file))
    candidates = [index_file] if index_file else index_locations(sources_file)
    reasons: list[Freshness] = []
    for path in candidates:
        index, fresh = _open_checked(path, sources_file.parent, digest)
        if index is not None:
            return index, _report(index)
        reasons.append(fresh)
    first = reasons[0]
    log = {"missing": logger.info, "stale": logger.warning}.get(first.state, logger.error)
    log("category index %s is %s (%s); compiling it", first.path, first.state, first.reason)
    index = rebuild(sources_file, candidates, digest=digest, progress=progress)[0]
    return index, _report(index)


def _report(index: CompiledIndex) -> LoadReport:
    return index.report.adding(stale_problems(index))


@dataclass(frozen=True, slots=True)
class Reopened:
    """What the index file in use turned out to be, and the index to use from now on."""

    index: CompiledIndex  # the file's index when it is good, else one rebuilt from the lists
    found: Freshness  # what the file at the path was: current, missing, stale or corrupt
    rebuilt: bool


def reopen_index(sources_file: Path, in_force: CompiledIndex) -> Reopened:
    """The file of the index in force was replaced or changed: what it is now, and what to use.

    A file that is current for the lists sources.yaml names (a good replacement: an index
    compiled by hand, another worker's rebuild) is read, verified and used. A file that is
    missing, corrupt, or compiled from other lists (another index copied over it) is never
    used: the index is rebuilt from the lists, written aside and renamed into place. The caller
    keeps the index in force until this returns, and keeps it if this raises.

    Raises:
        CategoryError: sources.yaml or a list is unreadable, or no index can be written.
    """
    digest = sources_digest(sources_file, read_source_config(sources_file))
    index, found = _open_checked(in_force.path, sources_file.parent, digest)
    if index is not None:
        return Reopened(index, found, rebuilt=False)
    others = [p for p in index_locations(sources_file) if p != in_force.path]
    rebuilt = rebuild(sources_file, [in_force.path, *others], digest=digest)[0]
    return Reopened(rebuilt, found, rebuilt=True)


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
            _sync_folder(path.parent)
        finally:
            temporary.unlink(missing_ok=True)
    index, fresh = _open_checked(path, sources_file.parent, digest)
    if index is None:  # replaced again between the rename and this read: never trust that
        message = f"compiled index replaced before it could be read back: {fresh.reason}"
        raise CategoryError([Problem(str(path), None, "", message)])
    return index, stats


def _sync_folder(folder: Path) -> None:
    """Make the rename durable: after a crash the folder names the new file or the old one."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename itself is still atomic
    finally:
        os.close(fd)


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
