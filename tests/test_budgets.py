"""Personal-use budgets: the policy section, what counts, the spent decision, the shared store and
a process's view of it (the proxy's use is tested end to end in tests/e2e/test_budgets.py)."""

from __future__ import annotations

import threading
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aupgate.budgets import apply_budget, budget_scope, is_spent, over_budget, subject_of
from aupgate.budgetstore import BudgetStore
from aupgate.budgetusage import BudgetUsage
from aupgate.categories.listindex import ListIndex
from aupgate.engine import Facts, decide
from aupgate.normalise import parse_url
from aupgate.policy.loader import load_policy
from aupgate.policy.model import Policy
from test_policy_validation import load, marked_line, policy_text

CHICAGO = ZoneInfo("America/Chicago")
LUNCH = datetime(2026, 11, 24, 12, 15, tzinfo=CHICAGO)
WORK = datetime(2026, 11, 24, 9, 15, tzinfo=CHICAGO)
INDEX = ListIndex.from_entries([("social.example", "social-networking"),
                                ("bet365.com", "gambling")])
BUDGET = """\
budgets:
  - id: personal-minutes
    clauses: [social]
    match:
      categories: [social-networking]
      windows: [personal-time]
    minutes: 30
    reason: Personal use should be infrequent.
"""
LIFECYCLE = Path(__file__).parent / "fixtures" / "lifecycle" / "policies" / "lab.yaml"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    path = tmp_path_factory.mktemp("b") / "testgov.yaml"
    path.write_text(policy_text(extra=BUDGET), encoding="utf-8")
    loaded, problems = load_policy(path, today=date(2026, 11, 24))
    assert problems == []
    assert loaded is not None
    return loaded


def _decide(policy: Policy, url: str, now: datetime = LUNCH):  # type: ignore[no-untyped-def]
    return decide(policy, INDEX, Facts(url=parse_url(url)), now)


# --------------------------------------------------------------------------- the section


def test_the_section_reads(policy: Policy) -> None:
    [budget] = policy.budgets
    assert (budget.id, budget.unit, budget.limit, budget.action, budget.clauses) == (
        "personal-minutes", "minutes", 30, "block", ("social",))
    assert budget.windows == frozenset({"before-work", "lunch", "after-work", "weekend"})
    assert policy.enforcing("social") == ("social-personal", "personal-minutes")


@pytest.mark.parametrize(
    ("budget", "field", "message"),
    [
        ("    minutes: 0  # <-\n", "budgets[0].minutes", "expected a positive number, got 0"),
        ("    minutes: 2000  # <-\n", "budgets[0].minutes",
         "expected a whole number of minutes up to 1440, got 2000"),
        ("    minutes: 5\n    megabytes: 5  # <-\n", "budgets[0]",
         "give exactly one of 'minutes' and 'megabytes'"),
        ("    minutes: 5\n    action: warn  # <-\n", "budgets[0].action",
         "a spent budget blocks or logs, not 'warn'"),
        ("    minutes: 5\n    clauses: [socal]  # <-\n", "budgets[0].clauses",
         "cites unknown clause 'socal' (did you mean 'social'?)"),
    ],
)
def test_a_broken_budget_is_located(tmp_path: Path, budget: str, field: str,
                                    message: str) -> None:
    base = BUDGET.replace("    minutes: 30\n", "").replace("    clauses: [social]\n", "")
    if "clauses:" not in budget:
        base = base.replace("    match:", "    clauses: [social]\n    match:")
    text = policy_text(extra=base.replace("    reason:", budget + "    reason:"))
    lines = text.splitlines()
    if field == "budgets[0]":  # reported at the budget's first line
        mark_line = next(n for n, t in enumerate(lines, 1) if "- id: personal-minutes" in t)
    else:
        mark_line = marked_line(text)
    _policy, problems, path = load(tmp_path, text)
    assert f"{path}:{mark_line}: {field}: {message}" in problems, problems


def test_a_budget_cannot_take_a_rules_id(tmp_path: Path) -> None:
    text = policy_text(extra=BUDGET.replace("id: personal-minutes", "id: no-gambling  # <-"))
    _policy, problems, path = load(tmp_path, text)
    assert problems == [f"{path}:{marked_line(text)}: budgets[0].id: 'no-gambling' is already "
                        "the id of a rule or budget"]


# --------------------------------------------------------------------------- what counts


def test_scope(policy: Policy) -> None:
    assert [b.id for b in budget_scope(policy, _decide(policy, "https://social.example/"))] == [
        "personal-minutes"]
    assert budget_scope(policy, _decide(policy, "https://social.example/", WORK)) == ()  # window
    assert budget_scope(policy, _decide(policy, "https://bet365.com/")) == ()  # blocked
    assert budget_scope(policy, _decide(policy, "https://docs.example/")) == ()  # category


def test_spent(policy: Policy) -> None:
    [budget] = policy.budgets
    assert not is_spent(budget, 29, new_minute=True)
    assert is_spent(budget, 30, new_minute=True)
    assert not is_spent(budget, 30, new_minute=False)  # the minute under way stays usable
    decision = _decide(policy, "https://social.example/")
    spent = over_budget(decision, budget, 30)
    assert (spent.action, spent.step, spent.rule, spent.clauses) == (
        "block", "budget", "personal-minutes", ("social",))
    assert spent.reason == ("Personal use should be infrequent. Today's personal-use budget is "
                            "spent: 30 of 30 minutes of activity. It starts again at midnight.")
    assert apply_budget(policy, decision, 29, new_minute=True) == decision
    assert apply_budget(policy, decision, 30, new_minute=True) == spent


def test_subjects() -> None:
    assert subject_of("JDoe", "10.0.0.1") == "user:jdoe"
    assert subject_of(None, "10.0.0.1") == "client:10.0.0.1"


# --------------------------------------------------------------------------- the store


def test_minutes_are_distinct_across_writers_and_bytes_add_up(tmp_path: Path) -> None:
    db = tmp_path / "state" / "budgets.sqlite3"
    one, two = BudgetStore(db), BudgetStore(db)
    key = ("lab", "b", "user:ann", "2026-11-24")
    one.record([(*key, 100), (*key, 101)], [(*key, 500)])
    two.record([(*key, 101), (*key, 102)], [(*key, 700)])
    [usage] = one.usage("2026-11-24")
    assert (usage.minutes, usage.last_minute, usage.bytes) == (3, 102, 1200)
    assert one.usage("2026-11-25") == []
    assert db.with_name("budgets.sqlite3-wal").exists()  # WAL mode
    forgotten = two.reset("2026-11-24T13:00:00", "lab", "2026-11-24", by="admin", reason="ok",
                          subject="user:ann")
    assert [(u.minutes, u.bytes) for u in forgotten] == [(3, 1200)]
    assert one.usage("2026-11-24") == []
    [reset] = one.resets("2026-11-24")
    assert (reset.by, reset.reason, reset.minutes, reset.bytes) == ("admin", "ok", 3, 1200)
    one.close()
    two.close()


def test_concurrent_writers(tmp_path: Path) -> None:
    """Several writers at once (threads here, processes in the e2e test) lose nothing."""
    db = tmp_path / "budgets.sqlite3"
    key = ("lab", "b", "user:ann", "2026-11-24")
    BudgetStore(db).close()

    def write(start: int) -> None:
        store = BudgetStore(db)
        for n in range(50):
            store.record([(*key, start + n)], [(*key, 1)])
        store.close()

    threads = [threading.Thread(target=write, args=(i * 1000,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = BudgetStore(db)
    [usage] = store.usage("2026-11-24")
    store.close()
    assert (usage.minutes, usage.bytes) == (200, 200)


# --------------------------------------------------------------------------- a process's view


def test_the_view_counts_what_is_pending_and_in_flight(tmp_path: Path) -> None:
    store = BudgetStore(tmp_path / "b.sqlite3")
    view = BudgetUsage()
    key = ("lab", "b", "user:ann", "2026-11-24")
    view.note_minute(key, 10)
    view.note_minute(key, 10)
    view.note_bytes(key, 300)
    assert view.used(key) == (1, 300)
    assert view.counted(key, 10) and not view.counted(key, 11)
    minutes, sizes = view.take()  # in flight: still counted
    assert view.used(key) == (1, 300)
    store.record(minutes, sizes)
    view.written()
    view.publish(store.usage("2026-11-24"))
    assert view.used(key) == (1, 300)  # now from the database, not twice
    assert view.counted(key, 10)  # the last minute the database has
    view.note_minute(key, 11)
    assert view.used(key) == (2, 300)
    store.close()


def test_a_failed_write_is_sent_again_once(tmp_path: Path) -> None:
    store = BudgetStore(tmp_path / "b.sqlite3")
    view = BudgetUsage()
    key = ("lab", "b", "user:ann", "2026-11-24")
    view.note_bytes(key, 100)
    view.take()  # the write of this batch "fails": written() is never called
    view.note_bytes(key, 5)
    minutes, sizes = view.take()
    assert sizes == [(*key, 105)]  # the failed batch goes again with the new one
    store.record(minutes, sizes)
    view.written()
    view.note_bytes(key, 1)
    _m, sizes = view.take()
    assert sizes == [(*key, 1)]  # and never a third time
    store.close()


def test_the_lifecycle_fixture_has_a_budget() -> None:
    policy, problems = load_policy(LIFECYCLE, today=date(2026, 11, 24))
    assert problems == [] and policy is not None
    assert [b.id for b in policy.budgets] == ["personal-minutes"]
