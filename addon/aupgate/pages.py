"""The pages the gateway answers with instead of the site: block, warn, refusal and error.

An employee who hits a block must learn *why* (which clause of which document, the category, the
time window) and *whom to ask*, and a script that hits one must get something it can parse. So a
page is built once as plain data (`Page`) and rendered as HTML for browsers, JSON for clients that
prefer it, or plain text for everything else (curl sends `*/*`).

Everything here is pure: no mitmproxy, no clock, no I/O. Every value that reaches HTML is escaped,
because host names, paths and even clause texts come from outside (a hostile URL must not be able
to script the block page of a trusted CA's interception).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Literal

from .engine import Decision
from .policy.model import Policy

PageKind = Literal["block", "warn", "refused", "error"]
Format = Literal["html", "json", "text"]

CONTINUE_PATH = "/.aupgate/continue"
"""The reserved path the warn form posts to; the proxy answers it and never forwards it."""

RESERVED_PREFIX = "/.aupgate/"

_STATUS: dict[PageKind, int] = {"block": 403, "warn": 403, "refused": 403, "error": 502}
_HEADINGS: dict[PageKind, str] = {
    "block": "This site is blocked by your agency's acceptable-use policy",
    "warn": "This site needs a work reason",
    "refused": "This computer is not on an agency network",
    "error": "The gateway could not decide this request, so it was stopped",
}
_CONTENT_TYPES: dict[Format, str] = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class CitedClause:
    """A clause as the page shows it: id, title and the text the document says."""

    id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Page:
    """Everything one page shows; built by the adapter from a Decision and the Policy."""

    kind: PageKind
    request_id: str
    host: str
    url: str  # already redacted: no userinfo, no secret query values
    reason: str
    agency: str | None = None
    agency_name: str | None = None
    document: str | None = None
    clauses: tuple[CitedClause, ...] = ()
    categories: tuple[str, ...] = ()
    window: str | None = None
    rule: str | None = None
    contact: str | None = None
    action: str | None = None
    # warn only: the form posts the token and a reason back to CONTINUE_PATH; the proxy keeps
    # the original URL server-side under the token, so secrets in it never reach the page
    token: str | None = None
    pass_minutes: int | None = None

    @property
    def status(self) -> int:
        return _STATUS[self.kind]

    def to_json(self) -> dict[str, object]:
        """The machine-readable page (what a script behind the proxy gets)."""
        out: dict[str, object] = {
            "aupgate": self.kind,
            "status": self.status,
            "request_id": self.request_id,
            "host": self.host,
            "url": self.url,
            "reason": self.reason,
            "agency": self.agency,
            "agency_name": self.agency_name,
            "document": self.document,
            "clauses": [{"id": c.id, "title": c.title, "text": c.text} for c in self.clauses],
            "categories": list(self.categories),
            "window": self.window,
            "rule": self.rule,
            "action": self.action,
            "contact": self.contact,
        }
        if self.kind == "warn":
            out["continue"] = {"method": "POST", "path": CONTINUE_PATH,
                               "fields": {"token": self.token, "reason": "..."}}
        return out


def page_for(
    kind: PageKind,
    request_id: str,
    host: str,
    url: str,
    decision: Decision | None,
    policy: Policy | None,
    *,
    reason: str | None = None,
    token: str | None = None,
    pass_minutes: int | None = None,
) -> Page:
    """The page for a decision under a policy: the clauses it cites, the category, the window.

    Without a decision (refusals, errors) the page says `reason`; without a policy it names no
    agency.
    """
    clauses: tuple[CitedClause, ...] = ()
    if decision is not None and policy is not None:
        clauses = tuple(CitedClause(cid, policy.clauses[cid].title, policy.clauses[cid].text)
                        for cid in decision.clauses if cid in policy.clauses)
    return Page(
        kind=kind,
        request_id=request_id,
        host=host,
        url=url,
        reason=reason or (decision.reason if decision else ""),
        agency=policy.agency if policy else None,
        agency_name=policy.name if policy else None,
        document=policy.document.title if policy else None,
        clauses=clauses,
        categories=decision.categories if decision else (),
        window=decision.window if decision else None,
        rule=decision.rule if decision else None,
        contact=policy.contact if policy else None,
        action=decision.action if decision else None,
        token=token,
        pass_minutes=pass_minutes,
    )


def refused_page(request_id: str, host: str, url: str, client_text: str) -> Page:
    """The page for a client in no agency's networks (and no default agency)."""
    who = client_text or "this computer"
    return page_for(
        "refused", request_id, host, url, None, None,
        reason=f"The gateway serves agency networks only, and {who} is in none of them. "
               "Ask your IT service desk to connect this computer to an agency network.")


@dataclass(frozen=True, slots=True)
class Rendered:
    status: int
    content_type: str
    body: bytes


def choose_format(accept: str | None) -> Format:
    """HTML when the client accepts it at least as much as JSON; JSON when preferred; else text.

    Browsers list text/html explicitly; API clients list application/json; curl's `*/*` gets
    plain text, which reads well in a terminal.
    """
    if not accept:
        return "text"
    quality: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        quality[media] = max(q, quality.get(media, 0.0))
    html_q = quality.get("text/html", quality.get("application/xhtml+xml", 0.0))
    json_q = quality.get("application/json", 0.0)
    if html_q > 0 and html_q >= json_q:
        return "html"
    if json_q > 0:
        return "json"
    return "text"


def render(page: Page, accept: str | None) -> Rendered:
    """The page in the format the client prefers."""
    fmt = choose_format(accept)
    if fmt == "html":
        body = render_html(page)
    elif fmt == "json":
        body = json.dumps(page.to_json(), indent=2) + "\n"
    else:
        body = render_text(page)
    return Rendered(page.status, _CONTENT_TYPES[fmt], body.encode("utf-8"))


def _facts(page: Page) -> list[tuple[str, str]]:
    """The label/value lines every format shows, in the same order."""
    rows: list[tuple[str, str]] = []
    if page.agency_name or page.agency:
        rows.append(("Policy", " - ".join(x for x in (page.agency_name, page.document) if x)))
    rows.append(("Site", page.url or page.host))
    if page.categories:
        rows.append(("Category", ", ".join(page.categories)))
    if page.window:
        rows.append(("Time window", page.window))
    if page.rule:
        rows.append(("Rule", page.rule))
    rows.append(("Request id", page.request_id))
    if page.contact:
        rows.append(("Contact", page.contact))
    return rows


def render_text(page: Page) -> str:
    lines = [_HEADINGS[page.kind], "", page.reason, ""]
    lines += [f"{label}: {value}" for label, value in _facts(page)]
    for clause in page.clauses:
        lines += ["", f"Clause {clause.id}: {clause.title}", clause.text]
    if page.kind == "warn":
        lines += ["", f"To continue, POST token and reason (form-encoded) to {CONTINUE_PATH} "
                  "on this host."]
    return "\n".join(lines) + "\n"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;"
    "color:#222}h1{font-size:1.4rem}dt{font-weight:600}dd{margin:0 0 .5rem 0}"
    "blockquote{border-left:4px solid #999;margin:.5rem 0;padding:.25rem 1rem;background:#f6f6f6}"
    "textarea{width:100%;min-height:5rem}"
)


def render_html(page: Page) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(_HEADINGS[page.kind])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(_HEADINGS[page.kind])}</h1>",
        f"<p>{e(page.reason)}</p>",
        "<dl>",
    ]
    parts += [f"<dt>{e(label)}</dt><dd>{e(value)}</dd>" for label, value in _facts(page)]
    parts.append("</dl>")
    for clause in page.clauses:
        parts.append(f"<h2>Clause {e(clause.id)}: {e(clause.title)}</h2>")
        parts.append(f"<blockquote>{e(clause.text)}</blockquote>")
    if page.kind == "warn":
        minutes = page.pass_minutes or 15
        parts += [
            f'<form method="post" action="{e(CONTINUE_PATH)}">',
            f'<input type="hidden" name="token" value="{e(page.token or "")}">',
            '<label for="reason">Work reason (recorded in the audit log):</label>',
            '<textarea id="reason" name="reason" required minlength="4" maxlength="500">'
            "</textarea>",
            f"<p><button type=\"submit\">Continue for {minutes} minutes</button></p>",
            "</form>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
