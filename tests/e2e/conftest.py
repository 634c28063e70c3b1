"""End-to-end fixtures: a test CA, real upstream servers and real `aupgate run` proxies, all on
loopback.

Everything is real: the upstreams are stdlib HTTP(S) servers with certificates from a CA made here,
the proxy is `aupgate run` (one process) as a subprocess, and requests are made with curl. The proxy
sends every test name (www.bet365.com, ...) to the local upstreams with `--resolve`, so decisions
are taken on real names while nothing leaves the machine.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

FIXTURES = Path(__file__).parent / "fixtures"
VENV_BIN = Path(sys.executable).parent
AUPGATE = VENV_BIN / "aupgate"
SCRIPT = Path(__file__).resolve().parents[2] / "addon" / "aupgate" / "mitm" / "script.py"
FIXED_TIME = "2026-11-24T10:30:00-06:00"  # a Tuesday, work window in America/Chicago
CURL = shutil.which("curl") or "/usr/bin/curl"

NAMES = [
    "www.example.org", "www.bet365.com", "www.facebook.com", "www.teamviewer.com",
    "www.bankofamerica.com", "mail.yahoo.com", "fault.test", "localhost", "refused.test",
    "m.facebook.com",
    # the vendors' sign-in, video and search hosts (tests/e2e/test_rewrites.py)
    "login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "login.live.com",
    "accounts.google.com", "www.google.com", "www.youtube.com", "www.bing.com", "duckduckgo.com",
    "content.dropboxapi.com", "pastebin.com",
]


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Certs:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certs(folder: Path) -> Certs:
    """A throwaway CA and one server certificate for every test name."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("aupgate e2e test CA"))
        .issuer_name(_name("aupgate e2e test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in NAMES]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("www.example.org"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    certs = Certs(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    certs.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certs.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return certs


# --------------------------------------------------------------------------- upstreams

MIB = 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    """The upstream's routes, one per response-side behaviour the proxy must show."""

    protocol_version = "HTTP/1.1"
    server: UpstreamServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0]
        path = self.path.split("?")[0]
        if path.startswith("http://"):  # absolute form: the proxy in front is in upstream mode
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
            self.server.absolute.add((host, path))
        self.server.seen[(host, path)] += 1
        self.server.peers[(host, path)] = self.client_address  # which upstream connection
        try:
            if self.command in ("POST", "PUT"):
                self.read_upload(host, path)
            self.route(host, path)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError, ValueError):
            self.close_connection = True

    do_POST = do_GET  # noqa: N815 - the stdlib dispatches on this name
    do_PUT = do_GET  # noqa: N815

    def read_upload(self, host: str, path: str) -> None:
        """Read a request body (stated length or chunked) and record how much arrived and
        whether it was complete: an upload the proxy stopped must never arrive whole."""
        got = 0
        key = (host, path)
        self.server.uploads[key] = (0, False)
        length = self.headers.get("Content-Length")
        if length is not None:
            remaining = int(length)
            while remaining:
                data = self.rfile.read(min(remaining, 65536))
                if not data:
                    raise ConnectionResetError("body cut short")
                got += len(data)
                remaining -= len(data)
                self.server.uploads[key] = (got, False)
        elif "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:
                size_line = self.rfile.readline(100)
                if not size_line.endswith(b"\n"):
                    raise ConnectionResetError("body cut short")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline(100)
                    break
                data = self.rfile.read(size + 2)
                if len(data) < size + 2:
                    raise ConnectionResetError("body cut short")
                got += size
                self.server.uploads[key] = (got, False)
        self.server.uploads[key] = (got, True)

    def send(self, status: int, body: bytes, ctype: str = "text/plain",
             extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Seen-Target", self.path)  # what arrived: path and query as sent
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def chunked(self, ctype: str, chunks: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def route(self, host: str, path: str) -> None:
        if path == "/headers":
            self.send(200, json.dumps(dict(self.headers.items())).encode(), "application/json")
        elif path == "/radio":  # an endless audio stream (ends after 20 s at most)
            deadline = time.monotonic() + 20

            def endless() -> Iterator[bytes]:
                while time.monotonic() < deadline:
                    yield b"\xff\xfb" * 512
                    time.sleep(0.02)

            self.chunked("audio/mpeg", endless())
        elif path == "/big.bin":
            self.send(200, b"x" * (2 * MIB), "application/octet-stream")
        elif path == "/stream-big.bin":
            self.chunked("application/octet-stream", (b"y" * 65536 for _ in range(48)))
        elif path == "/stream-small.bin":
            self.chunked("application/octet-stream", (b"z" * 65536 for _ in range(4)))
        elif path == "/ubuntu.torrent":
            self.send(200, b"d8:announce...e", "application/x-bittorrent")
        elif path == "/download":
            self.send(200, b"MZ" + b"\0" * 100, "application/octet-stream",
                      {"Content-Disposition": 'attachment; filename="setup.exe"'})
        elif path == "/pages/setup.exe":  # a page about a program, at a program's address
            self.send(200, b"<html><body>About setup.exe</body></html>", "text/html")
        elif path == "/files/tool.msi":  # a program sent with a generic type
            self.send(200, b"\xd0\xcf\x11\xe0" + b"\0" * 100, "application/octet-stream")
        elif path == "/clip.mp3":  # a short clip of known size, not radio
            self.send(200, b"\xff\xfb" * 2048, "audio/mpeg")
        else:
            self.send(200, f"upstream {host} {self.command} {path}\n".encode())


class UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: Counter[tuple[str, str]] = Counter()
        self.peers: dict[tuple[str, str], tuple[str, int]] = {}
        self.uploads: dict[tuple[str, str], tuple[int, bool]] = {}  # bytes read, complete
        self.absolute: set[tuple[str, str]] = set()  # requests that came in absolute form
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients (the proxy) hang up mid-stream on purpose here; that is not an error."""


@dataclass
class Upstreams:
    http: UpstreamServer
    https: UpstreamServer

    def seen(self, host: str, path: str) -> int:
        return self.http.seen[(host, path)] + self.https.seen[(host, path)]

    def upload(self, host: str, path: str) -> tuple[int, bool] | None:
        """(bytes of the body that arrived, whether it arrived whole), or None: never arrived."""
        return self.http.uploads.get((host, path)) or self.https.uploads.get((host, path))

    def peer(self, host: str, path: str) -> tuple[str, int] | None:
        """The proxy's end of the upstream connection that carried the last such request."""
        return self.http.peers.get((host, path)) or self.https.peers.get((host, path))


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def upstreams(certs: Certs) -> Iterator[Upstreams]:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certs.cert_pem, certs.key_pem)
    servers = Upstreams(UpstreamServer(None), UpstreamServer(tls))
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1},
                                daemon=True) for s in (servers.http, servers.https)]
    for thread in threads:
        thread.start()
    yield servers
    for server in (servers.http, servers.https):
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(timeout=5)


# --------------------------------------------------------------------------- the proxy


def until(condition: Callable[[], Any], timeout: float = 20, what: str = "") -> Any:
    """Poll `condition` every 0.1 s until it is true (returned), failing after `timeout`
    seconds: the bounded wait e2e tests use instead of sleeps that assume an idle machine."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or 'a condition'}"
        time.sleep(0.1)
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proxy:
    """A running `aupgate run`, its files and its output."""

    port: int
    home: Path
    certs: Certs
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def audit_path(self) -> Path:
        return self.home / "audit.jsonl"

    @property
    def policy_dir(self) -> Path:
        return self.home / "policies"

    @property
    def mitm_ca(self) -> Path:
        return self.home / "conf" / "mitmproxy-ca-cert.pem"

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line]

    def events(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.audit()
                if e.get("event") == event and all(e.get(k) == v for k, v in match.items())]

    def log(self) -> str:
        return "".join(self.output)

    def wait_for(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.05)
        raise AssertionError(f"proxy never logged {text!r}:\n{self.log()}")


def start_proxy(home: Path, certs: Certs, upstreams: Upstreams, *extra: str,
                env: dict[str, str] | None = None, mitmdump: bool = False,
                workers: int = 1, fixed_time: str | None = FIXED_TIME) -> Proxy:
    """Copy the fixture policies and categories into `home` and start `aupgate run` on them
    (one process unless `workers` says otherwise).

    `mitmdump`: start mitmproxy's own `mitmdump -s .../mitm/script.py` with the same settings as
    `--set` options instead, the way an administrator who runs mitmproxy themselves loads aupgate.
    `fixed_time`: the frozen policy clock, set once (mitmdump takes each option once); None: a
    clock the caller sets (`aupgate_clock_from`), or the real one.
    """
    if not (home / "policies").exists():
        shutil.copytree(FIXTURES / "policies", home / "policies")
        shutil.copytree(FIXTURES / "categories", home / "categories")
    port = free_port()
    settings = [
        f"aupgate_policy_dir={home / 'policies'}",
        f"aupgate_categories={home / 'categories' / 'sources.yaml'}",
        f"aupgate_audit_log={home / 'audit.jsonl'}",
        *([f"aupgate_fixed_time={fixed_time}"] if fixed_time is not None else []),
        f"aupgate_resolve=*:80:127.0.0.1:{upstreams.http.port}",
        f"aupgate_resolve=*:443:127.0.0.1:{upstreams.https.port}",
        f"confdir={home / 'conf'}",
        f"ssl_verify_upstream_trusted_ca={certs.ca_pem}",
        "aupgate_reload_seconds=1",
    ]
    if mitmdump:  # mitmdump prints every flow unless told not to; aupgate run prints none
        argv = [str(VENV_BIN / "mitmdump"), "-s", str(SCRIPT), "--set", "listen_host=127.0.0.1",
                "--set", f"listen_port={port}", "--set", "connection_strategy=lazy",
                "--set", "flow_detail=0"]
    else:
        argv = [str(AUPGATE), "run", "--workers", str(workers), "--listen-port", str(port)]
    for setting in settings:
        argv += ["--set", setting]
    argv += extra
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "AUPGATE_TEST_MODE": "1", **(env or {})},
    )
    proxy = Proxy(port, home, certs, process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            proxy.output.append(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 30
    while " listening at " not in proxy.log():  # "HTTP(S) proxy (upstream mode) listening at"
        if process.poll() is not None or time.monotonic() > deadline:
            stop_proxy(proxy)
            raise AssertionError(f"{argv[0]} {argv[1]} did not start:\n{proxy.log()}")
        time.sleep(0.05)
    return proxy


def stop_proxy(proxy: Proxy) -> None:
    if proxy.process.poll() is None:
        proxy.process.terminate()
        try:
            proxy.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proxy.process.kill()
            proxy.process.wait()
    if proxy.process.stdout is not None:
        proxy.process.stdout.close()
    # mitmproxy prints "Addon error" when a hook raises and then forwards the request: with
    # aupgate's hooks guarded that must never happen, whatever the test did.
    assert "Addon error" not in proxy.log(), proxy.log()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
          upstreams: Upstreams) -> Iterator[Proxy]:
    """One proxy per test module, on the fixture agency, its CA in `home/conf`."""
    started = start_proxy(tmp_path_factory.mktemp("proxy"), certs, upstreams)
    yield started
    stop_proxy(started)


# --------------------------------------------------------------------------- curl


@dataclass
class Result:
    exit: int
    status: int
    body: str
    headers: str
    stderr: str
    http_version: str

    def __str__(self) -> str:
        return f"curl exit {self.exit}, status {self.status}\n{self.headers}\n{self.body}\n" \
               f"{self.stderr}"


def curl(proxy: Proxy, url: str, *args: str, cacert: Path | None = None,
         timeout: float = 15) -> Result:
    """One request through the proxy; HTTPS trusts the proxy's CA unless told otherwise."""
    argv = [CURL, "-sS", "--proxy", proxy.url, "--max-time", str(timeout),
            "--cacert", str(cacert or proxy.mitm_ca),
            "-D", "-", "-w", "\n%{http_code} %{http_version}", url, *args]
    done = subprocess.run(argv, capture_output=True, timeout=timeout + 5, check=False)
    out = done.stdout.decode("utf-8", "replace")  # bytes: keep the CRLFs that split headers
    body_and_headers, _, trailer = out.rpartition("\n")
    status_text, _, version = trailer.partition(" ")
    headers, _, body = body_and_headers.partition("\r\n\r\n")
    while headers.startswith("HTTP/") and body.startswith("HTTP/"):  # CONNECT's 200 first
        headers, _, body = body.partition("\r\n\r\n")
    return Result(done.returncode, int(status_text or 0), body, headers,
                  done.stderr.decode("utf-8", "replace"), version)


def curl_many(proxy: Proxy, urls: list[str], *args: str,
              timeout: float = 20) -> list[tuple[int, int]]:
    """Several URLs on one curl command line, which reuses its proxy connection between them.

    Returns (status, new connections curl made for it) per URL: 1 for the first, 0 after it when
    the kept-alive connection was reused.
    """
    argv = [CURL, "-sS", "--proxy", proxy.url, "--max-time", str(timeout),
            "--cacert", str(proxy.mitm_ca), "-w", "%{http_code} %{num_connects}\n", *args]
    for url in urls:
        argv += ["-o", "/dev/null", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 5, check=False)
    assert done.returncode == 0, f"curl exit {done.returncode}: {done.stderr}\n{done.stdout}"
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    return [(int(status), int(connects)) for status, connects in rows]
