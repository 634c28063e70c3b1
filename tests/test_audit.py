"""The audit trail: JSON lines with the decision, and no secrets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from aupgate.audit import REDACTED, AuditLog, redact_query, redact_url


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("q=cats&page=2", "q=cats&page=2"),
        ("user=bob&password=hunter2", f"user=bob&password={REDACTED}"),
        ("access_token=abc&x=1", f"access_token={REDACTED}&x=1"),
        ("X-Amz-Signature=ff&sig=1", f"X-Amz-Signature={REDACTED}&sig={REDACTED}"),
        ("code=123&state=s", f"code={REDACTED}&state=s"),
        ("api_key=k&SessionId=9", f"api_key={REDACTED}&SessionId={REDACTED}"),
        ("flag&auth", "flag&auth"),
    ],
)
def test_redact_query(query: str, expected: str) -> None:
    """Secret-looking query values never reach the trail; the rest stays readable."""
    assert redact_query(query) == expected


def test_redact_url() -> None:
    assert redact_url("https", "example.com", None, "/a", "token=t") == (
        f"https://example.com/a?token={REDACTED}"
    )
    assert redact_url("http", "::1", 8080, "/", "") == "http://[::1]:8080/"


def test_event_is_one_json_line_with_time() -> None:
    sink = io.StringIO()
    audit = AuditLog([sink])
    audit.event("decision", request_id="r1", host="www.bet365.com", action="block")
    line = sink.getvalue()
    assert line.count("\n") == 1
    record = json.loads(line)
    assert record["event"] == "decision"
    assert record["host"] == "www.bet365.com"
    assert record["time"].endswith("Z")


def test_header_fields_are_dropped() -> None:
    """A caller passing credentials by mistake still leaks nothing."""
    sink = io.StringIO()
    AuditLog([sink]).event("decision", Cookie="s=1", authorization="Basic eDp5")
    record = json.loads(sink.getvalue())
    assert record["Cookie"] == REDACTED
    assert record["authorization"] == REDACTED


def test_open_appends_to_file(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    for n in range(2):
        audit = AuditLog.open(path)
        audit.event("decision", n=n)
        audit.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 1]
