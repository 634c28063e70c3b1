"""Fixtures for the deployment tests; the helpers live in deploy_support.py (importable by name,
unlike a conftest, of which the suite has several)."""

from __future__ import annotations

from deploy_support import upstream

__all__ = ["upstream"]
