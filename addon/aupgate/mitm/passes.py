"""Warn tickets and the short-lived passes they turn into.

A warn page must not be skippable by replaying a URL or by a cookie the site could read, so the
state lives in the proxy: the page carries an unguessable token; the token names, server-side,
the client, user, host and original URL it was issued for; posting it back with a work reason
turns it into a pass that lasts a few minutes for one *holder* and host. Both tables are bounded,
so a client cannot grow the proxy's memory by requesting warn pages.

The holder is who continued, never merely where from (many employees share one address behind
NAT, HAProxy or a terminal server): `user:NAME` for a proxy or directory login, else
`browser:DIGEST`, the digest of an unguessable cookie the continue redirect sets on the warned
host (`warnflow`). A pass key is the clear function (holder, host).

Pure (no mitmproxy); time is passed in as monotonic seconds so tests need not sleep.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

TICKET_SECONDS = 30 * 60
MAX_ENTRIES = 10_000

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
PassKey = tuple[str, str]  # (holder, host): holder is "user:NAME" or "browser:DIGEST"


def user_holder(user: str) -> str:
    """The holder of a pass granted to a login."""
    return f"user:{user}"


def browser_holder(cookie: str) -> str:
    """The holder of a pass granted to a browser: the digest of its pass cookie (the cookie's
    value itself is kept nowhere, nor relayed between workers)."""
    return "browser:" + hashlib.sha256(cookie.encode("utf-8", "replace")).hexdigest()[:32]


class WindowEnd(NamedTuple):
    """The end of the window a pass is given in: when (monotonic seconds) and a tag naming it
    (`"AGENCY BOUNDARY-TIME"`), by which the boundary ends the passes it cuts short."""

    at: float
    tag: str
    when: str = ""  # the boundary as ISO-8601 in the agency's zone, for the audit line


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a warn page was shown for; redeemed once by the continue form."""

    client: str
    user: str
    host: str
    url: str
    agency: str
    rule: str
    clauses: tuple[str, ...]
    expires: float


class Passes:
    """Tickets issued by warn pages and the passes redeemed from them."""

    def __init__(self, pass_seconds: float) -> None:
        self.pass_seconds = pass_seconds
        self._tickets: dict[str, Ticket] = {}
        self._passes: dict[PassKey, float] = {}
        # passes that end with the window they were given in: key -> that window's end (a tag
        # naming the agency and the boundary, see `end_window`)
        self._window_ends: dict[PassKey, str] = {}

    def issue(
        self, *, client: str, user: str | None, host: str, url: str, agency: str, rule: str,
        clauses: tuple[str, ...], now: float,
    ) -> str:
        """A new token for a warn page."""
        self._prune(self._tickets, now, lambda t: t.expires)
        token = secrets.token_urlsafe(18)
        self._tickets[token] = Ticket(client, user or "", host, url, agency, rule, clauses,
                                      now + TICKET_SECONDS)
        return token

    def peek(self, token: str, *, client: str, user: str | None, host: str,
             now: float) -> Ticket | None:
        """The live ticket for this token, client, user and host, left in place."""
        ticket = self._tickets.get(token)
        if ticket is None or ticket.expires < now:
            return None
        if (ticket.client, ticket.user, ticket.host) != (client, user or "", host):
            return None
        return ticket

    def redeem(self, token: str, *, client: str, user: str | None, host: str, holder: str,
               now: float, window_end: WindowEnd | None = None) -> Ticket | None:
        """The ticket, if the token is live and was issued to this client, user and host.

        A redeemed ticket is gone; a pass for (holder, host) starts now. It lasts
        `pass_seconds`, or until `window_end` if that comes first: a pass given for a window
        (a lunch break) ends with it.
        """
        ticket = self._tickets.get(token)
        if ticket is None or ticket.expires < now:
            return None
        if (ticket.client, ticket.user, ticket.host) != (client, user or "", host):
            return None
        del self._tickets[token]
        self._grant((holder, host), now, now + self.pass_seconds, window_end)
        return ticket

    def _grant(self, key: PassKey, now: float, expires: float,
               window_end: WindowEnd | None) -> None:
        self._prune(self._passes, now, lambda e: e)
        if len(self._window_ends) >= MAX_ENTRIES:
            self._window_ends = {k: v for k, v in self._window_ends.items() if k in self._passes}
        self._window_ends.pop(key, None)
        if window_end is not None and window_end.at <= expires:
            expires = window_end.at
            self._window_ends[key] = window_end.tag
        self._passes[key] = expires

    def expires(self, key: PassKey) -> tuple[float, str | None]:
        """When the pass for `key` ends, and the window end it ends with (if it does)."""
        return self._passes[key], self._window_ends.get(key)

    def end_window(self, tag: str) -> int:
        """End every pass that ends with the window `tag` names; how many were live."""
        ended = [key for key, t in self._window_ends.items() if t == tag]
        for key in ended:
            del self._window_ends[key]
            self._passes.pop(key, None)
        return len(ended)

    def has_pass(self, *, holder: str | None, host: str, now: float) -> bool:
        if holder is None:
            return False
        expires = self._passes.get((holder, host))
        return expires is not None and expires >= now

    @staticmethod
    def _prune(table: dict[K, V], now: float, expiry: Callable[[V], float]) -> None:
        """Drop expired entries; if still full, drop the oldest half (insertion order)."""
        if len(table) < MAX_ENTRIES:
            return
        for key in [k for k, v in table.items() if expiry(v) < now]:
            del table[key]
        if len(table) >= MAX_ENTRIES:
            for key in list(table)[: MAX_ENTRIES // 2]:
                del table[key]


def clean_reason(text: str, limit: int = 500) -> str:
    """A work reason fit for the audit trail: one line, printable, bounded."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat[:limit]
