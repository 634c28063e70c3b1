"""Proxy logins in-process (mitmproxy's taddons, no directory server): the 407, the awaitable a
hook returns when the directory must be asked, failing closed after the wait, mitmproxy's
`proxyauth` beside a directory, the directories made and retired with the policies, and the
bounds on login events."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import exceptions
from mitmproxy.proxy import mode_specs

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # see test_mitm_addon.py
    from mitmproxy.addons.proxyauth import ProxyAuth
    from mitmproxy.test import taddons, tflow

from aupgate.audit.log import AuditLog
from aupgate.gateway import Gateway
from aupgate.mitm.addon import Aupgate
from aupgate.mitm.directories import Directories, proxyauth_problem
from aupgate.mitm.guard import fail_flow, guarded
from aupgate.mitm.loginaudit import Throttle
from aupgate.policy.loader import load_policy_dir

FIXTURES = Path(__file__).parent / "e2e" / "fixtures"
TODAY = __import__("datetime").date(2026, 11, 24)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def directory_section(password_file: Path, **extra: str) -> str:
    lines = [
        "directory:",
        f"  url: ldap://127.0.0.1:{closed_port()}",
        "  bind_dn: cn=svc,dc=aup,dc=test",
        f"  bind_password_file: {password_file}",
        "  base: dc=aup,dc=test",
        '  user_filter: "(uid={user})"',
        "  user_name_attribute: uid",
        "  timeouts: {connect: 1, receive: 1}",
        *(f"  {k}: {v}" for k, v in extra.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "directory-password"
    path.write_text("service-secret\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def policy_dir(tmp_path: Path, password_file: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    lab = (FIXTURES / "policies" / "lab.yaml").read_text()
    (folder / "lab.yaml").write_text(lab + directory_section(password_file))
    shutil.copy(FIXTURES / "policies" / "lab-logo.png", folder)  # its help desk's logo
    return folder


@pytest.fixture
def addon() -> Iterator[Aupgate]:
    yield Aupgate()


def configure(tctx: Any, addon: Aupgate, policy_dir: Path, tmp_path: Path, **extra: Any) -> None:
    tctx.configure(addon, aupgate_policy_dir=str(policy_dir),
                   aupgate_categories=str(FIXTURES / "categories" / "sources.yaml"),
                   aupgate_audit_log=str(tmp_path / "audit.jsonl"),
                   aupgate_fixed_time="2026-11-24T10:30:00-06:00", **extra)


def flow_for(host: str, header: str | None = None, mode: str = "regular") -> Any:
    flow = tflow.tflow()
    flow.request.host = host
    flow.request.port = 80  # tflow's 22 is a port the policies keep shut (issue 12's ports)
    flow.request.headers["Host"] = host
    flow.client_conn.peername = ("127.0.0.1", 50000)
    flow.client_conn.proxy_mode = mode_specs.ProxyMode.parse(mode)
    flow.client_conn.timestamp_end = None  # connected (tflow's client has already left)
    if header is not None:
        flow.request.headers["Proxy-Authorization"] = header
    return flow


def events(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == name]


BASIC = "Basic " + base64.b64encode(b"alice:secret").decode()


# --------------------------------------------------------------------------- the hooks


async def test_no_credentials_is_a_407_at_once(addon: Aupgate, policy_dir: Path,
                                               tmp_path: Path) -> None:
    with taddons.context(addon) as tctx:
        configure(tctx, addon, policy_dir, tmp_path)
        flow = flow_for("www.example.org")
        assert addon.requestheaders(flow) is None  # nothing to wait for
        assert flow.response is not None and flow.response.status_code == 407
        assert flow.response.headers.get_all("Proxy-Authenticate") == [
            'Basic realm="Test Laboratory Agency internet gateway", charset="UTF-8"']
        connect = flow_for("www.example.org")
        connect.request.method = "CONNECT"
        assert addon.http_connect(connect) is None
        assert connect.response is not None and connect.response.status_code == 407


async def test_credentials_wait_for_the_directory(addon: Aupgate, policy_dir: Path,
                                                  tmp_path: Path) -> None:
    """With a header the hook returns an awaitable; nothing is answered before it is awaited;
    the directory (nobody listening) is unavailable: the page, and the event."""
    with taddons.context(addon) as tctx:
        configure(tctx, addon, policy_dir, tmp_path)
        flow = flow_for("www.example.org", BASIC)
        later = addon.requestheaders(flow)
        assert later is not None and flow.response is None
        await later
        assert flow.response is not None and flow.response.status_code == 503
        assert b"sign-in service cannot be reached" in flow.response.content
        [event] = events(tmp_path, "directory_unavailable")
        assert event["user"] == "alice" and event["method"] == "basic"
        assert "secret" not in (tmp_path / "audit.jsonl").read_text()


@pytest.mark.parametrize("connect", [False, True], ids=["request", "connect"])
async def test_a_client_that_leaves_during_the_wait_leaves_nothing_behind(
        addon: Aupgate, policy_dir: Path, tmp_path: Path, connect: bool) -> None:
    """The client closes its connection while the directory is asked (here: cannot be
    reached); its disconnect hook has run before the answer. Nothing is remembered for the gone
    connection (a flood of such connections would grow the proxy for ever), the flow is killed
    rather than let go on undecided, and the attempt is still audited. The same CONNECT from a
    client that stays is remembered (the tunnel that shows the page)."""
    with taddons.context(addon) as tctx:
        configure(tctx, addon, policy_dir, tmp_path)
        stays = flow_for("www.example.org", BASIC)
        stays.request.method = "CONNECT" if connect else "GET"
        hook = addon.http_connect if connect else addon.requestheaders
        later = hook(stays)
        assert later is not None
        await later
        assert (stays.client_conn.id in addon.logins._connections) is connect
        bob = "Basic " + base64.b64encode(b"bob:secret").decode()  # alice's is throttled
        leaves = flow_for("www.example.org", bob)
        leaves.request.method = stays.request.method
        later = hook(leaves)
        assert later is not None
        leaves.client_conn.timestamp_end = leaves.client_conn.timestamp_start + 1
        addon.client_disconnected(leaves.client_conn)
        await later
        assert leaves.client_conn.id not in addon.logins._connections
        assert leaves.client_conn.id not in addon._tunnels
        assert leaves.response is None and leaves.error is not None
        assert leaves.error.msg == leaves.error.KILLED_MESSAGE
        assert [e["user"] for e in events(tmp_path, "directory_unavailable")] == ["alice", "bob"]


async def test_a_good_login_for_a_client_that_left_opens_no_tunnel(
        addon: Aupgate, policy_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The directory says yes after the client has gone: the login is audited, but no tunnel
    and no connection login are kept for it, and the CONNECT goes no further."""
    from aupgate.directory import DirectoryUser, LoginOk

    async def yes(_header: str) -> LoginOk:
        return LoginOk(DirectoryUser("alice", "uid=alice,dc=aup,dc=test"), "directory")

    with taddons.context(addon) as tctx:
        configure(tctx, addon, policy_dir, tmp_path)
        gateway = addon.gateway
        assert gateway is not None
        [policy] = [p for p in gateway.current.policies.policies.values()
                    if p.directory is not None]
        login = addon.logins.directories.login_for(policy)
        assert login is not None
        monkeypatch.setattr(login.authenticator, "authenticate_header", yes)
        connect = flow_for("www.example.org", BASIC)
        connect.request.method = "CONNECT"
        later = addon.http_connect(connect)
        assert later is not None
        connect.client_conn.timestamp_end = connect.client_conn.timestamp_start + 1
        addon.client_disconnected(connect.client_conn)
        await later
        assert connect.client_conn.id not in addon.logins._connections
        assert connect.client_conn.id not in addon._tunnels
        assert connect.response is None and connect.error is not None
        assert [e["user"] for e in events(tmp_path, "login")] == ["alice"]


async def test_a_failure_after_the_wait_fails_closed(addon: Aupgate, policy_dir: Path,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with taddons.context(addon) as tctx:
        configure(tctx, addon, policy_dir, tmp_path)

        async def broken(*_args: Any) -> None:
            raise RuntimeError("directory client bug")

        monkeypatch.setattr(addon.logins, "_login", broken)
        flow = flow_for("www.example.org", BASIC)
        later = addon.requestheaders(flow)
        assert later is not None
        await later  # raises nothing: the guard answers
        assert flow.response is not None and flow.response.status_code == 502
        assert events(tmp_path, "engine_error")


async def test_logins_need_the_explicit_proxy_mode(addon: Aupgate, policy_dir: Path,
                                                   tmp_path: Path) -> None:
    with taddons.context(addon) as tctx:
        configure(tctx, addon, policy_dir, tmp_path)
        flow = flow_for("www.example.org", BASIC, mode="reverse:http://127.0.0.1:1")
        assert addon.requestheaders(flow) is None
        assert flow.response is not None and flow.response.status_code == 502
        assert b"configured as their proxy" in flow.response.content


async def test_an_agency_without_a_directory_is_not_asked_to_log_in(addon: Aupgate,
                                                                     tmp_path: Path) -> None:
    with taddons.context(addon) as tctx:
        configure(tctx, addon, FIXTURES / "policies", tmp_path)
        flow = flow_for("www.example.org")
        assert addon.requestheaders(flow) is None and flow.response is None


def test_guarded_covers_the_awaitable() -> None:
    class Host:
        audit = AuditLog([])

        def record_of(self, flow: Any) -> None:
            return None

        def refuse_tunnel(self, client_id: str, message: str) -> None:
            raise AssertionError

    async def fails() -> None:
        raise ValueError("late")

    @guarded(fail_flow)
    def hook(self: Host, flow: Any) -> Any:
        return fails()

    flow = flow_for("www.example.org")
    later = hook(Host(), flow)
    assert later is not None
    asyncio.run(later)  # type: ignore[arg-type]
    assert flow.response is not None and flow.response.status_code == 502


# --------------------------------------------------------------------------- proxyauth


async def test_proxyauth_with_a_directory_policy_is_refused(addon: Aupgate, policy_dir: Path,
                                                      tmp_path: Path) -> None:
    with taddons.context(addon, ProxyAuth()) as tctx, pytest.raises(
            exceptions.OptionsError, match="use one or the other"):
        configure(tctx, addon, policy_dir, tmp_path, proxyauth="alice:pw")


async def test_proxyauth_ldap_is_refused_everywhere(addon: Aupgate, tmp_path: Path) -> None:
    with taddons.context(addon, ProxyAuth()) as tctx, pytest.raises(
            exceptions.OptionsError, match="unescaped"):
        configure(tctx, addon, FIXTURES / "policies", tmp_path,
                  proxyauth=f"ldap:127.0.0.1:{closed_port()}:cn=x:pw:dc=x")


async def test_proxyauth_without_a_directory_still_works(addon: Aupgate, tmp_path: Path) -> None:
    with taddons.context(addon, ProxyAuth()) as tctx:
        configure(tctx, addon, FIXTURES / "policies", tmp_path, proxyauth="alice:pw")
        flow = flow_for("www.example.org")
        flow.metadata["proxyauth"] = ("alice", "pw")  # what mitmproxy's addon leaves
        addon.requestheaders(flow)
        assert addon.record_of(flow) is not None
        assert addon.record_of(flow).identity.user == "alice"  # type: ignore[union-attr]


def test_proxyauth_problem() -> None:
    assert proxyauth_problem(None, None) is None
    assert proxyauth_problem("@/etc/htpasswd", None) is None
    assert "unescaped" in str(proxyauth_problem("ldaps:dc:cn=x:pw:dc=x", None))


# --------------------------------------------------------------------------- directories


async def test_an_unreadable_password_file_refuses_the_start(addon: Aupgate, policy_dir: Path,
                                                       password_file: Path,
                                                       tmp_path: Path) -> None:
    password_file.unlink()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError) as caught:
        configure(tctx, addon, policy_dir, tmp_path)
    assert str(password_file) in str(caught.value)
    assert "lab.yaml" in str(caught.value)


async def test_a_reload_whose_directory_cannot_start_keeps_the_last_good(
        tmp_path: Path, password_file: Path) -> None:
    folder = tmp_path / "reload"
    shutil.copytree(FIXTURES / "policies", folder)
    directories = Directories()
    gateway = Gateway(folder, FIXTURES / "categories" / "sources.yaml", lambda: TODAY,
                      directories.prepare)
    lab = (folder / "lab.yaml").read_text()
    missing = tmp_path / "missing-password"
    (folder / "lab.yaml").write_text(lab + directory_section(missing))
    [outcome] = gateway.reload(["policies"])
    assert not outcome.ok
    assert any(str(missing) in str(p) for p in outcome.problems)
    assert gateway.current.policies.policies["lab"].directory is None  # the last good set
    (folder / "lab.yaml").write_text(lab + directory_section(password_file))
    [outcome] = gateway.reload(["policies"])
    assert outcome.ok
    policy = gateway.current.policies.policies["lab"]
    login = directories.login_for(policy)
    assert login is not None and login.realm == "Test Laboratory Agency internet gateway"


async def test_an_unchanged_directory_keeps_its_authenticator(tmp_path: Path,
                                                              password_file: Path) -> None:
    """A reload that keeps the directory section keeps the authenticator (and its cache); one
    that changes it gets a new one, and the old one is closed a minute later."""
    folder = tmp_path / "keep"
    folder.mkdir()
    lab = (FIXTURES / "policies" / "lab.yaml").read_text()
    section = directory_section(password_file)
    (folder / "lab.yaml").write_text(lab + section)
    shutil.copy(FIXTURES / "policies" / "lab-logo.png", folder)
    directories = Directories()
    first = load_policy_dir(folder, today=TODAY)
    assert directories.prepare(first) == []
    (folder / "lab.yaml").write_text(lab.replace("Lab service desk", "Lab desk") + section)
    second = load_policy_dir(folder, today=TODAY)
    assert directories.prepare(second) == []
    one = directories.login_for(first.policies["lab"])
    two = directories.login_for(second.policies["lab"])
    assert one is not None and two is not None and one.authenticator is two.authenticator
    (folder / "lab.yaml").write_text(lab + section.replace("pool_size", "x").replace(
        "timeouts: {connect: 1, receive: 1}", "timeouts: {connect: 2, receive: 1}"))
    third = load_policy_dir(folder, today=TODAY)
    assert directories.prepare(third) == []
    three = directories.login_for(third.policies["lab"])
    assert three is not None and three.authenticator is not two.authenticator
    await directories.sweep(third, now=100.0)
    assert directories.login_for(second.policies["lab"]) is None
    closed: list[bool] = []
    two.authenticator.close = lambda: closed.append(True)  # type: ignore[method-assign]
    await directories.sweep(third, now=130.0)
    assert closed == []  # requests under the old policy may still be using it
    await directories.sweep(third, now=161.0)
    assert closed == [True]
    await directories.aclose()


# --------------------------------------------------------------------------- event bounds


def test_throttle() -> None:
    throttle = Throttle(60)
    assert throttle.admit(("a",), 0) == 0
    assert throttle.admit(("a",), 10) is None
    assert throttle.admit(("a",), 20) is None
    assert throttle.admit(("b",), 20) == 0
    assert throttle.admit(("a",), 61) == 2  # the two left out go with the next line
    assert throttle.admit(("a",), 62) is None


async def test_login_audit_minutes_must_not_be_negative(addon: Aupgate, tmp_path: Path) -> None:
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError,
                                                       match="zero or more"):
        configure(tctx, addon, FIXTURES / "policies", tmp_path, aupgate_login_audit_minutes=-1)
