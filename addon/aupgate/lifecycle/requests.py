"""Deciding requests given as text (a batch line, an audit line) fast and exactly.

Replay decides millions of requests that repeat: the same URL from the same client, many times a
minute. A decision depends on the policy, the URL, the user, the client (its network and device),
the stated device and the moment, and on the moment only through the agency's time window and
the date a grant expires, both of which change on whole minutes. So each piece is worked out once
and remembered (bounded, like every memo in aupgate): the moment by its text, the URL by its
text, the client by its text, and the whole decision by (agency, URL, user, client, device,
minute). What is remembered is exact, never an approximation: a remembered decision is the one
`engine.decide` gives for those facts.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

from aupgate.categories.index import CategoryIndex
from aupgate.engine import Decision, Facts, decide, decide_content
from aupgate.identity import identify
from aupgate.memo import remember
from aupgate.normalise import Url, parse_url
from aupgate.policy.model import DEVICES, IPAddress, Policy, PolicySet
from aupgate.policy.schedule import parse_moment

__all__ = ["RequestDecider", "RequestError"]

_LIMIT = 1 << 17


class RequestError(ValueError):
    """A request that cannot be decided; the message says why (no file or line: the caller adds
    them)."""


class RequestDecider:
    """Decides requests under one policy set and index, remembering what repeats."""

    def __init__(self, policies: PolicySet, index: CategoryIndex, default_moment: datetime,
                 default_agency: str | None = None,
                 parsing_of: RequestDecider | None = None) -> None:
        """With `parsing_of`, the moments, URLs and clients that decider parsed are shared with
        this one (`diff` parses each request once for both policy sets; parsing does not depend
        on the policies, and the memos hold only what was parsed)."""
        self.policies = policies
        self.index = index
        self.default_moment = default_moment
        self.default_agency = default_agency
        self._moments: dict[str, tuple[datetime, int]] = {}
        self._urls: dict[str, Url] = {}
        self._clients: dict[str, IPAddress] = {}
        if parsing_of is not None:
            self._moments = parsing_of._moments
            self._urls = parsing_of._urls
            self._clients = parsing_of._clients
        self._agencies: dict[tuple[str | None, str | None], Policy | None] = {}
        self._decisions: dict[tuple[Any, ...], Decision] = {}
        self._default = (default_moment, _minute_of(default_moment))

    # ------------------------------------------------------------------ the pieces

    def moment(self, text: str | None) -> tuple[datetime, int]:
        """The moment and its minute key; audit times (`...T12:15:03.123456Z`) are taken at the
        start of their minute, which decides the same (windows and dates change on minutes)."""
        if text is None:
            return self._default
        found = self._moments.get(text)
        if found is not None:
            return found
        key = text
        if len(text) == 27 and text[-1] == "Z" and text[10] == "T":  # the audit log's own
            key = text[:16]
            found = self._moments.get(key)
            if found is not None:
                return found
            text = key + ":00+00:00"
        try:
            moment = parse_moment(text)
        except ValueError as exc:
            raise RequestError(f"'at': {exc}") from None
        return remember(self._moments, key, (moment, _minute_of(moment)), _LIMIT)

    def url(self, text: str) -> Url:
        found = self._urls.get(text)
        if found is None:
            found = remember(self._urls, text, parse_url(text), _LIMIT)  # raises UrlError
        return found

    def client(self, text: str | None) -> IPAddress | None:
        if not text:
            return None
        found = self._clients.get(text)
        if found is None:
            try:
                found = ipaddress.ip_address(text)
            except ValueError as exc:
                raise RequestError(str(exc)) from None
            remember(self._clients, text, found, _LIMIT)
        return found

    def policy(self, agency: str | None, client: str | None) -> Policy:
        """The agency named, else the client's, else the default agency."""
        key = (agency, client)
        if key in self._agencies:
            found = self._agencies[key]
        else:
            ident = identify(self.policies, self.client(client), agency=agency,
                             default_agency=self.default_agency)
            found = remember(self._agencies, key, ident.policy, _LIMIT)
        if found is None:
            if agency:
                known = ", ".join(sorted(self.policies.policies))
                raise RequestError(f"unknown agency '{agency}' (known: {known})")
            known = ", ".join(sorted(self.policies.policies))
            raise RequestError("no agency given and the client is in no agency's networks "
                               f"(known: {known})")
        return found

    # ------------------------------------------------------------------ deciding

    def decide(self, url: str, *, agency: str | None = None, at: str | None = None,
               user: str | None = None, client: str | None = None,
               device: str | None = None, content: frozenset[str] = frozenset(),
               method: str = "GET", upload: bool = False) -> Decision:
        """The decision for one request, as `aupgate explain` gives it (raises RequestError or
        UrlError). With `content` (what the response turned out to be), the first content
        rule's decision, or the request's when none applies; with `upload`, the request sent a
        body, and `content` is what the body showed."""
        moment, minute = self.moment(at)
        key = (agency, url, minute, user, client, device, content, method, upload)
        found = self._decisions.get(key)
        if found is not None:
            return found
        if device is not None and device not in DEVICES:
            raise RequestError(
                f"unknown device class '{device}' (one of: {', '.join(DEVICES)})")
        policy = self.policy(agency, client)
        facts = Facts(url=self.url(url), user=user, client=self.client(client), device=device,
                      method=method, sends_body=upload, kinds=content if upload else frozenset())
        decision = decide(policy, self.index, facts, moment)
        if content and not upload:
            decision = decide_content(policy, self.index, facts, content, moment) or decision
        return remember(self._decisions, key, decision, _LIMIT)


def _minute_of(moment: datetime) -> int:
    """A key equal for two moments in the same minute (naive moments: agency-local, kept apart
    from aware ones)."""
    if moment.tzinfo is None:
        return -1 - int(moment.replace(tzinfo=UTC).timestamp()) // 60
    return int(moment.timestamp()) // 60
