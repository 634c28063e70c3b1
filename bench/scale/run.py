"""Requests/s through aupgate with 1, 2 and N workers behind HAProxy, beside bare mitmdump and
e2guardian, all on this machine, with the same bounded load (wrk).

    .venv/bin/python bench/scale/run.py                # every setup, ~3 minutes
    .venv/bin/python bench/scale/run.py --seconds 5 --only haproxy-2
    .venv/bin/python bench/scale/run.py --json results.json

Everything runs on loopback: nginx serves a 612-byte page as the upstream, the proxy under test
listens on a free port, and wrk (bench/scale/proxy.lua) sends absolute-URI requests through it,
once with
a new connection per request and once with keep-alive, `--concurrency` at a time for
`--seconds`. Each worker is `aupgate run` exactly as deploy/systemd/aupgate@.service starts it
(fixture agency of the deployment tests, audit log on, policy clock fixed), so the figure
includes deciding and auditing every request.

The HAProxy front is deploy/haproxy/haproxy.cfg with one change: `balance roundrobin` instead
of `balance source`. The load generator is a single address, and source hashing would put all of
it on one worker; real clients are thousands of addresses, which source hashing spreads like
round robin does. Everything (wrk, nginx, HAProxy, the workers) shares this machine's cores, so
the figures are what one box does, not what a proxy does on a core of its own.

Needs the Debian packages haproxy, nginx-light, wrk and e2guardian (the last two for this
benchmark only; .ci/run installs haproxy and nginx-light for the tests).
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
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "deploy"))  # the deployment tests' worker, shared

from deploy_support import worker_argv  # noqa: E402

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
def mitmdump(tmp: Path, upstream: int) -> Iterator[int]:
    """Bare mitmdump 11: no addon, nothing decided or audited."""
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
    with started(argv, port, tmp / "mitmdump.log"):
        yield port


def _worker_argv(tmp: Path, name: str, port: int, upstream: int) -> list[str]:
    return worker_argv(tmp / name, port, upstream, confdir=tmp / "conf", quiet=True)


@contextmanager
def aupgate_direct(tmp: Path, upstream: int) -> Iterator[int]:
    """One aupgate worker, clients straight to it (aupgate.service)."""
    port = free_port()
    with started(_worker_argv(tmp, "direct", port, upstream), port, tmp / "direct.log"):
        yield port


def aupgate_haproxy(workers: int) -> Callable[[Path, int], contextmanager[int]]:  # type: ignore[type-arg]
    @contextmanager
    def setup(tmp: Path, upstream: int) -> Iterator[int]:
        ports = [free_port() for _ in range(workers)]
        front, stats = free_port(), free_port()
        with _workers(tmp, ports, upstream):
            config = _haproxy_config(tmp, front, stats, ports)
            (tmp / "haproxy.cfg").write_text(config)
            argv = [_tool("haproxy"), "-db", "-f", str(tmp / "haproxy.cfg")]
            with started(argv, front, tmp / "haproxy.log"):
                time.sleep(1.5)  # health checks mark every worker up
                yield front

    return setup


@contextmanager
def _workers(tmp: Path, ports: list[int], upstream: int) -> Iterator[None]:
    processes = []
    try:
        for i, port in enumerate(ports):
            log = (tmp / f"w{i}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    _worker_argv(tmp, f"w{i}", port, upstream), stdout=log, stderr=subprocess.STDOUT
                )
            )
            log.close()
        for port, process in zip(ports, processes, strict=True):
            wait_port(port, process)
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)


def _haproxy_config(tmp: Path, front: int, stats: int, ports: list[int]) -> str:
    text = (ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text()
    for old, new in [
        ("    log /dev/log local0\n", ""),
        ("    chroot /var/lib/haproxy\n", ""),
        ("    user haproxy\n    group haproxy\n", ""),
        ("    log global\n", ""),
        ("    maxconn 20000\n", "    maxconn 4000\n"),
        ("stats socket /run/haproxy/admin.sock", f"stats socket {tmp / 'admin.sock'}"),
        ("    bind :8080\n", f"    bind 127.0.0.1:{front}\n"),
        ("    bind 127.0.0.1:8404\n", f"    bind 127.0.0.1:{stats}\n"),
        ("http://proxy-config.modot.mo.gov/proxy.pac", "http://health.lab.example/"),
        ("hdr Host proxy-config.modot.mo.gov", "hdr Host health.lab.example"),
        ("    balance source\n", "    balance roundrobin\n"),
    ]:
        if old not in text:
            raise RuntimeError(f"deploy/haproxy/haproxy.cfg no longer contains {old!r}")
        text = text.replace(old, new)
    lines = [line for line in text.splitlines() if not line.startswith("    server w80")]
    at = next(i for i, line in enumerate(lines) if line.startswith("    default-server")) + 1
    lines[at:at] = [f"    server w{p} 127.0.0.1:{p} check" for p in ports]
    return "\n".join(lines) + "\n"


@contextmanager
def e2guardian(tmp: Path, upstream: int) -> Iterator[int]:
    """Debian's e2guardian with its shipped lists and phrase filtering, on a loopback port."""
    port = free_port()
    text = Path("/etc/e2guardian/e2guardian.conf").read_text()
    text = re.sub(r"(?m)^filterip =.*$", "filterip = 127.0.0.1", text)
    text = re.sub(r"(?m)^filterports =.*$", f"filterports = {port}", text)
    text = re.sub(r"(?m)^nodaemon =.*$", "nodaemon = on", text)
    text = re.sub(r"(?m)^#?pidfilename =.*$", f"pidfilename = '{tmp}/e2g.pid'", text)
    text = re.sub(r"(?m)^#?loglocation =.*$", f"loglocation = '{tmp}/e2g-access.log'", text)
    if os.geteuid() == 0:  # the temporary folder is private to this user
        text = re.sub(r"(?m)^#?daemonuser =.*$", "daemonuser = 'root'", text)
        text = re.sub(r"(?m)^#?daemongroup =.*$", "daemongroup = 'root'", text)
    conf = tmp / "e2guardian.conf"
    conf.write_text(text)
    # The filter group file is found beside the main one, named after it.
    shutil.copy("/etc/e2guardian/e2guardianf1.conf", tmp / "e2guardianf1.conf")
    argv = [_tool("e2guardian"), "-N", "-c", str(conf)]
    # e2guardian drains its workers slowly on SIGTERM; the benchmark does not wait for that.
    with started(argv, port, tmp / "e2g.log", grace=3):
        time.sleep(1)
        yield port


SETUPS: dict[str, Callable[[Path, int], contextmanager[int]]] = {  # type: ignore[type-arg]
    "mitmdump": mitmdump,
    "aupgate-1-direct": aupgate_direct,
    "haproxy-1": aupgate_haproxy(1),
    "haproxy-2": aupgate_haproxy(2),
    "haproxy-3": aupgate_haproxy(3),
    "e2guardian": e2guardian,
}


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
    parser.add_argument("--concurrency", type=int, default=10, help="open connections (default 10)")
    parser.add_argument("--only", action="append", choices=sorted(SETUPS), help="setups to run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = []
    print(
        f"{'setup':<18} {'connections':<11} {'req/s':>8} {'done':>7} {'errors':>6} "
        f"{'non-2xx':>7} {'p50 ms':>6} {'p99 ms':>6}"
    )
    for name in args.only or list(SETUPS):
        with tempfile.TemporaryDirectory(prefix=f"aupgate-bench-{name}-") as folder:
            tmp = Path(folder)
            (tmp / "up").mkdir()
            with nginx_upstream(tmp / "up") as upstream, SETUPS[name](tmp, upstream) as proxy:
                # Every proxy gets the upstream's address in the URL: aupgate's --resolve override
                # (a test aid) stalls the sixth request on a kept-alive connection.
                direct_url = True
                check_once(proxy, upstream, direct_url)
                for keepalive in (False, True):
                    row = load(
                        proxy,
                        upstream,
                        seconds=args.seconds,
                        concurrency=args.concurrency,
                        keepalive=keepalive,
                        direct_url=direct_url,
                    )
                    mode = "keep-alive" if keepalive else "close"
                    results.append({"setup": name, "connections": mode, **row})
                    print(
                        f"{name:<18} {mode:<11} {row['requests_per_s']:>8.0f} "
                        f"{row['complete']:>7.0f} {sum(row['socket_errors']):>6} "
                        f"{row['non_2xx']:>7.0f} "
                        f"{row['p50_ms']:>6.0f} {row['p99_ms']:>6.0f}",
                        flush=True,
                    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
