"""Requests per second through `aupgate run` with directory logins, against anonymous requests.

    .venv/bin/python bench/directory_proxy.py [--seconds 10] [--rounds 3]

Two `aupgate run` proxies on the shipped policies and category index (default agency modot,
audit log on), the same in every way but one: the second's policy has a `directory:` section
pointing at a real slapd started for the run, so every request must log in. wrk sends the same
absolute-form request to both, with `Proxy-Authorization: Basic` for the second, in two shapes:

- keep-alive (wrk's default): a connection logs in once; its later requests repeat the header,
  which the connection remembers (a keyed digest compared, no directory, no cache lookup);
- a new connection per request (`Connection: close`): every request is a login, answered by the
  login cache (the hook returns an awaitable, the authenticator finds the entry, no thread).

The directory's own operation counters (slapd's cn=Monitor) are read before and after the
measured rounds: with every login cached they must not move, which the run checks. Proxies run
on CPU 1, wrk, the upstream and slapd on CPU 0 (as bench/proxy_overhead/run.py does). The figure
is the ratio of each login shape to anonymous requests of the same shape, from the same run.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "directory"))
sys.path.insert(0, str(ROOT / "bench" / "proxy_overhead"))
sys.path.insert(0, str(ROOT / "addon"))

import run as overhead  # noqa: E402
from slapd_server import PASSWORDS, SERVICE_DN, SERVICE_PASSWORD, running_slapd  # noqa: E402

USER = "alice"


def directory_section(url: str, password_file: Path) -> str:
    return f"""
directory:
  url: {url}
  bind_dn: {SERVICE_DN}
  bind_password_file: {password_file}
  base: dc=aup,dc=test
  user_filter: "(&(objectClass=inetOrgPerson)(uid={{user}}))"
  user_name_attribute: uid
  groups: {{member_of: memberOf, nested: walk}}
  cache: {{success_ttl: 1h}}
"""


def wrk_script(path: Path, upstream_port: int, header: str | None, close: bool) -> Path:
    lines = [f'wrk.headers["Host"] = "127.0.0.1:{upstream_port}"']
    if header:
        lines.append(f'wrk.headers["Proxy-Authorization"] = "{header}"')
    if close:
        lines.append('wrk.headers["Connection"] = "close"')
    target = f"http://127.0.0.1:{upstream_port}/index.html"
    lines.append(f'request = function() return wrk.format("GET", "{target}") end')
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(port: int, upstream_port: int, args: argparse.Namespace, script: Path,
            name: str, pid: int | None) -> overhead.Round:
    """wrk with our own script (run_wrk writes its own; this keeps the headers)."""
    import re
    import subprocess

    cpu_before = overhead.cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(
        [*overhead.LOAD_CPU, "wrk", "-t", str(args.threads), "-c", str(args.connections),
         "-d", f"{args.seconds}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True, timeout=args.seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = overhead._ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = overhead._ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    cpu = (overhead.cpu_seconds(pid) - cpu_before) / total * 1e6 if pid and total else 0.0
    return overhead.Round(name, rps, p50, p99, errors, cpu)


def in_process(work: Path, policies: dict[str, Path], header: str, n: int = 3000
               ) -> dict[str, float]:
    """Microseconds per request in aupgate's own `requestheaders` (mitmproxy's taddons, no
    sockets), which a busy machine disturbs far less than requests per second: anonymous, a
    login its connection remembers (keep-alive) and a login on a new connection (cache hit)."""
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ldap3 / pyasn1 at import
        from mitmproxy.proxy import mode_specs
        from mitmproxy.test import taddons, tflow

    from aupgate.mitm.addon import Aupgate

    def flow(auth: str | None, client: str) -> object:
        f = tflow.tflow()
        f.request.host = "www.example.org"
        f.request.headers["Host"] = "www.example.org"
        f.client_conn.peername = ("127.0.0.1", 50000)
        f.client_conn.proxy_mode = mode_specs.ProxyMode.parse("regular")
        f.client_conn.id = client
        f.client_conn.timestamp_end = None  # connected (tflow's client has already left)
        if auth is not None:
            f.request.headers["Proxy-Authorization"] = auth
        return f

    async def timed(addon: Aupgate, auth: str | None, same_connection: bool) -> float:
        flows = [flow(auth, "kept" if same_connection else f"c{i}") for i in range(n)]
        started = time.perf_counter()
        for f in flows:
            later = addon.requestheaders(f)  # type: ignore[arg-type]
            if later is not None:
                await later
            if not same_connection:
                addon.client_disconnected(f.client_conn)  # type: ignore[attr-defined]
        return (time.perf_counter() - started) / n * 1e6

    async def run() -> dict[str, float]:
        out: dict[str, float] = {}
        for name, folder, auth in (("anonymous", policies["anonymous"], None),
                                   ("logins", policies["logins"], header)):
            addon = Aupgate()
            with taddons.context(addon) as tctx:
                tctx.configure(addon, aupgate_policy_dir=str(folder),
                               aupgate_categories=str(ROOT / "categories" / "sources.yaml"),
                               aupgate_default_agency="modot",
                               aupgate_audit_log=str(work / f"in-process-{name}.jsonl"))
                await timed(addon, auth, True)  # warm: the login, the memos
                out[f"{name}/keep-alive"] = min([await timed(addon, auth, True)
                                                 for _ in range(3)])
                out[f"{name}/close"] = min([await timed(addon, auth, False) for _ in range(3)])
                await addon.logins.directories.aclose()
        return out

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--agency", default="modot")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    pinned = not args.no_pin and bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2
    if pinned:
        overhead.PROXY_CPU[:] = ["taskset", "-c", "1"]
        overhead.LOAD_CPU[:] = ["taskset", "-c", "0"]

    with tempfile.TemporaryDirectory(prefix="bench-directory-proxy-") as tmp, \
            running_slapd(Path(tmp) / "slapd") as slapd:
        work = Path(tmp)
        (work / "tmp").mkdir()
        secret = work / "directory-password"
        secret.write_text(SERVICE_PASSWORD)
        secret.chmod(0o600)
        with_directory = work / "policies-directory"
        shutil.copytree(ROOT / "policies", with_directory)
        policy = with_directory / f"{args.agency}.yaml"
        policy.write_text(policy.read_text() + directory_section(slapd.ldap_url, secret))
        upstream, upstream_port, kind = overhead.start_upstream(work)
        proxies = {}
        port = overhead.free_port()
        proxies["anonymous"] = (port, overhead.start_aupgate(work, port, args.agency,
                                                             name="anonymous"))
        port = overhead.free_port()
        proxies["logins"] = (port, overhead.start_aupgate(work, port, args.agency,
                                                          name="logins",
                                                          policies=with_directory))
        header = "Basic " + base64.b64encode(f"{USER}:{PASSWORDS[USER]}".encode()).decode()
        shapes = {
            ("anonymous", "keep-alive"): wrk_script(work / "a.lua", upstream_port, None, False),
            ("logins", "keep-alive"): wrk_script(work / "b.lua", upstream_port, header, False),
            ("anonymous", "close"): wrk_script(work / "c.lua", upstream_port, None, True),
            ("logins", "close"): wrk_script(work / "d.lua", upstream_port, header, True),
        }
        rounds: dict[tuple[str, str], list[overhead.Round]] = {shape: [] for shape in shapes}
        try:
            for name, (port, process) in proxies.items():
                overhead.wait_port(port, process, name)
            for (name, shape), script in shapes.items():  # warm up; the first login is here
                measure(proxies[name][0], upstream_port,
                        argparse.Namespace(**{**vars(args), "seconds": args.warmup}),
                        script, f"{name}/{shape}", None)
            before = slapd.operations()
            for _ in range(args.rounds):
                for (name, shape), script in shapes.items():
                    port, process = proxies[name]
                    rounds[(name, shape)].append(measure(port, upstream_port, args, script,
                                                         f"{name}/{shape}", process.pid))
            after = slapd.operations()
            costs = in_process(work, {"anonymous": ROOT / "policies", "logins": with_directory},
                               header)
        finally:
            for _port, process in proxies.values():
                overhead.stop(process)
            overhead.stop(upstream)

    def median(shape: tuple[str, str]) -> overhead.Round:
        ordered = sorted(rounds[shape], key=lambda r: r.requests_per_s)
        return ordered[len(ordered) // 2]

    print(f"upstream: {kind}; wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, "
          f"{args.rounds} rounds (median shown); policies: shipped, agency {args.agency}; "
          f"{'proxies pinned to cpu 1, load and slapd to cpu 0' if pinned else 'not pinned'}")
    print(f"{'proxy / connections':<24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'cpu us/req':>11}   all rounds req/s")
    for shape in shapes:
        r = median(shape)
        every = ", ".join(f"{x.requests_per_s:.0f}" for x in rounds[shape])
        cpu = statistics.median(x.cpu_us_per_request for x in rounds[shape])
        print(f"{'/'.join(shape):<24} {r.requests_per_s:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
              f"{r.errors:>7} {cpu:>11.0f}   {every}")
    for shape in ("keep-alive", "close"):
        ratio = median(("logins", shape)).requests_per_s / median(("anonymous", shape)
                                                                  ).requests_per_s
        print(f"throughput ratio logins/anonymous, {shape}: {ratio:.3f}")
    print("in aupgate's requestheaders (in process, best of 3 x 3000 requests), us/request: "
          + ", ".join(f"{name} {us:.1f}" for name, us in costs.items()))
    # the counters' own reading costs one bind and one search
    moved = {k: after[k] - before[k] for k in ("Bind", "Search")}
    print(f"directory operations during the measured rounds (slapd cn=Monitor, minus the "
          f"counter's own read): bind {moved['Bind'] - 1}, search {moved['Search'] - 1}")
    if moved != {"Bind": 1, "Search": 1}:
        print("FAIL: cached logins asked the directory", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
