"""The `identity` section: client networks (and the device class they imply) and groups."""

from __future__ import annotations

import ipaddress
from typing import Any

from aupgate.directory.membership import reference_key, reference_problem
from aupgate.yamlsource import FieldReader, keys_of, line_of

from ..model import DEVICES, ID, Group, IPNetwork, Network

__all__ = ["read_cidr", "read_identity"]

_NETWORK_KEYS = ("name", "cidrs", "device", "department")
_GROUP_KEYS = ("description", "members", "directory")


def read_identity(
    reader: FieldReader, top: dict[str, Any]
) -> tuple[list[Network], dict[str, Group]]:
    ident = reader.mapping(top, "identity", "identity", ("networks", "groups"))
    networks: list[Network] = []
    groups: dict[str, Group] = {}
    if ident is None:
        return networks, groups
    raw_networks = reader.sequence(ident, "networks", "identity.networks", null_is_empty=False)
    seen_prefixes: dict[IPNetwork, str] = {}
    for i, _item in enumerate(raw_networks):
        field = f"identity.networks[{i}]"
        item = reader.mapping(raw_networks, i, field, _NETWORK_KEYS, ("name", "cidrs"))
        if item is None:
            continue
        name = reader.string(item, "name", field)
        if name is not None and any(n.name == name for n in networks):
            reader.problem(item, "name", f"{field}.name", f"network '{name}' is defined twice")
        cidrs: list[IPNetwork] = []
        for j, text in reader.strings(item, "cidrs", field):
            cidr = read_cidr(reader, item["cidrs"], j, f"{field}.cidrs[{j}]", text)
            if cidr is None:
                continue
            if cidr in seen_prefixes:
                reader.problem(
                    item["cidrs"],
                    j,
                    f"{field}.cidrs[{j}]",
                    f"{cidr} is already in network '{seen_prefixes[cidr]}'",
                )
            seen_prefixes[cidr] = name or field
            cidrs.append(cidr)
        device = reader.string(item, "device", field)
        if device is not None and device not in DEVICES:
            reader.problem(
                item,
                "device",
                f"{field}.device",
                f"unknown device class '{device}' (one of: {', '.join(DEVICES)})",
            )
        if name is not None and cidrs:
            department = reader.string(item, "department", field)
            networks.append(
                Network(name, tuple(cidrs), device, department, line_of(raw_networks, i))
            )
    raw_groups = reader.mapping(ident, "groups", "identity.groups", keys_of(ident.get("groups")))
    for gname in raw_groups or {}:
        field = f"identity.groups.{gname}"
        if not ID.match(gname):
            reader.problem(raw_groups, gname, field, f"'{gname}' is not a valid id ([a-z0-9-]+)")
        group = reader.mapping(raw_groups, gname, field, _GROUP_KEYS, ("description",))
        if group is None:
            continue
        members = frozenset(m.lower() for _, m in reader.strings(group, "members", field))
        references = read_directory_groups(reader, group, field)
        groups[gname] = Group(gname, reader.string(group, "description", field) or "", members,
                              references, frozenset(reference_key(r) for r in references))
    return networks, groups


def read_directory_groups(reader: FieldReader, group: dict[str, Any], field: str
                          ) -> tuple[str, ...]:
    """`directory:` of a policy group: directory groups by name or DN, each checked; a group
    named twice (in any spelling of the same name or DN) is an error."""
    references: list[str] = []
    seen: dict[str, str] = {}
    where = f"{field}.directory"
    listed = isinstance(group.get("directory"), list)
    for i, reference in reader.strings(group, "directory", field):
        container, key_of = (group["directory"], i) if listed else (group, "directory")
        problem = reference_problem(reference)
        if problem is not None:
            reader.problem(container, key_of, f"{where}[{i}]", problem)
            continue
        key = reference_key(reference)
        if key in seen:
            reader.problem(container, key_of, f"{where}[{i}]",
                           f"'{reference}' names the same directory group as '{seen[key]}'")
            continue
        seen[key] = reference
        references.append(reference.strip())
    if "directory" in group and not references and not any(
            p.field.startswith(where) for p in reader.problems):
        reader.problem(group, "directory", where, "must list at least one directory group")
    return tuple(references)


def read_cidr(reader: FieldReader, container: object, key: int, field: str, text: str
              ) -> IPNetwork | None:
    """One network in CIDR notation, host bits clear; None and a problem otherwise."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        reader.problem(container, key, field, f"bad CIDR '{text}': {exc}")
        return None
