"""Benchmark `aupgate report` on a realistic 1 GB audit log: events per second and peak memory.

Generates the log in a temporary directory (bench/report/genlog.py), then runs the report as a
child process, so the peak resident memory measured (the child's own `ru_maxrss`, from `wait4`)
is the report's alone, interpreter included. The log is read from the page cache after being
written, as on a gateway reporting on yesterday's file; the time is wall-clock, start-up included.

    .venv/bin/python bench/report/run.py            # 1 GB, table format
    .venv/bin/python bench/report/run.py --size-mb 100 --format html --by-user --uncategorized

Targets (issue 4): at least 200,000 events/s, under 200 MB peak.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from genlog import write_log

CHILD = (
    "import argparse, os, resource, sys\n"
    "if os.environ.get('BENCH_NO_ORJSON'): sys.modules['orjson'] = None\n"
    "from aupgate.report import add_report_parser\n"
    "p = argparse.ArgumentParser(prog='aupgate')\n"
    "add_report_parser(p.add_subparsers(dest='command'))\n"
    "a = p.parse_args(['report', *sys.argv[1:]])\n"
    "code = a.func(a)\n"
    "worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print('WORKER_MAXRSS_KB', worker, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_child(argv: list[str], jobs: int) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, peak RSS in bytes, exit status) of one report run.

    CPU time (user + system, the report process's own) is what the machine's other load
    disturbs least, so it is printed beside the wall-clock rate.

    With workers, the peak is the report process's own plus `jobs` times the largest worker's
    (they run at the same time): an upper bound of the sum.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    errors = proc.stderr.read().decode()
    proc.stderr.close()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    worker_kb = 0
    for line in errors.splitlines():
        if line.startswith("WORKER_MAXRSS_KB"):
            worker_kb = int(line.split()[1])
    peak = usage.ru_maxrss * 1024 + (jobs * worker_kb * 1024 if jobs > 1 else 0)
    return elapsed, usage.ru_utime + usage.ru_stime, peak, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=1024)
    parser.add_argument("--format", default="table", choices=("table", "csv", "json", "html"))
    parser.add_argument("--by-user", action="store_true")
    parser.add_argument("--uncategorized", action="store_true")
    parser.add_argument("--runs", type=int, default=3, help="report runs (the best is kept)")
    parser.add_argument("--jobs", type=int, default=1, help="aupgate report --jobs")
    parser.add_argument(
        "--no-orjson", action="store_true", help="make the report fall back to the json module"
    )
    parser.add_argument("--keep", type=Path, help="generate here (and keep) instead of a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aupgate-bench-") as tmp:
        log = args.keep or Path(tmp) / "audit.jsonl"
        if not log.exists():
            started = time.perf_counter()
            lines = write_log(log, int(args.size_mb * 1024 * 1024))
            print(
                f"generated {log.stat().st_size / 1e6:.0f} MB, {lines:,} lines "
                f"in {time.perf_counter() - started:.0f}s"
            )
        else:
            with log.open("rb") as handle:
                lines = sum(1 for _ in handle)
        argv = [str(log), "--format", args.format, "-o", str(Path(tmp) / "out"), "--tz", "UTC"]
        argv += ["--by-user"] * args.by_user + ["--uncategorized"] * args.uncategorized
        argv += ["--jobs", str(args.jobs)]
        if args.no_orjson:
            os.environ["BENCH_NO_ORJSON"] = "1"
        results: list[tuple[float, float, int]] = []
        for _ in range(args.runs):
            elapsed, cpu, peak, status = run_child(argv, args.jobs)
            if status != 0:
                print(f"report failed with status {status}")
                return 1
            results.append((elapsed, cpu, peak))
            print(
                f"  run: {elapsed:.2f}s, {lines / elapsed:,.0f} events/s; CPU {cpu:.2f}s, "
                f"{lines / cpu:,.0f} events per CPU-second; peak {peak / 1e6:.0f} MB"
            )
        wall = min(r[0] for r in results)
        cpu = min(r[1] for r in results)
        size = log.stat().st_size
        print(
            f"aupgate report --format {args.format} --jobs {args.jobs}"
            f"{' (no orjson)' * args.no_orjson}"
            f"{' --by-user' * args.by_user}{' --uncategorized' * args.uncategorized}: "
            f"{size / 1e6:.0f} MB, {lines:,} events; best {wall:.2f}s = "
            f"{lines / wall:,.0f} events/s ({size / wall / 1e6:.0f} MB/s); "
            f"{lines / cpu:,.0f} events per CPU-second; "
            f"peak RSS {max(r[2] for r in results) / 1e6:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
