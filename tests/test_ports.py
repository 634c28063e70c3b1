"""The port policy (`ports`): the pure check, the loader's located errors, the engine's order."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aupgate.categories.listindex import ListIndex
from aupgate.engine import Facts, decide
from aupgate.normalise import parse_url
from aupgate.policy.model import PortPolicy
from aupgate.ports import port_allowed, raw_allowed
from test_policy_validation import load, marked_line, policy_text

WORK = datetime(2026, 11, 24, 10, 30, tzinfo=ZoneInfo("America/Chicago"))
PORTS = """\
ports:
  tunnel: [8443, 5222]
  http: [8080]
  raw: [5222]
  clauses: [general]
  reason: Only web ports are open.
"""


@pytest.mark.parametrize(
    ("scheme", "port", "allowed"),
    [
        ("https", None, True), ("https", 443, True), ("wss", None, True),
        ("https", 22, False), ("https", 80, False), ("https", 8080, False),
        ("http", None, True), ("http", 80, True), ("ws", None, True),
        ("http", 443, False), ("http", 8080, False), ("http", 22, False),
        ("", None, True),
    ],
)
def test_defaults_open_only_the_web_ports(scheme: str, port: int | None, allowed: bool) -> None:
    assert port_allowed(PortPolicy(), scheme, port) is allowed


def test_listed_ports_open_for_their_kind_only() -> None:
    ports = PortPolicy(tunnel=frozenset({443, 8443}), http=frozenset({80, 8080}))
    assert port_allowed(ports, "https", 8443) and port_allowed(ports, "http", 8080)
    assert not port_allowed(ports, "http", 8443) and not port_allowed(ports, "https", 8080)
    assert not raw_allowed(ports, 443) and not raw_allowed(PortPolicy(), 443)
    assert raw_allowed(PortPolicy(raw=frozenset({5222})), 5222)


def test_section_loads(tmp_path: Path) -> None:
    policy, problems, _ = load(tmp_path, policy_text(extra=PORTS))
    assert problems == [] and policy is not None
    assert policy.ports.tunnel == {443, 8443, 5222} and policy.ports.http == {80, 8080}
    assert policy.ports.raw == {5222} and policy.ports.verdict.clauses == ("general",)
    assert policy.enforcing("general")[-1] == "port-policy"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (PORTS.replace("[8443, 5222]", "[8443, ssh]  # <-"),
         "ports.tunnel[1]: expected a port number (1-65535), got 'ssh'"),
        (PORTS.replace("[8080]", "[70000]  # <-"),
         "ports.http[0]: expected a port number (1-65535), got 70000"),
        (PORTS.replace("http: [8080]", "http: true  # <-"),
         "ports.http[0]: expected a port number (1-65535), got True"),
        (PORTS.replace("raw: [5222]", "raw: [22]  # <-"),
         "ports.raw: port 22 is not a tunnel port"),
        (PORTS.replace("  clauses: [general]\n", "").replace("ports:", "ports:  # <-"),
         "ports.clauses: a 'block' outcome must cite a clause"),
        (PORTS.replace("clauses: [general]", "clauses: [nope]  # <-"),
         "ports.clauses: cites unknown clause 'nope'"),
        (PORTS.replace("  raw: [5222]", "  udp: [53]  # <-"), "ports.udp: unknown key"),
    ],
)
def test_section_errors_are_located(tmp_path: Path, section: str, message: str) -> None:
    text = policy_text(extra=section)
    policy, problems, path = load(tmp_path, text)
    assert policy is None
    line = marked_line(text)
    assert any(p.startswith(f"{path}:{line}: ") and message in p for p in problems), problems


def _decide(tmp_path: Path, url: str, extra: str = PORTS) -> tuple[str, str, tuple[str, ...]]:
    policy, problems, _ = load(tmp_path, policy_text(extra=extra))
    assert policy is not None, problems
    index = ListIndex.from_entries([("bet365.com", "gambling")])
    d = decide(policy, index, Facts(url=parse_url(url)), WORK)
    return d.action, d.rule, d.clauses


def test_engine_blocks_shut_ports_and_keeps_a_block_rule(tmp_path: Path) -> None:
    assert _decide(tmp_path, "https://news.example:22/") == ("block", "port-policy",
                                                             ("general",))
    assert _decide(tmp_path, "https://news.example:8443/")[0] == "allow"
    assert _decide(tmp_path, "http://news.example:8080/")[0] == "allow"
    # a site already blocked keeps the rule that says more about it
    assert _decide(tmp_path, "https://www.bet365.com:22/")[1] == "no-gambling"
    # no section: the web's ports only, citing nothing
    assert _decide(tmp_path, "https://news.example:8443/", extra="") == (
        "block", "port-policy", ())
