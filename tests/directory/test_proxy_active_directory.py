"""Active Directory logins through a real `aupgate run`: Samba's AD DC over LDAPS, names by
sAMAccountName, nested groups by LDAP_MATCHING_RULE_IN_CHAIN named in the policy by name and by
DN, and AD's own reasons for a refused bind in the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_support import invalid_lines, lab_policy, login, start_directory_proxy
from samba_server import AD_PASSWORDS, BASE, SERVICE_DN, SERVICE_PASSWORD, SambaDc

from e2e.conftest import Certs, Proxy, Upstreams, stop_proxy

pytestmark = pytest.mark.e2e

GROUPS = f"""\
  groups:
    engineers:
      description: Web filter admins, named by DN in another case and spacing
      directory: ["cn=web filter admins, cn=users, {BASE.lower()}"]
    employees:
      description: Everyone (AD's All Staff, reached through IT Staff by in-chain)
      directory: [All Staff]
    finance:
      description: Finance
      directory: ["Finance, Budget"]
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, certs: Certs, upstreams: Upstreams,
          samba_dc: SambaDc) -> Iterator[Proxy]:
    home = tmp_path_factory.mktemp("ad-proxy")
    secret = home.parent / f"{home.name}-password"
    secret.write_text(SERVICE_PASSWORD + "\n")
    secret.chmod(0o600)
    directory = f"""directory:
  url: {samba_dc.ldaps_url}
  ca_file: {samba_dc.ca_file}
  bind_dn: "{SERVICE_DN}"
  bind_password_file: {secret}
  base: "{BASE}"
  user_filter: "(&(objectCategory=person)(objectClass=user)(sAMAccountName={{user}}))"
  user_name_attribute: sAMAccountName
  realm: Lab internet gateway (AD)
"""
    started = start_directory_proxy(home, certs, upstreams,
                                    lab_policy("", Path(), groups=GROUPS, directory=directory))
    yield started
    stop_proxy(started)


def test_nested_groups_by_in_chain(proxy: Proxy) -> None:
    ada, ann = ("ada", AD_PASSWORDS["ada"]), ("ann", AD_PASSWORDS["ann"])
    assert login(proxy, "http://mail.yahoo.com/", *ada).status == 403  # engineers, by DN
    assert login(proxy, "http://www.facebook.com/", *ada).status == 200  # All Staff, nested
    assert login(proxy, "http://www.bet365.com/", *ada).status == 200  # the finance grant
    assert login(proxy, "http://mail.yahoo.com/", *ann).status == 200  # no groups: logged
    assert login(proxy, "http://www.facebook.com/", *ann).status == 403  # warned
    [event] = proxy.events("login", user="ada")
    assert event["groups"] == ["All Staff", "Finance, Budget", "IT Staff", "Web Filter Admins"]


@pytest.mark.parametrize(("user", "detail"), [
    ("dan", "account disabled"),
    ("mia", "password must be reset"),
])
def test_ads_own_reasons_are_audited(proxy: Proxy, user: str, detail: str) -> None:
    result = login(proxy, "http://www.example.org/ad", user, AD_PASSWORDS[user])
    assert result.status == 407
    assert 'realm="Lab internet gateway (AD)"' in result.headers
    [event] = proxy.events("login_failed", user=user)
    assert (event["reason"], event["detail"]) == ("bad_credentials", detail)
    assert invalid_lines(proxy) == []
