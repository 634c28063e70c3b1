"""Floors for `run.py`: a script addon with aupgate's per-request hooks, doing nothing or nearly.

- `run.py --also-noop-addon`: `requestheaders`, `responseheaders` and `response` (the hooks aupgate
  defines for every request), all empty: what mitmproxy's dispatch to a `-s` script costs by
  itself, before any deciding or auditing.
- `run.py --also-write-floor`: the same, and `response` appends one fixed, pre-rendered 700-byte
  line to a file with what the audit writer cannot avoid per line (a `stat` of the path for
  rotation and one `write`), set by AUPGATE_BENCH_FLOOR_LOG: the floor of any per-request audit
  file, with no JSON, hashing or deciding at all.
- `run.py --also-audit-floor`: the same hooks, and `response` writes the cheapest audit line the
  issues allow, set by AUPGATE_BENCH_AUDIT_FLOOR: the decision line's 25 fields (the request's
  and response's read from the flow, the decision's and the time fixed), rendered by orjson,
  chained by SHA-256, one `stat` and one `write`. No redaction, no deciding: what a
  per-request, flushed, hash-chained JSON line costs at the least.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import orjson

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


class AuditFloor(WriteFloor):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.prev = ""

    def response(self, flow: Any) -> None:
        req, resp = flow.request, flow.response
        line = orjson.dumps({
            "schema_version": 1, "time": "2026-11-22T00:00:00.000000Z", "event": "decision",
            "request_id": flow.id, "phase": "passed", "client": flow.client_conn.peername[0],
            "user": None, "agency": "modot", "policy_digest": "0" * 64, "method": req.method,
            "scheme": req.scheme, "host": req.host, "path": req.path,
            "http_version": req.http_version, "categories": ["uncategorized"],
            "rule": "default", "clauses": [], "action": "allow", "step": "default",
            "window": "work-hours", "grant": None, "network": None, "device": None,
            "enforced": None, "status": resp.status_code, "bytes": len(resp.raw_content or b""),
            "error": None, "prev": self.prev,
        }) + b"\n"
        self.prev = hashlib.sha256(line).hexdigest()
        os.stat(self.path)
        os.write(self.fd, line)


_FLOOR_LOG = os.environ.get("AUPGATE_BENCH_FLOOR_LOG")
_AUDIT_FLOOR_LOG = os.environ.get("AUPGATE_BENCH_AUDIT_FLOOR")
addons = [AuditFloor(_AUDIT_FLOOR_LOG) if _AUDIT_FLOOR_LOG
          else WriteFloor(_FLOOR_LOG) if _FLOOR_LOG else Noop()]
