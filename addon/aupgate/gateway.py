"""The policies and category index in force, and their hot reload.

A running gateway must pick up an administrator's edit without a restart, and must never let a
broken edit open (or close) the network: a changed file is loaded and validated in full, swapped
in as one reference assignment (a request sees the old set or the new one, never half of each),
and a file that fails keeps the last good set in force while its problems are reported.

Watching is polling: a cheap stat fingerprint (name, size, mtime) of every file involved is
compared on each `check()`; only when it moved is the content hashed, so a `touch` or an editor
rewriting identical bytes does not reload a multi-second category index. Loading is separated
from checking so the adapter can load in a worker thread and keep serving traffic meanwhile.

It reads files (that is its job) but never the clock: today's date is a function passed in.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from .categories.cache import load_index
from .categories.index import CategoryIndex
from .categories.sources import read_sources
from .errors import CategoryError, PolicyError, Problem
from .policy.loader import load_policy_dir
from .policy.model import PolicySet
from .policy.retirement import RETIRED_FILE, removal_problems

Part = Literal["policies", "categories"]
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One consistent pair of policies and category index, with the digests that name them."""

    policies: PolicySet
    index: CategoryIndex
    policy_digest: str
    categories_digest: str


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What one reload attempt did; the adapter logs and audits it."""

    part: Part
    ok: bool
    digest: str
    problems: tuple[Problem, ...] = ()
    entries: int | None = None

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")


def _policy_files(directory: Path) -> list[Path]:
    """The policy files, and `retired.txt` when there is one (adding it retries a reload)."""
    files = sorted(directory.glob("*.yaml"))
    retired = directory / RETIRED_FILE
    if retired.exists():
        files.append(retired)
    return files


def _category_files(sources_file: Path) -> list[Path]:
    """sources.yaml and every file its lists are read from (a UT1 folder's files too)."""
    files = [sources_file]
    try:
        specs = read_sources(sources_file)
    except CategoryError:
        return files  # the load will report it; watching the sources file is enough
    for spec in specs:
        if spec.path.is_dir():
            files += sorted(p for p in spec.path.rglob("*") if p.is_file())
        else:
            files.append(spec.path)
    return files


def fingerprint(files: Iterable[Path]) -> Fingerprint:
    """(path, size, mtime_ns) of each file; a missing file shows as (-1, -1)."""
    out = []
    for path in files:
        try:
            st = path.stat()
            out.append((str(path), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(path), -1, -1))
    return tuple(out)


def content_digest(files: Iterable[Path]) -> str:
    """One sha256 over the names and bytes of the files, in order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0missing\0")
    return digest.hexdigest()


class Gateway:
    """Holds the current `Snapshot` and reloads its parts from disk when their files change.

    `check()` is cheap and safe to call from the event loop; `reload()` may take seconds (the
    shipped category index) and is meant for a worker thread. Only one reload runs at a time.
    """

    def __init__(self, policy_dir: Path, categories: Path, today: Callable[[], date]) -> None:
        self.policy_dir = policy_dir
        self.categories = categories
        self._today = today
        self._lock = threading.Lock()
        self.default_agency: str | None = None  # set by the adapter: its removal is refused too
        self._sources_key: Fingerprint = ()
        self._sources_files: list[Path] = []
        policy_files = _policy_files(policy_dir)
        category_files = self._category_files()
        self._policy_seen = fingerprint(policy_files)
        self._category_seen = fingerprint(category_files)
        policies = load_policy_dir(policy_dir, today=today())  # raises PolicyError
        index, report = load_index(categories)  # raises CategoryError
        self.category_warnings: tuple[Problem, ...] = report.problems
        self._snapshot = Snapshot(
            policies, index, content_digest(policy_files), content_digest(category_files)
        )

    def _category_files(self) -> list[Path]:
        """The category files to watch; sources.yaml is re-read only when it changed itself.

        Parsing sources.yaml on every poll cost more than the rest of the check. The price: a
        file newly added to a UT1 folder is watched only once sources.yaml changes (edits to the
        files already listed are always seen).
        """
        key = fingerprint([self.categories])
        if self._sources_key != key:
            self._sources_key = key
            self._sources_files = _category_files(self.categories)
        return self._sources_files

    @property
    def current(self) -> Snapshot:
        """The snapshot in force; read it once per request and use that object throughout."""
        return self._snapshot

    def check(self) -> list[Part]:
        """The parts whose files changed on disk since they were last seen."""
        changed: list[Part] = []
        if fingerprint(_policy_files(self.policy_dir)) != self._policy_seen:
            changed.append("policies")
        if fingerprint(self._category_files()) != self._category_seen:
            changed.append("categories")
        return changed

    def reload(self, parts: Iterable[Part]) -> list[ReloadOutcome]:
        """Reload the given parts; a part whose content did not change is only re-fingerprinted."""
        with self._lock:
            return [self._reload_one(part) for part in parts]

    def poll(self) -> list[ReloadOutcome]:
        """`check()` then `reload()`: for callers that do not mind blocking."""
        return self.reload(self.check())

    def _reload_one(self, part: Part) -> ReloadOutcome:
        if part == "policies":
            files = _policy_files(self.policy_dir)
            seen = fingerprint(files)
            digest = content_digest(files)
            self._policy_seen = seen
            if digest == self._snapshot.policy_digest:
                return ReloadOutcome(part, True, digest)
            try:
                policies = load_policy_dir(self.policy_dir, today=self._today())
            except PolicyError as exc:
                return ReloadOutcome(part, False, digest, exc.problems)
            old = self._snapshot
            dropped = removal_problems(
                old.policies.policies, policies.policies, retired=policies.retired,
                default_agency=self.default_agency,
                retired_path=str(self.policy_dir / RETIRED_FILE))
            if any(p.severity == "error" for p in dropped):
                return ReloadOutcome(part, False, digest, (*dropped, *policies.warnings))
            self._snapshot = Snapshot(policies, old.index, digest, old.categories_digest)
            return ReloadOutcome(part, True, digest, (*dropped, *policies.warnings))
        files = self._category_files()
        seen = fingerprint(files)
        digest = content_digest(files)
        self._category_seen = seen
        if digest == self._snapshot.categories_digest:
            return ReloadOutcome(part, True, digest)
        try:
            index, report = load_index(self.categories)
        except CategoryError as exc:
            return ReloadOutcome(part, False, digest, exc.problems)
        self.category_warnings = report.problems
        old = self._snapshot
        self._snapshot = Snapshot(old.policies, index, old.policy_digest, digest)
        return ReloadOutcome(part, True, digest, (), len(index))
