"""The addon's own cost per request, in-process, without sockets: what `aupgate run` adds.

The side-by-side run (`run.py`) is the honest end-to-end figure but is noisy on a shared machine;
this times the addon's hooks on mitmproxy test flows (one keep-alive client, an allowed request
decided under the shipped policies with the audit log on), so a regression in the decision or
audit path shows up as microseconds.

`--count` counts instead of timing: every Python line and C call the three hooks execute per
request (`sys.settrace`/`sys.setprofile`, after a warm-up), a figure no co-tenant can move, and
the functions with the most lines. To compare with another tree, run it with that tree's package
first on the path and its policies: `PYTHONPATH=/tmp/old/addon ... hooks.py --count
--policy-dir /tmp/old/policies`.

Usage: .venv/bin/python bench/proxy_overhead/hooks.py [--requests 5000] [--agency modot]
       [--policy-dir DIR] [--count]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # ldap3/pyasn1, via taddons
    from mitmproxy.test import taddons, tflow

from aupgate.mitm.addon import Aupgate

ROOT = Path(__file__).resolve().parents[2]


async def measure(requests: int, agency: str, audit: Path,
                  policies: Path = ROOT / "policies") -> dict[str, float]:
    addon = Aupgate()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, aupgate_policy_dir=str(policies),
                       aupgate_categories=str(ROOT / "categories" / "sources.yaml"),
                       aupgate_default_agency=agency, aupgate_audit_log=str(audit),
                       aupgate_reload_seconds=0)
        client = tflow.tclient_conn()
        flows = []
        for _ in range(requests):
            flow = tflow.tflow()
            flow.client_conn = client
            # port 80: the shipped policies open only the web's ports (docs/policy-language.md)
            flow.request.host, flow.request.port = "127.0.0.1", 80
            flow.request.path = "/index.html?q=1"
            flows.append((flow, tflow.tresp()))
        times: dict[str, float] = {}
        start = time.perf_counter()
        for flow, _ in flows:
            addon.requestheaders(flow)
        times["requestheaders"] = time.perf_counter() - start
        start = time.perf_counter()
        for flow, response in flows:
            request = getattr(addon, "request", None)  # as mitmproxy looks hooks up
            if request is not None:
                request(flow)
            flow.response = response
            addon.responseheaders(flow)
        times["request+responseheaders"] = time.perf_counter() - start
        start = time.perf_counter()
        for flow, _ in flows:
            addon.response(flow)
        times["response (audit line)"] = time.perf_counter() - start
        await addon.done()
    return {name: seconds / requests * 1e6 for name, seconds in times.items()}


class Counter:
    """Python lines and C calls executed while on, by function."""

    def __init__(self) -> None:
        self.lines: collections.Counter[str] = collections.Counter()
        self.c_calls = 0

    def _local(self, frame: FrameType, event: str, _arg: Any) -> Any:
        if event == "line":
            code = frame.f_code
            self.lines[f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_name}"] += 1
        return self._local

    def _global(self, _frame: FrameType, event: str, _arg: Any) -> Any:
        return self._local if event == "call" else None

    def _profile(self, _frame: FrameType, event: str, _arg: Any) -> None:
        if event == "c_call":
            self.c_calls += 1

    def __enter__(self) -> Counter:
        sys.settrace(self._global)
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *_exc: object) -> None:
        sys.settrace(None)
        sys.setprofile(None)


async def count(requests: int, agency: str, audit: Path, policies: Path) -> Counter:
    """The three hooks for `requests` allowed requests (after as many to warm the memos)."""
    addon = Aupgate()
    counter = Counter()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, aupgate_policy_dir=str(policies),
                       aupgate_categories=str(ROOT / "categories" / "sources.yaml"),
                       aupgate_default_agency=agency, aupgate_audit_log=str(audit),
                       aupgate_reload_seconds=0)
        client = tflow.tclient_conn()
        for counted in (False, True):
            flows = []
            for _ in range(requests):
                flow = tflow.tflow()
                flow.client_conn = client
                flow.request.host, flow.request.port = "127.0.0.1", 80
                flow.request.path = "/index.html?q=1"
                flows.append((flow, tflow.tresp()))
            with counter if counted else contextlib.nullcontext():
                for flow, response in flows:
                    addon.requestheaders(flow)
                    flow.response = response
                    addon.responseheaders(flow)
                    addon.response(flow)
        await addon.done()
    return counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--agency", default="modot")
    parser.add_argument("--policy-dir", type=Path, default=ROOT / "policies")
    parser.add_argument("--count", action="store_true",
                        help="count Python lines and C calls per request instead of timing")
    args = parser.parse_args()
    if args.count:
        requests = min(args.requests, 500)
        with tempfile.TemporaryDirectory() as tmp:
            counter = asyncio.run(count(requests, args.agency, Path(tmp) / "audit.jsonl",
                                        args.policy_dir))
        lines = sum(counter.lines.values())
        print(f"per request: {lines / requests:.1f} Python lines, "
              f"{counter.c_calls / requests:.1f} C calls ({requests} requests)")
        for name, n in counter.lines.most_common(15):
            print(f"  {n / requests:7.1f}  {name}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(500, args.agency, Path(tmp) / "warm.jsonl", args.policy_dir))
        result = asyncio.run(measure(args.requests, args.agency, Path(tmp) / "audit.jsonl",
                                     args.policy_dir))
    for name, micros in result.items():
        print(f"{name:<26} {micros:7.1f} us/request")
    print(f"{'total':<26} {sum(result.values()):7.1f} us/request")


if __name__ == "__main__":
    main()
