"""The policies and category index in force, and their hot reload.

A running gateway must pick up an administrator's edit without a restart, and must never let a
broken edit open (or close) the network: a changed file is loaded and validated in full, swapped
in as one reference assignment (a request sees the old set or the new one, never half of each),
and a file that fails keeps the last good set in force while its problems are reported.

Watching is polling: a cheap stat fingerprint (name, size, mtime) of every file involved is
compared on each `check()`; only when it moved is the content hashed, so a `touch` or an editor
rewriting identical bytes does not reload a multi-second category index. Loading is separated
from checking so the adapter can load in a worker thread and keep serving traffic meanwhile.

The compiled category index file is watched too. The process answers from its own verified copy
of it, so a file truncated, overwritten or replaced under it changes nothing by itself; but a
replacement is noticed (the identity of the file at the path: device, inode, size, times) and
judged: a good one (compiled from these lists, verified) is swapped in like any reload; a bad
one (damaged, or compiled from other lists) is refused loudly, the index in force stays, and the
file is rebuilt from the lists.

It reads files (that is its job) but never the clock: today's date is a function passed in.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from .categories.cache import Freshness, load_index, reopen_index
from .categories.compiled import CompiledIndex
from .categories.index import CategoryIndex
from .categories.indexfile import FileIdentity, file_identity
from .categories.sources import read_source_config
from .errors import CategoryError, PolicyError, Problem
from .policy.loader import load_policy_dir
from .policy.model import PolicySet
from .policy.retirement import RETIRED_FILE, removal_problems

Part = Literal["policies", "categories"]
Fingerprint = tuple[tuple[str, int, int], ...]
Vet = Callable[[PolicySet], Sequence[Problem]]
"""The edge's last word on a policy set before it is put in force (an error refuses it)."""


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
    """sources.yaml, every file its lists are read from (a UT1 folder's files too), and the
    corrections file."""
    files = [sources_file]
    try:
        config = read_source_config(sources_file)
    except CategoryError:
        return files  # the load will report it; watching the sources file is enough
    for spec in config.specs:
        if spec.path.is_dir():
            files += sorted(p for p in spec.path.rglob("*") if p.is_file())
        else:
            files.append(spec.path)
    if config.corrections is not None:
        files.append(config.corrections)
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

    def __init__(self, policy_dir: Path, categories: Path, today: Callable[[], date],
                 vet: Vet | None = None) -> None:
        self.policy_dir = policy_dir
        self.categories = categories
        self._today = today
        self._vet = vet
        self._lock = threading.Lock()
        self.default_agency: str | None = None  # set by the adapter: its removal is refused too
        self._sources_key: Fingerprint = ()
        self._sources_files: list[Path] = []
        policy_files = _policy_files(policy_dir)
        category_files = self._category_files()
        self._policy_seen = fingerprint(policy_files)
        self._category_seen = fingerprint(category_files)
        policies = self._load_policies()  # raises PolicyError
        index, report = load_index(categories)  # raises CategoryError
        self.category_warnings: tuple[Problem, ...] = report.problems
        self._index = index  # the compiled index in force, and the file it was read from
        self._index_seen: FileIdentity | None = index.identity
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

    def _load_policies(self) -> PolicySet:
        """The policy directory, loaded and then vetted by the edge that will serve it (which
        may refuse it, e.g. a directory password file it cannot read): PolicyError either way."""
        policies = load_policy_dir(self.policy_dir, today=self._today())
        problems = list(self._vet(policies)) if self._vet is not None else []
        if any(p.severity == "error" for p in problems):
            raise PolicyError(problems)
        return policies

    @property
    def current(self) -> Snapshot:
        """The snapshot in force; read it once per request and use that object throughout."""
        return self._snapshot

    def check(self) -> list[Part]:
        """The parts whose files changed on disk since they were last seen."""
        changed: list[Part] = []
        if fingerprint(_policy_files(self.policy_dir)) != self._policy_seen:
            changed.append("policies")
        if (
            fingerprint(self._category_files()) != self._category_seen
            or file_identity(self._index.path) != self._index_seen
        ):
            changed.append("categories")
        return changed

    def reload(self, parts: Iterable[Part]) -> list[ReloadOutcome]:
        """Reload the given parts; a part whose content did not change is only re-fingerprinted.

        Usually one outcome per part; a category index file found bad gives a failure (the
        index in force stays) and then, once rebuilt from the lists, a success.
        """
        with self._lock:
            return [outcome for part in parts for outcome in self._reload_one(part)]

    def poll(self) -> list[ReloadOutcome]:
        """`check()` then `reload()`: for callers that do not mind blocking."""
        return self.reload(self.check())

    def _reload_one(self, part: Part) -> list[ReloadOutcome]:
        if part == "policies":
            return [self._reload_policies()]
        files = self._category_files()
        seen = fingerprint(files)
        digest = content_digest(files)
        self._category_seen = seen
        if digest != self._snapshot.categories_digest:
            return [self._reload_categories(digest)]
        if file_identity(self._index.path) != self._index_seen:
            return self._reopen_index(digest)
        return [ReloadOutcome(part, True, digest)]

    def _reload_policies(self) -> ReloadOutcome:
        files = _policy_files(self.policy_dir)
        seen = fingerprint(files)
        digest = content_digest(files)
        self._policy_seen = seen
        if digest == self._snapshot.policy_digest:
            return ReloadOutcome("policies", True, digest)
        try:
            policies = self._load_policies()
        except PolicyError as exc:
            return ReloadOutcome("policies", False, digest, exc.problems)
        old = self._snapshot
        dropped = removal_problems(
            old.policies.policies, policies.policies, retired=policies.retired,
            default_agency=self.default_agency,
            retired_path=str(self.policy_dir / RETIRED_FILE))
        if any(p.severity == "error" for p in dropped):
            return ReloadOutcome("policies", False, digest, (*dropped, *policies.warnings))
        self._snapshot = Snapshot(policies, old.index, digest, old.categories_digest)
        return ReloadOutcome("policies", True, digest, (*dropped, *policies.warnings))

    def _reload_categories(self, digest: str) -> ReloadOutcome:
        """The lists changed: load them (an index file found bad on the way is rebuilt)."""
        try:
            index, report = load_index(self.categories)
        except CategoryError as exc:
            return ReloadOutcome("categories", False, digest, exc.problems)
        self.category_warnings = report.problems
        self._swap(index, digest)
        return ReloadOutcome("categories", True, digest, (), len(index))

    def _swap(self, index: CompiledIndex, digest: str) -> None:
        self._index, self._index_seen = index, index.identity
        old = self._snapshot
        self._snapshot = Snapshot(old.policies, index, old.policy_digest, digest)

    def _reopen_index(self, digest: str) -> list[ReloadOutcome]:
        """The index file in use was replaced or changed on disk, the lists were not: judge it.

        A good file with the same content is adopted silently (another worker rebuilt it); a
        good file with other content is swapped in; a bad one is refused, loudly, and rebuilt.
        """
        in_force = self._index
        path = in_force.path
        try:
            reopened = reopen_index(self.categories, in_force)
        except CategoryError as exc:
            self._index_seen = file_identity(path)  # complain again when it changes again
            message = (
                "the category index file in use changed on disk and could not be checked or "
                "rebuilt; the index in force stays"
            )
            found = Problem(str(path), None, "", message)
            return [ReloadOutcome("categories", False, digest, (found, *exc.problems))]
        outcomes = []
        if reopened.found.state not in ("current", "missing"):
            message = _REFUSED.format(what=_what_was_found(reopened.found))
            outcomes.append(
                ReloadOutcome("categories", False, digest, (Problem(str(path), None, "", message),))
            )
        index = reopened.index
        self._index_seen = index.identity
        if reopened.rebuilt or index.checksum != in_force.checksum:
            warnings: tuple[Problem, ...] = ()
            if reopened.found.state == "missing":
                note = "the category index file was deleted; it was rebuilt from the lists"
                warnings = (Problem(str(path), None, "", note, "warning"),)
            if index.checksum != in_force.checksum:
                self._swap(index, digest)
            outcomes.append(ReloadOutcome("categories", True, digest, warnings, len(index)))
        return outcomes


_REFUSED = (
    "the category index file in use was {what}; it was NOT used: the index in force stays, "
    "and the file is rebuilt from the lists"
)


def _what_was_found(found: Freshness) -> str:
    if found.state == "stale":
        return "replaced by an index compiled from other lists than sources.yaml names"
    return f"damaged or replaced ({found.reason})"
