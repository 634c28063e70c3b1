"""`aupgate explain --batch`: request lines in, decision lines out, a block of lines at a time.

Each input line is a JSON object (`url`, and any of `agency`, `at`, `user`, `client`,
`device`); each output line is `{"line": N, ...the decision}` or `{"line": N, "error":
"FILE:N: why"}`. Blocks are independent, so `parallel.ordered_map` can decide them in several
processes and write them back in order. orjson in and out; a decision already written for the
same request is written again from its bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from aupgate.engine import Decision
from aupgate.errors import UrlError
from aupgate.memo import remember

from .render import DecisionRenderer
from .requests import RequestDecider, RequestError

__all__ = ["BATCH_FIELDS", "explain_block"]

BATCH_FIELDS = frozenset({"url", "agency", "at", "user", "client", "device"})
_LIMIT = 1 << 16


class BatchState:
    """What one process keeps between blocks: the decider and the bytes of recent decisions."""

    def __init__(self, decider: RequestDecider, source: str) -> None:
        self.decider = decider
        self.source = source
        self.rendered: dict[int, tuple[Decision, bytes]] = {}
        self.renderer = DecisionRenderer()


def explain_block(state: BatchState, data: bytes, first_line: int) -> tuple[bytes, int]:
    """The output lines for a block of input lines numbered from `first_line`, and how many
    failed."""
    out: list[bytes] = []
    append = out.append
    failures = 0
    loads = orjson.loads
    decide = state.decider.decide
    rendered = state.rendered
    render = state.renderer.render
    source = state.source
    number = first_line - 1
    for raw in data.split(b"\n"):
        number += 1
        if not raw or raw.isspace():
            continue
        try:
            request = loads(raw)
            if type(request) is not dict:
                raise RequestError("each line must be a JSON object")
            decision = decide(**_checked(request))
        except (RequestError, UrlError, orjson.JSONDecodeError) as exc:
            failures += 1
            append(orjson.dumps({"line": number, "error": f"{source}:{number}: {exc}"}))
            continue
        known = rendered.get(id(decision))
        if known is None or known[0] is not decision:
            known = remember(rendered, id(decision), (decision, render(decision)[1:]), _LIMIT)
        append(b'{"line":%d,%s' % (number, known[1]))
    if out:
        out.append(b"")
    return b"\n".join(out), failures


def _checked(request: dict[str, Any]) -> dict[str, Any]:
    """The request's fields as `RequestDecider.decide` takes them, or RequestError."""
    if not request.keys() <= BATCH_FIELDS:
        unknown = sorted(set(request) - BATCH_FIELDS)
        raise RequestError(f"unknown field(s): {', '.join(unknown)}")
    if type(request.get("url")) is not str:
        raise RequestError("'url' is required and must be text")
    for key, value in request.items():
        if value is not None and type(value) is not str:
            raise RequestError(f"'{key}' must be text")
    return request
