"""Validation of the sections about what a request does and what the gateway adds to it
(`tenants`, `safe_search`, `publishing`, `direction` in rules) and of holidays by rule: every
mistake is one located problem, `FILE:LINE: FIELD: message`, at the line marked `# <-`.

The base policy and helpers are tests/test_policy_validation.py's.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from test_policy_validation import SECTIONS, load, marked_line, policy_text

SCHEDULE = SECTIONS["schedule"].replace("  window_sets:", "{holidays}  window_sets:")
"""The base schedule with a place for a `holidays` block."""

CASES: list[tuple[str, dict[str, str], str, str]] = [
    (
        "tenants-context-not-a-guid",
        {"extra": """\
tenants:
  clauses: [general]
  microsoft:
    allow: [agency.example]
    context: agency.example  # <-
"""},
        "tenants.microsoft.context",
        "'agency.example' is not a directory (tenant) ID: xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    ),
    (
        "tenants-domain-with-a-comma",
        {"extra": """\
tenants:
  clauses: [general]
  google:
    allow: ["agency.example,evil.example"]  # <-
"""},
        "tenants.google.allow[0]",
        "'agency.example,evil.example' is not a domain",
    ),
    (
        "tenants-without-clauses",
        {"extra": """\
tenants:  # <-
  google:
    allow: [agency.example]
"""},
        "tenants",
        "missing required key 'clauses'",
    ),
    (
        "tenants-with-empty-clauses",
        {"extra": """\
tenants:
  clauses: []  # <-
  google:
    allow: [agency.example]
"""},
        "tenants.clauses",
        "must cite the clauses it enforces",
    ),
    (
        "safe-search-citing-an-unknown-clause",
        {"extra": """\
safe_search:
  clauses: [explicit]  # <-
"""},
        "safe_search.clauses",
        "cites unknown clause 'explicit'",
    ),
    (
        "tenants-unknown-provider",
        {"extra": """\
tenants:
  clauses: [general]
  google:
    allow: [agency.example]
  okta:  # <-
    allow: [agency.example]
"""},
        "tenants.okta",
        "unknown key",
    ),
    (
        "tenants-consumer-flag-not-boolean",
        {"extra": """\
tenants:
  clauses: [general]
  microsoft:
    allow: [agency.example]
    context: 72f988bf-86f1-41af-91ab-2d7cd011db47
    block_consumer_accounts: yes please  # <-
"""},
        "tenants.microsoft.block_consumer_accounts",
        "expected true or false, got 'yes please'",
    ),
    (
        "safe-search-unknown-youtube-mode",
        {"extra": """\
safe_search:
  clauses: [general]
  youtube: strictest  # <-
"""},
        "safe_search.youtube",
        "expected strict, moderate or off, got 'strictest'",
    ),
    (
        "safe-search-that-forces-nothing",
        {"extra": """\
safe_search:  # <-
  clauses: [general]
  search: "off"
  youtube: "off"
"""},
        "safe_search",
        "forces nothing: remove the section",
    ),
    (
        "publishing-remove-unknown-service",
        {"extra": """\
publishing:
  remove: [Pastebinn]  # <-
"""},
        "publishing.remove[0]",
        "no shipped publishing service is called 'Pastebinn' (did you mean 'Pastebin'?)",
    ),
    (
        "publishing-bad-method",
        {"extra": """\
publishing:
  add:
    - service: Portal
      urls: [portal.example/upload]
      methods: [POST, DELETE]  # <-
"""},
        "publishing.add[0].methods[1]",
        "unknown method 'DELETE'",
    ),
    (
        "rule-unknown-direction",
        {"more_rules": """\
  - id: no-posting
    clauses: [general]
    match:
      direction: [download]  # <-
    action: block
    reason: No posting.
"""},
        "rules[2].match.direction[0]",
        "unknown direction 'download'",
    ),
    (
        "holidays-unknown-subdivision",
        {"schedule": SCHEDULE.format(holidays="""\
  holidays:
    calendar: US-XX  # <-
""")},
        "schedule.holidays.calendar",
        "unknown subdivision 'XX' of US",
    ),
    (
        "holidays-bad-rule",
        {"schedule": SCHEDULE.format(holidays="""\
  holidays:
    calendar: US-MO
    add:
      - {name: Founders Day, when: feb 30}  # <-
""")},
        "schedule.holidays.add[0].when",
        "'feb 30': no day 30 in February",
    ),
    (
        "holidays-remove-unknown-name",
        {"schedule": SCHEDULE.format(holidays="""\
  holidays:
    calendar: US-MN
    remove: [Columbus Day]  # <-
""")},
        "schedule.holidays.remove[0]",
        "US-MN has no holiday named 'Columbus Day'",
    ),
]


@pytest.mark.parametrize(("sections", "field", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_one_problem_located(tmp_path: Path, sections: dict[str, str], field: str,
                             message: str) -> None:
    text = policy_text(**sections)
    policy, problems, path = load(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems == [f"{path}:{marked_line(text)}: {field}: {message}"]
    assert policy is None


def test_listed_holidays_running_out_is_a_warning(tmp_path: Path) -> None:
    """`check` warns when listed dates end within a year (the policy still loads); a calendar
    by rule never runs out."""
    listed = policy_text(schedule=SCHEDULE.format(holidays="""\
  holidays: [2026-12-25, 2027-01-01]  # <-
"""))
    policy, problems, path = load(tmp_path, listed)
    assert policy is not None and problems == [
        f"{path}:{marked_line(listed)}: schedule.holidays: warning: the listed holidays end on "
        "2027-01-01: after it no day is a holiday. Give a calendar (holidays by rule, e.g. "
        "calendar: US-MO) or list the next year's dates"]
    by_rule = policy_text(schedule=SCHEDULE.format(holidays="""\
  holidays:
    calendar: US-MO
    dates: [2026-12-24]
"""))
    policy, problems, _ = load(tmp_path, by_rule)
    assert problems == [] and policy is not None
    assert date(2041, 11, 28) in policy.schedule.holidays  # Thanksgiving 2041
    assert date(2026, 12, 24) in policy.schedule.holidays
    assert date(2027, 12, 24) in policy.schedule.holidays  # Christmas 2027, observed
    assert date(2041, 11, 29) not in policy.schedule.holidays


def test_the_sections_load_into_the_model(tmp_path: Path) -> None:
    text = policy_text(extra="""\
tenants:
  clauses: [general]
  microsoft:
    allow: [Agency.Example, 72F988BF-86F1-41AF-91AB-2D7CD011DB47]
    context: 72F988BF-86F1-41AF-91AB-2D7CD011DB47
safe_search:
  clauses: [general]
  youtube: moderate
publishing:
  add:
    - service: Portal
      urls: [portal.example/upload]
  remove: [Pastebin]
""")
    policy, problems, _ = load(tmp_path, text)
    assert problems == [] and policy is not None
    tenants = policy.controls.tenants
    assert tenants is not None
    assert tenants.microsoft_tenants == ("agency.example", "72f988bf-86f1-41af-91ab-2d7cd011db47")
    assert tenants.microsoft_context == "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert not tenants.microsoft_consumer_block and tenants.google_domains == ()
    assert policy.controls.safe_search is not None
    assert policy.controls.safe_search.youtube == "moderate"
    assert "Portal" in policy.publishing.services()
    assert "Pastebin" not in policy.publishing.services()
    assert policy.publishing.service_for("portal.example", "/upload/x", "POST") == "Portal"
    assert policy.publishing.service_for("pastebin.com", "/", "POST") is None
    assert policy.enforcing("general")[-2:] == ("tenants", "safe_search")
