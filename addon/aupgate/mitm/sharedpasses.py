"""Warn tickets and passes shared by the workers of one gateway box.

A warn page's token is kept by the worker that showed the page, and the pass its continue form
grants by the worker that read the form. With `aupgate run --workers N` a browser's next
connection may go to any worker of the box (they share one listening socket), so without sharing
the form could be refused as expired and the user warned again on every other connection. Each
worker therefore publishes the tickets it issues and the passes it grants; the supervisor relays
them to the other workers and replays the live ones to a worker that starts later
(`aupgate.mitm.workers`). Expiry times are monotonic seconds, and on Linux the monotonic clock is
the system's, the same in every process of a box, so they travel as they are.

An event is one JSON object on one line: `{"ticket": TOKEN, ...the Ticket's fields}` or
`{"pass": [holder, host], "redeemed": TOKEN, "expires": T}` (a holder is a login or the digest
of a browser's pass cookie, never the cookie itself: `passes`), with `"window_end": TAG` when
the pass ends with its window (`passes.WindowEnd`; each worker ends such passes at the boundary
itself, and the expiry already stops where the window does). A pass that arrives a moment
after the next request has been decided elsewhere means one more warn page, never one less.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from .passes import Passes, Ticket, WindowEnd

logger = logging.getLogger(__name__)

Event = dict[str, Any]


class SharedPasses(Passes):
    """`Passes` that tell `publish` what they issue and grant, and `apply` what others did."""

    def __init__(self, pass_seconds: float, publish: Callable[[Event], None]) -> None:
        super().__init__(pass_seconds)
        self._publish = publish

    def issue(
        self, *, client: str, user: str | None, host: str, url: str, agency: str, rule: str,
        clauses: tuple[str, ...], now: float,
    ) -> str:
        token = super().issue(client=client, user=user, host=host, url=url, agency=agency,
                              rule=rule, clauses=clauses, now=now)
        self._publish({"ticket": token, **asdict(self._tickets[token])})
        return token

    def redeem(self, token: str, *, client: str, user: str | None, host: str, holder: str,
               now: float, window_end: WindowEnd | None = None) -> Ticket | None:
        ticket = super().redeem(token, client=client, user=user, host=host, holder=holder,
                                now=now, window_end=window_end)
        if ticket is not None:
            key = (holder, host)
            expires, ends = self.expires(key)
            event: Event = {"pass": list(key), "redeemed": token, "expires": expires}
            if ends is not None:
                event["window_end"] = ends
            self._publish(event)
        return ticket

    def apply(self, event: Event, now: float) -> None:
        """Take in what another worker issued or granted (ignoring what has expired)."""
        try:
            if "ticket" in event:
                ticket = Ticket(str(event["client"]), str(event["user"]), str(event["host"]),
                                str(event["url"]), str(event["agency"]), str(event["rule"]),
                                tuple(str(c) for c in event["clauses"]),
                                float(event["expires"]))
                if ticket.expires >= now:
                    self._prune(self._tickets, now, lambda t: t.expires)
                    self._tickets[str(event["ticket"])] = ticket
            elif "pass" in event:
                holder, host = (str(part) for part in event["pass"])
                self._tickets.pop(str(event.get("redeemed")), None)
                expires = float(event["expires"])
                if expires >= now:
                    tag = event.get("window_end")
                    self._grant((holder, host), now, expires,
                                WindowEnd(expires, str(tag)) if tag is not None else None)
        except (KeyError, TypeError, ValueError):
            logger.warning("aupgate: ignored a malformed shared warn pass event")


def encode(event: Event) -> bytes:
    """One event as the line that travels between workers and supervisor."""
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def replay_key(event: Event) -> tuple[str, float, str | None] | None:
    """What the supervisor keeps of an event for workers that start later: the key it replaces,
    when it expires, and the ticket it consumes (a pass consumes its ticket)."""
    try:
        if "ticket" in event:
            return f"ticket {event['ticket']}", float(event["expires"]), None
        if "pass" in event:
            holder, host = event["pass"]
            return (f"pass {holder} {host}", float(event["expires"]),
                    f"ticket {event.get('redeemed')}")
    except (KeyError, TypeError, ValueError):
        return None
    return None
