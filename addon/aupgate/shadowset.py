"""The shadow policy set: a candidate directory the live proxy decides every request under too,
without enforcing it (`aupgate_shadow_policy_dir`, docs/policy-lifecycle.md).

It is loaded and watched like the policies in force (`gateway`), but a broken shadow never stops
or changes anything: a load that fails is reported and the last good shadow stays (none, at
start-up); the category index is always the one in force.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .errors import PolicyError, Problem
from .gateway import content_digest, fingerprint
from .policy.loader import load_policy_dir
from .policy.model import PolicySet

__all__ = ["ShadowLoad", "ShadowSet"]


@dataclass(frozen=True, slots=True)
class ShadowLoad:
    """What one load attempt did (for the log and the audit)."""

    ok: bool
    changed: bool
    digest: str
    problems: tuple[Problem, ...] = ()


class ShadowSet:
    """The shadow policies of one directory, reloaded when its files change."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.policies: PolicySet | None = None
        self.digest = ""
        self._seen: tuple[tuple[str, int, int], ...] = ()
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.yaml"))

    def changed(self) -> bool:
        """Whether the directory's files moved since they were last loaded (cheap: stat)."""
        return fingerprint(self._files()) != self._seen

    def load(self, today: date) -> ShadowLoad:
        """Load (or reload) the directory; on failure the last good shadow stays."""
        with self._lock:
            files = self._files()
            self._seen = fingerprint(files)
            digest = content_digest(files)
            if self.policies is not None and digest == self.digest:
                return ShadowLoad(True, False, digest)
            try:
                policies = load_policy_dir(self.directory, today=today)
            except PolicyError as exc:
                return ShadowLoad(False, False, digest, exc.problems)
            except OSError as exc:
                problem = Problem(str(self.directory), None, "", f"cannot read: {exc}")
                return ShadowLoad(False, False, digest, (problem,))
            self.policies, self.digest = policies, digest
            return ShadowLoad(True, True, digest, policies.warnings)
