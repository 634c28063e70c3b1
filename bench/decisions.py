"""Decision micro-benchmark: how many requests per second the pure core decides on one core.

Loads the shipped policies and category lists (timing the index load), builds a fixed, seeded mix
of requests (hits in several categories, misses, deep subdomains, URL-prefix entries, all three
agencies, every time window, state and personal devices) and times:

- `decide()` on already-normalised requests (what the proxy does per request), over a working set
  of distinct URLs that repeats, as a gateway's traffic does (a page load asks for one host many
  times): the engine's per-host memo is warm;
- `decide()` on a cold stream: every URL is new (unique path), so nothing is memoised;
- `parse_url()` + `decide()` from raw URL text (the whole pure pipeline), warm.

With `--batch`, it times replay instead: `aupgate explain --batch --json` as an administrator runs
it (a fresh process, start-up included, on both cores and on one) over a file of `--requests` URLs
of the same mix, and, where squidGuard is installed, one squidGuard process on the same URLs and the
UT1 lists aupgate ships (bench/squidguard.py), printing each rate and the ratio from the same run.

Usage: .venv/bin/python bench/decisions.py [--seconds 3] [--requests 20000]
       .venv/bin/python bench/decisions.py --batch [--requests 120000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import ipaddress
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from aupgate.categories.cache import load_index
from aupgate.engine import Facts, decide
from aupgate.normalise import parse_url
from aupgate.policy.loader import load_policy_dir

ROOT = Path(__file__).resolve().parents[1]
CHICAGO = ZoneInfo("America/Chicago")


def sample_hosts(rng: random.Random, per_list: int) -> list[str]:
    """Real listed hosts from the shipped UT1 lists (hits), read straight from the files."""
    hosts: list[str] = []
    for domains in sorted((ROOT / "categories").rglob("domains.gz")):
        with gzip.open(domains, "rt", encoding="utf-8") as handle:
            lines = [line.strip() for line in handle if line.strip()]
        hosts += rng.sample(lines, min(per_list, len(lines)))
    return hosts


def build_workload(rng: random.Random, count: int) -> list[tuple[str, str, str | None, datetime]]:
    """(raw URL, agency, device, time) tuples: 60% listed hosts, 40% misses, some deep."""
    listed = sample_hosts(rng, 400)
    agencies = ["modot", "mo-dnr", "saint-paul"]
    start = datetime(2026, 11, 23, 0, 0, tzinfo=CHICAGO)  # a Monday; the week covers every window
    # 96 instants spread over the week, so every window occurs; a live proxy sees one minute at a
    # time, so random minutes of the whole week would measure the minute cache missing, not the
    # engine. UTC, as the proxy's clock gives it (datetime.now(UTC)); the engine converts.
    instants = [
        (start + timedelta(minutes=rng.randrange(7 * 24 * 60))).astimezone(UTC) for _ in range(96)
    ]
    work: list[tuple[str, str, str | None, datetime]] = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.6:
            host = rng.choice(listed)
        else:
            host = f"site{rng.randrange(10**6)}.example{rng.randrange(50)}.com"
        if rng.random() < 0.3 and not host[-1].isdigit():  # deep subdomain (not of an IP)
            host = (
                ".".join(f"a{rng.randrange(99)}" for _ in range(rng.randrange(1, 4))) + "." + host
            )
        path = rng.choice(["/", "/index.html", "/radio/live", "/a/b/c?q=1", "/download/setup.exe"])
        scheme = rng.choice(["http", "https"])
        when = rng.choice(instants)
        device = rng.choice(["state", "personal", None])
        work.append((f"{scheme}://{host}{path}", agencies[i % 3], device, when))
    return work


def rate(label: str, fn, items: list, seconds: float) -> float:  # type: ignore[no-untyped-def,type-arg]
    """Run `fn` over `items` repeatedly for about `seconds`; print and return calls per second."""
    gc.collect()
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for item in items:
            fn(item)
        done += len(items)
    elapsed = time.perf_counter() - started
    per_second = done / elapsed
    print(f"{label:<44} {per_second:>12,.0f} /s   ({1e6 / per_second:.2f} µs each, {done:,} calls)")
    return per_second


def cold_rate(cold: list, index) -> float:  # type: ignore[no-untyped-def,type-arg]
    """One pass over never-repeated URLs: every decision misses the per-host memo."""
    gc.collect()
    started = time.perf_counter()
    for policy, facts, when in cold:
        decide(policy, index, facts, when)
    elapsed = time.perf_counter() - started
    per_second = len(cold) / elapsed
    print(
        f"{'decide(), every URL new (cold)':<44} {per_second:>12,.0f} /s   "
        f"({1e6 / per_second:.2f} µs each, {len(cold):,} calls)"
    )
    return per_second


def batch_rates(count: int, repeat: int) -> None:
    """`aupgate explain --batch --json` and squidGuard on the same `count` URLs, start-up included;
    the best of `repeat` runs of each (the machine is shared), and the ratio."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import squidguard  # a sibling bench module, needed only for --batch

    work = build_workload(random.Random(20261122), count)
    aupgate = str(Path(sys.executable).with_name("aupgate"))
    with tempfile.TemporaryDirectory(prefix="aupgate-batch-") as scratch:
        home = Path(scratch)
        requests = home / "requests.jsonl"
        requests.write_bytes(b"".join(
            orjson.dumps({"url": url, "agency": agency, "at": when.isoformat(),
                          **({"device": device} if device else {})}) + b"\n"
            for url, agency, device, when in work
        ))
        print(f"{count:,} requests in {requests} ({requests.stat().st_size / 1e6:.1f} MB)")
        rates: dict[str, float] = {}
        cpu_rates: dict[str, float] = {}
        blocked: dict[str, int] = {}
        for label, jobs in (("aupgate explain --batch --json", []),
                            ("aupgate explain --batch --json --jobs 1", ["--jobs", "1"])):
            argv = [aupgate, "explain", "--batch", str(requests), "--json", *jobs]
            best, cpu, out = _timed(argv, repeat)
            lines = out.splitlines()
            assert len(lines) == count, (len(lines), count)
            blocked[label] = sum(b'"action":"block"' in line for line in lines)
            rates[label] = count / best
            cpu_rates[label] = count / cpu
        # the same requests replayed by `diff`: each decided under the policies in force and
        # under a candidate (here the same directory, so nothing changes): two decisions each
        label = "aupgate diff --batch (2 decisions each)"
        argv = [aupgate, "diff", "--candidate", str(ROOT / "policies"), "--batch", str(requests),
                "--json", "--fail-on", "never"]
        best, cpu, out = _timed(argv, repeat)
        summary = orjson.loads(out)
        assert (summary["requests"], summary["changed"]) == (count, 0), summary
        blocked[label] = 0
        rates[label] = count / best
        cpu_rates[label] = count / cpu
        if shutil.which("squidGuard") or Path(squidguard.SQUIDGUARD).exists():
            config, entries = squidguard.prepare(ROOT / "categories" / "ut1", home / "squidguard")
            urls = [url for url, _agency, _device, _when in work]
            best = cpu = float("inf")
            for _ in range(repeat):
                before = _children_cpu()
                seconds, answers = squidguard.run(config, urls)
                best = min(best, seconds)
                cpu = min(cpu, _children_cpu() - before)
            label = f"squidGuard ({entries:,} UT1 list lines)"
            rates[label] = count / best
            cpu_rates[label] = count / cpu
            blocked[label] = answers.count(b"rewrite-url=")
        else:
            print("squidGuard is not installed: no ratio")
        peer = next((label for label in rates if label.startswith("squidGuard")), None)
        print(f"wall clock, start-up included, best of {repeat}; then per CPU second (user + "
              "system of all the command's processes), which a busy machine disturbs less")
        for label, per_second in rates.items():
            ratio = f"{per_second / rates[peer]:5.2f}x" if peer else ""
            cpu_ratio = f"{cpu_rates[label] / cpu_rates[peer]:5.2f}x" if peer else ""
            note = f"({blocked[label]:,} blocked)" if blocked[label] else "(nothing changed)"
            print(f"{label:<44} {per_second:>8,.0f} /s {ratio}   {cpu_rates[label]:>8,.0f} "
                  f"/CPU s {cpu_ratio}   {note}")


def _timed(argv: list[str], repeat: int) -> tuple[float, float, bytes]:
    """The best wall-clock and CPU seconds of `repeat` runs of `argv`, and its output."""
    best = cpu = float("inf")
    out = b""
    for _ in range(repeat):
        before = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False)
        best = min(best, time.perf_counter() - started)
        cpu = min(cpu, _children_cpu() - before)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr.decode()[-2000:]}")
        out = done.stdout
    return best, cpu, out


def _children_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--requests", type=int, default=None,
                        help="requests in the mix (default 20000; 120000 with --batch)")
    parser.add_argument("--batch", action="store_true",
                        help="time explain --batch against squidGuard on the same URLs")
    parser.add_argument("--repeat", type=int, default=3, help="with --batch: runs of each")
    args = parser.parse_args()
    if args.batch:
        batch_rates(args.requests or 120_000, args.repeat)
        return
    args.requests = args.requests or 20000

    started = time.perf_counter()
    index, report = load_index(ROOT / "categories" / "sources.yaml")
    load_seconds = time.perf_counter() - started
    policies = load_policy_dir(ROOT / "policies", today=datetime(2026, 11, 22).date()).policies
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"index load: {load_seconds:.2f} s for {len(index):,} entries "
        f"({sum(s.rejected for s in report.sources):,} lines rejected); peak RSS {rss_mb:.0f} MB"
    )

    rng = random.Random(20261122)
    workload = build_workload(rng, args.requests)
    prepared = [
        (
            policies[agency],
            Facts(url=parse_url(url), device=device, client=ipaddress.ip_address("10.0.0.1")),
            when,
        )
        for url, agency, device, when in workload
    ]
    raw = [(policies[agency], url, device, when) for url, agency, device, when in workload]

    actions: dict[str, int] = {}
    windows: dict[str, int] = {}
    for policy, facts, when in prepared:
        decision = decide(policy, index, facts, when)
        actions[decision.action] = actions.get(decision.action, 0) + 1
        windows[decision.window] = windows.get(decision.window, 0) + 1
    print("workload actions:", ", ".join(f"{k} {v}" for k, v in sorted(actions.items())))
    print("workload windows:", ", ".join(f"{k} {v}" for k, v in sorted(windows.items())))

    rate(
        "decide(), repeating working set (warm)",
        lambda p: decide(p[0], index, p[1], p[2]),
        prepared,
        args.seconds,
    )
    cold = [
        (
            policy,
            Facts(
                url=parse_url(f"{facts.url.scheme}://{facts.url.host}/u{i}"),
                device=facts.device,
                client=facts.client,
            ),
            when,
        )
        for i, (policy, facts, when) in enumerate(prepared * 10)
    ]
    cold_rate(cold, index)
    rate(
        "parse_url() + decide() from raw URL text (warm)",
        lambda p: decide(p[0], index, Facts(url=parse_url(p[1]), device=p[2]), p[3]),
        raw,
        args.seconds,
    )
    rate(
        "index.classify() alone",
        lambda p: index.classify(p[1].url.host, p[1].url.path),
        prepared,
        args.seconds,
    )


if __name__ == "__main__":
    main()
