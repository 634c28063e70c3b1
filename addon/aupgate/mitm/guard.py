"""Failing closed: a hook that raises must block what it was deciding, never pass it.

mitmproxy logs an exception raised in an addon hook as "Addon error" and carries on, which for a
request means forwarding it. `guarded` wraps a hook so that any exception goes to the addon's
`on_error` handler instead, which answers with an error page, refuses the connection or kills
the flow, and audits an `engine_error`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from mitmproxy import exceptions

logger = logging.getLogger(__name__)

S = TypeVar("S")
A = TypeVar("A")


class InjectedFaultError(RuntimeError):
    """Raised on purpose by `aupgate_fault` (test mode only) to prove the gateway fails closed."""


def options_error(message: str) -> exceptions.OptionsError:
    """mitmproxy's OptionsError is untyped; one typed place to build it."""
    return exceptions.OptionsError(message)  # type: ignore[no-untyped-call]


def guarded(
    on_error: Callable[[S, Any, BaseException], None],
) -> Callable[[Callable[[S, A], None]], Callable[[S, A], None]]:
    """Run a hook so that an exception blocks what it was deciding instead of passing it.

    Every mitmproxy hook takes one argument (the flow, or the hook's data), so the wrapper takes
    exactly one: it runs for every request, and packing `*args` costs more than the call.
    """

    def wrap(hook: Callable[[S, A], None]) -> Callable[[S, A], None]:
        def run(self: S, data: A, /) -> None:
            try:
                hook(self, data)
            except Exception as exc:  # fail closed on anything
                try:
                    on_error(self, data, exc)
                except Exception:  # pragma: no cover - last resort: never let it propagate
                    logger.exception("aupgate: failed while failing closed")

        run.__doc__ = hook.__doc__
        run.__name__ = hook.__name__
        return run

    return wrap
