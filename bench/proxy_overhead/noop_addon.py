"""A script addon with aupgate's four per-request hooks, all empty: what `mitmdump -s` costs by
itself, before any deciding or auditing (`run.py --also-noop-addon`)."""

from __future__ import annotations

from typing import Any


class Noop:
    def requestheaders(self, flow: Any) -> None:
        pass

    def request(self, flow: Any) -> None:
        pass

    def responseheaders(self, flow: Any) -> None:
        pass

    def response(self, flow: Any) -> None:
        pass


addons = [Noop()]
