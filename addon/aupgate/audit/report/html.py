"""The report as one self-contained page: inline CSS and SVG, no script, nothing fetched."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from .summary import ACTIONS

__all__ = ["COLOURS", "render_html"]

COLOURS = {
    "block": "#c0392b",
    "warn": "#e69f00",
    "log": "#0072b2",
    "allow": "#009e73",
}
_OTHER_COLOUR = "#7f7f7f"

_CSS = """
body{font:15px/1.45 -apple-system,"Segoe UI",Roboto,"Liberation Sans",Arial,sans-serif;
color:#1d2430;margin:0;background:#f4f5f7}
main{max-width:1080px;margin:0 auto;padding:28px 32px 48px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 8px;
border-bottom:2px solid #dde1e6;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#5b6472;margin:0 0 18px}.kpis{display:flex;gap:14px;flex-wrap:wrap;margin:18px 0}
.kpi{flex:1 1 150px;border:1px solid #dde1e6;border-radius:6px;padding:10px 14px}
.kpi b{display:block;font-size:24px}.kpi span{color:#5b6472;font-size:13px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:14px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef1;vertical-align:top}
th{background:#f7f8fa;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.legend span{display:inline-block;margin-right:16px;font-size:13px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px}
.note{color:#5b6472;font-size:13px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 28px}
svg text{font:12px Arial,sans-serif;fill:#1d2430}
@media print{body{background:#fff}main{padding:0}h2{break-after:avoid}}
"""


def render_html(model: dict[str, Any]) -> str:
    """One self-contained page: inline CSS and SVG, no script, nothing fetched from a network."""
    e = html.escape
    r = model["report"]
    d = model["decisions"]
    by_action = d["by_action"]
    period = f"{_day(r['first_event'])} to {_day(r['last_event'])}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Internet use report, {e(period)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        "<h1>Internet use under the acceptable-use policy</h1>",
        f'<p class="sub">{e(period)} &middot; times of day in {e(r["time_zone"])} &middot; '
        f"generated {e(r['generated'])} by aupgate from {len(r['files'])} audit file(s)</p>",
        '<div class="kpis">',
        _kpi(d["total"], "decisions"),
        _kpi(by_action.get("block", 0), "blocked"),
        _kpi(by_action.get("warn", 0), "warned"),
        _kpi(model["warn"]["continued"], "continued after a warning"),
        _kpi(model["policy"]["reload_failures"], "rejected policy edits"),
        "</div>",
        "<h2>Decisions by action</h2>",
        _legend(),
        _hbars([(a, {a: c}) for a, c in by_action.items()]),
        "<h2>Decisions by category</h2>",
        '<p class="note">Each request counts once per category of its site; '
        "<em>uncategorized</em> sites are on no category list.</p>",
        _legend(),
        _hbars([(c["category"], c["by_action"]) for c in model["categories"][:20]]),
        "<h2>Blocked requests by hour of day</h2>",
        _columns(model["blocks_by_hour"]),
    ]
    if len(model["by_day"]) > 1:
        parts += ["<h2>Decisions per day</h2>", _legend(), _days(model["by_day"])]
    parts.append("<h2>Most requested sites per category</h2>")
    parts.append('<div class="grid">')
    for cat in model["categories"][:20]:
        rows = [(i["host"], i["count"]) for i in cat["top_hosts"]["items"]]
        parts.append(
            f"<div><h3>{e(cat['category'])}</h3>"
            + _table(("site", "requests"), rows)
            + _approx_note(cat["top_hosts"])
            + "</div>"
        )
    parts.append("</div>")
    if "top_users" in model:
        parts += [
            "<h2>Most active users</h2>",
            _table(("user", "requests"), _rows(model["top_users"], "user")),
            _approx_note(model["top_users"]),
        ]
    warn = model["warn"]
    parts += [
        "<h2>Warnings and stated work reasons</h2>",
        f"<p>{warn['shown']} warning page(s) shown; {warn['continued']} continued after "
        f"stating a work reason; {warn['continue_rejected']} continue attempt(s) sent back "
        "(reason too short, or an expired form).</p>",
        _table(
            ("rule continued past", "times"),
            [(w["rule"], w["count"]) for w in warn["continued_by_rule"]],
        ),
        _table(("stated reason", "times"), _rows(warn["reasons"], "reason")),
        _approx_note(warn["reasons"]),
    ]
    access = model["access_requests"]
    parts += [
        "<h2>Requests for access</h2>",
        f"<p>{access['total']} request(s) for access from block pages.</p>",
        _table(("time", "agency", "who", "site", "rule", "explanation"),
               [(a["time"][:16].replace("T", " "), a["agency"] or "-",
                 a["user"] or a["client"] or "-", f"{a['host']}{a['path'] or ''}",
                 a["rule"] or "-", a["explanation"] or "") for a in access["latest"]]),
    ]
    pol = model["policy"]
    parts += [
        "<h2>Policy changes</h2>",
        f"<p>{pol['loads']} load(s) at start, {pol['reloads']} accepted change(s), "
        f"{pol['reload_failures']} rejected change(s) (the previous policy stayed in force).</p>",
        _table(
            ("time (UTC)", "event", "part", "version", "problems"),
            [
                (
                    ev["time"][:19].replace("T", " "),
                    ev["event"].replace("_", " "),
                    ev["part"] or "",
                    ev["digest"] or "",
                    f"{ev['errors']}: {ev['first_error']}" if ev["errors"] else "",
                )
                for ev in pol["events"]
            ],
        ),
    ]
    h = model["health"]
    parts += [
        "<h2>Gateway health</h2>",
        _table(
            ("", "count"),
            [
                ("requests blocked because the gateway itself failed", h["engine_errors"]),
                ("requests naming different sites (domain fronting)", h["domain_mismatches"]),
                ("gaps in the audit log", h["audit_gaps"]),
                ("events lost in those gaps", h["lost"]),
            ],
        ),
    ]
    if "shadow" in model:
        shadow = model["shadow"]
        parts += [
            "<h2>Shadow policy (a candidate, not enforced)</h2>",
            f"<p>{shadow['differences']:,} decision(s) would differ under the candidate "
            f"({shadow['suppressed']:,} not written in the log: over the per-minute cap).</p>",
            _table(("would change", "decisions"),
                   [(f"{a['from']} to {a['to']}", a["count"]) for a in shadow["by_action"]]),
            _table(("rule in force to candidate rule", "decisions"),
                   [(r["rules"], r["count"]) for r in shadow["by_rule"]]),
        ]
    if "uncategorized" in model:
        parts += [
            "<h2>Most requested uncategorized sites</h2>",
            '<p class="note">Candidates for the category lists.</p>',
            _table(("site", "requests"), _rows(model["uncategorized"], "host")),
            _approx_note(model["uncategorized"]),
        ]
    if not r["by_user"]:
        parts.append(
            '<p class="note">This report names no users. An investigation that needs them '
            "runs <code>aupgate report --by-user</code>.</p>"
        )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _rows(top: dict[str, Any], name: str) -> list[tuple[str, int]]:
    return [(item[name], item["count"]) for item in top["items"]]


def _day(key: str | None) -> str:
    return key[:10] if key else "-"


def _kpi(value: int, label: str) -> str:
    return f'<div class="kpi"><b>{value:,}</b><span>{html.escape(label)}</span></div>'


def _legend() -> str:
    items = "".join(f'<span><i style="background:{c}"></i>{a}</span>' for a, c in COLOURS.items())
    items += f'<span><i style="background:{_OTHER_COLOUR}"></i>refused or failed</span>'
    return f'<p class="legend">{items}</p>'


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return '<p class="note">None.</p>'
    e = html.escape
    th = "".join(
        f'<th class="n">{e(h)}</th>'
        if i == len(head) - 1 and len(head) == 2
        else f"<th>{e(h)}</th>"
        for i, h in enumerate(head)
    )
    body = []
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, int):
                cells.append(f'<td class="n">{value:,}</td>')
            else:
                cells.append(f"<td>{e(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _approx_note(top: dict[str, Any]) -> str:
    if not top["approximate"]:
        return ""
    return (
        f'<p class="note">Approximate: too many distinct entries to count each; counts may be '
        f"low by up to {top['error_bound']:,}.</p>"
    )


def _hbars(rows: Sequence[tuple[str, dict[str, int]]]) -> str:
    """Horizontal bars, stacked by action: one row per label."""
    if not rows:
        return '<p class="note">No decisions in this period.</p>'
    e = html.escape
    width, label_w, bar_h, gap = 1000, 190, 22, 8
    peak = max(sum(counts.values()) for _, counts in rows) or 1
    scale = (width - label_w - 90) / peak
    height = len(rows) * (bar_h + gap) + gap
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="bar chart">'
    ]
    for index, (label, counts) in enumerate(rows):
        y = gap + index * (bar_h + gap)
        out.append(
            f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">{e(label)}</text>'
        )
        x = float(label_w)
        for action, count in counts.items():
            w = count * scale
            if w > 0:
                colour = COLOURS.get(action, _OTHER_COLOUR)
                out.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" '
                    f'fill="{colour}"><title>{e(label)}: {count:,} {e(action)}</title></rect>'
                )
                x += w
        out.append(
            f'<text x="{x + 6:.1f}" y="{y + bar_h * 0.7:.1f}">{sum(counts.values()):,}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _columns(values: Sequence[int]) -> str:
    """Blocks per hour of day: 24 columns in the block colour."""
    width, height, left, bottom, top = 1000, 260, 50, 28, 14
    peak = max(values) or 1
    step = (width - left - 10) / len(values)
    inner = height - bottom - top
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        'role="img" aria-label="blocked requests by hour of day">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" '
        'stroke="#9aa3ad"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak:,}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>',
    ]
    for hour, count in enumerate(values):
        x = left + hour * step
        h = inner * count / peak
        if count:
            out.append(
                f'<rect x="{x + 3:.1f}" y="{height - bottom - h:.1f}" width="{step - 6:.1f}" '
                f'height="{h:.1f}" fill="{COLOURS["block"]}"><title>{hour:02d}:00 '
                f"{count:,} blocked</title></rect>"
            )
        out.append(
            f'<text x="{x + step / 2:.1f}" y="{height - 10}" text-anchor="middle">{hour:02d}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _days(days: Sequence[dict[str, Any]]) -> str:
    """Decisions per day, stacked by action."""
    shown = days[-366:]
    width, height, left, bottom, top = 1000, 240, 60, 30, 12
    peak = max(sum(d["by_action"].values()) for d in shown) or 1
    step = (width - left - 10) / len(shown)
    inner = height - bottom - top
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        'role="img" aria-label="decisions per day">',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak:,}</text>',
    ]
    label_every = max(1, len(shown) // 10)
    for index, day in enumerate(shown):
        x = left + index * step
        y = float(height - bottom)
        for action in (*ACTIONS, *(k for k in day["by_action"] if k not in ACTIONS)):
            count = day["by_action"].get(action, 0)
            if not count:
                continue
            h = inner * count / peak
            y -= h
            out.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{COLOURS.get(action, _OTHER_COLOUR)}"/>'
            )
        if index % label_every == 0:
            out.append(
                f'<text x="{x + step / 2:.1f}" y="{height - 10}" text-anchor="middle">'
                f"{html.escape(day['date'][5:])}</text>"
            )
    out.append("</svg>")
    return "".join(out)
