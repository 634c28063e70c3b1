"""The block page's "request access" form: an employee's explanation, recorded for administrators.

The form posts to `/.aupgate/request-access` on the blocked host itself (so it works over HTTPS
through the proxy, like the warn form), with the blocked path and the employee's explanation. The
proxy decides that host and path again under the employee's own policy, so the rule and clauses
recorded are the gateway's, not whatever a forged form says, and records an `access_request`
event, which `aupgate review` and `aupgate report` show. The explanation is one line of printable
text, at most `MAX_EXPLANATION` characters, with anything that looks like a secret replaced.

A client may record at most `PER_MINUTE` requests a minute (per gateway process); past that it
gets a "too many requests" page and nothing is written, so the form cannot flood the log. The
table of recent clients is bounded too.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.parse
from collections import deque

from mitmproxy import http

from ..audit.log import AuditLog
from ..audit.redaction import scrub_text
from ..content import CONTENT_KINDS
from ..engine import Decision
from ..errors import UrlError
from ..normalise import parse_url, url_text
from ..pages import Page, page_for
from ..policy.model import STOPPING
from .deciding import Decider
from .passes import clean_reason
from .state import FlowRecord

__all__ = ["MAX_EXPLANATION", "PER_MINUTE", "AccessRequests", "form_problem"]

PER_MINUTE = 5
MAX_EXPLANATION = 500
MAX_CLIENTS = 10_000
_MIN_CHARS = 8
_MIN_WORDS = 2


def form_problem(text: str) -> str | None:
    """What is wrong with a stated reason, in the words the page shows; None when it will do."""
    if len(text) < _MIN_CHARS or len(text.split()) < _MIN_WORDS:
        return (f"Write at least {_MIN_WORDS} words ({_MIN_CHARS} characters or more) about why "
                "you need it for your work.")
    return None


class AccessRequests:
    """The per-client rate limit, and answering a posted form."""

    def __init__(self, per_minute: int = PER_MINUTE) -> None:
        self.per_minute = per_minute
        self._recent: dict[str, deque[float]] = {}

    def allow(self, client: str, now: float) -> bool:
        """Whether `client` may record another request now (counted when allowed)."""
        times = self._recent.get(client)
        if times is None:
            if len(self._recent) >= MAX_CLIENTS:
                self._forget(now)
            times = self._recent[client] = deque()
        while times and times[0] <= now - 60:
            times.popleft()
        if len(times) >= self.per_minute:
            return False
        times.append(now)
        return True

    def _forget(self, now: float) -> None:
        for client in [c for c, t in self._recent.items() if not t or t[-1] <= now - 60]:
            del self._recent[client]
        if len(self._recent) >= MAX_CLIENTS:  # all busy: start again rather than grow
            self._recent.clear()

    def answer(self, flow: http.HTTPFlow, record: FlowRecord, decider: Decider,
               audit: AuditLog) -> Page:
        """Record the request (or say what is wrong with it); the page to answer with."""
        record.audited = True  # the access_request event is this request's record
        req = flow.request
        ident = record.identity
        form = urllib.parse.parse_qs((req.get_content(strict=False) or b"").decode(
            "utf-8", "replace"), keep_blank_values=True)
        path = _path((form.get("path") or ["/"])[0])
        named = (form.get("content") or [""])[0]
        content = named if named in CONTENT_KINDS else None
        explanation = scrub_text(clean_reason((form.get("explanation") or [""])[0],
                                              MAX_EXPLANATION))
        decision = self._decide(flow, record, decider, path, content)
        shown = url_text(req.scheme, req.host, req.port, path, "")
        problem = form_problem(explanation)
        if problem is not None:
            page = page_for("block", flow.id, req.host, shown, decision, ident.policy,
                            form_path=path, content=content)
            return _with(page, problem=problem, typed=explanation)
        if not self.allow(ident.client_text, time.monotonic()):
            return page_for("too-many", flow.id, req.host, shown, None, ident.policy)
        policy = ident.policy
        audit.event(
            "access_request", request_id=flow.id, client=ident.client_text, user=ident.user,
            agency=policy.agency if policy else None, policy_digest=ident.policy_digest,
            scheme=req.scheme, host=req.host, path=path, content=content,
            categories=list(decision.categories) if decision else [],
            rule=decision.rule if decision else None,
            clauses=list(decision.clauses) if decision else [],
            action=decision.action if decision else None,
            explanation=explanation, status=200)
        return page_for("request-sent", flow.id, req.host, shown, None, policy)

    @staticmethod
    def _decide(flow: http.HTTPFlow, record: FlowRecord, decider: Decider, path: str,
                content: str | None) -> Decision | None:
        """The gateway's own decision for the host and path the form names (and its content)."""
        ident = record.identity
        if ident.policy is None:
            return None
        req = flow.request
        try:
            url = parse_url(url_text(req.scheme, req.host, req.port, path, ""))
        except UrlError:
            return None
        decision = decider.decide(decider.snapshot(), ident, url)
        if content is not None and decision.action not in STOPPING:
            by_content = decider.decide_content(flow, ident, url, frozenset({content}))
            if by_content is not None and by_content.action in STOPPING:
                return by_content
        return decision


def _path(text: str) -> str:
    """The blocked path the form names: one absolute path, no query, bounded."""
    path = text.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/") or path.startswith("//") or len(path) > 500 or any(
            not c.isprintable() or c.isspace() for c in path):
        return "/"
    return path


def _with(page: Page, *, problem: str, typed: str) -> Page:
    return dataclasses.replace(page, problem=problem, typed=typed)
