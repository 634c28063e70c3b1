"""Category coverage and business-site check: how well the shipped lists know the web.

Two measures, against the shipped data as the proxy uses it (the compiled index of
`categories/sources.yaml` and the policies in `policies/`):

- **Coverage.** For every site in `popular.yaml` (well-known sites per category, written from
  public knowledge), is the expected category among the categories the index gives the request
  (the winning entry's, which is what policy rules match)? Printed per category and overall.
- **Business sites.** Every URL in `business.yaml` (what any agency needs at work: conferencing,
  archives, government, suppliers, developer docs, cloud consoles, news, maps) is decided under
  every shipped agency at two work-hours moments on state equipment. Any block or warn is listed.

Both are printed twice: for the shipped index, and with `categories/aupgate/corrections.yaml`
applied by the reference reading in `corrections.py` (the proxy does not apply corrections yet;
this column is what it will give once it does).

Targets (issue 13): at least 95 % overall, at least 80 % in every category, and no business site
blocked or warned at work. The exit status is 1 when the shipped index misses a target.

Usage: .venv/bin/python bench/coverage/run.py [--misses] [--json]

It imports only the loaders, the engine's `decide`/`Facts`, `parse_url` and the category ids, so
that it measures the product through its public entry points.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from aupgate import CATEGORY_IDS, Facts, decide, load_index, load_policy_dir, parse_url

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corrections import CorrectedIndex, read_corrections, stale  # noqa: E402

CORRECTIONS = ROOT / "categories" / "aupgate" / "corrections.yaml"
CHICAGO = ZoneInfo("America/Chicago")
# Work hours on an ordinary Tuesday in every agency's schedule (not a break, not lunch): the
# morning and the afternoon, so a rule limited to one part of the day is still seen.
WORK_MOMENTS = (
    datetime(2026, 11, 24, 9, 30, tzinfo=CHICAGO),
    datetime(2026, 11, 24, 14, 0, tzinfo=CHICAGO),
)
OVERALL_TARGET = 0.95
CATEGORY_TARGET = 0.80


@dataclass(frozen=True, slots=True)
class Miss:
    """A popular site the index does not give its expected category."""

    category: str
    site: str
    got: tuple[str, ...]
    matched: str | None


@dataclass(frozen=True, slots=True)
class Stop:
    """A business URL an agency blocks or warns at work."""

    group: str
    url: str
    agency: str
    action: str
    rule: str
    categories: tuple[str, ...]
    matched: str | None


def _url(site: str) -> str:
    return site if "://" in site else f"https://{site}"


def read_groups(path: Path) -> dict[str, list[str]]:
    """A YAML mapping of group (a category, or a kind of business site) to sites or URLs."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise SystemExit(f"{path}: expected a mapping of group to a list of sites")
    return {str(category): [str(site) for site in sites] for category, sites in raw.items()}


def measure_coverage(
    index: Any, popular: dict[str, list[str]]
) -> tuple[dict[str, tuple[int, int]], list[Miss]]:
    """Per category (hits, total), and the misses."""
    table: dict[str, tuple[int, int]] = {}
    misses: list[Miss] = []
    for category, sites in popular.items():
        hits = 0
        for site in sites:
            url = parse_url(_url(site))
            result = index.classify(url.host, url.target)
            if category in result.categories:
                hits += 1
            else:
                misses.append(Miss(category, site, result.categories, result.matched))
        table[category] = (hits, len(sites))
    return table, misses


def check_business(
    index: Any, policies: Any, business: dict[str, list[str]]
) -> tuple[int, list[Stop]]:
    """Decide every business URL under every agency at the work moments; (decisions, stops)."""
    stops: list[Stop] = []
    decided = 0
    agencies = policies.policies
    for group, urls in business.items():
        for text in urls:
            facts = Facts(url=parse_url(text), device="state")
            for agency_id in sorted(agencies):
                stopped = [
                    decision
                    for moment in WORK_MOMENTS
                    if (decision := decide(agencies[agency_id], index, facts, moment)).action
                    in ("block", "warn")
                ]
                decided += len(WORK_MOMENTS)
                if stopped:  # named once per URL and agency, with its first stop
                    first = stopped[0]
                    stops.append(Stop(group, text, agency_id, first.action, first.rule,
                                      first.categories, first.matched))
    return decided, stops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--misses", action="store_true", help="list every missed popular site")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    shipped, _report = load_index(ROOT / "categories" / "sources.yaml")
    policies = load_policy_dir(ROOT / "policies", today=WORK_MOMENTS[0].date())
    popular = read_groups(HERE / "popular.yaml")
    business = read_groups(HERE / "business.yaml")
    corrections = read_corrections(CORRECTIONS, CATEGORY_IDS)
    corrected = CorrectedIndex(shipped, corrections)

    views = {}
    for name, index in (("shipped", shipped), ("corrected", corrected)):
        table, misses = measure_coverage(index, popular)
        decided, stops = check_business(index, policies, business)
        views[name] = View(table, misses, decided, stops)
    dead = stale(shipped, corrections)

    if args.json:
        print(json.dumps({
            name: {
                "overall": round(view.overall, 4),
                "categories": {c: {"hits": h, "total": t} for c, (h, t) in view.table.items()},
                "misses": [_as_dict(m) for m in view.misses],
                "business_decisions": view.decided,
                "business_stops": [_as_dict(s) for s in view.stops],
                "targets_met": view.met,
            }
            for name, view in views.items()
        } | {"stale_corrections": [str(c.scope) for c in dead]}, indent=2))
        return 0 if views["shipped"].met else 1

    now, fixed = views["shipped"], views["corrected"]
    width = max(len(c) for c in now.table)
    print("Coverage: popular sites given their expected category (bench/coverage/popular.yaml)")
    print(f"{'category':<{width}}  {'sites':>5}  {'shipped':>13}  {'corrections applied':>19}")
    for category, (h, t) in now.table.items():
        h2 = fixed.table[category][0]
        flag = "" if min(h, h2) / t >= CATEGORY_TARGET else "  < target"
        print(f"{category:<{width}}  {t:>5}  {h:>5} {h / t:>7.1%}  {h2:>11} {h2 / t:>7.1%}{flag}")
    total = sum(t for _, t in now.table.values())
    print(f"{'overall':<{width}}  {total:>5}  {now.hits:>5} {now.overall:>7.1%}  "
          f"{fixed.hits:>11} {fixed.overall:>7.1%}")
    print()
    if args.misses:
        for name, view in views.items():
            print(f"missed popular sites, {name} (expected -> got, winning entry):")
            for m in view.misses:
                got = ", ".join(m.got) or "uncategorized"
                print(f"  {m.category:<{width}}  {m.site}  ->  {got}  ({m.matched})")
            print()
    urls = sum(len(group) for group in business.values())
    print(f"Business sites: {urls} URLs (bench/coverage/business.yaml) x "
          f"{len(policies.policies)} agencies x {len(WORK_MOMENTS)} work-hours moments "
          f"= {now.decided} decisions")
    for name, view in views.items():
        print(f"  {name}: {len(view.stops)} blocked or warned")
        for s in view.stops:
            cats = ", ".join(s.categories)
            print(f"    {s.agency:<10} {s.action:<5} {s.url}  rule {s.rule}  [{cats}] "
                  f"({s.matched})")
    print()
    if dead:
        print(f"stale corrections (change nothing in the shipped lists): "
              f"{', '.join(str(c.scope) for c in dead)}")
    for name, view in views.items():
        print(f"targets ({name}): overall >= {OVERALL_TARGET:.0%}, every category >= "
              f"{CATEGORY_TARGET:.0%}, 0 business sites stopped: "
              f"{'met' if view.met else 'NOT met'}")
    return 0 if now.met else 1


@dataclass(frozen=True, slots=True)
class View:
    """The figures for one index: coverage per category, misses and business stops."""

    table: dict[str, tuple[int, int]]
    misses: list[Miss]
    decided: int
    stops: list[Stop]

    @property
    def hits(self) -> int:
        return sum(h for h, _ in self.table.values())

    @property
    def overall(self) -> float:
        return self.hits / sum(t for _, t in self.table.values())

    @property
    def met(self) -> bool:
        worst = min(h / t for h, t in self.table.values())
        return self.overall >= OVERALL_TARGET and worst >= CATEGORY_TARGET and not self.stops


def _as_dict(obj: Miss | Stop) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


if __name__ == "__main__":
    sys.exit(main())
