"""Requests/s of one box: `aupgate run --workers 1..N` against Debian's e2guardian and bare
mitmdump, all on this machine, with the same bounded load (wrk).

    .venv/bin/python bench/scale/run.py                     # every setup, a few minutes
    .venv/bin/python bench/scale/run.py --seconds 5 --only aupgate-w2 --only e2guardian
    .venv/bin/python bench/scale/run.py --json results.json

Everything runs on loopback: nginx serves a 612-byte page as the upstream, the proxy under test
listens on a free port, and wrk (bench/scale/proxy.lua) sends absolute-URI requests through it,
once with a new connection per request and once with keep-alive, `--concurrency` connections
(20 by default) from two wrk threads, for `--seconds`. aupgate is `aupgate run --workers K`
exactly as deploy/systemd/aupgate.service starts it (the deployment tests' fixture agency, audit
log on, policy clock fixed), so its figure includes deciding and auditing every request; each
worker writes its own audit file, and the share of requests each worker took is printed.

e2guardian is the peer a gateway would otherwise run: Debian's package, configured in a
temporary folder as a plain forward proxy on loopback, every list emptied, phrase filtering and
content scanning off, its access log on (aupgate audits every request too). It is multi-threaded,
so it uses every core as `--workers N` does.

Everything (wrk, nginx, the proxies) shares this machine's cores, so the figures are what one
box does, not what a proxy does on a core of its own. Needs the Debian packages nginx-light, wrk
and e2guardian (the last two for this benchmark only).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "deploy"))  # the deployment tests' worker, shared

sys.path.insert(0, str(ROOT / "bench" / "metrics"))  # the scraper, shared

from deploy_support import worker_argv  # noqa: E402
from scraper import Scraper  # noqa: E402

VENV_BIN = Path(sys.executable).parent
PAGE = b"<!doctype html>" + b"x" * 597  # 612 bytes, nginx's welcome page size


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited {process.returncode}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def started(
    argv: list[str], port: int, log: Path, grace: float = 15
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, process)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def nginx_upstream(tmp: Path) -> Iterator[int]:
    port = free_port()
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_bytes(PAGE)
    conf = tmp / "nginx.conf"
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/nginx.err;\n"
        "events { worker_connections 4096; }\nhttp {\n  access_log off;\n"
        f"  client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f;\n"
        f"  uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {tmp}/www; }}\n}}\n"
    )
    with started([_tool("nginx"), "-p", str(tmp), "-c", str(conf)], port, tmp / "nginx.log"):
        yield port


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise SystemExit(f"{name} is not installed (Debian: apt-get install -y {name})")
    return found


# --------------------------------------------------------------------------- proxies under test


@contextmanager
def mitmdump(tmp: Path, upstream: int) -> Iterator[tuple[int, int]]:
    """Bare mitmdump 11: no addon, nothing decided or audited, one process."""
    port = free_port()
    argv = [
        str(VENV_BIN / "mitmdump"),
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "--set",
        f"confdir={tmp / 'conf'}",
        "--set",
        "flow_detail=0",
        "--quiet",
    ]
    with started(argv, port, tmp / "mitmdump.log") as process:
        yield port, process.pid


Setup = Callable[[Path, int], AbstractContextManager[tuple[int, int]]]
"""Start a proxy for the upstream's port in a folder; yields its (port, pid)."""


def aupgate(workers: int, admin: bool = False) -> Setup:
    """`aupgate run --workers K` on one port, as the systemd unit runs it; `admin`: with its
    admin endpoint on and /metrics scraped every second (bench/metrics/scraper.py)."""

    @contextmanager
    def setup(tmp: Path, upstream: int) -> Iterator[tuple[int, int]]:
        port, admin_port = free_port(), free_port()
        extra = ("--set", "aupgate_reload_seconds=0",
                 *(("--admin", f"127.0.0.1:{admin_port}") if admin else ()))
        argv = worker_argv(tmp / "aupgate", port, upstream, confdir=tmp / "conf", quiet=True,
                           workers=workers, extra=extra)
        with started(argv, port, tmp / "aupgate.log") as process:
            deadline = time.monotonic() + 60
            while not serving(tmp / "aupgate", workers):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"aupgate's {workers} workers did not all start")
                time.sleep(0.1)
            scraper = Scraper(admin_port) if admin else None
            if scraper is not None:
                scraper.start()
            try:
                yield port, process.pid
            finally:
                if scraper is not None:
                    scraper.stop()
                    print(f"  /metrics: {scraper.scrapes} scrapes, {scraper.failures} failed, "
                          f"aupgate_requests_total {scraper.last_requests:.0f} at the last")

    return setup


def serving(home: Path, workers: int) -> bool:
    """Whether every worker has recorded `proxy_start` in its audit file. (The supervisor's
    "N workers serving" line is an info line, which `--quiet` leaves out.)"""
    files = ([home / "audit.jsonl"] if workers == 1
             else [home / f"audit.w{i}.jsonl" for i in range(workers)])
    return all(f.exists() and b'"event": "proxy_start"' in f.read_bytes() for f in files)


def shares(tmp: Path) -> str:
    """How many of the run's decisions each aupgate worker took."""
    counts = []
    for path in sorted((tmp / "aupgate").glob("audit*.jsonl")):
        with path.open("rb") as handle:
            counts.append(sum(1 for line in handle if b'"event": "decision"' in line))
    total = sum(counts) or 1
    return " / ".join(f"{100 * n / total:.0f}%" for n in counts) if len(counts) > 1 else ""


def _set_keys(path: Path, values: dict[str, str]) -> None:
    """Set `key = value` in an e2guardian configuration file, dropping other lines for it."""
    text = path.read_text()
    for key, value in values.items():
        text = re.sub(rf"(?m)^#?\s*{key}\s*=.*\n", "", text)
        text += f"{key} = {value}\n"
    path.write_text(text)


@contextmanager
def e2guardian(tmp: Path, upstream: int) -> Iterator[tuple[int, int]]:
    """Debian's e2guardian as a plain forward proxy: every list empty, no phrase filtering, no
    content scanning, its access log on, in a temporary copy of /etc/e2guardian."""
    port = free_port()
    conf = tmp / "e2guardian"
    shutil.copytree("/etc/e2guardian", conf)
    for path in (conf / "lists").rglob("*"):
        if path.is_file():
            path.write_bytes(b"")
    for path in conf.rglob("*"):
        if path.is_file() and b"/etc/e2guardian" in path.read_bytes():
            path.write_text(path.read_text().replace("/etc/e2guardian", str(conf)))
    main_conf = conf / "e2guardian.conf"
    settings = {
        "filterip": "127.0.0.1",
        "filterports": str(port),
        "transparenthttpsport": str(free_port()),  # unused, but bound: not the default 8443
        "nodaemon": "on",
        "pidfilename": f"'{tmp}/e2g.pid'",
        "loglocation": f"'{tmp}/e2g-access.log'",
        "weightedphrasemode": "0",
    }
    if os.geteuid() == 0:  # the temporary folder is private to this user
        settings.update(daemonuser="'root'", daemongroup="'root'")
    _set_keys(main_conf, settings)
    _set_keys(conf / "e2guardianf1.conf", {"disablecontentscan": "on"})
    argv = [_tool("e2guardian"), "-N", "-c", str(main_conf)]
    # e2guardian drains its workers slowly on SIGTERM; the benchmark does not wait for that.
    with started(argv, port, tmp / "e2g.log", grace=3) as process:
        time.sleep(1)
        yield port, process.pid


def setups(max_workers: int) -> dict[str, Setup]:
    found: dict[str, Setup] = {"mitmdump": mitmdump}
    for k in range(1, max_workers + 1):
        found[f"aupgate-w{k}"] = aupgate(k)
        found[f"aupgate-w{k}-admin"] = aupgate(k, admin=True)
    found["e2guardian"] = e2guardian
    return found


# --------------------------------------------------------------------------- load


def check_once(proxy: int, upstream: int, direct_url: bool) -> None:
    """One request through the proxy must return the upstream's page: a benchmark of a proxy
    that answers with an error (or a block page) measures nothing."""
    target = f"http://127.0.0.1:{upstream}/" if direct_url else "http://www.example.org/"
    host = target.split("/")[2]
    with socket.create_connection(("127.0.0.1", proxy), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if b" 200 " not in data.split(b"\r\n", 1)[0] or not data.endswith(PAGE):
        raise RuntimeError(f"proxy on {proxy} did not relay the page: {data[:300]!r}")


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, its threads and every descendant (Linux /proc):
    a co-tenant changes how fast a run goes, not how much CPU a request costs."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def load(
    proxy: int,
    upstream: int,
    *,
    seconds: float,
    concurrency: int,
    keepalive: bool,
    direct_url: bool,
) -> dict[str, Any]:
    """One bounded wrk run through the proxy: requests/s, errors, latency percentiles.

    wrk speaks HTTP/1.1 and keeps connections alive properly (ApacheBench's HTTP/1.0 keep-alive
    miscounts through mitmproxy); `Connection: close` on every request gives the no-reuse case.
    """
    # aupgate sends the name to the upstream with --resolve; the others get the address.
    if direct_url:
        url, host = f"http://127.0.0.1:{upstream}/", f"127.0.0.1:{upstream}"
    else:
        url, host = "http://www.example.org/", "www.example.org"
    env = {
        **os.environ,
        "BENCH_URL": url,
        "BENCH_HOST": host,
        "BENCH_CLOSE": "0" if keepalive else "1",
    }
    argv = [
        _tool("wrk"),
        "-t",
        "2",
        "-c",
        str(concurrency),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(Path(__file__).with_name("proxy.lua")),
        f"http://127.0.0.1:{proxy}/",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False).stdout

    def number(pattern: str, default: float = float("nan")) -> float:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else default

    def millis(label: str) -> float:
        match = re.search(rf"\n\s+{label}\s+([\d.]+)(us|ms|s)\b", out)
        if not match:
            return float("nan")
        return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]

    errors = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests_per_s": number(r"Requests/sec:\s+([\d.]+)"),
        "complete": number(r"(\d+) requests in"),
        "non_2xx": number(r"Non-2xx or 3xx responses: (\d+)", 0.0),
        "socket_errors": [int(n) for n in errors.groups()] if errors else [0, 0, 0, 0],
        "p50_ms": millis("50%"),
        "p99_ms": millis("99%"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="per run (default 10)")
    parser.add_argument("--concurrency", type=int, default=20, help="open connections (default 20)")
    parser.add_argument("--max-workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="aupgate with 1..N workers (default: this machine's cores)")
    parser.add_argument("--only", action="append", help="setups to run (mitmdump, aupgate-wK, "
                        "aupgate-wK-admin: with /metrics scraped every second, e2guardian)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    available = setups(args.max_workers)
    for name in args.only or ():
        if name not in available:
            parser.error(f"unknown setup {name!r} (one of {', '.join(available)})")
    results = []
    print(f"cpus: {os.cpu_count()}; wrk -t2 -c{args.concurrency} -d{args.seconds:g}s per row")
    print(
        f"{'setup':<12} {'connections':<11} {'req/s':>8} {'done':>7} {'errors':>6} "
        f"{'non-2xx':>7} {'p50 ms':>6} {'p99 ms':>6} {'cpu us/req':>10}  per-worker share"
    )
    # the -admin setups (metrics on, scraped) run only when named: `--only aupgate-w2-admin`
    for name in args.only or [n for n in available if not n.endswith("-admin")]:
        with tempfile.TemporaryDirectory(prefix=f"aupgate-bench-{name}-") as folder:
            tmp = Path(folder)
            (tmp / "up").mkdir()
            with nginx_upstream(tmp / "up") as upstream, available[name](tmp, upstream) as (
                    proxy, pid):
                # Every proxy gets the upstream's address in the URL (the same request for all).
                check_once(proxy, upstream, direct_url=True)
                for keepalive in (False, True):
                    cpu_before = tree_cpu(pid)
                    row = load(
                        proxy,
                        upstream,
                        seconds=args.seconds,
                        concurrency=args.concurrency,
                        keepalive=keepalive,
                        direct_url=True,
                    )
                    used = tree_cpu(pid) - cpu_before
                    row["cpu_us_per_request"] = used / row["complete"] * 1e6 if row[
                        "complete"] else float("nan")
                    mode = "keep-alive" if keepalive else "close"
                    results.append({"setup": name, "connections": mode, **row})
                    print(
                        f"{name:<12} {mode:<11} {row['requests_per_s']:>8.0f} "
                        f"{row['complete']:>7.0f} {sum(row['socket_errors']):>6} "
                        f"{row['non_2xx']:>7.0f} "
                        f"{row['p50_ms']:>6.0f} {row['p99_ms']:>6.0f} "
                        f"{row['cpu_us_per_request']:>10.0f}  "
                        f"{shares(tmp) if name.startswith('aupgate') and keepalive else ''}",
                        flush=True,
                    )
    print_ratios(results, args.max_workers)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def print_ratios(results: list[dict[str, Any]], max_workers: int) -> None:
    """aupgate with every core against e2guardian (target >= 1.0), and growth from 1 worker."""
    rate = {(r["setup"], r["connections"]): r["requests_per_s"] for r in results}
    for mode in ("keep-alive", "close"):
        best = f"aupgate-w{max_workers}"
        if (best, mode) in rate and ("e2guardian", mode) in rate:
            ratio = rate[(best, mode)] / rate[("e2guardian", mode)]
            print(f"{mode}: {best}/e2guardian = {ratio:.2f} (target >= 1.0)")
        if ("aupgate-w1", mode) in rate:
            growth = ", ".join(
                f"w{k} {rate[(f'aupgate-w{k}', mode)] / rate[('aupgate-w1', mode)]:.2f}x"
                for k in range(1, max_workers + 1) if (f"aupgate-w{k}", mode) in rate)
            print(f"{mode}: growth from one worker: {growth}")
        if ("aupgate-w1", mode) in rate and ("mitmdump", mode) in rate:
            print(f"{mode}: aupgate-w1/mitmdump = "
                  f"{rate[('aupgate-w1', mode)] / rate[('mitmdump', mode)]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
