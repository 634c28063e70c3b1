"""The directory: and kerberos: sections: what an administrator writes, and every way to get it
wrong, reported with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aupgate.directory import (
    DirectorySettings,
    DirectorySettingsError,
    GroupSettings,
    KerberosSettings,
    parse_directory_settings,
    parse_kerberos_settings,
)
from aupgate.directory.config import check_filter_template

ACTIVE_DIRECTORY = """
directory:
  url: [ldaps://dc1.agency.example, ldaps://dc2.agency.example:3269]
  ca_file: /etc/aupgate/agency-root-ca.pem
  bind_dn: "CN=svc-aupgate,OU=Service Accounts,DC=agency,DC=example"
  bind_password_file: /etc/aupgate/directory-password
  base: "DC=agency,DC=example"
  user_filter: "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user}))"
  user_name_attribute: sAMAccountName
  groups:
    member_of: memberOf
    nested: in_chain
  timeouts: {connect: 2, receive: 5}
  pool_size: 8
  cache: {success_ttl: 10m, failure_ttl: 30s}
  on_unavailable: grace
  grace_period: 4h
kerberos:
  keytab: /etc/aupgate/proxy.keytab
  service_principal: HTTP/proxy.agency.example@AGENCY.EXAMPLE
  realms:
    AGENCY.EXAMPLE: "{user}"
"""

OPENLDAP = """
directory:
  url: ldap://ldap.agency.example
  start_tls: true
  ca_file: /etc/ssl/certs/agency-ca.pem
  bind_dn: cn=aupgate,ou=services,dc=agency,dc=example
  bind_password_file: /etc/aupgate/directory-password
  base: ou=people,dc=agency,dc=example
  user_filter: (uid={user})
  user_name_attribute: uid
  groups:
    member_of: memberOf
    search: {base: "ou=groups,dc=agency,dc=example", filter: "(memberUid={user})"}
    nested: walk
    max_depth: 5
"""


def test_an_active_directory_section() -> None:
    raw = yaml.safe_load(ACTIVE_DIRECTORY)
    settings = parse_directory_settings(raw["directory"], file="modot.yaml")
    assert settings == DirectorySettings(
        urls=("ldaps://dc1.agency.example", "ldaps://dc2.agency.example:3269"),
        base="DC=agency,DC=example",
        user_filter="(&(objectCategory=person)(objectClass=user)(sAMAccountName={user}))",
        user_name_attribute="sAMAccountName",
        bind_dn="CN=svc-aupgate,OU=Service Accounts,DC=agency,DC=example",
        bind_password_file=Path("/etc/aupgate/directory-password"),
        ca_file=Path("/etc/aupgate/agency-root-ca.pem"),
        groups=GroupSettings(nested="in_chain"),
        connect_timeout=2, receive_timeout=5, pool_size=8, success_ttl=600, failure_ttl=30,
        on_unavailable="grace", grace_period=4 * 3600,
    )
    kerberos = parse_kerberos_settings(raw["kerberos"], file="modot.yaml")
    assert kerberos == KerberosSettings(Path("/etc/aupgate/proxy.keytab"),
                                        "HTTP/proxy.agency.example@AGENCY.EXAMPLE",
                                        {"AGENCY.EXAMPLE": "{user}"})


def test_an_openldap_section_and_its_defaults() -> None:
    settings = parse_directory_settings(yaml.safe_load(OPENLDAP)["directory"], file="x.yaml")
    assert settings.start_tls and settings.urls == ("ldap://ldap.agency.example",)
    assert settings.groups == GroupSettings(search_base="ou=groups,dc=agency,dc=example",
                                            search_filter="(memberUid={user})", nested="walk",
                                            max_depth=5)
    assert settings.group_search_base == "ou=groups,dc=agency,dc=example"
    assert (settings.on_unavailable, settings.success_ttl, settings.failure_ttl) == (
        "refuse", 300, 30)


def test_the_documented_examples_parse() -> None:
    """docs/identity.md's YAML blocks are valid settings."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "identity.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```yaml\n")[1:]]
    sections = 0
    for block in blocks:
        raw = yaml.safe_load(block)
        if "directory" in raw:
            parse_directory_settings(raw["directory"], file="identity.md")
            sections += 1
        if "kerberos" in raw:
            parse_kerberos_settings(raw["kerberos"], file="identity.md")
            sections += 1
    assert sections >= 3


BASE = {"url": "ldap://127.0.0.1", "base": "dc=x", "user_filter": "(uid={user})",
        "user_name_attribute": "uid"}


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"url": None}, "directory.url", "required"),
    ({"url": "http://dc1"}, "directory.url", "not an ldap:// or ldaps:// URL"),
    ({"url": "ldap://dc1/dc=x?uid"}, "directory.url", "not an ldap:// or ldaps:// URL"),
    ({"url": "ldap://dc1:99999"}, "directory.url", "out of range"),
    ({"url": []}, "directory.url", "at least one"),
    ({"url": ["ldap://a", 3]}, "directory.url[1]", "not an ldap"),
    ({"base": None}, "directory.base", "required"),
    ({"user_filter": "uid={user}"}, "directory.user_filter", "not an LDAP filter"),
    ({"user_filter": "(uid=alice)"}, "directory.user_filter", "uses no placeholder"),
    ({"user_filter": "(uid={username})"}, "directory.user_filter", "unknown placeholder"),
    ({"user_filter": "(&(uid={user})"}, "directory.user_filter", "unbalanced"),
    ({"user_filter": "(uid={user}{)"}, "directory.user_filter", "not a valid template"),
    ({"user_name_attribute": None}, "directory.user_name_attribute", "required"),
    ({"user_name_attribute": "uid)(x"}, "directory.user_name_attribute", "not an LDAP attribute"),
    ({"bind_dn": "cn=svc"}, "directory.bind_password_file", "required with bind_dn"),
    ({"bind_password_file": "/etc/pw"}, "directory.bind_dn", "required with bind_password_file"),
    ({"bind_dn": "cn=s", "bind_password_file": "pw.txt"}, "directory.bind_password_file",
     "absolute path"),
    ({"url": "ldaps://dc1", "start_tls": True}, "directory.start_tls", "not ldaps"),
    ({"start_tls": "yes"}, "directory.start_tls", "true or false"),
    ({"on_unavailable": "allow"}, "directory.on_unavailable", "refuse, grace"),
    ({"on_unavailable": "grace"}, "directory.grace_period", "required"),
    ({"grace_period": "forever"}, "directory.grace_period", "duration"),
    ({"grace_period": "30d"}, "directory.grace_period", "out of range"),
    ({"cache": {"success_ttl": -1}}, "directory.cache.success_ttl", "out of range"),
    ({"cache": {"ttl": 5}}, "directory.cache.ttl", "unknown key"),
    ({"timeouts": {"receive": 0.5}}, "directory.timeouts.receive", "whole number"),
    ({"timeouts": {"connect": True}}, "directory.timeouts.connect", "expected a number"),
    ({"pool_size": 0}, "directory.pool_size", "out of range"),
    ({"groups": {"nested": "deep"}}, "directory.groups.nested", "auto, in_chain, walk, off"),
    ({"groups": {"search": {"filter": "(member={user_dn})"}}}, "directory.groups.search.filter",
     "unknown placeholder"),
    ({"groups": {"search": {"base": "ou=g"}}}, "directory.groups.search.filter", "required"),
    ({"groups": {"max_depth": 100}}, "directory.groups.max_depth", "out of range"),
    ({"groups": "memberOf"}, "directory.groups", "expected a mapping"),
    ({"password": "hunter2"}, "directory.password", "unknown key"),
    ({"base": "dc=x\ndc=y"}, "directory.base", "control characters"),
])
def test_mistakes_are_named(change: dict[str, object], field: str, message: str) -> None:
    raw = {**BASE, **change}
    with pytest.raises(DirectorySettingsError) as caught:
        parse_directory_settings({k: v for k, v in raw.items() if v is not None},
                                 file="policies/modot.yaml")
    problems = [p for p in caught.value.problems if p.field == field]
    assert problems, caught.value.problems
    assert message in problems[0].message, problems[0]
    assert problems[0].file == "policies/modot.yaml"


def test_every_problem_at_once() -> None:
    with pytest.raises(DirectorySettingsError) as caught:
        parse_directory_settings({"url": "http://x", "user_filter": "uid"}, file="p.yaml")
    assert {p.field for p in caught.value.problems} >= {
        "directory.url", "directory.base", "directory.user_filter",
        "directory.user_name_attribute"}


def test_problems_carry_line_numbers_when_the_loader_knows_them() -> None:
    """The policy loader passes its line_of(container, key); a problem asks it for the line of
    the key at fault."""
    text = ("directory:\n  url: ldap://dc1\n  base: dc=x\n  user_filter: (uid={user})\n"
            "  user_name_attribute: uid\n  on_unavailable: sometimes\n")
    lines = {line.split(":")[0].strip(): n for n, line in enumerate(text.splitlines(), 1)}
    section = yaml.safe_load(text)["directory"]

    def line_of(container: object, key: str | int | None) -> int | None:
        return lines.get(str(key)) if container is section else None

    with pytest.raises(DirectorySettingsError) as caught:
        parse_directory_settings(section, file="policies/modot.yaml", line_of=line_of)
    assert str(caught.value) == ("policies/modot.yaml:6: directory.on_unavailable: expected one "
                                 "of refuse, grace, got 'sometimes'")


@pytest.mark.parametrize(("raw", "field", "message"), [
    ({"realms": {"A.B": "{user}"}}, "kerberos.keytab", "required"),
    ({"keytab": "proxy.keytab", "realms": {"A.B": "{user}"}}, "kerberos.keytab", "absolute"),
    ({"keytab": "/k", "service_principal": "proxy@A.B", "realms": {"A.B": "{user}"}},
     "kerberos.service_principal", "not a service principal"),
    ({"keytab": "/k"}, "kerberos.realms", "required"),
    ({"keytab": "/k", "realms": {}}, "kerberos.realms", "expected a mapping"),
    ({"keytab": "/k", "realms": {"A.B": "alice"}}, "kerberos.realms.A.B", "containing {user}"),
    ({"keytab": "/k", "realms": {"A.B": "{user}@{domain}"}}, "kerberos.realms.A.B",
     "only {user} and {realm}"),
    ({"keytab": "/k", "realms": {"A B": "{user}"}}, "kerberos.realms.A B", "not a Kerberos realm"),
    ({"keytab": "/k", "realms": {"A.B": "{user}"}, "mapping": 1}, "kerberos.mapping",
     "unknown key"),
])
def test_kerberos_mistakes_are_named(raw: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(DirectorySettingsError) as caught:
        parse_kerberos_settings(raw, file="p.yaml")
    problems = [p for p in caught.value.problems if p.field == field]
    assert problems and message in problems[0].message, caught.value.problems


@pytest.mark.parametrize(("template", "ok"), [
    ("(uid={user})", True), ("(&(objectClass=user)(sAMAccountName={user}))", True),
    ("(|(uid={user})(mail={user}))", True), ("(member={dn})", True),
    ("(uid={0})", False), ("(uid={user.__class__})", False), ("(uid={user!r})", False),
    ("(uid={user:>300})", False),
])
def test_filter_templates(template: str, ok: bool) -> None:
    assert (check_filter_template(template, ("user", "dn")) is None) == ok
