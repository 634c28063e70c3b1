"""A decision as the JSON bytes of `Decision.to_json()`, from remembered pieces.

Replay writes one decision per line; building the 18-key dict and encoding it is most of the
cost of a decision the engine remembered. The fields come in runs that repeat across decisions:
the verdict (action, agency, rule, clauses, reason, step), the window, the classification
(categories, all categories, matched entry), who asked (user, device, network, grant, intercept,
direction, rules relaxed). Each run is encoded once and remembered (bounded); only the host and
URL are encoded per decision. `tests/test_lifecycle_render.py` holds the bytes equal to
`orjson.dumps(decision.to_json())`.
"""

from __future__ import annotations

from typing import Any

import orjson

from aupgate.engine import Decision
from aupgate.memo import remember

__all__ = ["DecisionRenderer"]

_LIMIT = 1 << 14


def _body(fields: dict[str, Any]) -> bytes:
    """The encoded fields without the braces: `"a":1,"b":2`."""
    return orjson.dumps(fields)[1:-1]


class DecisionRenderer:
    """Encodes decisions; one per process (the memos are its own)."""

    def __init__(self) -> None:
        self._verdicts: dict[tuple[Any, ...], bytes] = {}
        self._windows: dict[str, bytes] = {}
        self._sites: dict[tuple[Any, ...], bytes] = {}
        self._who: dict[tuple[Any, ...], bytes] = {}

    def render(self, d: Decision) -> bytes:
        """`orjson.dumps(d.to_json())`, byte for byte."""
        key = (d.action, d.agency, d.rule, d.clauses, d.reason, d.step)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = remember(self._verdicts, key, _body({
                "action": d.action, "agency": d.agency, "rule": d.rule,
                "clauses": list(d.clauses), "reason": d.reason, "step": d.step,
            }), _LIMIT)
        window = self._windows.get(d.window)
        if window is None:
            window = remember(self._windows, d.window, _body({"window": d.window}), _LIMIT)
        site_key = (d.categories, d.all_categories, d.matched)
        site = self._sites.get(site_key)
        if site is None:
            site = remember(self._sites, site_key, _body({
                "categories": list(d.categories), "all_categories": list(d.all_categories),
                "matched": d.matched,
            }), _LIMIT)
        who_key = (d.user, d.device, d.network, d.grant, d.intercept, d.direction, d.relaxed)
        who = self._who.get(who_key)
        if who is None:
            who = remember(self._who, who_key, _body({
                "user": d.user, "device": d.device, "network": d.network, "grant": d.grant,
                "intercept": d.intercept, "direction": d.direction,
                "relaxed": [{"rule": r, "grant": g} for r, g in d.relaxed],
            }), _LIMIT)
        dumps = orjson.dumps
        return b"".join((b"{", verdict, b",", window, b",", site, b',"host":', dumps(d.host),
                         b',"url":', dumps(d.url), b",", who, b"}"))
