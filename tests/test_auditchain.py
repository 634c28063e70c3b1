"""Tamper evidence: every alteration in the middle of a chain is found, with file and line."""

from __future__ import annotations

import argparse
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aupgate.audit.chain import line_hash, link, walk
from aupgate.audit.envelope import format_time
from aupgate.audit.file import AuditFile
from aupgate.audit.log import now_text
from aupgate.audit.verify import verify_files
from aupgate.cli.audit import add_audit_parsers


def link_text(line: str, prev: str | None, chain: dict[str, object] | None = None) -> str:
    """`link` for a line held as text (the tests build lines with json.dumps)."""
    return link(line.encode(), prev, chain).decode()


def rendered(n: int, minute: int = 0) -> str:
    time = f"2026-05-04T12:{minute:02d}:{n % 60:02d}.000000Z"
    return json.dumps({"schema_version": 1, "time": time, "event": "decision", "n": n})


def write_log(path: Path, count: int, minute: int = 0) -> AuditFile:
    sink = AuditFile(path)
    for n in range(count):
        sink.write(rendered(n, minute))
    return sink


def verify(*files: Path, anchors: tuple[str, ...] = (), as_of: str | None = None,
           partial: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    when = as_of or format_time(datetime.now(UTC))
    code = verify_files(list(files), anchors=anchors, out=out, as_of=when, partial=partial)
    return code, out.getvalue()


def rotate(path: Path, to: Path) -> Path:
    """What logrotate's `create` does: rename the file, then create the new one."""
    path.rename(to)
    path.touch(mode=0o640)
    return to


def test_now_text_is_format_time_of_now() -> None:
    """The writer's clock text (each second formatted once) reads as `format_time` does."""
    import re
    from datetime import UTC, datetime

    before = format_time(datetime.now(UTC))
    texts = [now_text() for _ in range(1000)]
    after = format_time(datetime.now(UTC))
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", t) for t in texts)
    assert before <= texts[0] and texts == sorted(texts) and texts[-1] <= after


@pytest.mark.parametrize("prev", [None, "ab" * 32])
@pytest.mark.parametrize("chain", [None, {"reason": "new-file", "file": "/x/a\u00e9.jsonl",
                                          "continues": None}])
def test_link_keeps_the_line_and_appends_valid_json(prev: str | None,
                                                    chain: dict[str, object] | None) -> None:
    line = rendered(1)
    linked = link(line.encode(), prev, chain)
    record = json.loads(linked)
    assert linked.startswith(line[:-1].encode())
    assert record["prev"] == prev and record.get("chain") == chain
    assert list(record)[-1] == ("chain" if chain else "prev")
    with pytest.raises(ValueError, match="non-empty JSON object"):
        link(b"{}", prev, chain)


def test_format_time_is_fixed_width() -> None:
    """Whole seconds keep their `.000000`, so text order is time order."""
    from datetime import UTC, datetime

    assert format_time(datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)) == "2026-05-04T12:00:00.000000Z"


def test_link_appends_prev_last() -> None:
    assert link_text('{"a": 1}', None, {"reason": "new-file"}) == (
        '{"a": 1, "prev": null, "chain": {"reason": "new-file"}}'
    )
    assert link_text('{"a": 1}', "ab") == '{"a": 1, "prev": "ab"}'
    with pytest.raises(ValueError, match="non-empty JSON object"):
        link(b"{}", None)


def test_intact_file_passes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 5).close()
    code, out = verify(path)
    assert code == 0, out
    assert "7 line(s), chain starts at line 1 (new-file), closed by its writer" in out
    assert out.rstrip().endswith("every link holds, every end is where its writer left it")


def edit_line(path: Path, number: int, change: str) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    index = number - 1
    if change == "alter":
        lines[index] = lines[index].replace(b'"n": ', b'"n": 1')
    elif change == "remove":
        del lines[index]
    elif change == "insert":
        lines.insert(index, lines[index])
    elif change == "garble":
        lines[index] = b"{not json\n"
    elif change == "unlink":
        record = json.loads(lines[index])
        del record["prev"]
        lines[index] = json.dumps(record).encode() + b"\n"
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        ("alter", 3, "line 4: 'prev' does not match line 3"),
        ("remove", 3, "line 3: 'prev' does not match line 2"),
        ("insert", 3, "line 4: 'prev' does not match line 3"),
        ("garble", 3, "line 3: line is not JSON"),
        ("unlink", 3, "line 3: no chain link"),
    ],
)
def test_tampering_is_found_at_its_line(
    tmp_path: Path, change: str, line: int, message: str
) -> None:
    """Altered, removed, inserted or damaged lines are reported as FILE:LINE: what."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 6).close()
    edit_line(path, line, change)
    code, out = verify(path)
    assert code == 1
    assert f"{path}:{message.replace('line ', '', 1)}" in out, out


def test_restart_in_mid_file_is_a_break(tmp_path: Path) -> None:
    """A forged chain start hides a cut; it is reported where it appears."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 3).close()
    with path.open("a") as handle:
        handle.write(link_text(rendered(9), None, {"reason": "new-file", "file": "x"}) + "\n")
    code, out = verify(path)
    assert code == 1
    assert f"{path}:6: chain restarts in mid-file (new-file)" in out


def test_torn_last_line_is_a_break(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2).close()
    with path.open("a") as handle:
        handle.write('{"schema_version": 1')
    code, out = verify(path)
    assert code == 1
    assert f"{path}:5: last line is incomplete" in out


def rotated_pair(tmp_path: Path) -> tuple[Path, Path]:
    path = tmp_path / "audit.jsonl"
    sink = write_log(path, 3, minute=0)
    old = rotate(path, tmp_path / "audit.jsonl.1")
    for n in range(3):
        sink.write(rendered(n, minute=5))
    sink.close()
    return old, path


def test_rotated_files_link_up_in_time_order(tmp_path: Path) -> None:
    """Given in any order, rotated files (one gzipped) are put in time order and linked."""
    old, new = rotated_pair(tmp_path)
    packed = tmp_path / "audit.jsonl.1.gz"
    packed.write_bytes(gzip.compress(old.read_bytes()))
    code, out = verify(new, packed)
    assert code == 0, out


def test_missing_file_between_rotations_is_found(tmp_path: Path) -> None:
    """Three rotations, the middle file not given: the link across the gap is reported."""
    path = tmp_path / "audit.jsonl"
    sink = write_log(path, 2, minute=0)
    oldest = rotate(path, tmp_path / "audit.jsonl.2")
    for n in range(2):
        sink.write(rendered(n, minute=5))
    rotate(path, tmp_path / "audit.jsonl.1")
    for n in range(2):
        sink.write(rendered(n, minute=9))
    sink.close()
    assert verify(oldest, tmp_path / "audit.jsonl.1", path)[0] == 0
    code, out = verify(oldest, path)
    assert code == 1
    assert f"{path}:1: continues from a line hashed" in out
    assert "a file before it is missing" in out
    assert f"{oldest}:" in out and "the next file of this chain is missing" in out


def test_workers_files_rotated_side_by_side(tmp_path: Path) -> None:
    """`aupgate run --workers 2`: two chains, each rotated on its own, their files interleaved
    in time. Each continuing file links to its own worker's earlier file, wherever it sorts."""
    files = {}
    for worker, minute in ((0, 0), (1, 1)):
        path = tmp_path / f"audit.w{worker}.jsonl"
        sink = write_log(path, 2, minute=minute)
        files[f"w{worker}-old"] = rotate(path, tmp_path / f"audit.w{worker}.jsonl.1")
        for n in range(2):
            sink.write(rendered(n, minute=minute + 5))
        sink.close()
        files[f"w{worker}"] = path
    code, out = verify(*files.values())
    assert code == 0, out
    assert out.count("continues a chain from an earlier file") == 0
    assert out.count("chain starts at line 1 (rotated)") == 2
    code, out = verify(files["w0-old"], files["w0"], files["w1"])
    assert code == 1
    assert f"{files['w1']}:1: continues from a line hashed" in out
    assert "a file before it is missing" in out


def test_copytruncate_race_line_links_to_the_copy(tmp_path: Path) -> None:
    """A file whose first line continues another file passes only with that file before it."""
    first = tmp_path / "a.jsonl"
    write_log(first, 2).close()
    last = line_hash(first.read_bytes().splitlines()[-1])
    second = tmp_path / "b.jsonl"
    second.write_text(link_text(rendered(5, minute=3), last) + "\n")
    assert verify(first, second)[0] == 0
    code, out = verify(second)
    assert code == 1
    assert "the chain does not start here" in out


def test_anchor(tmp_path: Path) -> None:
    """A hash noted earlier must still be in the chain: proves nothing up to it was rewritten."""
    path = tmp_path / "audit.jsonl"
    sink = write_log(path, 4)
    anchor = sink.last_hash
    assert anchor is not None
    sink.close()
    assert verify(path, anchors=(anchor,))[0] == 0
    edit_line(path, 4, "alter")
    code, out = verify(path, anchors=(anchor,))
    assert code == 1
    assert f"no line hashes to {anchor}" in out


def test_rehashed_file_passes_without_anchor(tmp_path: Path) -> None:
    """What verify cannot prove: a whole file re-hashed by someone with write access passes."""
    path = tmp_path / "audit.jsonl"
    sink = write_log(path, 3)
    anchor = sink.last_hash
    sink.close()
    forged = tmp_path / "forged.jsonl"
    prev: str | None = None
    out_lines = []
    for raw in path.read_bytes().splitlines():
        record = json.loads(raw)
        record.pop("prev")
        chain = record.pop("chain", None)
        record["n"] = 99
        line = link_text(json.dumps(record), prev, chain)
        out_lines.append(line)
        prev = line_hash(line.encode())
    forged.write_text("\n".join(out_lines) + "\n")
    assert verify(forged)[0] == 0
    assert anchor is not None
    assert verify(forged, anchors=(anchor,))[0] == 1


def test_walk_counts_lines() -> None:
    lines = [link_text(rendered(0), None, {"reason": "new-file", "file": "f"}).encode() + b"\n"]
    lines.append(link_text(rendered(1), line_hash(lines[0])).encode() + b"\n")
    result = walk("f", lines)
    assert result.broken is None
    assert result.lines == 2
    assert result.last_hash == line_hash(lines[1])


def test_parser_registers_audit_verify(tmp_path: Path) -> None:
    """`aupgate audit verify FILE... --anchor H` parses to the verify command."""
    parser = argparse.ArgumentParser(prog="aupgate")
    add_audit_parsers(parser.add_subparsers(dest="command"))
    path = tmp_path / "audit.jsonl"
    write_log(path, 2).close()
    args = parser.parse_args(["audit", "verify", str(path)])
    assert args.func(args) == 0
