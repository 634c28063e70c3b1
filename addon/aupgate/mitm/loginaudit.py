"""The audit events of proxy logins: `login`, `login_failed` and `directory_unavailable`.

None carries a password, a Kerberos token or the `Proxy-Authorization` header: the fields come
from the directory package's outcomes, which never hold one. Each is bounded, so a client cannot
fill the audit file by repeating a login: `login` at most once per agency, user, client and method
in `aupgate_login_audit_minutes` (0: never), and once more for the first login served from the
grace period; a failure or an unavailable directory
once a minute per agency, client, user and reason, the next line saying how many were left out
(`suppressed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..audit.log import AuditLog
from ..directory import LoginOk
from ..identity import Identity
from ..memo import remember

__all__ = ["LoginAudit", "Throttle"]

FAILURE_WINDOW_SECONDS = 60.0
MAX_KEYS = 10_000


@dataclass(slots=True)
class _Seen:
    since: float
    suppressed: int = 0


class Throttle:
    """At most one event per key per window; the suppressed count goes with the next one.
    Bounded: when full, entries whose window has passed are dropped (then, if need be, all)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._seen: dict[tuple[Any, ...], _Seen] = {}

    def admit(self, key: tuple[Any, ...], now: float) -> int | None:
        """None: leave this one out. Otherwise record it, with the count left out before it."""
        seen = self._seen.get(key)
        if seen is not None and 0 <= now - seen.since < self.window:
            seen.suppressed += 1
            return None
        if seen is None and len(self._seen) >= MAX_KEYS:
            self._seen = {k: v for k, v in self._seen.items()
                          if 0 <= now - v.since < self.window}
        remember(self._seen, key, _Seen(now), MAX_KEYS)
        return seen.suppressed if seen is not None else 0


class LoginAudit:
    """Writes the login events, each through its throttle."""

    def __init__(self) -> None:
        self.logins = Throttle(60 * 60.0)
        self.failures = Throttle(FAILURE_WINDOW_SECONDS)

    def set_login_minutes(self, minutes: int) -> None:
        self.logins = Throttle(minutes * 60.0)

    def login(self, audit: AuditLog, request_id: str, ident: Identity, outcome: LoginOk,
              method: str, now: float, principal: str | None = None) -> None:
        if self.logins.window <= 0:
            return
        agency = ident.policy.agency if ident.policy is not None else None
        user = outcome.user
        key = (agency, user.name, ident.client_text, method, outcome.source == "grace")
        if self.logins.admit(key, now) is None:
            return
        fields: dict[str, Any] = {
            "request_id": request_id, "agency": agency, "client": ident.client_text,
            "user": user.name, "method": method, "source": outcome.source,
            "groups": sorted(user.group_names)}
        if principal is not None:
            fields["principal"] = principal
        audit.event("login", **fields)

    def failed(self, audit: AuditLog, request_id: str, ident: Identity,
               outcome_fields: dict[str, Any], method: str, now: float) -> None:
        """`login_failed` or `directory_unavailable`, from the outcome's own `audit_fields()`
        (`LoginFailed`, `DirectoryUnavailable`, `KerberosRefused`)."""
        fields = dict(outcome_fields)
        event = str(fields.pop("event"))
        agency = ident.policy.agency if ident.policy is not None else None
        key = (event, agency, ident.client_text, fields.get("user"), fields.get("reason"))
        suppressed = self.failures.admit(key, now)
        if suppressed is None:
            return
        fields.update(request_id=request_id, agency=agency, client=ident.client_text,
                      method=method)
        if suppressed:
            fields["suppressed"] = suppressed
        audit.event(event, **fields)
