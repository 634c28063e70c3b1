"""The `directory` and `kerberos` sections: where logins are checked, and single sign-on.

The settings themselves are parsed by `aupgate.directory` (its parsers know every key and its
limits); this reader hands them the located YAML so each problem names file, line and field like
the rest of the file, and checks what only the whole policy can: Kerberos needs a directory (the
user's groups are looked up there), and a policy group can name directory groups only when there
is a directory to ask.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aupgate.directory.config import (
    DirectorySettings,
    DirectorySettingsError,
    KerberosSettings,
    parse_directory_settings,
    parse_kerberos_settings,
)
from aupgate.yamlsource import FieldReader, kind_of, line_of

from ..model import Group

__all__ = ["read_directory"]


def read_directory(reader: FieldReader, top: Mapping[str, Any], groups: Mapping[str, Group]
                   ) -> tuple[DirectorySettings | None, KerberosSettings | None]:
    directory = _section(reader, top, "directory")
    kerberos = _section(reader, top, "kerberos")
    settings: DirectorySettings | None = None
    sso: KerberosSettings | None = None
    if directory is not None:
        try:
            settings = parse_directory_settings(directory, file=reader.file, line_of=line_of)
        except DirectorySettingsError as exc:
            reader.problems += exc.problems
        if settings is not None and not settings.start_tls:
            for url in settings.urls:
                host = urlsplit(url).hostname or ""
                if url.lower().startswith("ldap://") and not _loopback(host):
                    reader.problem(directory, "url", "directory.url",
                                   f"{url} without start_tls: passwords cross the network "
                                   "unencrypted (use ldaps:// or start_tls: true)", "warning")
    if kerberos is not None:
        try:
            sso = parse_kerberos_settings(kerberos, file=reader.file, line_of=line_of)
        except DirectorySettingsError as exc:
            reader.problems += exc.problems
        if directory is None:
            reader.problem(top, "kerberos", "kerberos",
                           "needs a directory: section (the groups of a user who signed in "
                           "with Kerberos are looked up in the directory)")
    if directory is None:
        for group in groups.values():
            if group.directory:
                reader.problem(_group_item(top, group.name), "directory",
                               f"identity.groups.{group.name}.directory",
                               "names directory groups, but this policy has no directory: "
                               "section to look them up in")
    return settings, sso


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _section(reader: FieldReader, top: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    if key not in top:
        return None
    value = top[key]
    if not isinstance(value, dict):
        reader.problem(top, key, key, f"expected a mapping, got {kind_of(value)}")
        return None
    return value


def _group_item(top: Mapping[str, Any], name: str) -> object:
    identity = top.get("identity")
    groups = identity.get("groups") if isinstance(identity, dict) else None
    return groups.get(name) if isinstance(groups, dict) else None
