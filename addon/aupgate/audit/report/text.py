"""The report as text: aligned tables for a terminal, one long CSV table for spreadsheets."""

from __future__ import annotations

import csv
import io
from typing import Any

from .summary import ACTIONS

__all__ = ["render_csv", "render_table"]


def render_table(model: dict[str, Any]) -> str:
    """The terminal form: sections of aligned columns."""
    r = model["report"]
    lines = [
        f"aupgate report: {r['first_event'] or '-'} to {r['last_event'] or '-'} "
        f"(times of day in {r['time_zone']})",
        f"{r['lines']} lines read, {model['decisions']['total']} decisions (page views: the "
        f"CONNECT before an HTTPS request and {r['automatic_requests_not_counted']} favicon "
        "request(s) are not counted)"
        + (f"; agencies {', '.join(r['agencies'])} only" if r["agencies"] else ""),
        "",
        "DECISIONS BY ACTION",
    ]
    lines += [f"  {a:<10} {c:>10}" for a, c in model["decisions"]["by_action"].items()]
    lines += ["", "BY CATEGORY", f"  {'category':<22} {'total':>9} " + _action_header()]
    for cat in model["categories"]:
        counts = " ".join(f"{cat['by_action'].get(a, 0):>8}" for a in ACTIONS)
        lines.append(f"  {cat['category']:<22} {cat['total']:>9} {counts}")
    lines += ["", "TOP HOSTS PER CATEGORY"]
    for cat in model["categories"]:
        lines.append(f"  {cat['category']}{_approx(cat['top_hosts'])}")
        lines += [f"    {i['count']:>9}  {i['host']}" for i in cat["top_hosts"]["items"]]
        if "top_users" in cat:
            lines.append(f"    users{_approx(cat['top_users'])}:")
            lines += [f"    {i['count']:>9}  {i['user']}" for i in cat["top_users"]["items"]]
    if "top_users" in model:
        lines += ["", f"TOP USERS{_approx(model['top_users'])}"]
        lines += [f"  {i['count']:>9}  {i['user']}" for i in model["top_users"]["items"]]
    peak = max(model["blocks_by_hour"]) or 1
    lines += ["", "BLOCKS BY HOUR OF DAY"]
    for hour, count in enumerate(model["blocks_by_hour"]):
        lines.append(f"  {hour:02d}:00 {count:>9} {'#' * round(40 * count / peak)}")
    warn = model["warn"]
    lines += [
        "",
        f"WARNINGS: {warn['shown']} shown, {warn['continued']} continued with a stated reason, "
        f"{warn['continue_rejected']} continue attempt(s) sent back (reason too short, or an "
        "expired form)",
    ]
    lines += [f"  {w['count']:>9}  past {w['rule']}" for w in warn["continued_by_rule"]]
    lines.append(f"  reasons{_approx(warn['reasons'])}:")
    lines += [f"  {i['count']:>9}  {i['reason']}" for i in warn["reasons"]["items"]]
    access = model["access_requests"]
    lines += ["", f"ACCESS REQUESTS: {access['total']} (the latest {len(access['latest'])})"]
    lines += [f"  {a['time'][:16]}  {a['agency'] or '-'}  {a['user'] or a['client'] or '-'}  "
              f"{a['host']}{a['path'] or ''}  rule {a['rule'] or '-'}: \"{a['explanation']}\""
              for a in access["latest"]]
    pol = model["policy"]
    lines += [
        "",
        f"POLICY: {pol['loads']} load(s), {pol['reloads']} reload(s), "
        f"{pol['reload_failures']} failed reload(s)",
    ]
    lines += [
        f"  {e['time']}  {e['event']:<21} {e['part'] or '':<10} {e['digest'] or '':<12} "
        + (f"{e['errors']} error(s): {e['first_error']}" if e["errors"] else "")
        for e in pol["events"]
    ]
    h = model["health"]
    lines += [
        "",
        f"HEALTH: {h['engine_errors']} engine error(s), {h['domain_mismatches']} domain "
        f"mismatch(es), {h['audit_gaps']} audit gap(s) losing {h['lost']} event(s)",
    ]
    if "shadow" in model:
        lines += _shadow_lines(model["shadow"])
    if "uncategorized" in model:
        lines += ["", f"MOST REQUESTED UNCATEGORIZED HOSTS{_approx(model['uncategorized'])}"]
        lines += [f"  {i['count']:>9}  {i['host']}" for i in model["uncategorized"]["items"]]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _shadow_lines(shadow: dict[str, Any]) -> list[str]:
    """What the shadow policy (decided beside the policy in force, never enforced) would change."""
    lines = [
        "",
        f"SHADOW POLICY: {shadow['differences']} decision(s) would differ "
        f"({shadow['suppressed']} not written: over the per-minute cap); "
        f"{shadow['loads']} load(s), {shadow['load_failures']} failed load(s)",
    ]
    lines += [f"  {kind:<10} {count:>9}" for kind, count in shadow["by_change"].items()]
    for entry in shadow["by_action"]:
        lines.append(f"  {entry['from']:>5} -> {entry['to']:<7} {entry['count']:>9}"
                     f"{_approx(entry['top_hosts'])}")
        lines += [f"    {i['count']:>9}  {i['host']}" for i in entry["top_hosts"]["items"]]
        lines += [f"    {i['count']:>9}  user {i['user']}"
                  for i in entry.get("top_users", {}).get("items", [])]
    lines += [f"  {r['count']:>9}  {r['rules']}" for r in shadow["by_rule"]]
    return lines


def _action_header() -> str:
    return " ".join(f"{a:>8}" for a in ACTIONS)


def _approx(top: dict[str, Any]) -> str:
    return (
        f" (approximate: counts may be low by up to {top['error_bound']})"
        if top["approximate"]
        else ""
    )


# --------------------------------------------------------------------------- CSV


def render_csv(model: dict[str, Any]) -> str:
    """One long table for spreadsheets: section, category, key, count."""
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(["section", "category", "key", "count"])
    for action, count in model["decisions"]["by_action"].items():
        out.writerow(["action", "", action, count])
    for cat in model["categories"]:
        for action, count in cat["by_action"].items():
            out.writerow(["category_action", cat["category"], action, count])
        for item in cat["top_hosts"]["items"]:
            out.writerow(["category_host", cat["category"], item["host"], item["count"]])
        for item in cat.get("top_users", {}).get("items", []):
            out.writerow(["category_user", cat["category"], item["user"], item["count"]])
    for hour, count in enumerate(model["blocks_by_hour"]):
        out.writerow(["blocks_by_hour", "", f"{hour:02d}", count])
    for day in model["by_day"]:
        for action, count in day["by_action"].items():
            out.writerow(["day_action", day["date"], action, count])
    for rule in model["warn"]["continued_by_rule"]:
        out.writerow(["warn_continued", "", rule["rule"], rule["count"]])
    for item in model["warn"]["reasons"]["items"]:
        out.writerow(["warn_reason", "", item["reason"], item["count"]])
    for key in ("loads", "reloads", "reload_failures"):
        out.writerow(["policy", "", key, model["policy"][key]])
    for key, count in model["health"].items():
        out.writerow(["health", "", key, count])
    for item in model.get("top_users", {}).get("items", []):
        out.writerow(["user", "", item["user"], item["count"]])
    out.writerow(["warn_rejected", "", "continue_rejected", model["warn"]["continue_rejected"]])
    for item in model["access_requests"]["latest"]:
        out.writerow(["access_request", item["agency"] or "", f"{item['host']}{item['path'] or ''}",
                      item["explanation"]])
    for item in model.get("uncategorized", {}).get("items", []):
        out.writerow(["uncategorized_host", "uncategorized", item["host"], item["count"]])
    shadow = model.get("shadow")
    if shadow is not None:
        out.writerow(["shadow", "", "differences", shadow["differences"]])
        out.writerow(["shadow", "", "suppressed", shadow["suppressed"]])
        for entry in shadow["by_action"]:
            out.writerow(["shadow_action", "", f"{entry['from']} -> {entry['to']}",
                          entry["count"]])
        for entry in shadow["by_rule"]:
            out.writerow(["shadow_rule", "", entry["rules"], entry["count"]])
    return buffer.getvalue()
