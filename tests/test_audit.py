"""The audit trail: JSON lines with the decision, and no secrets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from aupgate.audit.log import AuditLog
from aupgate.audit.redaction import REDACTED, redact_query, redact_url


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


def decision_lines(path: Path) -> list[bytes]:
    """The file's lines that are events recorded, not the writer's own checkpoints."""
    return [line for line in path.read_bytes().splitlines() if b'"audit_checkpoint"' not in line]


def test_open_appends_to_file(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    for n in range(2):
        audit = AuditLog.open(path)
        audit.event("decision", n=n)
        audit.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["n"] for r in records if r["event"] == "decision"] == [0, 1]


def test_line_keeps_the_envelope_readers_match(tmp_path: Path) -> None:
    """orjson writes the fields; the first bytes stay as `review`/`report` match them."""
    path = tmp_path / "audit.jsonl"
    audit = AuditLog.open(path)
    audit.record("decision", {"request_id": "r1", "work_reason": "caf\u00e9 opening hours",
                              "categories": ("news",)})
    audit.close()
    [raw] = decision_lines(path)
    assert raw.startswith(b'{"schema_version": 1, "time": "')
    assert raw[31 + 27 : 31 + 27 + 12] == b'", "event": '
    record = json.loads(raw)
    assert record["work_reason"] == "caf\u00e9 opening hours" and record["categories"] == ["news"]


def test_undecodable_path_bytes_still_make_a_line(tmp_path: Path) -> None:
    """A path with bytes that are not UTF-8 (mitmproxy keeps them as lone surrogates) is still
    recorded, by the standard encoder, and still redacted."""
    path = tmp_path / "audit.jsonl"
    audit = AuditLog.open(path)
    audit.record("decision", {"request_id": "r1", "path": "/a\udcff?token=t1&x=1"})
    audit.close()
    [raw] = decision_lines(path)
    record = json.loads(raw)
    assert record["path"] == f"/a\udcff?token={REDACTED}&x=1"
    assert list(record)[:3] == ["schema_version", "time", "event"]


def test_fields_cannot_displace_the_envelope() -> None:
    sink = io.StringIO()
    AuditLog([sink]).event("decision", time="yesterday", schema_version=9, request_id="r1")
    record = json.loads(sink.getvalue())
    assert record["schema_version"] == 1 and record["time"].endswith("Z")
    assert list(record)[:3] == ["schema_version", "time", "event"]


def test_unknown_fields_are_checked_known_ones_skipped() -> None:
    """Only fields that can hold a secret are looked at: a mapping or header under any other
    name is still caught."""
    sink = io.StringIO()
    AuditLog([sink]).event("decision", request={"Authorization": "Bearer t", "Accept": "*/*"},
                           x_cookie="fine", set_cookie="s=1", host="a.example")
    record = json.loads(sink.getvalue())
    assert record["request"] == {"Authorization": REDACTED, "Accept": "*/*"}
    assert record["set_cookie"] == REDACTED and record["x_cookie"] == "fine"


def test_record_keeps_its_event_name() -> None:
    sink = io.StringIO()
    AuditLog([sink]).record("decision", {"event": "proxy_stop", "request_id": "r1"})
    assert json.loads(sink.getvalue())["event"] == "decision"
