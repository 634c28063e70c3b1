"""docs/clause-maps.md shows each shipped policy's rules and clause map as the files say them:
the two tables per agency are rendered here from the YAML and must appear in the doc verbatim,
so a policy change that forgets its clause map fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "clause-maps.md"
AGENCIES = ("modot", "mo-dnr", "saint-paul")


def _policy(agency: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "policies" / f"{agency}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def rule_table(policy: dict[str, Any]) -> str:
    rows = ["| # | Rule | Matches | Action | Cites |", "|---|---|---|---|---|"]
    for i, rule in enumerate(policy["rules"], 1):
        match = "; ".join(f"{key}: {', '.join(map(str, values))}"
                          for key, values in rule["match"].items())
        rows.append(f"| {i} | `{rule['id']}` | {match} | {rule['action']} | "
                    f"{', '.join(map(str, rule['clauses']))} |")
    default = policy["default"]
    rows.append(f"| | default | anything else | {default['action']} | "
                f"{', '.join(map(str, default['clauses']))} |")
    return "\n".join(rows)


def clause_table(policy: dict[str, Any]) -> str:
    rows = ["| Clause | Title | Enforced by | Not enforceable (why) / proxy limits |",
            "|---|---|---|---|"]
    for cid, clause in policy["clauses"].items():
        by = [f"`{r['id']}`" for r in policy["rules"] if cid in map(str, r["clauses"])]
        if cid in map(str, policy["default"]["clauses"]):
            by.append("`default`")
        by += [f"`{section}`" for section in ("tenants", "safe_search", "ports")
               if cid in map(str, (policy.get(section) or {}).get("clauses", ()))]
        if "not_enforceable" in clause:
            note = f"**Not enforceable:** {clause['not_enforceable'].strip()}"
        else:
            note = f"Limits: {clause['proxy_limits'].strip()}" if "proxy_limits" in clause else ""
        rows.append(f"| `{cid}` | {clause['title']} | {', '.join(by) or '—'} | {note} |")
    return "\n".join(rows)


@pytest.mark.parametrize("agency", AGENCIES)
@pytest.mark.parametrize("table", [rule_table, clause_table], ids=["rules", "clauses"])
def test_doc_shows_the_policy(agency: str, table: Any) -> None:
    rendered = table(_policy(agency))
    doc = DOC.read_text(encoding="utf-8")
    missing = [line for line in rendered.splitlines() if line not in doc]
    assert rendered in doc, f"docs/clause-maps.md is out of date for {agency}: {missing[:3]}"
