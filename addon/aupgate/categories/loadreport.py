"""What loading the category lists found: entries, rejected lines and repeats per source."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from aupgate.errors import Problem

__all__ = ["LoadReport", "SourceReport"]


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

    def adding(self, problems: Iterable[Problem]) -> LoadReport:
        """The same report with more problems (stale corrections) after the lists' own."""
        extra = tuple(problems)
        return replace(self, problems=self.problems + extra) if extra else self

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
