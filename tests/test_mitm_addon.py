"""The addon in-process (mitmproxy's taddons): every hook fails closed, and the TLS decisions."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import connection, tls
from mitmproxy.proxy import server_hooks

with warnings.catch_warnings():
    # taddons loads every default addon; proxyauth's ldap3 trips a pyasn1 DeprecationWarning
    # at import, which filterwarnings=error would turn into a collection error.
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.test import taddons, tflow

from aupgate.engine import strictest
from aupgate.identity import client_address
from aupgate.mitm import options as opts
from aupgate.mitm.addon import Aupgate
from aupgate.mitm.flowtext import authority_host
from aupgate.mitm.passes import browser_holder

FIXTURES = Path(__file__).parent / "e2e" / "fixtures"


@pytest.fixture
def test_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(opts.TEST_MODE_ENV, "1")


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def configured(tctx: Any, addon: Aupgate, audit_path: Path, **extra: Any) -> None:
    tctx.configure(addon, aupgate_policy_dir=str(FIXTURES / "policies"),
                   aupgate_categories=str(FIXTURES / "categories" / "sources.yaml"),
                   aupgate_audit_log=str(audit_path),
                   aupgate_fixed_time="2026-11-24T10:30:00-06:00", **extra)


def events(path: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == name]


def flow_for(host: str, path: str = "/", scheme: str = "http") -> Any:
    flow = tflow.tflow()
    flow.request.scheme = scheme
    flow.request.host = host
    flow.request.port = 443 if scheme == "https" else 80
    flow.request.path = path
    flow.request.headers["Host"] = host
    flow.client_conn.peername = ("127.0.0.1", 50000)
    return flow


@pytest.fixture
def addon() -> Iterator[Aupgate]:
    yield Aupgate()


async def test_allowed_and_blocked(addon: Aupgate, audit_path: Path) -> None:
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path)
        ok = flow_for("www.example.org")
        addon.requestheaders(ok)
        assert ok.response is None
        blocked = flow_for("www.bet365.com")
        addon.requestheaders(blocked)
        assert blocked.response is not None and blocked.response.status_code == 403


@pytest.mark.parametrize("point", ["decide", "audit", "responseheaders"])
async def test_every_http_hook_fails_closed(addon: Aupgate, audit_path: Path, test_mode: None,
                                            point: str) -> None:
    """An exception anywhere ends in an error page and an engine_error event, never a pass."""
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path, aupgate_fault=f"{point}@www.example.org")
        flow = flow_for("www.example.org")
        addon.requestheaders(flow)
        if flow.response is None:
            flow.response = tflow.tresp()
            addon.responseheaders(flow)
            addon.response(flow)
        assert flow.response.status_code == 502
        stream = flow.response.stream
        # a page replacing a response already under way is sent by the stream callable
        body = stream(b"upstream bytes") if callable(stream) else flow.response.raw_content
        assert b"could not check this request" in (body or b"")
        [event] = events(audit_path, "engine_error")
        assert "injected fault" in event["error"]


async def test_connect_fails_closed(addon: Aupgate, audit_path: Path, test_mode: None) -> None:
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path, aupgate_fault="connect")
        flow = flow_for("www.example.org", scheme="https")
        flow.request.method = "CONNECT"
        addon.http_connect(flow)
        assert flow.response is not None and flow.response.status_code == 502
        assert events(audit_path, "engine_error")


class FakeHello:
    def __init__(self, sni: str) -> None:
        self.sni = sni


def hello_data(sni: str, client: connection.Client) -> Any:
    data = tls.ClientHelloData.__new__(tls.ClientHelloData)
    data.context = type("Ctx", (), {"client": client,
                                    "server": connection.Server(address=("x", 443))})()
    data.client_hello = FakeHello(sni)  # type: ignore[assignment]
    data.ignore_connection = False
    data.establish_server_tls_first = False
    return data


async def test_clienthello_fails_closed(addon: Aupgate, audit_path: Path,
                                        test_mode: None) -> None:
    """An error at the ClientHello passes nothing: the upstream connection is failed."""
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path, aupgate_fault="clienthello")
        client = tflow.tclient_conn()
        data = hello_data("www.example.org", client)
        addon.tls_clienthello(data)
        assert data.ignore_connection
        server = server_hooks.ServerConnectionHookData(
            server=connection.Server(address=("www.example.org", 443)), client=client)
        addon.server_connect(server)
        assert server.server.error
        assert events(audit_path, "engine_error")


async def test_sni_of_never_decrypt_block_is_refused(addon: Aupgate, audit_path: Path) -> None:
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path)
        client = tflow.tclient_conn()
        client.peername = ("127.0.0.1", 40000)
        data = hello_data("www.teamviewer.com", client)
        addon.tls_clienthello(data)
        assert data.ignore_connection
        server = server_hooks.ServerConnectionHookData(
            server=connection.Server(address=("www.teamviewer.com", 443)), client=client)
        addon.server_connect(server)
        assert server.server.error and "no-remote-access" in server.server.error


async def test_resolve_override_keeps_the_name(addon: Aupgate, audit_path: Path) -> None:
    """--resolve answers the name lookup; the connection keeps the name as its address, so
    mitmproxy reuses it for the next request to that name."""
    import asyncio
    import socket

    loop = asyncio.get_running_loop()
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path, aupgate_resolve=["*:443:127.0.0.1:8443",
                                                             "v6.test:80:[::1]:8080"])
        server = server_hooks.ServerConnectionHookData(
            server=connection.Server(address=("www.example.org", 443)),
            client=tflow.tclient_conn())
        server.server.sni = "www.example.org"
        addon.server_connect(server)
        assert server.server.address == ("www.example.org", 443)
        assert server.server.sni == "www.example.org"
        [info] = await loop.getaddrinfo("WWW.Example.org.", 443, type=socket.SOCK_STREAM)
        assert info[0] == socket.AF_INET and info[4] == ("127.0.0.1", 8443)
        [info] = await loop.getaddrinfo("v6.test", "80")
        assert info[0] == socket.AF_INET6 and info[4] == ("::1", 8080, 0, 0)
        real = await loop.getaddrinfo("localhost", 80)  # not overridden: the real resolver
        assert real and all(i[4][1] == 80 for i in real)
        tctx.configure(addon, aupgate_resolve=[])
        assert "getaddrinfo" not in vars(loop)  # no table, no override left behind
        await addon.done()


async def test_fault_option_refused_outside_test_mode(addon: Aupgate, audit_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from mitmproxy import exceptions

    monkeypatch.delenv(opts.TEST_MODE_ENV, raising=False)
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path)
        with pytest.raises(exceptions.OptionsError, match="AUPGATE_TEST_MODE"):
            tctx.configure(addon, aupgate_fault="decide")


def test_helpers() -> None:
    assert str(client_address(("::ffff:10.0.0.1", 1, 0, 0))) == "10.0.0.1"
    assert str(client_address(("fe80::1%eth0", 1))) == "fe80::1"
    assert client_address(None) is None
    assert authority_host("[::1]:8080") == "::1"
    assert authority_host("a.test:80") == "a.test"
    assert authority_host("a.test") == "a.test"


def test_strictest_of_a_request_s_names_wins() -> None:
    """The most severe action wins; on a tie the first name (the request's own) does."""
    from aupgate.engine import Decision

    def decided(host: str, action: str) -> Decision:
        return Decision(action, "lab", "r", (), "", "rule", "work", (), (), None,  # type: ignore[arg-type]
                        host, f"http://{host}/")

    allow, log, warn, block = (decided(f"{a}.test", a) for a in ("allow", "log", "warn", "block"))
    assert strictest([allow, block, warn]) is block
    assert strictest([log, allow]) is log
    assert strictest([warn, log, allow]) is warn
    other_block = decided("other.test", "block")
    assert strictest([block, other_block]) is block
    assert strictest([other_block, block]) is other_block


@pytest.mark.parametrize(("mode", "status"), [("fail-closed", 503), ("serve", None)])
async def test_unwritable_audit_log(addon: Aupgate, mode: str, status: int | None) -> None:
    """on_audit_failure=fail-closed: no request passes unrecorded; serve: traffic goes on."""
    with taddons.context(addon) as tctx:
        tctx.configure(addon, aupgate_policy_dir=str(FIXTURES / "policies"),
                       aupgate_categories=str(FIXTURES / "categories" / "sources.yaml"),
                       aupgate_audit_log="/dev/null/cannot/audit.jsonl",
                       aupgate_on_audit_failure=mode)
        flow = flow_for("www.example.org")
        addon.requestheaders(flow)
        assert (flow.response.status_code if flow.response else None) == status


@pytest.mark.parametrize(("default", "status"), [("lab", None), ("", 403)])
async def test_default_agency(addon: Aupgate, audit_path: Path, default: str,
                              status: int | None) -> None:
    """A client in no agency network is decided under --default-agency, or refused without it."""
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path, aupgate_default_agency=default)
        flow = flow_for("www.example.org")
        flow.client_conn.peername = ("10.9.9.9", 50000)
        addon.requestheaders(flow)
        assert (flow.response.status_code if flow.response else None) == status
        if status:
            assert b"not on an agency network" in (flow.response.raw_content or b"")


async def test_unknown_default_agency_is_refused(addon: Aupgate, audit_path: Path) -> None:
    from mitmproxy import exceptions

    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path)
        with pytest.raises(exceptions.OptionsError, match="not a loaded agency"):
            tctx.configure(addon, aupgate_default_agency="nope")


async def test_https_block_refuse_mode(addon: Aupgate, audit_path: Path) -> None:
    """aupgate_https_block=refuse: a blocked HTTPS site is refused at CONNECT (no CA needed)."""
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path, aupgate_https_block="refuse")
        flow = flow_for("www.bet365.com", scheme="https")
        flow.request.method = "CONNECT"
        addon.http_connect(flow)
        assert flow.response is not None and flow.response.status_code == 403
        allowed = flow_for("www.example.org", scheme="https")
        allowed.request.method = "CONNECT"
        addon.http_connect(allowed)
        assert allowed.response is None


async def test_every_decision_names_its_policy_file(addon: Aupgate, audit_path: Path) -> None:
    """Issue 4: request, CONNECT and TLS decisions carry the sha256 of the deciding policy file."""
    import hashlib

    lab = hashlib.sha256((FIXTURES / "policies" / "lab.yaml").read_bytes()).hexdigest()
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path)
        flow = flow_for("www.bet365.com")
        addon.requestheaders(flow)
        addon.response(flow)
        connect = flow_for("www.example.org", scheme="https")
        connect.request.method = "CONNECT"
        addon.http_connect(connect)
        client = tflow.tclient_conn()
        client.peername = ("127.0.0.1", 40000)
        addon.tls_clienthello(hello_data("www.teamviewer.com", client))
    decisions = events(audit_path, "decision")
    assert {d["phase"] for d in decisions} == {"request", "connect", "tls"}
    assert {d["policy_digest"] for d in decisions} == {lab}
    [loaded] = events(audit_path, "policy_loaded")
    assert loaded["agency_digests"] == {"lab": lab}


async def test_clienthello_reuses_the_connect_decision(addon: Aupgate, audit_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """CONNECT host and SNI are usually one name: it is decided once per tunnel."""
    import aupgate.mitm.deciding as addon_module

    calls: list[str] = []
    real = addon_module.decide

    def counting(policy: Any, index: Any, facts: Any, now: Any) -> Any:
        calls.append(facts.url.host)
        return real(policy, index, facts, now)

    monkeypatch.setattr(addon_module, "decide", counting)
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path)
        connect = flow_for("www.teamviewer.com", scheme="https")
        connect.request.method = "CONNECT"
        connect.client_conn.peername = ("127.0.0.1", 40001)
        addon.http_connect(connect)
        data = hello_data("www.teamviewer.com", connect.client_conn)
        addon.tls_clienthello(data)
        assert calls == ["www.teamviewer.com"]  # the ClientHello reused the CONNECT's decision
        assert data.ignore_connection  # never-decrypt and blocked: passed through, then refused
        other = hello_data("www.example.org", connect.client_conn)  # an SNI that differs
        addon.tls_clienthello(other)
        assert calls == ["www.teamviewer.com", "www.example.org"]


async def test_reused_decision_still_fails_closed(addon: Aupgate, audit_path: Path,
                                                  test_mode: None) -> None:
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path, aupgate_fault="clienthello@www.example.org")
        connect = flow_for("www.example.org", scheme="https")
        connect.request.method = "CONNECT"
        addon.http_connect(connect)
        assert connect.response is None
        data = hello_data("www.example.org", connect.client_conn)
        addon.tls_clienthello(data)
        assert data.ignore_connection and events(audit_path, "engine_error")


async def test_request_hook_is_defined_only_while_a_form_is_read(addon: Aupgate,
                                                                  audit_path: Path) -> None:
    """mitmproxy dispatches every hook an addon defines for every request: `request` exists only
    while a warn form's body is being read, and goes away once it is answered or fails."""
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path)
        assert getattr(addon, "request", None) is None
        form = flow_for("www.facebook.com", "/.aupgate/continue")
        form.request.method = "POST"
        form.request.headers["content-length"] = "30"
        addon.requestheaders(form)
        assert form.response is None and callable(addon.request)
        lost = flow_for("www.facebook.com", "/.aupgate/continue")
        lost.request.method = "POST"
        lost.request.headers["content-length"] = "30"
        addon.requestheaders(lost)
        form.request.content = b"token=nope&reason=work+reason"
        addon.request(form)
        assert form.response is not None and form.response.status_code == 403  # "expired"
        assert callable(addon.request)  # `lost` is still being read
        addon.error(lost)  # the client went away mid-form
        assert getattr(addon, "request", None) is None


@pytest.mark.parametrize("with_pass", [False, True])
async def test_counted_transfer_under_a_warn_rule(addon: Aupgate, tmp_path: Path,
                                                  with_pass: bool) -> None:
    """Past the limit mid-body no page can be shown: without a pass the transfer is cut, with a
    live pass for the host it goes on (and is audited as pass-used)."""
    import shutil
    import time

    policies = tmp_path / "policies"
    shutil.copytree(FIXTURES / "policies", policies)
    lab = policies / "lab.yaml"
    lab.write_text(lab.read_text().replace(
        "      content: [large-transfer]\n    action: block",
        "      content: [large-transfer]\n    action: warn"))
    audit_path = tmp_path / "audit.jsonl"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, aupgate_policy_dir=str(policies),
                       aupgate_categories=str(FIXTURES / "categories" / "sources.yaml"),
                       aupgate_audit_log=str(audit_path),
                       aupgate_fixed_time="2026-11-24T10:30:00-06:00")
        if with_pass:
            token = addon.warn.passes.issue(client="127.0.0.1", user=None, host="www.example.org",
                                       url="http://www.example.org/big", agency="lab",
                                       rule="no-large", clauses=("5",), now=time.monotonic())
            assert addon.warn.passes.redeem(token, client="127.0.0.1", user=None,
                                            host="www.example.org",
                                            holder=browser_holder("c00kie"),
                                            now=time.monotonic())
        flow = flow_for("www.example.org", "/big")
        flow.request.headers["cookie"] = "a=1; aupgate_pass=c00kie"
        addon.requestheaders(flow)
        assert flow.request.headers["cookie"] == "a=1"  # the pass cookie never goes upstream
        flow.response = tflow.tresp(headers=[(b"content-type", b"application/octet-stream")])
        flow.response.stream = False
        addon.responseheaders(flow)
        stream = flow.response.stream
        assert callable(stream)
        chunk = b"y" * (600 * 1024)
        sent = [stream(chunk) for _ in range(3)]
        if with_pass:
            assert sent == [chunk] * 3
            addon.response(flow)
            [event] = events(audit_path, "decision")
            assert event["enforced"] == "pass-used" and event["rule"] == "no-large"
        else:
            assert sent == [chunk, b"", b""]
            [event] = events(audit_path, "decision")
            assert event["enforced"] == "cut"


async def test_a_moved_policy_clock_is_not_answered_from_memory(addon: Aupgate,
                                                                audit_path: Path) -> None:
    """The same request from the same client, decided again once the clock moves: Saint Paul's
    personal webmail is allowed at lunch and needs a work reason at 10:30."""
    root = Path(__file__).resolve().parents[1]
    with taddons.context(addon) as tctx:
        tctx.configure(addon, aupgate_policy_dir=str(root / "policies"),
                       aupgate_categories=str(root / "categories" / "sources.yaml"),
                       aupgate_audit_log=str(audit_path), aupgate_default_agency="saint-paul",
                       aupgate_fixed_time="2026-11-24T12:15:00-06:00")
        for _ in range(2):  # the second is answered from the memo
            lunch = flow_for("mail.google.com")
            addon.requestheaders(lunch)
            assert lunch.response is None
        tctx.configure(addon, aupgate_fixed_time="2026-11-24T10:30:00-06:00")
        work = flow_for("mail.google.com")
        addon.requestheaders(work)
        assert work.response is not None and work.response.status_code == 403  # the warn page
        assert addon.record_of(work).decision.action == "warn"
        assert addon.record_of(work).decision.window == "work"


@pytest.mark.parametrize(("headers", "reason", "blocked"), [
    ([(b"Icy-MetaInt", b"16000"), (b"content-type", b"text/plain")], "OK", True),
    ([(b"content-type", b"text/plain")], "ICY 200 OK", True),  # SHOUTcast's own status line
    ([(b"content-type", b"text/plain"), (b"x-icy", b"1")], "OK", False),
])
async def test_shoutcast_and_icecast_answers_are_audio_streams(
        addon: Aupgate, audit_path: Path, headers: list[tuple[bytes, bytes]], reason: str,
        blocked: bool) -> None:
    """A radio server's answer is an audio stream whatever its Content-Type says."""
    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path)
        flow = flow_for("www.example.org", "/stream")
        addon.requestheaders(flow)
        flow.response = tflow.tresp(headers=headers, reason=reason.encode())
        addon.responseheaders(flow)
        assert (flow.response.status_code == 403) is blocked
        if blocked:
            assert addon.record_of(flow).decision.rule == "no-audio"


@pytest.mark.parametrize("host", ["www.example.org", "www.bet365.com", "www.facebook.com"])
async def test_a_handled_flow_can_be_copied_and_saved(addon: Aupgate, audit_path: Path,
                                                      host: str) -> None:
    """flow.copy() and the saved state (what -w, mitmweb's duplicate and replay use) work on a
    flow aupgate decided; only plain marks travel with it, the addon's record stays behind."""
    import io

    from mitmproxy import io as mitm_io

    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path)
        flow = flow_for(host)
        addon.requestheaders(flow)
        if flow.response is None:
            flow.response = tflow.tresp()
            addon.responseheaders(flow)
        record = addon.record_of(flow)
        assert record is not None and record.decision is not None
        addon.response(flow)
        assert record.audited and addon.record_of(flow) is None  # done with once audited
        copy = flow.copy()
        assert copy.metadata["aupgate"] == flow.metadata["aupgate"]
        assert copy.metadata["aupgate"]["action"] == record.decision.action
        assert addon.record_of(copy) is None  # the addon's own record is not copied
        buffer = io.BytesIO()
        mitm_io.FlowWriter(buffer).add(flow)
        buffer.seek(0)
        [read] = list(mitm_io.FlowReader(buffer).stream())
        assert read.metadata["aupgate"] == flow.metadata["aupgate"]


async def test_the_record_of_a_flow_goes_with_the_flow(addon: Aupgate, audit_path: Path) -> None:
    """Dropped when the request is audited, and with the flow if it never is."""
    import gc

    with taddons.context(addon) as tctx:
        configured(tctx, addon, audit_path)
        flow = flow_for("www.bet365.com")
        addon.requestheaders(flow)
        assert len(addon.records) == 1
        del flow
        gc.collect()
        assert len(addon.records) == 0
        audited = flow_for("www.example.org")
        addon.requestheaders(audited)
        audited.response = tflow.tresp()
        addon.responseheaders(audited)
        addon.response(audited)
        assert len(addon.records) == 0 and audited.metadata["aupgate"]["action"] == "allow"
