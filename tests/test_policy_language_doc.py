"""The complete example in docs/policy-language.md is a valid policy and decides as it says."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

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
    assert example.grants and example.budgets and example.allow and example.deny
    assert example.never_decrypt
    assert example.pac is not None and example.transfer_limit_bytes == 500 * 1024 * 1024
    assert example.schedule.holidays.by_rule and example.controls.tenants is not None
    assert example.controls.safe_search is not None
    assert "Partner data portal" in example.publishing.services()
    assert example.directory is not None and example.kerberos is not None
    assert example.groups["communications"].directory == ("Communications Office",)


def test_every_yaml_block_that_is_a_policy_fragment_loads(tmp_path: Path) -> None:
    """The fragments of the directory sections (Directory groups, Directory logins), put into
    the complete example, load without a problem."""
    text = DOC.read_text(encoding="utf-8")
    complete = re.search(r"```yaml\n(.*?)```", text.split("## A complete example", 1)[1],
                         re.DOTALL)
    assert complete is not None
    base = complete.group(1)
    for heading in ("### Directory groups", "## Directory logins"):
        fragment = re.search(r"```yaml\n(.*?)```", text.split(heading, 1)[1], re.DOTALL)
        assert fragment is not None, heading
        merged = _merge(base, fragment.group(1))
        path = tmp_path / "example-agency.yaml"
        path.write_text(merged, encoding="utf-8")
        policy, problems = load_policy(path, today=date(2026, 11, 22))
        assert [str(p) for p in problems] == [], heading
        assert policy is not None


def _merge(base: str, fragment: str) -> str:
    """The base policy with the fragment's top-level sections replacing its own."""
    data = yaml.safe_load(base)
    for key, value in yaml.safe_load(fragment).items():
        if key == "identity":
            data["identity"]["groups"].update(value["groups"])
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False)


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


SECTION_EXAMPLES = ("### Holidays by rule", "**Direction rules and uploads.**",
                    "## Publishing endpoints", "## Tenant restrictions", "## Safe search")


@pytest.mark.parametrize("heading", SECTION_EXAMPLES)
def test_section_examples_load(heading: str, tmp_path: Path) -> None:
    """Each new section's example, put in place of the same keys of the complete example, is a
    valid policy: the documented keys are the ones the loader accepts."""
    text = DOC.read_text(encoding="utf-8")
    complete = re.search(r"```yaml\n(.*?)```", text.split("## A complete example", 1)[1],
                         re.DOTALL)
    section = re.search(r"```yaml\n(.*?)```", text.split(heading, 1)[1], re.DOTALL)
    assert complete is not None and section is not None
    policy = yaml.safe_load(complete.group(1))
    for key, value in yaml.safe_load(section.group(1)).items():
        if key == "schedule":
            policy["schedule"].update(value)
        elif key == "rules":  # first, in place of the example's rules with the same match
            matches = [r["match"] for r in value]
            policy["rules"] = value + [r for r in policy["rules"] if r["match"] not in matches]
            ids = {r["id"] for r in policy["rules"]}
            for grant in policy["grants"]:
                grant["rules"] = [r for r in grant["rules"] if r in ids]
            policy["clauses"].update({c: {"title": c, "text": c} for r in value
                                      for c in r["clauses"]})
        else:
            policy[key] = value
            policy["clauses"].update({c: {"title": c, "text": c}
                                      for c in value.get("clauses", ())})
    path = tmp_path / "example-agency.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")
    loaded, problems = load_policy(path, today=date(2026, 11, 22))
    assert [str(p) for p in problems] == [] and loaded is not None
