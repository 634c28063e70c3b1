"""Hot reload under traffic: a valid edit takes effect with no failed request; a broken edit is
rejected, audited, and the last good policy keeps running."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy


@pytest.fixture(scope="module")
def reloading(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
              upstreams: Upstreams) -> Iterator[Proxy]:
    started = start_proxy(tmp_path_factory.mktemp("reload"), certs, upstreams)
    yield started
    stop_proxy(started)


class Traffic:
    """A client loop that keeps requesting an allowed page and records every failure."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.count = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            r = curl(self.proxy, f"http://www.example.org/loop/{self.count}", timeout=10)
            if r.status != 200 or not r.body.startswith("upstream www.example.org"):
                self.failures.append(str(r))
            self.count += 1

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def write(path: Path, text: str) -> None:
    """Replace a file the way editors and config tools do: write aside, then rename."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def wait_until(check: object, timeout: float = 15) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition never held")


def test_reload_under_traffic(reloading: Proxy) -> None:
    policy = reloading.policy_dir / "lab.yaml"
    original = policy.read_text()
    assert curl(reloading, "http://www.example.org/news").status == 200
    with Traffic(reloading) as traffic:
        wait_until(lambda: traffic.count >= 5)
        # 1. a valid edit: block example.org/news by URL prefix
        write(policy, original.replace(
            "default:\n", "  - id: no-news\n    clauses: [\"8\"]\n    match:\n"
            "      urls: [www.example.org/news]\n    action: block\n"
            "    reason: News is off limits in this test.\n\ndefault:\n", 1))
        wait_until(lambda: curl(reloading, "http://www.example.org/news").status == 403)
        assert reloading.events("policy_reloaded", part="policies")
        # 2. a broken edit: the last good policy (with no-news) stays in force
        write(policy, original.replace("categories: [gambling]", "categories: [gamling]"))
        wait_until(lambda: bool(reloading.events("policy_reload_failed")))
        [failed] = reloading.events("policy_reload_failed")
        assert any("gamling" in error for error in failed["errors"])
        assert curl(reloading, "http://www.example.org/news").status == 403
        assert curl(reloading, "http://www.bet365.com/").status == 403
        # 3. a category list edit swaps the index
        gambling = reloading.home / "categories" / "gambling.txt"
        write(gambling, "bet365.com\npokerstars.com\n")
        wait_until(lambda: curl(reloading, "http://www.pokerstars.com/").status == 403)
        wait_until(lambda: traffic.count >= 20)
    assert traffic.failures == []
    assert "NOT reloaded" in reloading.log()
