"""Floors for `run.py`: a script addon with aupgate's per-request hooks, doing nothing or nearly.

- `run.py --also-noop-addon`: `requestheaders`, `responseheaders` and `response` (the hooks aupgate
  defines for every request), all empty: what mitmproxy's dispatch to a `-s` script costs by
  itself, before any deciding or auditing.
- `run.py --also-write-floor`: the same, and `response` appends one fixed, pre-rendered 700-byte
  line to a file with what the audit writer cannot avoid per line (a `stat` of the path for
  rotation and one `write`), set by AUPGATE_BENCH_FLOOR_LOG: the floor of any per-request audit
  file, with no JSON, hashing or deciding at all.
"""

from __future__ import annotations

import os
from typing import Any

LINE = b'{"schema_version": 1, "event": "decision", "pad": "' + b"x" * 640 + b'"}\n'


class Noop:
    def requestheaders(self, flow: Any) -> None:
        pass

    def responseheaders(self, flow: Any) -> None:
        pass

    def response(self, flow: Any) -> None:
        pass


class WriteFloor(Noop):
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def response(self, flow: Any) -> None:
        os.stat(self.path)  # what the audit writer does per line (rotation check)
        os.write(self.fd, LINE)


_FLOOR_LOG = os.environ.get("AUPGATE_BENCH_FLOOR_LOG")
addons = [WriteFloor(_FLOOR_LOG) if _FLOOR_LOG else Noop()]
