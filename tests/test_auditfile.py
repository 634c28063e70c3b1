"""The production audit file: chained lines, logrotate in both modes, SIGHUP, loud failures."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from aupgate.audit.chain import CHECKPOINT, line_hash, walk
from aupgate.audit.file import AuditFile, AuditUnavailableError, install_sighup_reopen
from aupgate.audit.log import AuditLog

DEV_FULL = Path("/dev/full")


def rendered(n: int) -> str:
    return json.dumps({"schema_version": 1, "time": "2026-05-04T12:00:00.000000Z", "n": n})


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def events(path: Path) -> list[dict[str, object]]:
    """The lines written through `write`, without the writer's own checkpoints."""
    return [r for r in records(path) if r.get("event") != CHECKPOINT]


def checkpoints(path: Path) -> list[object]:
    """The reasons of the writer's checkpoints in a file, in order."""
    return [r["reason"] for r in records(path) if r.get("event") == CHECKPOINT]


def assert_chain_intact(path: Path) -> None:
    with path.open("rb") as handle:
        result = walk(str(path), handle)
    assert result.broken is None, result.broken


def test_lines_are_linked_and_a_new_file_says_so(tmp_path: Path) -> None:
    """The writer's `open` checkpoint starts the chain (so a file it opened is never empty);
    each line links to the one before; `close` ends the file."""
    path = tmp_path / "audit.jsonl"
    sink = AuditFile(path)
    assert checkpoints(path) == ["open"]  # at once, before any event
    for n in range(3):
        sink.write(rendered(n) + "\n")
    assert sink.last_hash == line_hash(path.read_bytes().splitlines()[-1])
    sink.close()
    raw = path.read_bytes().splitlines()
    got = records(path)
    assert got[0]["event"] == CHECKPOINT and got[0]["reason"] == "open"
    assert got[0]["file"] == str(path) and got[0]["interval_s"] == 60.0
    assert got[0]["pid"] == os.getpid()
    assert got[0]["prev"] is None
    assert got[0]["chain"] == {"reason": "new-file", "file": str(path), "continues": None}
    assert [r["n"] for r in got[1:4]] == [0, 1, 2]
    for number in range(1, 5):
        assert got[number]["prev"] == line_hash(raw[number - 1])
        assert "chain" not in got[number]
    assert got[4]["event"] == CHECKPOINT and got[4]["reason"] == "close"
    assert sink.last_hash == line_hash(raw[4])
    assert_chain_intact(path)


def test_reopening_a_file_continues_its_chain(tmp_path: Path) -> None:
    """A restart appends to the chain instead of starting one in mid-file."""
    path = tmp_path / "audit.jsonl"
    first = AuditFile(path)
    first.write(rendered(0))
    first.close()
    second = AuditFile(path)
    second.write(rendered(1))
    second.close()
    assert [r["n"] for r in events(path)] == [0, 1]
    assert checkpoints(path) == ["open", "close", "open", "close"]
    assert_chain_intact(path)


def test_file_is_created_0640(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    old = os.umask(0o022)
    try:
        AuditFile(path).close()
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_rename_rotation_loses_nothing_between_rename_and_create(tmp_path: Path) -> None:
    """logrotate `create` mode renames the file, then creates the new one. Lines written in
    between go on into the renamed file (they are not lost, and the writer does not race
    logrotate to create the path); once the new file is there the writer ends the old one with
    a `rotated` checkpoint and starts the new one continuing from it. No signal needed."""
    path = tmp_path / "audit.jsonl"
    sink = AuditFile(path)
    sink.write(rendered(0))
    sink.write(rendered(1))
    rotated = tmp_path / "audit.jsonl.1"
    path.rename(rotated)
    sink.write(rendered(2))  # between logrotate's rename and its create
    assert not path.exists()
    path.touch(mode=0o640)  # logrotate's create
    sink.write(rendered(3))
    sink.close()
    assert [r["n"] for r in events(rotated)] == [0, 1, 2]
    assert checkpoints(rotated) == ["open", "rotated"]
    new = records(path)
    assert [r["n"] for r in events(path)] == [3]
    assert new[0]["event"] == CHECKPOINT and new[0]["reason"] == "open"
    assert new[0]["prev"] is None
    assert new[0]["chain"]["reason"] == "rotated"
    assert new[0]["chain"]["continues"] == line_hash(rotated.read_bytes().splitlines()[-1])
    assert checkpoints(path) == ["open", "close"]


def test_reopen_moves_to_the_new_file_at_once(tmp_path: Path) -> None:
    """SIGHUP after logrotate (`reopen`): the old file gets its last line and the new one its
    first at once, with no traffic; a missing path is created (the old file was renamed by
    hand); with nothing rotated, reopening writes nothing."""
    path = tmp_path / "audit.jsonl"
    sink = AuditFile(path)
    sink.write(rendered(0))
    sink.reopen()
    assert checkpoints(path) == ["open"]  # the path still names the file: nothing to do
    rotated = tmp_path / "audit.jsonl.1"
    path.rename(rotated)
    sink.reopen()
    assert checkpoints(rotated) == ["open", "rotated"]
    assert checkpoints(path) == ["open"]
    assert records(path)[0]["chain"]["continues"] == line_hash(
        rotated.read_bytes().splitlines()[-1])
    sink.close()


def test_a_deleted_file_is_left_at_once(tmp_path: Path) -> None:
    """Deleted (no name left): the lines would go nowhere, so the writer makes a new file at
    once, whose chain says the file before was deleted."""
    path = tmp_path / "audit.jsonl"
    sink = AuditFile(path)
    sink.write(rendered(0))
    path.unlink()
    sink.write(rendered(1))
    sink.close()
    got = records(path)
    assert got[0]["chain"]["reason"] == "deleted" and got[0]["chain"]["continues"]
    assert [r["n"] for r in events(path)] == [1]


def test_rotation_to_a_file_made_by_logrotate(tmp_path: Path) -> None:
    """`create 0640 ...`: logrotate makes the empty file itself before we write again."""
    path = tmp_path / "audit.jsonl"
    sink = AuditFile(path)
    sink.write(rendered(0))
    path.rename(tmp_path / "audit.jsonl.1")
    path.touch()
    sink.write(rendered(1))
    sink.close()
    assert records(path)[0]["chain"]["reason"] == "rotated"


def test_checkpoints_come_on_a_timer_and_follow_a_rotation(tmp_path: Path) -> None:
    """With no traffic at all, the timer writes `interval` checkpoints (a live file's last line
    is never older than that) and notices a rotation by itself."""
    path = tmp_path / "audit.jsonl"
    sink = AuditFile(path, checkpoint_s=0.1)
    try:
        deadline = time.monotonic() + 10
        while checkpoints(path).count("interval") < 2:
            assert time.monotonic() < deadline, checkpoints(path)
            time.sleep(0.05)
        rotated = tmp_path / "audit.jsonl.1"
        path.rename(rotated)
        path.touch()
        while not checkpoints(path):
            assert time.monotonic() < deadline, "the rotation was not followed"
            time.sleep(0.05)
    finally:
        sink.close()
    assert checkpoints(rotated)[-1] == "rotated"
    assert checkpoints(path)[0] == "open" and checkpoints(path)[-1] == "close"
    assert_chain_intact(rotated)
    assert_chain_intact(path)
    with pytest.raises(ValueError, match="positive"):
        AuditFile(tmp_path / "other.jsonl", checkpoint_s=0)


def test_copytruncate_writes_at_the_start_without_a_hole(tmp_path: Path) -> None:
    """logrotate `copytruncate`: O_APPEND writes at the new end, and a new chain starts."""
    path = tmp_path / "audit.jsonl"
    sink = AuditFile(path)
    sink.write(rendered(0))
    sink.write(rendered(1))
    copy = tmp_path / "audit.jsonl.1"
    shutil.copyfile(path, copy)
    with path.open("r+b") as handle:
        handle.truncate(0)
    sink.write(rendered(2))
    sink.close()
    data = path.read_bytes()
    assert not data.startswith(b"\0")
    got = records(path)
    assert [r["n"] for r in events(path)] == [2]
    assert got[0]["chain"]["reason"] == "truncated"
    assert got[0]["chain"]["continues"] == line_hash(copy.read_bytes().splitlines()[-1])


def test_sighup_reopens(tmp_path: Path) -> None:
    """`postrotate kill -HUP`: the next line goes to whatever the path names now."""
    path = tmp_path / "audit.jsonl"
    sink = AuditFile(path)
    previous = signal.getsignal(signal.SIGHUP)
    try:
        install_sighup_reopen([sink])
        sink.write(rendered(0))
        os.kill(os.getpid(), signal.SIGHUP)
        assert sink._reopen  # the handler only sets a flag: signal-safe
        sink.write(rendered(1))
        assert not sink._reopen
    finally:
        signal.signal(signal.SIGHUP, previous)
        sink.close()
    assert [r["n"] for r in events(path)] == [0, 1]
    assert checkpoints(path) == ["open", "close"]  # the path still named the file: no move
    assert_chain_intact(path)


def test_damaged_tail_is_ended_and_a_new_chain_says_why(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"schema_version": 1, "n": 0, "prev": null}\n{"torn": ')
    sink = AuditFile(path)
    sink.write(rendered(1))
    sink.close()
    lines = path.read_bytes().splitlines()
    assert lines[1] == b'{"torn": '
    opened = json.loads(lines[2])
    assert opened["reason"] == "open"
    assert opened["chain"]["reason"] == "damaged-tail"
    assert json.loads(lines[3])["n"] == 1


# --------------------------------------------------------------------------- failures


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")
def test_full_disk_keeps_serving_and_says_so_loudly(caplog: pytest.LogCaptureFixture) -> None:
    """on_audit_failure=serve: no exception, CRITICAL log, the loss is counted."""
    sink = AuditFile(DEV_FULL, on_failure="serve")
    with caplog.at_level(logging.CRITICAL, logger="aupgate.auditfile"):
        sink.write(rendered(0))
        sink.write(rendered(1))
    assert not sink.healthy
    assert not sink.refusing
    assert sink._lost == 2
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1  # loud once, not once per request
    assert "cannot write audit log /dev/full" in messages[0]
    assert "still serving" in messages[0]
    sink.close()


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")
def test_full_disk_fail_closed_raises_and_refuses() -> None:
    """on_audit_failure=fail-closed: the adapter sees an exception and `refusing`."""
    sink = AuditFile(DEV_FULL, on_failure="fail-closed")
    with pytest.raises(AuditUnavailableError, match="No space left"):
        sink.write(rendered(0))
    assert sink.refusing
    sink.close()


def test_unwritable_path_is_reported_at_start_without_raising(tmp_path: Path) -> None:
    """A bad --audit-log is visible at start-up (`refusing`), and every event then raises."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    sink = AuditFile(blocker / "audit.jsonl", on_failure="fail-closed")
    assert sink.refusing
    assert sink.last_error is not None
    with pytest.raises(AuditUnavailableError):
        sink.write(rendered(0))


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")
def test_recovery_records_the_gap_in_the_chain(tmp_path: Path) -> None:
    """When the disk is back, an audit_gap event says how many events were lost, and since when."""
    path = tmp_path / "audit.jsonl"
    path.symlink_to(DEV_FULL)
    sink = AuditFile(path)
    sink.write(rendered(0))
    sink.write(rendered(1))
    path.unlink()
    sink.write(rendered(2))
    sink.close()
    assert sink.healthy
    got = records(path)
    assert got[0]["event"] == CHECKPOINT and got[0]["reason"] == "open"
    assert got[1]["event"] == "audit_gap"
    assert got[1]["lost"] == 2  # the events, not the checkpoints that failed with them
    assert got[1]["error"].startswith(f"cannot write audit log {path}")
    assert got[2]["n"] == 2
    assert_chain_intact(path)


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")
def test_audit_log_exposes_the_choice(tmp_path: Path) -> None:
    audit = AuditLog.open(DEV_FULL, on_failure="fail-closed")
    assert audit.refusing  # the writer's `open` checkpoint could not be written: known at once
    with pytest.raises(AuditUnavailableError):
        audit.event("decision", request_id="r1")
    assert audit.refusing
    audit.close()
    serving = AuditLog.open(DEV_FULL, on_failure="serve")
    serving.event("decision", request_id="r1")
    assert not serving.refusing
    assert not serving.files[0].healthy
    serving.close()


def test_audit_log_writes_envelope_first_and_chains(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog.open(path)
    audit.event("decision", request_id="r1")
    audit.event("decision", request_id="r2")
    audit.close()
    first = path.read_text().splitlines()[0]
    assert first.startswith('{"schema_version": 1, "time": "')
    assert list(json.loads(first))[:3] == ["schema_version", "time", "event"]
    assert_chain_intact(path)


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")
def test_stdout_still_gets_the_line_when_the_file_fails_closed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """fail-closed refuses the request, but journald still sees the decision."""
    audit = AuditLog.open(DEV_FULL, stdout=True, on_failure="fail-closed")
    with pytest.raises(AuditUnavailableError):
        audit.event("decision", request_id="r1")
    audit.close()
    assert json.loads(capsys.readouterr().out)["request_id"] == "r1"
