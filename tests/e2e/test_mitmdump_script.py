"""`mitmdump -s addon/aupgate/mitm/script.py` stays supported: the addon decides, answers and
audits the same under mitmdump's own master as under `aupgate run`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aupgate.audit.verify import verify_files

from .conftest import Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
             upstreams: Upstreams) -> Iterator[Proxy]:
    started = start_proxy(tmp_path_factory.mktemp("mitmdump"), certs, upstreams, mitmdump=True)
    yield started
    stop_proxy(started)


def test_allowed_site_passes(scripted: Proxy, upstreams: Upstreams) -> None:
    r = curl(scripted, "http://www.example.org/via-mitmdump")
    assert r.status == 200 and "upstream www.example.org" in r.body, r
    [event] = scripted.events("decision", path="/via-mitmdump")
    assert event["action"] == "allow" and event["client"] == "127.0.0.1"


def test_blocked_site_gets_the_block_page(scripted: Proxy, upstreams: Upstreams) -> None:
    r = curl(scripted, "http://www.bet365.com/mitmdump-bet")
    assert r.status == 403 and "Gambling" in r.body, r
    assert upstreams.seen("www.bet365.com", "/mitmdump-bet") == 0


def test_https_is_intercepted_and_decided(scripted: Proxy) -> None:
    r = curl(scripted, "https://www.example.org/mitmdump-tls")
    assert r.status == 200, r
    assert scripted.events("decision", path="/mitmdump-tls", scheme="https")


def test_stop_is_recorded_and_the_chain_holds(tmp_path_factory: pytest.TempPathFactory,
                                              scripted: Proxy) -> None:
    stop_proxy(scripted)
    assert scripted.process.returncode == 0
    records = scripted.audit()
    first, last = records[0], records[-1]  # the writer's own checkpoints open and close the file
    assert (first["event"], first["reason"]) == ("audit_checkpoint", "open"), first
    assert (last["event"], last["reason"]) == ("audit_checkpoint", "close"), last
    kinds = [e["event"] for e in records[1:-1]]
    assert kinds[:2] == ["policy_loaded", "proxy_start"] and kinds[-1] == "proxy_stop", kinds
    out = tmp_path_factory.mktemp("verify") / "out.txt"
    with out.open("w") as handle:
        assert verify_files([scripted.audit_path], anchors=(), out=handle,
                            as_of=last["time"]) == 0
    assert "closed by its writer" in out.read_text()
