"""The mitmproxy adapter: the only part of aupgate that imports mitmproxy.

`addon.Aupgate` is the addon; `script.py` is the thin file `mitmdump -s` loads; `run.py` is the
`aupgate run` subcommand that starts mitmdump with it.
"""

from __future__ import annotations
