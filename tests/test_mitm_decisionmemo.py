"""The adapter's decision memo: a remembered decision is only ever the one deciding would give."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aupgate.engine import Decision, Facts, decide
from aupgate.gateway import Gateway, Snapshot
from aupgate.mitm.decisionmemo import DecisionMemo
from aupgate.normalise import Url, parse_url

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    return Gateway(ROOT / "policies", ROOT / "categories" / "sources.yaml",
                   lambda: datetime(2026, 11, 24).date()).current


def decided(snapshot: Snapshot, agency: str, text: str, at: datetime) -> tuple[Decision, Url]:
    url = parse_url(text)
    return decide(snapshot.policies.policies[agency], snapshot.index, Facts(url=url), at), url


class Clock:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> float:
        return self.seconds


KEY = ("saint-paul", "10.0.0.1", None, "http", "mail.google.com", 80, "/", "")
LUNCH = datetime(2026, 11, 24, 18, 15, tzinfo=UTC)  # 12:15 in Saint Paul


def test_remembers_within_the_minute(snapshot: Snapshot) -> None:
    clock = Clock(LUNCH.timestamp())
    memo = DecisionMemo(clock)
    assert memo.get(snapshot, KEY) is None
    decision, url = decided(snapshot, "saint-paul", "http://mail.google.com/", LUNCH)
    memo.put(KEY, decision, url)
    clock.seconds += 44  # 12:15:44, same minute
    assert memo.get(snapshot, KEY) == (decision, url)
    assert memo.get(snapshot, (*KEY[:-1], "q=1")) is None  # another URL is not this one


def test_forgets_when_the_minute_changes(snapshot: Snapshot) -> None:
    """Lunch ends at 13:00: a decision taken at 12:59 is not used at 13:00."""
    before = datetime(2026, 11, 24, 18, 59, 30, tzinfo=UTC)
    clock = Clock(before.timestamp())
    memo = DecisionMemo(clock)
    memo.get(snapshot, KEY)
    lunch, url = decided(snapshot, "saint-paul", "http://mail.google.com/", before)
    assert lunch.action == "allow" and lunch.window == "lunch"
    memo.put(KEY, lunch, url)
    clock.seconds += 30  # 13:00:00
    assert memo.get(snapshot, KEY) is None
    work, _ = decided(snapshot, "saint-paul", "http://mail.google.com/",
                      datetime.fromtimestamp(clock.seconds, UTC))
    assert work.action == "warn"


def test_forgets_when_the_snapshot_is_replaced(snapshot: Snapshot) -> None:
    clock = Clock(LUNCH.timestamp())
    memo = DecisionMemo(clock)
    memo.get(snapshot, KEY)
    memo.put(KEY, *decided(snapshot, "saint-paul", "http://mail.google.com/", LUNCH))
    reloaded = Gateway(ROOT / "policies", ROOT / "categories" / "sources.yaml",
                       lambda: datetime(2026, 11, 24).date()).current
    assert memo.get(reloaded, KEY) is None


def test_a_frozen_clock_keeps_decisions_until_it_is_moved(snapshot: Snapshot) -> None:
    clock = Clock(LUNCH.timestamp())
    memo = DecisionMemo(clock)
    memo.freeze(LUNCH)
    memo.get(snapshot, KEY)
    remembered = decided(snapshot, "saint-paul", "http://mail.google.com/", LUNCH)
    memo.put(KEY, *remembered)
    clock.seconds += 3600  # the real clock moves; the policy clock does not
    assert memo.get(snapshot, KEY) == remembered
    memo.freeze(datetime(2026, 11, 24, 16, 30, tzinfo=UTC))  # moved: all forgotten
    assert memo.get(snapshot, KEY) is None


def test_is_bounded(snapshot: Snapshot) -> None:
    memo = DecisionMemo(Clock(LUNCH.timestamp()))
    memo.get(snapshot, KEY)
    remembered = decided(snapshot, "saint-paul", "http://mail.google.com/", LUNCH)
    for i in range(20_000):
        memo.put((*KEY[:-1], f"n={i}"), *remembered)
    assert len(memo._entries) <= 8192
