"""Which protocol libraries the running proxy parses requests with, and whether they are fixed.

mitmproxy 11.0.2 (the last for Python 3.11) pins h11 <= 0.14.0 and h2 <= 4.1.0, which carry
known request-smuggling flaws (CVE-2025-43859, GHSA-847f-9342-265h; docs/security.md). The
Makefile installs fixed versions over the pins, but any later `pip install` that resolves
mitmproxy's requirements again puts the old ones back without a word. So the gateway says in its
`proxy_start` audit line which versions it runs (`libraries`), and warns loudly at start when
one is older than the fixed version: an auditor and an operator can both see what parsed the
traffic, not what the set-up meant to install.
"""

from __future__ import annotations

import logging
from importlib import metadata

__all__ = ["FIXED", "LIBRARIES", "outdated", "versions", "warn_if_outdated"]

logger = logging.getLogger(__name__)

LIBRARIES = ("mitmproxy", "h11", "h2", "hyperframe")
"""The distributions that parse and frame the traffic the gateway decides."""

FIXED = {"h11": (0, 16, 0), "h2": (4, 3, 0)}
"""The first version of each without the known smuggling flaw."""


def versions() -> dict[str, str]:
    """Installed version of each of `LIBRARIES` ("not installed" when absent)."""
    found: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _release(version: str) -> tuple[int, ...]:
    """The leading numeric release of a version string ("0.14.0" -> (0, 14, 0)); () if none."""
    parts: list[int] = []
    for piece in version.split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break  # "0rc1": the release ends here
    return tuple(parts)


def outdated(found: dict[str, str]) -> list[str]:
    """`name version (fixed in X)` for each library older than its fixed version."""
    old = []
    for name, fixed in FIXED.items():
        have = found.get(name, "not installed")
        if _release(have) < fixed:
            old.append(f"{name} {have} (fixed in {'.'.join(map(str, fixed))})")
    return old


def warn_if_outdated(found: dict[str, str]) -> None:
    """Say at start, loudly, that the traffic is parsed by a library with a known flaw."""
    old = outdated(found)
    if old:
        logger.warning("aupgate: protocol libraries with known request-smuggling flaws are "
                       "installed: %s; reinstall the fixed versions (see the Makefile's "
                       "FIXED_DEPS and docs/security.md)", "; ".join(old))
