"""Deleting an agency's policy file under a running gateway (issue 12, item 10).

Before: the reload validated, the agency vanished, and deleting the default agency's file refused
every client outside the agencies' networks. Now such a reload is refused and recorded, the last
good policies keep serving, and `retired.txt` in the policy directory is the explicit yes.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import FIXTURES, Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy

OUTSIDE = "127.0.0.2"  # on no agency's network: the default agency decides


@pytest.fixture
def proxy(tmp_path: Path, certs: Certs, upstreams: Upstreams) -> Iterator[Proxy]:
    shutil.copytree(FIXTURES / "categories", tmp_path / "categories")
    policies = tmp_path / "policies"
    shutil.copytree(FIXTURES / "policies", policies)  # lab.yaml and the files it names (logo)
    lab = (policies / "lab.yaml").read_text()
    (policies / "other.yaml").write_text(
        lab.replace("agency: lab", "agency: other").replace(
            'cidrs: [127.0.0.1/32, "::1/128"]', "cidrs: [10.99.0.0/16]"))
    started = start_proxy(tmp_path, certs, upstreams, "--set", "aupgate_default_agency=other")
    yield started
    stop_proxy(started)


def wait_for_event(proxy: Proxy, event: str, count: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while len(found := proxy.events(event)) < count:
        assert time.monotonic() < deadline, f"no {event} #{count}:\n{proxy.log()[-3000:]}"
        time.sleep(0.1)
    return found[count - 1]


def agency_of_last(proxy: Proxy, path: str) -> Any:
    [record] = [e for e in proxy.events("decision") if e.get("path") == path][-1:]
    return record["agency"]


def test_deleting_agencies_is_refused_until_retired(proxy: Proxy) -> None:
    policies = proxy.policy_dir
    assert curl(proxy, "http://www.example.org/outside-1", "--interface", OUTSIDE).status == 200
    assert agency_of_last(proxy, "/outside-1") == "other"

    # 1. an agency in force (the lab, whose network the tests' client is on) loses its file
    lab = (policies / "lab.yaml").read_text()
    (policies / "lab.yaml").unlink()
    failed = wait_for_event(proxy, "policy_reload_failed", 1)
    assert failed["part"] == "policies"
    [error] = failed["errors"]
    assert error.startswith(f"{policies / 'lab.yaml'}: agency: agency 'lab' is in force")
    assert curl(proxy, "http://www.bet365.com/").status == 403  # the lab's rule still blocks
    assert curl(proxy, "http://www.example.org/inside-1").status == 200
    assert agency_of_last(proxy, "/inside-1") == "lab"
    assert "policies NOT reloaded" in proxy.log()
    (policies / "lab.yaml").write_text(lab)  # put back: the same set as in force
    wait_for_event(proxy, "policy_reloaded", 1)  # nothing changed, recorded all the same

    # 2. the default agency loses its file: everyone outside would have been refused
    (policies / "other.yaml").unlink()
    failed = wait_for_event(proxy, "policy_reload_failed", 2)
    [error] = failed["errors"]
    assert "it is the default agency: every client outside the agencies' networks would be " \
           "refused" in error
    assert curl(proxy, "http://www.example.org/outside-2", "--interface", OUTSIDE).status == 200
    assert agency_of_last(proxy, "/outside-2") == "other"

    # 3. the explicit yes: retired.txt names it, and the reload goes through
    (policies / "retired.txt").write_text("other  # the outside clients move to another gateway\n")
    reloaded = wait_for_event(proxy, "policy_reloaded", 2)
    assert reloaded["agencies"] == ["lab"]
    assert any("the default agency 'other' is retired" in w for w in reloaded["warnings"])
    refused = curl(proxy, "http://www.example.org/outside-3", "--interface", OUTSIDE)
    assert refused.status == 403
    [record] = [e for e in proxy.events("decision") if e.get("path") == "/outside-3"]
    assert record["agency"] is None and record["enforced"] == "refused"
    assert curl(proxy, "http://www.example.org/inside-2").status == 200
