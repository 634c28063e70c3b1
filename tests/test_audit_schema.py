"""The audit schema: every event the gateway writes validates, every field is documented,
nothing secret gets in; and a real proxy run's log is checked line by line."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from aupgate.audit.log import AuditLog
from aupgate.audit.redaction import REDACTED, redact_query, redact_url, scrub_url
from aupgate.audit.verify import verify_files
from aupgate.normalise import parse_url

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "audit-log.md"
E2E = ROOT / "tests" / "e2e" / "fixtures"
DIGEST = "5f0bc811722147df121d31755bc3e48c4ef93e8727cf225b15b25597713e0804"


def load_schema() -> dict[str, Any]:
    text = resources.files("aupgate").joinpath("audit_schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@pytest.fixture(scope="module")
def validator() -> Any:
    """A Draft 2020-12 validator; tests that need it skip where `jsonschema` is not installed."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(validator: Any, record: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(record)]


# One call per event type, as the adapter makes them (`addon/aupgate/mitm/addon.py`).
EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "policy_loaded",
        {
            "agencies": ["lab"],
            "policy_digest": DIGEST,
            "categories_digest": DIGEST,
            "fixed_time": "2026-11-24T10:30:00-06:00",
        },
    ),
    ("policy_reloaded", {"part": "policies", "digest": DIGEST, "warnings": []}),
    (
        "policy_reload_failed",
        {"part": "policies", "digest": DIGEST, "errors": ["policies/lab.yaml:3: x: bad"]},
    ),
    ("policy_reload_failed", {"part": "unknown", "error": "OSError(5)"}),
    (
        "decision",
        {
            "request_id": "7ab6d279",
            "phase": "request",
            "client": "10.20.1.5",
            "user": "jdoe",
            "agency": "lab",
            "method": "GET",
            "scheme": "http",
            "host": "www.bet365.com",
            "path": "/",
            "http_version": "HTTP/1.1",
            "categories": ["gambling"],
            "rule": "no-gambling",
            "clauses": ["1"],
            "action": "block",
            "step": "rule",
            "window": "work",
            "grant": None,
            "enforced": "blocked",
            "status": 403,
            "bytes": 449,
            "error": None,
            "policy_digest": DIGEST,
        },
    ),
    (
        "decision",
        {
            "request_id": "c1",
            "phase": "tls",
            "client": "10.20.1.5",
            "user": None,
            "agency": "lab",
            "method": None,
            "scheme": "https",
            "host": "anydesk.com",
            "sni": "anydesk.com",
            "connect_host": "anydesk.com",
            "path": None,
            "categories": ["remote-access"],
            "rule": "no-remote-access",
            "clauses": ["3"],
            "action": "block",
            "window": "work",
            "intercept": "never",
            "enforced": "refused",
            "status": None,
            "bytes": None,
            "policy_digest": DIGEST,
        },
    ),
    (
        "decision",
        {
            "request_id": "w1",
            "phase": "continue",
            "client": "10.20.1.5",
            "user": None,
            "agency": "lab",
            "method": "POST",
            "scheme": "http",
            "host": "www.facebook.com",
            "path": "/.aupgate/continue",
            "categories": [],
            "rule": None,
            "clauses": [],
            "action": None,
            "step": None,
            "window": None,
            "grant": None,
            "enforced": "continue",
            "status": 302,
            "bytes": 0,
            "error": None,
            "rule_continued": "social-warn",
            "clauses_continued": ["2"],
            "work_reason": "posting the storm closure notice",
            "continued_host": "www.facebook.com",
            "pass_minutes": 30,
            "policy_digest": DIGEST,
        },
    ),
    (
        "decision",
        {
            "request_id": "u1",
            "phase": "upload",
            "client": "10.30.1.5",
            "user": "jdoe",
            "agency": "lab",
            "method": "POST",
            "scheme": "https",
            "host": "content.dropboxapi.com",
            "path": "/2/files/upload",
            "categories": ["file-hosting"],
            "rule": "no-large",
            "clauses": ["5"],
            "action": "block",
            "step": "rule",
            "window": "work",
            "grant": None,
            "enforced": "cut",
            "status": None,
            "bytes": None,
            "direction": "publish",
            "request_bytes": 1114112,
            "content": ["large-transfer"],
            "rewrites": ["tenant-restrictions:google"],
            "error": "Connection killed.",
            "policy_digest": DIGEST,
        },
    ),
    (
        "domain_mismatch",
        {
            "request_id": "m1",
            "phase": "request",
            "client": "10.20.1.5",
            "user": None,
            "agency": "lab",
            "names": ["www.example.org", "www.bet365.com"],
            "actions": ["allow", "block"],
            "action": "block",
        },
    ),
    (
        "access_request",
        {
            "request_id": "a1",
            "client": "10.20.1.5",
            "user": "alice",
            "agency": "lab",
            "policy_digest": DIGEST,
            "scheme": "https",
            "host": "www.bet365.com",
            "path": "/odds",
            "content": None,
            "categories": ["gambling"],
            "rule": "no-gambling",
            "clauses": ["1"],
            "action": "block",
            "explanation": "fraud investigation case 12",
            "status": 200,
        },
    ),
    (
        "engine_error",
        {"request_id": "e1", "host": "x.org", "error": "KeyError()", "action": "block"},
    ),
    (
        "engine_error",
        {"request_id": "e2", "phase": "tls", "sni": "x.org", "error": "E()", "action": "block"},
    ),
    (
        "proxy_start",
        {
            "version": "0.1.0",
            "pid": 42,
            "listen": "127.0.0.1:8080",
            "policy_dir": "/etc/aupgate/policies",
            "categories": "/etc/aupgate/categories/sources.yaml",
            "policy_digest": DIGEST,
            "categories_digest": DIGEST,
            "agencies": ["lab"],
            "agency_digests": {"lab": DIGEST},
            "category_entries": 12,
            "category_counts": {"gambling": 3, "social-networking": 9},
            "default_agency": None,
            "fixed_time": None,
            "on_audit_failure": "serve",
        },
    ),
    ("proxy_stop", {"pid": 42, "reason": "SIGTERM", "uptime_s": 12.5}),
    ("audit_probe", {"request_id": "p1", "host": "www.example.org"}),
    (
        "shadow_loaded",
        {"directory": "/etc/aupgate/candidate", "digest": DIGEST, "reload": False,
         "agencies": ["lab"], "agency_digests": {"lab": DIGEST}, "warnings": []},
    ),
    (
        "shadow_load_failed",
        {"directory": "/etc/aupgate/candidate", "digest": DIGEST,
         "errors": ["candidate/lab.yaml:3: rules[0].action: unknown action 'blok'"],
         "kept": None},
    ),
    (
        "shadow_diff",
        {"request_id": "s1", "phase": "request", "client": "10.20.1.5", "user": None,
         "agency": "lab", "policy_digest": DIGEST, "method": "GET", "scheme": "http",
         "host": "www.facebook.com", "path": "/", "categories": ["social-networking"],
         "window": "work", "action": "warn", "rule": "social-warn", "clauses": ["2"],
         "step": "rule", "shadow_agency": "lab", "shadow_digest": DIGEST,
         "shadow_action": "block", "shadow_rule": "social-warn", "shadow_clauses": ["2"],
         "shadow_step": "rule", "change": "stricter", "suppressed": 0},
    ),
    (
        "budget_spent",
        {"agency": "lab", "budget": "webmail-minutes", "subject": "client:10.20.1.5",
         "day": "2026-11-24", "used": 30, "limit": 30, "unit": "minutes", "action": "block",
         "clauses": ["8"], "user": None, "client": "10.20.1.5", "request_id": "b1",
         "host": "mail.yahoo.com"},
    ),
    (
        "decision",
        {"request_id": "b2", "phase": "request", "client": "10.20.1.5", "user": None,
         "agency": "lab", "policy_digest": DIGEST, "method": "GET", "scheme": "http",
         "host": "mail.yahoo.com", "path": "/", "categories": ["webmail"],
         "rule": "webmail-minutes", "clauses": ["8"], "action": "block", "step": "budget",
         "window": "work", "grant": None, "enforced": "blocked", "status": 403, "bytes": 512,
         "budget": "webmail-minutes", "budget_used": 30, "budget_limit": 30,
         "budget_unit": "minutes"},
    ),
    # directory logins (aupgate.mitm.loginaudit), as the proxy writes them
    (
        "login",
        {"request_id": "l1", "agency": "lab", "client": "10.20.1.5", "user": "alice",
         "method": "negotiate", "source": "directory", "groups": ["engineers", "staff"],
         "principal": "alice@AGENCY.EXAMPLE"},
    ),
    (
        "login_failed",
        {"user": "alice", "reason": "bad_credentials", "detail": "invalidCredentials",
         "source": "directory", "request_id": "l2", "agency": "lab", "client": "10.20.1.5",
         "method": "basic", "suppressed": 3},
    ),
    (
        "login_failed",
        {"method": "negotiate", "user": "bob@OTHER.EXAMPLE", "reason": "foreign_realm",
         "detail": "realm OTHER.EXAMPLE is not accepted", "request_id": "l3", "agency": "lab",
         "client": "10.20.1.5"},
    ),
    (
        "directory_unavailable",
        {"user": "alice", "detail": "ldaps://dc1: [Errno 111] Connection refused",
         "request_id": "l4", "agency": "lab", "client": "10.20.1.5", "method": "basic"},
    ),
    (
        "window_boundary",
        {
            "agency": "lab",
            "policy_digest": DIGEST,
            "at": "2026-11-24T13:00:00-06:00",
            "why": "window",
            "window_before": "lunch",
            "window": "work",
            "passes_ended": 1,
            "open": 5,
            "closed": 4,
        },
    ),
    (
        "decision",
        {
            "request_id": "b1",
            "phase": "boundary",
            "flow": "websocket",
            "client": "10.20.1.5",
            "user": None,
            "agency": "lab",
            "policy_digest": DIGEST,
            "method": "GET",
            "scheme": "http",
            "host": "chat.example",
            "path": "/ws",
            "status": 101,
            "bytes": None,
            "categories": ["chat"],
            "rule": "no-chat-at-work",
            "clauses": ["8"],
            "action": "block",
            "step": "rule",
            "window": "work",
            "grant": None,
            "network": None,
            "device": "state",
            "enforced": "closed",
            "action_before": "allow",
            "rule_before": "lunch-chat",
            "window_before": "lunch",
        },
    ),
]


def written(tmp_path: Path, events: list[tuple[str, dict[str, Any]]], *,
            checkpoints: bool = False) -> list[dict[str, Any]]:
    """The events as the real writer wrote them; with `checkpoints`, its own lines too."""
    path = tmp_path / "audit.jsonl"
    audit = AuditLog.open(path)
    for name, fields in events:
        audit.event(name, **fields)
    audit.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in records if checkpoints or r["event"] != "audit_checkpoint"]


def test_every_event_type_validates_as_written(tmp_path: Path, validator: Any) -> None:
    """Each event, through the real writer (envelope, chain, its checkpoints), matches its
    schema."""
    records = written(tmp_path, EVENTS, checkpoints=True)
    assert [r["reason"] for r in records if r["event"] == "audit_checkpoint"] == ["open", "close"]
    for record in records:
        assert problems(validator, record) == [], record


def test_every_schema_event_is_exercised() -> None:
    names = set(load_schema()["properties"]["event"]["enum"])
    # test_auditfile writes audit_gap; every file holds the writer's audit_checkpoint lines
    assert names - {name for name, _ in EVENTS} == {"audit_gap", "audit_checkpoint"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"favourite_colour": "blue"}, "Unevaluated properties are not allowed"),
        ({"action": "deny"}, "is not one of"),
        ({"direction": "sideways"}, "is not one of"),
        ({"request_bytes": -1}, "less than the minimum"),
        ({"status": "403"}, "is not of type"),
        ({"categories": "gambling"}, "is not of type"),
        ({"event": "decided"}, "is not one of"),
        ({"time": "2026-05-04T12:00:00Z"}, "does not match"),
        ({"schema_version": 2}, "was expected"),
    ],
)
def test_schema_rejects(
    tmp_path: Path, validator: Any, change: dict[str, Any], expected: str
) -> None:
    """Undocumented fields, wrong types and unknown values are errors."""
    record = written(tmp_path, [EVENTS[4]])[0]
    record.update(change)
    found = problems(validator, record)
    assert any(expected in p for p in found), found


def test_missing_required_field(tmp_path: Path, validator: Any) -> None:
    record = written(tmp_path, [EVENTS[4]])[0]
    del record["rule"]
    assert any("'rule' is a required property" in p for p in problems(validator, record))


def test_decision_names_the_policy_that_decided(tmp_path: Path, validator: Any) -> None:
    """Issue 4: every decision carries its policy file's hash; null only when no agency decided."""
    record = written(tmp_path, [EVENTS[4]])[0]
    del record["policy_digest"]
    assert any("'policy_digest' is a required property" in p for p in problems(validator, record))
    record["policy_digest"] = None  # an agency decided: its digest must be there
    assert problems(validator, record)
    record["agency"] = None  # a refused client: no policy decided
    assert problems(validator, record) == []


def schema_fields() -> dict[str, set[str]]:
    defs = load_schema()["$defs"]
    return {
        name: set(d["properties"])
        for name, d in defs.items()
        if isinstance(d, dict) and "unevaluatedProperties" in d
    }


def test_docs_describe_every_event_and_field() -> None:
    """docs/audit-log.md has a section per event and a table row per field."""
    text = DOCS.read_text(encoding="utf-8")
    for event, fields in schema_fields().items():
        match = re.search(rf"^### `{event}`\n(.*?)(?=^### |\Z)", text, re.M | re.S)
        assert match, f"no '### `{event}`' section"
        section = match.group(1)
        missing = [f for f in sorted(fields) if f"| `{f}` |" not in section]
        assert not missing, f"{event}: fields not in its table: {missing}"


# --------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("https://bob:hunter2@example.com/a", "https://example.com/a"),
        ("http://bob@example.com:8080/p", "http://example.com:8080/p"),
        ("https://example.com/login?user=bob&password=hunter2", None),
        ("https://example.com/a?pass%77ord=x&q=1", "https://example.com/a?pass%77ord=REDACTED&q=1"),
        ("https://s3.example.com/b?X-Amz-Credential=AK&X-Amz-Signature=ff", None),
        (
            "https://example.com/cb?code=abc&state=xyz",
            "https://example.com/cb?code=REDACTED&state=xyz",
        ),
        ("https://example.com/?q=token+usage", "https://example.com/?q=token+usage"),
    ],
)
def test_urls_lose_userinfo_and_secret_values(raw: str, shown: str | None) -> None:
    """Userinfo never reaches an event; secret-looking query values are replaced, names kept."""
    url = parse_url(raw)
    text = redact_url(url.scheme, url.host, url.port, url.path, url.query)
    assert "bob" not in text.split("?")[0]
    for secret in ("hunter2", "=AK", "=ff"):
        assert secret not in text
    if shown is not None:
        assert text == shown
    assert scrub_url(raw) == scrub_url(scrub_url(raw))  # idempotent


def test_raw_url_and_path_fields_are_scrubbed_at_the_writer() -> None:
    """The writer's last line of defence: a caller passing a raw URL or path leaks nothing."""
    sink = io.StringIO()
    AuditLog([sink]).event(
        "decision",
        url="https://u:p@example.com/a?access_token=t1&x=1",
        path="/b?SAMLResponse=zz&RelayState=r",
    )
    record = json.loads(sink.getvalue())
    assert record["url"] == f"https://example.com/a?access_token={REDACTED}&x=1"
    assert record["path"] == f"/b?SAMLResponse={REDACTED}&RelayState=r"


@pytest.mark.parametrize(
    "fields",
    [
        {"Cookie": "s=1"},
        {"cookie": "s=1"},
        {"set_cookie": "s=1"},
        {"Authorization": "Basic eDp5"},
        {"proxy_authorization": "Basic eDp5"},
        {"headers": {"Cookie": "s=1", "Authorization": "Bearer t", "Accept": "text/html"}},
    ],
)
def test_cookies_and_authorization_never_written(fields: dict[str, Any]) -> None:
    """However a caller spells or nests them, cookie and authorization values are replaced."""
    sink = io.StringIO()
    AuditLog([sink]).event("decision", **fields)
    text = sink.getvalue()
    for secret in ("s=1", "eDp5", "Bearer t"):
        assert secret not in text
    if "headers" in fields:
        assert json.loads(text)["headers"]["Accept"] == "text/html"


def test_query_without_values_and_plain_names_are_kept() -> None:
    assert redact_query("flag&q=cats&page=2") == "flag&q=cats&page=2"


# --------------------------------------------------------------------------- a real proxy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"proxy exited with {proc.returncode}; see proxy.log")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise AssertionError("proxy did not start listening")


needs_proxy = pytest.mark.skipif(
    not (Path("/usr/bin/curl").exists()),
    reason="needs curl (aupgate run is its own proxy: no mitmdump needed)",
)


@pytest.mark.e2e
@needs_proxy
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_real_proxy_run_writes_valid_chained_events(
    tmp_path: Path, validator: Any, stop_signal: signal.Signals
) -> None:
    """`aupgate run --audit-log`: every line validates, the chain verifies, the run is framed by
    proxy_start and proxy_stop (a clean SIGTERM or SIGINT), and each decision names its policy."""
    log = tmp_path / "audit.jsonl"
    port = free_port()
    with upstream() as up:
        names = ["www.example.org", "www.bet365.com"]
        argv = [
            sys.executable, "-c", "import sys; from aupgate.cli import main; sys.exit(main())",
            "run", "--workers", "1", "--listen-port", str(port),
            "--policy-dir", str(E2E / "policies"),
            "--categories", str(E2E / "categories" / "sources.yaml"),
            "--audit-log", str(log), "--fixed-time", "2026-11-24T10:30:00-06:00", "--quiet",
            "--set", f"confdir={tmp_path / 'conf'}",
        ]  # fmt: skip
        for name in names:
            argv += ["--resolve", f"{name}:80:127.0.0.1:{up}"]
        with (tmp_path / "proxy.log").open("wb") as errors:
            proc = subprocess.Popen(argv, stdout=errors, stderr=errors)
        try:
            wait_for_port(port, proc)
            proxy = f"http://127.0.0.1:{port}"
            urls = [
                "http://www.example.org/index.html?q=1&token=sekrit",
                "http://bob:hunter2@www.example.org/",
                "http://www.bet365.com/",
            ]
            for url in urls:
                subprocess.run(
                    ["curl", "-s", "-o", "/dev/null", "-x", proxy, "-H", "Cookie: s=sekrit", url],
                    check=True,
                    timeout=20,
                )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and log.read_text().count('"decision"') < 3:
                time.sleep(0.05)
        finally:
            proc.send_signal(stop_signal)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = log.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    for record in records:
        assert problems(validator, record) == [], record
    assert proc.returncode == 0, (tmp_path / "proxy.log").read_text()
    decisions = [r for r in records if r["event"] == "decision"]
    assert [d["action"] for d in decisions] == ["allow", "allow", "block"]
    lab = hashlib.sha256((E2E / "policies" / "lab.yaml").read_bytes()).hexdigest()
    assert {d["policy_digest"] for d in decisions} == {lab}
    kinds = [r["event"] for r in records]
    assert kinds[0] == kinds[-1] == "audit_checkpoint", kinds  # the writer's open and close
    assert records[0]["reason"] == "open" and records[-1]["reason"] == "close"
    records = records[1:-1]
    kinds = kinds[1:-1]
    assert kinds[:2] == ["policy_loaded", "proxy_start"] and kinds[-1] == "proxy_stop", kinds
    start, stop = records[1], records[-1]
    assert start["listen"] == f"127.0.0.1:{port}" and start["agencies"] == ["lab"]
    assert start["agency_digests"] == {"lab": lab}
    assert start["category_entries"] > 0 and start["fixed_time"].startswith("2026-11-24T10:30")
    assert stop["reason"] == stop_signal.name and stop["pid"] == start["pid"] == proc.pid
    for secret in ("sekrit", "hunter2"):
        assert secret not in text
    out = io.StringIO()
    assert verify_files([log], anchors=(), out=out, as_of=records[-1]["time"]) == 0, \
        out.getvalue()
    assert "closed by its writer" in out.getvalue()
    assert os.stat(log).st_mode & 0o777 == 0o640 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
