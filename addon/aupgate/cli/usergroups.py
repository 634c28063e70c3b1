"""`aupgate explain --user NAME` with a directory: the user's groups as the proxy would see them,
and where each of the user's policy groups came from.

The directory is asked as the proxy asks it, with the policy's service account (its password
file must be readable by whoever runs explain), but without a password: `lookup` finds the user
and resolves their groups, nested ones included. What the directory says is then matched against
the policy's groups exactly as the engine does (`aupgate.directory.membership`), so explain
answers what the gateway would decide for that login.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aupgate.directory import (
    DirectoryAuthenticator,
    DirectorySettings,
    DirectorySettingsError,
    DirectoryUnavailable,
    DirectoryUser,
    Group,
    LoginOk,
)
from aupgate.directory.membership import membership_keys, reference_key
from aupgate.policy.model import Policy

__all__ = ["DirectoryLookups", "UserGroups", "describe", "groups_json"]


@dataclass(frozen=True, slots=True)
class UserGroups:
    """What the directory said about a user: their entry and groups, or why it could not say."""

    user: DirectoryUser | None = None
    problem: str | None = None  # set: the directory was not asked, or could not answer
    keys: frozenset[str] = field(default_factory=frozenset)

    @property
    def name(self) -> str | None:
        return self.user.name.lower() if self.user is not None else None


class DirectoryLookups:
    """One authenticator per directory section, for the whole command (a batch asks once per
    user, the cache answering repeats)."""

    def __init__(self) -> None:
        self._authenticators: dict[DirectorySettings, DirectoryAuthenticator] = {}

    def groups(self, policy: Policy, user: str) -> UserGroups:
        """The user's directory groups; an empty answer with a `problem` when the policy has no
        directory, the password file cannot be read, the user is unknown or the directory is
        down."""
        settings = policy.directory
        if settings is None:
            return UserGroups()
        try:
            authenticator = self._authenticators.get(settings)
            if authenticator is None:
                authenticator = self._authenticators[settings] = DirectoryAuthenticator(settings)
        except DirectorySettingsError as exc:
            return UserGroups(problem="; ".join(str(p) for p in exc.problems))
        outcome = asyncio.run(authenticator.lookup(user))
        if isinstance(outcome, LoginOk):
            return UserGroups(outcome.user, None, membership_keys(outcome.user.groups))
        if isinstance(outcome, DirectoryUnavailable):
            return UserGroups(problem=f"the directory could not answer: {outcome.detail}")
        return UserGroups(problem=f"the directory has no user {user!r} ({outcome.detail})")

    def close(self) -> None:
        for authenticator in self._authenticators.values():
            authenticator.close()
        self._authenticators.clear()


def _matching(group_reference: str, found: UserGroups) -> list[Group]:
    """The user's directory groups a policy group's reference names."""
    if found.user is None:
        return []
    key = reference_key(group_reference)
    return [g for g in found.user.groups if key in membership_keys([g])]


def _how(group: Group) -> str:
    if group.source == "nested":
        return f"nested, via {group.via}" if group.via else "nested"
    return group.source


def groups_json(policy: Policy, user: str | None, found: UserGroups) -> dict[str, Any]:
    """The `groups` object of `explain --json`: each policy group and where it came from."""
    out: dict[str, Any] = {"policy_groups": []}
    lowered = user.lower() if user else None
    for name, references in policy.group_sources(lowered, found.keys).items():
        sources: list[dict[str, Any]] = []
        for reference in references:
            if reference == "members":
                sources.append({"from": "members"})
                continue
            for group in _matching(reference, found):
                sources.append({"from": "directory", "reference": reference, "dn": group.dn,
                                "found_by": group.source, "via": group.via})
        out["policy_groups"].append({"group": name, "sources": sources})
    if policy.directory is not None:
        out["directory"] = ({"error": found.problem} if found.user is None else {
            "user": found.user.name, "dn": found.user.dn,
            "groups": [{"name": g.name, "dn": g.dn, "found_by": g.source, "via": g.via}
                       for g in found.user.groups]})
    return out


def describe(policy: Policy, user: str | None, found: UserGroups) -> list[str]:
    """The `groups` lines of the human answer."""
    lines: list[str] = []
    if policy.directory is not None and user:
        if found.user is None:
            lines.append(f"  directory {found.problem}; deciding with the policy's own "
                         "members lists only")
        else:
            names = ", ".join(sorted(found.user.group_names)) or "none"
            lines.append(f"  directory {found.user.name} ({found.user.dn}); groups: {names}")
    sources = policy.group_sources(user.lower() if user else None, found.keys)
    for name, references in sources.items():
        reasons: list[str] = []
        for reference in references:
            if reference == "members":
                reasons.append("listed in its members")
                continue
            for group in _matching(reference, found):
                reasons.append(f"directory group {reference!r} ({group.dn}, {_how(group)})")
        lines.append(f"  group    {name}: " + "; ".join(reasons))
    if user and not sources and policy.directory is not None:
        lines.append("  group    none of the policy's groups")
    return lines
