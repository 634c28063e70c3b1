"""Fail loudly unless the fixed h11, h2 (and what they need) are the versions installed.

mitmproxy 11.0.2 pins h11 and h2 to versions with known request-smuggling flaws; the Makefile
installs fixed versions over the pins (see its FIXED_DEPS). A later `pip install` that resolves
mitmproxy's requirements again silently puts the old versions back, so every test run checks.

Usage: python tools/check_fixed_deps.py h11==0.16.0 h2==4.3.0 ...
"""

from __future__ import annotations

import sys
from importlib import metadata


def main(pins: list[str]) -> int:
    wrong = []
    for pin in pins:
        name, _, wanted = pin.partition("==")
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "not installed"
        if have != wanted:
            wrong.append(f"{name} {have} (need {wanted})")
    if wrong:
        print("!" * 78, file=sys.stderr)
        print("FIXED DEPENDENCIES MISSING: " + "; ".join(wrong), file=sys.stderr)
        print("mitmproxy's pins put back versions with known request-smuggling flaws.",
              file=sys.stderr)
        print("Rebuild the environment: make clean && make test", file=sys.stderr)
        print("!" * 78, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
