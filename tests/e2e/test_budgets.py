"""Personal-use budgets through real `aupgate run` proxies: the budget page once the day's budget
is spent, kept across a restart, and shared by two gateway processes on one database (two
`aupgate run` on different ports, and the two workers of one `aupgate run --workers 2`), and reset
with `aupgate budgets reset` while they run.

The lab policy gets budgets on webmail (which it logs, so requests pass and count): a minutes
budget of one minute, or a bytes budget of 100 KB. Each proxy runs at a frozen policy clock; two
clocks a minute apart are two minutes of activity.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from aupgate.budgetstore import BudgetStore
from aupgate.cli import main

from .conftest import FIXTURES, Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy, until

MINUTES = """
budgets:
  - id: webmail-minutes
    clauses: ["8"]
    match: {categories: [webmail]}
    minutes: 1
    reason: Personal webmail should be occasional.
"""
BYTES = """
budgets:
  - id: webmail-bytes
    clauses: ["8"]
    match: {categories: [webmail]}
    megabytes: 0.1
    reason: Personal webmail should not cost bandwidth.
"""
AT_1030 = "2026-11-24T10:30:00-06:00"
AT_1031 = "2026-11-24T10:31:00-06:00"


def home_with(tmp: Path, budget: str, name: str) -> Path:
    """A proxy's home: the lab policy with `budget` added, the fixture categories."""
    home = tmp / name
    shutil.copytree(FIXTURES / "policies", home / "policies")  # lab.yaml and its logo
    text = (FIXTURES / "policies" / "lab.yaml").read_text(encoding="utf-8")
    (home / "policies" / "lab.yaml").write_text(text + budget, encoding="utf-8")
    shutil.copytree(FIXTURES / "categories", home / "categories")
    return home


def gateway(tmp: Path, budget: str, name: str, certs: Certs, upstreams: Upstreams, at: str,
            db: Path) -> Proxy:
    """A proxy with its own home (audit file, CA), at policy time `at`, counting in `db`."""
    home = tmp / name if (tmp / name).exists() else home_with(tmp, budget, name)
    return start_proxy(home, certs, upstreams, "--set", f"aupgate_budget_db={db}",
                       "--set", "aupgate_budget_flush_ms=200", fixed_time=at)


def used(db: Path, subject: str = "client:127.0.0.1") -> tuple[int, int]:
    store = BudgetStore(db)
    try:
        rows = [u for u in store.usage("2026-11-01") if u.subject == subject]
    finally:
        store.close()
    return sum(u.minutes for u in rows), sum(u.bytes for u in rows)


def events(proxy: Proxy, event: str) -> list[dict[str, Any]]:
    return [e for e in proxy.audit() if e.get("event") == event]


def test_minutes_survive_a_restart_and_are_shared(tmp_path: Path, certs: Certs,
                                                  upstreams: Upstreams) -> None:
    db = tmp_path / "state" / "budgets.sqlite3"
    first = gateway(tmp_path, MINUTES, "a", certs, upstreams, AT_1030, db)
    try:
        for _ in range(3):  # one minute of activity, however many requests in it
            r = curl(first, "http://mail.yahoo.com/inbox")
            assert r.status == 200, r
    finally:
        stop_proxy(first)  # stopping writes what was counted
    assert used(db) == (1, 0)

    # restarted a minute later: the minute used before the restart counts
    again = gateway(tmp_path, MINUTES, "a", certs, upstreams, AT_1031, db)
    other = None
    try:
        r = curl(again, "http://mail.yahoo.com/inbox")
        assert r.status == 403, r
        assert "personal-use" in r.body and "1 of 1 minutes of activity" in r.body
        assert "Personal webmail should be occasional." in r.body
        lines = [e for e in events(again, "decision") if e.get("host") == "mail.yahoo.com"]
        assert (lines[-1]["action"], lines[-1]["step"], lines[-1]["rule"],
                lines[-1]["budget"], lines[-1]["budget_used"], lines[-1]["budget_limit"]) == (
            "block", "budget", "webmail-minutes", "webmail-minutes", 1, 1)
        spent = events(again, "budget_spent")
        assert [(e["subject"], e["used"], e["limit"], e["unit"], e["day"]) for e in spent] == [
            ("client:127.0.0.1", 1, 1, "minutes", "2026-11-24")]
        # a site the budget does not count is not affected
        assert curl(again, "http://www.example.org/").status == 200

        # a second process on the same database, at the first proxy's minute: that minute is
        # already counted (by another process), so it may go on in it
        other = gateway(tmp_path, MINUTES, "c", certs, upstreams, AT_1030, db)
        assert curl(other, "http://mail.yahoo.com/inbox").status == 200

        # reset while both run: the next flush brings it to both
        code = main(["budgets", "reset", "--policy-dir", str(tmp_path / "a" / "policies"), "--db",
                     str(db), "--agency", "lab", "--client", "127.0.0.1", "--day",
                     "2026-11-24", "--reason", "approved by the director", "--by", "admin"])
        assert code == 0
        until(lambda: curl(again, "http://mail.yahoo.com/inbox").status == 200)
    finally:
        stop_proxy(again)
        if other is not None:
            stop_proxy(other)
    store = BudgetStore(db)
    try:
        resets = store.resets("2026-11-24", "lab")
    finally:
        store.close()
    assert [(r.by, r.reason, r.subject, r.minutes) for r in resets] == [
        ("admin", "approved by the director", "client:127.0.0.1", 1)]


def test_bytes_are_shared_between_two_running_processes(tmp_path: Path, certs: Certs,
                                                        upstreams: Upstreams) -> None:
    db = tmp_path / "budgets.sqlite3"
    one = gateway(tmp_path, BYTES, "one", certs, upstreams, AT_1030, db)
    two = gateway(tmp_path, BYTES, "two", certs, upstreams, AT_1030, db)
    try:
        assert curl(two, "http://mail.yahoo.com/").status == 200
        r = curl(one, "http://mail.yahoo.com/stream-small.bin")  # 256 KiB, streamed
        assert r.status == 200 and len(r.body) == 4 * 65536
        until(lambda: used(db)[1] >= 4 * 65536)
        # the other process, running all along, learns of it at its next flush
        until(lambda: curl(two, "http://mail.yahoo.com/").status == 403)
        r = curl(two, "http://mail.yahoo.com/")
        assert "MB" in r.body and "personal-use budget is spent" in r.body
    finally:
        stop_proxy(one)
        stop_proxy(two)
    spent = events(two, "budget_spent")
    assert spent and spent[0]["unit"] == "bytes" and spent[0]["used"] >= 4 * 65536


def worker_lines(proxy: Proxy, index: int, host: str) -> list[dict[str, Any]]:
    path = proxy.home / f"audit.w{index}.jsonl"
    if not path.exists():
        return []
    return [line for line in map(json.loads, path.read_text().splitlines())
            if line.get("event") == "decision" and line.get("host") == host]


def test_bytes_are_shared_by_the_workers_of_one_proxy(tmp_path: Path, certs: Certs,
                                                      upstreams: Upstreams) -> None:
    """`aupgate run --workers 2` on one port: what one worker counted, the other blocks on."""
    db = tmp_path / "budgets.sqlite3"
    proxy = start_proxy(home_with(tmp_path, BYTES, "workers"), certs, upstreams,
                        "--set", f"aupgate_budget_db={db}", "--set", "aupgate_budget_flush_ms=200",
                        fixed_time=AT_1030, workers=2)
    host = "mail.yahoo.com"
    try:
        # a new connection each time, until both workers have served the site (under budget)
        n = 0
        def both_served() -> bool:
            nonlocal n
            n += 1
            assert curl(proxy, f"http://{host}/before-{n}").status == 200
            return all(worker_lines(proxy, i, host) for i in (0, 1))
        until(both_served, timeout=60)
        r = curl(proxy, f"http://{host}/stream-small.bin")  # 256 KiB, past the 100 KB budget
        assert r.status == 200 and len(r.body) == 4 * 65536
        until(lambda: used(db)[1] >= 4 * 65536)

        # whichever worker takes the next connections, each blocks once it has flushed
        def both_block() -> bool:
            nonlocal n
            n += 1
            curl(proxy, f"http://{host}/after-{n}")
            return all(any(line["action"] == "block" and line.get("step") == "budget"
                           for line in worker_lines(proxy, i, host)) for i in (0, 1))
        until(both_block, timeout=60)
        r = curl(proxy, f"http://{host}/last")
        assert r.status == 403 and "personal-use budget is spent" in r.body, r
    finally:
        stop_proxy(proxy)
    for i in (0, 1):
        blocks = [line for line in worker_lines(proxy, i, host) if line["action"] == "block"]
        assert {(b["budget"], b["budget_limit"]) for b in blocks} == {
            ("webmail-bytes", int(0.1 * 1024 * 1024))}, blocks


def test_budgets_show(tmp_path: Path, certs: Certs, upstreams: Upstreams,
                      capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "budgets.sqlite3"
    proxy = gateway(tmp_path, MINUTES, "s", certs, upstreams, AT_1030, db)
    try:
        assert curl(proxy, "http://mail.yahoo.com/").status == 200
    finally:
        stop_proxy(proxy)
    code = main(["budgets", "show", "--policy-dir", str(tmp_path / "s" / "policies"), "--db",
                 str(db),
                 "--day", "2026-11-24"])
    out = capsys.readouterr().out
    assert code == 0
    assert "lab          webmail-minutes        2026-11-24 client:127.0.0.1" in out
    assert "1 min     1 min  spent" in out


def test_every_line_validates(tmp_path: Path, certs: Certs, upstreams: Upstreams) -> None:
    """Budget decisions and `budget_spent`, as the proxy wrote them, match the audit schema."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((resources.files("aupgate") / "audit_schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    db = tmp_path / "budgets.sqlite3"
    store = BudgetStore(db)
    store.record([("lab", "webmail-minutes", "client:127.0.0.1", "2026-11-24", 1)], [])
    store.close()
    proxy = gateway(tmp_path, MINUTES, "v", certs, upstreams, AT_1030, db)
    try:
        assert curl(proxy, "http://mail.yahoo.com/").status == 403
    finally:
        stop_proxy(proxy)
    records = proxy.audit()
    assert "budget_spent" in {r["event"] for r in records}
    for record in records:
        assert [e.message for e in validator.iter_errors(record)] == [], record
