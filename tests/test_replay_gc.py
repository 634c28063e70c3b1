"""Replay decides with Python's cyclic collector paused (`lifecycle.parallel`), which is safe
only because deciding makes no reference cycles: everything a block leaves behind is freed by
reference counting. Each block worker is run here on varied input, error lines included, and the
collector must find nothing unreachable afterwards; and `ordered_map` leaves the collector as it
found it.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aupgate.categories.cache import load_index
from aupgate.lifecycle.batch import BatchState, explain_block
from aupgate.lifecycle.diffwork import DiffState, diff_audit_block, diff_batch_block
from aupgate.lifecycle.parallel import ordered_map
from aupgate.lifecycle.requests import RequestDecider
from aupgate.lifecycle.sharedindex import SharedIndex
from aupgate.policy.loader import load_policy_dir
from test_diff import CANDIDATE, CATEGORIES, POLICIES, known_log
from test_replay_batch import CORE, _requests

AT = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
BROKEN = [b"{not json", b'{"url": 5}', b'{"url": "http://bad host/"}', b"[1, 2]",
          b'{"url": "https://a.example/", "agency": "nowhere"}',
          b'{"url": "https://a.example/", "device": "toaster", "agency": "lab"}',
          b'{"url": "https://a.example/", "client": "not-an-ip"}', b'{"url": "x", "odd": "1"}']


@pytest.fixture
def collector() -> Iterator[Callable[[Callable[[], object]], int]]:
    """Runs a job with the collector paused, as replay does; returns what a collection found
    unreachable afterwards (what would leak)."""
    def run(job: Callable[[], object]) -> int:
        gc.collect()
        gc.disable()
        try:
            job()
            return gc.collect()
        finally:
            gc.enable()
    yield run


def _lines(requests: list[dict[str, str]]) -> bytes:
    return b"\n".join([json.dumps(r).encode() for r in requests] + BROKEN) + b"\n"


def test_explain_blocks_make_no_cycles(collector: Callable[[Callable[[], object]], int]) -> None:
    policies = load_policy_dir(CORE / "policies", today=AT.date())
    index = load_index(CORE / "categories" / "sources.yaml")[0]
    state = BatchState(RequestDecider(policies, index, AT), "requests.jsonl")
    data = _lines(_requests(3000))
    _out, failures = explain_block(state, data, 1)
    assert failures >= len(BROKEN)
    assert collector(lambda: explain_block(state, data, 1)) == 0
    assert collector(lambda: explain_block(state, _lines(_requests(3000, seed=8)), 1)) == 0


def _diff_state() -> DiffState:
    index = SharedIndex(load_index(CATEGORIES)[0])
    current = RequestDecider(load_policy_dir(POLICIES, today=AT.date()), index, AT)
    candidate = RequestDecider(load_policy_dir(CANDIDATE, today=AT.date()), index, AT,
                               parsing_of=current)
    return DiffState(current, candidate, by_user=True, changes=True)


def test_diff_blocks_make_no_cycles(tmp_path: Path,
                                    collector: Callable[[Callable[[], object]], int]) -> None:
    state = _diff_state()
    batch = _lines([{"url": f"https://{host}/x{i}", "agency": "lab", "user": "audrey"}
                    for i in range(300) for host in ("bet365.com", "pandora.com", "a.example")])
    summary, changes = diff_batch_block(state, batch, 1, "batch.jsonl")
    assert summary.changed and changes and summary.problems  # changes and errors were made
    assert collector(lambda: diff_batch_block(state, batch, 1, "batch.jsonl")) == 0
    _rotated, live = known_log(tmp_path)
    audit = live.read_bytes() + b"{not json\n[]\n"
    summary, _changes = diff_audit_block(state, audit, 1, str(live), None)
    assert summary.changed
    assert collector(lambda: diff_audit_block(state, audit, 1, str(live), None)) == 0


@pytest.mark.parametrize("jobs", [1, 2])
def test_ordered_map_leaves_the_collector_as_it_found_it(jobs: int) -> None:
    assert gc.isenabled()
    before = gc.get_freeze_count()
    assert list(ordered_map(lambda n: n * 2, [(1,), (2,), (3,)], jobs)) == [2, 4, 6]
    assert gc.isenabled()
    assert gc.get_freeze_count() == before
