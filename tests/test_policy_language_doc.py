"""The complete example in docs/policy-language.md is a valid policy and decides as it says."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aupgate.categories.listindex import ListIndex
from aupgate.engine import Facts, decide
from aupgate.normalise import parse_url
from aupgate.policy.loader import load_policy
from aupgate.policy.model import Policy

DOC = Path(__file__).resolve().parents[1] / "docs" / "policy-language.md"
CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    section = DOC.read_text(encoding="utf-8").split("## A complete example", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the complete example has no yaml block"
    path = tmp_path_factory.mktemp("doc") / "example-agency.yaml"
    path.write_text(block.group(1), encoding="utf-8")
    policy, problems = load_policy(path, today=date(2026, 11, 22))
    assert [str(p) for p in problems] == []
    assert policy is not None
    return policy


def test_example_uses_every_top_level_key(example: Policy) -> None:
    """The example shows every optional section, so readers see each in context."""
    assert example.networks and example.groups
    assert example.grants and example.allow and example.deny and example.never_decrypt
    assert example.pac is not None and example.transfer_limit_bytes == 500 * 1024 * 1024
    assert example.schedule.holidays.by_rule and example.controls.tenants is not None
    assert example.controls.safe_search is not None
    assert "Partner data portal" in example.publishing.services()


@pytest.mark.parametrize(
    ("url", "at", "action", "rule"),
    [
        ("https://www.facebook.com/", "2026-11-24T09:30", "warn", "social-work-time"),
        ("https://www.facebook.com/", "2026-11-24T12:15", "allow", "social-personal-time"),
        ("https://www.bet365.com/", "2026-11-24T12:15", "block", "gambling"),
        ("https://bad.example/x", "2026-11-24T12:15", "block", "deny-list"),
        ("https://www.agency.example/", "2026-11-24T09:30", "allow", "allow-list"),
        ("https://news.example/", "2026-11-24T09:30", "allow", "default"),
    ],
)
def test_example_decides_as_documented(
    example: Policy, url: str, at: str, action: str, rule: str
) -> None:
    """The example's rules, lists and default decide in the documented precedence."""
    index = ListIndex.from_entries(
        [("facebook.com", "social-networking"), ("bet365.com", "gambling")]
    )
    now = datetime.fromisoformat(at).replace(tzinfo=CHICAGO)
    decision = decide(example, index, Facts(url=parse_url(url)), now)
    assert (decision.action, decision.rule) == (action, rule)
