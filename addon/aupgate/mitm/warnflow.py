"""The warn flow: a warn page, its continue form, and the pass a stated work reason buys.

A warn page carries a token; the form posts it back with a work reason to the reserved path
(`pages.CONTINUE_PATH`) on the warned host; a live token from the same client and user turns into
a pass for that host (`passes.Passes`) and a redirect to the original URL, which the proxy kept
server-side. Everything under `/.aupgate/` belongs to the gateway and is never forwarded.

Whose pass: a login's, when the request carries one; otherwise the browser's. The redirect then
sets `PASS_COOKIE` on the warned host: host-only (no Domain), `Path=/`, `HttpOnly` (no script
reads it), `SameSite=Lax` (sent on the user's own navigations to the host, not on other sites'
embeds of it), `Secure` over HTTPS, and `Max-Age` the pass's length. Its value is a fresh random
token; the pass is kept under its digest (`passes.browser_holder`). The gateway removes the
cookie from every request before it goes upstream, so the site never sees it; a site that sets
a cookie of that name can at most end its own visitor's pass. Another employee behind the same
address (NAT, HAProxy, a terminal server) has no such cookie and is warned. A never-decrypt
site's requests cannot be read, so without a login it has no pass to honour: its warn refuses.

Only a small, sized POST to the continue path is read into memory; its body arrives at mitmproxy's
`request` hook, which the addon defines only while such a form is being read (`pending`), because
mitmproxy dispatches every hook an addon defines for every request.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
import urllib.parse

from mitmproxy import http

from ..engine import Decision
from ..identity import Identity
from ..pages import CONTINUE_PATH, REQUEST_ACCESS_PATH, Page, page_for
from .accessrequest import form_problem
from .flowtext import shown_url
from .passes import Passes, WindowEnd, browser_holder, clean_reason, user_holder
from .state import FlowRecord

__all__ = ["MAX_FORM_BYTES", "PASS_COOKIE", "WarnFlow", "take_holder"]

MAX_FORM_BYTES = 8192  # a warn form is a token and a reason of at most 500 characters
FORM_PATHS = (CONTINUE_PATH, REQUEST_ACCESS_PATH)
"""The reserved paths whose (small, sized) POST bodies the proxy reads."""
PASS_COOKIE = "aupgate_pass"  # noqa: S105 - a cookie name, not a password
"""The cookie the continue redirect sets on the warned host; removed before any request leaves."""


def take_holder(ident: Identity, req: http.Request) -> str | None:
    """Who a pass for this request would belong to: the login, else the browser's pass cookie
    (None: neither). The cookie is removed from the request: it never goes upstream."""
    if PASS_COOKIE not in req.headers.get("cookie", ""):
        return user_holder(ident.user) if ident.user else None
    cookies = req.cookies
    value = cookies.pop(PASS_COOKIE, None)
    if not cookies:
        req.headers.pop("cookie", None)
    if ident.user:
        return user_holder(ident.user)
    return browser_holder(value) if value else None


class WarnFlow:
    """Warn tickets and passes, and the continue forms being read."""

    def __init__(self) -> None:
        self.passes = Passes(15 * 60)
        self.pending: set[str] = set()  # ids of flows whose form body is being read

    @property
    def pass_minutes(self) -> int:
        return int(self.passes.pass_seconds // 60)

    def has_pass(self, ident: Identity, host: str, holder: str | None = None) -> bool:
        """Whether this login, or this browser (`holder`, from `take_holder`), continued past a
        warn page for this host recently. Without a request to read (CONNECT, ClientHello)
        only a login can hold a pass."""
        if holder is None and ident.user:
            holder = user_holder(ident.user)
        return self.passes.has_pass(holder=holder, host=host, now=time.monotonic())

    def warn_page(self, flow: http.HTTPFlow, decision: Decision, ident: Identity,
                  url: str) -> Page:
        """A warn page with a fresh token for this client, user and host."""
        assert ident.policy is not None
        token = self.passes.issue(
            client=ident.client_text, user=ident.user, host=decision.host,
            url=flow.request.url, agency=ident.policy.agency, rule=decision.rule,
            clauses=decision.clauses, now=time.monotonic())
        return page_for("warn", flow.id, flow.request.host, url, decision, ident.policy,
                        token=token, pass_minutes=self.pass_minutes)

    def stop_page(self, flow: http.HTTPFlow, decision: Decision,
                  record: FlowRecord) -> Page | None:
        """The page a block (or spent budget) or a warn answers with, `record.enforced` set;
        None when a live warn pass of the same holder lets the request go on."""
        ident = record.identity
        url = shown_url(flow.request)
        if decision.action == "warn":
            if self.has_pass(ident, decision.host, record.holder):
                record.enforced = "pass-used"
                return None
            record.enforced = "warned"
            return self.warn_page(flow, decision, ident, url)
        record.enforced = "blocked"
        return page_for("budget" if decision.step == "budget" else "block", flow.id,
                        flow.request.host, url, decision, ident.policy,
                        form_path=flow.request.path.partition("?")[0])

    def reserved(self, flow: http.HTTPFlow, ident: Identity, path: str) -> Page | None:
        """`/.aupgate/...`: None when a warn form's body is to be read (the flow is pending),
        else the page to answer with now."""
        req = flow.request
        length = req.headers.get("content-length", "")
        if path not in FORM_PATHS or req.method != "POST" or not (
                length.isdigit() and int(length) <= MAX_FORM_BYTES):
            return page_for("reserved", flow.id, req.host, shown_url(req), None, ident.policy)
        self.pending.add(flow.id)
        return None

    def settle(self, flow: http.HTTPFlow) -> bool:
        """A pending form was answered or its flow failed; True when none is pending any more."""
        self.pending.discard(flow.id)
        return not self.pending

    def answer_form(self, flow: http.HTTPFlow, record: FlowRecord,
                    window_end: WindowEnd | None = None) -> Page | tuple[str, str | None]:
        """The form's answer: the original URL to redirect to and the pass cookie to set with it
        (None for a login's pass), or the page to show (the reason is missing, or the token is
        not this client's or expired). The record gets what the audit line says. The pass ends
        with the window it is given in (`window_end`) if that comes first."""
        req = flow.request
        form = urllib.parse.parse_qs((req.get_content(strict=False) or b"").decode(
            "utf-8", "replace"), keep_blank_values=True)
        token = (form.get("token") or [""])[0]
        reason = clean_reason((form.get("reason") or [""])[0])
        ident = record.identity
        client, user, now = ident.client_text, ident.user, time.monotonic()
        problem = form_problem(reason)
        if problem is not None:
            live = self.passes.peek(token, client=client, user=user, host=req.host, now=now)
            if live is not None:  # the same form again, its token still good, what was typed kept
                record.enforced = "continue-rejected"
                record.extra = {"continue_problem": "reason-too-short"}
                page = page_for("warn", flow.id, req.host, _origin(live.url), None,
                                ident.policy, token=token, pass_minutes=self.pass_minutes,
                                clauses=live.clauses, reason=_rule_reason(ident, live.rule))
                return dataclasses.replace(page, problem=problem, typed=reason)
        cookie = None if user else secrets.token_urlsafe(24)
        holder = user_holder(user) if user else browser_holder(cookie or "")
        ticket = None if problem else self.passes.redeem(token, client=client, user=user,
                                                         host=req.host, holder=holder, now=now,
                                                         window_end=window_end)
        if ticket is None:
            record.enforced = "continue-rejected"
            record.extra = {"continue_problem": "expired"}
            return page_for("expired", flow.id, req.host, f"{req.scheme}://{req.host}/", None,
                            ident.policy)
        record.enforced = "continued"
        record.extra = {"rule_continued": ticket.rule, "clauses_continued": list(ticket.clauses),
                        "work_reason": reason, "continued_host": ticket.host,
                        "pass_minutes": self.pass_minutes}
        if window_end is not None and self.passes.expires((holder, req.host))[1] is not None:
            record.extra["pass_ends"] = window_end.when  # the window ends before the minutes
        if cookie is None:
            return ticket.url, None
        secure = "; Secure" if req.scheme == "https" else ""
        return ticket.url, (f"{PASS_COOKIE}={cookie}; Path=/; Max-Age="
                            f"{int(self.passes.pass_seconds)}; HttpOnly; SameSite=Lax{secure}")


def _origin(url: str) -> str:
    """The scheme and host of a kept URL: a page shows no more of it (secrets stay server-side)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/"


def _rule_reason(ident: Identity, rule_id: str) -> str | None:
    policy = ident.policy
    if policy is None:
        return None
    return next((r.reason for r in policy.rules if r.id == rule_id), None)
