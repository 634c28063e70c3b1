"""`aupgate diff --replay` on an audit log a real `aupgate run` wrote, against a candidate whose
changes are known.

The gateway runs the lifecycle fixture policy (tests/fixtures/lifecycle/policies/lab.yaml) at a
frozen work-time clock, then is restarted at lunch on the same audit file; curl makes requests of
each kind the candidate (tests/fixtures/lifecycle/candidate/lab.yaml) changes or leaves alone.
`aupgate diff` as a subprocess must then find exactly the changed lines, decide every line as the
gateway did under the policies in force (no drift), and gate on them with its exit code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from .conftest import AUPGATE, Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy

LIFECYCLE = Path(__file__).resolve().parents[1] / "fixtures" / "lifecycle"
CATEGORIES = Path(__file__).resolve().parents[1] / "fixtures" / "core" / "categories"
AT_WORK = "2026-11-24T10:30:00-06:00"  # a Tuesday in America/Chicago
AT_LUNCH = "2026-11-24T12:15:00-06:00"


def gateway(home: Path, certs: Certs, upstreams: Upstreams, at: str) -> Proxy:
    return start_proxy(home, certs, upstreams, "--set",
                       f"aupgate_budget_db={home / 'budgets.sqlite3'}", fixed_time=at)


def run_diff(home: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [str(AUPGATE), "diff", "--candidate", str(LIFECYCLE / "candidate"), "--replay",
         str(home / "audit.jsonl"), "--policy-dir", str(home / "policies"), "--categories",
         str(home / "categories" / "sources.yaml"), *args],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, done.stdout


def test_diff_of_a_real_gateways_log(tmp_path: Path, certs: Certs,
                                     upstreams: Upstreams) -> None:
    home = tmp_path / "gateway"
    shutil.copytree(LIFECYCLE / "policies", home / "policies")
    # the lists only: the gateway compiles its own index (a copied one may be another version's)
    shutil.copytree(CATEGORIES, home / "categories",
                    ignore=shutil.ignore_patterns("index.aupidx", ".index.aupidx.*"))

    work = gateway(home, certs, upstreams, AT_WORK)
    try:
        for i in range(3):  # radio, logged: the candidate blocks it
            assert curl(work, f"http://pandora.com/listen-{i}").status == 200
        facebook = curl(work, "https://www.facebook.com/")  # warned at work in both
        assert "work reason" in facebook.body.lower() or facebook.status != 200, facebook
        assert curl(work, "http://www.example.org/").status == 200  # business, unchanged
    finally:
        stop_proxy(work)
    lunch = gateway(home, certs, upstreams, AT_LUNCH)
    try:
        for i in range(2):  # personal time today, work time under the candidate: allow -> warn
            assert curl(lunch, f"https://www.facebook.com/feed-{i}").status == 200
        assert curl(lunch, "http://pandora.com/lunch").status == 200  # radio at lunch
    finally:
        stop_proxy(lunch)

    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((resources.files("aupgate") / "audit_schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for record in lunch.audit():  # what diff replays is what the schema promises
        assert [e.message for e in validator.iter_errors(record)] == [], record
    lines = [line for line in lunch.audit() if line["event"] == "decision"
             and line.get("action") is not None]
    radio = [line for line in lines if line["host"] == "pandora.com"]
    social_lunch = [line for line in lines if line["host"] == "www.facebook.com"
                    and line["action"] == "allow"]
    assert len(radio) == 4 and {line["action"] for line in radio} == {"log"}
    assert len(social_lunch) >= 2  # the request lines, and the CONNECTs' where they are logged

    code, out = run_diff(home, "--json", "--changes", str(tmp_path / "changes.jsonl"))
    model: dict[str, Any] = json.loads(out)
    assert code == 1
    assert model["drift"] == 0, model  # every line decided as the gateway decided it
    assert model["requests"] == len(lines)
    assert model["changed"] == len(radio) + len(social_lunch)
    assert {(a["from"], a["to"]): a["count"] for a in model["actions"]} == {
        ("log", "block"): len(radio), ("allow", "warn"): len(social_lunch)}
    assert {c["category"]: c["changed"] for c in model["categories"]} == {
        "streaming-radio": len(radio), "social-networking": len(social_lunch)}
    assert {(r["from"], r["to"]): r["count"] for r in model["rules"]} == {
        ("radio", "radio"): len(radio), ("social-personal", "social-work"): len(social_lunch)}
    changes = [json.loads(x) for x in (tmp_path / "changes.jsonl").read_text().splitlines()]
    assert len(changes) == model["changed"]
    assert {(c["old"]["action"], c["new"]["action"]) for c in changes} == {
        ("log", "block"), ("allow", "warn")}

    # the gate: both changes are stricter, so a looser-only gate passes
    assert run_diff(home, "--fail-on", "looser")[0] == 0
    assert run_diff(home, "--fail-on", "stricter")[0] == 1
    text = run_diff(home)[1]
    assert f"{model['changed']} changed decisions: 0 looser, {model['changed']} stricter" in text
