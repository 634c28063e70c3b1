"""The adapter's option parsers, tested without a proxy."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aupgate.mitm import options as opts
from aupgate.mitm.run import option_specs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("www.bet365.com:443:127.0.0.1", ("www.bet365.com", 443, "127.0.0.1", 443)),
        ("WWW.Example.ORG.:80:127.0.0.1:8081", ("www.example.org", 80, "127.0.0.1", 8081)),
        ("a.test:443:[::1]:8443", ("a.test", 443, "::1", 8443)),
        ("*:443:10.0.0.1", ("*", 443, "10.0.0.1", 443)),
    ],
)
def test_parse_resolve(spec: str, expected: tuple[str, int, str, int]) -> None:
    assert tuple(opts.parse_resolve(spec)) == expected


@pytest.mark.parametrize(
    "spec", ["a.test", "a.test:443", "a.test:x:1.2.3.4", "a.test:443:nothost", "a.test:0:1.2.3.4",
             "a.test:443:[::1", "a.test:443:1.2.3.4:99999", ":443:1.2.3.4"],
)
def test_parse_resolve_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match=spec.split(":")[0] or "expected"):
        opts.parse_resolve(spec)


def test_resolve_table_wildcard_and_exact() -> None:
    table = opts.resolve_table(["*:443:127.0.0.2:9443", "www.a.test:443:127.0.0.1:8443"])
    assert opts.resolve(table, "WWW.A.TEST", 443) == ("127.0.0.1", 8443)
    assert opts.resolve(table, "other.test", 443) == ("127.0.0.2", 9443)
    assert opts.resolve(table, "other.test", 80) is None
    assert opts.resolve({}, "x", 1) is None


def test_parse_fixed_time() -> None:
    assert opts.parse_fixed_time("") is None
    assert opts.parse_fixed_time("2026-11-24T10:30:00-06:00") == datetime(
        2026, 11, 24, 10, 30, tzinfo=timezone(timedelta(hours=-6)))
    assert opts.parse_fixed_time("2026-11-24T16:30Z") is not None
    with pytest.raises(ValueError, match="ISO-8601"):
        opts.parse_fixed_time("tuesday")


def test_fault_needs_test_mode() -> None:
    """A production gateway can never be told to fail on purpose."""
    assert opts.parse_fault("", {}) is None
    with pytest.raises(ValueError, match="AUPGATE_TEST_MODE"):
        opts.parse_fault("decide", {})
    assert opts.parse_fault("decide@Fault.Test", {opts.TEST_MODE_ENV: "1"}) == ("decide",
                                                                               "fault.test")
    with pytest.raises(ValueError, match="unknown fault point"):
        opts.parse_fault("nowhere", {opts.TEST_MODE_ENV: "1"})


def test_option_names_are_prefixed() -> None:
    assert all(spec.name.startswith("aupgate_") for spec in opts.OPTIONS)


def test_run_flags_map_to_options(tmp_path: Path) -> None:
    """`aupgate run` flags become the same options `mitmdump --set` takes, `--set` ones last
    (mitmproxy refuses two values for one option, so a flag and a `--set` of it clash loudly)."""
    args = argparse.Namespace(
        listen_host="127.0.0.1", listen_port=9999, policy_dir=tmp_path, categories=None,
        audit_log=tmp_path / "a.jsonl", audit_stdout=False, default_agency="lab",
        fixed_time="2026-11-24T10:30", resolve=["a.test:80:127.0.0.1"], sets=["confdir=/x"],
        proxy_protocol_from=["10.0.0.5", "10.1.0.0/29"], admin="127.0.0.1:9180", quiet=True)
    specs = option_specs(args)
    assert specs[:3] == ["listen_host=127.0.0.1", "listen_port=9999", "connection_strategy=lazy"]
    for expected in (f"aupgate_policy_dir={tmp_path}", f"aupgate_audit_log={tmp_path}/a.jsonl",
                     "aupgate_default_agency=lab", "aupgate_fixed_time=2026-11-24T10:30",
                     "aupgate_resolve=a.test:80:127.0.0.1",
                     "aupgate_proxy_protocol_from=10.0.0.5",
                     "aupgate_proxy_protocol_from=10.1.0.0/29",
                     "aupgate_admin=127.0.0.1:9180"):
        assert expected in specs
    assert specs[-1] == "confdir=/x"
    assert not any(spec.startswith("aupgate_categories") for spec in specs)
