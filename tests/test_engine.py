"""The engine's precedence (docs/policy-language.md): deny list, allow list, rules, default.

Decisions are made under `tests/fixtures/core/policies/alpha.yaml` with the tiny category index of
`tests/fixtures/core/categories/`, never the shipped data.
"""

from __future__ import annotations

import ipaddress
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aupgate.categories import CategoryIndex, load_index
from aupgate.engine import Decision, Facts, decide, decide_content, host_suffixes
from aupgate.normalise import parse_url
from aupgate.policy import Policy, PolicySet, load_policy_dir

CORE = Path(__file__).parent / "fixtures" / "core"
TODAY = date(2026, 11, 23)
CHICAGO = ZoneInfo("America/Chicago")


def at(text: str) -> datetime:
    """An agency-local (Chicago) time."""
    return datetime.fromisoformat(text).replace(tzinfo=CHICAGO)


# Monday 23 November 2026 unless said otherwise; Thursday the 26th is a holiday.
BEFORE = at("2026-11-23 07:30")
WORK = at("2026-11-23 09:00")
BREAK = at("2026-11-23 10:05")
LUNCH = at("2026-11-23 12:30")
AFTER = at("2026-11-23 18:00")
WEEKEND = at("2026-11-28 11:00")
HOLIDAY = at("2026-11-26 11:00")

HQ = "10.20.1.5"  # hq-wired, a state device
LAB = "10.20.5.9"  # hq-lab, inside hq-wired's /16
GUEST = "10.99.0.5"  # guest-wifi, a personal device


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policy_dir(CORE / "policies", today=TODAY)


@pytest.fixture(scope="module")
def alpha(policies: PolicySet) -> Policy:
    return policies.policies["alpha"]


@pytest.fixture(scope="module")
def index() -> CategoryIndex:
    loaded, report = load_index(CORE / "categories" / "sources.yaml")
    assert report.problems == ()
    return loaded


def facts(
    url: str, *, user: str | None = None, client: str | None = None, device: str | None = None
) -> Facts:
    return Facts(
        url=parse_url(url),
        user=user,
        client=ipaddress.ip_address(client) if client else None,
        device=device,
    )


def decide_alpha(
    alpha: Policy,
    index: CategoryIndex,
    url: str,
    now: datetime = WORK,
    *,
    user: str | None = None,
    client: str | None = None,
    device: str | None = None,
) -> Decision:
    return decide(alpha, index, facts(url, user=user, client=client, device=device), now)


def outcome(decision: Decision) -> tuple[str, str, str]:
    return decision.action, decision.step, decision.rule


# --------------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("url", "now", "who", "expected"),
    [
        # 1. The deny list beats everything: rules, allow-listed URLs, groups.
        ("http://malware.example/", WORK, {}, ("block", "deny-list", "deny-list")),
        ("https://www.malware.example/x", WORK, {}, ("block", "deny-list", "deny-list")),
        ("https://linkedin.com/jobs/123", WORK, {}, ("block", "deny-list", "deny-list")),
        ("linkedin.com", LUNCH, {"user": "jdoe"}, ("block", "deny-list", "deny-list")),
        # 2. The allow list beats the rules (a state device would be blocked on dropbox.com).
        (
            "https://dropbox.com/alpha-shared/survey.xlsx",
            WORK,
            {"client": HQ},
            ("allow", "allow-list", "allow-list"),
        ),
        (
            "https://dropbox.com/other",
            WORK,
            {"client": HQ},
            ("block", "rule", "file-hosting-state"),
        ),
        ("https://intranet.alpha.gov.example/", WORK, {}, ("allow", "allow-list", "allow-list")),
        (
            "https://alpha.gov.example/tools/setup.exe",
            WORK,
            {},
            ("allow", "allow-list", "allow-list"),
        ),
        # 3. The first matching rule in file order decides.
        ("https://facebook.com/", WORK, {"user": "jdoe"}, ("allow", "rule", "comms-social")),
        ("https://facebook.com/", WORK, {"user": "ASmith"}, ("allow", "rule", "comms-social")),
        ("https://facebook.com/", WORK, {"user": "bob"}, ("warn", "rule", "social-at-work")),
        ("https://facebook.com/", WORK, {}, ("warn", "rule", "social-at-work")),
        ("https://facebook.com/", BEFORE, {}, ("log", "rule", "social-personal-time")),
        ("https://facebook.com/", BREAK, {}, ("log", "rule", "social-personal-time")),
        ("https://facebook.com/", LUNCH, {}, ("log", "rule", "social-personal-time")),
        ("https://facebook.com/", AFTER, {}, ("log", "rule", "social-personal-time")),
        ("https://facebook.com/", WEEKEND, {}, ("log", "rule", "social-personal-time")),
        ("https://facebook.com/", HOLIDAY, {}, ("log", "rule", "social-personal-time")),
        ("https://www.bet365.com/", WORK, {}, ("block", "rule", "no-gambling")),
        ("https://www.bet365.com/", LUNCH, {}, ("block", "rule", "no-gambling")),
        # 4. The default when nothing matches.
        ("https://example.org/", AFTER, {}, ("allow", "default", "default")),
        ("https://example.org/", WEEKEND, {}, ("allow", "default", "default")),
    ],
)
def test_precedence(
    alpha: Policy,
    index: CategoryIndex,
    url: str,
    now: datetime,
    who: dict[str, str],
    expected: tuple[str, str, str],
) -> None:
    """Deny list, then allow list, then the first matching rule in file order, then the default."""
    decision = decide_alpha(alpha, index, url, now, **who)
    assert outcome(decision) == expected


def test_deny_and_default_cite_their_clauses(alpha: Policy, index: CategoryIndex) -> None:
    """The deny list and the default carry their own clauses and reasons."""
    denied = decide_alpha(alpha, index, "http://malware.example/")
    assert (denied.clauses, denied.reason) == (
        ("4",),
        "This site threatens the department's network.",
    )
    default = decide_alpha(alpha, index, "https://example.org/", AFTER)
    assert (default.clauses, default.reason) == (
        ("1",),
        "Nothing in the policy restricts this site.",
    )


# --------------------------------------------------------------------------- grants


@pytest.mark.parametrize(
    ("url", "who", "expected", "grant"),
    [
        # gis-dropbox relaxes file-hosting-state for the gis-team group.
        ("https://dropbox.com/f", {"user": "mlee", "client": HQ}, "log", "gis-dropbox"),
        ("https://dropbox.com/f", {"user": "MLee", "client": HQ}, "log", "gis-dropbox"),
        ("https://dropbox.com/f", {"user": "bob", "client": HQ}, "block", None),
        ("https://dropbox.com/f", {"client": HQ}, "block", None),
        # ... only that rule: mlee is still blocked from webmail in the lab.
        ("https://mail.yahoo.com/", {"user": "mlee", "client": LAB}, "block", None),
        # jdoe-lab-webmail relaxes lab-webmail for the user JDoe (named in any case).
        ("https://mail.yahoo.com/", {"user": "jdoe", "client": LAB}, "allow", "jdoe-lab-webmail"),
        ("https://mail.yahoo.com/", {"user": "JDOE", "client": LAB}, "allow", "jdoe-lab-webmail"),
        # ... only that rule: jdoe is not in gis-team, so dropbox stays blocked.
        ("https://dropbox.com/f", {"user": "jdoe", "client": HQ}, "block", None),
    ],
)
def test_grants_relax_only_their_rules_for_their_people(
    alpha: Policy,
    index: CategoryIndex,
    url: str,
    who: dict[str, str],
    expected: str,
    grant: str | None,
) -> None:
    """A live grant changes the action of the rules it names, for its users and groups only."""
    decision = decide_alpha(alpha, index, url, WORK, **who)
    assert (decision.action, decision.grant) == (expected, grant)
    assert decision.step == ("grant" if grant else "rule")


def test_granted_decision_keeps_the_rule_and_cites_the_approval(
    alpha: Policy, index: CategoryIndex
) -> None:
    """A grant's decision names the rule, keeps its clauses and says who approved it until when."""
    decision = decide_alpha(alpha, index, "https://dropbox.com/f", user="mlee", client=HQ)
    assert decision.rule == "file-hosting-state"
    assert decision.clauses == ("9.H",)
    assert decision.reason == (
        "Exchanging survey data with contractors. (exception approved by "
        "IS management, ticket IS-2026-0412, until 2027-06-30)"
    )


@pytest.mark.parametrize(
    ("now", "action"),
    [
        (at("2027-06-30 00:00"), "log"),
        (at("2027-06-30 23:59:59"), "log"),  # the whole expiry day, agency time
        (at("2027-07-01 00:00"), "block"),
        (datetime.fromisoformat("2027-07-01T04:59:00+00:00"), "log"),  # 23:59 CDT on the 30th
        (datetime.fromisoformat("2027-07-01T05:00:00+00:00"), "block"),  # 00:00 CDT on the 1st
        (datetime.fromisoformat("2027-06-30T23:30:00"), "log"),  # naive: agency-local
    ],
)
def test_grant_ends_with_its_expiry_day_in_the_agency_zone(
    alpha: Policy, index: CategoryIndex, now: datetime, action: str
) -> None:
    """A grant lasts to the end of its `expires` date in the agency's zone, then has no effect."""
    decision = decide_alpha(alpha, index, "https://dropbox.com/f", now, user="mlee", client=HQ)
    assert decision.action == action


# --------------------------------------------------------------------------- categories


@pytest.mark.parametrize(
    ("url", "now", "categories", "all_categories", "matched", "rule"),
    [
        # ads.netlog.com is advertising, the more specific entry; netlog.com is social networking.
        (
            "https://ads.netlog.com/banner",
            WORK,
            ("advertising",),
            ("advertising", "social-networking"),
            "ads.netlog.com",
            "default",
        ),
        (
            "https://www.netlog.com/",
            WORK,
            ("social-networking",),
            ("social-networking",),
            "netlog.com",
            "social-at-work",
        ),
        # A URL entry decides only under its path.
        (
            "https://google.com/mail/u/0",
            WORK,
            ("webmail",),
            ("webmail",),
            "google.com/mail",
            "default",
        ),
        ("https://google.com/search", WORK, ("uncategorized",), (), None, "uncategorized-work"),
        # Nothing on any list is `uncategorized`, which rules may name.
        ("https://example.org/", WORK, ("uncategorized",), (), None, "uncategorized-work"),
        ("https://example.org/", LUNCH, ("uncategorized",), (), None, "default"),
    ],
)
def test_most_specific_category_entry_decides(
    alpha: Policy,
    index: CategoryIndex,
    url: str,
    now: datetime,
    categories: tuple[str, ...],
    all_categories: tuple[str, ...],
    matched: str | None,
    rule: str,
) -> None:
    """Rules see the categories of the most specific matching entry, else `uncategorized`."""
    decision = decide_alpha(alpha, index, url, now)
    assert decision.categories == categories
    assert decision.all_categories == all_categories
    assert decision.matched == matched
    assert decision.rule == rule


# --------------------------------------------------------------------------- site conditions


@pytest.mark.parametrize(
    ("url", "hit"),
    [
        ("https://news.example/", True),
        ("https://www.news.example/today", True),
        ("https://a.b.news.example/", True),
        ("https://news.example./", True),  # a trailing dot is the same host
        ("https://NEWS.EXAMPLE/", True),
        ("https://badnews.example/", False),  # not on a label boundary
        ("https://news.example.com/", False),
        ("https://portal.example/radio", True),
        ("https://portal.example/radio/live.m3u", True),
        ("https://m.portal.example/radio/", True),  # the URL's host matches subdomains too
        ("https://portal.example/news/radio", False),
        ("https://portal.example/Radio", False),  # paths compare case-sensitively
        ("https://portal.example/", False),
        ("https://xportal.example/radio", False),
    ],
)
def test_domains_and_urls_on_label_boundaries(
    alpha: Policy, index: CategoryIndex, url: str, hit: bool
) -> None:
    """`domains` match the host or its subdomains, `urls` a host/path prefix, both on labels."""
    decision = decide_alpha(alpha, index, url, AFTER)
    assert (decision.rule == "radio-sites") is hit


@pytest.mark.parametrize(
    ("host", "suffixes"),
    [
        ("a.b.example.com", ("a.b.example.com", "b.example.com", "example.com", "com")),
        ("localhost", ("localhost",)),
        ("10.0.0.1", ("10.0.0.1", "0.0.1", "0.1", "1")),
    ],
)
def test_host_suffixes(host: str, suffixes: tuple[str, ...]) -> None:
    """Suffixes are cut at dots only, so a domain condition never matches inside a label."""
    assert host_suffixes(host) == suffixes


# --------------------------------------------------------------------------- who


@pytest.mark.parametrize(
    ("client", "device", "network", "seen_device", "action"),
    [
        (HQ, None, "hq-wired", "state", "block"),
        ("fd00:20::1", None, "hq-wired", "state", "block"),  # IPv6 prefix of the same network
        (LAB, None, "hq-lab", "state", "block"),  # the most specific prefix wins
        (GUEST, None, "guest-wifi", "personal", "allow"),
        (GUEST, "state", "guest-wifi", "state", "block"),  # a stated device beats the network
        (HQ, "personal", "hq-wired", "personal", "allow"),
        ("192.0.2.1", None, None, None, "allow"),  # in no network: device unknown
        (None, None, None, None, "allow"),
        (None, "state", None, "state", "block"),
    ],
)
def test_device_from_network_or_stated(
    alpha: Policy,
    index: CategoryIndex,
    client: str | None,
    device: str | None,
    network: str | None,
    seen_device: str | None,
    action: str,
) -> None:
    """The device class comes from the client's network unless the request states one."""
    decision = decide_alpha(alpha, index, "https://dropbox.com/f", client=client, device=device)
    assert (decision.network, decision.device, decision.action) == (network, seen_device, action)


@pytest.mark.parametrize(
    ("user", "rule"),
    [
        ("auditor", "auditor-gambling"),
        ("Auditor", "auditor-gambling"),
        ("AUDITOR", "auditor-gambling"),
        ("auditor2", "no-gambling"),
        (None, "no-gambling"),
    ],
)
def test_user_names_are_case_insensitive(
    alpha: Policy, index: CategoryIndex, user: str | None, rule: str
) -> None:
    """`users` and group members match whatever case the proxy login uses."""
    decision = decide_alpha(alpha, index, "https://bet365.com/", user=user)
    assert decision.rule == rule
    assert decision.user == (user.lower() if user else None)


# --------------------------------------------------------------------------- content


@pytest.mark.parametrize(
    ("url", "client", "rule", "action"),
    [
        ("http://tracker.example/announce?info_hash=ab&peer_id=cd", None, "no-torrents", "block"),
        ("http://files.example/ubuntu.iso.torrent", None, "no-torrents", "block"),
        ("http://downloads.example/setup.exe", None, "no-executables", "block"),
        ("http://downloads.example/tools/Setup.MSI", None, "no-executables", "block"),
        # The URL shows nothing yet: content rules wait for the response headers.
        ("http://downloads.example/get?id=42", None, "default", "allow"),
        ("http://tracker.example/announce", None, "default", "allow"),
        # File order still holds: an earlier site rule decides before the content rule.
        ("https://dropbox.com/setup.exe", HQ, "file-hosting-state", "block"),
        ("https://dropbox.com/setup.exe", GUEST, "no-executables", "block"),
    ],
)
def test_content_rules_at_request_time(
    alpha: Policy, index: CategoryIndex, url: str, client: str | None, rule: str, action: str
) -> None:
    """At request time a content rule matches only when the URL itself shows the content."""
    decision = decide_alpha(alpha, index, url, AFTER, client=client)
    assert (decision.rule, decision.action) == (rule, action)


@pytest.mark.parametrize(
    ("url", "kinds", "expected"),
    [
        ("http://downloads.example/get?id=42", {"executable"}, ("no-executables", "block")),
        ("http://radio.example/stream", {"audio-stream"}, ("audio-streams", "warn")),
        ("http://cdn.example/big.iso", {"large-transfer"}, ("large-transfers", "log")),
        ("http://cdn.example/x", {"large-transfer", "bittorrent"}, ("no-torrents", "block")),
        # Only content rules take part: facebook's social rule does not answer here.
        ("https://facebook.com/live", {"audio-stream"}, ("audio-streams", "warn")),
        ("http://downloads.example/get?id=42", set(), None),
        # The allow list vouches for what its sites serve; deny-listed requests never got here.
        ("https://alpha.gov.example/tools/get", {"executable"}, None),
        ("https://dropbox.com/alpha-shared/big.zip", {"large-transfer"}, None),
        ("http://malware.example/payload", {"executable"}, None),
    ],
)
def test_decide_content_at_response_time(
    alpha: Policy,
    index: CategoryIndex,
    url: str,
    kinds: set[str],
    expected: tuple[str, str] | None,
) -> None:
    """`decide_content` answers with the first content rule the response meets, or None."""
    decision = decide_content(alpha, index, facts(url), frozenset(kinds), WORK)
    assert (decision and (decision.rule, decision.action)) == expected


# --------------------------------------------------------------------------- the decision


@pytest.mark.parametrize(
    ("url", "intercept"),
    [
        ("https://mybank.example/login", "never"),
        ("https://secure.mybank.example/", "never"),
        ("https://notmybank.example/", "auto"),
        ("https://example.org/", "auto"),
    ],
)
def test_never_decrypt(alpha: Policy, index: CategoryIndex, url: str, intercept: str) -> None:
    """Sites on `never_decrypt` are marked so the adapter passes their TLS through untouched."""
    assert decide_alpha(alpha, index, url).intercept == intercept


def test_decision_json(alpha: Policy, index: CategoryIndex) -> None:
    """`to_json` carries what `explain --json` and the audit event need, with plain values."""
    decision = decide_alpha(
        alpha, index, "https://www.bet365.com/odds", LUNCH, user="Bob", client=HQ
    )
    assert decision.to_json() == {
        "action": "block",
        "agency": "alpha",
        "rule": "no-gambling",
        "clauses": ["7.E"],
        "reason": "Gambling is prohibited.",
        "step": "rule",
        "window": "lunch",
        "categories": ["gambling"],
        "all_categories": ["gambling"],
        "matched": "bet365.com",
        "host": "www.bet365.com",
        "url": "https://www.bet365.com/odds",
        "user": "bob",
        "device": "state",
        "network": "hq-wired",
        "grant": None,
        "intercept": "auto",
    }


URLS = [
    "http://malware.example/",
    "https://linkedin.com/jobs",
    "https://dropbox.com/alpha-shared/x",
    "https://dropbox.com/f",
    "https://facebook.com/",
    "https://www.bet365.com/",
    "https://mail.yahoo.com/",
    "https://news.example/",
    "http://tracker.example/announce?info_hash=ab",
    "http://downloads.example/setup.exe",
    "https://example.org/",
    "https://ads.netlog.com/",
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("now", [BEFORE, WORK, BREAK, LUNCH, AFTER, WEEKEND, HOLIDAY])
@pytest.mark.parametrize(
    "who", [{}, {"user": "mlee", "client": HQ}, {"user": "jdoe", "client": LAB}]
)
def test_warn_and_block_always_cite_a_clause(
    alpha: Policy, index: CategoryIndex, url: str, now: datetime, who: dict[str, str]
) -> None:
    """Every decision names its agency, rule and window; a warn or block always cites a clause."""
    decision = decide_alpha(alpha, index, url, now, **who)
    data = decision.to_json()
    assert {"action", "categories", "rule", "clauses", "reason", "agency", "window"} <= set(data)
    assert data["agency"] == "alpha"
    assert data["window"] == alpha.schedule.window_at(now)
    assert data["rule"] and data["reason"]
    if data["action"] in ("warn", "block"):
        assert data["clauses"], decision
        assert all(c in alpha.clauses for c in data["clauses"])


def test_other_agency_decides_in_its_own_zone(policies: PolicySet, index: CategoryIndex) -> None:
    """Each agency's window is worked out in its own time zone (beta is in New York)."""
    beta = policies.policies["beta"]
    now = datetime.fromisoformat("2026-11-23T14:30:00+00:00")  # 09:30 New York, 08:30 Chicago
    decision = decide(beta, index, facts("https://example.org/"), now)
    assert (decision.agency, decision.window, decision.action) == ("beta", "work", "log")
    assert policies.agency_for(ipaddress.ip_address("10.30.1.1")) is beta
    assert policies.agency_for(ipaddress.ip_address(LAB)) is policies.policies["alpha"]
    assert policies.agency_for(ipaddress.ip_address("192.0.2.1")) is None
