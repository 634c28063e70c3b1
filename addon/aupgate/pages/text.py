"""Choosing a format for the client, and the plain-text and JSON forms of a page."""

from __future__ import annotations

import json
from typing import Literal

from .model import CONTINUE_PATH, REQUEST_ACCESS_PATH, Page

__all__ = ["Format", "choose_format", "render_json", "render_text"]

Format = Literal["html", "json", "text"]


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


def render_json(page: Page) -> str:
    return json.dumps(page.to_json(), indent=2) + "\n"


def render_text(page: Page) -> str:
    """The page for a terminal: heading, what happened, the clause, what to do, the details."""
    lines = [page.heading, "", page.happened]
    if page.problem:
        lines += ["", page.problem]
    for clause in page.clauses:
        lines += ["", clause.label(page.document), clause.text]
    lines += ["", page.fill(page.spec.next_steps)]
    desk = page.help_desk
    if desk is not None:
        lines.append("Help desk: " + " | ".join(x for x in (desk.name, desk.phone, desk.link) if x))
    lines += [""] + [f"{label}: {value}" for label, value in page.facts()]
    if page.kind == "warn":
        lines += ["", f"To continue, POST token and reason (form-encoded) to {CONTINUE_PATH} "
                  "on this host."]
    if page.offers_request:
        lines += ["", f"To request access, POST path and explanation (form-encoded) to "
                  f"{REQUEST_ACCESS_PATH} on this host."]
    return "\n".join(lines) + "\n"
