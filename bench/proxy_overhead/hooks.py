"""The addon's own cost per request, in-process, without sockets: what `aupgate run` adds.

The side-by-side run (`run.py`) is the honest end-to-end figure but is noisy on a shared machine;
this times the addon's hooks on mitmproxy test flows (one keep-alive client, an allowed request
decided under the shipped policies with the audit log on), so a regression in the decision or
audit path shows up as microseconds.

Usage: .venv/bin/python bench/proxy_overhead/hooks.py [--requests 5000] [--agency modot]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import warnings
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # ldap3/pyasn1, via taddons
    from mitmproxy.test import taddons, tflow

from aupgate.mitm.addon import Aupgate

ROOT = Path(__file__).resolve().parents[2]


async def measure(requests: int, agency: str, audit: Path) -> dict[str, float]:
    addon = Aupgate()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, aupgate_policy_dir=str(ROOT / "policies"),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--agency", default="modot")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(500, args.agency, Path(tmp) / "warm.jsonl"))
        result = asyncio.run(measure(args.requests, args.agency, Path(tmp) / "audit.jsonl"))
    for name, micros in result.items():
        print(f"{name:<26} {micros:7.1f} us/request")
    print(f"{'total':<26} {sum(result.values()):7.1f} us/request")


if __name__ == "__main__":
    main()
