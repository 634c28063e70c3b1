"""The shadow's audit volume is bounded: at most `aupgate_shadow_max_per_minute` shadow_diff
events a minute, the rest counted into the next one written (`suppressed`); an exception while
deciding under the shadow is counted and never reaches the hook."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from aupgate.audit.log import AuditLog
from aupgate.engine import Decision
from aupgate.identity import Identity
from aupgate.mitm import shadow as shadow_module
from aupgate.mitm.deciding import Decider
from aupgate.mitm.shadow import Shadow


def decision(action: str, rule: str) -> Decision:
    return Decision(action=action, agency="lab", rule=rule, clauses=("1",),  # type: ignore[arg-type]
                    reason="r", step="rule", window="work", categories=("gambling",),
                    all_categories=("gambling",), matched=None, host="x.example",
                    url="http://x.example/")


def test_the_cap_and_what_it_held_back(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = io.StringIO()
    audit = AuditLog([sink])
    shadow = Shadow(Decider(), lambda: audit)
    shadow.max_per_minute = 2
    clock = {"now": 600.0}
    monkeypatch.setattr(shadow_module.time, "time", lambda: clock["now"])
    ident = Identity(None, None, None, "10.0.0.1")
    live, other = decision("allow", "default"), decision("block", "gambling")
    for _ in range(5):
        shadow._emit(audit, ident, "r", "request", live, other, ident, {"host": "x.example"})
    clock["now"] += 60  # the next minute
    shadow._emit(audit, ident, "r", "request", live, other, ident, {"host": "x.example"})
    shadow._emit(audit, ident, "r", "request", live, live, ident, {"host": "x.example"})  # same
    events: list[dict[str, Any]] = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [(e["change"], e["suppressed"]) for e in events] == [
        ("stricter", 0), ("stricter", 0), ("stricter", 3)]


def test_an_exception_is_counted_not_raised() -> None:
    audit = AuditLog([io.StringIO()])
    shadow = Shadow(Decider(), lambda: audit)

    class Broken:
        id = "f"

        @property
        def request(self) -> Any:
            raise RuntimeError("boom")

    shadow.request(None, Identity(None, None, None), Broken(), decision("allow", "d"))  # type: ignore[arg-type]
    assert shadow.errors == 1
