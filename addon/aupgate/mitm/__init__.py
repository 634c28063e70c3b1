"""The mitmproxy adapter: the only part of aupgate that imports mitmproxy.

`addon.Aupgate` is the addon (its hooks; the modules beside it do the rest, see
docs/architecture.md); `script.py` is the thin file `mitmdump -s` loads. `aupgate run`
(cli/run.py) goes through `run.py`, which runs `master.GatewayMaster` (mitmproxy with only the
addons a gateway needs) in its own process, or N of them under `workers.Supervisor`;
`listener.Listener` is where client connections enter (shared sockets, the PROXY protocol);
`oplog` is the operational log on standard error.
"""

from __future__ import annotations
