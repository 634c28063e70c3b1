"""Proxy overhead: bare mitmdump against `aupgate run`, same upstream, same load, side by side.

The question is what a gateway process costs against mitmproxy itself, so everything else is
held equal: one local upstream (nginx from Debian if installed, else a small asyncio server), the
same URL, the same mitmproxy options (`connection_strategy=lazy`, no flow printing), and the same
load generator (wrk, keep-alive, absolute-form requests so the proxy sees ordinary proxy
traffic). aupgate runs with the shipped policies and category index, a default agency, and its
audit log on (one JSON line per request to a file), as in production, as one process
(`--workers 1`: `aupgate run`'s own lean master, against mitmdump's ~36 addons). Target: at
least 1.3 times bare mitmdump's throughput. `--also-mitmdump-script` adds aupgate loaded into
mitmdump (`mitmdump -s script.py`, what `aupgate run` did before it had its own master).

Runs alternate bare / aupgate for `--rounds` rounds of `--seconds` each after a warm-up, and report
the median round. Loopback only.

`--distinct-urls` gives every request a URL not seen before (a new query), so no memo in the
proxy can answer it: the cost of deciding cold, against the default of one URL repeated.

`--admin` runs `aupgate run` with its admin endpoint on (`--admin 127.0.0.1:PORT`) and scrapes
`/metrics` every second while the load runs (Prometheus scrapes every 15 s by default): what the
metrics and their endpoint cost. Metrics are counted with or without the endpoint.

`--breakdown` adds aupgate with clocks inside (`timed_addon.py`) and prints where its time goes
per request in the running proxy: each hook, the audit line's steps, the garbage collector.

Usage: .venv/bin/python bench/proxy_overhead/run.py [--seconds 10] [--rounds 3]
       [--connections 10] [--threads 2] [--agency modot] [--distinct-urls] [--breakdown]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "metrics"))  # the scraper, shared with bench/scale

from scraper import Scraper  # noqa: E402

BIN = Path(sys.executable).parent
BODY = b"<!doctype html><title>ok</title>" + b"x" * 1000  # a ~1 KiB page


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port} within {timeout}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- upstream


def start_upstream(work: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    (work / "www").mkdir()
    (work / "www" / "index.html").write_bytes(BODY)
    for path in (work, work / "www", work / "www" / "index.html"):  # nginx workers drop root
        path.chmod(0o755)
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx:
        conf = work / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp; fastcgi_temp_path {work}/tmp;
  uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
  server {{ listen 127.0.0.1:{port}; root {work}/www; }}
}}
""")
        process = subprocess.Popen([*LOAD_CPU, nginx, "-c", str(conf), "-p", str(work)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kind = "nginx"
    else:
        process = subprocess.Popen([*LOAD_CPU, sys.executable,
                                    str(Path(__file__).with_name("upstream.py")),
                                    str(port), str(work / "www" / "index.html")])
        kind = "python asyncio"
    wait_port(port, process, "upstream")
    return process, port, kind


# --------------------------------------------------------------------------- proxies

PROXY_CPU: list[str] = []  # e.g. ["taskset", "-c", "1"]: proxies on one core ...
LOAD_CPU: list[str] = []  # ... and wrk + the upstream on the other, so they do not compete

COMMON = ["--set", "connection_strategy=lazy", "--set", "flow_detail=0", "-q"]


def start_bare(work: Path, port: int, *extra: str, name: str = "bare",
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """mitmdump with `extra` arguments; each `name` its own confdir (mitmdumps starting together
    in one confdir race to create its CA, and one of them fails)."""
    argv = [str(BIN / "mitmdump"), "--listen-host", "127.0.0.1", "-p", str(port),
            "--set", f"confdir={work / ('conf-' + name)}", *COMMON, *extra]
    return subprocess.Popen([*PROXY_CPU, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def start_aupgate(work: Path, port: int, agency: str, *, audit: bool = True,
                  name: str = "aupgate", policies: Path = ROOT / "policies",
                  categories: Path = ROOT / "categories" / "sources.yaml",
                  code: Path | None = None, admin: int | None = None
                  ) -> subprocess.Popen[bytes]:
    """`aupgate run`; with `code`, the aupgate package found there (first on PYTHONPATH, which
    mitmdump inherits) instead of the installed one: an older commit's `addon/`."""
    # One process. A tree from before `--workers` refuses the flag; its `aupgate run` is one
    # process anyway (it runs mitmdump).
    knows_workers = code is None or (code / "aupgate" / "mitm" / "workers.py").exists()
    argv = [str(BIN / "aupgate"), "run", *(["--workers", "1"] if knows_workers else []),
            "--listen-host", "127.0.0.1",
            "--listen-port", str(port), "--policy-dir", str(policies),
            "--categories", str(categories),
            *(["--audit-log", str(work / f"{name}.jsonl")] if audit else []),
            "--default-agency", agency,
            "--set", f"confdir={work / ('conf-' + name)}", "--set", "aupgate_reload_seconds=0",
            *(["--admin", f"127.0.0.1:{admin}"] if admin else []),
            "--quiet"]  # aupgate run sets connection_strategy=lazy and prints no flows
    env = {**os.environ, "PYTHONPATH": str(code)} if code is not None else None
    return subprocess.Popen([*PROXY_CPU, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)


SCRIPT = ROOT / "addon" / "aupgate" / "mitm" / "script.py"


def aupgate_sets(policies: Path, categories: Path, audit: Path, agency: str) -> list[str]:
    """`aupgate run`'s options for aupgate loaded into mitmdump by `-s`."""
    return ["--set", f"aupgate_policy_dir={policies.resolve()}",
            "--set", f"aupgate_categories={categories.resolve()}",
            "--set", f"aupgate_audit_log={audit}",
            "--set", f"aupgate_default_agency={agency}", "--set", "aupgate_reload_seconds=0"]


def start_scripted(work: Path, port: int, agency: str, policies: Path,
                   categories: Path) -> subprocess.Popen[bytes]:
    """aupgate inside mitmdump (`mitmdump -s script.py`), with `aupgate run`'s options."""
    return start_bare(work, port, "-s", str(SCRIPT),
                      *aupgate_sets(policies, categories, work / "scripted.jsonl", agency),
                      name="scripted")


NOOP_ADDON = Path(__file__).with_name("noop_addon.py")
TIMED_ADDON = Path(__file__).with_name("timed_addon.py")


def start_timed(work: Path, port: int, agency: str, policies: Path,
                categories: Path) -> subprocess.Popen[bytes]:
    """aupgate as `mitmdump -s timed_addon.py` (the addon with clocks), with `aupgate run`'s
    options: its timings go to `timed.json`. Its throughput is not aupgate's (the clocks cost)."""
    return start_bare(work, port, "-s", str(TIMED_ADDON),
                      *aupgate_sets(policies, categories, work / "timed.jsonl", agency),
                      name="timed", env={"AUPGATE_BENCH_TIMINGS": str(work / "timed.json")})


def print_breakdown(timed: dict[str, Any], bare_gc: dict[str, Any]) -> None:
    """Microseconds per response inside the running proxies, the nested steps indented."""
    steps = timed["timings"]
    print(f"in-proxy time per response (aupgate with clocks on, {timed['responses']} responses; "
          "each step includes the ones indented under it; the `timed` and `bare-gc` rows above "
          "carry clocks, so read their timings here, not their rates):")
    for name, indent in (("hook: requestheaders", 0), ("hook: responseheaders", 0),
                         ("hook: response", 0), ("audit: redact + render + file", 1),
                         ("audit file: write_line", 2), ("audit file: stat (rotation check)", 3),
                         ("audit file: write(2)", 3), ("audit file: sha256 (chain)", 3)):
        if name in steps:
            label = "  " * indent + name
            print(f"  {label:<42} {steps[name]['us_per_response']:7.1f} us")
    hooks = sum(steps[name]["us_per_response"] for name in steps if name.startswith("hook: "))
    print(f"  {'three hooks together':<42} {hooks:7.1f} us")
    for name in sorted(set(steps) | set(bare_gc["timings"])):
        if name.startswith("gc: "):
            ours = steps.get(name, {}).get("us_per_response", 0.0)
            theirs = bare_gc["timings"].get(name, {}).get("us_per_response", 0.0)
            print(f"  {name:<42} {ours:7.1f} us   (mitmdump: {theirs:.1f} us)")


# --------------------------------------------------------------------------- load


@dataclass
class Round:
    proxy: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: float = 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc): robust against co-tenants, which
    change how fast a round goes but not how much CPU one request costs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNIT[match.group(2)]


def run_wrk(proxy_port: int, upstream_port: int, seconds: int, connections: int,
            threads: int, script: Path, name: str, pid: int | None = None,
            distinct: bool = False) -> Round:
    """wrk against the proxy with absolute-form requests for the upstream (keep-alive).

    `pid` is the proxy's process (`taskset` and `aupgate run` both exec, so the pid started is
    the proxy's), whose CPU time per request is measured alongside.
    """
    cpu_before = cpu_seconds(pid) if pid else 0.0
    target = f"http://127.0.0.1:{upstream_port}/index.html"
    if distinct:  # every request a URL not seen before: no memo of the proxy's can answer it
        request = (f'n = 0\nrequest = function() n = n + 1\n'
                   f'  return wrk.format("GET", "{target}?page=" .. n .. "-" .. math.random(1e9))'
                   f' end\n')
    else:
        request = f'request = function() return wrk.format("GET", "{target}") end\n'
    script.write_text(f'wrk.headers["Host"] = "127.0.0.1:{upstream_port}"\n{request}')
    out = subprocess.run(
        [*LOAD_CPU, "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
         "--latency", "-s", str(script), f"http://127.0.0.1:{proxy_port}"],
        capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    errors = int(errors_match.group(1)) if errors_match else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    cpu = (cpu_seconds(pid) - cpu_before) / total * 1e6 if pid and total else 0.0
    return Round(name, rps, p50, p99, errors, cpu)


def with_open_port(policies: Path, port: int, out: Path) -> Path:
    """A copy of the policies in `out` that opens the upstream's port to plain HTTP, as an agency
    opens a service (`ports.http`): the shipped policies open only 80, and the upstream listens
    elsewhere. A tree from before the port policy has no `ports` section and is copied as it is."""
    shutil.copytree(policies, out)
    for path in out.glob("*.yaml"):
        text = path.read_text()
        if "\nports:\n" not in text:
            continue
        if "\n  http: []\n" not in text:
            raise SystemExit(f"{path.name}: its ports section has no `http: []` line to open "
                             f"port {port} in; open it in a copy and pass --policy-dir")
        path.write_text(text.replace("\n  http: []\n", f"\n  http: [{port}]\n", 1))
    return out


def check(proxy_port: int, upstream_port: int, name: str) -> None:
    """One request through the proxy must return the page: a benchmark of errors is no use."""
    done = subprocess.run(
        ["curl", "-sS", "--proxy", f"http://127.0.0.1:{proxy_port}", "-o", "/dev/null",
         "-w", "%{http_code}", f"http://127.0.0.1:{upstream_port}/index.html"],
        capture_output=True, text=True, timeout=30, check=False)
    if done.stdout != "200":
        raise SystemExit(f"{name}: a request through the proxy got {done.stdout or 'nothing'} "
                         f"{done.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--policy-dir", type=Path, default=ROOT / "policies")
    parser.add_argument("--categories", type=Path, default=ROOT / "categories" / "sources.yaml")
    parser.add_argument("--agency", default="modot",
                        help="default agency (the loopback client is in no agency network)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--also-mitmdump-script", action="store_true",
                        help="add aupgate loaded into mitmdump (-s script.py), as aupgate run "
                             "was before its own master")
    parser.add_argument("--also-without-audit", action="store_true",
                        help="add a third proxy: aupgate with no audit log (shows its share)")
    parser.add_argument("--also-noop-addon", action="store_true",
                        help="add mitmdump -s noop_addon.py (empty hooks): the script's own cost")
    parser.add_argument("--also-write-floor", action="store_true",
                        help="add noop_addon.py writing a fixed line per request (stat + write): "
                             "the floor of any per-request audit file")
    parser.add_argument("--also-audit-floor", action="store_true",
                        help="add noop_addon.py writing the cheapest audit line the issue allows "
                             "(fields from the flow, orjson, SHA-256 chain, stat + write)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="add `aupgate run` from another version's addon/ directory, e.g. "
                             "`git archive COMMIT addon | tar -x -C /tmp/old` then "
                             "--baseline /tmp/old/addon: before and after in one run")
    parser.add_argument("--baseline-policy-dir", type=Path, metavar="DIR",
                        help="the policies the baseline runs (default: DIR/../policies, e.g. "
                             "`git archive COMMIT addon policies`): an older loader refuses "
                             "keys it does not know")
    parser.add_argument("--distinct-urls", action="store_true",
                        help="a new URL (query) for every request instead of one URL repeated")
    parser.add_argument("--breakdown", action="store_true",
                        help="add aupgate with clocks on its hooks, audit steps and the garbage "
                             "collector (timed_addon.py), and mitmdump with the collector's "
                             "clock: where the time goes inside the running proxy")
    parser.add_argument("--admin", action="store_true",
                        help="aupgate with its admin endpoint on, /metrics scraped every second")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin proxies to CPU 1 and wrk + upstream to CPU 0")
    args = parser.parse_args(argv)
    pinned = not args.no_pin and bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2
    if pinned:
        PROXY_CPU[:] = ["taskset", "-c", "1"]
        LOAD_CPU[:] = ["taskset", "-c", "0"]
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-proxy-overhead-") as tmp:
        work = Path(tmp)
        (work / "tmp").mkdir()
        upstream, upstream_port, kind = start_upstream(work)
        args.policy_dir = with_open_port(args.policy_dir, upstream_port, work / "policies")
        proxies: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
        port = free_port()
        proxies["mitmdump"] = (port, start_bare(work, port))
        port = free_port()
        admin = free_port() if args.admin else None
        proxies["aupgate"] = (port, start_aupgate(work, port, args.agency,
                                                  policies=args.policy_dir,
                                                  categories=args.categories, admin=admin))
        scraper = Scraper(admin) if admin else None
        if args.also_mitmdump_script:
            port = free_port()
            proxies["mitmdump-s"] = (port, start_scripted(work, port, args.agency,
                                                          args.policy_dir, args.categories))
        if args.baseline:
            port = free_port()
            proxies["baseline"] = (port, start_aupgate(
                work, port, args.agency, name="baseline",
                policies=with_open_port(args.baseline_policy_dir or args.baseline.parent
                                        / "policies", upstream_port, work / "baseline-policies"),
                categories=args.categories, code=args.baseline.resolve()))
        if args.also_noop_addon:
            port = free_port()
            proxies["noop-addon"] = (port, start_bare(work, port, "-s", str(NOOP_ADDON),
                                                      name="noop-addon"))
        if args.also_write_floor:
            port = free_port()
            proxies["write-floor"] = (port, start_bare(
                work, port, "-s", str(NOOP_ADDON), name="write-floor",
                env={"AUPGATE_BENCH_FLOOR_LOG": str(work / "floor.jsonl")}))
        if args.also_audit_floor:
            port = free_port()
            proxies["audit-floor"] = (port, start_bare(
                work, port, "-s", str(NOOP_ADDON), name="audit-floor",
                env={"AUPGATE_BENCH_AUDIT_FLOOR": str(work / "audit-floor.jsonl")}))
        if args.also_without_audit:
            port = free_port()
            proxies["no-audit"] = (port, start_aupgate(work, port, args.agency, audit=False,
                                                       name="no-audit",
                                                       policies=args.policy_dir,
                                                       categories=args.categories))
        if args.breakdown:
            port = free_port()
            proxies["timed"] = (port, start_timed(work, port, args.agency, args.policy_dir,
                                                  args.categories))
            port = free_port()
            proxies["bare-gc"] = (port, start_bare(
                work, port, "-s", str(TIMED_ADDON), name="bare-gc",
                env={"AUPGATE_BENCH_GC_ONLY": "1",
                     "AUPGATE_BENCH_TIMINGS": str(work / "bare-gc.json")}))
        try:
            for name, (port, process) in proxies.items():
                wait_port(port, process, name)
                check(port, upstream_port, name)
            script = work / "req.lua"
            for name, (port, _process) in proxies.items():
                run_wrk(port, upstream_port, args.warmup, args.connections, args.threads,
                        script, name, distinct=args.distinct_urls)
            rounds: dict[str, list[Round]] = {name: [] for name in proxies}
            if scraper is not None:
                scraper.start()
            for _ in range(args.rounds):
                for name, (port, process) in proxies.items():
                    rounds[name].append(run_wrk(port, upstream_port, args.seconds,
                                                args.connections, args.threads, script, name,
                                                process.pid, distinct=args.distinct_urls))
            with (work / "aupgate.jsonl").open() as handle:
                audit_lines = sum(1 for _ in handle)
        finally:
            if scraper is not None:
                scraper.stop()
            for _port, process in proxies.values():
                stop(process)
            stop(upstream)
        timings = ({name: json.loads((work / f"{name}.json").read_text())
                    for name in ("timed", "bare-gc")} if args.breakdown else {})

    def median(name: str) -> Round:
        ordered = sorted(rounds[name], key=lambda r: r.requests_per_s)
        return ordered[len(ordered) // 2]

    bare_r, aup_r = median("mitmdump"), median("aupgate")
    ratio = aup_r.requests_per_s / bare_r.requests_per_s
    print(f"upstream: {kind}; wrk -t{args.threads} -c{args.connections} -d{args.seconds}s "
          f"keep-alive, {args.rounds} rounds (median shown); cpus: {os.cpu_count()}; "
          f"{'proxies pinned to cpu 1, load to cpu 0' if pinned else 'not pinned'}; "
          f"{'a new URL every request' if args.distinct_urls else 'one URL repeated'}")
    print(f"{'proxy':<11} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'cpu us/req':>11}   all rounds req/s")
    for name in rounds:
        r = median(name)
        every = ", ".join(f"{x.requests_per_s:.0f}" for x in rounds[name])
        cpu = statistics.median(x.cpu_us_per_request for x in rounds[name])
        print(f"{r.proxy:<11} {r.requests_per_s:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
              f"{r.errors:>7} {cpu:>11.0f}   {every}")
    print(f"throughput ratio aupgate/mitmdump: {ratio:.3f} (target >= 1.3)")
    for other in ("mitmdump-s", "baseline", "noop-addon", "write-floor", "audit-floor",
                  "no-audit"):
        if other in rounds:
            print(f"throughput ratio {other}/mitmdump: "
                  f"{median(other).requests_per_s / bare_r.requests_per_s:.3f}")
    cpu_bare = statistics.median(x.cpu_us_per_request for x in rounds["mitmdump"])
    cpu_aup = statistics.median(x.cpu_us_per_request for x in rounds["aupgate"])
    if cpu_bare:
        print(f"proxy CPU per request: aupgate {cpu_aup:.0f} us, mitmdump {cpu_bare:.0f} us "
              f"({cpu_aup - cpu_bare:+.0f} us; CPU-bound ratio {cpu_bare / cpu_aup:.3f})")
    print(f"p99 difference: {aup_r.p99_ms - bare_r.p99_ms:+.2f} ms")
    print(f"audit lines written by aupgate: {audit_lines}")
    if scraper is not None:
        print(f"admin endpoint: {scraper.scrapes} scrapes of /metrics during the rounds, "
              f"{scraper.failures} failed; aupgate_requests_total at the last: "
              f"{scraper.last_requests:.0f}")
    if timings:
        print_breakdown(timings["timed"], timings["bare-gc"])
    if args.json:
        args.json.write_text(json.dumps({
            "upstream": kind, "seconds": args.seconds, "rounds": args.rounds,
            "distinct_urls": args.distinct_urls,
            "connections": args.connections, "threads": args.threads,
            **{name: [asdict(r) for r in every] for name, every in rounds.items()},
            "ratio": ratio, "p99_diff_ms": aup_r.p99_ms - bare_r.p99_ms,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
