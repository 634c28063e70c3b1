"""Lint (aupgate.policy.lint): dead rules, rule entries that never take effect, and allow-list
entries that contradict a block rule; every report names file, line and field.

The policies are the strict-validation base policy (tests/test_policy_validation.py) with rules
added; the category index is a small one built in the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aupgate.categories.listindex import ListIndex
from aupgate.cli import main
from aupgate.policy.lint import lint_with_index
from aupgate.policy.model import Policy
from aupgate.yamlsource import load_yaml
from test_policy_validation import SECTIONS, load, marked_line, policy_text

INDEX = ListIndex.from_entries(
    [
        ("bet365.com", "gambling"),
        ("chat.example", "instant-messaging"),
        ("mail.example", "webmail"),
        ("social.example", "social-networking"),
    ]
)

CLAUSES = SECTIONS["clauses"] + """\
  messaging:
    title: Messaging
    text: No messengers.
"""


def lint(tmp_path: Path, text: str) -> tuple[list[str], Path]:
    policy, problems, path = load(tmp_path, text)
    assert problems == [], problems
    assert isinstance(policy, Policy)
    top = load_yaml(path)
    return [str(p) for p in lint_with_index(policy, top, INDEX)], path


# --------------------------------------------------------------------------- dead rules


def test_a_rule_covered_by_several_earlier_rules_is_reported(tmp_path: Path) -> None:
    """Personal-time, work and break rules together cover a rule for every window: this schedule
    has no other window (no holidays), so it can never match."""
    text = policy_text(more_rules="""\
  - id: social-work  # <-a
    clauses: [social]
    match:
      categories: [social-networking]
      windows: [work]
    action: warn
    reason: Work.
  - id: social-break  # <-b
    clauses: [social]
    match:
      categories: [social-networking]
      windows: [break]
    action: allow
    reason: Break.
  - id: social-any
    clauses: [social]
    match:  # <-
      categories: [social-networking]
    action: log
    reason: Never reached.
""")
    policy, problems, path = load(tmp_path, text)
    assert policy is None
    a, b = marked_line(text, "# <-a"), marked_line(text, "# <-b")
    first = marked_line(text, "  - id: social-personal")
    assert problems == [
        f"{path}:{marked_line(text)}: rules[4].match: can never match: rules 'social-personal' "
        f"(line {first}), 'social-work' (line {a}), 'social-break' (line {b}) come first and "
        "together cover every request this rule covers"
    ]


def test_union_over_categories_and_groups(tmp_path: Path) -> None:
    """Two category rules cover a rule naming both categories; a rule for two groups is covered
    by one rule per group."""
    text = policy_text(more_rules="""\
  - id: games
    clauses: [social]
    match: {categories: [games]}
    action: block
    reason: Games.
  - id: both
    clauses: [social]
    match:  # <-
      categories: [games, gambling]
    action: block
    reason: Both.
""")
    _, problems, path = load(tmp_path, text)
    assert problems == [
        f"{path}:{marked_line(text)}: rules[3].match: can never match: rules 'no-gambling' "
        f"(line {marked_line(policy_text(), '  - id: no-gambling')}), 'games' (line "
        f"{marked_line(text, '  - id: games')}) come first and together cover every request "
        "this rule covers"
    ]


def test_a_rule_that_a_grant_names_covers_nothing(tmp_path: Path) -> None:
    """A grant's holders walk on past the rule it names, so the rules after it are reachable."""
    text = policy_text(
        more_rules="""\
  - id: gambling-log
    clauses: [gambling]
    match: {categories: [gambling]}
    action: log
    reason: Reached by the grant's holders.
""",
        extra="""\
grants:
  - id: analysts
    rules: [no-gambling]
    users: [ann]
    approved_by: Director
    reason: Research.
    expires: 2099-01-01
""",
    )
    policy, problems, _ = load(tmp_path, text)
    assert problems == []
    assert policy is not None


def test_a_partial_union_is_fine(tmp_path: Path) -> None:
    text = policy_text(more_rules="""\
  - id: social-work
    clauses: [social]
    match: {categories: [social-networking], windows: [work]}
    action: warn
    reason: Work.
  - id: social-rest
    clauses: [social]
    match: {categories: [social-networking]}
    action: log
    reason: The break is left.
""")
    policy, problems, _ = load(tmp_path, text)
    assert problems == []
    assert policy is not None


# --------------------------------------------------------------------------- hidden entries


def test_a_domain_hidden_by_an_earlier_category_rule(tmp_path: Path) -> None:
    text = policy_text(more_rules="""\
  - id: bet365-at-lunch
    clauses: [gambling]
    match:
      domains:
        - example.org
        - bet365.com  # <-
      windows: [lunch]
    action: allow
    reason: Never reached for bet365.com.
""")
    problems, path = lint(tmp_path, text)
    first = marked_line(text, "  - id: no-gambling")
    assert problems == [
        f"{path}:{marked_line(text)}: rules[2].match.domains[1]: warning: 'bet365.com' is listed "
        f"as gambling, so rule 'no-gambling' (line {first}), which comes first with the same or "
        "broader conditions, decides it: this entry never takes effect for it"
    ]


def test_a_domain_before_the_category_rule_is_fine(tmp_path: Path) -> None:
    rules = SECTIONS["rules"].replace("rules:\n", """\
rules:
  - id: bet365-at-lunch
    clauses: [gambling]
    match: {domains: [bet365.com], windows: [lunch]}
    action: log
    reason: An exception, before the prohibition.
""")
    problems, _ = lint(tmp_path, policy_text(rules=rules))
    assert problems == []


def test_a_narrower_category_rule_hides_nothing(tmp_path: Path) -> None:
    """social-personal holds only in personal time; a rule for social.example at work is live."""
    problems, _ = lint(tmp_path, policy_text(more_rules="""\
  - id: social-example-work
    clauses: [social]
    match: {urls: [social.example/groups], windows: [work]}
    action: warn
    reason: Work.
"""))
    assert problems == []


def test_a_url_rule_hidden_by_the_deny_list(tmp_path: Path) -> None:
    text = policy_text(
        more_rules="""\
  - id: forum
    clauses: [social]
    match:
      urls:
        - bad.example/forum  # <-
    action: log
    reason: Never reached.
""",
        extra="""\
deny:
  domains: [bad.example]
  clauses: [general]
  reason: Denied.
""",
    )
    problems, path = lint(tmp_path, text)
    assert problems == [
        f"{path}:{marked_line(text)}: rules[2].match.urls[0]: warning: 'bad.example/forum' is on "
        "the deny list, which comes before every rule: this entry never takes effect"
    ]


# --------------------------------------------------------------------------- the allow list

ALLOW_RULES = """\
  - id: messengers
    clauses: [messaging]
    match: {categories: [instant-messaging]}
    action: block
    reason: No messengers.
  - id: named
    clauses: [social]
    match: {domains: [social.example]}
    action: block
    reason: Blocked by name.
  - id: webmail-work
    clauses: [social]
    match: {categories: [webmail], windows: [work]}
    action: block
    reason: Only at work.
"""


def test_allow_list_entries_that_contradict_a_block_rule(tmp_path: Path) -> None:
    text = policy_text(clauses=CLAUSES, more_rules=ALLOW_RULES, extra="""\
allow:
  domains:
    - chat.example  # <-cat
    - www.social.example
    - social.example  # <-name
    - mail.example
    - bet365.com  # <-gambling
  reason: Our own services.
""")
    problems, path = lint(tmp_path, text)
    messengers = marked_line(text, "  - id: messengers")
    named = marked_line(text, "  - id: named")
    first = marked_line(text, "  - id: no-gambling")
    assert problems == [
        f"{path}:{marked_line(text, '# <-cat')}: allow.domains[0]: warning: 'chat.example' is "
        f"listed as instant-messaging, which block rule 'messengers' (line {messengers}) "
        "prohibits at all times for everyone; the allow list comes first, so the prohibition "
        "never applies to it (name the rule in allow.overrides if that is the intent)",
        # www.social.example is carved out of the blocked domain: an exception, not reported
        f"{path}:{marked_line(text, '# <-name')}: allow.domains[2]: warning: 'social.example' is "
        f"on the allow list, which comes before every rule, but block rule 'named' (line "
        f"{named}) names it: the block never applies to it",
        # mail.example: the webmail block holds only at work, the allow list is its exception
        f"{path}:{marked_line(text, '# <-gambling')}: allow.domains[4]: warning: 'bet365.com' is "
        f"listed as gambling, which block rule 'no-gambling' (line {first}) prohibits at all "
        "times for everyone; the allow list comes first, so the prohibition never applies to it "
        "(name the rule in allow.overrides if that is the intent)",
    ]


def test_allow_overrides_declare_the_intent(tmp_path: Path) -> None:
    text = policy_text(clauses=CLAUSES, more_rules=ALLOW_RULES, extra="""\
allow:
  domains: [chat.example]
  reason: Our own messenger.
  overrides:
    - messengers
    - no-gambling  # <-
""")
    problems, path = lint(tmp_path, text)
    assert problems == [
        f"{path}:{marked_line(text)}: allow.overrides[1]: warning: no allow-list entry is in a "
        "category rule 'no-gambling' blocks: nothing to override"
    ]


def test_allow_overrides_name_rules(tmp_path: Path) -> None:
    text = policy_text(extra="""\
allow:
  domains: [chat.example]
  reason: Our own messenger.
  overrides:
    - no-gamblng  # <-
""")
    _, problems, path = load(tmp_path, text)
    assert problems == [
        f"{path}:{marked_line(text)}: allow.overrides[0]: unknown rule 'no-gamblng' (did you "
        "mean 'no-gambling'?)"
    ]


def test_check_prints_the_lint_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`aupgate check` runs the index checks against the real lists and exits 1 on a warning."""
    policies = tmp_path / "policies"
    policies.mkdir()
    categories = Path(__file__).parent / "fixtures" / "core" / "categories" / "sources.yaml"
    text = policy_text(extra="allow:\n  domains:\n    - bet365.com  # <-\n  reason: Oops.\n")
    (policies / "testgov.yaml").write_text(text, encoding="utf-8")
    code = main(["check", "--policy-dir", str(policies), "--categories", str(categories),
                 "--at", "2026-11-23"])
    out = capsys.readouterr().out
    assert code == 1
    assert (f"{policies / 'testgov.yaml'}:{marked_line(text)}: allow.domains[0]: warning: "
            "'bet365.com' is listed as gambling") in out
