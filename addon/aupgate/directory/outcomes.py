"""What a login or a directory look-up comes to, as values the proxy can decide and audit on.

Outcomes never hold a password: the only place a password lives is the call that checks it. The
user name a client typed is attacker-controlled, so outcomes carry it through `loggable_name`,
which bounds its length and makes control characters visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from .dn import dn_key

GroupSource = Literal["memberOf", "search", "nested"]
AnswerSource = Literal["directory", "cache", "grace"]
FailureReason = Literal["malformed", "invalid_name", "bad_credentials", "unknown_user"]

LOGGED_NAME_LIMIT = 64


def loggable_name(name: str) -> str:
    """The name as typed, safe for one log field: control and format characters as \\xNN /
    \\uNNNN escapes, cut to 64 characters (with a marker) so a 1 MB name is not logged whole."""
    shown = []
    for char in name[:LOGGED_NAME_LIMIT]:
        code = ord(char)
        if code < 32 or code == 127:
            shown.append(f"\\x{code:02x}")
        elif 0x80 <= code < 0xA0 or code in (0x200B, 0x200C, 0x200D, 0x2028, 0x2029, 0xFEFF) \
                or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069 or 0xD800 <= code < 0xE000:
            shown.append(f"\\u{code:04x}")
        else:
            shown.append(char)
    if len(name) > LOGGED_NAME_LIMIT:
        shown.append(f"…(+{len(name) - LOGGED_NAME_LIMIT} characters)")
    return "".join(shown)


@dataclass(frozen=True, slots=True)
class Group:
    """One group a user is in, and how we know: `memberOf` on the user entry, the configured group
    `search`, or `nested` (a group of one of those; `via` is the DN of the group it contains,
    when the directory said which)."""

    dn: str
    name: str
    source: GroupSource
    via: str | None = None


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user as the directory knows them: the canonical name (from `user_name_attribute`, so
    `ALICE` and `alice` are one person), the entry's DN and every group."""

    name: str
    dn: str
    groups: tuple[Group, ...] = ()

    def in_group(self, name_or_dn: str) -> bool:
        """Whether the user is in a group given by name (case-insensitive, as directories compare
        `cn`) or by DN (compared attribute by attribute, ignoring case and escaping style)."""
        wanted = name_or_dn.casefold()
        if "=" in name_or_dn:
            key = dn_key(name_or_dn)
            return any(dn_key(g.dn) == key for g in self.groups)
        return any(g.name.casefold() == wanted for g in self.groups)

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups)


@dataclass(frozen=True, slots=True)
class LoginOk:
    """The login is good (or, with `source="grace"`, was good within the grace period while the
    directory cannot be reached)."""

    user: DirectoryUser
    source: AnswerSource
    event: ClassVar[str] = "login"

    def audit_fields(self) -> dict[str, object]:
        return {"event": self.event, "user": self.user.name, "source": self.source,
                "groups": list(self.user.group_names)}


@dataclass(frozen=True, slots=True)
class LoginFailed:
    """The login is refused: `malformed` header, `invalid_name` (rejected before any directory
    call), `bad_credentials` or `unknown_user`. The client sees the same 407 for the last two, so
    the gateway does not tell an outsider which names exist; the audit log says which."""

    reason: FailureReason
    user: str
    detail: str
    source: AnswerSource = "directory"
    event: ClassVar[str] = "login_failed"

    def audit_fields(self) -> dict[str, object]:
        return {"event": self.event, "user": self.user, "reason": self.reason,
                "detail": self.detail, "source": self.source}


@dataclass(frozen=True, slots=True)
class DirectoryUnavailable:
    """The directory could not answer (down, timing out, refusing the service account, TLS
    failing) and no grace applies: the gateway refuses the login and says so."""

    user: str
    detail: str
    event: ClassVar[str] = "directory_unavailable"

    def audit_fields(self) -> dict[str, object]:
        return {"event": self.event, "user": self.user, "detail": self.detail}


LoginOutcome = LoginOk | LoginFailed | DirectoryUnavailable
