"""The pages the gateway answers with instead of the site: block, warn, refusal and errors.

An employee who hits a block must learn what happened and why in plain words (which clause of
which document, the category that decided), what to do next and whom to ask; a script that hits
one must get something it can parse. So a page is built once as plain data (`Page`, from
`page_for`) and rendered as HTML for browsers, JSON for clients that prefer it, or plain text for
everything else (curl sends `*/*`).

- `kinds`: every kind of page in one table (status, heading, texts, the form it offers); adding a
  kind is one entry there (docs/pages.md);
- `model`: `Page`, `page_for`, the deciding category, plain words for ids;
- `html`: the HTML page, its stylesheet and Content-Security-Policy; `text`: text and JSON.

Everything here is pure: no mitmproxy, no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from .html import CSP, render_html
from .kinds import KINDS, Kind
from .model import (
    CONTINUE_PATH,
    REQUEST_ACCESS_PATH,
    RESERVED_PREFIX,
    CitedClause,
    Page,
    category_label,
    page_for,
    plural,
    refused_page,
)
from .text import Format, choose_format, render_json, render_text

__all__ = [
    "CONTINUE_PATH",
    "CSP",
    "KINDS",
    "REQUEST_ACCESS_PATH",
    "RESERVED_PREFIX",
    "CitedClause",
    "Format",
    "Kind",
    "Page",
    "Rendered",
    "category_label",
    "choose_format",
    "page_for",
    "plural",
    "refused_page",
    "render",
    "render_html",
    "render_text",
]

_CONTENT_TYPES: dict[Format, str] = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Rendered:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def render(page: Page, accept: str | None) -> Rendered:
    """The page in the format the client prefers (HTML with its Content-Security-Policy)."""
    fmt = choose_format(accept)
    if fmt == "html":
        return Rendered(page.status, _CONTENT_TYPES[fmt], render_html(page).encode("utf-8"),
                        (("Content-Security-Policy", CSP),))
    body = render_json(page) if fmt == "json" else render_text(page)
    return Rendered(page.status, _CONTENT_TYPES[fmt], body.encode("utf-8"))
