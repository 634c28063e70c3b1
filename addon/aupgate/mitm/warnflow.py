"""The warn flow: a warn page, its continue form, and the pass a stated work reason buys.

A warn page carries a token; the form posts it back with a work reason to the reserved path
(`pages.CONTINUE_PATH`) on the warned host; a live token from the same client and user turns into
a pass for that host (`passes.Passes`) and a redirect to the original URL, which the proxy kept
server-side. Everything under `/.aupgate/` belongs to the gateway and is never forwarded.

Only a small, sized POST to the continue path is read into memory; its body arrives at mitmproxy's
`request` hook, which the addon defines only while such a form is being read (`pending`), because
mitmproxy dispatches every hook an addon defines for every request.
"""

from __future__ import annotations

import time
import urllib.parse

from mitmproxy import http

from ..engine import Decision
from ..identity import Identity
from ..pages import CONTINUE_PATH, Page, page_for
from .flowtext import shown_url
from .passes import Passes, clean_reason
from .state import FlowRecord

__all__ = ["MAX_FORM_BYTES", "WarnFlow"]

MAX_FORM_BYTES = 8192  # a warn form is a token and a reason of at most 500 characters


class WarnFlow:
    """Warn tickets and passes, and the continue forms being read."""

    def __init__(self) -> None:
        self.passes = Passes(15 * 60)
        self.pending: set[str] = set()  # ids of flows whose form body is being read

    @property
    def pass_minutes(self) -> int:
        return int(self.passes.pass_seconds // 60)

    def has_pass(self, ident: Identity, host: str) -> bool:
        """Whether this client and user continued past a warn page for this host recently."""
        return self.passes.has_pass(client=ident.client_text, user=ident.user, host=host,
                                    now=time.monotonic())

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

    def reserved(self, flow: http.HTTPFlow, ident: Identity, path: str) -> Page | None:
        """`/.aupgate/...`: None when a warn form's body is to be read (the flow is pending),
        else the page to answer with now."""
        req = flow.request
        length = req.headers.get("content-length", "")
        if path != CONTINUE_PATH or req.method != "POST" or not (
                length.isdigit() and int(length) <= MAX_FORM_BYTES):
            return page_for("error", flow.id, req.host, shown_url(req), None, ident.policy,
                            reason="This address is reserved by the agency gateway.",
                            pass_minutes=self.pass_minutes)
        self.pending.add(flow.id)
        return None

    def settle(self, flow: http.HTTPFlow) -> bool:
        """A pending form was answered or its flow failed; True when none is pending any more."""
        self.pending.discard(flow.id)
        return not self.pending

    def answer_form(self, flow: http.HTTPFlow, record: FlowRecord) -> Page | str:
        """The form's answer: the original URL to redirect to (a pass is live for its host), or
        the page to show (the reason is missing, or the token is not this client's or expired).
        The record gets what the audit line says about a continuation."""
        req = flow.request
        form = urllib.parse.parse_qs((req.get_content(strict=False) or b"").decode(
            "utf-8", "replace"), keep_blank_values=True)
        token = (form.get("token") or [""])[0]
        reason = clean_reason((form.get("reason") or [""])[0])
        ident = record.identity
        if len(reason) < 4:
            return page_for("warn", flow.id, req.host, "", None, ident.policy,
                            reason="A work reason of at least a few words is required.",
                            pass_minutes=self.pass_minutes)
        ticket = self.passes.redeem(token, client=ident.client_text, user=ident.user,
                                    host=req.host, now=time.monotonic())
        if ticket is None:
            return page_for("error", flow.id, req.host, "", None, ident.policy,
                            reason="This continue form has expired or was issued to another "
                                   "computer or user. Open the site again.",
                            pass_minutes=self.pass_minutes)
        record.extra = {"rule_continued": ticket.rule, "clauses_continued": list(ticket.clauses),
                        "work_reason": reason, "continued_host": ticket.host,
                        "pass_minutes": self.pass_minutes}
        return ticket.url
