"""A page as plain data (`Page`), and building one from a decision and a policy (`page_for`).

What an employee needs is what happened and why in plain words, the clause, what to do next and
whom to ask; what the help desk needs (rule, window, request id) goes in a fold. So a page keeps
only the category that decided (a gambling site that is also on a games list is "gambling"), says
"download" when a download was stopped on an allowed site, and shows a clause's number only when
the document numbers its clauses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engine import Decision
from ..policy.model import HelpDesk, Policy
from .kinds import KINDS, Kind

__all__ = [
    "CONTINUE_PATH",
    "REQUEST_ACCESS_PATH",
    "RESERVED_PREFIX",
    "CitedClause",
    "Page",
    "category_label",
    "deciding",
    "page_for",
    "plural",
    "refused_page",
]

RESERVED_PREFIX = "/.aupgate/"
CONTINUE_PATH = "/.aupgate/continue"
"""The reserved path the warn form posts to; the proxy answers it and never forwards it."""
REQUEST_ACCESS_PATH = "/.aupgate/request-access"
"""The reserved path the block page's "request access" form posts to."""

_CATEGORY_WORDS = {
    "social-networking": "social networking", "blogs-forums": "blogs and forums",
    "p2p-file-sharing": "peer-to-peer file sharing", "adult": "adult content",
    "instant-messaging": "instant messaging", "voip": "internet calling (VoIP)",
    "web-conferencing": "web conferencing", "classifieds-selling": "classifieds and selling",
    "remote-access": "remote access", "tunnel-hosting": "tunnel hosting",
    "vpn-proxy": "VPN or proxy", "malware-phishing": "malware or phishing",
}
_THINGS = {"executable": "download", "audio-stream": "audio stream",
           "bittorrent": "file-sharing transfer", "large-transfer": "large download"}


def category_label(category: str) -> str:
    """A category id in plain words: `p2p-file-sharing` -> "peer-to-peer file sharing"."""
    return _CATEGORY_WORDS.get(category, category.replace("-", " "))


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 minute`, `15 minutes`."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


@dataclass(frozen=True, slots=True)
class CitedClause:
    """A clause as the page shows it: id, title and the text the document says."""

    id: str
    title: str
    text: str

    @property
    def numbered(self) -> bool:
        """Whether the id is the document's own number (7.E), not a short name (gambling)."""
        return any(c.isdigit() for c in self.id)

    def label(self, document: str | None) -> str:
        """`Policy title, clause 7.E: Gambling`, or `Policy title: Gambling` for named ids."""
        where = document or "Policy"
        return f"{where}, clause {self.id}: {self.title}" if self.numbered else \
            f"{where}: {self.title}"


@dataclass(frozen=True, slots=True)
class Page:
    """Everything one page shows; built by the adapter from a Decision and the Policy."""

    kind: str
    request_id: str
    host: str
    url: str  # already redacted: no userinfo, no secret query values
    reason: str
    agency: str | None = None
    agency_name: str | None = None
    document: str | None = None
    clauses: tuple[CitedClause, ...] = ()
    categories: tuple[str, ...] = ()  # the categories that decided, not every list the host is on
    window: str | None = None
    rule: str | None = None
    contact: str | None = None
    action: str | None = None
    # warn only: the form posts the token and a reason back to CONTINUE_PATH; the proxy keeps
    # the original URL server-side under the token, so secrets in it never reach the page
    token: str | None = None
    pass_minutes: int | None = None
    help_desk: HelpDesk | None = None
    thing: str = "site"  # what was stopped: site, download, audio stream...
    content: str | None = None  # the content kind that decided, if a content rule did
    form_path: str | None = None  # block: the path (no query) the "request access" form names
    problem: str | None = None  # a form came back: what was wrong with it
    typed: str = ""  # ...and what the employee had typed, to show again
    back: str | None = None  # where "Go back" goes without script (the Referer's origin)
    detail: str | None = None  # error pages: the failure in a few plain words

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown page kind '{self.kind}' (one of: {', '.join(KINDS)})")

    @property
    def spec(self) -> Kind:
        return KINDS[self.kind]

    @property
    def status(self) -> int:
        return self.spec.status

    def fill(self, text: str) -> str:
        """A kind's text with `{host}` and `{thing}` filled in (not yet escaped)."""
        return text.replace("{host}", self.host or "the site").replace("{thing}", self.thing)

    @property
    def heading(self) -> str:
        return self.fill(self.spec.heading)

    @property
    def happened(self) -> str:
        return self.reason or self.fill(self.spec.happened)

    @property
    def offers_request(self) -> bool:
        return self.spec.offer == "request" and self.form_path is not None

    @property
    def continue_label(self) -> str:
        return f"Continue for {plural(self.pass_minutes or 15, 'minute')}"

    def facts(self) -> list[tuple[str, str]]:
        """The details for the help desk, in the order every format shows them."""
        rows: list[tuple[str, str]] = []
        if self.url or self.host:
            rows.append(("Address", self.url or self.host))
        if self.categories:
            rows.append(("Category", ", ".join(category_label(c) for c in self.categories)))
        if self.content:
            rows.append(("Content", self.content))
        if self.detail:
            rows.append(("What failed", self.detail))
        if self.rule:
            rows.append(("Rule", self.rule))
        if self.window:
            rows.append(("Time window", self.window))
        if self.agency_name or self.agency:
            rows.append(("Policy", " - ".join(x for x in (self.agency_name, self.document) if x)))
        rows.append(("Request id", self.request_id))
        if self.contact:
            rows.append(("Policy contact", self.contact))
        return rows

    def to_json(self) -> dict[str, Any]:
        """The machine-readable page (what a script behind the proxy gets)."""
        out: dict[str, Any] = {
            "aupgate": self.kind,
            "status": self.status,
            "title": self.heading,
            "request_id": self.request_id,
            "host": self.host,
            "url": self.url,
            "reason": self.happened,
            "next_steps": self.fill(self.spec.next_steps),
            "agency": self.agency,
            "agency_name": self.agency_name,
            "document": self.document,
            "clauses": [{"id": c.id, "title": c.title, "text": c.text} for c in self.clauses],
            "categories": list(self.categories),
            "content": self.content,
            "window": self.window,
            "rule": self.rule,
            "action": self.action,
            "contact": self.contact,
            "help_desk": None if self.help_desk is None else {
                "name": self.help_desk.name, "phone": self.help_desk.phone,
                "link": self.help_desk.link},
        }
        if self.kind == "warn":
            out["continue"] = {"method": "POST", "path": CONTINUE_PATH,
                               "fields": {"token": self.token, "reason": "..."}}
        if self.offers_request:
            out["request_access"] = {"method": "POST", "path": REQUEST_ACCESS_PATH,
                                     "fields": {"path": self.form_path, "content": self.content,
                                                "explanation": "..."}}
        if self.problem:
            out["problem"] = self.problem
        return out


def deciding(decision: Decision, policy: Policy) -> tuple[tuple[str, ...], str | None]:
    """(the categories that decided, the content kind that decided) for a rule's decision.

    A rule that names categories decided on those of the site's that it names; a rule that
    names content (downloads, audio) decided on that; lists, domains and the default decided on
    neither, and the page then names no category.
    """
    if decision.step not in ("rule", "grant"):
        return (), None
    rule = next((r for r in policy.rules if r.id == decision.rule), None)
    if rule is None:
        return (), None
    content = min(rule.match.content) if rule.match.content else None
    site = rule.match.site
    if site is None or not site.categories:
        return (), content
    return tuple(c for c in decision.categories if c in site.categories), content


def page_for(
    kind: str,
    request_id: str,
    host: str,
    url: str,
    decision: Decision | None,
    policy: Policy | None,
    *,
    reason: str | None = None,
    token: str | None = None,
    pass_minutes: int | None = None,
    form_path: str | None = None,
    content: str | None = None,
    clauses: tuple[str, ...] | None = None,
    detail: str | None = None,
) -> Page:
    """The page for a decision under a policy: the clauses it cites, the deciding category.

    Without a decision (refusals, errors) the page says `reason` (or its kind's words); without
    a policy it names no agency. `clauses` cites clauses without a decision (a warn form shown
    again); `content` names the content kind that was detected, if the caller knows it.
    """
    cited = clauses if clauses is not None else (decision.clauses if decision else ())
    shown: tuple[CitedClause, ...] = ()
    categories: tuple[str, ...] = ()
    if policy is not None:
        shown = tuple(CitedClause(cid, policy.clauses[cid].title, policy.clauses[cid].text)
                      for cid in cited if cid in policy.clauses)
    if decision is not None and policy is not None:
        categories, rule_content = deciding(decision, policy)
        content = content or rule_content
    return Page(
        kind=kind,
        request_id=request_id,
        host=host,
        url=url,
        reason=reason or (decision.reason if decision else ""),
        agency=policy.agency if policy else None,
        agency_name=policy.name if policy else None,
        document=policy.document.title if policy else None,
        clauses=shown,
        categories=categories,
        window=decision.window if decision else None,
        rule=decision.rule if decision else None,
        contact=policy.contact if policy else None,
        action=decision.action if decision else None,
        token=token,
        pass_minutes=pass_minutes,
        help_desk=policy.help_desk if policy else None,
        thing=_THINGS.get(content or "", "site"),
        content=content,
        form_path=form_path if policy is not None else None,
        detail=detail,
    )


def refused_page(request_id: str, host: str, url: str, client_text: str) -> Page:
    """The page for a client in no agency's networks (and no default agency)."""
    who = client_text or "this computer"
    return page_for(
        "refused", request_id, host, url, None, None,
        reason=f"The gateway serves agency networks only, and {who} is in none of them.")
