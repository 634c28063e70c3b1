"""Fixtures for the directory tests: a real slapd for the session, a private one for tests that
kill or restart it, settings built through the real parser, and a clock the test moves."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from directory_support import KERBEROS_PASSWORDS, FakeClock, Kerberos, SettingsFactory
from kdc_server import Realm, krb5_conf, tools_missing
from samba_server import BASE as AD_BASE
from samba_server import SERVICE_DN as AD_SERVICE_DN
from samba_server import SERVICE_PASSWORD as AD_SERVICE_PASSWORD
from samba_server import SambaDc, running_samba_dc
from slapd_server import BASE, SERVICE_DN, SERVICE_PASSWORD, SlapdServer, running_slapd

from aupgate.directory import DirectorySettings, parse_directory_settings

# the end-to-end tests' test CA and local upstreams, for the tests through a real `aupgate run`
from e2e.conftest import certs as certs
from e2e.conftest import upstreams as upstreams


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """The shared directory; tests must leave it running."""
    with running_slapd(tmp_path_factory.mktemp("slapd")) as server:
        yield server


@pytest.fixture
def own_slapd(tmp_path: Path) -> Iterator[SlapdServer]:
    """A directory of this test's own, to stop, kill and restart."""
    with running_slapd(tmp_path / "slapd") as server:
        yield server


@pytest.fixture(scope="session")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "directory-password"
    path.write_text(SERVICE_PASSWORD + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def make_settings(password_file: Path) -> SettingsFactory:
    """Settings for a server, from the YAML-shaped mapping an administrator would write, with
    `overrides` merged in (a `groups` override replaces the default groups section)."""
    def build(server: SlapdServer, *, url: str | None = None,
              **overrides: Any) -> DirectorySettings:
        raw: dict[str, Any] = {
            "url": url or server.ldap_url,
            "bind_dn": SERVICE_DN,
            "bind_password_file": str(password_file),
            "base": BASE,
            "user_filter": "(&(objectClass=inetOrgPerson)(uid={user}))",
            "user_name_attribute": "uid",
            "groups": {"member_of": "memberOf", "nested": "auto"},
            "timeouts": {"connect": 2, "receive": 3},
            "pool_size": 2,
        }
        raw.update(overrides)
        return parse_directory_settings(raw, file="test-policy.yaml")
    return build


# --- Kerberos ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def kerberos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kerberos]:
    """The KDCs run for the session; KRB5_CONFIG (clockskew 1 s, so a stale ticket shows within
    seconds) and the replay cache directory point at temporary files for this process too,
    since the acceptor runs in it."""
    missing = tools_missing()
    if missing:
        pytest.skip(f"MIT Kerberos is not installed ({', '.join(missing)}): apt-get install "
                    "krb5-kdc krb5-admin-server krb5-user")
    root = tmp_path_factory.mktemp("kerberos")
    env = {"KRB5_CONFIG": str(root / "krb5.conf"), "KRB5RCACHEDIR": str(root)}
    saved = {k: os.environ.get(k) for k in (*env, "KRB5CCNAME")}
    os.environ.update(env)
    aup, other = Realm("AUP.TEST", root / "aup", env), Realm("OTHER.TEST", root / "other", env)
    (root / "krb5.conf").write_text(krb5_conf([aup, other], clockskew=1), encoding="utf-8")
    try:
        for realm in (aup, other):
            realm.create()
        aup.add_user("alice", KERBEROS_PASSWORDS["alice"])
        aup.add_user("carol", KERBEROS_PASSWORDS["carol"])  # in no policy group
        other.add_user("bob", KERBEROS_PASSWORDS["bob"])
        keytab, other_keytab = root / "http.keytab", root / "other-http.keytab"
        both, pc = root / "both-http.keytab", root / "pc1.keytab"
        aup.add_service("HTTP/localhost", keytab)
        other.add_service("HTTP/localhost", other_keytab)
        aup.add_service("host/pc1", pc)
        both.write_bytes(keytab.read_bytes() + other_keytab.read_bytes()[2:])
        for realm in (aup, other):
            realm.start()
        yield Kerberos(root, aup, other, keytab, other_keytab, both, pc)
    finally:
        for realm in (aup, other):
            realm.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- Active Directory (Samba AD DC) -----------------------------------------------------------

@pytest.fixture(scope="module")
def samba_dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDc]:
    """A DC per module (provisioning takes a few seconds): 127.0.0.1:389 is held only while
    the Active Directory tests run, not for the rest of the session (see samba_server.py)."""
    with running_samba_dc(tmp_path_factory.mktemp("samba")) as dc:
        yield dc


@pytest.fixture
def ad_settings(samba_dc: SambaDc, tmp_path: Path) -> SettingsFactory:
    """Settings for the Samba domain as an agency would write them for Active Directory."""
    password_file = tmp_path / "ad-password"
    password_file.write_text(AD_SERVICE_PASSWORD + "\n", encoding="utf-8")
    password_file.chmod(0o600)

    def build(**overrides: Any) -> DirectorySettings:
        raw: dict[str, Any] = {
            "url": samba_dc.ldaps_url, "ca_file": str(samba_dc.ca_file),
            "bind_dn": AD_SERVICE_DN, "bind_password_file": str(password_file),
            "base": AD_BASE,
            "user_filter": "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user}))",
            "user_name_attribute": "sAMAccountName",
            "pool_size": 2,
        }
        raw.update(overrides)
        return parse_directory_settings(raw, file="test-policy.yaml")
    return build
