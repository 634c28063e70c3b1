"""Where the shipped policies and categories live when nobody says otherwise.

`make run` and `aupgate explain` must work from a checkout with no flags, and an installed
gateway keeps its files under /etc/aupgate. An environment variable beats both, so a systemd unit
or a test can point elsewhere without rewriting command lines.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]
_SYSTEM = Path("/etc/aupgate")


def _first_existing(env: str, relative: str) -> Path:
    if value := os.environ.get(env):
        return Path(value)
    for base in (Path.cwd(), _CHECKOUT, _SYSTEM):
        candidate = base / relative
        if candidate.exists():
            return candidate
    return _CHECKOUT / relative


def default_policy_dir() -> Path:
    """`$AUPGATE_POLICY_DIR`, else `./policies`, the checkout's, or /etc/aupgate/policies."""
    return _first_existing("AUPGATE_POLICY_DIR", "policies")


def default_categories() -> Path:
    """`$AUPGATE_CATEGORIES`, else `categories/sources.yaml` found the same way."""
    return _first_existing("AUPGATE_CATEGORIES", "categories/sources.yaml")
