"""Retiring an agency on purpose, and refusing a reload that loses one by accident.

A reload swaps in whatever set of policy files validates. Deleting (or renaming) an agency's
file used to validate too: the agency vanished from the running gateway, its clients fell to the
default agency or were refused, and deleting the default agency's file refused every client
outside the agencies' networks (issue 12, item 10). So a reload that would drop an agency in force
is refused, like a reload with an error, and the last good set stays, unless the administrator
listed that agency in `retired.txt` in the policy directory: the explicit "yes, stop enforcing
it" (docs/operations.md, "Removing an agency").

Why a file and not an option: the policy directory is what administrators already edit and
deploy (rsync from a checked staging copy), every worker and every gateway box reads the same
one, and it takes effect at the next reload; an option would need a restart of every box.

"In use" is every agency in force: a gateway cannot know that no client of an agency will come
back, and each worker must reach the same verdict (one that had seen no client of the agency
recently would accept what another refused). Pure: text and policy sets in, problems out.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import Problem
from .model import ID, Policy

__all__ = ["RETIRED_FILE", "parse_retired", "removal_problems"]

RETIRED_FILE = "retired.txt"
"""In the policy directory: one agency id per line that a reload may drop; `#` starts a comment."""


def parse_retired(text: str, file: str) -> tuple[frozenset[str], list[Problem]]:
    """The agency ids listed, and a located problem for every line that is not one."""
    ids: set[str] = set()
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not ID.match(line) or len(line.split()) != 1:
            problems.append(Problem(file, number, "agency",
                                    f"'{line}' is not an agency id ([a-z0-9-]+, one per line)"))
            continue
        ids.add(line)
    return frozenset(ids), problems


def removal_problems(
    old: Mapping[str, Policy],
    new: Mapping[str, Policy],
    *,
    retired: frozenset[str],
    default_agency: str | None,
    retired_path: str,
) -> list[Problem]:
    """What dropping agencies from `old` to `new` means: an error for each agency in force that
    is gone and not retired; a warning for a retired default agency that is gone."""
    problems: list[Problem] = []
    for agency in sorted(set(old) - set(new)):
        file = old[agency].source or agency
        is_default = agency == default_agency
        if agency in retired:
            if is_default:
                problems.append(Problem(
                    file, None, "agency",
                    f"the default agency '{agency}' is retired ({retired_path}) and no longer "
                    f"enforced: clients outside every agency's networks are refused",
                    "warning"))
            continue
        consequence = (
            "it is the default agency: every client outside the agencies' networks would be "
            "refused" if is_default else
            "its clients would fall to the default agency or be refused")
        problems.append(Problem(
            file, None, "agency",
            f"agency '{agency}' is in force and its policy is gone (file deleted or renamed, or "
            f"its id changed); {consequence}. Reload refused, the last good policies stay in "
            f"force. To stop enforcing it on purpose, list '{agency}' in {retired_path}"))
    return problems
