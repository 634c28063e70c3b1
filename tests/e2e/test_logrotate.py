"""Debian's logrotate, with the shipped stanza, against `aupgate run` under load, with one
process and with `--workers 2` (issue 12, item 8).

The stanza used to say `copytruncate`: a line written between logrotate's copy and its truncate
was in neither file (12 lines lost in 20 rotations at ~800 requests/s) and `audit verify`
reported the broken links. It now says `create` and signals the service, and the writer keeps
writing the renamed file until it moves. Here every request the load generator saw answered
must have its decision line in the audit files, rotated and compressed ones included, exactly
once, and `aupgate audit verify` must pass on all of them. Then (item 12) a copy of that real
trail is damaged three ways and verify must name each and still walk every file.
"""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .background import background_load
from .conftest import AUPGATE, Certs, Proxy, Upstreams, start_proxy, stop_proxy

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "logrotate" / "aupgate"
SIGNAL_LINE = ("systemctl kill --kill-whom=main --signal=HUP aupgate.service "
               ">/dev/null 2>&1 || true")
ROTATIONS = 8


def logrotate_binary() -> str:
    found = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail("logrotate is not installed: .ci/run installs it (apt-get install -y "
                    "logrotate)", pytrace=False)
    return found


def stanza(logs: Path, supervisor: int) -> str:
    """The shipped file, pointed at the test's folder and its supervisor. Changed: the folder,
    root instead of the service user (the test runs as root), `kill -HUP PID` instead of
    systemctl (no systemd here), and seconds in the date suffix (several rotations a day)."""
    text = SHIPPED.read_text()
    for shipped in ("/var/log/aupgate", "su aupgate adm", "create 0640 aupgate adm",
                    SIGNAL_LINE, "dateformat -%Y%m%d\n"):
        assert shipped in text, shipped
    return (text.replace("/var/log/aupgate", str(logs))
            .replace("su aupgate adm", "su root root")
            .replace("create 0640 aupgate adm", "create 0640 root root")
            .replace(SIGNAL_LINE, f"kill -HUP {supervisor}")
            .replace("dateformat -%Y%m%d\n", "dateformat -%Y%m%d-%s\n"))


@pytest.fixture(params=[1, 2], ids=["one-process", "2-workers"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path, certs: Certs,
            upstreams: Upstreams) -> Iterator[tuple[Proxy, int]]:
    count: int = request.param
    started = start_proxy(tmp_path / "home", certs, upstreams, workers=count)
    if count > 1:
        started.wait_for(f"{count} workers serving")
    yield started, count
    stop_proxy(started)


def live_files(home: Path, count: int) -> list[Path]:
    """The files the gateway writes: audit.jsonl alone, or one per worker beside it."""
    if count == 1:
        return [home / "audit.jsonl"]
    return [home / f"audit.w{n}.jsonl" for n in range(count)]


def moved(live: Path) -> bool:
    """Whether the writer has moved to the file logrotate created at `live`: its first line is
    the writer's `open` checkpoint continuing the chain of the renamed file."""
    try:
        with live.open("rb") as handle:
            first = handle.readline()
    except FileNotFoundError:
        return False
    if not first.endswith(b"\n"):
        return False
    record = json.loads(first)
    return bool(record["event"] == "audit_checkpoint" and record["reason"] == "open"
                and record.get("chain", {}).get("reason") == "rotated")


def read_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.splitlines()


def test_no_line_lost_across_rotations_under_load(gateway: tuple[Proxy, int],
                                                  tmp_path: Path) -> None:
    workers, count = gateway
    logrotate = logrotate_binary()
    home = workers.home
    conf = tmp_path / "logrotate.conf"
    conf.write_text(stanza(home, workers.process.pid))
    started = time.monotonic()
    with background_load(workers.port, tmp_path, prefix="lr", threads=4, seconds=240,
                         record=True) as load:
        load.wait_for(200)
        for n in range(ROTATIONS):
            time.sleep(1.1)  # the date suffix has seconds: one rotation per second at most
            load.wait_for(load.answered() + 50)  # traffic across every rotation
            done = subprocess.run([logrotate, "-f", "-s", str(tmp_path / "state"), str(conf)],
                                  capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0 and "error" not in done.stderr, done.stderr
            deadline = time.monotonic() + 30
            while not all(moved(live) for live in live_files(home, count)) or (
                    count > 1 and workers.log().count("SIGHUP passed to workers w0") < n + 1):
                assert time.monotonic() < deadline, workers.log()[-2000:]
                time.sleep(0.05)
        load.wait_for(load.answered() + 100)
    took = time.monotonic() - started
    summary = load.summary
    assert summary["failed"] == 0, summary["failures"]
    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(timeout=30) == 0

    files = sorted(home.glob("audit*.jsonl*"))
    compressed = [f for f in files if f.name.endswith(".gz")]
    rotated = [f for f in files if not f.name.endswith(".jsonl")]
    assert len(rotated) == count * ROTATIONS, [f.name for f in files]  # every file, each time
    assert len(compressed) == count * (ROTATIONS - 1)  # delaycompress: all but the newest
    seen: Counter[str] = Counter()
    for path in files:
        for raw in read_lines(path):
            record = json.loads(raw)
            if record["event"] == "decision" and str(record.get("path", "")).startswith("/lr/"):
                seen[record["path"]] += 1
    answered = summary["paths"]
    lost = [p for p in answered if seen[p] == 0]
    twice = [p for p, n in seen.items() if n > 1]
    figures = (f"{len(answered)} requests answered in {took:.1f} s "
               f"({len(answered) / took:.0f}/s), {ROTATIONS} rotations of {count} file(s), "
               f"{len(files)} files: {len(lost)} lines lost, {len(twice)} written twice")
    print(figures)
    assert not lost and not twice, figures
    assert len(answered) == summary["ok"] >= 200 + ROTATIONS * 50

    verify = subprocess.run([str(AUPGATE), "audit", "verify", *map(str, files)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"OK: {len(files)} file(s)" in verify.stdout
    assert verify.stdout.count("continued by") == count * ROTATIONS
    assert verify.stdout.count("closed by its writer") == count
    damage_and_verify(files, tmp_path / "damaged")


def damage_and_verify(files: list[Path], folder: Path) -> None:
    """Item 12 on the real trail: a copy with a .gz cut short, a rotated file deleted from the
    middle of a chain and lines cut from the end of the closed live file. verify names each,
    at its file, without a traceback, and still walks every other file."""
    folder.mkdir()
    copies = []
    for path in files:
        shutil.copy2(path, folder / path.name)
        copies.append(folder / path.name)
    packed = sorted(c for c in copies if c.name.endswith(".gz"))
    cut_gz, deleted = packed[0], packed[2]
    data = cut_gz.read_bytes()
    cut_gz.write_bytes(data[: len(data) // 2])
    deleted.unlink()
    copies.remove(deleted)
    live = next(c for c in copies if c.name.endswith(".jsonl"))
    kept = live.read_bytes().splitlines(keepends=True)[:-2]  # the close checkpoint and one more
    live.write_bytes(b"".join(kept))
    # an hour on: the cut file's last line is then older than the writer's checkpoints allow
    # (within 3 minutes of it, a cut cannot be told from a writer that has not written yet)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    done = subprocess.run([str(AUPGATE), "audit", "verify", "--as-of", later, *map(str, copies)],
                          capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout
    assert done.returncode == 1 and done.stderr == "", out + done.stderr
    assert f"{cut_gz}:" in out and "damaged: cannot read past line" in out, out
    assert "a file before it is missing" in out, out  # the file after the deleted one
    assert f"{live}:{len(kept)}: ends at line {len(kept)}" in out, out
    assert "without its writer's closing checkpoint" in out, out
    walked = [c for c in copies if f"{c}: ok" in out or f"{c}: BROKEN" in out]
    assert len(walked) == len(copies), out  # every file given was walked
