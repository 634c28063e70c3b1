"""Policies with a directory: the `directory:` and `kerberos:` sections read through the loader
(every problem located), policy groups naming directory groups by name or DN, and the engine
deciding rules and grants on the groups a login brings."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aupgate.categories.listindex import ListIndex
from aupgate.directory import Group as DirectoryGroup
from aupgate.directory.membership import membership_keys, reference_key
from aupgate.engine import Facts, decide
from aupgate.identity import identify
from aupgate.normalise import parse_url
from aupgate.policy.model import Policy, PolicySet
from test_policy_validation import SECTIONS, load, marked_line, policy_text

DIRECTORY = """\
directory:
  url: [ldaps://dc1.test.gov.example, ldaps://dc2.test.gov.example:3269]
  bind_dn: "CN=svc-aupgate,OU=Service Accounts,DC=test,DC=gov"
  bind_password_file: /etc/aupgate/directory-password
  base: "DC=test,DC=gov"
  user_filter: "(&(objectClass=user)(sAMAccountName={user}))"
  user_name_attribute: sAMAccountName
  realm: Test Agency internet gateway
  on_unavailable: grace
  grace_period: 2h
kerberos:
  keytab: /etc/aupgate/proxy.keytab
  service_principal: HTTP/proxy.test.gov.example@TEST.GOV
  realms: {TEST.GOV: "{user}"}
"""

GROUPS = """\
    social-team:
      description: Staff who post for the agency
      directory:
        - Social Media Team
        - "CN=Press Office,OU=Groups,DC=test,DC=gov"
    budget:
      description: A group whose name has a comma
      directory: ["CN=Finance\\\\, Budget,OU=Groups,DC=test,DC=gov"]
"""

SOCIAL_RULES = """\
  - id: social-team-at-work
    clauses: [social]
    match:
      categories: [social-networking]
      groups: [social-team]
    action: allow
    reason: The social media team posts for the agency.
  - id: social-work
    clauses: [social]
    match:
      categories: [social-networking]
    action: block
    reason: Social networking is for personal time.
"""

GRANTS = """\
grants:
  - id: budget-gambling-research
    rules: [no-gambling]
    groups: [budget]
    action: log
    approved_by: Director, memo 12
    reason: Auditing lottery revenue.
    expires: 2027-01-31
"""

CHICAGO = ZoneInfo("America/Chicago")
WORK_TIME = datetime(2026, 11, 24, 10, 30, tzinfo=CHICAGO)
INDEX = ListIndex.from_entries([("facebook.com", "social-networking"), ("bet365.com", "gambling")])


def directory_policy(**sections: str) -> str:
    return policy_text(identity=SECTIONS["identity"] + GROUPS, extra=DIRECTORY + GRANTS,
                       more_rules=SOCIAL_RULES, **sections)


def group(name: str, dn: str, source: str = "memberOf") -> DirectoryGroup:
    return DirectoryGroup(dn, name, source)  # type: ignore[arg-type]


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    loaded, problems, _ = load(tmp_path, directory_policy())
    assert problems == []
    assert loaded is not None
    return loaded


def test_the_sections_load(policy: Policy) -> None:
    assert policy.directory is not None and policy.kerberos is not None
    assert policy.directory.urls == ("ldaps://dc1.test.gov.example",
                                     "ldaps://dc2.test.gov.example:3269")
    assert policy.directory.realm == "Test Agency internet gateway"
    assert policy.directory.on_unavailable == "grace"
    assert policy.directory.grace_period == 7200
    assert dict(policy.kerberos.realms) == {"TEST.GOV": "{user}"}
    assert policy.groups["social-team"].directory == (
        "Social Media Team", "CN=Press Office,OU=Groups,DC=test,DC=gov")


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize(("name", "dn", "member"), [
    ("Social Media Team", "CN=Social Media Team,OU=Groups,DC=test,DC=gov", True),
    ("SOCIAL MEDIA TEAM", "cn=x,dc=test,dc=gov", True),  # a name compares without case
    ("social media  team", "cn=y,dc=test,dc=gov", False),  # inner spaces count
    ("Press", "cn=press office, ou=groups, dc=TEST, dc=gov", True),  # a DN, spelled otherwise
    ("Press Office", "CN=Press Office,OU=Other,DC=test,DC=gov", False),  # same cn, other OU
    ("Social Media", "CN=Social Media,OU=Groups,DC=test,DC=gov", False),
])
def test_directory_groups_by_name_and_by_dn(policy: Policy, name: str, dn: str,
                                            member: bool) -> None:
    keys = membership_keys([group(name, dn)])
    assert ("social-team" in policy.groups_of("someone", keys)) is member


@pytest.mark.parametrize(("dn", "member"), [
    ("CN=Finance\\, Budget,OU=Groups,DC=test,DC=gov", True),
    ("cn=finance\\2c budget,ou=groups,dc=test,dc=gov", True),  # hex escape, other case
    ("CN=Finance,CN=Budget,OU=Groups,DC=test,DC=gov", False),  # a separator, not a comma
])
def test_an_escaped_comma_is_not_a_separator(policy: Policy, dn: str, member: bool) -> None:
    keys = membership_keys([group("Finance, Budget", dn)])
    assert ("budget" in policy.groups_of("someone", keys)) is member


def test_members_and_directory_groups_add_up(policy: Policy) -> None:
    keys = membership_keys([group("Social Media Team", "cn=s,dc=test,dc=gov")])
    assert policy.groups_of("jdoe") == {"comms"}
    assert policy.groups_of("jdoe", keys) == {"comms", "social-team"}
    assert policy.groups_of(None, keys) == {"social-team"}
    assert policy.groups_of("jdoe", membership_keys([])) == {"comms"}


def test_group_sources_say_where_each_group_came_from(policy: Policy) -> None:
    keys = membership_keys([group("Press Office", "CN=Press Office,OU=Groups,DC=test,DC=gov"),
                            group("Social Media Team", "cn=smt,dc=test,dc=gov", "nested")])
    assert policy.group_sources("jdoe", keys) == {
        "comms": ["members"],
        "social-team": ["Social Media Team", "CN=Press Office,OU=Groups,DC=test,DC=gov"],
    }


def test_a_reference_key_is_the_key_of_the_group(policy: Policy) -> None:
    assert reference_key(" Social Media Team ") == reference_key("social media team")
    assert reference_key("CN=A,DC=b") == reference_key("cn=a, dc=B")
    assert reference_key("CN=A,DC=b") != reference_key("cn=a")


# --------------------------------------------------------------------------- deciding


def decide_for(policy: Policy, url: str, user: str | None,
               groups: list[DirectoryGroup]) -> tuple[str, str, str | None]:
    ident = identify(PolicySet({policy.agency: policy}), None, user, agency=policy.agency,
                     directory_groups=membership_keys(groups))
    facts = Facts(url=parse_url(url), user=ident.user, directory_groups=ident.directory_groups)
    decision = decide(policy, INDEX, facts, WORK_TIME)
    return decision.action, decision.rule, decision.grant


def test_a_rule_matches_a_directory_group(policy: Policy) -> None:
    team = [group("Social Media Team", "cn=smt,ou=groups,dc=test,dc=gov")]
    assert decide_for(policy, "https://www.facebook.com/", "asmith", team) == (
        "allow", "social-team-at-work", None)
    assert decide_for(policy, "https://www.facebook.com/", "asmith", []) == (
        "block", "social-work", None)


def test_a_grant_holds_for_a_directory_group(policy: Policy) -> None:
    budget = [group("Finance, Budget", "CN=Finance\\, Budget,OU=Groups,DC=test,DC=gov")]
    assert decide_for(policy, "https://www.bet365.com/", "zoe", budget) == (
        "log", "no-gambling", "budget-gambling-research")
    assert decide_for(policy, "https://www.bet365.com/", "zoe", []) == (
        "block", "no-gambling", None)


def test_the_same_user_with_other_groups_is_decided_again(policy: Policy) -> None:
    """The engine remembers rule selections by groups: a login whose groups changed (a new
    directory answer) must not get the old answer."""
    url = "https://www.facebook.com/"
    team = [group("Social Media Team", "cn=smt,ou=groups,dc=test,dc=gov")]
    for _ in range(2):
        assert decide_for(policy, url, "asmith", team)[0] == "allow"
        assert decide_for(policy, url, "asmith", [])[0] == "block"


# --------------------------------------------------------------------------- problems, located

CASES: list[tuple[str, str, str, str]] = [
    ("unknown-directory-key",
     directory_policy().replace("  realm: Test", "  relm: Test  # <-\n  realm: Test"),
     "directory.relm", "unknown key (expected one of:"),
    ("bad-url",
     directory_policy().replace("ldaps://dc1.test.gov.example,", "http://dc1.test.gov,  # <-\n   "),
     "directory.url[0]", "'http://dc1.test.gov' is not an ldap:// or ldaps:// URL"),
    ("filter-without-user",
     directory_policy().replace('"(&(objectClass=user)(sAMAccountName={user}))"',
                                '"(objectClass=user)"  # <-'),
     "directory.user_filter", "uses no placeholder"),
    ("grace-without-period",
     directory_policy().replace("  on_unavailable: grace\n  grace_period: 2h\n",
                                "  on_unavailable: grace  # <-\n"),
     "directory.grace_period", "required (and above zero) with on_unavailable: grace"),
    ("directory-not-a-mapping",
     policy_text(extra="directory: ldaps://dc1  # <-\n"),
     "directory", "expected a mapping, got text"),
    ("kerberos-without-directory",
     policy_text(extra="kerberos:  # <-\n" + DIRECTORY.split("kerberos:\n")[1]),
     "kerberos", "needs a directory: section"),
    ("kerberos-relative-keytab",
     directory_policy().replace("keytab: /etc/aupgate/proxy.keytab",
                                "keytab: proxy.keytab  # <-"),
     "kerberos.keytab", "'proxy.keytab' must be an absolute path"),
    ("directory-groups-without-directory",
     policy_text(identity=SECTIONS["identity"] + GROUPS.replace(
         "      directory:\n        - Social", "      directory:  # <-\n        - Social")),
     "identity.groups.social-team.directory", "this policy has no directory: section"),
    ("not-a-dn",
     directory_policy().replace('"CN=Press Office,OU=Groups,DC=test,DC=gov"',
                                '"CN=Press Office,,=x"  # <-'),
     "identity.groups.social-team.directory[1]", "is not a distinguished name"),
    ("same-group-twice",
     directory_policy().replace('        - Social Media Team\n',
                                '        - Social Media Team\n        - social media team  # <-\n'),
     "identity.groups.social-team.directory[1]", "names the same directory group as"),
    ("same-dn-twice",
     directory_policy().replace(
         '        - "CN=Press Office,OU=Groups,DC=test,DC=gov"\n',
         '        - "CN=Press Office,OU=Groups,DC=test,DC=gov"\n'
         '        - "cn=press office, ou=groups, dc=test, dc=gov"  # <-\n'),
     "identity.groups.social-team.directory[2]", "names the same directory group as"),
    ("empty-directory-list",
     directory_policy().replace('directory: ["CN=Finance\\\\, Budget,OU=Groups,DC=test,DC=gov"]',
                                "directory: []  # <-"),
     "identity.groups.budget.directory", "must list at least one directory group"),
]


@pytest.mark.parametrize(("text", "field", "message"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_problem_is_located(tmp_path: Path, text: str, field: str, message: str) -> None:
    policy, problems, path = load(tmp_path, text)
    assert policy is None
    line = marked_line(text)
    expected = f"{path}:{line}: {field}: "
    assert any(p.startswith(expected) and message in p for p in problems), (expected, problems)


def test_plain_ldap_to_another_host_is_a_warning(tmp_path: Path) -> None:
    text = directory_policy().replace(
        "  url: [ldaps://dc1.test.gov.example, ldaps://dc2.test.gov.example:3269]",
        "  url: [ldap://dc1.test.gov.example, ldap://127.0.0.1:3890]  # <-")
    policy, problems, path = load(tmp_path, text)
    assert policy is not None  # a warning: the policy is used
    assert problems == [f"{path}:{marked_line(text)}: directory.url: warning: "
                        "ldap://dc1.test.gov.example without start_tls: passwords cross the "
                        "network unencrypted (use ldaps:// or start_tls: true)"]
    with_tls = text.replace("  realm: Test", "  start_tls: true\n  realm: Test")
    assert load(tmp_path, with_tls)[1] == []
