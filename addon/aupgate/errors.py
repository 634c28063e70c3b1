"""One error family for everything an administrator can get wrong.

Every problem names the file, the line and the field, because the person reading it is editing a
YAML file or a domain list and needs to find the spot, not a stack trace.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a policy or category file, located as precisely as we know."""

    file: str
    line: int | None
    field: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        prefix = "" if self.severity == "error" else "warning: "
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {prefix}{self.message}"


class AupgateError(Exception):
    """Base of every error aupgate raises on purpose."""


class UrlError(AupgateError, ValueError):
    """A URL or host name that cannot be normalised (the request gets an answer, not a crash)."""


class ProblemsError(AupgateError):
    """Carries every problem found, so one run shows them all rather than the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")


class PolicyError(ProblemsError):
    """A policy file (or directory of them) that must not be used."""


class CategoryError(ProblemsError):
    """A category source that cannot be read."""


def did_you_mean(name: str, choices: Iterable[str], *, cutoff: float = 0.7) -> str:
    """` (did you mean 'x'?)` for the closest choice, or "": the one spelling of every hint."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return f" (did you mean '{close[0]}'?)" if close else ""
