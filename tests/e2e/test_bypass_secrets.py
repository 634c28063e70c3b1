"""No secret in the proxy's own output nor in the audit log (issue 12, item 6), whatever shape a
request takes: decrypted HTTPS query tokens, userinfo passwords, `pw=`, `;`-separated and path
parameters, and the raw bytes mitmproxy quotes when a request is malformed or cut short."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from .conftest import Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy
from .rawclient import connect, exchange, h2_request

SECRETS = [f"SEKRIT{i}x" for i in range(20)]


@pytest.fixture(scope="module")
def verbose(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
            upstreams: Upstreams) -> Iterator[Proxy]:
    """At `info`, the default of `aupgate run`; and a second run at `debug` below."""
    started = start_proxy(tmp_path_factory.mktemp("secrets"), certs, upstreams)
    yield started
    stop_proxy(started)


def _leak_everything(proxy: Proxy) -> int:
    """Send every shape; the client port of the head cut short (its close is logged at debug)."""
    s = SECRETS
    assert curl(proxy, f"https://www.example.org/q?token={s[0]}&x=1").status == 200
    assert curl(proxy, f"https://www.bet365.com/q?access_token={s[1]}").status == 403
    exchange(proxy.port, f"GET http://user:{s[2]}@www.example.org/ui HTTP/1.1\r\n"
                         f"Host: www.example.org\r\nConnection: close\r\n\r\n".encode(), timeout=3)
    assert curl(proxy, f"http://www.example.org/login;jsessionid={s[3]}?pw={s[4]}"
                       f";session={s[5]}&next=/home").status == 200
    assert curl(proxy, f"http://www.example.org/a?user=bob;pwd={s[6]};lang=en").status == 200
    # malformed: a bad request line, a head cut short, a folded header, a CRLF over HTTP/2
    exchange(proxy.port, f"GET /x?token={s[7]} HTTP/9.9\r\nCookie: a={s[8]}\r\n\r\n".encode(),
             timeout=3)
    cut = connect(proxy.port)
    cut.sendall(f"GET http://www.example.org/y?token={s[9]} HTTP/1.1\r\n"
                f"Authorization: Basic {s[10]}\r\n".encode())
    cut_port = int(cut.getsockname()[1])
    cut.close()
    exchange(proxy.port, f"GET http://www.example.org/f?sig={s[11]} HTTP/1.1\r\n"
                         f"Host: www.example.org\r\nX-F: a\r\n {s[12]}\r\n\r\n".encode(), timeout=3)
    h2_request(proxy.port, "www.example.org", proxy.mitm_ca, [
        (":method", "GET"), (":scheme", "https"), (":authority", "www.example.org"),
        (":path", f"/h2?token={s[13]}"), ("x-bad", f"v\r\nx: {s[14]}")])
    # an upstream that cannot be reached: the error names the URL
    curl(proxy, f"http://127.0.0.9:80/down?password={s[15]}", timeout=5)
    time.sleep(0.5)  # grace for the default level, which logs nothing to wait for
    return cut_port


def test_default_output_and_audit_carry_no_secret(verbose: Proxy) -> None:
    _leak_everything(verbose)
    log = verbose.log()
    audit = verbose.audit_path.read_text()
    leaked_log = [s for s in SECRETS if s in log]
    leaked_audit = [s for s in SECRETS if s in audit]
    assert not leaked_log, log
    assert not leaked_audit, [x for x in audit.splitlines() if any(s in x for s in SECRETS)]
    assert "/login;jsessionid=REDACTED?pw=REDACTED;session=REDACTED&next=/home" in audit


def test_debug_output_carries_no_secret_either(tmp_path_factory: pytest.TempPathFactory,
                                               certs: Certs, upstreams: Upstreams) -> None:
    started = start_proxy(tmp_path_factory.mktemp("secrets-debug"), certs, upstreams,
                          "--set", "termlog_verbosity=debug")
    try:
        cut_port = _leak_everything(started)
        # what the proxy says about the cut-short head comes when it notices the close
        started.wait_for(f":{cut_port}] client disconnect", timeout=30)
    finally:
        stop_proxy(started)
    log = started.log()
    assert [s for s in SECRETS if s in log] == [], log
