"""The mitmproxy adapter: the only part of aupgate that imports mitmproxy.

`addon.Aupgate` is the addon (its hooks; the modules beside it do the rest, see
docs/architecture.md); `script.py` is the thin file `mitmdump -s` loads; `run.py` builds the
mitmdump command line `aupgate run` (cli/run.py) starts.
"""

from __future__ import annotations
