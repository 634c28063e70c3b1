"""`aupgate diff`: past requests replayed under a candidate, on real files with known changes.

The audit log is written by the real audit writer (`AuditFile`, hash chain and all) with chosen
times; the candidate (tests/fixtures/lifecycle/candidate/lab.yaml) differs from the policy in
force in three known ways, so the summary is known exactly.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from aupgate.audit.envelope import render
from aupgate.audit.file import AuditFile
from aupgate.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
POLICIES = FIXTURES / "lifecycle" / "policies"
CANDIDATE = FIXTURES / "lifecycle" / "candidate"
CATEGORIES = FIXTURES / "core" / "categories" / "sources.yaml"
COMMON = ["--policy-dir", str(POLICIES), "--categories", str(CATEGORIES)]

# Tuesday 24 November 2026, America/Chicago (UTC-6): 09:30 is work, 12:15 lunch.
WORK = "2026-11-24T15:30:{s:02d}.{u:06d}Z"
LUNCH = "2026-11-24T18:15:{s:02d}.{u:06d}Z"


def decision(host: str, *, phase: str = "request", user: str | None = None,
             action: str = "allow", rule: str = "default", path: str | None = "/",
             scheme: str = "https", **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": "r", "phase": phase, "client": "10.50.1.9", "user": user,
        "agency": "lab", "policy_digest": "0" * 64, "method": "GET", "scheme": scheme,
        "host": host, "path": path, "categories": [], "rule": rule, "clauses": [],
        "action": action, "enforced": "passed", "status": 200, "bytes": 10,
    }
    fields.update(extra)
    return fields


def write_log(path: Path, events: list[tuple[str, str, dict[str, Any]]]) -> None:
    handle = AuditFile(path)
    for when, event, fields in events:
        handle.write_line(render(when, event, dict(fields)))
    handle.close()


def lines_at(template: str, count: int, start: int = 0) -> list[str]:
    return [template.format(s=(start + i) % 60, u=i) for i in range(count)]


def known_log(tmp_path: Path) -> tuple[Path, Path]:
    """A rotated (gzipped) file and the live one; the changes they hold are listed below."""
    older: list[tuple[str, str, dict[str, Any]]] = [
        (WORK.format(s=0, u=0), "policy_loaded",
         {"agencies": ["lab"], "agency_digests": {}, "policy_digest": "a" * 64,
          "categories_digest": "b" * 64, "fixed_time": None}),
    ]
    # 1. radio: 5 requests at work and 2 CONNECTs, log -> block (rule radio)
    older += [(t, "decision", decision("pandora.com", action="log", rule="radio"))
              for t in lines_at(WORK, 5)]
    older += [(t, "decision", decision("pandora.com", phase="connect", path=None, port=443,
                                       action="log", rule="radio"))
              for t in lines_at(WORK, 2, 10)]
    # 2. facebook at lunch: 4 requests, allow -> warn (social-personal -> social-work)
    older += [(t, "decision", decision("www.facebook.com", user="bob", rule="social-personal"))
              for t in lines_at(LUNCH, 4)]
    live: list[tuple[str, str, dict[str, Any]]] = [
        # 3. the auditor's grant withdrawn: 3 requests, log -> block (gambling)
        *[(t, "decision", decision("bet365.com", user="Audrey", action="log", rule="gambling"))
          for t in lines_at(WORK, 3, 20)],
        # unchanged: gambling for bob, facebook at work, a business site, radio logged wrongly
        *[(t, "decision", decision("bet365.com", user="bob", action="block", rule="gambling"))
          for t in lines_at(WORK, 6, 30)],
        *[(t, "decision", decision("facebook.com", action="warn", rule="social-work"))
          for t in lines_at(WORK, 2, 40)],
        *[(t, "decision", decision("docs.example", path="/a?token=REDACTED"))
          for t in lines_at(LUNCH, 3, 50)],
        # a response rule's line (content kinds), unchanged: a business site's download
        (WORK.format(s=55, u=1), "decision",
         decision("docs.example", phase="response", content=["executable"])),
        # skipped: a continuation, a refused client, an engine error, a reload
        (LUNCH.format(s=1, u=1), "decision",
         decision("www.facebook.com", phase="continue", action=None, rule=None)),
        (LUNCH.format(s=2, u=2), "decision",
         {**decision("bet365.com", action=None, rule=None), "agency": None}),
        (LUNCH.format(s=3, u=3), "engine_error", {"request_id": "x", "error": "boom",
                                                   "action": "block"}),
        # a gateway that ran with a frozen clock: at "lunch" by the wall clock, decided at work
        (LUNCH.format(s=4, u=4), "proxy_start",
         {"version": "x", "pid": 1, "listen": "127.0.0.1:1", "agencies": ["lab"],
          "agency_digests": {}, "policy_digest": "a" * 64, "categories_digest": "b" * 64,
          "category_entries": 1, "fixed_time": "2026-11-24T09:30:00-06:00"}),
        (LUNCH.format(s=5, u=5), "decision",
         decision("www.facebook.com", action="warn", rule="social-work")),
    ]
    rotated = tmp_path / "audit.jsonl.1"
    write_log(rotated, older)
    with rotated.open("rb") as src, gzip.open(tmp_path / "audit.jsonl.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    rotated.unlink()
    current = tmp_path / "audit.jsonl"
    write_log(current, live)
    return tmp_path / "audit.jsonl.1.gz", current


def diff(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["diff", *COMMON, "--json", *args])
    out, _err = capsys.readouterr()
    return code, json.loads(out)


def test_the_known_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rotated, current = known_log(tmp_path)
    code, model = diff(capsys, "--candidate", str(CANDIDATE), "--replay", str(rotated),
                       str(current))
    assert code == 1
    assert (model["requests"], model["changed"], model["looser"], model["stricter"],
            model["citation"]) == (27, 14, 0, 14, 0)
    # policy_loaded, continue, refused, engine_error, proxy_start, and the audit_checkpoint that
    # opens and closes each file
    assert model["skipped"] == 9
    assert model["phases"] == {"connect": 2, "request": 24, "response": 1}
    assert model["agencies"] == [{"agency": "lab", "requests": 27, "changed": 14}]
    assert [(a["from"], a["to"], a["count"]) for a in model["actions"]] == [
        ("log", "block", 10), ("allow", "warn", 4)]
    assert model["actions"][0]["top_hosts"]["items"] == [
        {"host": "pandora.com", "count": 7}, {"host": "bet365.com", "count": 3}]
    assert [(r["from"], r["to"], r["count"]) for r in model["rules"]] == [
        ("radio", "radio", 7), ("social-personal", "social-work", 4), ("gambling", "gambling", 3)]
    assert {c["category"]: c["changed"] for c in model["categories"]} == {
        "streaming-radio": 7, "social-networking": 4, "gambling": 3}
    assert model["drift"] == 0
    assert "audrey" not in json.dumps(model) and "bob" not in json.dumps(model)


@pytest.mark.parametrize(("gate", "code"), [
    ("action", 1), ("stricter", 1), ("looser", 0), ("any", 1), ("never", 0)])
def test_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str], gate: str,
                  code: int) -> None:
    rotated, current = known_log(tmp_path)
    got, model = diff(capsys, "--candidate", str(CANDIDATE), "--replay", str(rotated),
                      str(current), "--fail-on", gate)
    assert (got, model["fail_on"]) == (code, gate)


def test_no_change_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rotated, current = known_log(tmp_path)
    code, model = diff(capsys, "--candidate", str(POLICIES), "--replay", str(rotated),
                       str(current), "--fail-on", "any")
    assert (code, model["changed"], model["requests"]) == (0, 0, 27)


def test_changes_file_and_users(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rotated, current = known_log(tmp_path)
    changes = tmp_path / "changes.jsonl"
    code, model = diff(capsys, "--candidate", str(CANDIDATE), "--replay", str(rotated),
                       str(current), "--by-user", "--changes", str(changes), "--jobs", "2")
    lines = [json.loads(line) for line in changes.read_text().splitlines()]
    assert code == 1
    assert len(lines) == 14
    order = [str(rotated), str(current)]
    assert [(order.index(x["file"]), x["line"]) for x in lines] == sorted(
        (order.index(x["file"]), x["line"]) for x in lines)  # input order
    first = lines[0]
    assert (first["url"], first["old"]["action"], first["new"]["action"], first["change"]) == (
        "https://pandora.com/", "log", "block", "stricter")
    assert first["line"] == 3 and first["file"].endswith("audit.jsonl.1.gz")  # after 2 events
    assert {x["user"] for x in lines} == {None, "bob", "audrey"}
    users = model["actions"][1]["top_users"]["items"]
    assert users == [{"user": "bob", "count": 4}]


def test_text_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rotated, current = known_log(tmp_path)
    code = main(["diff", *COMMON, "--candidate", str(CANDIDATE), "--replay", str(rotated),
                 str(current)])
    out = capsys.readouterr().out
    assert code == 1
    assert "27 requests replayed from 36 lines" in out
    assert "14 changed decisions: 0 looser, 14 stricter, 0 cited differently" in out
    assert "    log -> block         10\n               7  pandora.com\n" in out
    assert "  lab: radio -> radio  7" in out
    assert "14 change(s) counted by --fail-on action: exit 1" in out


def test_drift_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A log decided under other policies than those in force says so."""
    log = tmp_path / "audit.jsonl"
    write_log(log, [(t, "decision", decision("pandora.com", action="allow"))
                    for t in lines_at(WORK, 3)])
    _code, model = diff(capsys, "--candidate", str(POLICIES), "--replay", str(log))
    assert model["drift"] == 3


def test_batch_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = tmp_path / "requests.jsonl"
    rows = [
        {"url": "https://pandora.com/", "agency": "lab", "at": "2026-11-24T09:30"},
        {"url": "https://facebook.com/", "agency": "lab"},  # --at: lunch
        {"url": "https://bet365.com/", "agency": "lab", "user": "audrey"},
        {"url": "https://docs.example/", "client": "10.50.0.1"},
        {"url": "https://docs.example/", "agency": "nowhere"},
        {"url": 5},
    ]
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, model = diff(capsys, "--candidate", str(CANDIDATE), "--batch", str(batch),
                       "--at", "2026-11-24T12:15")
    assert code == 1
    assert (model["requests"], model["changed"], model["undecidable"]) == (4, 3, 2)
    assert model["problems"][0] == f"{batch}:5: unknown agency 'nowhere' (known: lab)"


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", *COMMON, "--candidate", str(CANDIDATE), "--replay",
                 str(tmp_path / "missing.jsonl")]) == 2
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "lab.yaml").write_text("agency: lab\n", encoding="utf-8")
    log = tmp_path / "audit.jsonl"
    write_log(log, [])
    assert main(["diff", *COMMON, "--candidate", str(broken), "--replay", str(log)]) == 1
    assert "missing required key" in capsys.readouterr().err


def test_an_upload_line_is_replayed_as_an_upload() -> None:
    """A logged upload (direction upload, its body's kinds in content) is decided again as one,
    so direction rules see it as the gateway did; a read stays a read."""
    from datetime import UTC, datetime

    from aupgate.categories.cache import load_index
    from aupgate.lifecycle.replay import replayed
    from aupgate.lifecycle.requests import RequestDecider
    from aupgate.policy.loader import load_policy_dir

    line = {"event": "decision", "time": WORK.format(s=1, u=1),
            **decision("docs.example", method="POST", direction="upload",
                       content=["executable"])}
    request = replayed(line)
    assert request is not None
    assert (request.method, request.upload, request.content) == (
        "POST", True, frozenset({"executable"}))
    read = replayed({"event": "decision", "time": WORK.format(s=1, u=1),
                     **decision("docs.example", method="POST")})
    assert read is not None and (read.upload, read.content) == (False, frozenset())
    policies = load_policy_dir(POLICIES, today=datetime(2026, 11, 24).date())
    index, _ = load_index(CATEGORIES)
    decider = RequestDecider(policies, index, datetime(2026, 11, 24, tzinfo=UTC))
    sent = decider.decide(request.url, agency="lab", at=request.at, content=request.content,
                          method=request.method, upload=request.upload)
    got = decider.decide(read.url, agency="lab", at=read.at, method=read.method)
    assert (sent.direction, got.direction) == ("upload", "read")
