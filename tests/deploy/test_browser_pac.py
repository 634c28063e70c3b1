"""A real browser configured only by the generated PAC file, through a real `aupgate run`.

Headless Chromium (Debian's `chromium`) is started with `--proxy-pac-url` pointing at the PAC
file `aupgate pac` wrote, served over HTTP with the PAC media type as nginx serves it, and with
`--host-resolver-rules` sending every name to 127.0.0.1, so nothing leaves the machine. The DOM
it renders (`--dump-dom`) must show the upstream's page for an allowed site, aupgate's block
page for a gambling site, and the upstream's page for an intranet name that the PAC file sends
DIRECT, with no audit line for it (the gateway never saw it).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from deploy_support import AUPGATE, Upstream, Worker, require, start_worker

from aupgate.pac import PAC_CONTENT_TYPE

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


class _PacHandler(BaseHTTPRequestHandler):
    server: PacServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.fetched.append(self.path)
        target = self.server.root / self.path.lstrip("/")
        if self.path not in ("/proxy.pac", "/wpad.dat") or not target.is_file():
            self.send_error(404)
            return
        body = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", PAC_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class PacServer(ThreadingHTTPServer):
    """Serves proxy.pac and wpad.dat the way deploy/nginx/aupgate-pac.conf does."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _PacHandler)
        self.root = root
        self.fetched: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/proxy.pac"


@dataclass
class Lab:
    worker: Worker
    pac: PacServer
    pac_file: Path
    profiles: Path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("browser")
    worker = start_worker(home / "worker", upstream)
    # The fixture policy's pac section names port 3128; point it at this worker.
    policy = home / "worker" / "policies" / "lab.yaml"
    policy.write_text(policy.read_text().replace("127.0.0.1:3128", f"127.0.0.1:{worker.port}"))
    # The web server's folder exists before `aupgate pac` writes into it (pac makes none).
    www = home / "www"
    www.mkdir()
    try:
        done = subprocess.run(
            [str(AUPGATE), "pac", "--agency", "lab", "--policy-dir", str(policy.parent),
             "--output", str(www / "proxy.pac"), "--wpad"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        server = PacServer(www)
    except BaseException:
        worker.stop()
        raise
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        yield Lab(worker, server, www / "proxy.pac", home / "profiles")
    finally:
        server.shutdown()
        server.server_close()
        worker.stop()


def dump_dom(lab: Lab, url: str, name: str) -> str:
    """Chromium's rendered DOM for `url`, browsing with a fresh profile and only the PAC file."""
    chromium = require("chromium")
    profile = lab.profiles / name
    profile.mkdir(parents=True)
    argv = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--proxy-pac-url={lab.pac.url}",
        "--host-resolver-rules=MAP * 127.0.0.1",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, f"chromium exit {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def decisions(worker: Worker) -> list[dict[str, Any]]:
    lines = worker.audit_path.read_text().splitlines() if worker.audit_path.exists() else []
    return [e for e in map(json.loads, lines) if e.get("event") == "decision"]


def hosts_decided(worker: Worker) -> set[str]:
    return {str(e.get("host")) for e in decisions(worker)}


@pytest.mark.e2e
def test_allowed_page_through_the_gateway(lab: Lab, upstream: Upstream) -> None:
    """An ordinary site is fetched through aupgate (an audit line) and its content shown."""
    dom = dump_dom(lab, "http://www.example.org/allowed", "allowed")
    assert "Hello from www.example.org/allowed" in dom, dom
    assert "/proxy.pac" in lab.pac.fetched
    assert "www.example.org" in hosts_decided(lab.worker)
    assert upstream.seen["www.example.org"] >= 1


@pytest.mark.e2e
def test_blocked_page_shows_the_block_page(lab: Lab, upstream: Upstream) -> None:
    """A gambling site gets aupgate's block page citing the clause; the upstream never sees it."""
    dom = dump_dom(lab, "http://www.bet365.com/", "blocked")
    assert "This site is blocked" in dom, dom
    assert "Gambling" in dom and "Details for the help desk" in dom
    assert upstream.seen["www.bet365.com"] == 0
    blocked = [e for e in decisions(lab.worker) if e.get("host") == "www.bet365.com"]
    assert blocked and blocked[-1]["action"] == "block", blocked


@pytest.mark.e2e
def test_intranet_name_goes_direct(lab: Lab, upstream: Upstream) -> None:
    """An intranet domain is fetched DIRECT: the upstream serves it, the gateway never sees it."""
    dom = dump_dom(lab, f"http://wiki.intranet.lab.example:{upstream.port}/direct", "intranet")
    assert "Hello from wiki.intranet.lab.example/direct" in dom, dom
    assert upstream.seen["wiki.intranet.lab.example"] >= 1  # the page (and its favicon)
    assert not any("intranet.lab.example" in host for host in hosts_decided(lab.worker))
    assert "intranet.lab.example" not in lab.worker.log()


@pytest.mark.e2e
def test_wpad_is_the_same_file(lab: Lab) -> None:
    """wpad.dat, written by --wpad, is byte for byte the PAC file."""
    assert (lab.pac_file.parent / "wpad.dat").read_bytes() == lab.pac_file.read_bytes()
