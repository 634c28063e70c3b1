"""The compiled category index changed under a running `aupgate run` (issue 12 item 5).

Before: the proxy mapped the index file, so another index copied over it made lookups miss
silently (blocked hosts allowed), truncating it killed the proxy with SIGBUS and random bytes
with SIGSEGV, with nothing logged. Now the proxy answers from its own verified copy; each shape
below is done to the live file while requests flow, and every request to a blocked host must
still be blocked (and audited as such), the proxy must stay up, the bad file must be refused in
the log and the audit, and the file must be rebuilt from the lists.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aupgate.categories.cache import check_index, load_index

from .conftest import Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy
from .test_workers import records, until, worker_file

SHAPES = ["other index copied over it", "truncated", "bytes overwritten", "deleted"]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
            upstreams: Upstreams) -> Iterator[Proxy]:
    started = start_proxy(tmp_path_factory.mktemp("index-file"), certs, upstreams)
    yield started
    stop_proxy(started)


def other_index(folder: Path) -> Path:
    """A valid index compiled from other lists: bet365.com is on none of them."""
    folder.mkdir(exist_ok=True)
    (folder / "shop.txt").write_text("shop.example\n")
    sources = folder / "sources.yaml"
    sources.write_text("sources:\n  - {path: shop.txt, format: plain, category: shopping, "
                       "source: t, licence: t, snapshot: t}\n")
    return load_index(sources)[0].path


def damage(path: Path, how: str, scratch: Path) -> None:
    if how == "other index copied over it":
        shutil.copyfile(other_index(scratch), path)  # in place, as `cp` does: the same inode
    elif how == "truncated":
        os.truncate(path, path.stat().st_size // 3)
    elif how == "bytes overwritten":
        with path.open("r+b") as f:
            for offset in range(100, path.stat().st_size - 64, 97):
                f.seek(offset)
                f.write(os.urandom(16))
    elif how == "deleted":
        path.unlink()


def blocked_everywhere(proxy: Proxy, tag: str, n: int) -> list[str]:
    """Request `n` hosts under bet365.com never asked before (no memo can answer for the index);
    return every answer that is not the block page."""
    wrong = []
    for i in range(n):
        r = curl(proxy, f"http://{tag}-{i}.bet365.com/", timeout=10)
        if r.status != 403:
            wrong.append(f"{tag}-{i}: {r.status}")
    return wrong


def wait_for_events(proxy: Proxy, count: int, timeout: float = 45) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in proxy.audit()
                 if e.get("event") in ("policy_reload_failed", "policy_reloaded")
                 and e.get("part") == "categories"]
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no reload event:\n{proxy.log()}")


@pytest.mark.parametrize("how", SHAPES)
def test_the_live_index_file_damaged_or_replaced(running: Proxy, tmp_path: Path,
                                                 how: str) -> None:
    sources = running.home / "categories" / "sources.yaml"
    path = running.home / "categories" / "index.aupidx"
    assert check_index(sources).state == "current"
    assert curl(running, "http://www.example.org/").status == 200
    before = len([e for e in running.audit() if e.get("part") == "categories"])
    tag = how.split()[0]
    assert blocked_everywhere(running, f"{tag}-before", 3) == []
    damage(path, how, tmp_path)
    # At once, before the watcher can have noticed: the copy in force answers.
    assert blocked_everywhere(running, f"{tag}-during", 20) == []
    events = wait_for_events(running, before + (1 if how == "deleted" else 2))[before:]
    assert running.process.poll() is None, running.log()  # no SIGBUS, no SIGSEGV
    if how == "deleted":
        assert [e["event"] for e in events] == ["policy_reloaded"]
        assert any("deleted" in w for w in events[0]["warnings"])  # type: ignore[union-attr]
    else:
        assert [e["event"] for e in events] == ["policy_reload_failed", "policy_reloaded"]
        [error] = events[0]["errors"]  # type: ignore[misc]
        assert str(path) in error and "it was NOT used" in error
        assert "the category index file in use was" in running.log()
    # Rebuilt from the lists, and the decisions are still the lists'.
    deadline = time.monotonic() + 30
    while check_index(sources).state != "current" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert check_index(sources).state == "current"
    assert blocked_everywhere(running, f"{tag}-after", 3) == []
    assert curl(running, "http://www.example.org/").status == 200
    decided = [e for e in running.audit()
               if e.get("event") == "decision" and ".bet365.com" in str(e.get("host", ""))]
    assert decided and all(e["action"] == "block" for e in decided)


def test_the_proxy_never_maps_the_index_file(running: Proxy) -> None:
    """The one claim everything above rests on, checked in the running process: no mapping of
    the index file (a mapped file can fault or change under the process)."""
    maps = Path(f"/proc/{running.process.pid}/maps").read_text()
    assert "aupidx" not in maps
    assert "[heap]" in maps  # it is the proxy's own map that was read


def test_two_workers_never_use_a_foreign_index_and_share_one_rebuild(
        tmp_path_factory: pytest.TempPathFactory, certs: Certs, upstreams: Upstreams,
        tmp_path: Path) -> None:
    """`--workers 2`: each worker holds its own verified copy; another index copied over the
    file is refused by whichever worker notices first, rebuilt once under the lock, and the
    other adopts the rebuilt file. No request to a blocked host is allowed by either."""
    pair = start_proxy(tmp_path_factory.mktemp("index-workers"), certs, upstreams, workers=2)
    try:
        pair.wait_for("2 workers serving")
        sources = pair.home / "categories" / "sources.yaml"
        path = pair.home / "categories" / "index.aupidx"
        damage(path, "other index copied over it", tmp_path)
        assert blocked_everywhere(pair, "workers-during", 20) == []

        def events(kind: str) -> list[dict[str, Any]]:
            return [r for i in (0, 1) for r in records(worker_file(pair, i))
                    if r["event"] == kind and r.get("part") == "categories"]

        until(lambda: events("policy_reload_failed") and check_index(sources).state == "current",
              45, "a worker to refuse the foreign index and the file to be rebuilt")
        assert all("it was NOT used" in e for r in events("policy_reload_failed")
                   for e in r["errors"])
        assert blocked_everywhere(pair, "workers-after", 10) == []
        decided = [r for i in (0, 1) for r in records(worker_file(pair, i))
                   if r["event"] == "decision" and ".bet365.com" in str(r.get("host", ""))]
        assert len(decided) >= 30 and all(r["action"] == "block" for r in decided)
        assert pair.process.poll() is None
    finally:
        stop_proxy(pair)
