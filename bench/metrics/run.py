"""What counting one request for /metrics costs: in one process, and in a worker of `--workers`
(prometheus-client's multiprocess mode, values in memory-mapped files), side by side.

Each mode runs in a fresh Python process (the mode is chosen when prometheus-client is imported)
and feeds `GatewayMetrics.observe` the decision event of an ordinary request (one category) and
of a blocked one (two categories), then times a `refresh` and a scrape of the registry. Figures
are microseconds per event; compare them with the proxy's CPU per request
(bench/proxy_overhead prints it, ~1,000 us on this machine).

Usage: .venv/bin/python bench/metrics/run.py [--events 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
from prometheus_client import generate_latest
from aupgate.audit.log import AuditLog
from aupgate.mitm.metrics import GatewayMetrics
n = int(sys.argv[1])
m = GatewayMetrics()
allow = {"phase": "request", "agency": "modot", "action": "allow", "enforced": "passed",
         "categories": ["news"]}
block = {"phase": "request", "agency": "modot", "action": "block", "enforced": "blocked",
         "categories": ["gambling", "games"]}
m.observe("decision", allow); m.observe("decision", block)
out = {}
for name, fields in (("allow", allow), ("block", block)):
    start = time.perf_counter()
    for _ in range(n):
        m.observe("decision", fields)
    out[name] = (time.perf_counter() - start) / n * 1e6
log = AuditLog([])
start = time.perf_counter()
for _ in range(1000):
    m.refresh(None, log)
out["refresh"] = (time.perf_counter() - start) / 1000 * 1e6
start = time.perf_counter()
for _ in range(100):
    generate_latest(m.registry)
out["scrape"] = (time.perf_counter() - start) / 100 * 1e6
print(json.dumps(out))
"""


def measure(events: int, multiprocess_dir: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    if multiprocess_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
    done = subprocess.run([sys.executable, "-c", CHILD, str(events)], env=env,
                          capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        rows = {"one process": measure(args.events, None),
                "multiprocess (a worker)": measure(args.events, tmp)}
    print(f"{'mode':<24} {'allow us':>9} {'block us':>9} {'refresh us':>11} "
          f"{'one scrape us':>14}")
    for name, r in rows.items():
        print(f"{name:<24} {r['allow']:>9.2f} {r['block']:>9.2f} {r['refresh']:>11.1f} "
              f"{r['scrape']:>14.0f}")
    print("(per event; a request is one decision event; the worker's scrape is the "
          "supervisor's job and reads the files instead)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
