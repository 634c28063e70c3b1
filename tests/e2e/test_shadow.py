"""The shadow policy through a real `aupgate run`: every request decided under a candidate too,
never enforced; differences audited as `shadow_diff`; a broken candidate changes nothing and the
last good one stays; `aupgate report` shows what the candidate would change.

The candidate is the lab policy with social networking blocked instead of warned, and webmail
allowed instead of logged (a citation change: the same action class differs).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from aupgate.cli import main

from .conftest import FIXTURES, Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy, until


def candidate_text() -> str:
    text = (FIXTURES / "policies" / "lab.yaml").read_text(encoding="utf-8")
    text = text.replace("""    action: warn
    reason: Social networking needs a work reason.""", """    action: block
    reason: Social networking is blocked in the candidate.""")
    return text.replace("""    action: log
    reason: Webmail is logged for review.""", """    action: allow
    reason: Webmail is allowed in the candidate.""")


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
             upstreams: Upstreams) -> Iterator[tuple[Proxy, Path]]:
    home = tmp_path_factory.mktemp("shadow")
    candidate = home / "candidate"
    candidate.mkdir()
    shutil.copy(FIXTURES / "policies" / "lab-logo.png", candidate)  # the help desk's logo
    (candidate / "lab.yaml").write_text(candidate_text(), encoding="utf-8")
    proxy = start_proxy(home, certs, upstreams, "--set", f"aupgate_shadow_policy_dir={candidate}")
    yield proxy, candidate
    stop_proxy(proxy)


def diffs(proxy: Proxy, host: str) -> list[dict[str, object]]:
    return proxy.events("shadow_diff", host=host)


def test_the_candidate_is_decided_never_enforced(shadowed: tuple[Proxy, Path]) -> None:
    proxy, candidate = shadowed
    loaded = proxy.events("shadow_loaded")
    assert loaded and loaded[0]["directory"] == str(candidate) and loaded[0]["reload"] is False
    r = curl(proxy, "http://www.facebook.com/")
    assert r.status == 403 and "work reason" in r.body  # the live warn page, not a block
    [diff] = diffs(proxy, "www.facebook.com")
    assert (diff["action"], diff["rule"], diff["shadow_action"], diff["shadow_rule"],
            diff["change"], diff["phase"], diff["suppressed"]) == (
        "warn", "social-warn", "block", "social-warn", "stricter", "request", 0)
    assert diff["shadow_digest"] == loaded[0]["agency_digests"]["lab"]
    # same decision under both: nothing written
    assert curl(proxy, "http://www.bet365.com/").status == 403
    assert curl(proxy, "http://www.example.org/").status == 200
    assert diffs(proxy, "www.bet365.com") == [] and diffs(proxy, "www.example.org") == []
    # a looser candidate is not enforced either: webmail stays logged
    assert curl(proxy, "http://mail.yahoo.com/").status == 200
    [mail] = diffs(proxy, "mail.yahoo.com")
    assert (mail["action"], mail["shadow_action"], mail["change"]) == ("log", "allow", "looser")
    decisions = proxy.events("decision", host="mail.yahoo.com")
    assert decisions[-1]["action"] == "log"


def test_connects_are_compared(shadowed: tuple[Proxy, Path]) -> None:
    proxy, _ = shadowed
    r = curl(proxy, "https://www.facebook.com/connect-test")
    assert r.status == 403
    phases = {d["phase"] for d in diffs(proxy, "www.facebook.com")}
    assert {"connect", "request"} <= phases


def test_a_broken_candidate_keeps_the_last_good_one(shadowed: tuple[Proxy, Path]) -> None:
    proxy, candidate = shadowed
    path = candidate / "lab.yaml"
    good = path.read_text(encoding="utf-8")
    broken = path.with_suffix(".tmp")
    broken.write_text(good.replace("action: block", "action: blok", 1), encoding="utf-8")
    os.replace(broken, path)
    until(lambda: bool(proxy.events("shadow_load_failed")))
    [failed] = proxy.events("shadow_load_failed")
    assert failed["kept"] == proxy.events("shadow_loaded")[0]["digest"]
    assert any("unknown action 'blok'" in e for e in failed["errors"])
    before = len(diffs(proxy, "www.facebook.com"))
    r = curl(proxy, "http://www.facebook.com/again")
    assert r.status == 403 and "work reason" in r.body  # enforcement untouched
    assert len(diffs(proxy, "www.facebook.com")) == before + 1  # the last good shadow runs
    fixed = path.with_suffix(".tmp")
    fixed.write_text(good.replace("Social networking is blocked in the candidate.",
                                  "Blocked (second candidate)."), encoding="utf-8")
    os.replace(fixed, path)
    until(lambda: len(proxy.events("shadow_loaded")) == 2)
    assert proxy.events("shadow_loaded")[1]["reload"] is True


def test_report_shows_the_shadow(shadowed: tuple[Proxy, Path],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    proxy, _ = shadowed
    assert main(["report", str(proxy.audit_path)]) == 0
    out = capsys.readouterr().out
    assert "SHADOW POLICY: " in out
    assert "   warn -> block  " in out
    assert "www.facebook.com" in out.split("SHADOW POLICY")[1]


def test_a_shadow_that_never_loads_changes_nothing(tmp_path: Path, certs: Certs,
                                                   upstreams: Upstreams) -> None:
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    shutil.copy(FIXTURES / "policies" / "lab-logo.png", candidate)
    (candidate / "lab.yaml").write_text("agency: lab\n", encoding="utf-8")
    proxy = start_proxy(tmp_path / "home", certs, upstreams, "--set",
                        f"aupgate_shadow_policy_dir={candidate}")
    try:
        [failed] = proxy.events("shadow_load_failed")
        assert failed["kept"] is None
        assert curl(proxy, "http://www.facebook.com/").status == 403
        assert curl(proxy, "http://www.example.org/").status == 200
        assert proxy.events("shadow_diff") == []
        shutil.copy(FIXTURES / "policies" / "lab.yaml", candidate / "lab.yaml")
        until(lambda: bool(proxy.events("shadow_loaded")))
    finally:
        stop_proxy(proxy)


def test_every_line_validates(shadowed: tuple[Proxy, Path]) -> None:
    """The shadow's events, as the proxy wrote them, match the audit schema."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((resources.files("aupgate") / "audit_schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    proxy, _ = shadowed
    records = proxy.audit()
    assert {"shadow_loaded", "shadow_load_failed", "shadow_diff"} <= {r["event"] for r in records}
    for record in records:
        assert [e.message for e in validator.iter_errors(record)] == [], record
