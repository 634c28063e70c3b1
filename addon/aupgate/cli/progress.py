"""A one-line progress display for long imports and compiles, shown only to a person.

Importing a 4.6-million-line UT1 list or compiling five million entries takes tens of seconds; an
administrator at a terminal should see that something is happening. A log file, a pipe or CI must
not fill with carriage returns, so nothing is drawn unless the stream is a terminal.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

_WIDTH = 30
_INTERVAL = 0.1


class Progress:
    """Draws `label [#####.....] 45% 1,234,567 lines` on one line, at most ten times a second.

    With no `total`, shows the count alone. Disabled (every call a no-op) unless `stream` is a
    terminal or `enabled` says otherwise (tests).
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "lines",
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.total = total
        self.unit = unit
        self._last = 0.0
        self._drawn = False

    def update(self, done: int, label: str | None = None) -> None:
        """Report `done` units so far; redraws only if a tenth of a second has passed."""
        if not self.enabled:
            return
        if label is not None:
            self.label = label
        now = time.monotonic()
        if self._drawn and now - self._last < _INTERVAL:
            return
        self._last = now
        self._draw(done)

    def _draw(self, done: int) -> None:
        if self.total:
            fraction = min(1.0, done / self.total)
            filled = int(fraction * _WIDTH)
            bar = f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {fraction:4.0%} "
        else:
            bar = ""
        self.stream.write(f"\r{self.label} {bar}{done:,} {self.unit}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self, done: int | None = None) -> None:
        """Draw the final count (if given) and end the line, so later output starts clean."""
        if not self.enabled:
            return
        if done is not None:
            self._draw(done)
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
