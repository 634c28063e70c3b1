"""Block, warn and refusal pages: the right format for the client, and every value escaped."""

from __future__ import annotations

import json

import pytest

from aupgate.pages import CONTINUE_PATH, CitedClause, Page, choose_format, render

HOSTILE = '<script>alert("x")</script>'


def block_page(**overrides: object) -> Page:
    fields: dict[str, object] = {
        "kind": "block",
        "request_id": "r-123",
        "host": "www.bet365.com",
        "url": "http://www.bet365.com/",
        "reason": "Gambling is prohibited on department resources.",
        "agency": "modot",
        "agency_name": "Missouri Department of Transportation",
        "document": "IT Resources and Equipment Policy",
        "clauses": (CitedClause("7.E", "Gambling", "Employees ... are strictly prohibited ..."),),
        "categories": ("gambling",),
        "window": "work",
        "rule": "no-gambling",
        "contact": "IS Service Desk, 573-555-0100",
        "action": "block",
    }
    fields.update(overrides)
    return Page(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text"),
        ("*/*", "text"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "html"),
        ("application/json", "json"),
        ("application/json, text/html;q=0.5", "json"),
        ("text/html, application/json", "html"),
        ("text/html;q=0, application/json;q=0.1", "json"),
        ("text/plain", "text"),
        ("application/json;q=bogus", "text"),
    ],
)
def test_choose_format(accept: str | None, expected: str) -> None:
    """Browsers get HTML, API clients JSON, curl plain text."""
    assert choose_format(accept) == expected


def test_html_block_page_cites_everything() -> None:
    """The block page names the policy, the clause with its text, category, window, id, contact."""
    rendered = render(block_page(), "text/html")
    body = rendered.body.decode()
    assert rendered.status == 403
    assert rendered.content_type.startswith("text/html")
    for expected in ("Missouri Department of Transportation", "7.E", "strictly prohibited",
                     "gambling", "work", "r-123", "IS Service Desk"):
        assert expected in body


def test_json_block_page() -> None:
    rendered = render(block_page(), "application/json")
    data = json.loads(rendered.body)
    assert data["aupgate"] == "block"
    assert data["clauses"][0]["id"] == "7.E"
    assert data["request_id"] == "r-123"
    assert rendered.content_type == "application/json"


def test_text_block_page() -> None:
    body = render(block_page(), "*/*").body.decode()
    assert "Clause 7.E: Gambling" in body
    assert "Request id: r-123" in body


@pytest.mark.parametrize("field", ["host", "url", "reason", "agency_name", "contact", "window"])
def test_every_value_is_escaped(field: str) -> None:
    """A hostile URL or policy text must not inject markup into the page."""
    overrides = {field: HOSTILE, **({"url": ""} if field == "host" else {})}
    body = render(block_page(**overrides), "text/html").body.decode()
    assert HOSTILE not in body
    assert "&lt;script&gt;" in body


def test_clause_text_is_escaped() -> None:
    page = block_page(clauses=(CitedClause(HOSTILE, HOSTILE, HOSTILE),))
    assert "<script>" not in render(page, "text/html").body.decode()


def test_warn_page_has_form_without_url() -> None:
    """The warn form posts a token and a reason; the original URL stays on the proxy."""
    page = block_page(kind="warn", token='t"ok', url="http://x.example/?q=1", pass_minutes=15)
    body = render(page, "text/html").body.decode()
    assert f'action="{CONTINUE_PATH}"' in body
    assert 'value="t&quot;ok"' in body
    assert 'name="reason"' in body
    assert 'name="url"' not in body
    assert "15 minutes" in body


def test_refused_and_error_statuses() -> None:
    assert render(block_page(kind="refused"), None).status == 403
    assert render(block_page(kind="error"), None).status == 502
    assert "not on an agency network" in render(block_page(kind="refused"), None).body.decode()
