"""The HTML form of a page, its stylesheet and the Content-Security-Policy it is sent with.

Laid out for the employee's question, in this order: what happened (heading, the policy's reason,
the site and its deciding category), what to do (the warn form or the "request access" form,
styled, with a way back), why (the clause as the document words it), whom to ask (the help desk),
and last, folded, the details the help desk asks for. The warn form comes before the clause so
that its box and button are on screen without scrolling, on a desktop and on a phone.

Every value is escaped: host names, paths and even clause texts come from outside, and a
hostile URL must not be able to script a page the agency's CA vouches for. The only script is
the "Go back" button's one line, allowed by its hash in the Content-Security-Policy.
"""

from __future__ import annotations

import base64
import hashlib
import html

from .model import CONTINUE_PATH, REQUEST_ACCESS_PATH, Page, category_label

__all__ = ["CSP", "render_html"]

_BACK_SCRIPT = ('document.getElementById("back").addEventListener("click",function(e){'
                'if(history.length>1){e.preventDefault();history.back();}});')
_BACK_HASH = base64.b64encode(hashlib.sha256(_BACK_SCRIPT.encode()).digest()).decode()

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; "
       f"script-src 'sha256-{_BACK_HASH}'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
"""What the HTML pages may load: their own inline style, the logo, the one script; forms post
to the page's own origin (the reserved path on the host that was stopped)."""

_STYLE = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
background:#f4f5f7}
header{background:#1f3a5f;color:#fff;padding:.6rem 1rem;display:flex;align-items:center;gap:.75rem}
header img{max-height:2.25rem;max-width:8rem}
header span{font-weight:600}
main{max-width:44rem;margin:0 auto;padding:1rem 1rem 2rem;background:#fff;min-height:100vh}
h1{font-size:1.5rem;line-height:1.25;margin:.5rem 0}
h2{font-size:1.05rem;margin:1.25rem 0 .35rem}
p{margin:.4rem 0}
.site{color:#57606a}
.site strong{color:#1f2328;word-break:break-all}
.tag{display:inline-block;background:#eef1f4;border-radius:1rem;padding:0 .6rem;margin-left:.3rem;
font-size:.9rem}
form{margin:.75rem 0;padding:.75rem;border:1px solid #d0d7de;border-radius:.5rem;background:#f8fafc}
label{display:block;font-weight:600;margin-bottom:.3rem}
.hint{font-weight:400;color:#57606a}
textarea{display:block;width:100%;max-width:100%;min-height:4.5rem;padding:.5rem;font:inherit;
border:1px solid #8c959f;border-radius:.35rem;resize:vertical}
.buttons{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.6rem}
button,.button{display:inline-block;min-height:2.75rem;padding:.55rem 1.1rem;font:inherit;
font-weight:600;border-radius:.4rem;border:1px solid #1f3a5f;cursor:pointer;text-decoration:none}
.primary{background:#1f5fbf;border-color:#1f5fbf;color:#fff}
.secondary{background:#fff;color:#1f3a5f}
.problem{color:#a40e26;font-weight:600}
blockquote{margin:.35rem 0;padding:.4rem .9rem;border-left:4px solid #8c959f;background:#f6f8fa}
.cite{font-weight:600}
.desk{margin-top:1rem;padding:.6rem .75rem;background:#eef4fb;border-radius:.4rem}
details{margin-top:1.25rem;color:#57606a}
summary{cursor:pointer}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:.5rem 0}
dt{font-weight:600}
dd{margin:0;word-break:break-all}
@media (max-width:480px){h1{font-size:1.3rem}main{padding:.75rem}form{padding:.6rem}}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def render_html(page: Page) -> str:
    """The whole page."""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="robots" content="noindex">',
        f"<title>{_e(page.heading)}</title><style>{_STYLE}</style></head>",
        f'<body class="kind-{_e(page.kind)}">',
        _header(page),
        "<main>",
        f"<h1>{_e(page.heading)}</h1>",
        f'<p class="lead">{_e(page.happened)}</p>',
        _site_line(page),
        _form(page),
        _clauses(page),
        _next(page),
        _details(page),
        "</main>",
        f"<script>{_BACK_SCRIPT}</script>" if _has_back(page) else "",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _header(page: Page) -> str:
    name = page.agency_name or "Agency internet gateway"
    logo = ""
    if page.help_desk is not None and page.help_desk.logo:
        logo = f'<img src="{_e(page.help_desk.logo)}" alt="">'
    return f"<header>{logo}<span>{_e(name)}</span></header>"


def _site_line(page: Page) -> str:
    if not page.host or page.kind in ("refused", "request-sent", "too-many"):
        return ""
    tags = "".join(f'<span class="tag">{_e(category_label(c))}</span>' for c in page.categories)
    return f'<p class="site"><strong>{_e(page.host)}</strong>{tags}</p>'


def _has_back(page: Page) -> bool:
    return page.kind in ("warn", "block")


def _back(page: Page) -> str:
    if page.back:
        return f'<a class="button secondary" id="back" href="{_e(page.back)}">Go back</a>'
    return '<button type="button" class="secondary" id="back">Go back</button>'


def _problem(page: Page) -> str:
    return f'<p class="problem" role="alert">{_e(page.problem)}</p>' if page.problem else ""


def _form(page: Page) -> str:
    """The warn form (first, so it is on screen) or the "request access" form of a block."""
    if page.kind == "warn":
        return "\n".join([
            f'<form method="post" action="{_e(CONTINUE_PATH)}">',
            f'<input type="hidden" name="token" value="{_e(page.token or "")}">',
            '<label for="reason">Your work reason <span class="hint">(recorded)</span></label>',
            _problem(page),
            '<textarea id="reason" name="reason" rows="3" required minlength="8" '
            'maxlength="500" placeholder="For example: checking the vendor\'s page for the '
            f'bridge contract">{_e(page.typed)}</textarea>',
            '<div class="buttons">',
            f'<button type="submit" class="primary">{_e(page.continue_label)}</button>',
            _back(page),
            "</div></form>",
        ])
    if page.kind == "block":
        if not page.offers_request:
            return f'<div class="buttons">{_back(page)}</div>'
        return "\n".join([
            f'<form method="post" action="{_e(REQUEST_ACCESS_PATH)}">',
            f'<input type="hidden" name="path" value="{_e(page.form_path or "/")}">',
            f'<input type="hidden" name="content" value="{_e(page.content or "")}">',
            '<label for="explanation">Need it for your work? '
            '<span class="hint">Say why, and ask for access</span></label>',
            _problem(page),
            '<textarea id="explanation" name="explanation" rows="2" required minlength="8" '
            f'maxlength="500">{_e(page.typed)}</textarea>',
            '<div class="buttons">',
            '<button type="submit" class="primary">Request access</button>',
            _back(page),
            "</div></form>",
        ])
    return ""


def _clauses(page: Page) -> str:
    if not page.clauses:
        return ""
    parts = ["<section><h2>What the policy says</h2>"]
    for clause in page.clauses:
        parts.append(f'<p class="cite">{_e(clause.label(page.document))}</p>')
        parts.append(f"<blockquote>{_e(clause.text)}</blockquote>")
    parts.append("</section>")
    return "\n".join(parts)


def _next(page: Page) -> str:
    parts = [f"<section><h2>What you can do</h2><p>{_e(page.fill(page.spec.next_steps))}</p>"]
    desk = page.help_desk
    if desk is not None:
        bits = [f"<strong>{_e(desk.name)}</strong>"]
        if desk.phone:
            tel = "".join(c for c in desk.phone if c.isdigit() or c == "+")
            bits.append(f'<a href="tel:{_e(tel)}">{_e(desk.phone)}</a>')
        if desk.link:
            bits.append(f'<a href="{_e(desk.link)}">{_e(_link_text(desk.link))}</a>')
        parts.append(f'<p class="desk">Help desk: {" · ".join(bits)}</p>')
    elif page.contact:
        parts.append(f'<p class="desk">{_e(page.contact)}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _link_text(link: str) -> str:
    return link.removeprefix("mailto:").removeprefix("https://").removeprefix("http://") \
        .rstrip("/")


def _details(page: Page) -> str:
    rows = "".join(f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in page.facts())
    return (f"<details><summary>Details for the help desk</summary><dl>{rows}</dl>"
            "</details>")
