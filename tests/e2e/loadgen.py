"""A bounded load generator for the end-to-end tests, run as its own process (its own GIL, so
the test process's upstream servers are not starved).

THREADS threads, each with one kept-alive connection to the proxy, send `GET http://HOST/PATH`
(absolute form, as a browser talks to a proxy) one after another until SIGTERM, until
`--seconds` have passed, or until `--requests` were sent. Every request's path is unique
(`/PREFIX/T-N`) unless `--distinct K` cycles over K paths (memory tests: the gateway's memos stay
the same size). The progress file holds the number of answered requests, rewritten twice a
second; the summary (JSON) goes to stdout at the end: requests, ok, failed, the first failures,
and with `--record` the path of every request answered 200.

    python loadgen.py --port 8080 --host www.example.org --prefix lr --threads 4 --seconds 60
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="www.example.org")
    parser.add_argument("--prefix", default="load")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--requests", type=int, default=0)
    parser.add_argument("--distinct", type=int, default=0)
    parser.add_argument("--progress", type=Path)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()

    stop = threading.Event()
    lock = threading.Lock()
    counts = {"requests": 0, "ok": 0, "failed": 0}
    failures: list[str] = []
    answered: list[str] = []

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    deadline = time.monotonic() + args.seconds

    def client(index: int) -> None:
        conn: http.client.HTTPConnection | None = None
        n = 0
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                if args.requests and counts["requests"] >= args.requests:
                    return
                counts["requests"] += 1
            n += 1
            leaf = f"{n % args.distinct}" if args.distinct else f"{index}-{n}"
            path = f"/{args.prefix}/{leaf}"
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=15)
                conn.request("GET", f"http://{args.host}{path}")
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                status = 0
                if conn is not None:
                    conn.close()
                conn = None
                error = f"{path}: {exc!r}"
            else:
                error = f"{path}: status {status}"
            with lock:
                if status == 200:
                    counts["ok"] += 1
                    if args.record:
                        answered.append(path)
                else:
                    counts["failed"] += 1
                    if len(failures) < 20:
                        failures.append(error)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if args.progress is not None:
            with lock:
                done = counts["ok"] + counts["failed"]
            args.progress.write_text(f"{done}\n")
        time.sleep(0.5)
    for thread in threads:
        thread.join()
    if args.progress is not None:
        args.progress.write_text(f"{counts['ok'] + counts['failed']}\n")
    json.dump({**counts, "failures": failures, "paths": answered}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
