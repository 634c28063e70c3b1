"""Reloads under traffic do not keep memory (issue 12, item 9).

`gc.freeze()` after every reload froze whatever the requests in flight had allocated, and the
cyclic garbage the collector had not reached yet; frozen cycles are never freed, so each reload
under traffic kept about half a megabyte for ever. Here a real `aupgate run` serves a steady
load from another process while its policy file changes 50 times; its resident memory, read
from /proc, may move by a few megabytes at most (allocator noise), where the leak grew it by
8 MB and more at this load.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .background import background_load
from .conftest import Certs, Proxy, Upstreams, start_proxy, stop_proxy

RELOADS = 50
ALLOWED_GROWTH_KB = 4096


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def settled_rss_kb(pid: int) -> int:
    """The smallest of a few readings a moment apart: a reading taken in the middle of a burst
    of requests is not the baseline."""
    readings = []
    for _ in range(5):
        readings.append(rss_kb(pid))
        time.sleep(0.2)
    return min(readings)


@pytest.fixture
def proxy(tmp_path: Path, certs: Certs, upstreams: Upstreams) -> Iterator[Proxy]:
    started = start_proxy(tmp_path, certs, upstreams)
    yield started
    stop_proxy(started)


def reloads(proxy: Proxy) -> int:
    return len(proxy.events("policy_reloaded", part="policies"))


def reload_once(proxy: Proxy, original: str, n: int) -> None:
    """Change the policy file (a comment: the digest moves, so the set is really reloaded) and
    wait for the gateway to record the reload."""
    before = reloads(proxy)
    policy = proxy.policy_dir / "lab.yaml"
    scratch = policy.with_suffix(".tmp")
    scratch.write_text(f"{original}\n# reload {n}\n")
    scratch.replace(policy)
    deadline = time.monotonic() + 30
    while reloads(proxy) == before:
        assert time.monotonic() < deadline, f"reload {n} not recorded:\n{proxy.log()[-2000:]}"
        time.sleep(0.05)


def test_fifty_reloads_under_load_keep_no_memory(proxy: Proxy, tmp_path: Path) -> None:
    pid = proxy.process.pid  # --workers 1: the proxy is this one process
    original = (proxy.policy_dir / "lab.yaml").read_text()
    with background_load(proxy.port, tmp_path, prefix="mem", threads=4, distinct=40) as load:
        load.wait_for(300)  # warm: connections, memos, certificate-free plain HTTP paths
        for n in range(3):  # the first reloads start the reload thread and its imports
            reload_once(proxy, original, n)
        load.wait_for(load.answered() + 200)
        before = settled_rss_kb(pid)
        served_before = load.answered()
        started = time.monotonic()
        for n in range(3, 3 + RELOADS):
            reload_once(proxy, original, n)
        took = time.monotonic() - started
        served = load.answered() - served_before
        after = settled_rss_kb(pid)
    summary = load.summary
    assert summary["failed"] == 0, summary["failures"]
    assert served >= RELOADS * 20, f"only {served} requests during {RELOADS} reloads"
    growth = after - before
    figures = (f"{RELOADS} reloads in {took:.0f} s under {served / took:.0f} requests/s: "
               f"RSS {before} KB -> {after} KB ({growth:+d} KB)")
    print(figures)
    assert growth < ALLOWED_GROWTH_KB, figures
