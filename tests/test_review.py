"""`aupgate review`: each filter, time-ordered merge of plain and gzipped files, follow through
logrotate (rename and copytruncate), --json passes lines unchanged, colour only on a terminal."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aupgate.audit.envelope import time_key
from aupgate.audit.reader import ReviewError, parse_when
from aupgate.audit.review import format_event
from aupgate.cli.audit import add_audit_parsers, run_review

NOW = datetime(2026, 5, 4, 18, 0, tzinfo=UTC)


def event(minute: int, **fields: Any) -> dict[str, Any]:
    """A decision at 2026-05-04 12:MM UTC, with the adapter's fields."""
    record: dict[str, Any] = {
        "schema_version": 1,
        "time": f"2026-05-04T{12 + minute // 60:02d}:{minute % 60:02d}:00.000000Z",
        "event": "decision",
        "request_id": f"r{minute}",
        "phase": "request",
        "client": "10.20.1.5",
        "user": "jdoe",
        "agency": "modot",
        "method": "GET",
        "scheme": "https",
        "host": "www.example.org",
        "path": "/",
        "categories": ["uncategorized"],
        "rule": "default",
        "clauses": ["8"],
        "action": "allow",
        "enforced": "passed",
        "status": 200,
    }
    record.update(fields)
    return record


def line(record: dict[str, Any]) -> str:
    return json.dumps(record) + "\n"


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    text = "".join(line(r) for r in records)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="aupgate")
    add_audit_parsers(root.add_subparsers(dest="command"))
    return root


def review(*argv: str, out: io.StringIO | None = None, **kwargs: Any) -> str:
    """The output; a filter that matches nothing must say so with status 1 (a typo, not quiet)."""
    sink = out or io.StringIO()
    args = parser().parse_args(["review", *argv])
    code = run_review(args, sink, now=NOW, **kwargs)
    assert code == (1 if not sink.getvalue() and "--tz" not in argv and any(
        a.startswith("--") and a not in ("--json", "-f", "--follow") for a in argv) else 0)
    return sink.getvalue()


def ids(output: str) -> list[str]:
    return [json.loads(x)["request_id"] for x in output.splitlines()]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write(
        tmp_path / "audit.jsonl",
        [
            event(0),
            event(1, user="ASmith", client="10.99.3.4", agency="dnr"),
            event(2, host="www.bet365.com", categories=["gambling"], action="block", rule="g"),
            event(3, host="bet365.com", categories=["gambling"], action="block", rule="g"),
            event(4, host="notbet365.com", categories=["uncategorized"]),
            event(5, host="m.facebook.com", categories=["social-networking"], action="warn"),
            {
                "schema_version": 1,
                "time": "2026-05-04T12:06:00.000000Z",
                "event": "policy_reloaded",
                "part": "policies",
                "digest": "ab" * 32,
            },
            event(7, user=None, client="fd00:20::7"),
        ],
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["r0", "r1", "r2", "r3", "r4", "r5", None, "r7"]),
        (["--agency", "dnr"], ["r1"]),
        (["--agency", "dnr", "--agency", "modot"], ["r0", "r1", "r2", "r3", "r4", "r5", "r7"]),
        (["--user", "asmith"], ["r1"]),
        (["--user", "JDOE"], ["r0", "r2", "r3", "r4", "r5"]),
        (["--client", "10.99.3.4"], ["r1"]),
        (["--client", "10.20.0.0/16"], ["r0", "r2", "r3", "r4", "r5"]),
        (["--client", "fd00:20::/48"], ["r7"]),
        (["--category", "gambling"], ["r2", "r3"]),
        (["--category", "gambling", "--category", "social-networking"], ["r2", "r3", "r5"]),
        (["--action", "block"], ["r2", "r3"]),
        (["--action", "warn", "--action", "block"], ["r2", "r3", "r5"]),
        (["--host", "bet365.com"], ["r2", "r3"]),
        (["--host", "facebook.com"], ["r5"]),
        (["--event", "policy_reloaded"], [None]),
        (["--since", "2026-05-04T12:03"], ["r3", "r4", "r5", None, "r7"]),
        (["--until", "2026-05-04T12:02:00Z"], ["r0", "r1"]),
        (["--since", "2026-05-04T07:02-05:00", "--until", "2026-05-04T12:04"], ["r2", "r3"]),
        (["--since", "359m"], ["r1", "r2", "r3", "r4", "r5", None, "r7"]),
        (["--action", "block", "--user", "asmith"], []),
    ],
)
def test_filters(log: Path, argv: list[str], expected: list[str | None]) -> None:
    """Each filter alone and combined: AND across filters, OR within one; hosts by label."""
    output = review(str(log), "--json", *argv)
    got = [json.loads(x).get("request_id") for x in output.splitlines()]
    assert got == expected


def test_since_duration_is_relative_to_now() -> None:
    assert parse_when("2h", NOW) == "2026-05-04T16:00:00.000000Z"
    assert parse_when("90s", NOW) == "2026-05-04T17:58:30.000000Z"
    assert parse_when("7d", NOW) == "2026-04-27T18:00:00.000000Z"
    assert parse_when("2026-05-04", NOW) == "2026-05-04T00:00:00.000000Z"
    assert parse_when("2026-05-04T08:00-05:00", NOW) == "2026-05-04T13:00:00.000000Z"
    with pytest.raises(ReviewError, match="neither a duration"):
        parse_when("yesterday", NOW)


def test_time_key_reads_other_writers_times() -> None:
    """Lines not from our writer (no fixed envelope) still sort by their time."""
    assert time_key(b"{}", {"time": "2026-05-04T12:00:00Z"}) == "2026-05-04T12:00:00.000000Z"
    assert time_key(b"{}", {"time": "2026-05-04T07:00:00.5-05:00"}) == (
        "2026-05-04T12:00:00.500000Z"
    )


def test_json_passes_lines_unchanged(log: Path) -> None:
    """Byte for byte, so `jq` sees what the gateway wrote (chain fields included)."""
    assert review(str(log), "--json") == log.read_text()


def test_files_merge_in_time_order_plain_and_gz(tmp_path: Path) -> None:
    """Two workers' files and a rotated, compressed one come out as one timeline."""
    a = write(tmp_path / "audit-8081.jsonl", [event(1), event(4), event(6)])
    b = write(tmp_path / "audit-8082.jsonl", [event(2), event(3), event(9)])
    c = write(tmp_path / "audit-8081.jsonl.1.gz", [event(0), event(5)])
    output = review(str(a), str(b), str(c), "--json")
    assert ids(output) == ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r9"]


def test_damaged_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(line(event(0)) + "{torn\n\n" + line(event(1)))
    assert ids(review(str(path), "--json")) == ["r0", "r1"]


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    args = parser().parse_args(["review", str(tmp_path / "nope.jsonl")])
    with pytest.raises(ReviewError, match="no such file"):
        run_review(args, io.StringIO(), now=NOW)


# --------------------------------------------------------------------------- human output


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_human_line_names_who_what_where_and_why() -> None:
    text = format_event(
        event(2, host="www.bet365.com", categories=["gambling"], action="block", rule="no-gambling",
              clauses=["7.E"], enforced="blocked")
    )  # fmt: skip
    assert text == (
        "2026-05-04 12:02:00 UTC BLOCK    request  modot  jdoe  10.20.1.5  gambling  "
        "www.bet365.com/  "
        "rule no-gambling [7.E] blocked"
    )


def test_human_line_for_a_warn_continuation_shows_the_reason() -> None:
    text = format_event(
        event(3, phase="continue", action=None, rule=None, rule_continued="social-warn",
              clauses_continued=["2"], work_reason="storm closure notice")
    )  # fmt: skip
    assert text.startswith("2026-05-04 12:03:00 UTC CONTINUE continue")
    assert text.endswith('past social-warn [2]: "storm closure notice"')


def test_human_line_for_other_events() -> None:
    text = format_event(
        {"time": "2026-05-04T12:00:00.000000Z", "event": "policy_reload_failed",
         "part": "policies", "errors": ["lab.yaml:3: x: bad"], "prev": "ab" * 32}
    )  # fmt: skip
    assert (
        text == "2026-05-04 12:00:00 UTC POLICY_RELOAD_FAILED part=policies "
        "errors=lab.yaml:3: x: bad"
    )


def test_colour_on_a_terminal_only(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    plain = review(str(log))
    assert "\x1b[" not in plain
    coloured = review(str(log), out=Terminal())
    assert "\x1b[1;31mBLOCK" in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in review(str(log), out=Terminal())
    monkeypatch.delenv("NO_COLOR")
    assert "\x1b[" not in review(str(log), "--json", out=Terminal())


# --------------------------------------------------------------------------- follow


def follow_in_thread(path: Path, *argv: str) -> tuple[io.StringIO, Callable[[], None]]:
    out = io.StringIO()
    done = threading.Event()
    args = parser().parse_args(["review", "-f", str(path), "--json", *argv])
    thread = threading.Thread(
        target=run_review, args=(args, out), kwargs={"now": NOW, "stop": done.is_set, "poll": 0.01}
    )
    thread.start()

    def stop() -> None:
        done.set()
        thread.join(5)
        assert not thread.is_alive()

    return out, stop


def wait_for(out: io.StringIO, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        got = ids(out.getvalue())
        if len(got) >= count:
            return got
        time.sleep(0.01)
    return ids(out.getvalue())


def append(path: Path, *records: dict[str, Any]) -> None:
    with path.open("a") as handle:
        for record in records:
            handle.write(line(record))


def test_follow_starts_at_the_end_and_survives_rename_rotation(tmp_path: Path) -> None:
    """logrotate `create`: old file read to its end, then the new file from its start."""
    path = write(tmp_path / "audit.jsonl", [event(0)])
    out, stop = follow_in_thread(path)
    try:
        time.sleep(0.3)  # let it open the file and seek to the end
        append(path, event(1))
        assert wait_for(out, 1) == ["r1"]
        path.rename(tmp_path / "audit.jsonl.1")
        append(tmp_path / "audit.jsonl.1", event(2))  # the writer's last line before it reopens
        time.sleep(0.05)
        append(path, event(3), event(4))
        assert wait_for(out, 4) == ["r1", "r2", "r3", "r4"]
    finally:
        stop()


def test_follow_survives_copytruncate(tmp_path: Path) -> None:
    path = write(tmp_path / "audit.jsonl", [])
    out, stop = follow_in_thread(path, "--since", "2026-05-04")  # from the start: no race
    try:
        append(path, event(0), event(1))
        assert wait_for(out, 2) == ["r0", "r1"]
        shutil.copyfile(path, tmp_path / "audit.jsonl.1")
        with path.open("r+b") as handle:
            handle.truncate(0)
        time.sleep(0.1)
        append(path, event(2))
        assert wait_for(out, 3) == ["r0", "r1", "r2"]
    finally:
        stop()


def test_follow_holds_a_partial_line_and_filters(tmp_path: Path) -> None:
    path = write(tmp_path / "audit.jsonl", [])
    out, stop = follow_in_thread(path, "--action", "block", "--since", "2026-05-04")
    try:
        text = line(event(1, action="block"))
        with path.open("a") as handle:
            handle.write(text[:20])
            handle.flush()
            time.sleep(0.05)
            handle.write(text[20:])
        append(path, event(2), event(3, action="block"))
        assert wait_for(out, 2) == ["r1", "r3"]
    finally:
        stop()


def test_follow_with_since_reads_from_the_start(tmp_path: Path) -> None:
    path = write(tmp_path / "audit.jsonl", [event(0), event(5)])
    out, stop = follow_in_thread(path, "--since", "2026-05-04T12:01")
    try:
        assert wait_for(out, 1) == ["r5"]
    finally:
        stop()


def test_follow_takes_one_file(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", [])
    args = parser().parse_args(["review", "-f", str(a), str(a)])
    with pytest.raises(ReviewError, match="one file"):
        run_review(args, io.StringIO(), now=NOW)
