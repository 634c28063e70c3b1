"""`aupgate run --workers 2` on loopback: both workers serve one port, a killed worker is
restarted while traffic continues, reloads and SIGHUP reach every worker, each worker's audit
file verifies (rotated too), and stopping is clean, even when the supervisor itself is killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aupgate.audit.envelope import format_time
from aupgate.audit.verify import verify_files

from .conftest import (
    AUPGATE,
    CURL,
    Certs,
    Proxy,
    Upstreams,
    curl,
    start_proxy,
    stop_proxy,
    until,
)


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def last_event(path: Path) -> dict[str, Any]:
    """The last event recorded in a worker's file, which must end with the writer's `close`
    checkpoint (the worker closed its file: nothing was cut)."""
    found = records(path)
    assert found and found[-1]["event"] == "audit_checkpoint", found[-1:]
    assert found[-1]["reason"] == "close", found[-1]
    return found[-2]


def worker_file(proxy: Proxy, index: int) -> Path:
    return proxy.home / f"audit.w{index}.jsonl"


def worker_pid(proxy: Proxy, index: int) -> int:
    """The pid in the worker's latest proxy_start (its current file may be a rotated one's
    successor, without one)."""
    starts = [r for path in proxy.home.glob(f"audit.w{index}.jsonl*") for r in records(path)
              if r["event"] == "proxy_start"]
    return int(max(starts, key=lambda r: r["time"])["pid"])


def get(proxy: Proxy, path: str, timeout: float = 10) -> int:
    done = subprocess.run(
        [CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", str(timeout),
         "--proxy", proxy.url, f"http://www.example.org{path}"],
        capture_output=True, text=True, timeout=timeout + 5, check=False)
    return int(done.stdout or 0)


def load(proxy: Proxy, stop: threading.Event, results: list[tuple[float, float, int]],
         prefix: str) -> None:
    """Requests one after another, each on a new connection: (start, end, status) each."""
    n = 0
    while not stop.is_set():
        n += 1
        start = time.monotonic()
        code = get(proxy, f"/{prefix}-{n}", timeout=5)
        results.append((start, time.monotonic(), code))


@contextmanager
def loading(proxy: Proxy, prefix: str) -> Iterator[list[tuple[float, float, int]]]:
    """Four clients making requests without pause while the block runs; their results."""
    stop = threading.Event()
    results: list[tuple[float, float, int]] = []
    threads = [threading.Thread(target=load, args=(proxy, stop, results, f"{prefix}{t}"))
               for t in range(4)]
    for thread in threads:
        thread.start()
    try:
        yield results
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def decisions_in(proxy: Proxy, index: int, prefix: str) -> int:
    return sum(1 for r in records(worker_file(proxy, index))
               if r["event"] == "decision" and str(r.get("path", "")).startswith(prefix))


def both_serve(proxy: Proxy, prefix: str) -> None:
    """Parallel requests until each worker's file has one: the kernel hands connections on the
    shared socket to whichever worker accepts first."""
    with loading(proxy, prefix) as results:
        until(lambda: all(decisions_in(proxy, i, f"/{prefix}") for i in (0, 1)), 30,
              "both workers to serve")
    assert {code for _, _, code in results} == {200}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
         upstreams: Upstreams) -> Iterator[Proxy]:
    started = start_proxy(tmp_path_factory.mktemp("workers"), certs, upstreams, workers=2)
    started.wait_for("2 workers serving")
    yield started
    stop_proxy(started)


def test_both_workers_serve_one_port(pair: Proxy) -> None:
    both_serve(pair, "both")
    pids = {worker_pid(pair, 0), worker_pid(pair, 1)}
    assert len(pids) == 2 and pair.process.pid not in pids
    assert not pair.audit_path.exists()  # no file for the supervisor: it writes nothing


def test_every_worker_signs_with_the_one_ca_on_disk(pair: Proxy) -> None:
    """A new confdir: worker 0 makes the CA before the others start, so HTTPS through any
    worker verifies against the one CA file clients are given."""
    for n in range(40):
        assert curl(pair, f"https://www.example.org/tls-{n}").status == 200
        if n >= 5 and served_by(pair, scheme="https") == {0, 1}:
            return
    raise AssertionError(f"HTTPS served by {served_by(pair, scheme='https')} only")


def test_policy_reload_reaches_every_worker(pair: Proxy) -> None:
    policy = pair.policy_dir / "lab.yaml"
    policy.write_text(policy.read_text() + "\n# edited while serving\n")

    def reloaded(index: int) -> bool:
        return any(r["event"] == "policy_reloaded" and r["part"] == "policies"
                   for r in records(worker_file(pair, index)))

    until(lambda: reloaded(0) and reloaded(1), 20, "policy_reloaded in both workers' files")


def test_sighup_reaches_every_worker_and_rotated_files_verify(pair: Proxy) -> None:
    pids = [worker_pid(pair, i) for i in (0, 1)]
    rotated = []
    for i in (0, 1):
        rotated.append(worker_file(pair, i).rename(pair.home / f"audit.w{i}.jsonl.1"))
    pair.process.send_signal(signal.SIGHUP)
    pair.wait_for(f"SIGHUP passed to workers w0 (pid {pids[0]}), w1 (pid {pids[1]})")
    both_serve(pair, "after-hup")
    for pid in pids:  # reopened, not restarted
        os.kill(pid, 0)
    assert "ended after" not in pair.log()
    for i in (0, 1):
        first = records(worker_file(pair, i))[0]
        assert first["chain"]["reason"] == "rotated", first
    files = [*rotated, worker_file(pair, 0), worker_file(pair, 1)]
    out = pair.home / "verify.txt"
    with out.open("w") as handle:
        assert verify_files(files, anchors=(), out=handle,
                            as_of=format_time(datetime.now(UTC))) == 0, out.read_text()
    assert out.read_text().count("continued by") == 2


def test_killed_worker_is_restarted_and_traffic_continues(pair: Proxy) -> None:
    victim = worker_pid(pair, 1)
    with loading(pair, "kill") as results:
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        pair.wait_for(f"worker 1 (pid {victim}) ended after")
        until(lambda: worker_pid(pair, 1) != victim, 30, "worker 1 to be restarted")
        time.sleep(1.5)
    assert "signal SIGKILL" in pair.log()
    assert f"worker 1 restarted (pid {worker_pid(pair, 1)})" in pair.log()
    failed = [(start - killed_at, end - killed_at, code) for start, end, code in results
              if code != 200]
    # Only requests in flight on the killed worker may fail; connections waiting in the
    # shared queue are accepted by the other worker.
    assert all(start < 0.5 and end >= 0 for start, end, _ in failed), failed
    assert len(failed) <= 4, failed
    assert sum(1 for start, _, code in results if start > killed_at + 0.5 and code == 200) > 10
    both_serve(pair, "after-kill")  # the new worker 1 serves as well


def served_by(proxy: Proxy, **match: Any) -> set[int]:
    """Which workers' files hold a decision matching `match`."""
    return {i for i in (0, 1) for r in records(worker_file(proxy, i))
            if r["event"] == "decision" and all(r.get(k) == v for k, v in match.items())}


def relayed(request: Any, status: int, what: str) -> Any:
    """`request()` until it answers `status`, within 5 s: a ticket or pass travels to the other
    worker through the supervisor, so for a moment that worker may not know it yet (one more
    warn page, never one less: `mitm.sharedpasses`). On an idle box the first try answers."""
    deadline = time.monotonic() + 5
    while (result := request()).status != status:
        assert time.monotonic() < deadline, f"{what}: {result}"
        time.sleep(0.1)
    return result


def warn_and_continue(proxy: Proxy, host: str) -> str:
    """A warn page, its form, and the page again: each request on a new connection, so each
    may be served by either worker. Returns the browser's cookie jar (its pass cookie)."""
    jar = str(proxy.home / f"cookies-{host}.txt")
    first = curl(proxy, f"http://{host}/page", "-H", "Accept: text/html")
    assert first.status == 403 and 'name="token"' in first.body, first
    token = first.body.split('name="token" value="')[1].split('"')[0]
    relayed(lambda: curl(proxy, f"http://{host}/.aupgate/continue", "--data-urlencode",
                         f"token={token}", "--data-urlencode",
                         "reason=checking the agency page", "-c", jar),
            303, "the form is known to whichever worker reads it")
    relayed(lambda: curl(proxy, f"http://{host}/page", "-b", jar), 200,
            "the pass reaches whichever worker serves the page")
    return jar


def test_warn_tickets_and_passes_hold_on_every_worker(pair: Proxy) -> None:
    crossed_form = crossed_pass = False
    for n in range(40):
        host = f"s{n}.facebook.com"
        warn_and_continue(pair, host)
        warned = served_by(pair, host=host, enforced="warned")
        continued = served_by(pair, host=host, rule_continued="social-warn")
        passed = served_by(pair, host=host, enforced="pass-used")
        crossed_form |= warned != continued
        crossed_pass |= continued != passed
        if crossed_form and crossed_pass and n >= 5:
            break
    assert crossed_form and crossed_pass, "every request landed on one worker: nothing shown"


def test_a_restarted_worker_knows_the_live_passes(pair: Proxy) -> None:
    host = "restart.facebook.com"
    jar = warn_and_continue(pair, host)
    victim = worker_pid(pair, 1)
    os.kill(victim, signal.SIGKILL)
    until(lambda: worker_pid(pair, 1) != victim, 30, "worker 1 to be restarted")
    pair.wait_for(f"worker 1 restarted (pid {worker_pid(pair, 1)})")
    time.sleep(0.5)
    for _ in range(40):  # until the new worker 1 serves one: it must honour the pass
        assert curl(pair, f"http://{host}/page", "-b", jar).status == 200
        if 1 in served_by(pair, host=host, enforced="pass-used", path="/page") and any(
                r["event"] == "decision" and r["host"] == host and r["time"] > last_start(pair)
                for r in records(worker_file(pair, 1))):
            return
    raise AssertionError("the restarted worker served none of 40 requests")


def last_start(proxy: Proxy) -> str:
    starts = [r for r in records(worker_file(proxy, 1)) if r["event"] == "proxy_start"]
    return str(starts[-1]["time"]) if starts else ""


def test_stop_is_clean_and_the_tools_read_every_workers_file(pair: Proxy) -> None:
    pair.process.send_signal(signal.SIGTERM)
    assert pair.process.wait(timeout=20) == 0
    pair.wait_for("all workers stopped")
    for i in (0, 1):
        last = last_event(worker_file(pair, i))
        assert last["event"] == "proxy_stop" and last["reason"] == "SIGTERM", last
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", pair.port), timeout=2):
        pass
    files = sorted(str(p) for p in pair.home.glob("audit.w*.jsonl*"))
    assert len(files) == 4
    verify = subprocess.run([str(AUPGATE), "audit", "verify", *files], capture_output=True,
                            text=True, timeout=60, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK: 4 file(s)" in verify.stdout
    review = subprocess.run([str(AUPGATE), "review", "--json", *files], capture_output=True,
                            text=True, timeout=60, check=False)
    assert review.returncode == 0, review.stderr
    reviewed = [json.loads(line) for line in review.stdout.splitlines()]
    written = [r for f in files for r in records(Path(f)) if r["event"] == "decision"]
    assert len([r for r in reviewed if r["event"] == "decision"]) == len(written)
    times = [r["time"] for r in reviewed]
    assert times == sorted(times)  # one stream, merged in time order
    report = subprocess.run([str(AUPGATE), "report", "--format", "json", *files],
                            capture_output=True, text=True, timeout=60, check=False)
    assert report.returncode == 0, report.stderr
    summary = json.loads(report.stdout)
    assert summary["report"]["lines"] == sum(len(records(Path(f))) for f in files)
    assert summary["report"]["lines_unreadable"] == 0
    assert summary["decisions"]["by_action"]["allow"] > 0


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path, certs: Certs,
                                                    upstreams: Upstreams) -> None:
    started = start_proxy(tmp_path, certs, upstreams, workers=2)
    try:
        started.wait_for("2 workers serving")
        pids = [worker_pid(started, i) for i in (0, 1)]
        started.process.send_signal(signal.SIGKILL)
        started.process.wait(timeout=10)

        def gone(pid: int) -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"

        until(lambda: all(gone(p) for p in pids), 15, "workers to stop")
        for i in (0, 1):
            last = last_event(worker_file(started, i))
            assert last["event"] == "proxy_stop" and last["reason"] == "shutdown", last
    finally:
        stop_proxy(started)


def test_a_worker_that_cannot_start_fails_the_start(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "lab.yaml").write_text("agency: lab\nrules: [\n")
    done = subprocess.run(
        [str(AUPGATE), "run", "--workers", "2", "--listen-port", "0",
         "--policy-dir", str(tmp_path / "policies"), "--set", f"confdir={tmp_path}"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "lab.yaml" in done.stderr and "failed to start" in done.stderr
