"""When an agency's decisions next change by themselves: the next window boundary or grant end.

A decision depends on time only through the agency's schedule window and the local date a grant
expires (`engine`). So for an instant the policy gives the next instant at which a decision taken
now may no longer hold: the proxy re-decides what is still open then (long-lived flows, tunnels)
and ends the warn passes given in the window that ended. Pure: the instant is handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal

from .model import Policy

__all__ = ["Boundary", "next_boundary"]


@dataclass(frozen=True, slots=True)
class Boundary:
    """The next instant decisions may change, and why."""

    at: datetime  # aware, in the agency's zone
    before: str  # the window in force until `at`
    after: str  # the window from `at`
    why: Literal["window", "grant"]  # a grant's last day ends (the window may stay the same)


def next_boundary(policy: Policy, now: datetime) -> Boundary | None:
    """The first instant after `now` at which `policy`'s window changes or one of its grants
    ends; None when neither ever happens."""
    schedule = policy.schedule
    local = schedule.local(now)
    found: tuple[datetime, Literal["window", "grant"]] | None = None
    change = schedule.next_change(local)
    if change is not None:
        found = (change, "window")
    today = local.date()
    for grant in policy.grants:
        if grant.expires < today:
            continue  # already over
        ends = datetime.combine(grant.expires + timedelta(days=1), time(0),
                                tzinfo=schedule.timezone)
        if ends > local and (found is None or ends < found[0]):
            found = (ends, "grant")
    if found is None:
        return None
    at, why = found
    if at == change:
        why = "window"
    return Boundary(at, schedule.window_at(local), schedule.window_at(at), why)
