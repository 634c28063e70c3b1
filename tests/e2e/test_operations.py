"""Identity, failing closed and start-up checks, each against a real `aupgate run`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import AUPGATE, Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
            upstreams: Upstreams) -> Iterator[Proxy]:
    """A proxy with a proxy login, and decisions for fault.test made to raise (test mode)."""
    started = start_proxy(
        tmp_path_factory.mktemp("guarded"), certs, upstreams,
        "--set", "proxyauth=alice:wonderland",
        "--set", "aupgate_fault=decide@fault.test",
    )
    yield started
    stop_proxy(started)


def test_engine_error_blocks_and_is_audited(guarded: Proxy, upstreams: Upstreams) -> None:
    """mitmproxy forwards when a hook raises; aupgate must answer 502 and audit instead."""
    r = curl(guarded, "http://fault.test/anything", "-U", "alice:wonderland")
    assert r.status == 502, r
    assert "could not check this request" in r.body
    assert upstreams.seen("fault.test", "/anything") == 0
    [event] = guarded.events("engine_error", host="fault.test")
    assert "injected fault" in event["error"] and event["action"] == "block"


def test_engine_error_over_https_blocks(guarded: Proxy, upstreams: Upstreams) -> None:
    r = curl(guarded, "https://fault.test/tls", "--proxy-user", "alice:wonderland")
    assert r.status == 502 and "inside the gateway" in r.body, r
    assert upstreams.seen("fault.test", "/tls") == 0


def test_proxy_login_names_the_user_never_the_password(guarded: Proxy) -> None:
    denied = curl(guarded, "http://www.example.org/who")
    assert denied.status == 407
    r = curl(guarded, "http://www.example.org/who", "--proxy-user", "alice:wonderland")
    assert r.status == 200, r
    [event] = guarded.events("decision", path="/who", status=200)
    assert event["user"] == "alice"
    assert "wonderland" not in guarded.audit_path.read_text()


def test_https_user_comes_from_the_connect_login(guarded: Proxy) -> None:
    r = curl(guarded, "https://www.example.org/tls-who", "--proxy-user", "alice:wonderland")
    assert r.status == 200, r
    [event] = guarded.events("decision", path="/tls-who")
    assert event["user"] == "alice"


def test_client_on_no_agency_network_is_refused(guarded: Proxy, upstreams: Upstreams) -> None:
    """127.0.0.2 is in no network of the fixture agency and there is no default agency."""
    r = curl(guarded, "http://www.example.org/outsider", "--interface", "127.0.0.2",
             "--proxy-user", "alice:wonderland")
    assert r.status == 403, r
    assert "not on an agency network" in r.body
    assert upstreams.seen("www.example.org", "/outsider") == 0
    [event] = guarded.events("decision", path="/outsider")
    assert event["enforced"] == "refused" and event["client"] == "127.0.0.2"


def test_bad_option_exits_1(tmp_path: Path) -> None:
    """A misread setting must stop the gateway at start-up, not run it."""
    done = subprocess.run(
        [str(AUPGATE), "run", "--workers", "1", "--listen-port", "1", "--resolve", "nonsense",
         "--set", f"confdir={tmp_path}"],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert "HOST:PORT:ADDR" in done.stdout + done.stderr


def test_broken_policy_at_start_exits_1(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "lab.yaml").write_text("agency: lab\nrules: [\n")
    done = subprocess.run(
        [str(AUPGATE), "run", "--workers", "1", "--listen-port", "1",
         "--policy-dir", str(tmp_path / "policies"),
         "--set", f"confdir={tmp_path}"],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert "lab.yaml" in done.stdout + done.stderr
    output = done.stdout + done.stderr  # one clear line, each problem said once
    assert output.count("lab.yaml:3: invalid YAML") == 1, output
    assert "Traceback" not in output and "listening" not in output, output


def test_several_policy_problems_each_said_once_and_a_bad_default_agency(tmp_path: Path) -> None:
    """Issue 17: a broken policy printed tracebacks, the first problem twice, then "proxy
    listening"; a bad --default-agency too. Now: each problem once, then one line, exit 1."""
    (tmp_path / "policies").mkdir()
    lab = (FIXTURES / "policies" / "lab.yaml").read_text()
    broken = lab.replace("action: block", "action: deny")
    assert broken.count("action: deny") >= 2, "the fixture must have two block rules"
    (tmp_path / "policies" / "lab.yaml").write_text(broken)
    base = [str(AUPGATE), "run", "--workers", "1", "--listen-port", "1",
            "--categories", str(FIXTURES / "categories" / "sources.yaml"),
            "--set", f"confdir={tmp_path}"]
    done = subprocess.run([*base, "--policy-dir", str(tmp_path / "policies")],
                          capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    problems = [line for line in output.splitlines() if "unknown action 'deny'" in line]
    assert len(problems) == broken.count("action: deny"), output
    assert len(set(problems)) == len(problems), output  # none repeated
    assert output.rstrip().splitlines()[-1].endswith("problems, listed above"), output
    assert "Traceback" not in output and "listening" not in output, output
    done = subprocess.run([*base, "--policy-dir", str(FIXTURES / "policies"),
                           "--default-agency", "nope"],
                          capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert output.count("aupgate_default_agency 'nope' is not a loaded agency (lab)") == 1, output
    assert "Traceback" not in output and "listening" not in output, output
