"""Where personal-use budgets are counted: one SQLite database shared by every gateway process.

A budget must survive a restart and be the same whichever worker process a user's connection
lands on, so usage lives in a file, not in a process: SQLite in WAL mode, which lets any number of
processes read while one writes and queues writers (`busy_timeout`) instead of failing. Writes
come in batches from each process's flusher (`mitm/budgeting.py`), never from the event loop.

Minutes of activity are kept as distinct (subject, day, minute) rows, so two processes that both
saw a user in the same minute count it once. Bytes are a running sum (two processes' bytes add
up). A reset deletes the day's rows and records who reset what, when, in `resets`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BudgetStore", "Reset", "Usage", "UsageKey", "default_budget_db"]

UsageKey = tuple[str, str, str, str]
"""(agency, budget, subject, day)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS minutes (
    agency TEXT NOT NULL, budget TEXT NOT NULL, subject TEXT NOT NULL, day TEXT NOT NULL,
    minute INTEGER NOT NULL,
    PRIMARY KEY (agency, budget, subject, day, minute)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bytes (
    agency TEXT NOT NULL, budget TEXT NOT NULL, subject TEXT NOT NULL, day TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (agency, budget, subject, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS resets (
    at TEXT NOT NULL, agency TEXT NOT NULL, budget TEXT, subject TEXT, day TEXT NOT NULL,
    by TEXT NOT NULL, reason TEXT NOT NULL, minutes INTEGER NOT NULL, bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS minutes_by_day ON minutes (day);
CREATE INDEX IF NOT EXISTS bytes_by_day ON bytes (day);
"""

_USAGE = """
SELECT agency, budget, subject, day, SUM(m), MAX(last), SUM(b) FROM (
    SELECT agency, budget, subject, day, COUNT(*) AS m, MAX(minute) AS last, 0 AS b
    FROM minutes
    WHERE day >= :since AND (:day IS NULL OR day = :day)
        AND (:agency IS NULL OR agency = :agency) AND (:subject IS NULL OR subject = :subject)
    GROUP BY agency, budget, subject, day
    UNION ALL
    SELECT agency, budget, subject, day, 0, NULL, bytes FROM bytes
    WHERE day >= :since AND (:day IS NULL OR day = :day)
        AND (:agency IS NULL OR agency = :agency) AND (:subject IS NULL OR subject = :subject)
) GROUP BY agency, budget, subject, day ORDER BY agency, budget, day, subject
"""
_FORGET_MINUTES = """
DELETE FROM minutes WHERE agency = :agency AND day = :day
    AND (:budget IS NULL OR budget = :budget) AND (:subject IS NULL OR subject = :subject)
"""
_FORGET_BYTES = """
DELETE FROM bytes WHERE agency = :agency AND day = :day
    AND (:budget IS NULL OR budget = :budget) AND (:subject IS NULL OR subject = :subject)
"""


def default_budget_db() -> Path:
    """`$AUPGATE_STATE_DIR/budgets.sqlite3`, else `var/budgets.sqlite3` in the working folder."""
    base = os.environ.get("AUPGATE_STATE_DIR")
    return (Path(base) if base else Path("var")) / "budgets.sqlite3"


@dataclass(frozen=True, slots=True)
class Usage:
    """One subject's use of one budget on one day."""

    agency: str
    budget: str
    subject: str
    day: str
    minutes: int
    last_minute: int | None  # the latest minute counted (epoch minutes), for "already counted"
    bytes: int


@dataclass(frozen=True, slots=True)
class Reset:
    at: str
    agency: str
    budget: str | None
    subject: str | None
    day: str
    by: str
    reason: str
    minutes: int
    bytes: int


class BudgetStore:
    """The budget database; thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path, *, timeout: float = 10.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(self, minutes: Iterable[tuple[str, str, str, str, int]],
               sizes: Iterable[tuple[str, str, str, str, int]]) -> None:
        """Add a batch of counted minutes and bytes, in one transaction."""
        minutes, sizes = list(minutes), list(sizes)
        if not minutes and not sizes:
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR IGNORE INTO minutes VALUES (?, ?, ?, ?, ?)", minutes)
                db.executemany(
                    "INSERT INTO bytes VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                    "(agency, budget, subject, day) DO UPDATE SET bytes = bytes + excluded.bytes",
                    sizes)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def usage(self, since_day: str, agency: str | None = None, subject: str | None = None,
              day: str | None = None) -> list[Usage]:
        """Every subject's use on `since_day` and later (or on `day`), optionally narrowed."""
        args = {"since": day or since_day, "agency": agency, "subject": subject, "day": day}
        with self._lock:
            rows = self._db.execute(_USAGE, args).fetchall()
        return [Usage(a, b, s, d, int(m), last, int(n)) for a, b, s, d, m, last, n in rows]

    def reset(self, at: str, agency: str, day: str, *, by: str, reason: str,
              budget: str | None = None, subject: str | None = None) -> list[Usage]:
        """Forget a day's use (of one budget, one subject, or all of the agency's); what was
        forgotten is returned and recorded in `resets`."""
        before = [u for u in self.usage(day, agency, subject, day)
                  if budget is None or u.budget == budget]
        args = {"agency": agency, "day": day, "budget": budget, "subject": subject}
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(_FORGET_MINUTES, args)
                db.execute(_FORGET_BYTES, args)
                db.execute("INSERT INTO resets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (at, agency, budget, subject, day, by, reason,
                            sum(u.minutes for u in before), sum(u.bytes for u in before)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return before

    def resets(self, since_day: str, agency: str | None = None) -> list[Reset]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM resets WHERE day >= :since AND (:agency IS NULL OR agency = :agency)"
                " ORDER BY at", {"since": since_day, "agency": agency}).fetchall()
        return [Reset(*row) for row in rows]
