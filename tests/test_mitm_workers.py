"""The supervisor of `aupgate run --workers`, with small real worker processes in place of
gateways: it passes signals on to every worker, relays shared warn-pass events between them and
replays them to a late one, kills a worker that will not stop, and fails a start when a worker
cannot start. Plus the pieces: audit file names, restart delays, systemd notification."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from aupgate.mitm import workers
from aupgate.mitm.workers import (
    Supervisor,
    notify_systemd,
    restart_delay,
    worker_audit_path,
)

FAKE_WORKER = r"""
import json, os, signal, socket, sys
index, notes, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def note(text):
    with open(notes, "a") as f:
        f.write(f"w{index} {text}\n")
link = socket.socket(fileno=int(os.environ["AUPGATE_SUPERVISOR_FD"]))
signal.signal(signal.SIGHUP, lambda *a: note("HUP"))
if mode == "stubborn":
    signal.signal(signal.SIGTERM, lambda *a: note("TERM ignored"))
else:
    signal.signal(signal.SIGTERM, lambda *a: (note("TERM"), sys.exit(0)))
if mode == "broken" and index == "1":
    sys.exit(3)
note(f"pid {os.getpid()}")
link.sendall(b"ready\n")
if index == "0" and mode == "publish":
    event = {"pass": ["browser:0f1e", "h.example"], "redeemed": "T", "expires": 1e12}
    link.sendall(json.dumps(event).encode() + b"\n")
while True:
    data = link.recv(65536)
    if not data:
        note("EOF")
        break
    for line in data.splitlines():
        note("got " + line.decode())
"""


def supervisor(tmp_path: Path, mode: str, count: int = 2) -> tuple[Supervisor, Path]:
    script = tmp_path / "worker.py"
    script.write_text(FAKE_WORKER)
    notes = tmp_path / "notes.txt"
    notes.touch()
    return Supervisor(count, lambda i: [sys.executable, str(script), str(i), str(notes), mode],
                      ()), notes


async def until(condition: object, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.05)):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_signals_reach_every_worker_and_stop_is_clean(tmp_path: Path) -> None:
    sup, notes = supervisor(tmp_path, "plain")
    running = asyncio.create_task(sup.run())
    await until(lambda: sup.slots and all(s.ready for s in sup.slots))
    sup.forward(signal.SIGHUP)
    await until(lambda: notes.read_text().count("HUP") == 2)
    sup.stop(signal.SIGTERM)
    assert await running == 0
    text = notes.read_text()
    assert "w0 TERM" in text and "w1 TERM" in text


async def test_events_are_relayed_and_replayed_to_a_late_worker(tmp_path: Path) -> None:
    sup, notes = supervisor(tmp_path, "publish")
    running = asyncio.create_task(sup.run())
    await until(lambda: "w1 got" in notes.read_text())
    assert "w0 got" not in notes.read_text()  # not sent back to where it came from
    old = sup.slots[1].pid
    assert old is not None
    os.kill(old, signal.SIGKILL)  # the restarted worker 1 gets the live event again
    await until(lambda: sup.slots[1].pid != old and notes.read_text().count("w1 got") == 2)
    line = [x for x in notes.read_text().splitlines() if x.startswith("w1 got")][-1]
    assert json.loads(line.split(" ", 2)[2])["pass"] == ["browser:0f1e", "h.example"]
    sup.stop()
    assert await running == 0


@pytest.mark.slow  # the stubborn workers get a whole second to stop
async def test_a_worker_that_will_not_stop_is_killed(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "STOP_GRACE", 1.0)
    sup, notes = supervisor(tmp_path, "stubborn")
    running = asyncio.create_task(sup.run())
    await until(lambda: sup.slots and all(s.ready for s in sup.slots))
    processes = [s.process for s in sup.slots]
    sup.stop()
    assert await running == 0
    assert notes.read_text().count("TERM ignored") == 2
    assert all(p is not None and p.returncode == -signal.SIGKILL for p in processes)


async def test_a_worker_that_cannot_start_fails_the_start(tmp_path: Path) -> None:
    sup, notes = supervisor(tmp_path, "broken")
    assert await sup.run() == 1
    assert sup.failed is not None and "worker 1 failed to start (exit status 3)" in sup.failed
    assert "w0 TERM" in notes.read_text()  # the one that did start was stopped


def test_restart_delay_backs_off_and_resets() -> None:
    failures, delays = 0, []
    for _ in range(8):
        failures, delay = restart_delay(failures, ran=2.0)
        delays.append(delay)
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert restart_delay(failures, ran=workers.STABLE_AFTER) == (1, 0.5)


def test_worker_audit_path() -> None:
    assert worker_audit_path("/var/log/aupgate/audit.jsonl", 0) == "/var/log/aupgate/audit.w0.jsonl"
    assert worker_audit_path("/var/log/audit", 3) == "/var/log/audit.w3"


def test_notify_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        notify_systemd("READY=1")
        assert listener.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    notify_systemd("READY=1")  # without systemd: nothing, no error
