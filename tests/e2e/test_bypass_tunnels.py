"""Bytes after a CONNECT that are neither TLS nor HTTP (issue 12, item 2), through a real proxy.

The tunnel's hosts resolve to a raw TCP echo server standing in for an SSH, OpenVPN or XMPP
service, so whatever the gateway relays comes back and is counted. A tunnel carries raw bytes
only when its CONNECT was allowed and its port is one the policy lists in `ports.raw` (the lab
policy lists 5222); everything else is refused before the upstream connection opens, and audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Certs, Proxy, Upstreams, start_proxy, stop_proxy
from .rawclient import EchoServer, echo_server, read_all, status_of, tunnel

RAW = b"\x00\x0eRAW\r\n\r\n"
HOSTS = ("www.bet365.com", "www.facebook.com", "www.example.org", "www.bankofamerica.com")


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with echo_server() as server:
        yield server


@pytest.fixture(scope="module")
def raw_proxy(tmp_path_factory: pytest.TempPathFactory, certs: Certs, upstreams: Upstreams,
              echo: EchoServer) -> Iterator[Proxy]:
    resolve = [f"aupgate_resolve={h}:{p}:127.0.0.1:{echo.port}"
               for h in HOSTS for p in (443, 5222, 22)]
    extra = [arg for spec in resolve for arg in ("--set", spec)]
    started = start_proxy(tmp_path_factory.mktemp("raw"), certs, upstreams, *extra)
    yield started
    stop_proxy(started)


def _raw_through(proxy: Proxy, target: str) -> tuple[int, bytes]:
    sock, head = tunnel(proxy.port, target)
    with sock:
        if status_of(head) == 200:
            sock.sendall(RAW)
            return 200, read_all(sock, timeout=3)
        return status_of(head), b""


@pytest.mark.parametrize(("host", "rule"), [("www.bet365.com", "no-gambling"),
                                             ("www.facebook.com", "social-warn")])
def test_raw_bytes_never_reach_a_blocked_or_warned_host(
        raw_proxy: Proxy, echo: EchoServer, host: str, rule: str) -> None:
    """The issue's reproduction: page mode answers the CONNECT, then raw bytes follow."""
    before = echo.connections
    status, echoed = _raw_through(raw_proxy, f"{host}:443")
    assert status == 200  # page mode: answered so that a page could be shown over TLS
    assert echoed == b"" and echo.connections == before
    [line] = raw_proxy.events("decision", phase="tcp", host=host)
    assert line["enforced"] == "refused" and line["rule"] == rule, line


def test_raw_bytes_to_an_allowed_host_on_443_are_refused_by_the_port_policy(
        raw_proxy: Proxy, echo: EchoServer) -> None:
    before = echo.connections
    _, echoed = _raw_through(raw_proxy, "www.example.org:443")
    assert echoed == b"" and echo.connections == before
    [line] = raw_proxy.events("decision", phase="tcp", host="www.example.org", port=443)
    assert line["rule"] == "port-policy" and line["clauses"] == ["13"], line
    assert line["enforced"] == "refused" and line["action"] == "block"


def test_raw_bytes_to_a_never_decrypt_host_are_refused(
        raw_proxy: Proxy, echo: EchoServer) -> None:
    """Never-decrypt passes TLS through untouched; bytes that are not TLS are not passed."""
    before = echo.connections
    _, echoed = _raw_through(raw_proxy, "www.bankofamerica.com:443")
    assert echoed == b"" and echo.connections == before


def test_raw_bytes_on_a_raw_port_of_an_allowed_host_are_relayed(
        raw_proxy: Proxy, echo: EchoServer) -> None:
    """The policy opens 5222 (XMPP) to raw tunnels: relayed, and audited as passed."""
    status, echoed = _raw_through(raw_proxy, "www.example.org:5222")
    assert status == 200 and echoed == RAW
    [line] = raw_proxy.events("decision", phase="tcp", host="www.example.org", port=5222)
    assert line["enforced"] == "passed" and line["action"] == "allow", line


def test_raw_port_does_not_open_a_blocked_host(raw_proxy: Proxy, echo: EchoServer) -> None:
    before = echo.connections
    _, echoed = _raw_through(raw_proxy, "www.bet365.com:5222")
    assert echoed == b"" and echo.connections == before


def test_ssh_to_port_22_is_refused(raw_proxy: Proxy, echo: EchoServer) -> None:
    before = echo.connections
    sock, head = tunnel(raw_proxy.port, "www.example.org:22")
    with sock:
        if status_of(head) == 200:
            sock.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
            assert read_all(sock, timeout=3) == b""
    assert echo.connections == before
    [line] = raw_proxy.events("decision", phase="connect", host="www.example.org", port=22)
    assert line["rule"] == "port-policy"


def test_tls_and_http_still_work_after_the_raw_checks(raw_proxy: Proxy, tmp_path: Path) -> None:
    """The raw check applies to the raw layer only: HTTP inside a tunnel on 5222 is decided
    as HTTP (and that port is not open to plain HTTP, so it is blocked with a page)."""
    sock, head = tunnel(raw_proxy.port, "www.example.org:5222")
    with sock:
        assert status_of(head) == 200
        sock.sendall(b"GET /http-on-5222 HTTP/1.1\r\nHost: www.example.org\r\n"
                     b"Connection: close\r\n\r\n")
        assert status_of(read_all(sock)) == 403


@pytest.fixture(scope="module")
def refuse_proxy(tmp_path_factory: pytest.TempPathFactory, certs: Certs, upstreams: Upstreams,
                 echo: EchoServer) -> Iterator[Proxy]:
    """The same gateway with `aupgate_https_block=refuse`: blocked CONNECTs are refused."""
    resolve = [f"aupgate_resolve={h}:443:127.0.0.1:{echo.port}" for h in HOSTS]
    extra = [arg for spec in resolve for arg in ("--set", spec)]
    started = start_proxy(tmp_path_factory.mktemp("raw-refuse"), certs, upstreams, *extra,
                          "--set", "aupgate_https_block=refuse")
    yield started
    stop_proxy(started)


def test_refuse_mode_a_warned_host_gets_no_raw_bytes_either(
        refuse_proxy: Proxy, echo: EchoServer) -> None:
    """The issue: warn hosts were reachable with raw bytes in both modes. A warned CONNECT is
    answered (the warn page needs the tunnel), but what follows that is not TLS or HTTP is
    refused and audited."""
    before = echo.connections
    status, echoed = _raw_through(refuse_proxy, "www.facebook.com:443")
    assert status == 200 and echoed == b"" and echo.connections == before
    [line] = refuse_proxy.events("decision", phase="tcp", host="www.facebook.com")
    assert line["enforced"] == "refused" and line["rule"] == "social-warn", line


def test_refuse_mode_a_blocked_host_is_refused_at_the_connect(
        refuse_proxy: Proxy, echo: EchoServer) -> None:
    before = echo.connections
    status, echoed = _raw_through(refuse_proxy, "www.bet365.com:443")
    assert status != 200 and echoed == b"" and echo.connections == before
    [line] = refuse_proxy.events("decision", phase="connect", host="www.bet365.com")
    assert line["action"] == "block" and line["rule"] == "no-gambling", line
