"""`audit verify` across files and at their ends (issue 12, item 12).

It crashed with a traceback on a damaged `.gz` (and checked no file after it), passed a 0-byte
file, and could not see lines cut from the end of a file or a file deleted at the end of a
chain. The writer now ends every file with a checkpoint of why it stopped writing there
(`rotated`, `close`) and writes one every minute while it writes the file; these tests cut,
delete, damage and append, and read what verify says.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aupgate.audit.chain import line_hash, link
from aupgate.audit.envelope import format_time
from aupgate.audit.file import AuditFile
from aupgate.audit.links import quiet_limit
from aupgate.audit.verify import verify_files

AUPGATE = Path(sys.executable).with_name("aupgate")
START = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


class Clock:
    """The writer's clock, moved by hand: checkpoints get the times the test says."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def event(clock: Clock, n: int) -> str:
    clock.advance(1)
    return json.dumps({"schema_version": 1, "time": format_time(clock.now),
                       "event": "decision", "n": n})


def writer(path: Path, clock: Clock) -> AuditFile:
    return AuditFile(path, clock=clock, checkpoint_s=60)


def rotate(path: Path, to: Path) -> Path:
    path.rename(to)
    path.touch(mode=0o640)
    return to


def verify(*files: Path, as_of: datetime, partial: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = verify_files(list(files), anchors=(), out=out, as_of=format_time(as_of),
                        partial=partial)
    return code, out.getvalue()


def trail(folder: Path, clock: Clock, *, rotations: int = 2, close: bool = True) -> list[Path]:
    """A writer's files, oldest first: `rotations` rotated ones, then the live one."""
    path = folder / "audit.w0.jsonl"
    sink = writer(path, clock)
    files = []
    for r in range(rotations + 1):
        for n in range(3):
            sink.write(event(clock, 10 * r + n))
        if r < rotations:
            files.append(rotate(path, folder / f"audit.w0.jsonl-{r}"))
    if close:
        sink.close()
    return [*files, path]


def cut_tail(path: Path, lines: int) -> None:
    kept = path.read_bytes().splitlines(keepends=True)[:-lines]
    path.write_bytes(b"".join(kept))


def test_an_intact_trail_passes_and_says_how_each_file_ends(tmp_path: Path) -> None:
    clock = Clock()
    files = trail(tmp_path, clock)
    code, out = verify(*reversed(files), as_of=clock.now + timedelta(days=30))
    assert code == 0, out
    assert out.count("continued by") == 2 and "closed by its writer" in out


# --------------------------------------------------------------------------- damaged files


def test_a_damaged_gzip_is_a_finding_and_the_other_files_are_still_checked(
        tmp_path: Path) -> None:
    """A gzip cut short, and one with corrupt bytes: each is reported at the line where it
    stops being readable; every other file is still walked, and nothing raises."""
    clock = Clock()
    files = trail(tmp_path, clock, rotations=3)
    short = files[0].with_name(files[0].name + ".gz")
    data = gzip.compress(files[0].read_bytes() * 50)  # long enough to cut in the middle
    short.write_bytes(data[: len(data) // 2])
    corrupt = files[1].with_name(files[1].name + ".gz")
    packed = bytearray(gzip.compress(files[1].read_bytes()))
    packed[len(packed) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(packed))
    not_gzip = tmp_path / "notes.jsonl.gz"
    not_gzip.write_text("just text\n")
    code, out = verify(short, corrupt, not_gzip, files[2], files[3], as_of=clock.now)
    assert code == 1
    assert f"{short}:" in out and "damaged: cannot read past line" in out
    assert "(cut short)" in out
    assert f"{corrupt}:" in out
    assert f"{not_gzip}:0: cannot read: Not a gzipped file" in out
    assert f"{files[3]}: ok" in out  # the files after the damaged ones were checked


def test_damaged_gzip_through_the_command_line_prints_no_traceback(tmp_path: Path) -> None:
    clock = Clock()
    files = trail(tmp_path, clock)
    packed = files[0].with_name(files[0].name + ".gz")
    data = gzip.compress(files[0].read_bytes())
    packed.write_bytes(data[:-12])
    done = subprocess.run([str(AUPGATE), "audit", "verify", str(packed), str(files[1]),
                           str(files[2]), "--as-of", format_time(clock.now)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr == ""
    assert f"{packed}:" in done.stdout and "FAILED" in done.stdout


def test_an_empty_file_fails(tmp_path: Path) -> None:
    """A file the writer opened always has its `open` checkpoint: 0 bytes is not OK."""
    empty = tmp_path / "audit.jsonl"
    empty.touch()
    code, out = verify(empty, as_of=START)
    assert code == 1
    assert f"{empty}:0: no lines at all" in out


# --------------------------------------------------------------------------- ends


def test_lines_cut_from_the_end_of_a_closed_file(tmp_path: Path) -> None:
    """The last file loses its `close` checkpoint and lines before it: verify says the end is
    not where the writer left it, as soon as the writer's checkpoint interval has passed."""
    clock = Clock()
    files = trail(tmp_path, clock)
    cut_tail(files[-1], 2)
    last_time = START + timedelta(seconds=9)  # the event now at the end
    code, out = verify(*files, as_of=clock.now + timedelta(hours=1))
    assert code == 1
    assert f"{files[-1]}:" in out
    assert "without its writer's closing checkpoint" in out
    assert "lines were cut from the end of this file, or its writer was killed or hung" in out
    # what it cannot tell: within the checkpoint window the cut file looks like a live one
    soon = last_time + timedelta(seconds=quiet_limit(60) - 1)
    assert verify(*files, as_of=soon)[0] == 0


def test_lines_cut_from_the_end_of_a_rotated_file(tmp_path: Path) -> None:
    """The next file names the hash of the rotated file's last line: a cut is seen at once."""
    clock = Clock()
    files = trail(tmp_path, clock)
    cut_tail(files[0], 2)  # its rotation checkpoint and the event before it
    code, out = verify(*files, as_of=clock.now)
    assert code == 1
    assert f"{files[1]}:1: continues from a line hashed" in out
    assert "or lines were cut from the end of one" in out
    assert f"{files[0]}:" in out and "without its writer's closing checkpoint" in out
    assert f"its writer started {files[1]} after that" in out  # whatever the time now


def test_lines_appended_after_the_writer_left(tmp_path: Path) -> None:
    """A line added to a rotated file after its rotation checkpoint (a forger adding to the
    old file, hashes and all) is found: the next file continues from the checkpoint."""
    clock = Clock()
    files = trail(tmp_path, clock)
    last = files[0].read_bytes().splitlines()[-1]
    forged = link(event(clock, 99).encode(), line_hash(last)) + b"\n"
    with files[0].open("ab") as handle:
        handle.write(forged)
    code, out = verify(*files, as_of=clock.now)
    assert code == 1
    assert f"{files[1]}:1: continues from line 5 of {files[0]}, but that file goes on after " \
           f"it: lines 6-6 there were added after its writer left" in out


def test_a_deleted_file_at_the_end_of_a_chain(tmp_path: Path) -> None:
    """The live file deleted: the rotated file before it ends with the writer's rotation
    checkpoint, which nothing continues."""
    clock = Clock()
    files = trail(tmp_path, clock)
    files[-1].unlink()
    code, out = verify(*files[:-1], as_of=clock.now)
    assert code == 1
    assert f"{files[1]}:" in out and "the next file of this chain is missing" in out


def test_a_live_file_is_open_and_a_silent_one_is_not(tmp_path: Path) -> None:
    """A file still being written ends without a closing checkpoint; that is fine while its
    last line is recent, since the writer checkpoints every minute even when idle. A writer
    that went silent (killed, hung) is reported once that time has passed."""
    clock = Clock()
    files = trail(tmp_path, clock, close=False)
    code, out = verify(*files, as_of=clock.now + timedelta(seconds=30))
    assert code == 0, out
    assert "open: written 30 s before" in out
    code, out = verify(*files, as_of=clock.now + timedelta(minutes=10))
    assert code == 1 and "killed or hung then" in out


def test_partial_trail(tmp_path: Path) -> None:
    """Retention deletes the oldest file: with --partial the first file may continue a file
    not given; a missing newer file is still found."""
    clock = Clock()
    files = trail(tmp_path, clock, rotations=3)
    window = files[1:]
    assert verify(*window, as_of=clock.now)[0] == 1
    code, out = verify(*window, as_of=clock.now, partial=True)
    assert code == 0, out
    assert "continues a file not given" in out
    code, out = verify(*window[:-2], window[-1], as_of=clock.now, partial=True)
    assert code == 1 and "the next file of this chain is missing" in out


def test_files_from_an_older_writer_have_no_checkpoints(tmp_path: Path) -> None:
    """Files written before checkpoints existed still verify; their end is not judged."""
    path = tmp_path / "old.jsonl"
    first = link(event(Clock(), 0).encode(), None,
                 {"reason": "new-file", "file": str(path), "continues": None})
    second = link(event(Clock(), 1).encode(), line_hash(first))
    path.write_bytes(first + b"\n" + second + b"\n")
    code, out = verify(path, as_of=START + timedelta(days=400))
    assert code == 0, out
    assert "no checkpoints (an older writer): its end cannot be checked" in out


def test_several_writers_side_by_side(tmp_path: Path) -> None:
    """Two workers' chains, rotated on their own, plus a third writer that was killed (no
    closing checkpoint) long ago: each chain is linked by hash, and only the silent end is
    reported."""
    clock = Clock()
    files: list[Path] = []
    for worker in (0, 1):
        folder = tmp_path / f"w{worker}"
        folder.mkdir()
        files += trail(folder, clock)
    killed = tmp_path / "audit.w2.jsonl"
    sink = writer(killed, clock)
    sink.write(event(clock, 7))
    clock.advance(3600)
    code, out = verify(*files, as_of=clock.now)
    assert code == 0, out
    code, out = verify(*files, killed, as_of=clock.now)
    assert code == 1
    assert [line.split(":")[0] for line in out.splitlines()
            if line.startswith("/") and "closing checkpoint" in line] == [str(killed)]
    sink.close()


def test_command_line_as_of_and_partial(tmp_path: Path) -> None:
    clock = Clock()
    files = trail(tmp_path, clock, close=False)
    argv = [str(AUPGATE), "audit", "verify", *map(str, files)]
    stale = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert stale.returncode == 1 and "killed or hung" in stale.stdout  # as of now: years later
    fresh = subprocess.run([*argv, "--as-of", format_time(clock.now)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert fresh.returncode == 0, fresh.stdout
    bad = subprocess.run([*argv, "--as-of", "yesterday-ish"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 2 and "neither a duration" in bad.stderr
    window = subprocess.run([str(AUPGATE), "audit", "verify", "--partial", "--as-of",
                             format_time(clock.now), *map(str, files[1:])],
                            capture_output=True, text=True, timeout=60, check=False)
    assert window.returncode == 0, window.stdout


@pytest.mark.parametrize("reason", ["open", "interval", "rotated", "close"])
def test_checkpoint_lines_name_their_writer(tmp_path: Path, reason: str) -> None:
    """Every kind of checkpoint shows up in a trail with a timer, a rotation and a close."""
    clock = Clock()
    path = tmp_path / "audit.jsonl"
    sink = AuditFile(path, clock=clock, checkpoint_s=0.05)
    sink.write(event(clock, 0))
    sink.checkpoint()
    rotated = rotate(path, tmp_path / "audit.jsonl.1")
    sink.write(event(clock, 1))
    sink.close()
    records = [json.loads(line) for f in (rotated, path) for line in f.read_text().splitlines()]
    found = [r for r in records if r["event"] == "audit_checkpoint" and r["reason"] == reason]
    assert found and all(r["file"] == str(path) for r in found)
