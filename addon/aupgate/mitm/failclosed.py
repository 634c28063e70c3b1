"""`on_audit_failure: fail-closed`: no request reaches a site unrecorded.

Two guarantees, both tested end to end on a full file system (tests/e2e/test_fail_closed.py):

- while the audit file cannot be written, every request is refused (each one first tries the
  file again: the first write that succeeds serves traffic again; `guard.refuse_unrecorded`);
- a request that is to be forwarded has its decision line written *before* it goes upstream
  (`enforced: "forwarding"`, no status yet); if that write fails, the request is answered with
  the "unavailable" page (503) instead. The usual line with the status and size follows when
  the response has come; a report counts that one (it skips `forwarding` lines), so a request
  whose final line is lost is still on record as forwarded.

With `serve` (the default) neither happens: lines are written once the response is known and a
failing file is complained about, not obeyed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mitmproxy import http

from ..audit.log import AuditLog
from ..pages import page_for
from .responses import respond
from .state import FlowRecord

__all__ = ["FORWARDING", "record_before_forwarding"]

logger = logging.getLogger(__name__)

FORWARDING = "forwarding"
"""`enforced` of the line written before a request goes upstream (fail-closed only)."""

def record_before_forwarding(audit: AuditLog, flow: http.HTTPFlow, record: FlowRecord,
                             write: Callable[[http.HTTPFlow], None]) -> bool:
    """Fail-closed: write the decision line now; False (the flow answered) if it cannot be.

    `write(flow)` writes the request's decision line from `record` as it stands (the flow's); the
    record is then ready to be written again, with the outcome, once the response has come.
    """
    if not audit.fail_closed:
        return True
    enforced = record.enforced
    record.enforced = FORWARDING
    try:
        write(flow)
    except Exception:
        logger.critical("aupgate: could not record %s before forwarding it "
                        "(on_audit_failure=fail-closed)", flow.request.host)
        _refuse(flow)
        record.enforced = "error"
        record.audited = True  # nothing more can be written for it; it never left the gateway
        return False
    record.enforced = enforced
    record.audited = False
    return True


def _refuse(flow: http.HTTPFlow) -> None:
    logger.critical("aupgate: audit log unwritable (on_audit_failure=fail-closed): "
                    "refusing %s", flow.request.host)
    respond(flow, page_for("unavailable", flow.id, flow.request.host, "", None, None))
