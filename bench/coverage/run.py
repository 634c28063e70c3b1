"""Category coverage and business-site check: how well the shipped lists know the web.

Two measures, against the shipped data as the proxy uses it (the compiled index of
`categories/sources.yaml` and the policies in `policies/`):

- **Coverage.** For every site in `popular.yaml` (well-known sites per category, written from
  public knowledge), is the expected category among the categories the index gives the request
  (the winning entry's, which is what policy rules match)? Printed per category and overall.
- **Business sites.** Every URL in `business.yaml` (what any agency needs at work: conferencing,
  archives, government, suppliers, developer docs, cloud consoles, news, maps) is decided under
  every shipped agency at two work-hours moments on state equipment. Any block or warn is listed.

The index is the proxy's: `load_index` applies `categories/aupgate/corrections.yaml`, as the
proxy does. (`corrections.py` here is the data half's independent reading of that file, which
tests/test_corrections_data.py holds the index to.)

Targets (issue 13): at least 95 % overall, at least 80 % in every category, and no business site
blocked or warned at work. The exit status is 1 when a target is missed.

Usage: .venv/bin/python bench/coverage/run.py [--misses] [--json]

It imports only the loaders, the engine's `decide`/`Facts`, `parse_url` and the staleness check,
so that it measures the product through its public entry points.
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

from aupgate import Facts, decide, load_index, load_policy_dir, parse_url
from aupgate.categories.corrections import stale_corrections

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
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

    index, _report = load_index(ROOT / "categories" / "sources.yaml")
    policies = load_policy_dir(ROOT / "policies", today=WORK_MOMENTS[0].date())
    popular = read_groups(HERE / "popular.yaml")
    business = read_groups(HERE / "business.yaml")
    table, misses = measure_coverage(index, popular)
    decided, stops = check_business(index, policies, business)
    view = View(table, misses, decided, stops)
    dead = stale_corrections(index.corrections, index)

    if args.json:
        print(json.dumps({
            "overall": round(view.overall, 4),
            "categories": {c: {"hits": h, "total": t} for c, (h, t) in view.table.items()},
            "misses": [_as_dict(m) for m in view.misses],
            "business_decisions": view.decided,
            "business_stops": [_as_dict(s) for s in view.stops],
            "corrections": len(index.corrections),
            "stale_corrections": [str(c.scope) for c in dead],
            "targets_met": view.met,
        }, indent=2))
        return 0 if view.met else 1

    width = max(len(c) for c in view.table)
    print("Coverage: popular sites given their expected category (bench/coverage/popular.yaml),")
    print(f"shipped index with its {len(index.corrections)} corrections applied")
    print(f"{'category':<{width}}  {'sites':>5}  {'given':>5}  {'coverage':>8}")
    for category, (h, t) in view.table.items():
        flag = "" if h / t >= CATEGORY_TARGET else "  < target"
        print(f"{category:<{width}}  {t:>5}  {h:>5}  {h / t:>8.1%}{flag}")
    total = sum(t for _, t in view.table.values())
    print(f"{'overall':<{width}}  {total:>5}  {view.hits:>5}  {view.overall:>8.1%}")
    print()
    if args.misses:
        print("missed popular sites (expected -> got, winning entry):")
        for m in view.misses:
            got = ", ".join(m.got) or "uncategorized"
            print(f"  {m.category:<{width}}  {m.site}  ->  {got}  ({m.matched})")
        print()
    urls = sum(len(group) for group in business.values())
    print(f"Business sites: {urls} URLs (bench/coverage/business.yaml) x "
          f"{len(policies.policies)} agencies x {len(WORK_MOMENTS)} work-hours moments "
          f"= {view.decided} decisions; {len(view.stops)} blocked or warned")
    for s in view.stops:
        cats = ", ".join(s.categories)
        print(f"    {s.agency:<10} {s.action:<5} {s.url}  rule {s.rule}  [{cats}] ({s.matched})")
    print()
    if dead:
        print(f"stale corrections (change nothing in the shipped lists): "
              f"{', '.join(str(c.scope) for c in dead)}")
    print(f"targets: overall >= {OVERALL_TARGET:.0%}, every category >= {CATEGORY_TARGET:.0%}, "
          f"0 business sites stopped: {'met' if view.met else 'NOT met'}")
    return 0 if view.met else 1


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
