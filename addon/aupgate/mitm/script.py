"""The file mitmproxy loads: `mitmdump -s addon/aupgate/mitm/script.py --set aupgate_...=...`.

mitmproxy imports this file as a module of its own, so it must stay thin and import the installed
`aupgate` package absolutely (a relative import here fails).
"""

from __future__ import annotations

from aupgate.mitm.addon import Aupgate

addons = [Aupgate()]
