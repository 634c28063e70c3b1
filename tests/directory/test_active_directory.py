"""Logins against a real Active Directory implementation (Samba AD DC): nested groups through
LDAP_MATCHING_RULE_IN_CHAIN, AD's bind diagnostics, search references, TLS-only simple binds."""

from __future__ import annotations

import pytest
from directory_support import SettingsFactory
from samba_server import AD_PASSWORDS, SambaDc, ad_group_dn

from aupgate.directory import DirectoryAuthenticator, DirectoryUnavailable, LoginFailed, LoginOk


def groups_of(outcome: object) -> dict[str, tuple[str, str | None]]:
    assert isinstance(outcome, LoginOk), outcome
    return {g.name: (g.source, g.via) for g in outcome.user.groups}


ADA_GROUPS = {"Web Filter Admins": ("memberOf", None), "Finance, Budget": ("memberOf", None),
              "IT Staff": ("nested", None), "All Staff": ("nested", None)}


async def test_nested_groups_in_one_in_chain_query(ad_settings: SettingsFactory) -> None:
    """auto detects AD from the root DSE; one in-chain query finds every level."""
    auth = DirectoryAuthenticator(ad_settings())
    try:
        outcome = await auth.authenticate("ada", AD_PASSWORDS["ada"])
        assert groups_of(outcome) == ADA_GROUPS
        assert isinstance(outcome, LoginOk) and outcome.user.name == "ada"
        assert outcome.user.in_group(ad_group_dn("All Staff"))
        # user search, bind, root DSE, one in-chain search
        assert auth.directory_operations == 4
        again = await auth.authenticate("ann", AD_PASSWORDS["ann"])
        assert groups_of(again) == {}
        assert auth.directory_operations == 4 + 3  # the root DSE is asked once
    finally:
        auth.close()


async def test_the_walk_finds_the_same_groups_on_ad(ad_settings: SettingsFactory) -> None:
    auth = DirectoryAuthenticator(ad_settings(groups={"nested": "walk"}))
    try:
        outcome = await auth.authenticate("ada", AD_PASSWORDS["ada"])
        assert {k: v[0] for k, v in groups_of(outcome).items()} == {
            k: v[0] for k, v in ADA_GROUPS.items()}
        assert groups_of(outcome)["All Staff"] == ("nested", ad_group_dn("IT Staff"))
        assert auth.directory_operations > 4
    finally:
        auth.close()


@pytest.mark.parametrize(("user", "password", "reason", "detail"), [
    ("ada", "wrong", "bad_credentials", "invalid credentials"),
    ("dan", AD_PASSWORDS["dan"], "bad_credentials", "account disabled"),
    ("mia", AD_PASSWORDS["mia"], "bad_credentials", "password must be reset"),
    ("nobody", "whatever", "unknown_user", "no such user"),
    ("*", AD_PASSWORDS["ada"], "unknown_user", "no such user"),
    ("ada)(sAMAccountName=*", AD_PASSWORDS["ada"], "unknown_user", "no such user"),
])
async def test_refusals_say_what_ad_said(ad_settings: SettingsFactory, user: str, password: str,
                                         reason: str, detail: str) -> None:
    """AD's "data 52e/533/773" diagnostics become words in the audit log; the user search from
    the domain root gets search references back, which are not followed."""
    auth = DirectoryAuthenticator(ad_settings())
    try:
        outcome = await auth.authenticate(user, password)
        assert isinstance(outcome, LoginFailed), outcome
        assert (outcome.reason, outcome.detail) == (reason, detail)
    finally:
        auth.close()


async def test_login_by_user_principal_name(ad_settings: SettingsFactory) -> None:
    auth = DirectoryAuthenticator(ad_settings(user_filter=(
        "(&(objectCategory=person)(objectClass=user)"
        "(|(sAMAccountName={user})(userPrincipalName={user})))")))
    try:
        outcome = await auth.authenticate("ada@ad.aup.test", AD_PASSWORDS["ada"])
        assert isinstance(outcome, LoginOk) and outcome.user.name == "ada"
    finally:
        auth.close()


async def test_starttls_on_389(ad_settings: SettingsFactory, samba_dc: SambaDc) -> None:
    auth = DirectoryAuthenticator(ad_settings(url=samba_dc.ldap_url, start_tls=True))
    try:
        assert groups_of(await auth.authenticate("ada", AD_PASSWORDS["ada"])) == ADA_GROUPS
    finally:
        auth.close()


async def test_plain_ldap_is_refused_by_ad_and_reported(ad_settings: SettingsFactory,
                                                        samba_dc: SambaDc) -> None:
    """AD accepts simple binds only over TLS; without start_tls the gateway says why."""
    auth = DirectoryAuthenticator(ad_settings(url=samba_dc.ldap_url))
    try:
        outcome = await auth.authenticate("ada", AD_PASSWORDS["ada"])
        assert isinstance(outcome, DirectoryUnavailable), outcome
        assert "strongerAuthRequired" in outcome.detail
    finally:
        auth.close()
