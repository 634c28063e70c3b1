"""Category index benchmark: N million synthetic domains plus the shipped lists.

Builds the list set in a temporary folder (deleted afterwards; `--keep` to keep it), then reports:

- compile time (`aupgate categories compile`, in a child process, with its peak memory),
- cold load time: a fresh process calls `load_index` after the index and list files have been
  evicted from the page cache (posix_fadvise DONTNEED); then the same with the cache warm,
- resident memory after load (VmRSS of the fresh process, anonymous and file-backed), and the
  bytes of the index file the process keeps (it reads and verifies them; it never maps the file),
- lookups per second on one core: `classify(host, path)` over a random mix of listed hosts, misses
  and deep subdomains (first pass: every host new; repeated passes; a working set of 20,000
  requests, as a proxy's traffic repeats; and from URL text, `parse_url` included).

Usage: .venv/bin/python bench/categories/run.py [--domains 5000000] [--seconds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import synth  # noqa: E402


def rss() -> dict[str, float]:
    """Resident memory of this process in MiB: total, anonymous, file-backed."""
    out: dict[str, float] = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def evict(paths: list[Path]) -> None:
    """Drop these files from the page cache, so the next load reads them from disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd) if os.access(path, os.W_OK) else None
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# --- child processes -----------------------------------------------------------------------------


def child_compile(sources: Path) -> dict[str, Any]:
    from aupgate.categories.cache import rebuild

    started = time.perf_counter()
    index, stats = rebuild(sources, [sources.parent / "index.aupidx"], force=True, isolate=False)
    seconds = time.perf_counter() - started
    assert stats is not None
    return {
        "compile_seconds": seconds,
        "entries": len(index),
        "keys": stats["keys"],
        "lines": stats["lines"],
        "rejected": stats["rejected"],
        "index_mib": index.size / 2**20,
        "compile_peak_rss_mib": rss()["VmHWM"],
    }


def child_load(sources: Path, queries_file: Path | None, seconds: float) -> dict[str, Any]:
    started = time.perf_counter()
    from aupgate.categories.cache import load_index

    imported = time.perf_counter()
    index, _ = load_index(sources)
    loaded = time.perf_counter()
    result: dict[str, Any] = {
        "import_seconds": imported - started,
        "load_seconds": loaded - imported,
        "rss_after_load": rss(),
    }
    if queries_file is None:
        return result
    queries = [tuple(line.rstrip("\n").split("\t")) for line in queries_file.open(encoding="utf-8")]
    classify = index.classify
    hits = 0
    t0 = time.perf_counter()
    for host, path in queries:
        if classify(host, path).matched is not None:
            hits += 1
    first = time.perf_counter() - t0
    done = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for host, path in queries:
            classify(host, path)
        done += len(queries)
    repeated = done / (time.perf_counter() - t0)
    working_set = queries[:20_000]  # a proxy's day: the same few thousand sites again and again
    done = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for host, path in working_set:
            classify(host, path)
        done += len(working_set)
    working = done / (time.perf_counter() - t0)
    from aupgate.errors import UrlError
    from aupgate.normalise import parse_url

    urls = []
    for host, path in queries[:100_000]:
        try:  # a deep "subdomain" of a listed IP address is no host at all: left out
            urls.append(str(parse_url(f"http://{host}{path}")))
        except UrlError:
            continue
    t0 = time.perf_counter()
    for text in urls:
        url = parse_url(text)
        classify(url.host, url.target)
    from_text = len(urls) / (time.perf_counter() - t0)
    kept = getattr(index, "resident", None)
    result.update(
        lookups=len(queries),
        hit_ratio=hits / len(queries),
        first_pass_per_second=len(queries) / first,
        repeated_per_second=repeated,
        working_set_per_second=working,
        url_text_per_second=from_text,
        rss_after_lookups=rss(),
        index_kept_mib=kept / 2**20 if kept is not None else None,
    )
    return result


def run_child(*args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "addon")}
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env
    )
    if out.returncode:
        sys.exit(f"child {args[0]} failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# --- the workload --------------------------------------------------------------------------------


def write_queries(target: Path, listed: list[str], count: int, seed: int = 7) -> None:
    """40% listed hosts, 30% deep subdomains of listed hosts, 30% misses; assorted paths."""
    rng = random.Random(seed)
    paths = ["/", "/index.html", "/a/b/c?q=1", "/radio/live", "/mail/", "/download/setup.exe"]
    with target.open("w", encoding="utf-8") as f:
        for _ in range(count):
            roll = rng.random()
            if roll < 0.4:
                host = rng.choice(listed)
            elif roll < 0.7:
                labels = [f"x{rng.randrange(1000)}" for _ in range(rng.randrange(2, 6))]
                host = ".".join([*labels, rng.choice(listed)])
            else:
                tld = rng.choice(synth.TLDS)
                host = f"site{rng.randrange(10**7)}.example{rng.randrange(100)}.{tld}"
            f.write(f"{host}\t{rng.choice(paths)}\n")


def shipped_hosts(rng: random.Random, count: int) -> list[str]:
    import gzip

    hosts: list[str] = []
    for file in sorted((ROOT / "categories" / "ut1").glob("*/domains.gz")):
        with gzip.open(file, "rt", encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
        hosts += rng.sample(lines, min(len(lines), count // 20))
    return hosts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=5_000_000)
    parser.add_argument("--queries", type=int, default=500_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, sources, *rest = args.child
        if kind == "compile":
            print(json.dumps(child_compile(Path(sources))))
        else:
            queries = Path(rest[0]) if rest and rest[0] != "-" else None
            seconds = float(rest[1]) if len(rest) > 1 else 0.0
            print(json.dumps(child_load(Path(sources), queries, seconds)))
        return 0

    folder = Path(tempfile.mkdtemp(prefix="aupgate-bench-categories-"))
    try:
        return _bench(folder, args)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            subprocess.run(["rm", "-rf", str(folder)], check=True)


def _bench(folder: Path, args: argparse.Namespace) -> int:
    figures: dict[str, Any] = {"domains": args.domains}
    t0 = time.perf_counter()
    sources, listed = synth.build(folder, ROOT / "categories" / "sources.yaml", args.domains)
    listed += shipped_hosts(random.Random(3), 20_000)
    queries = folder / "queries.tsv"
    write_queries(queries, listed, args.queries)
    figures["generate_seconds"] = time.perf_counter() - t0
    print(
        f"generated {args.domains:,} synthetic domains + shipped lists in "
        f"{figures['generate_seconds']:.1f}s ({folder})"
    )

    figures.update(run_child("compile", str(sources)))
    print(
        f"compile: {figures['compile_seconds']:.1f}s for {figures['lines']:,} lines -> "
        f"{figures['entries']:,} entries ({figures['rejected']} rejected lines), index "
        f"{figures['index_mib']:.0f} MiB; compiling process peak RSS "
        f"{figures['compile_peak_rss_mib']:.0f} MiB"
    )

    files = [p for p in folder.rglob("*") if p.is_file()]
    files += [p for p in (ROOT / "categories").rglob("*") if p.is_file() and "aupidx" not in p.name]
    evict(files)
    cold = run_child("load", str(sources), "-")
    warm = run_child("load", str(sources), str(queries), str(args.seconds))
    figures["cold"] = cold
    figures["warm"] = warm
    r = cold["rss_after_load"]
    print(
        f"cold load (page cache evicted): {cold['load_seconds'] * 1000:.0f} ms "
        f"(+ {cold['import_seconds'] * 1000:.0f} ms importing aupgate); "
        f"RSS after load {r['VmRSS']:.0f} MiB (anon {r['RssAnon']:.0f}, file {r['RssFile']:.0f})"
    )
    r = warm["rss_after_load"]
    print(
        f"warm load (page cache warm):    {warm['load_seconds'] * 1000:.0f} ms; "
        f"RSS after load {r['VmRSS']:.0f} MiB"
    )
    print(
        f"lookups ({warm['lookups']:,} requests, {warm['hit_ratio']:.0%} on a list): "
        f"{warm['first_pass_per_second']:,.0f}/s first pass (every host new), "
        f"{warm['repeated_per_second']:,.0f}/s repeated, "
        f"{warm['working_set_per_second']:,.0f}/s over a working set of 20,000 requests; "
        f"{warm['url_text_per_second']:,.0f}/s from URL text (parse_url + classify)"
    )
    r = warm["rss_after_lookups"]
    print(
        f"index bytes kept by the process: {warm['index_kept_mib']:.1f} MiB "
        f"(read and verified, never mapped); process RSS {r['VmRSS']:.0f} MiB incl. the query list"
    )
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
