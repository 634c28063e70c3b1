"""The lean master of `aupgate run`: which addons it holds, in which order, and how options that
belong to mitmproxy's other addons still work (they load that addon)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # the master imports mitmproxy's default addons; proxyauth's ldap3 trips a pyasn1
    # DeprecationWarning at import (as in test_mitm_addon.py)
    warnings.simplefilter("ignore", DeprecationWarning)
    from aupgate.mitm.master import GatewayMaster, RunSettings, StartupError, build_master

FIXTURES = Path(__file__).parent / "e2e" / "fixtures"
GATEWAY = ["operationallog", "core", "block", "disableh2c", "proxyauth", "proxyserver",
           "listener", "dnsresolver", "aupgate", "nextlayer", "tlsconfig", "errorcheck"]


def base_specs(tmp_path: Path) -> list[str]:
    return ["listen_host=127.0.0.1", "listen_port=0", "connection_strategy=lazy",
            f"aupgate_policy_dir={FIXTURES / 'policies'}",
            f"aupgate_categories={FIXTURES / 'categories' / 'sources.yaml'}",
            f"confdir={tmp_path / 'conf'}", "aupgate_reload_seconds=0"]


@asynccontextmanager
async def built(tmp_path: Path, *extra: str,
                settings: RunSettings | None = None) -> AsyncIterator[GatewayMaster]:
    root = logging.getLogger()
    level = root.level
    handlers = list(root.handlers)
    try:
        master = build_master([*base_specs(tmp_path), *extra], settings or RunSettings())
        try:
            yield master
        finally:
            await master.done()
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def names(master: GatewayMaster) -> list[str]:
    return [getattr(a, "name", type(a).__name__.lower()) for a in master.addons.chain]


async def test_only_what_a_gateway_needs_in_mitmdumps_order(tmp_path: Path) -> None:
    """Nine of mitmproxy's addons, aupgate where mitmdump's script loader would put it."""
    async with built(tmp_path) as master:
        assert names(master) == GATEWAY
        assert master.options.connection_strategy == "lazy"
        assert master.addons.get("aupgate").gateway is not None  # configured: policies loaded


@pytest.mark.parametrize(("spec", "option", "kept"), [
    ("validate_inbound_headers=false", "validate_inbound_headers", True),
])
async def test_options_a_gateway_needs_are_set_back(tmp_path: Path, spec: str, option: str,
                                                    kept: object) -> None:
    """Unvalidated HTTP/2 headers would carry CR/LF into HTTP/1 (docs/security.md)."""
    async with built(tmp_path, spec) as master:
        assert getattr(master.options, option) == kept


@pytest.mark.parametrize(("spec", "addon", "before"), [
    ("save_stream_file=FLOWS", "save", "tlsconfig"),
    ("upstream_auth=user:secret", "upstreamauth", "errorcheck"),
    ("anticache=true", "anticache", "anticomp"),
    ("stickycookie=.*", "stickycookie", "tlsconfig"),
    ("flow_detail=2", "dumper", "errorcheck"),
])
async def test_an_option_of_another_addon_loads_it(tmp_path: Path, spec: str, addon: str,
                                                   before: str) -> None:
    spec = spec.replace("FLOWS", str(tmp_path / "flows.mitm"))
    async with built(tmp_path, spec) as master:
        chain = names(master)
        assert addon in chain
        extra = [n for n in chain if n not in GATEWAY]
        assert extra == [addon], chain
        if before in chain:
            assert chain.index(addon) < chain.index(before), chain
        name, _, value = spec.partition("=")
        assert str(getattr(master.options, name)).lower() in (value.lower(), "2")


async def test_flow_detail_zero_is_the_default_and_loads_nothing(tmp_path: Path) -> None:
    async with built(tmp_path, "flow_detail=0") as master:
        assert names(master) == GATEWAY


async def test_config_yaml_in_confdir(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("anticomp: true\nblock_global: false\n")
    async with built(tmp_path) as master:
        assert "anticomp" in names(master)
        assert master.options.anticomp is True and master.options.block_global is False


async def test_unknown_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"unknown option.*no_such_option"):
        async with built(tmp_path, "no_such_option=1"):
            pass


async def test_bad_aupgate_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="HOST:PORT:ADDR"):
        async with built(tmp_path, "aupgate_resolve=nonsense"):
            pass


async def test_bad_mitmproxy_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="body_size_limit"):
        async with built(tmp_path, "body_size_limit=lots"):
            pass


async def test_a_worker_writes_its_own_audit_file(tmp_path: Path) -> None:
    async with built(tmp_path, f"aupgate_audit_log={tmp_path / 'audit.jsonl'}",
                     settings=RunSettings(worker=3)) as master:
        assert master.options.aupgate_audit_log == str(tmp_path / "audit.w3.jsonl")
    assert (tmp_path / "audit.w3.jsonl").exists()
    assert not (tmp_path / "audit.jsonl").exists()
