"""`aupgate review` and `report` as issue 17 found them, each finding pinned.

review: a phase column (a CONNECT that let a block page be shown is not "BLOCK ... passed"), the
agency's time zone by default and `--tz`, the grant that relaxed a decision, start-up events
without dict dumps, access requests and sent-back continues in words, quiet in a closed pipe.
report: page views (no CONNECT, no favicon), rejected continues apart from real ones, `--agency`,
access requests. Both: a file that is not an audit log, and filters that match nothing, are
errors (exit 1), not an empty answer.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from aupgate.audit.reader import ReviewError
from aupgate.audit.review import format_event
from aupgate.cli.audit import add_audit_parsers, run_report, run_review

NOW = datetime(2026, 5, 5, 9, 0, tzinfo=UTC)
CORE_POLICIES = Path(__file__).parent / "fixtures" / "core" / "policies"  # alpha: Chicago
AUPGATE = Path(sys.executable).parent / "aupgate"


def decision(minute: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema_version": 1, "time": f"2026-05-04T15:{minute:02d}:00.000000Z",
        "event": "decision", "request_id": f"r{minute}", "phase": "request",
        "client": "10.20.1.5", "user": "jdoe", "agency": "alpha", "method": "GET",
        "scheme": "https", "host": "www.example.org", "path": "/",
        "categories": ["uncategorized"], "rule": "default", "clauses": ["1"],
        "action": "allow", "enforced": "passed", "status": 200,
    }
    record.update(fields)
    return record


def access_request(minute: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema_version": 1, "time": f"2026-05-04T15:{minute:02d}:30.000000Z",
        "event": "access_request", "request_id": f"a{minute}", "client": "10.20.1.5",
        "user": "jdoe", "agency": "alpha", "scheme": "https", "host": "www.bet365.com",
        "path": "/odds", "categories": ["gambling"], "rule": "no-gambling", "clauses": ["7.E"],
        "action": "block", "explanation": "Auditing a vendor for the lottery commission",
        "status": 200,
    }
    record.update(fields)
    return record


BLOCK = {"host": "www.bet365.com", "categories": ["gambling"], "rule": "no-gambling",
         "clauses": ["7.E"], "action": "block", "enforced": "blocked", "status": 403}
CONTINUED = {"phase": "continue", "action": None, "rule": None, "categories": [],
             "host": "www.facebook.com", "path": "/.aupgate/continue", "enforced": "continue",
             "rule_continued": "social-warn", "clauses_continued": ["7.S"],
             "work_reason": "posting the storm closure notice"}
REJECTED = {"phase": "continue", "action": None, "rule": None, "categories": [],
            "host": "www.facebook.com", "path": "/.aupgate/continue",
            "enforced": "continue-rejected", "continue_problem": "reason-too-short"}


def day() -> list[dict[str, Any]]:
    """One HTTPS visit to a blocked site as a browser makes it, a warn, continues, a request."""
    return [
        {"schema_version": 1, "time": "2026-05-04T14:00:00.000000Z", "event": "policy_loaded",
         "agencies": ["alpha", "beta"], "agency_digests": {"alpha": "ab" * 32, "beta": "cd" * 32},
         "policy_digest": "ef" * 32, "categories_digest": "01" * 32},
        decision(0, phase="connect", method="CONNECT", path=None,
                 **{**BLOCK, "enforced": "passed", "status": None}),
        decision(1, **BLOCK),
        decision(2, **{**BLOCK, "path": "/favicon.ico"}),
        decision(3, host="www.facebook.com", categories=["social-networking"], rule="social-warn",
                 action="warn", enforced="warned", status=200),
        decision(4, **REJECTED),
        decision(5, **{**REJECTED, "continue_problem": "expired"}),
        decision(6, **CONTINUED),
        access_request(7),
        decision(8, agency="beta", user="asmith", client="10.30.1.1"),
        decision(9, host="dropbox.com", categories=["file-hosting"], rule="no-file-hosting",
                 grant="gis-dropbox", action="allow", user="mlee"),
        decision(10, host="down.example", enforced="gateway-error", status=504,
                 upstream_error="timeout", error="no response from the site within 60 s"),
    ]


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write(tmp_path / "audit.jsonl", day())


def parsed(*argv: str) -> argparse.Namespace:
    root = argparse.ArgumentParser(prog="aupgate")
    add_audit_parsers(root.add_subparsers(dest="command"))
    return root.parse_args(list(argv))


def review(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run_review(parsed("review", *argv), out, now=NOW)
    return code, out.getvalue()


def by_minute(output: str) -> dict[int, str]:
    """The human lines of `day()` by the minute past 15:00 of their event (after the start-up
    line, one line an event, in time order)."""
    return dict(enumerate(output.splitlines()[1:]))


# --------------------------------------------------------------------------- review


def test_review_has_a_phase_column_and_says_what_a_connect_did(log: Path) -> None:
    code, out = review(str(log), "--policy-dir", str(CORE_POLICIES), "--host", "bet365.com")
    assert code == 0
    connect, page = out.splitlines()[:2]
    assert connect.split()[3:5] == ["BLOCK", "connect"]
    assert connect.endswith("intercepted (the page is shown inside the tunnel)")
    assert "passed" not in connect
    assert page.split()[3:5] == ["BLOCK", "request"] and page.endswith("blocked")


def test_review_times_are_in_the_agencys_zone_by_default(log: Path) -> None:
    """15:01Z is 10:01 CDT in Chicago (alpha's zone, from --policy-dir)."""
    _, out = review(str(log), "--policy-dir", str(CORE_POLICIES), "--action", "block")
    assert out.splitlines()[1].startswith("2026-05-04 10:01:00 CDT BLOCK")
    _, out = review(str(log), "--policy-dir", str(CORE_POLICIES), "--tz", "Asia/Tokyo",
                    "--action", "block")
    assert out.splitlines()[1].startswith("2026-05-05 00:01:00 JST BLOCK")
    _, out = review(str(log), "--policy-dir", str(CORE_POLICIES), "--tz", "UTC",
                    "--action", "block")
    assert out.splitlines()[1].startswith("2026-05-04 15:01:00 UTC BLOCK")


def test_review_an_unknown_zone_is_an_error(log: Path) -> None:
    with pytest.raises(ReviewError, match="--tz: unknown time zone 'America/Chicgo'"):
        review(str(log), "--tz", "America/Chicgo")


def test_review_without_policies_keeps_utc(log: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-policies"
    empty.mkdir()
    _, out = review(str(log), "--policy-dir", str(empty), "--action", "block")
    assert out.splitlines()[1].startswith("2026-05-04 15:01:00 UTC BLOCK")


def test_review_names_the_grant_the_error_the_request_and_the_sent_back_continue(
        log: Path) -> None:
    _, out = review(str(log), "--tz", "UTC")
    by_id = by_minute(out)
    assert by_id[9].endswith("rule no-file-hosting [1] passed (relaxed by grant gis-dropbox)")
    assert by_id[10].endswith("rule default [1] gateway-error (timeout, status 504)")
    assert by_id[7] == ("2026-05-04 15:07:30 UTC ACCESS?  request  alpha  jdoe  10.20.1.5  "
                           "www.bet365.com/odds  rule no-gambling (block): \"Auditing a vendor "
                           "for the lottery commission\"")
    assert by_id[4].endswith("sent back: reason-too-short")
    assert by_id[5].endswith("sent back: expired")
    assert by_id[6].endswith('past social-warn [7.S]: "posting the storm closure notice"')


def test_review_says_start_up_mappings_in_a_word(log: Path) -> None:
    _, out = review(str(log), "--tz", "UTC", "--event", "policy_loaded")
    [loaded] = out.splitlines()
    assert "agency_digests=2" in loaded and "{" not in loaded and "'" not in loaded
    assert format_event({"time": "2026-05-04T14:00:00Z", "event": "proxy_start",
                         "listen": {"host": "127.0.0.1", "port": 8080}}) == \
        "2026-05-04 14:00:00 UTC PROXY_START listen=host:127.0.0.1,port:8080"


def test_review_a_zone_shifts_the_date_too() -> None:
    record = {"time": "2026-05-04T03:30:00.000000Z", "event": "policy_reloaded", "part": "x"}
    assert format_event(record, zone=ZoneInfo("America/Chicago")).startswith(
        "2026-05-03 22:30:00 CDT POLICY_RELOADED")


@pytest.mark.parametrize("argv", [["--agency", "alhpa"], ["--host", "bet356.com"],
                                  ["--user", "nobody", "--action", "block"]])
def test_review_a_filter_that_matches_nothing_exits_1(
        log: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = review(str(log), *argv)
    assert code == 1 and out == ""
    err = capsys.readouterr().err
    assert f"no event matched {' '.join(argv)} in {log}" in err


def test_review_of_an_empty_log_without_filters_is_fine(tmp_path: Path) -> None:
    empty = tmp_path / "audit.jsonl"
    empty.write_text("")
    assert review(str(empty)) == (0, "")


@pytest.mark.parametrize("content", ["hello, world\n", '{"time": "x"}\n', "[1, 2]\n",
                                     "\n\nGET / HTTP/1.1\n"])
def test_a_file_that_is_not_an_audit_log_is_an_error(tmp_path: Path, content: str) -> None:
    other = tmp_path / "access.log"
    other.write_text(content)
    with pytest.raises(ReviewError, match="not an aupgate audit log"):
        review(str(other))
    with pytest.raises(ReviewError, match="not an aupgate audit log"):
        report(str(other))
    with pytest.raises(ReviewError, match="is a directory"):
        review(str(tmp_path))


def test_review_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`aupgate review big.jsonl | head -1`: no "Broken pipe", no traceback, status 0."""
    many = [decision(m % 60, request_id=f"r{i}") for i, m in enumerate(range(4000))]
    path = write(tmp_path / "audit.jsonl", sorted(many, key=lambda r: r["time"]))
    process = subprocess.Popen([str(AUPGATE), "review", "--tz", "UTC", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # what `head -1` does once it has its line
    err = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) == 0, err
    assert first.startswith(b"2026-05-04 15:00:00 UTC ALLOW")
    assert err == b""


# --------------------------------------------------------------------------- report


def report(*argv: str) -> str:
    out = io.StringIO()
    assert run_report(parsed("report", *argv), out, io.StringIO(), now=NOW) == 0
    return out.getvalue()


def model(*argv: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(report(*argv, "--format", "json", "--tz", "UTC"))
    return result


def test_report_counts_page_views(log: Path) -> None:
    """An HTTPS block is one view: not the CONNECT before it, nor the browser's favicon."""
    m = model(str(log))
    gambling = next(c for c in m["categories"] if c["category"] == "gambling")
    assert gambling["by_action"] == {"block": 1}
    assert m["report"]["automatic_requests_not_counted"] == 1
    assert m["decisions"]["by_action"]["block"] == 1
    text = report(str(log), "--tz", "UTC")
    assert "(page views: the CONNECT before an HTTPS request and 1 favicon request(s) are " \
        "not counted)" in text


def test_report_a_refused_connect_is_still_counted(tmp_path: Path) -> None:
    """With aupgate_https_block=refuse the CONNECT is the only line: it is the view."""
    refused = decision(0, phase="connect", method="CONNECT", path=None,
                       **{**BLOCK, "enforced": "blocked", "status": 403})
    m = model(str(write(tmp_path / "audit.jsonl", [refused])))
    assert m["decisions"]["by_action"] == {"block": 1}


def test_report_separates_rejected_continues(log: Path) -> None:
    m = model(str(log))
    assert m["warn"]["shown"] == 1
    assert m["warn"]["continued"] == 1
    assert m["warn"]["continue_rejected"] == 2
    assert m["warn"]["continued_by_rule"] == [{"rule": "social-warn", "count": 1}]
    assert "WARNINGS: 1 shown, 1 continued with a stated reason, 2 continue attempt(s) sent " \
        "back" in report(str(log), "--tz", "UTC")


def test_report_agency(log: Path) -> None:
    beta = model(str(log), "--agency", "beta")
    assert beta["decisions"]["total"] == 1
    assert beta["report"]["agencies"] == ["beta"]
    assert beta["access_requests"]["total"] == 0
    alpha = model(str(log), "--agency", "alpha")
    assert alpha["decisions"]["total"] == model(str(log))["decisions"]["total"] - 1
    assert alpha["report"]["lines_of_other_agencies"] == 1
    assert "; agencies beta only" in report(str(log), "--agency", "beta", "--tz", "UTC")


def test_report_an_agency_with_no_events_is_an_error(log: Path) -> None:
    with pytest.raises(ReviewError,
                       match=r"no event of agency alhpa in .* \(is the agency id right\?\)"):
        report(str(log), "--agency", "alhpa")


def test_report_lists_access_requests(log: Path) -> None:
    m = model(str(log))
    assert m["access_requests"]["total"] == 1
    [item] = m["access_requests"]["latest"]
    assert item["host"] == "www.bet365.com" and item["rule"] == "no-gambling"
    assert item["explanation"] == "Auditing a vendor for the lottery commission"
    text = report(str(log), "--tz", "UTC")
    assert "ACCESS REQUESTS: 1 (the latest 1)" in text
    assert 'www.bet365.com/odds  rule no-gambling: "Auditing a vendor for the lottery ' \
        'commission"' in text
    csv_text = report(str(log), "--format", "csv", "--tz", "UTC")
    assert "access_request,alpha,www.bet365.com/odds,Auditing a vendor" in csv_text
    assert "warn_rejected,,continue_rejected,2" in csv_text
    html = report(str(log), "--format", "html", "--tz", "UTC")
    assert "<h2>Requests for access</h2>" in html and "Auditing a vendor" in html


def test_review_follow_starts_at_the_end_before_reading_policies(tmp_path: Path) -> None:
    """`review -f` in human form: at the file's end at once (the policies that give the zone are
    read at the first line shown, not before), then each new line in the agency's zone."""
    import threading
    import time

    path = write(tmp_path / "audit.jsonl", [decision(0)])
    out = io.StringIO()
    done = threading.Event()
    args = parsed("review", "-f", str(path), "--policy-dir", str(CORE_POLICIES))
    thread = threading.Thread(target=run_review, args=(args, out),
                              kwargs={"now": NOW, "stop": done.is_set, "poll": 0.01})
    thread.start()
    try:
        time.sleep(0.3)  # as tests/test_review.py: time to open the file and seek to its end
        with path.open("a") as handle:
            handle.write(json.dumps(decision(1, **BLOCK)) + "\n")
        deadline = time.monotonic() + 30
        while not out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert out.getvalue().startswith("2026-05-04 10:01:00 CDT BLOCK    request  alpha")
        assert len(out.getvalue().splitlines()) == 1  # not the line that was there before
    finally:
        done.set()
        thread.join(10)
    assert not thread.is_alive()
