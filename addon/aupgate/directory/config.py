"""The `directory:` and `kerberos:` settings of a policy, and their strict parsing.

Parsing takes a plain mapping (what a YAML loader returns) so it can be tested without files; the
caller passes the file name and, if it has one, a `line_of(container, key)` function so every
problem names file, line and field like the rest of the policy language. Unknown keys are errors,
because a misspelt `on_unavailable` silently falling back to a default is exactly the kind of
mistake that opens a gateway.

Nothing here touches the network or reads the password file: settings hold its path, and the
authenticator reads it when it starts (so `repr(settings)` can never show a secret).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aupgate.errors import Problem, ProblemsError
from aupgate.yamlsource import kind_of

NestedMode = Literal["auto", "in_chain", "walk", "off"]
OnUnavailable = Literal["refuse", "grace"]
LineOf = Callable[[object, "str | int | None"], "int | None"]

NESTED_MODES: tuple[NestedMode, ...] = ("auto", "in_chain", "walk", "off")
ON_UNAVAILABLE: tuple[OnUnavailable, ...] = ("refuse", "grace")
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$|^[0-9]+(\.[0-9]+)+$")
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
MAX_REALM_LENGTH = 120
_REALM = re.compile(r"^[A-Za-z0-9._-]+$")


class DirectorySettingsError(ProblemsError):
    """A `directory:` or `kerberos:` section that must not be used."""


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """How a user's groups are found.

    `member_of`: attribute on the user entry listing direct groups (AD and OpenLDAP's memberof
    overlay: `memberOf`), or None. `search_filter`: a group search such as `(member={dn})` or
    `(memberUid={user})` under `search_base`, or None. `nested`: how groups of groups are found:
    `in_chain` (Active Directory's LDAP_MATCHING_RULE_IN_CHAIN, one query), `walk` (follow
    `nested_member_attribute` upwards, `max_depth` levels, cycle-safe; works everywhere), `auto`
    (in_chain where the server says it is Active Directory, walk elsewhere) or `off`.
    """

    member_of: str | None = "memberOf"
    search_base: str | None = None
    search_filter: str | None = None
    name_attribute: str = "cn"
    nested: NestedMode = "auto"
    nested_member_attribute: str = "member"
    max_depth: int = 8


@dataclass(frozen=True, slots=True)
class DirectorySettings:
    """Where the directory is and how logins are checked against it (see docs/identity.md)."""

    urls: tuple[str, ...]
    base: str
    user_filter: str
    user_name_attribute: str
    bind_dn: str | None = None
    bind_password_file: Path | None = None
    start_tls: bool = False
    ca_file: Path | None = None
    groups: GroupSettings = field(default_factory=GroupSettings)
    connect_timeout: float = 3.0
    receive_timeout: int = 5  # whole seconds: ldap3 sets SO_RCVTIMEO from an integer
    pool_size: int = 4
    success_ttl: float = 300.0
    failure_ttl: float = 30.0
    on_unavailable: OnUnavailable = "refuse"
    grace_period: float = 0.0
    max_user_length: int = 256
    cache_size: int = 10000
    realm: str | None = None  # the Basic realm (the login prompt's text); None: from the policy

    @property
    def group_search_base(self) -> str:
        return self.groups.search_base or self.base


@dataclass(frozen=True, slots=True)
class KerberosSettings:
    """Single sign-on with Kerberos (HTTP Negotiate).

    `realms` maps each accepted client realm to a template for the directory user name, with
    `{user}` (the principal's name before the @) and `{realm}`; a realm not listed is refused.
    """

    keytab: Path
    service_principal: str | None
    realms: Mapping[str, str]


class _Reader:
    """Collects problems while reading one section; every lookup knows its field path."""

    def __init__(self, file: str, line_of: LineOf | None) -> None:
        self.file = file
        self.line_of = line_of
        self.problems: list[Problem] = []

    def problem(self, container: object, key: str | None, field_path: str, message: str) -> None:
        line = self.line_of(container, key) if self.line_of is not None else None
        self.problems.append(Problem(self.file, line, field_path, message))

    def mapping(self, value: object, field_path: str, allowed: tuple[str, ...],
                parent: object = None, key: str | None = None) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.problem(parent, key, field_path, f"expected a mapping, got {kind_of(value)}")
            return {}
        for name in value:
            if name not in allowed:
                self.problem(value, str(name), f"{field_path}.{name}",
                             f"unknown key (expected one of: {', '.join(allowed)})")
        return value

    def string(self, parent: Mapping[str, Any], key: str, field_path: str, *,
               required: bool = False) -> str | None:
        if key not in parent or parent[key] is None:
            if required:
                self.problem(parent, None, field_path, "required")
            return None
        value = parent[key]
        if not isinstance(value, str) or not value.strip():
            self.problem(parent, key, field_path, "is empty" if isinstance(value, str)
                         else f"expected text, got {kind_of(value)}")
            return None
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            self.problem(parent, key, field_path, "contains control characters")
            return None
        return value

    def attribute(self, parent: Mapping[str, Any], key: str, field_path: str,
                  default: str | None) -> str | None:
        if key in parent and parent[key] is False:
            return None
        value = self.string(parent, key, field_path)
        if value is None:
            return default
        if not _ATTRIBUTE.match(value):
            self.problem(parent, key, field_path, f"{value!r} is not an LDAP attribute name")
            return default
        return value

    def number(self, parent: Mapping[str, Any], key: str, field_path: str, default: float, *,
               minimum: float, maximum: float, duration: bool = False,
               whole: bool = False) -> float:
        if key not in parent:
            return default
        value = parent[key]
        seconds: float | None = None
        if isinstance(value, bool):
            seconds = None
        elif isinstance(value, int | float):
            seconds = float(value)
        elif duration and isinstance(value, str) and (m := _DURATION.match(value)):
            seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        if seconds is None:
            wanted = "a number of seconds or a duration like 5m" if duration else "a number"
            self.problem(parent, key, field_path, f"expected {wanted}, got {value!r}")
            return default
        if whole and seconds != int(seconds):
            self.problem(parent, key, field_path, f"expected a whole number, got {value!r}")
            return default
        if not minimum <= seconds <= maximum:
            self.problem(parent, key, field_path,
                         f"{value!r} is out of range ({minimum:g} to {maximum:g})")
            return default
        return seconds

    def boolean(self, parent: Mapping[str, Any], key: str, field_path: str,
                default: bool) -> bool:
        value = parent.get(key, default)
        if not isinstance(value, bool):
            self.problem(parent, key, field_path, f"expected true or false, got {value!r}")
            return default
        return value

    def choice(self, parent: Mapping[str, Any], key: str, field_path: str,
               choices: tuple[str, ...], default: str) -> str:
        value = parent.get(key, default)
        if value not in choices:
            self.problem(parent, key, field_path,
                         f"expected one of {', '.join(choices)}, got {value!r}")
            return default
        return str(value)

    def path(self, parent: Mapping[str, Any], key: str, field_path: str, *,
             required: bool = False) -> Path | None:
        value = self.string(parent, key, field_path, required=required)
        if value is None:
            return None
        path = Path(value)
        if not path.is_absolute():
            self.problem(parent, key, field_path, f"{value!r} must be an absolute path")
            return None
        return path

    def filter_template(self, parent: Mapping[str, Any], key: str, field_path: str,
                        placeholders: tuple[str, ...], *, required: bool) -> str | None:
        value = self.string(parent, key, field_path, required=required)
        if value is None:
            return None
        problem = check_filter_template(value, placeholders)
        if problem:
            self.problem(parent, key, field_path, problem)
            return None
        return value


def check_filter_template(template: str, placeholders: tuple[str, ...]) -> str | None:
    """Why a filter template is unusable, or None: it must be one parenthesised LDAP filter, use
    only the known placeholders, and use at least one (a filter without the user in it would
    match the same entry for everybody)."""
    if not (template.startswith("(") and template.endswith(")")):
        return f"{template!r} is not an LDAP filter (it must start with '(' and end with ')')"
    if template.count("(") != template.count(")"):
        return f"{template!r} has unbalanced parentheses"
    used = set(re.findall(r"\{([^{}]*)\}", template))
    unknown = used - set(placeholders)
    if unknown:
        return (f"unknown placeholder {{{sorted(unknown)[0]}}} (use "
                + " or ".join("{" + p + "}" for p in placeholders) + ")")
    if not used:
        return ("uses no placeholder; it must contain "
                + " or ".join("{" + p + "}" for p in placeholders))
    try:
        template.format(**{p: "x" for p in placeholders})
    except (ValueError, IndexError, KeyError) as e:
        return f"{template!r} is not a valid template: {e}"
    return None


_DIRECTORY_KEYS = ("url", "start_tls", "ca_file", "bind_dn", "bind_password_file", "base",
                   "user_filter", "user_name_attribute", "groups", "timeouts", "pool_size",
                   "cache", "on_unavailable", "grace_period", "max_user_length",
                   "realm")
_GROUP_KEYS = ("member_of", "search", "name_attribute", "nested", "nested_member_attribute",
               "max_depth")


def parse_directory_settings(raw: object, *, file: str, line_of: LineOf | None = None,
                             field_path: str = "directory") -> DirectorySettings:
    """Read a `directory:` section; raises DirectorySettingsError listing every problem."""
    r = _Reader(file, line_of)
    top = r.mapping(raw, field_path, _DIRECTORY_KEYS)
    f = field_path
    urls = _urls(r, top, f"{f}.url")
    base = r.string(top, "base", f"{f}.base", required=True)
    user_filter = r.filter_template(top, "user_filter", f"{f}.user_filter", ("user",),
                                    required=True)
    name_attr = r.attribute(top, "user_name_attribute", f"{f}.user_name_attribute", None)
    if name_attr is None and "user_name_attribute" not in top:
        r.problem(top, None, f"{f}.user_name_attribute",
                  "required (sAMAccountName for Active Directory, uid for OpenLDAP)")
    bind_dn = r.string(top, "bind_dn", f"{f}.bind_dn")
    password_file = r.path(top, "bind_password_file", f"{f}.bind_password_file")
    if bind_dn is not None and password_file is None and "bind_password_file" not in top:
        r.problem(top, None, f"{f}.bind_password_file", "required with bind_dn")
    if password_file is not None and bind_dn is None and "bind_dn" not in top:
        r.problem(top, None, f"{f}.bind_dn", "required with bind_password_file")
    start_tls = r.boolean(top, "start_tls", f"{f}.start_tls", False)
    if start_tls and any(u.lower().startswith("ldaps://") for u in urls):
        r.problem(top, "start_tls", f"{f}.start_tls", "start_tls is for ldap:// URLs, not ldaps://")
    ca_file = r.path(top, "ca_file", f"{f}.ca_file")
    groups = _groups(r, top.get("groups", {}), f"{f}.groups", top)
    timeouts = r.mapping(top.get("timeouts", {}), f"{f}.timeouts", ("connect", "receive"),
                         top, "timeouts")
    cache = r.mapping(top.get("cache", {}), f"{f}.cache", ("success_ttl", "failure_ttl", "size"),
                      top, "cache")
    on_unavailable = r.choice(top, "on_unavailable", f"{f}.on_unavailable", ON_UNAVAILABLE,
                              "refuse")
    grace = r.number(top, "grace_period", f"{f}.grace_period", 0.0, minimum=0,
                     maximum=7 * 86400, duration=True)
    if on_unavailable == "grace" and grace <= 0:
        r.problem(top, "on_unavailable", f"{f}.grace_period",
                  "required (and above zero) with on_unavailable: grace")
    realm = r.string(top, "realm", f"{f}.realm")
    if realm is not None and len(realm) > MAX_REALM_LENGTH:
        r.problem(top, "realm", f"{f}.realm", f"longer than {MAX_REALM_LENGTH} characters")
        realm = None
    settings = DirectorySettings(
        urls=urls, base=base or "", user_filter=user_filter or "(uid={user})",
        user_name_attribute=name_attr or "uid", bind_dn=bind_dn, bind_password_file=password_file,
        start_tls=start_tls, ca_file=ca_file, groups=groups,
        connect_timeout=r.number(timeouts, "connect", f"{f}.timeouts.connect", 3.0,
                                 minimum=0.1, maximum=60, duration=True),
        receive_timeout=int(r.number(timeouts, "receive", f"{f}.timeouts.receive", 5,
                                     minimum=1, maximum=120, whole=True, duration=True)),
        pool_size=int(r.number(top, "pool_size", f"{f}.pool_size", 4, minimum=1, maximum=64,
                               whole=True)),
        success_ttl=r.number(cache, "success_ttl", f"{f}.cache.success_ttl", 300.0, minimum=0,
                             maximum=86400, duration=True),
        failure_ttl=r.number(cache, "failure_ttl", f"{f}.cache.failure_ttl", 30.0, minimum=0,
                             maximum=3600, duration=True),
        cache_size=int(r.number(cache, "size", f"{f}.cache.size", 10000, minimum=1,
                                maximum=10_000_000, whole=True)),
        on_unavailable="grace" if on_unavailable == "grace" else "refuse",
        grace_period=grace,
        max_user_length=int(r.number(top, "max_user_length", f"{f}.max_user_length", 256,
                                     minimum=1, maximum=1024, whole=True)),
        realm=realm,
    )
    if r.problems:
        raise DirectorySettingsError(r.problems)
    return settings


def _urls(r: _Reader, top: Mapping[str, Any], field_path: str) -> tuple[str, ...]:
    raw = top.get("url")
    if raw is None:
        r.problem(top, None, field_path, "required (ldap://host, ldaps://host or a list of them)")
        return ()
    values = raw if isinstance(raw, list) else [raw]
    urls: list[str] = []
    for i, value in enumerate(values):
        where = f"{field_path}[{i}]" if isinstance(raw, list) else field_path
        if not isinstance(value, str) or not re.match(
                r"^ldaps?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?/?$", value):
            r.problem(top, "url", where,
                      f"{value!r} is not an ldap:// or ldaps:// URL with a host and optional port")
            continue
        port = re.search(r":([0-9]{1,5})/?$", value)
        if port and not 0 < int(port.group(1)) < 65536:
            r.problem(top, "url", where, f"port {port.group(1)} is out of range")
            continue
        urls.append(value.rstrip("/"))
    if isinstance(raw, list) and not raw:
        r.problem(top, "url", field_path, "expected at least one URL")
    return tuple(urls)


def _groups(r: _Reader, raw: object, f: str, parent: object) -> GroupSettings:
    top = r.mapping(raw, f, _GROUP_KEYS, parent, "groups")
    search_base: str | None = None
    search_filter: str | None = None
    if "search" in top and top["search"] is not None:
        search = r.mapping(top["search"], f"{f}.search", ("base", "filter"), top, "search")
        search_base = r.string(search, "base", f"{f}.search.base")
        search_filter = r.filter_template(search, "filter", f"{f}.search.filter",
                                          ("dn", "user"), required=True)
    nested = r.choice(top, "nested", f"{f}.nested", NESTED_MODES, "auto")
    return GroupSettings(
        member_of=r.attribute(top, "member_of", f"{f}.member_of", "memberOf"),
        search_base=search_base,
        search_filter=search_filter,
        name_attribute=r.attribute(top, "name_attribute", f"{f}.name_attribute", "cn") or "cn",
        nested=next(m for m in NESTED_MODES if m == nested),
        nested_member_attribute=r.attribute(top, "nested_member_attribute",
                                            f"{f}.nested_member_attribute", "member") or "member",
        max_depth=int(r.number(top, "max_depth", f"{f}.max_depth", 8, minimum=1, maximum=64,
                               whole=True)),
    )


def parse_kerberos_settings(raw: object, *, file: str, line_of: LineOf | None = None,
                            field_path: str = "kerberos") -> KerberosSettings:
    """Read a `kerberos:` section; raises DirectorySettingsError listing every problem."""
    r = _Reader(file, line_of)
    top = r.mapping(raw, field_path, ("keytab", "service_principal", "realms"))
    keytab = r.path(top, "keytab", f"{field_path}.keytab", required=True)
    principal = r.string(top, "service_principal", f"{field_path}.service_principal")
    if principal is not None and not re.match(r"^[^@/\s]+/[^@/\s]+@[A-Za-z0-9._-]+$", principal):
        r.problem(top, "service_principal", f"{field_path}.service_principal",
                  f"{principal!r} is not a service principal like HTTP/proxy.agency.example@REALM")
    realms: dict[str, str] = {}
    raw_realms = top.get("realms")
    if raw_realms is None:
        r.problem(top, None, f"{field_path}.realms",
                  "required: the client realms to accept, e.g. {AGENCY.EXAMPLE: '{user}'}")
    elif not isinstance(raw_realms, Mapping) or not raw_realms:
        r.problem(top, "realms", f"{field_path}.realms",
                  "expected a mapping of realm to user name template")
    else:
        for realm, template in raw_realms.items():
            where = f"{field_path}.realms.{realm}"
            if not isinstance(realm, str) or not _REALM.match(realm):
                r.problem(raw_realms, str(realm), where, f"{realm!r} is not a Kerberos realm")
            elif not isinstance(template, str) or "{user}" not in template:
                r.problem(raw_realms, realm, where,
                          "expected a user name template containing {user}, e.g. '{user}'")
            elif set(re.findall(r"\{([^{}]*)\}", template)) - {"user", "realm"}:
                r.problem(raw_realms, realm, where, "only {user} and {realm} may be used")
            else:
                realms[realm] = template
    if r.problems:
        raise DirectorySettingsError(r.problems)
    assert keytab is not None
    return KerberosSettings(keytab=keytab, service_principal=principal, realms=realms)
