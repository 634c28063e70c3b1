"""Failing closed: a hook that raises must block what it was deciding, never pass it.

mitmproxy logs an exception raised in an addon hook as "Addon error" and carries on, which for a
request means forwarding it. `guarded` wraps a hook so that any exception goes to the addon's
`on_error` handler instead, which answers with an error page, refuses the connection or kills
the flow, and audits an `engine_error`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from mitmproxy import exceptions

logger = logging.getLogger(__name__)

P = ParamSpec("P")
S = TypeVar("S")


class InjectedFaultError(RuntimeError):
    """Raised on purpose by `aupgate_fault` (test mode only) to prove the gateway fails closed."""


def options_error(message: str) -> exceptions.OptionsError:
    """mitmproxy's OptionsError is untyped; one typed place to build it."""
    return exceptions.OptionsError(message)  # type: ignore[no-untyped-call]


def guarded(
    on_error: Callable[[S, Any, BaseException], None],
) -> Callable[[Callable[Concatenate[S, P], None]], Callable[Concatenate[S, P], None]]:
    """Run a hook so that an exception blocks what it was deciding instead of passing it."""

    def wrap(
        hook: Callable[Concatenate[S, P], None],
    ) -> Callable[Concatenate[S, P], None]:
        def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
            try:
                hook(self, *args, **kwargs)
            except Exception as exc:  # fail closed on anything
                try:
                    on_error(self, args[0] if args else None, exc)
                except Exception:  # pragma: no cover - last resort: never let it propagate
                    logger.exception("aupgate: failed while failing closed")

        run.__doc__ = hook.__doc__
        return run

    return wrap
