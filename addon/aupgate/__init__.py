"""aupgate: an acceptable-use-policy gateway built on mitmproxy.

The decision core (normalise, categories, schedule, policy, engine) is pure and knows nothing of
mitmproxy; `aupgate.mitm` is the adapter that puts it in front of real traffic.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
