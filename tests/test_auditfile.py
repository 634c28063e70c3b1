"""The production audit file: chained lines, logrotate in both modes, SIGHUP, loud failures."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from pathlib import Path

import pytest

from aupgate.audit.chain import line_hash, walk
from aupgate.audit.file import AuditFile, AuditUnavailableError, install_sighup_reopen
from aupgate.audit.log import AuditLog

DEV_FULL = Path("/dev/full")


def rendered(n: int) -> str:
    return json.dumps({"schema_version": 1, "time": "2026-05-04T12:00:00.000000Z", "n": n})


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_chain_intact(path: Path) -> None:
    with path.open("rb") as handle:
        result = walk(str(path), handle)
    assert result.broken is None, result.broken


def test_lines_are_linked_and_a_new_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = AuditFile(path)
    for n in range(3):
        sink.write(rendered(n) + "\n")
    sink.close()
    raw = path.read_bytes().splitlines()
    got = records(path)
    assert got[0]["prev"] is None
    assert got[0]["chain"] == {"reason": "new-file", "file": str(path), "continues": None}
    assert got[1]["prev"] == line_hash(raw[0])
    assert got[2]["prev"] == line_hash(raw[1])
    assert "chain" not in got[1]
    assert sink.last_hash == line_hash(raw[2])
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
    assert len(records(path)) == 2
    assert_chain_intact(path)


def test_file_is_created_0640(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    old = os.umask(0o022)
    try:
        AuditFile(path).close()
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_rename_rotation_opens_a_new_file_that_continues_the_old(tmp_path: Path) -> None:
    """logrotate `create` mode: the file is renamed and a new one appears; no signal needed."""
    path = tmp_path / "audit.jsonl"
    sink = AuditFile(path)
    sink.write(rendered(0))
    sink.write(rendered(1))
    rotated = tmp_path / "audit.jsonl.1"
    path.rename(rotated)
    sink.write(rendered(2))
    sink.close()
    assert [r["n"] for r in records(rotated)] == [0, 1]
    new = records(path)
    assert [r["n"] for r in new] == [2]
    assert new[0]["prev"] is None
    assert new[0]["chain"]["reason"] == "rotated"
    assert new[0]["chain"]["continues"] == line_hash(rotated.read_bytes().splitlines()[-1])


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
    assert [r["n"] for r in got] == [2]
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
    assert [r["n"] for r in records(path)] == [0, 1]
    assert_chain_intact(path)


def test_damaged_tail_is_ended_and_a_new_chain_says_why(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"schema_version": 1, "n": 0, "prev": null}\n{"torn": ')
    sink = AuditFile(path)
    sink.write(rendered(1))
    sink.close()
    lines = path.read_bytes().splitlines()
    assert lines[1] == b'{"torn": '
    last = json.loads(lines[2])
    assert last["n"] == 1
    assert last["chain"]["reason"] == "damaged-tail"


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
    assert got[0]["event"] == "audit_gap"
    assert got[0]["lost"] == 2
    assert got[0]["error"].startswith(f"cannot write audit log {path}")
    assert got[1]["n"] == 2
    assert_chain_intact(path)


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")
def test_audit_log_exposes_the_choice(tmp_path: Path) -> None:
    audit = AuditLog.open(DEV_FULL, on_failure="fail-closed")
    assert not audit.refusing
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
