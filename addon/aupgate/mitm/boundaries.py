"""When each agency's window next ends: one timer per agency, not per flow.

At a boundary (lunch ends, the working day starts, a grant's last day is over) a decision taken
before it may no longer hold. Requests that come after are decided at their own time anyway;
what is still open (a WebSocket, a streaming response, a passed-through tunnel) is not, so the
addon re-decides it then (`reassess`). The core says when the next boundary is
(`policy.boundaries.next_boundary`, pure); this module keeps one asyncio timer per agency for
it and calls back when the policy clock reaches it.

The timer sleeps at most `MAX_SLEEP` seconds at a time and looks at the clock again: the wall
clock may be stepped (NTP, a suspended VM) while a timer sleeps on the loop's monotonic clock, so
a boundary hours away is never trusted to a single sleep. A clock frozen by `aupgate_fixed_time`
never reaches a boundary: no timer is armed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from ..policy.boundaries import Boundary, next_boundary
from ..policy.model import Policy
from .passes import WindowEnd

__all__ = ["MAX_SLEEP", "BoundaryWatch", "window_tag"]

logger = logging.getLogger(__name__)

MAX_SLEEP = 60.0
"""Longest single sleep before looking at the clock again (seconds)."""
LATE = 0.02
"""Seconds slept past a boundary, so the clock has certainly reached it when the timer fires."""

OnBoundary = Callable[[Policy, Boundary], None]


def window_tag(agency: str, boundary: Boundary) -> str:
    """The tag of the passes that end at this boundary of this agency (`passes.WindowEnd`)."""
    return f"{agency} {boundary.at.isoformat()}"


class BoundaryWatch:
    """Arms one timer per agency for its next boundary and calls `on_boundary` there."""

    def __init__(self, now: Callable[[], datetime], on_boundary: OnBoundary) -> None:
        self._now = now
        self._on_boundary = on_boundary
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next: dict[str, tuple[Policy, Boundary]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._frozen = False

    def next_for(self, agency: str) -> Boundary | None:
        """The boundary the watch waits for in `agency` (None: none ahead, or not armed)."""
        found = self._next.get(agency)
        return found[1] if found is not None else None

    def window_end(self, policy: Policy | None) -> WindowEnd | None:
        """When the window now in force in `policy` ends, for a pass given now (None: never, or
        the clock is frozen)."""
        if policy is None or self._frozen:
            return None
        now = self._now()
        boundary = next_boundary(policy, now)
        if boundary is None:
            return None
        left = (boundary.at - policy.schedule.local(now)).total_seconds()
        return WindowEnd(time.monotonic() + left, window_tag(policy.agency, boundary),
                         boundary.at.isoformat())

    def arm(self, loop: asyncio.AbstractEventLoop, policies: Mapping[str, Policy], *,
            frozen: bool = False) -> None:
        """(Re)arm a timer for each agency's next boundary: at start and after every reload.
        A `frozen` clock never reaches one."""
        self.stop()
        self._loop = loop
        self._frozen = frozen
        if frozen:
            return
        now = self._now()
        for agency, policy in policies.items():
            boundary = next_boundary(policy, now)
            if boundary is not None:
                self._next[agency] = (policy, boundary)
                self._sleep(agency)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._next.clear()

    def _sleep(self, agency: str) -> None:
        assert self._loop is not None
        policy, boundary = self._next[agency]
        left = (boundary.at - policy.schedule.local(self._now())).total_seconds()
        self._timers[agency] = self._loop.call_later(
            min(MAX_SLEEP, max(0.0, left) + LATE), self._wake, agency)

    def _wake(self, agency: str) -> None:
        found = self._next.get(agency)
        if found is None:
            return
        policy, boundary = found
        now = policy.schedule.local(self._now())
        if now < boundary.at:
            self._sleep(agency)  # not yet (a long wait is taken in steps)
            return
        try:
            self._on_boundary(policy, boundary)
        except Exception:  # the next boundary must still be watched
            logger.exception("aupgate: enforcing the %s boundary of %s failed",
                             boundary.at.isoformat(), agency)
        following = next_boundary(policy, max(now, boundary.at))
        if following is None:
            del self._next[agency]
            self._timers.pop(agency, None)
            return
        self._next[agency] = (policy, following)
        self._sleep(agency)
