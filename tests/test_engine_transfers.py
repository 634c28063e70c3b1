"""The engine on what a request carries: direction (read, upload, publish), the allow list
deciding the site but not the transfer, and a transfer rule never hidden by a site rule.

A small policy in the language itself (tests/test_policy_validation.py's base, plus rules), and
an index of two entries.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aupgate.categories.listindex import ListIndex
from aupgate.engine import Facts, decide, decide_content
from aupgate.normalise import parse_url
from aupgate.policy.model import Policy
from test_policy_validation import load, policy_text

WORK = datetime(2026, 11, 24, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
INDEX = ListIndex.from_entries([("facebook.com", "social-networking"),
                                ("bet365.com", "gambling")])

RULES = """\
  - id: no-publishing
    clauses: [general]
    match:
      direction: [publish]
    action: block
    reason: Publishing needs approval.
  - id: no-program-uploads
    clauses: [general]
    match:
      content: [executable]
      direction: [upload]
    action: block
    reason: Programs are not sent out.
  - id: no-programs
    clauses: [general]
    match:
      content: [executable]
    action: block
    reason: No programs.
  - id: big
    clauses: [general]
    match:
      content: [large-transfer]
    action: warn
    reason: Large transfers need a reason.
"""
ALLOW = """\
limits:
  transfer_mb: 1
allow:
  domains: [intranet.example, pastebin.com]
  reason: Ours.
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    loaded, problems, _ = load(tmp_path_factory.mktemp("p"),
                               policy_text(more_rules=RULES, extra=ALLOW))
    assert problems == [] and loaded is not None
    return loaded


def facts(url: str, method: str = "GET", sends: bool = False,
          kinds: frozenset[str] = frozenset()) -> Facts:
    return Facts(url=parse_url(url), method=method, sends_body=sends, kinds=kinds)


@pytest.mark.parametrize(
    ("url", "method", "sends", "kinds", "rule", "direction"),
    [
        ("https://graph.facebook.com/me/feed", "POST", True, (), "no-publishing", "publish"),
        ("https://graph.facebook.com/me/feed", "GET", False, (), "default", "read"),
        ("https://example.org/form", "POST", True, (), "default", "upload"),
        # upload includes publish: a program posted to a paste site is both
        ("https://example.org/form", "POST", True, ("executable",), "no-program-uploads",
         "upload"),
        ("https://example.org/form", "POST", True, ("large-transfer",), "big", "upload"),
        # the allow list decides the site, not the transfer
        ("https://intranet.example/form", "POST", True, ("executable",), "no-program-uploads",
         "upload"),
        ("https://intranet.example/form", "POST", True, ("large-transfer",), "big", "upload"),
        ("https://intranet.example/form", "POST", True, (), "allow-list", "upload"),
        ("https://intranet.example/", "GET", False, (), "allow-list", "read"),
        # an allow-listed paste site: publishing is a transfer rule, judged there too
        ("https://pastebin.com/", "POST", True, (), "no-publishing", "publish"),
        ("https://pastebin.com/raw/x", "GET", False, (), "allow-list", "read"),
    ],
)
def test_request_time(policy: Policy, url: str, method: str, sends: bool,
                      kinds: tuple[str, ...], rule: str, direction: str) -> None:
    decision = decide(policy, INDEX, facts(url, method, sends, frozenset(kinds)), WORK)
    assert (decision.rule, decision.direction) == (rule, direction)


def test_response_content_on_an_allow_listed_site(policy: Policy) -> None:
    """An installer downloaded from an allow-listed host is still software."""
    decision = decide_content(policy, INDEX, facts("https://intranet.example/setup"),
                              frozenset({"executable"}), WORK)
    assert decision is not None and decision.rule == "no-programs"
    assert decide_content(policy, INDEX, facts("https://intranet.example/page"),
                          frozenset(), WORK) is None


def test_a_site_rule_never_covers_a_transfer_rule(tmp_path: Path) -> None:
    """`no-gambling` comes first and matches every request to a gambling site; a later rule
    about uploads to it is not reported as unreachable: on an allow-listed site only the
    transfer rules are walked, and there it decides."""
    more = RULES + """\
  - id: gambling-uploads
    clauses: [gambling]
    match:
      categories: [gambling]
      direction: [upload]
    action: block
    reason: No.
"""
    _, problems, _ = load(tmp_path, policy_text(more_rules=more, extra=ALLOW))
    assert problems == []
