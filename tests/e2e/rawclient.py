"""Raw sockets through the proxy, for the shapes curl cannot make: bytes after a CONNECT, heads
of any size or speed, TLS inside a tunnel spoken by hand, HTTP/2 frames built with the `h2`
library (its outbound checks turned off, so it sends what an attacker would)."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events


def connect(port: int, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_all(sock: socket.socket, timeout: float = 10, limit: int = 1 << 20) -> bytes:
    """Everything the peer sends until it closes (or `timeout` passes, or `limit` bytes)."""
    deadline = time.monotonic() + timeout
    out = b""
    while len(out) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except (ConnectionResetError, ssl.SSLError, OSError):
            break
        if not data:
            break
        out += data
    return out


def read_head(sock: socket.socket, timeout: float = 10) -> bytes:
    """A response head (through its blank line), or what came before the peer closed."""
    deadline = time.monotonic() + timeout
    out = b""
    while b"\r\n\r\n" not in out and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = sock.recv(1)
        except OSError:
            break
        if not data:
            break
        out += data
    return out


def status_of(response: bytes) -> int:
    """The status code of an HTTP/1 response (0 when there is none)."""
    parts = response.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def tunnel(port: int, target: str, timeout: float = 10) -> tuple[socket.socket, bytes]:
    """A connection to the proxy with `CONNECT target` sent; the proxy's answer head."""
    sock = connect(port, timeout)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    return sock, read_head(sock, timeout)


def exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send `data` on a new connection and read everything until the proxy closes."""
    with connect(port, timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        return read_all(sock, timeout)


def tls_tunnel(port: int, host: str, cafile: Path, alpn: list[str] | None = None,
               timeout: float = 10) -> ssl.SSLSocket:
    """CONNECT host:443, then TLS to the proxy's interception (trusting its CA)."""
    sock, head = tunnel(port, f"{host}:443", timeout)
    assert status_of(head) == 200, head
    context = ssl.create_default_context(cafile=str(cafile))
    if alpn:
        context.set_alpn_protocols(alpn)
    return context.wrap_socket(sock, server_hostname=host)


def h2_request(port: int, host: str, cafile: Path, headers: list[tuple[str, str]],
               timeout: float = 10) -> tuple[int | None, bytes, str | None]:
    """One HTTP/2 request with `headers` sent exactly as given (no client-side checks).

    Returns (status or None, body, why the stream or connection ended early or None).
    """
    tls = tls_tunnel(port, host, cafile, alpn=["h2"], timeout=timeout)
    assert tls.selected_alpn_protocol() == "h2"
    config = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                       normalize_outbound_headers=False,
                                       validate_inbound_headers=False)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    conn.send_headers(1, [(k.encode(), v.encode()) for k, v in headers], end_stream=True)
    tls.sendall(conn.data_to_send())
    status: int | None = None
    body = b""
    ended: str | None = None
    deadline = time.monotonic() + timeout
    with tls:
        while time.monotonic() < deadline:
            tls.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = tls.recv(65536)
            except (OSError, ssl.SSLError):
                return status, body, ended or "timeout"
            if not data:
                return status, body, ended or "closed"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length,
                                                   event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    return status, body, None
                elif isinstance(event, h2.events.StreamReset):
                    return status, body, f"reset {event.error_code!r}"
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return status, body, f"goaway {event.error_code!r}"
            with contextlib.suppress(OSError):
                tls.sendall(conn.data_to_send())
    return status, body, "timeout"


class EchoServer(socketserver.ThreadingTCPServer):
    """A raw TCP service (SSH, XMPP stand-in): counts connections and echoes what it gets."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.connections = 0
        self.received = b""

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Echo(socketserver.BaseRequestHandler):
    server: EchoServer

    def handle(self) -> None:
        self.server.connections += 1
        self.request.settimeout(10)
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.server.received += data
                self.request.sendall(data)


@contextlib.contextmanager
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def rss_kib(pid: int) -> int:
    """Resident memory of a process, KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
