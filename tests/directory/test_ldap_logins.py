"""Logins against a real OpenLDAP slapd: good, bad, unknown, injected; where groups come from."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator

import pytest
from directory_support import SettingsFactory
from slapd_server import CHAIN_LENGTH, PASSWORDS, SERVICE_PASSWORD, SlapdServer, group_dn, user_dn

from aupgate.directory import (
    DirectoryAuthenticator,
    DirectorySettings,
    LoginFailed,
    LoginOk,
)
from aupgate.directory.dn import dn_key


@pytest.fixture
async def auth(slapd: SlapdServer, make_settings: SettingsFactory
               ) -> AsyncIterator[DirectoryAuthenticator]:
    authenticator = DirectoryAuthenticator(make_settings(slapd))
    yield authenticator
    authenticator.close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def groups_by_name(outcome: object) -> dict[str, tuple[str, str | None]]:
    assert isinstance(outcome, LoginOk), outcome
    return {g.name: (g.source, g.via) for g in outcome.user.groups}


async def test_good_login_reports_direct_nested_and_cyclic_groups(
        auth: DirectoryAuthenticator) -> None:
    """alice: engineers and loop-a from memberOf; staff and all-employees nested through
    engineers; loop-b nested through loop-a, whose cycle back to loop-a ends the walk."""
    outcome = await auth.authenticate_header(basic("alice", PASSWORDS["alice"]))
    assert isinstance(outcome, LoginOk)
    assert outcome.source == "directory"
    assert outcome.user.name == "alice"
    assert outcome.user.dn == user_dn("alice")
    assert groups_by_name(outcome) == {
        "engineers": ("memberOf", None),
        "loop-a": ("memberOf", None),
        "staff": ("nested", group_dn("engineers")),
        "loop-b": ("nested", group_dn("loop-a")),
        "all-employees": ("nested", group_dn("staff")),
    }
    assert outcome.user.in_group("ALL-EMPLOYEES")
    assert outcome.user.in_group("CN=All-Employees, OU=Groups, DC=aup, DC=test")
    assert not outcome.user.in_group("contractors")


async def test_password_with_colons_splits_on_the_first_colon(
        auth: DirectoryAuthenticator) -> None:
    """bob's password is pa:ss:wo:rd; mitmproxy 11's proxyauth refuses it."""
    outcome = await auth.authenticate_header(basic("bob", "pa:ss:wo:rd"))
    assert groups_by_name(outcome) == {"staff": ("memberOf", None),
                                       "all-employees": ("nested", group_dn("staff"))}
    wrong = await auth.authenticate_header(basic("bob", "pa"))
    assert isinstance(wrong, LoginFailed) and wrong.reason == "bad_credentials"


async def test_canonical_name_comes_from_the_directory(auth: DirectoryAuthenticator) -> None:
    """The directory matches uid ignoring case and Unicode compatibility forms (RFC 4518: the
    fullwidth ａｌｉｃｅ is alice); the password is still alice's, and the name reported and
    audited is the entry's, never the spelling typed."""
    for spelling in ("ALICE", "ａｌｉｃｅ"):
        outcome = await auth.authenticate(spelling, PASSWORDS["alice"])
        assert isinstance(outcome, LoginOk) and outcome.user.name == "alice"
        wrong = await auth.authenticate(spelling, PASSWORDS["bob"])
        assert isinstance(wrong, LoginFailed) and wrong.reason == "bad_credentials"


async def test_bad_password_and_unknown_user(auth: DirectoryAuthenticator) -> None:
    bad = await auth.authenticate("alice", "not-her-password")
    assert isinstance(bad, LoginFailed)
    assert (bad.reason, bad.user, bad.detail) == ("bad_credentials", "alice",
                                                   "invalidCredentials")
    unknown = await auth.authenticate("mallory", "whatever")
    assert isinstance(unknown, LoginFailed) and unknown.reason == "unknown_user"
    assert bad.audit_fields() == {"event": "login_failed", "user": "alice",
                                  "reason": "bad_credentials", "detail": "invalidCredentials",
                                  "source": "directory"}


async def test_unicode_names_and_a_comma_in_a_dn(auth: DirectoryAuthenticator) -> None:
    """zoë (UTF-8 in name and password, group "Finance, Budget" whose DN escapes the comma);
    "comma,user" whose own DN escapes a comma, found as a member of engineers."""
    zoe = await auth.authenticate_header(basic("zoë", PASSWORDS["zoë"]))
    assert groups_by_name(zoe) == {"Finance, Budget": ("memberOf", None)}
    assert isinstance(zoe, LoginOk) and zoe.user.in_group("Finance, Budget")
    comma = await auth.authenticate("comma,user", PASSWORDS["comma,user"])
    assert isinstance(comma, LoginOk)
    # slapd spells the comma \2C; both spellings are the same DN
    assert comma.user.dn == "uid=comma\\2Cuser,ou=people,dc=aup,dc=test"
    assert dn_key(comma.user.dn) == dn_key(user_dn("comma,user"))
    assert set(groups_by_name(comma)) == {"engineers", "staff", "all-employees"}


INJECTIONS = [
    "*", "a*", "al*", "*)(uid=*", "alice)(uid=*", "*)(|(uid=*", ")(", "(", ")", "alice)",
    "\\", "\\2a", "\\00", "alice\\00", "\\29(uid=alice", "uid=alice", "alice,ou=people",
    "alice=", "=", "star", "star\\2a", "*alice*", "alice*", "{user}", "{0}", "{dn}",
    "alice\u0130", "x" * 256,
]


@pytest.mark.parametrize("name", INJECTIONS)
async def test_filter_injection_finds_nobody(auth: DirectoryAuthenticator, name: str) -> None:
    """Every value is escaped: wildcards, parentheses and backslash escapes are literal, so
    none of these names finds alice (or anyone), even with alice's password."""
    outcome = await auth.authenticate(name, PASSWORDS["alice"])
    assert isinstance(outcome, LoginFailed), name
    assert outcome.reason == "unknown_user", (name, outcome)


async def test_a_literal_star_in_a_name_is_that_user_only(auth: DirectoryAuthenticator) -> None:
    """"star*" exists; its name must not act as a wildcard for anyone else."""
    ok = await auth.authenticate("star*", PASSWORDS["star*"])
    assert isinstance(ok, LoginOk) and ok.user.name == "star*"
    other = await auth.authenticate("star*", PASSWORDS["alice"])
    assert isinstance(other, LoginFailed) and other.reason == "bad_credentials"


@pytest.mark.parametrize(("name", "why"), [
    ("alice\x00", "NUL"), ("\x00", "NUL"), ("ali\x00ce", "NUL"), ("alice\n", "control"),
    ("alice\r\nuid: x", "control"), ("ali\x1bce", "control"), ("alice\u200d", "invisible"),
    ("\u202ealice", "invisible"), ("x" * 257, "longer than 256"), (" alice", "spaces"),
    ("alice ", "spaces"), ("", "empty"),
])
async def test_bad_names_are_refused_before_any_directory_call(
        auth: DirectoryAuthenticator, name: str, why: str) -> None:
    before = auth.directory_operations
    outcome = await auth.authenticate(name, PASSWORDS["alice"])
    assert isinstance(outcome, LoginFailed) and outcome.reason == "invalid_name", outcome
    assert why in outcome.detail
    assert "\x00" not in outcome.user and "\n" not in outcome.user and len(outcome.user) < 120
    assert auth.directory_operations == before


async def test_empty_password_is_not_an_anonymous_bind(auth: DirectoryAuthenticator) -> None:
    """A simple bind with a DN and no password succeeds as anonymous on LDAP servers (RFC 4513
    unauthenticated bind): it must be refused before reaching the directory."""
    before = auth.directory_operations
    for header in (basic("alice", ""), "Basic " + base64.b64encode(b"alice:").decode()):
        outcome = await auth.authenticate_header(header)
        assert isinstance(outcome, LoginFailed) and outcome.reason == "bad_credentials"
    assert auth.directory_operations == before


@pytest.mark.parametrize(("header", "detail"), [
    ("Basic", "no scheme"), ("Basic !!!", "not base64"),
    ("Basic " + base64.b64encode(b"no-colon").decode(), "no colon"),
    ("Basic " + base64.b64encode(b"\xff\xfe:pw").decode(), "UTF-8"),
    ("Digest username=alice", "unsupported scheme"),
    ("Basic " + "A" * 70_000, "longer than"),
    ("Basic " + base64.b64encode(b"x" * 9000 + b":pw").decode(), "too long"),
])
async def test_malformed_headers(auth: DirectoryAuthenticator, header: str, detail: str) -> None:
    outcome = await auth.authenticate_header(header)
    assert isinstance(outcome, LoginFailed) and outcome.reason == "malformed"
    assert detail in outcome.detail
    assert outcome.user == ""


async def test_a_user_filter_matching_several_entries_refuses(
        slapd: SlapdServer, make_settings: SettingsFactory) -> None:
    """Two entries have cn "Sam Smith": the login is refused, never bound to the first."""
    auth = DirectoryAuthenticator(make_settings(slapd, user_filter="(cn={user})"))
    try:
        outcome = await auth.authenticate("Sam Smith", PASSWORDS["sam1"])
        assert isinstance(outcome, LoginFailed) and outcome.reason == "unknown_user"
        assert "several" in outcome.detail
    finally:
        auth.close()


async def test_group_search_by_member_uid(slapd: SlapdServer,
                                          make_settings: SettingsFactory) -> None:
    """posixGroup membership (memberUid) is found by the configured group search."""
    auth = DirectoryAuthenticator(make_settings(slapd, groups={
        "member_of": False, "search": {"filter": "(memberUid={user})"}, "nested": "off"}))
    try:
        outcome = await auth.authenticate("carol", PASSWORDS["carol"])
        assert groups_by_name(outcome) == {"contractors": ("search", None)}
    finally:
        auth.close()


async def test_group_search_by_member_dn_with_an_escaped_comma(
        slapd: SlapdServer, make_settings: SettingsFactory) -> None:
    """`(member={dn})` with a DN holding `\\,`: the DN is filter-escaped, not re-parsed."""
    auth = DirectoryAuthenticator(make_settings(slapd, groups={
        "member_of": False, "search": {"base": "ou=groups,dc=aup,dc=test",
                                       "filter": "(member={dn})"}, "nested": "walk"}))
    try:
        outcome = await auth.authenticate("comma,user", PASSWORDS["comma,user"])
        assert groups_by_name(outcome) == {
            "engineers": ("search", None), "staff": ("nested", group_dn("engineers")),
            "all-employees": ("nested", group_dn("staff"))}
    finally:
        auth.close()


@pytest.mark.parametrize(("max_depth", "levels"), [(1, 2), (8, 9), (16, CHAIN_LENGTH)])
async def test_nested_walk_is_bounded_by_max_depth(
        slapd: SlapdServer, make_settings: SettingsFactory, max_depth: int, levels: int) -> None:
    """deep is in chain-01, inside chain-02, … chain-12: max_depth levels above the direct
    group are followed, no more."""
    auth = DirectoryAuthenticator(make_settings(slapd, groups={"max_depth": max_depth}))
    try:
        outcome = await auth.lookup("deep")
        assert sorted(groups_by_name(outcome)) == [f"chain-{n:02d}" for n in range(1, levels + 1)]
    finally:
        auth.close()


async def test_nested_off_reports_direct_groups_only(
        slapd: SlapdServer, make_settings: SettingsFactory) -> None:
    auth = DirectoryAuthenticator(make_settings(slapd, groups={"nested": "off"}))
    try:
        outcome = await auth.authenticate("alice", PASSWORDS["alice"])
        assert set(groups_by_name(outcome)) == {"engineers", "loop-a"}
    finally:
        auth.close()


async def test_in_chain_on_openldap_falls_back_to_the_walk(
        slapd: SlapdServer, make_settings: SettingsFactory,
        caplog: pytest.LogCaptureFixture) -> None:
    """OpenLDAP does not implement LDAP_MATCHING_RULE_IN_CHAIN and silently matches nothing;
    forcing in_chain there must not lose the nested groups."""
    auth = DirectoryAuthenticator(make_settings(slapd, groups={"nested": "in_chain"}))
    try:
        with caplog.at_level(logging.WARNING):
            outcome = await auth.authenticate("alice", PASSWORDS["alice"])
        assert "all-employees" in groups_by_name(outcome)
        assert "does not support the rule" in caplog.text
    finally:
        auth.close()


async def test_lookup_without_a_password(auth: DirectoryAuthenticator) -> None:
    found = await auth.lookup("bob")
    assert isinstance(found, LoginOk) and found.user.name == "bob"
    assert set(found.user.group_names) == {"staff", "all-employees"}
    missing = await auth.lookup("nobody")
    assert isinstance(missing, LoginFailed) and missing.reason == "unknown_user"


async def test_many_users_at_once(auth: DirectoryAuthenticator) -> None:
    """Logins of different users in parallel all come back right (no connection mix-ups
    between the search and bind pools)."""
    users = ["alice", "bob", "carol", "zoë", "comma,user", "deep"] * 3
    outcomes = await asyncio.gather(*(auth.authenticate(u, PASSWORDS[u]) for u in users))
    assert [o.user.name if isinstance(o, LoginOk) else o for o in outcomes] == users
    wrong = await asyncio.gather(*(auth.authenticate(u, PASSWORDS["alice"]) for u in users[1:6]))
    assert all(isinstance(o, LoginFailed) and o.reason == "bad_credentials" for o in wrong)


async def test_secrets_never_reach_logs_or_reprs(
        slapd: SlapdServer, make_settings: SettingsFactory,
        caplog: pytest.LogCaptureFixture) -> None:
    settings: DirectorySettings = make_settings(slapd)
    with caplog.at_level(logging.DEBUG):
        auth = DirectoryAuthenticator(settings)
        try:
            outcomes = [await auth.authenticate("alice", PASSWORDS["alice"]),
                        await auth.authenticate("alice", "wrong-" + PASSWORDS["alice"]),
                        await auth.authenticate_header(basic("bob", PASSWORDS["bob"]))]
        finally:
            auth.close()
    shown = caplog.text + repr(settings) + "".join(repr(o) + str(o.audit_fields())
                                                   for o in outcomes)
    for secret in (SERVICE_PASSWORD, PASSWORDS["alice"], PASSWORDS["bob"]):
        assert secret not in shown
