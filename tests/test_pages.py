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
    assert "IT Resources and Equipment Policy, clause 7.E: Gambling" in body
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
    assert HOSTILE not in render(page, "text/html").body.decode()


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


# --------------------------------------------------------------------------- what employees read

import base64  # noqa: E402
import hashlib  # noqa: E402
import re  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

from aupgate.categories.listindex import ListIndex  # noqa: E402
from aupgate.engine import Facts, decide  # noqa: E402
from aupgate.normalise import parse_url  # noqa: E402
from aupgate.pages import CSP, KINDS, REQUEST_ACCESS_PATH, page_for, plural  # noqa: E402
from aupgate.policy.loader import load_policy  # noqa: E402
from aupgate.policy.model import HelpDesk  # noqa: E402

POLICIES = Path(__file__).resolve().parents[1] / "policies"
LAB = Path(__file__).resolve().parent / "e2e" / "fixtures" / "policies" / "lab.yaml"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_renders_in_every_format(kind: str) -> None:
    """Each kind of the table is a page: its status, its heading, no unfilled placeholder."""
    page = block_page(kind=kind, token="t", pass_minutes=1)
    for accept in ("text/html", "application/json", None):
        rendered = render(page, accept)
        assert rendered.status == KINDS[kind].status
        assert "{host}" not in rendered.body.decode() and "{thing}" not in rendered.body.decode()


def test_a_new_kind_is_one_table_entry() -> None:
    """An unknown kind is refused at once, not rendered as something else."""
    with pytest.raises(ValueError, match="unknown page kind"):
        block_page(kind="port-blocked")


def test_plurals() -> None:
    assert plural(1, "minute") == "1 minute" and plural(15, "minute") == "15 minutes"
    assert "Continue for 1 minute<" in render(block_page(kind="warn", pass_minutes=1),
                                              "text/html").body.decode()


def saint_paul() -> object:
    policy, problems = load_policy(POLICIES / "saint-paul.yaml", today=date(2026, 11, 24))
    assert policy is not None, problems
    return policy


def test_block_page_names_only_the_deciding_category_and_no_bare_clause_id() -> None:
    """A gambling site also on the games list reads "gambling"; Saint Paul's clause ids are names,
    so the page says the document and the title, not "Clause gambling: Gambling"."""
    policy = saint_paul()
    index = ListIndex.from_entries([("bet365.com", "gambling"), ("bet365.com", "games"),
                                    ("bet365.com", "malware-phishing")])
    decision = decide(policy, index, Facts(parse_url("http://www.bet365.com/")),  # type: ignore[arg-type]
                      __import__("datetime").datetime(2026, 11, 24, 10, 30))
    page = page_for("block", "r", "www.bet365.com", "http://www.bet365.com/", decision,
                    policy, form_path="/")  # type: ignore[arg-type]
    body = render(page, "text/html").body.decode()
    assert page.categories == ("gambling",)
    assert "malware" not in body and "games" not in body
    assert "Clause gambling" not in body
    assert "Internet Access and Email Policy: Gambling" in body
    assert "Office of Technology and Communications" in body and "tel:6512666786" in body
    assert f'action="{REQUEST_ACCESS_PATH}"' in body
    text = render(page, None).body.decode()
    assert "Policy contact:" in text  # the long contact text is in the details, not the lead


def test_details_fold_holds_the_help_desk_facts() -> None:
    body = render(block_page(), "text/html").body.decode()
    fold = body.split("<details>", 1)[1]
    for fact in ("no-gambling", "r-123", "work"):
        assert fact in fold
    assert "no-gambling" not in body.split("<details>", 1)[0]


def test_download_blocked_on_an_allowed_site_says_download() -> None:
    page = block_page(thing="download", content="executable", categories=())
    body = render(page, "text/html").body.decode()
    assert "This download is blocked" in body and "This site is blocked" not in body


def test_help_desk_and_logo_are_escaped_and_typed() -> None:
    desk = HelpDesk(name=HOSTILE, phone="555-0100", link='https://x.example/"><script>',
                    logo="data:image/png;base64,AAAA")
    body = render(block_page(help_desk=desk), "text/html").body.decode()
    assert HOSTILE not in body and "<script>alert" not in body
    assert '<img src="data:image/png;base64,AAAA" alt="">' in body


def test_the_one_script_is_the_one_the_csp_allows() -> None:
    """Pages run no script but the "Go back" line, and the CSP names its hash."""
    body = render(block_page(kind="warn", token="t"), "text/html").body.decode()
    scripts = re.findall(r"<script>(.*?)</script>", body, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in CSP and "default-src 'none'" in CSP
    assert dict(render(block_page(), "text/html").headers)["Content-Security-Policy"] == CSP


def test_warn_form_is_first_and_honest() -> None:
    """The form comes before the clause (on screen without scrolling); honest validation."""
    page = block_page(kind="warn", token="t", problem="Write at least 2 words", typed="work")
    body = render(page, "text/html").body.decode()
    assert body.index("<form") < body.index("What the policy says")
    assert 'minlength="8"' in body and ">work</textarea>" in body
    assert 'role="alert">Write at least 2 words' in body
    assert 'id="back"' in body


def test_lab_policy_logo_is_embedded() -> None:
    policy, problems = load_policy(LAB, today=date(2026, 11, 24))
    assert policy is not None and policy.help_desk is not None, problems
    assert policy.help_desk.logo is not None
    assert policy.help_desk.logo.startswith("data:image/png;base64,")
