"""The engine's precedence (docs/policy-language.md): deny list, allow list, rules, default.

Decisions are made under `tests/fixtures/core/policies/alpha.yaml` with the tiny category index of
`tests/fixtures/core/categories/`, never the shipped data.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aupgate.categories.cache import load_index
from aupgate.categories.index import CategoryIndex
from aupgate.content import CONTENT_KINDS
from aupgate.engine import Decision, Facts, decide, decide_content
from aupgate.hostname import host_suffixes
from aupgate.normalise import parse_url
from aupgate.policy.loader import load_policy_dir
from aupgate.policy.model import Match, Policy, PolicySet, Rule, Site
from aupgate.policy.schedule import WINDOWS

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
        # A program's address shows nothing yet: its media type decides, at the response
        # (a `.exe` address may answer with a page about the program).
        ("http://downloads.example/setup.exe", None, "default", "allow"),
        ("http://downloads.example/tools/Setup.MSI", None, "default", "allow"),
        ("http://downloads.example/get?id=42", None, "default", "allow"),
        ("http://tracker.example/announce", None, "default", "allow"),
        # File order still holds: an earlier site rule decides before the content rule.
        ("https://dropbox.com/file.torrent", HQ, "file-hosting-state", "block"),
        ("https://dropbox.com/file.torrent", GUEST, "no-torrents", "block"),
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
        # The allow list vouches for the site, not for what it serves: content rules judge it.
        ("https://alpha.gov.example/tools/get", {"executable"}, ("no-executables", "block")),
        ("https://dropbox.com/alpha-shared/big.zip", {"large-transfer"},
         ("large-transfers", "log")),
        ("https://alpha.gov.example/page", set(), None),
        # Deny-listed requests never got here (refused at request time).
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
        "direction": "read",
        "relaxed": [],
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


# --------------------------------------------------------------------------- properties

ZONES = ["UTC", "America/Chicago", "America/New_York", "Europe/Berlin", "Asia/Kolkata"]
PROPERTY_URLS = [
    *URLS,
    "https://google.com/mail/u/0",
    "https://google.com/mail/inbox",
    "https://google.com/search",
    "https://m.portal.example/radio/1",
    "https://portal.example/radio",
    "https://www.news.example/a",
    "https://www.netlog.com/p/x",
    "https://dropbox.com/setup.exe",
    "https://mybank.example/",
]
USERS = [None, "jdoe", "JDoe", "mlee", "asmith", "auditor", "bob"]
CLIENTS = [None, HQ, LAB, GUEST, "fd00:20::9", "192.0.2.1"]
DEVICES = [None, "state", "personal"]

requests = st.builds(
    facts,
    st.sampled_from(PROPERTY_URLS),
    user=st.sampled_from(USERS),
    client=st.sampled_from(CLIENTS),
    device=st.sampled_from(DEVICES),
)
instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(
    request=requests,
    instant=instants,
    zone=st.sampled_from(ZONES),
    naive=st.booleans(),
)
def test_decide_is_deterministic_and_reports_the_window(
    alpha: Policy, index: CategoryIndex, request: Facts, instant: datetime, zone: str, naive: bool
) -> None:
    """decide() is the same every time and in any zone; its window is window_at(now)."""
    now = instant.astimezone(ZoneInfo(zone))
    if naive:  # the same instant as an agency-local wall time
        now = instant.astimezone(CHICAGO).replace(tzinfo=None)
    first = decide(alpha, index, request, now)
    assert decide(alpha, index, request, now) == first
    assert first.window == alpha.schedule.window_at(now)
    uncached = replace(alpha.schedule)  # a copy starts with an empty minute cache
    assert first.window == uncached.window_at(instant.astimezone(CHICAGO).replace(tzinfo=None))
    in_utc = decide(alpha, index, request, instant)
    assert (in_utc.action, in_utc.rule, in_utc.window, in_utc.grant) == (
        first.action,
        first.rule,
        first.window,
        first.grant,
    )


CATEGORY_CHOICES = ["gambling", "social-networking", "advertising", "webmail", "uncategorized"]
DOMAIN_CHOICES = [
    "netlog.com",
    "ads.netlog.com",
    "news.example",
    "www.news.example",
    "badnews.example",
    "google.com",
]
URL_CHOICES = [
    ("google.com", "/mail"),
    ("google.com", "/mail/u"),
    ("portal.example", "/radio"),
    ("m.portal.example", "/radio"),
    ("xportal.example", "/radio"),
    ("netlog.com", "/p"),
]


def subsets(
    values: list[Any], min_size: int = 0, max_size: int | None = None
) -> st.SearchStrategy[frozenset[Any]]:
    return st.frozensets(st.sampled_from(values), min_size=min_size, max_size=max_size)


def optional(values: list[Any]) -> st.SearchStrategy[frozenset[Any] | None]:
    """Mostly absent, so that random rules match random requests often enough to tell."""
    return st.one_of(st.none(), st.none(), st.none(), subsets(values, min_size=1))


# Small sites (a policy's site conditions are short), so that a broad site built from one often
# covers it, or misses it by a single entry.
sites = st.builds(
    Site,
    categories=subsets(CATEGORY_CHOICES, min_size=1, max_size=2),
    domains=subsets(DOMAIN_CHOICES, max_size=2),
    urls=subsets(URL_CHOICES, max_size=2).map(lambda urls: tuple(sorted(urls))),
) | st.builds(
    Site,
    domains=subsets(DOMAIN_CHOICES, max_size=2),
    urls=subsets(URL_CHOICES, min_size=1, max_size=2).map(lambda urls: tuple(sorted(urls))),
)

matches = st.builds(
    Match,
    site=st.none() | sites,
    windows=optional(list(WINDOWS)),
    devices=optional(["state", "personal"]),
    groups=optional(["communications", "gis-team"]),
    users=optional(["jdoe", "mlee", "bob"]),
    networks=optional(["hq-wired", "hq-lab", "guest-wifi"]),
    content=optional(list(CONTENT_KINDS)),
)


@st.composite
def wider(draw: st.DrawFn, match: Match) -> Match:
    """A match made from `match` by dropping or widening conditions: usually one that covers it."""

    def widen(value: frozenset[str] | None, choices: list[str]) -> frozenset[str] | None:
        how = draw(st.sampled_from(["keep", "drop", "add"]))
        if value is None or how == "keep":
            return value
        return None if how == "drop" else value | draw(subsets(choices))

    site = match.site
    if site is not None:
        how = draw(st.sampled_from(["keep", "drop", "add", "reshape"]))
        if how == "drop":
            site = None
        elif how == "add":
            site = Site(
                site.categories | draw(subsets(CATEGORY_CHOICES)),
                site.domains | draw(subsets(DOMAIN_CHOICES)),
                tuple(sorted({*site.urls, *draw(subsets(URL_CHOICES))})),
            )
        elif how == "reshape":  # other domains and URL prefixes: parents, children or unrelated
            site = Site(
                site.categories | draw(subsets(CATEGORY_CHOICES)),
                draw(subsets(DOMAIN_CHOICES)),
                tuple(sorted(draw(subsets(URL_CHOICES)))),
            )
    return Match(
        site=site,
        windows=widen(match.windows, list(WINDOWS)),
        devices=widen(match.devices, ["state", "personal"]),
        groups=widen(match.groups, ["communications", "gis-team"]),
        users=widen(match.users, ["jdoe", "mlee", "bob"]),
        networks=widen(match.networks, ["hq-wired", "hq-lab", "guest-wifi"]),
        content=widen(match.content, list(CONTENT_KINDS)),
    )


@st.composite
def match_pairs(draw: st.DrawFn) -> tuple[Match, Match]:
    narrow = draw(matches)
    broad = draw(st.one_of(matches, wider(narrow)))
    return broad, narrow


def only_rule(policy: Policy, match: Match) -> Policy:
    """`policy` with its lists and grants removed and `match` as its one rule."""
    rule = Rule("the-rule", ("9.A",), match, "block", "Property test.")
    return replace(policy, rules=(rule,), allow=None, deny=None, grants=())


WHO: list[dict[str, str]] = [
    {},
    {"user": "jdoe", "client": HQ},
    {"user": "MLee", "client": LAB},
    {"user": "bob", "client": GUEST},
    {"client": GUEST, "device": "state"},
    {"user": "asmith", "device": "personal"},
]
GRID = [facts(url, **who) for url in PROPERTY_URLS for who in WHO]


@settings(max_examples=150, deadline=None)
@given(
    pair=match_pairs(),
    now=st.sampled_from([BEFORE, WORK, BREAK, LUNCH, AFTER, WEEKEND, HOLIDAY]),
    kinds=subsets(list(CONTENT_KINDS), min_size=1),
)
@pytest.mark.slow
def test_covers_is_sound(
    alpha: Policy,
    index: CategoryIndex,
    pair: tuple[Match, Match],
    now: datetime,
    kinds: frozenset[str],
) -> None:
    """If rule A covers rule B, every request B matches (at request or response time) A matches."""
    broad, narrow = pair
    assert broad.covers(broad) and narrow.covers(narrow)
    if not broad.covers(narrow):
        event("not covered")
        return
    event("covered")
    narrow_policy, broad_policy = only_rule(alpha, narrow), only_rule(alpha, broad)
    for request in GRID:
        if decide(narrow_policy, index, request, now).rule == "the-rule":
            event("narrow rule matched a request")
            assert decide(broad_policy, index, request, now).rule == "the-rule", request
        if decide_content(narrow_policy, index, request, kinds, now) is not None:
            event("narrow rule matched a response")
            assert decide_content(broad_policy, index, request, kinds, now) is not None, request


def parent(host: str) -> str:
    return host.partition(".")[2] or host


@st.composite
def nearby_site(draw: st.DrawFn, narrow: Site) -> Site:
    """A site made from `narrow` with each domain and URL prefix moved a little, or kept.

    The moves are to a parent or child host, a shorter or longer path, a whole domain, or a
    string suffix that is not on a label boundary; some widen the site, some do not.
    """
    categories = narrow.categories | draw(subsets(CATEGORY_CHOICES))
    domains: set[str] = set()
    for domain in sorted(narrow.domains):
        domains |= draw(
            st.sampled_from([{domain}, {parent(domain)}, {f"www.{domain}"}, {domain[1:]}, set()])
        )
    urls: set[tuple[str, str]] = set()
    for host, path in narrow.urls:
        as_url = [
            (host, path),
            (parent(host), path),
            (f"m.{host}", path),
            (host, path[:-1] or "/"),
            (host, f"{path}/u"),
            (f"m.{host}", path[:-1] or "/"),
            (host[1:], path),  # a suffix that is not on a label boundary
        ]
        as_domain = [host, parent(host), f"m.{host}"]
        moved = draw(st.sampled_from([*as_url, *as_domain, None]))
        if isinstance(moved, tuple):
            urls.add(moved)
        elif moved is not None:
            domains.add(moved)
    return Site(frozenset(categories), frozenset(domains), tuple(sorted(urls)))


@st.composite
def site_pairs(draw: st.DrawFn) -> tuple[Site, Site]:
    narrow = draw(sites)
    nearby = nearby_site(narrow)
    return draw(st.one_of(nearby, nearby, nearby, sites)), narrow


HOSTS = ["portal.example", "google.com", "netlog.com", "news.example", "example.org"]
PATHS = ["/", "/radio", "/radio/1", "/mail", "/mail/u/0", "/mail/x", "/p/x"]


@st.composite
def held_request(draw: st.DrawFn, site: Site) -> tuple[tuple[str, ...], str, str]:
    """Categories, host and path of a request that `site` holds for, by any of its conditions."""
    categories = set(draw(subsets(CATEGORY_CHOICES)))
    host, path = draw(st.sampled_from(HOSTS)), draw(st.sampled_from(PATHS))
    ways = [
        w for w, given in (("c", site.categories), ("d", site.domains), ("u", site.urls)) if given
    ]
    way = draw(st.sampled_from(ways))
    if way == "c":
        categories.add(draw(st.sampled_from(sorted(site.categories))))
    elif way == "d":
        domain = draw(st.sampled_from(sorted(site.domains)))
        host = draw(st.sampled_from([domain, f"www.{domain}", f"a.b.{domain}"]))
    else:
        url_host, prefix = draw(st.sampled_from(site.urls))
        host = draw(st.sampled_from([url_host, f"m.{url_host}"]))
        path = prefix + draw(st.sampled_from(["", "/", "/x", "x"]))
    return tuple(sorted(categories or {"uncategorized"})), host, path


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(pair=site_pairs(), data=st.data())
def test_site_covers_is_sound(pair: tuple[Site, Site], data: st.DataObject) -> None:
    """If site A covers site B, A holds for every host, path and categories B holds for."""
    broad, narrow = pair
    categories, host, path = data.draw(held_request(narrow))
    suffixes = host_suffixes(host)
    assert narrow.holds(categories, suffixes, path)
    if broad.covers(narrow):
        event("covered")
        assert broad.holds(categories, suffixes, path), (categories, host, path)


def site(*entries: str) -> Site:
    """`Site` from `cat:NAME`, `DOMAIN` and `HOST/PATH` entries."""
    categories = frozenset(e[4:] for e in entries if e.startswith("cat:"))
    domains = frozenset(e for e in entries if "/" not in e and not e.startswith("cat:"))
    urls = tuple(
        sorted((e.split("/", 1)[0], "/" + e.split("/", 1)[1]) for e in entries if "/" in e)
    )
    return Site(categories, domains, urls)


@pytest.mark.parametrize(
    ("broad", "narrow", "covers"),
    [
        (site("cat:gambling", "cat:games"), site("cat:gambling"), True),
        (site("cat:gambling"), site("cat:gambling", "cat:games"), False),
        (site("news.example"), site("www.news.example"), True),
        (site("www.news.example"), site("news.example"), False),
        (site("news.example"), site("badnews.example"), False),  # not a label boundary
        (site("news.example"), site("news.example/radio"), True),
        (site("news.example"), site("m.news.example/radio"), True),
        (site("google.com/mail"), site("google.com/mail/u"), True),
        (site("google.com/mail/u"), site("google.com/mail"), False),
        (site("portal.example/radio"), site("m.portal.example/radio"), True),
        (site("m.portal.example/radio"), site("portal.example/radio"), False),
        (site("portal.example/radio"), site("xportal.example/radio"), False),
        (site("portal.example/radio"), site("portal.example/radio", "news.example"), False),
        (site("portal.example/radio", "news.example"), site("news.example"), True),
        (site("cat:gambling"), site("bet365.com"), False),  # a domain is not known to be gambling
        (site("bet365.com"), site("cat:gambling"), False),
    ],
)
def test_site_covers(broad: Site, narrow: Site, covers: bool) -> None:
    """A site covers another when every category, domain and URL prefix of it is inside."""
    assert broad.covers(narrow) is covers


ANY_SITE = site("cat:gambling")


@pytest.mark.parametrize(
    ("broad", "narrow", "covers"),
    [
        (Match(site=ANY_SITE), Match(site=ANY_SITE, windows=frozenset({"lunch"})), True),
        (Match(site=ANY_SITE, windows=frozenset({"lunch"})), Match(site=ANY_SITE), False),
        (
            Match(windows=frozenset({"lunch", "break"})),
            Match(site=ANY_SITE, windows=frozenset({"lunch"})),
            True,
        ),
        (
            Match(windows=frozenset({"lunch"})),
            Match(windows=frozenset({"lunch", "break"})),
            False,
        ),
        (Match(devices=frozenset({"state"})), Match(devices=frozenset({"personal"})), False),
        (Match(users=frozenset({"jdoe", "bob"})), Match(users=frozenset({"jdoe"})), True),
        (Match(groups=frozenset({"gis-team"})), Match(users=frozenset({"mlee"})), False),
        (Match(site=ANY_SITE), Match(site=ANY_SITE, content=frozenset({"executable"})), False),
        (
            Match(content=frozenset({"executable", "bittorrent"})),
            Match(site=ANY_SITE, content=frozenset({"executable"})),
            True,
        ),
        (Match(content=frozenset({"executable"})), Match(site=ANY_SITE), False),
    ],
)
def test_match_covers(broad: Match, narrow: Match, covers: bool) -> None:
    """A match covers another when each condition is absent or wider; content rules stay apart."""
    assert broad.covers(narrow) is covers
