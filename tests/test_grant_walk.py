"""A grant relaxes only the rule it names (docs/policy-language.md, "Precedence").

The policy below is the shape of the issue's two examples: a site that is both adult and
messaging, and an agency whose messaging block sits after other granted rules. A holder of the
adult grant gets past the adult rule, and the messaging rule after it still applies.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from aupgate.categories.listindex import ListIndex
from aupgate.engine import Decision, Facts, decide
from aupgate.normalise import parse_url
from aupgate.policy.loader import load_policy
from aupgate.policy.model import Policy

CHICAGO = ZoneInfo("America/Chicago")
LUNCH = datetime(2026, 11, 24, 12, 15, tzinfo=CHICAGO)
WORK = datetime(2026, 11, 24, 9, 30, tzinfo=CHICAGO)
AFTER_EXPIRY = datetime(2027, 1, 4, 12, 15, tzinfo=CHICAGO)

POLICY = """\
agency: walk
name: Walk Agency
document: {title: Walk Policy, source: https://walk.example/policy}
contact: IT, 555-0100
timezone: America/Chicago
schedule:
  work_days: [mon, tue, wed, thu, fri]
  work_hours: "08:00-17:00"
  lunch: "12:00-13:00"
identity:
  groups:
    investigators: {description: HR investigators, members: [ivy]}
    testers: {description: security testers, members: [tess, ivy]}
clauses:
  explicit: {title: Explicit material, text: No explicit material.}
  messaging: {title: Messaging, text: No instant messaging.}
  security: {title: Security, text: Do not defeat security.}
  personal: {title: Personal use, text: Personal use at lunch only.}
  business: {title: Business, text: Business use.}
rules:
  - id: explicit
    clauses: [explicit]
    match: {categories: [adult]}
    action: block
    reason: Explicit material is prohibited.
  - id: security
    clauses: [security]
    match: {categories: [vpn-proxy]}
    action: block
    reason: Proxies are prohibited.
  - id: messaging
    clauses: [messaging]
    match: {categories: [instant-messaging]}
    action: block
    reason: Messaging is prohibited.
  - id: personal-work
    clauses: [personal]
    match: {categories: [social-networking], windows: [work]}
    action: warn
    reason: Personal use belongs at lunch.
  - id: personal-lunch
    clauses: [personal]
    match: {categories: [social-networking, adult], windows: [lunch]}
    action: allow
    reason: Personal use at lunch.
default: {action: allow, clauses: [business], reason: Business.}
grants:
  - id: investigation
    rules: [explicit]
    groups: [investigators]
    action: log
    approved_by: HR director
    reason: Investigating a complaint.
    expires: 2026-12-31
  - id: testing
    rules: [security]
    groups: [testers]
    action: allow
    approved_by: IT director
    reason: Testing the filter.
    expires: 2026-12-31
  - id: chat-pilot
    rules: [messaging]
    users: [mia]
    action: allow
    approved_by: IT director
    reason: Piloting a chat service.
    expires: 2026-12-31
"""

INDEX = ListIndex.from_entries(
    [
        ("adultchat.example", "adult"),
        ("adultchat.example", "instant-messaging"),
        ("proxychat.example", "vpn-proxy"),
        ("proxychat.example", "instant-messaging"),
        ("explicit.example", "adult"),
        ("proxy.example", "vpn-proxy"),
        ("chat.example", "instant-messaging"),
        ("social.example", "social-networking"),
        ("adultsocial.example", "adult"),
        ("adultsocial.example", "social-networking"),
        ("everything.example", "adult"),
        ("everything.example", "vpn-proxy"),
        ("everything.example", "instant-messaging"),
    ]
)


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    path = tmp_path_factory.mktemp("walk") / "walk.yaml"
    path.write_text(POLICY, encoding="utf-8")
    loaded, problems = load_policy(path, today=date(2026, 11, 24))
    assert [str(p) for p in problems] == []
    assert loaded is not None
    return loaded


def _decide(policy: Policy, url: str, user: str | None, now: datetime = LUNCH) -> Decision:
    return decide(policy, INDEX, Facts(url=parse_url(url), user=user), now)


@pytest.mark.parametrize(
    ("url", "user", "action", "rule", "step", "grant", "relaxed"),
    [
        # Adult and messaging: the investigator's grant relaxes the adult rule only.
        ("https://adultchat.example/", "ivy", "block", "messaging", "rule", None,
         (("explicit", "investigation"),)),
        # Without the grant the adult rule decides, as before.
        ("https://adultchat.example/", "bob", "block", "explicit", "rule", None, ()),
        # Only adult: the grant decides.
        ("https://explicit.example/", "ivy", "log", "explicit", "grant", "investigation", ()),
        # A holder of another grant (security testing) still meets the messaging block.
        ("https://proxychat.example/", "tess", "block", "messaging", "rule", None,
         (("security", "testing"),)),
        # Both rules relaxed for someone holding both grants... ivy holds investigation and
        # testing; proxychat is vpn-proxy and messaging: messaging still applies.
        ("https://proxychat.example/", "ivy", "block", "messaging", "rule", None,
         (("security", "testing"),)),
        # Every matching rule relaxed: the strictest relaxed one decides (log beats allow), not
        # the default.
        ("https://everything.example/", "ivy", "block", "messaging", "rule", None,
         (("explicit", "investigation"), ("security", "testing"))),
        # The later rule is milder than the relaxed one: the relaxed rule's log stands (a tie or
        # a milder later rule never loosens a relaxed decision below the grant's action).
        ("https://adultsocial.example/", "ivy", "log", "explicit", "grant", "investigation", ()),
        # The chat pilot's holder: messaging relaxed, nothing after it matches.
        ("https://chat.example/", "mia", "allow", "messaging", "grant", "chat-pilot", ()),
    ],
)
def test_a_grant_relaxes_only_the_rule_it_names(
    policy: Policy,
    url: str,
    user: str | None,
    action: str,
    rule: str,
    step: str,
    grant: str | None,
    relaxed: tuple[tuple[str, str], ...],
) -> None:
    decision = _decide(policy, url, user)
    assert (decision.action, decision.rule, decision.step, decision.grant, decision.relaxed) == (
        action, rule, step, grant, relaxed)


def test_every_matching_rule_relaxed_gives_the_strictest_grant(policy: Policy) -> None:
    """A site that is adult and a proxy, for a holder of both grants: log (the investigation)
    beats allow (the testing), and the default never decides a request a rule matched."""
    index = ListIndex.from_entries([("both.example", "adult"), ("both.example", "vpn-proxy")])
    decision = decide(policy, index, Facts(url=parse_url("https://both.example/"), user="ivy"),
                      LUNCH)
    assert (decision.action, decision.rule, decision.grant) == ("log", "explicit",
                                                                 "investigation")


def test_expired_grants_relax_nothing(policy: Policy) -> None:
    decision = _decide(policy, "https://explicit.example/", "ivy", AFTER_EXPIRY)
    assert (decision.action, decision.rule, decision.step) == ("block", "explicit", "rule")


def test_the_memo_is_sound_across_holders(policy: Policy) -> None:
    """The engine remembers the matching rules per set of facts, not per grant holder: asking
    for a holder, a non-holder and a holder of another grant in any order gives each their own
    answer."""
    urls = ["https://adultchat.example/", "https://proxychat.example/",
            "https://explicit.example/", "https://chat.example/"]
    users = ["ivy", "bob", "tess", "mia", None]
    first = {(u, w): _decide(policy, u, w) for u in urls for w in users}
    policy.memo.clear()
    for u in reversed(urls):
        for w in reversed(users):
            assert _decide(policy, u, w) == first[(u, w)]
    again = {(u, w): _decide(policy, u, w) for u in urls for w in users}
    assert again == first


def test_relaxed_rules_are_in_the_json(policy: Policy) -> None:
    decision = _decide(policy, "https://adultchat.example/", "ivy")
    assert decision.to_json()["relaxed"] == [{"rule": "explicit", "grant": "investigation"}]
