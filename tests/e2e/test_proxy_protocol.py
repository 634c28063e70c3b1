"""The PROXY protocol at `aupgate run`'s listener, on loopback: a trusted balancer (127.0.0.3)
names the client, and the client named is who is decided and audited. Everything that tries to
get around it is refused: no header, a garbled or late one, a header from anyone else, split
across packets. Then a real HAProxy in front (send-proxy and send-proxy-v2), HTTP and HTTPS.

The fixture agency's network is 127.0.0.1 and ::1, with no default agency: a client the header
places elsewhere (127.0.0.2, the balancer itself) is refused by the policy, which shows whose
address was used.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aupgate.proxyprotocol import encode_v1, encode_v2

from .conftest import CURL, Certs, Proxy, Upstreams, curl, free_port, start_proxy, stop_proxy

BALANCER = "127.0.0.3"


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
             upstreams: Upstreams) -> Iterator[Proxy]:
    started = start_proxy(tmp_path_factory.mktemp("proxy-protocol"), certs, upstreams,
                          "--proxy-protocol-from", BALANCER)
    yield started
    stop_proxy(started)


def request(path: str, method: str = "GET") -> bytes:
    return (f"{method} http://www.example.org{path} HTTP/1.1\r\nHost: www.example.org\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n").encode()


def exchange(proxy: Proxy, source: str, *parts: bytes, timeout: float = 10) -> bytes:
    """Connect from `source`, send the parts (a pause between them), read until closed."""
    with socket.socket() as s:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect(("127.0.0.1", proxy.port))
        for i, part in enumerate(parts):
            if i:
                time.sleep(0.2)
            s.sendall(part)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0


def dest(proxy: Proxy) -> tuple[str, int]:
    return ("127.0.0.1", proxy.port)


def test_v2_header_names_the_client(balanced: Proxy) -> None:
    header = encode_v2(("127.0.0.1", 40001), dest(balanced))
    assert status(exchange(balanced, BALANCER, header + request("/pp-v2"))) == 200
    [event] = balanced.events("decision", path="/pp-v2")
    assert event["client"] == "127.0.0.1" and event["agency"] == "lab"


def test_v1_header_names_the_client(balanced: Proxy) -> None:
    header = encode_v1(("127.0.0.1", 40002), dest(balanced))
    assert status(exchange(balanced, BALANCER, header + request("/pp-v1"))) == 200
    [event] = balanced.events("decision", path="/pp-v1")
    assert event["client"] == "127.0.0.1"


def test_ipv6_client(balanced: Proxy) -> None:
    header = encode_v2(("::1", 40003), ("::1", balanced.port))
    assert status(exchange(balanced, BALANCER, header + request("/pp-v6"))) == 200
    [event] = balanced.events("decision", path="/pp-v6")
    assert event["client"] == "::1"


@pytest.mark.parametrize("client", ["127.0.0.2", "10.39.0.9"])
def test_the_named_client_is_who_is_decided(balanced: Proxy, upstreams: Upstreams,
                                            client: str) -> None:
    """A client the header places on no agency network is refused as that client."""
    path = f"/pp-outsider-{client}"
    reply = exchange(balanced, BALANCER, encode_v2((client, 40004), dest(balanced)) +
                     request(path))
    assert status(reply) == 403 and b"not on an agency network" in reply
    [event] = balanced.events("decision", path=path)
    assert event["client"] == client and event["enforced"] == "refused"
    assert upstreams.seen("www.example.org", path) == 0


def test_local_command_means_the_balancer_itself(balanced: Proxy) -> None:
    """v2 LOCAL (a health check): the connection's own address, 127.0.0.3, is the client."""
    reply = exchange(balanced, BALANCER, encode_v2(None) + request("/pp-local"))
    assert status(reply) == 403
    [event] = balanced.events("decision", path="/pp-local")
    assert event["client"] == BALANCER


@pytest.mark.parametrize(("parts", "logged"), [
    ((request("/pp-none"),), "not a PROXY protocol header (neither the v1 nor the v2"),
    ((b"PROXY TCP4 127.0.0.1 127.0.0.1 1 2 3\r\n" + request("/pp-garbled"),),
     "expected 'PROXY TCP4|TCP6"),
    ((b"PROXY TCP4 127.0.0.1 127.0.0.1 01 2\r\n" + request("/pp-garbled"),), "not a port"),
    ((encode_v2(("127.0.0.1", 1), ("127.0.0.1", 2))[:20],), "closed before a complete"),
    ((b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff",), "more than 4096"),
])
def test_balancer_without_a_valid_header_is_refused(balanced: Proxy, upstreams: Upstreams,
                                                    parts: tuple[bytes, ...],
                                                    logged: str) -> None:
    if parts[0][:20] == encode_v2(("127.0.0.1", 1), ("127.0.0.1", 2))[:20]:
        with socket.socket() as s:  # a truncated header, then the balancer hangs up
            s.bind((BALANCER, 0))
            s.connect(("127.0.0.1", balanced.port))
            s.sendall(parts[0])
            s.shutdown(socket.SHUT_WR)
            assert s.recv(100) == b""
    else:
        assert exchange(balanced, BALANCER, *parts) == b""
    balanced.wait_for(logged)
    assert "refused a connection from balancer 127.0.0.3:" in balanced.log()
    assert upstreams.seen("www.example.org", "/pp-none") == 0
    assert upstreams.seen("www.example.org", "/pp-garbled") == 0


def test_silent_balancer_is_refused_after_the_timeout(balanced: Proxy) -> None:
    started = time.monotonic()
    with socket.socket() as s:
        s.settimeout(15)
        s.bind((BALANCER, 0))
        s.connect(("127.0.0.1", balanced.port))
        assert s.recv(100) == b""
    assert 4 < time.monotonic() - started < 10
    balanced.wait_for("no PROXY protocol header within 5s")


@pytest.mark.parametrize("parts", [
    (encode_v1(("127.0.0.2", 1), ("127.0.0.1", 2)) + request("/pp-spoof"),),
    (encode_v2(("10.39.0.9", 1), ("127.0.0.1", 2)) + request("/pp-spoof"),),
    (b"PRO", b"XY TCP4 127.0.0.2 127.0.0.1 1 2\r\n" + request("/pp-spoof")),
    (b"\r\n\r\n", encode_v2(("10.39.0.9", 1), ("127.0.0.1", 2))[4:] + request("/pp-spoof")),
])
def test_header_from_anyone_else_is_refused(balanced: Proxy, upstreams: Upstreams,
                                            parts: tuple[bytes, ...]) -> None:
    """127.0.0.1 is a client on the agency network, not a balancer: it may not name another."""
    assert exchange(balanced, "127.0.0.1", *parts) == b""
    balanced.wait_for("refused a PROXY protocol header from 127.0.0.1:")
    assert upstreams.seen("www.example.org", "/pp-spoof") == 0
    assert not balanced.events("decision", path="/pp-spoof")


def test_clients_speaking_http_are_untouched(balanced: Proxy) -> None:
    """The first-read check waits out a lone `P` (POST, PUT...) and lets the request through."""
    reply = exchange(balanced, "127.0.0.1", b"P", request("/pp-post", "POST")[1:])
    assert status(reply) == 200, reply
    assert curl(balanced, "https://www.example.org/pp-tls").status == 200


# --------------------------------------------------------------------------- real HAProxy


@pytest.fixture(scope="module")
def haproxy_path() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if found is None:
        pytest.skip("haproxy is not installed (.ci/run installs it: apt-get install haproxy)")
    return found


@pytest.mark.parametrize("send", ["send-proxy-v2", "send-proxy"])
def test_through_haproxy(balanced: Proxy, haproxy_path: str, tmp_path: Path,
                         send: str) -> None:
    """curl from two client addresses through HAProxy: each is decided as itself."""
    front = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "defaults\n    mode tcp\n    timeout connect 3s\n    timeout client 30s\n"
        "    timeout server 30s\n"
        f"frontend gw\n    bind 127.0.0.1:{front}\n    default_backend aupgate\n"
        f"backend aupgate\n    server gw1 127.0.0.1:{balanced.port} {send} source {BALANCER}\n")
    log = (tmp_path / "haproxy.log").open("wb")
    process = subprocess.Popen([haproxy_path, "-db", "-f", str(config)], stdout=log,
                               stderr=subprocess.STDOUT)
    log.close()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", front), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        for client, expected in (("127.0.0.1", 200), ("127.0.0.2", 403)):
            for scheme in ("http", "https"):
                path = f"/haproxy-{send}-{scheme}-{client}"
                done = subprocess.run(
                    [CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", client,
                     "--proxy", f"http://127.0.0.1:{front}", "--cacert", str(balanced.mitm_ca),
                     f"{scheme}://www.example.org{path}"],
                    capture_output=True, text=True, timeout=20, check=False)
                if scheme == "https" and expected == 403:
                    # refused at CONNECT (curl: "CONNECT tunnel failed, response 403")
                    assert "403" in done.stdout + done.stderr, done
                    events = balanced.events("decision", client=client, host="www.example.org",
                                             method="CONNECT")
                    assert events, balanced.audit()[-3:]
                    continue
                assert done.stdout == str(expected), done
                [event] = balanced.events("decision", path=path)
                assert event["client"] == client
    finally:
        process.terminate()
        process.wait(timeout=10)
