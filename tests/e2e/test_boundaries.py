"""Window boundaries on a real `aupgate run`: what is open when lunch ends is decided again.

The proxy's policy clock runs from 12:59:50 on a Tuesday (`aupgate_clock_from`), so lunch ends
about ten seconds after it starts serving. A WebSocket, an event stream, a never-decrypt tunnel
and a raw TCP tunnel are opened during lunch under rules that allow them only then; a stream
from a site allowed all day is opened beside them; a warn pass is given during lunch. At 13:00
the first four are closed and audited (`phase: boundary`), the allowed one keeps streaming, and
the pass has ended.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources

import jsonschema
import pytest

from .conftest import (
    CURL,
    FIXTURES,
    Certs,
    Proxy,
    Upstreams,
    curl,
    free_port,
    start_proxy,
    stop_proxy,
)
from .test_admin import scrape, value

pytestmark = pytest.mark.e2e

CLOCK_FROM = "2026-11-24T12:59:50-06:00"  # a Tuesday in America/Chicago; lunch ends at 13:00
ADMIN_PORTS: dict[int, int] = {}  # the lunch proxy's port -> its admin endpoint's
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B85"

LUNCH_RULES = """
  - id: lunch-chat
    clauses: ["8"]
    match: {domains: [chat.lunch.test], windows: [lunch]}
    action: allow
    reason: Chat is personal use, allowed at lunch.
  - id: no-chat-at-work
    clauses: ["8"]
    match: {domains: [chat.lunch.test]}
    action: block
    reason: Chat is personal use.
  - id: lunch-radio
    clauses: ["4"]
    match: {domains: [radio.lunch.test], windows: [lunch]}
    action: allow
    reason: Radio is allowed at lunch.
  - id: radio-at-work
    clauses: ["4"]
    match: {domains: [radio.lunch.test]}
    action: warn
    reason: Radio at work needs a work reason.
  - id: lunch-banking
    clauses: ["8"]
    match: {domains: [bankofamerica.com, games.lunch.test], windows: [lunch]}
    action: allow
    reason: Personal banking and games at lunch.
  - id: no-banking-at-work
    clauses: ["8"]
    match: {domains: [bankofamerica.com, games.lunch.test]}
    action: block
    reason: Personal banking and games are for personal time.
"""


# --------------------------------------------------------------------------- the upstream


class _Handler(socketserver.BaseRequestHandler):
    """A WebSocket that sends a frame every 0.1 s, an endless event stream, and a line-based
    TCP service (anything but TLS or HTTP): each runs for 40 s at most."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(45)
        first = sock.recv(65536)
        deadline = time.monotonic() + 40
        try:
            if first.startswith(b"HELLO"):  # the raw TCP service: echo a line until closed
                while time.monotonic() < deadline:
                    sock.sendall(b"tick\n")
                    time.sleep(0.1)
                return
            while b"\r\n\r\n" not in first:
                first += sock.recv(65536)
            head = first.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in head[1:] if line)}
            if headers.get("upgrade", "").lower() == "websocket":
                accept = base64.b64encode(hashlib.sha1(
                    headers["sec-websocket-key"].encode() + WS_GUID).digest()).decode()
                sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                              f"{accept}\r\n\r\n").encode())
                n = 0
                while time.monotonic() < deadline:
                    payload = f"tick {n}".encode()
                    sock.sendall(bytes([0x81, len(payload)]) + payload)  # FIN, text, unmasked
                    n += 1
                    time.sleep(0.1)
                return
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            while time.monotonic() < deadline:
                chunk = b"data: tick\n\n"
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                time.sleep(0.1)
        except OSError:
            return  # the proxy closed its side: what the test is about


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def streams() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------- the clients


@dataclass
class Reader:
    """Reads a socket in a thread: when bytes last came, and when the connection ended."""

    sock: socket.socket
    received: bytearray = field(default_factory=bytearray)
    last: float = 0.0
    ended: float | None = None

    def start(self) -> Reader:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        self.sock.settimeout(60)
        try:
            while data := self.sock.recv(65536):
                self.received += data
                self.last = time.monotonic()
        except OSError:
            pass
        self.ended = time.monotonic()
        self.sock.close()

    def stop(self) -> None:
        """End the connection from this side (the thread then closes the socket)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 5
        while self.ended is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def wait_for(self, text: bytes, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.received:
            assert self.ended is None, f"closed early: {bytes(self.received)[:300]!r}"
            assert time.monotonic() < deadline, f"never got {text!r}: {bytes(self.received)!r}"
            time.sleep(0.05)


def _through_proxy(proxy: Proxy, request: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(request)
    return sock


def open_websocket(proxy: Proxy, host: str) -> Reader:
    key = base64.b64encode(b"aupgate-test-key").decode()
    return Reader(_through_proxy(proxy, (
        f"GET http://{host}/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n").encode())).start()


def open_stream(proxy: Proxy, host: str) -> Reader:
    return Reader(_through_proxy(
        proxy, f"GET http://{host}/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())).start()


def open_tcp_tunnel(proxy: Proxy, host: str) -> Reader:
    """A CONNECT to 5222, the port the lab policy opens to bytes neither TLS nor HTTP."""
    sock = _through_proxy(proxy, f"CONNECT {host}:5222 HTTP/1.1\r\nHost: {host}:5222\r\n\r\n"
                          .encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200"), reply
    sock.sendall(b"HELLO\n")
    return Reader(sock).start()


@dataclass
class Download:
    """curl through the proxy in the background (a never-decrypt tunnel carries it)."""

    process: subprocess.Popen[bytes]
    started: float
    ended: float | None = None

    def wait(self, timeout: float) -> int | None:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.ended = self.ended or time.monotonic()
        return code


def open_passthrough(proxy: Proxy, certs: Certs) -> Download:
    """A 20 s audio stream from the upstream, TLS end to end (the site is never decrypted)."""
    process = subprocess.Popen(
        [CURL, "-sS", "-o", "/dev/null", "--proxy", proxy.url, "--max-time", "40",
         "--cacert", str(certs.ca_pem), "https://www.bankofamerica.com/radio"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Download(process, time.monotonic())


# --------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def lunch_proxy(tmp_path_factory: pytest.TempPathFactory, certs: Certs, upstreams: Upstreams,
                streams: int) -> Iterator[Proxy]:
    home = tmp_path_factory.mktemp("boundary")
    shutil.copytree(FIXTURES / "policies", home / "policies")
    shutil.copytree(FIXTURES / "categories", home / "categories")
    lab = home / "policies" / "lab.yaml"
    lab.write_text(lab.read_text().replace("rules:\n", "rules:" + LUNCH_RULES, 1))
    resolve = [f"{host}:{port}:127.0.0.1:{streams}" for host, port in
               (("chat.lunch.test", 80), ("radio.lunch.test", 80), ("calm.lunch.test", 80),
                ("games.lunch.test", 5222))]
    admin = free_port()  # its /metrics counts the boundary
    extra = ["--set", f"aupgate_clock_from={CLOCK_FROM}",
             "--set", f"aupgate_admin=127.0.0.1:{admin}"]
    for spec in resolve:
        extra += ["--set", f"aupgate_resolve={spec}"]
    proxy = start_proxy(home, certs, upstreams, *extra, fixed_time=None)
    ADMIN_PORTS[proxy.port] = admin
    yield proxy
    stop_proxy(proxy)


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_lunch_ends_open_flows_are_closed_and_audited(lunch_proxy: Proxy, certs: Certs) -> None:
    proxy = lunch_proxy
    # --- during lunch: everything opens
    chat = open_websocket(proxy, "chat.lunch.test")
    radio = open_stream(proxy, "radio.lunch.test")
    calm = open_stream(proxy, "calm.lunch.test")  # no rule: the default allows it all day
    games = open_tcp_tunnel(proxy, "games.lunch.test")
    bank = open_passthrough(proxy, certs)
    for reader, text in ((chat, b"tick 3"), (radio, b"data: tick"), (calm, b"data: tick"),
                         (games, b"tick")):
        reader.wait_for(text)
    first = curl(proxy, "http://www.facebook.com/news", "-H", "Accept: text/html")
    assert first.status == 403 and 'name="token"' in first.body, first
    token = first.body.split('name="token" value="')[1].split('"')[0]
    jar = str(proxy.home / "lunch-browser.jar")  # the pass is this browser's (its pass cookie)
    go = curl(proxy, "http://www.facebook.com/.aupgate/continue", "--data-urlencode",
              f"token={token}", "--data-urlencode", "reason=agency page during lunch", "-c", jar)
    assert go.status == 303, go
    assert curl(proxy, "http://www.facebook.com/news", "-b", jar).status == 200  # it works
    opened = {e["host"]: e for e in proxy.events("decision") if e.get("phase") == "request"}
    assert opened["chat.lunch.test"]["window"] == "lunch", "the machine was too slow"
    assert opened["chat.lunch.test"]["action"] == "allow"
    [cont] = [e for e in proxy.events("decision") if e.get("work_reason")]
    assert cont["pass_ends"] == "2026-11-24T13:00:00-06:00"  # the pass ends with lunch

    # --- 13:00: the boundary
    _wait(lambda: proxy.events("window_boundary"), 30, "the 13:00 boundary")
    [boundary] = proxy.events("window_boundary")
    assert boundary["agency"] == "lab" and boundary["at"] == "2026-11-24T13:00:00-06:00"
    assert (boundary["window_before"], boundary["window"]) == ("lunch", "work")
    assert boundary["closed"] == 4 and boundary["open"] == 5 and boundary["passes_ended"] == 1
    for reader in (chat, radio, games):
        _wait(lambda r=reader: r.ended is not None, 10, "the connection to be closed")
    assert bank.wait(10) not in (None, 0), "the passed-through stream goes on"
    calm_before = len(calm.received)
    time.sleep(1.0)
    assert calm.ended is None and len(calm.received) > calm_before  # still streaming

    closed = {e["host"]: e for e in proxy.events("decision", phase="boundary")}
    assert set(closed) == {"chat.lunch.test", "radio.lunch.test", "games.lunch.test",
                           "www.bankofamerica.com"}
    assert closed["chat.lunch.test"]["flow"] == "websocket"
    assert closed["radio.lunch.test"]["flow"] == "http"
    assert closed["games.lunch.test"]["flow"] == "tcp"
    assert closed["www.bankofamerica.com"]["flow"] == "passthrough"
    for host, event in closed.items():
        assert event["enforced"] == "closed" and event["window"] == "work", host
        assert event["window_before"] == "lunch" and event["action_before"] == "allow", host
    assert closed["chat.lunch.test"]["action"] == "block"
    assert closed["chat.lunch.test"]["rule"] == "no-chat-at-work"
    assert closed["radio.lunch.test"]["action"] == "warn"
    assert closed["radio.lunch.test"]["status"] == 200
    assert closed["www.bankofamerica.com"]["rule"] == "no-banking-at-work"
    # each closed HTTP flow has exactly one decision line: its boundary one
    radio_lines = [e for e in proxy.events("decision", host="radio.lunch.test")
                   if e.get("path") == "/events"]
    assert [e["phase"] for e in radio_lines] == ["boundary"]

    # --- after 13:00: the lunch pass is over, and new requests are decided at work
    again = curl(proxy, "http://www.facebook.com/news", "-H", "Accept: text/html", "-b", jar)
    assert again.status == 403 and 'name="token"' in again.body, again
    assert curl(proxy, "http://chat.lunch.test/ws").status == 403
    time_to_close = {name: r.ended - r.last for name, r in
                     (("chat", chat), ("radio", radio), ("games", games)) if r.ended}
    assert all(gap < 5 for gap in time_to_close.values()), time_to_close
    calm.stop()
    samples = scrape(ADMIN_PORTS[proxy.port])
    assert value(samples, "aupgate_window_boundaries_total", agency="lab", why="window") == 1
    assert value(samples, "aupgate_boundary_passes_ended_total", agency="lab") == 1
    counted = sum(v for (name, labels), v in samples.items()
                  if name == "aupgate_decisions_total" and ("phase", "boundary") in labels)
    assert counted == sum(len(e["categories"]) or 1 for e in closed.values())
    schema = json.loads(resources.files("aupgate").joinpath("audit_schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for event in proxy.audit():
        assert [e.message for e in validator.iter_errors(event)] == [], event


def test_no_boundary_with_a_frozen_clock(proxy: Proxy) -> None:
    """`aupgate_fixed_time` freezes the clock: no boundary is ever reached, none is audited."""
    assert curl(proxy, "http://www.example.org/").status == 200
    assert proxy.events("window_boundary") == []
    assert "POLICY CLOCK FROZEN" in proxy.log()
