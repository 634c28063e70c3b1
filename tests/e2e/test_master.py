"""`aupgate run`'s own master, as administrators use it: its log, mitmproxy options that load
mitmproxy's other addons (upstream proxy, saving flows, printing flows), and start-up failures."""

from __future__ import annotations

import json
import socket
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import AUPGATE, Certs, Proxy, Upstreams, curl, free_port, start_proxy, stop_proxy


def test_log_has_no_flows_and_no_secrets(proxy: Proxy) -> None:
    """mitmdump prints every flow with its query string; the gateway's log does not."""
    r = curl(proxy, "http://www.example.org/private-page?token=sekrit-token",
             "-H", "Authorization: Bearer sekrit-bearer", "-H", "Cookie: sid=sekrit-cookie")
    assert r.status == 200, r
    assert proxy.events("decision", path="/private-page?token=REDACTED")
    log = proxy.log()
    assert "sekrit" not in log and "private-page" not in log, log
    assert "client connect" not in log  # per-connection chatter is for debug only


@pytest.mark.parametrize("workers", [1, 2])
def test_quiet_keeps_the_frozen_clock_warning_and_the_listening_line(
        tmp_path: Path, certs: Certs, upstreams: Upstreams, workers: int) -> None:
    """Issue 17: --quiet hid both; an administrator must see that it serves, where, and that
    its clock is frozen. Information lines (the load summary) stay hidden."""
    started = start_proxy(tmp_path, certs, upstreams, "--quiet", workers=workers)
    try:  # start_proxy returns once " listening at " is in the log
        assert curl(started, "http://www.example.org/quiet").status == 200
        log = started.log()
        assert "POLICY CLOCK FROZEN" in log, log
        assert f"listening at 127.0.0.1:{started.port}" in log, log
        assert "category entries, loaded in" not in log, log
    finally:
        stop_proxy(started)


def test_flow_detail_prints_flows_when_asked(tmp_path: Path, certs: Certs,
                                             upstreams: Upstreams) -> None:
    started = start_proxy(tmp_path, certs, upstreams, "--set", "flow_detail=1",
                          "--set", "termlog_verbosity=debug")
    try:
        assert curl(started, "http://www.example.org/printed").status == 200
        started.wait_for("http://www.example.org/printed")
        started.wait_for("client connect")
    finally:
        stop_proxy(started)


@pytest.fixture(scope="module")
def via_upstream(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
                 upstreams: Upstreams) -> Iterator[Proxy]:
    """aupgate in upstream mode: everything it passes goes to the next proxy (here the test
    upstream, which answers absolute-form requests), with upstream_auth's credentials."""
    started = start_proxy(
        tmp_path_factory.mktemp("upstream-mode"), certs, upstreams,
        "--set", f"mode=upstream:http://127.0.0.1:{upstreams.http.port}",
        "--set", "upstream_auth=gateway:upstream-secret")
    yield started
    stop_proxy(started)


def test_upstream_mode_forwards_to_the_next_proxy(via_upstream: Proxy,
                                                  upstreams: Upstreams) -> None:
    r = curl(via_upstream, "http://www.example.org/headers")
    assert r.status == 200, r
    assert ("www.example.org", "/headers") in upstreams.http.absolute
    headers = json.loads(r.body)
    assert headers["Proxy-Authorization"] == "Basic Z2F0ZXdheTp1cHN0cmVhbS1zZWNyZXQ="
    [event] = via_upstream.events("decision", path="/headers")
    assert event["action"] == "allow"


def test_upstream_mode_still_decides(via_upstream: Proxy, upstreams: Upstreams) -> None:
    r = curl(via_upstream, "http://www.bet365.com/upstream-bet")
    assert r.status == 403 and "Gambling" in r.body, r
    assert upstreams.seen("www.bet365.com", "/upstream-bet") == 0


def test_save_stream_file_writes_flows(tmp_path: Path, certs: Certs,
                                       upstreams: Upstreams) -> None:
    """`save_stream_file` loads mitmproxy's `save` addon into the lean master, and the flow is
    saved (aupgate's per-flow state is off `flow.metadata`; test_saved_flows reads more back)."""
    flows = tmp_path / "flows.mitm"
    started = start_proxy(tmp_path, certs, upstreams, "--set", f"save_stream_file={flows}")
    try:
        assert curl(started, "http://www.example.org/saved").status == 200
    finally:
        stop_proxy(started)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from mitmproxy import io as mitm_io
    with flows.open("rb") as handle:
        paths = [f.request.path for f in mitm_io.FlowReader(handle).stream()]
    assert paths == ["/saved"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_busy_port_exits_1_and_says_so(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(AUPGATE), "run", "--workers", workers, "--listen-port", str(port),
             "--policy-dir", str(Path(__file__).parent / "fixtures" / "policies"),
             "--categories", str(Path(__file__).parent / "fixtures" / "categories" /
                                 "sources.yaml"),
             "--set", f"confdir={tmp_path}"],
            capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done
    assert f"127.0.0.1:{port}" in done.stderr and "ddress already in use" in done.stderr
    assert "--mode" not in done.stderr, done.stderr  # mitmproxy's flag is not aupgate's
    if workers == "1":  # mitmproxy's own message, its hint in aupgate's words
        assert "aupgate run --listen-port" in done.stderr, done.stderr


def test_unknown_option_exits_1(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(AUPGATE), "run", "--workers", "1", "--listen-port", str(free_port()),
         "--set", "no_such_option=1", "--set", f"confdir={tmp_path}"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "unknown option(s): no_such_option" in done.stderr
