"""Policy test files: requests with the decision each must get, at a pinned moment.

```yaml
agency: modot                      # the agency the cases are decided under (a case may say its own)
at: "2026-11-24T12:15:00-06:00"    # optional: the moment of cases that give none
cases:
  - clause: "7.E"                  # optional: the clause the case is read from
    why: Gambling is prohibited at all times, lunch included.
    url: https://www.bet365.com/
    at: "2026-11-24T12:15:00-06:00"
    client: 10.20.1.5              # optional: user, client, device, content, agency
    expect: {action: block, rule: gambling, clauses: ["7.E"], window: lunch}
```

Every case is decided at its own `at` (never the wall clock): an ISO-8601 time, agency-local when
it has no offset, as `aupgate explain --at`. `expect.action` is required; the other expected
fields are compared only when given. `content` names what the response turned out to be
(`executable`, ...): the case then gets the first content rule's decision, or the request's when
no content rule applies. `method` and `body` (an upload: the body's stated `length`, `type` and
`disposition`, read as the proxy reads them at requestheaders; `method` is then POST unless
given) decide the request as one that sends a body. `budget_used` (minutes or bytes already used
today) decides the case as if the agency's personal-use budget had reached that much.
`expect.rewrites` (`controls`, `headers`, `query`) is what the proxy adds to the request when it
lets it through.

Reading collects every problem with file, line and field, like the policy loader; the runner
(`testrun`) decides the cases.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aupgate.content import CONTENT_KINDS
from aupgate.errors import PolicyError, Problem, UrlError
from aupgate.normalise import Url, parse_url
from aupgate.policy.model import ACTIONS, DEVICES, IPAddress
from aupgate.policy.schedule import WINDOWS, parse_moment
from aupgate.yamlsource import FieldReader, line_of, load_yaml

__all__ = ["EXPECT_KEYS", "TestCase", "read_test_file"]

_FILE_KEYS = ("agency", "at", "cases")
_CASE_KEYS = ("clause", "why", "url", "at", "agency", "device", "user", "client", "content",
              "method", "body", "budget_used", "expect")
_BODY_KEYS = ("length", "type", "disposition")
EXPECT_KEYS = ("action", "rule", "clauses", "window", "categories", "grant", "device", "network",
               "intercept", "step", "direction", "rewrites")
"""What a case may expect; each is compared with the decision's field of the same name."""
_STEPS = ("deny-list", "allow-list", "rule", "grant", "default", "budget")
_DIRECTIONS = ("read", "upload", "publish")
_REWRITE_KEYS = ("controls", "headers", "query")


@dataclass(frozen=True, slots=True)
class TestCase:
    """One request and the decision it must get."""

    __test__ = False  # not a pytest class, whatever its name

    file: str
    line: int | None
    index: int
    agency: str
    clause: str | None
    why: str
    url: Url
    raw_url: str
    at: datetime
    user: str | None
    client: IPAddress | None
    device: str | None
    content: frozenset[str]
    method: str
    body: Mapping[str, Any] | None  # the request body's headers: length, type, disposition
    budget_used: int | None
    expect: Mapping[str, Any]

    @property
    def where(self) -> str:
        """`FILE:LINE` of the case, for failures and coverage."""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    @property
    def name(self) -> str:
        """A short id: agency, clause (or position) and expected rule and window."""
        parts = [self.agency, self.clause or f"case{self.index}"]
        parts += [str(self.expect[k]) for k in ("rule", "window") if k in self.expect]
        return "-".join(parts)


def read_test_file(path: Path) -> tuple[list[TestCase], list[Problem]]:
    """The cases of one test file, and every problem found (a case with a problem is left out)."""
    try:
        data = load_yaml(path)
    except PolicyError as exc:
        return [], list(exc.problems)
    reader = FieldReader(str(path))
    if not isinstance(data, dict):
        reader.problem(data, None, "", "a test file is a mapping with 'cases' (and 'agency')")
        return [], reader.problems
    top = reader.mapping({"": data}, "", "", _FILE_KEYS, ("cases",))
    assert top is not None
    agency = reader.string(top, "agency", "") if "agency" in top else None
    default_at = _moment(reader, top, "at", "at") if "at" in top else None
    cases: list[TestCase] = []
    for i, _item in enumerate(reader.sequence(top, "cases", "cases")):
        before = len(reader.problems)
        item = reader.mapping(top["cases"], i, f"cases[{i}]", _CASE_KEYS, ("url", "expect"))
        if item is None:
            continue
        case = _read_case(reader, item, f"cases[{i}]", i, agency, default_at)
        if case is not None and len(reader.problems) == before:
            cases.append(case)
    if not cases and not reader.problems:
        reader.problem(top, "cases", "cases", "no cases")
    return cases, reader.problems


def _read_case(
    reader: FieldReader,
    item: dict[str, Any],
    field: str,
    index: int,
    file_agency: str | None,
    default_at: datetime | None,
) -> TestCase | None:
    before = len(reader.problems)
    agency = reader.string(item, "agency", field) if "agency" in item else file_agency
    if agency is None:
        reader.problem(item, None, f"{field}.agency",
                       "no agency: give 'agency' in the file or the case")
    raw_url = reader.string(item, "url", field)
    url = None
    if raw_url is not None:
        try:
            url = parse_url(raw_url)
        except UrlError as exc:
            reader.problem(item, "url", f"{field}.url", str(exc))
    at = _moment(reader, item, "at", f"{field}.at") if "at" in item else default_at
    if at is None and "at" not in item:
        reader.problem(item, None, f"{field}.at",
                       "no moment: give 'at' in the case or the file (the clock is pinned)")
    client = None
    if item.get("client") is not None:
        try:
            client = ipaddress.ip_address(str(item["client"]))
        except ValueError:
            reader.problem(item, "client", f"{field}.client",
                           f"'{item['client']}' is not an IP address")
    device = _one_of(reader, item, "device", field, DEVICES, "device class")
    content = reader.choices(item, "content", field, CONTENT_KINDS, "content kind") or frozenset()
    body = None
    if "body" in item:
        body = reader.mapping(item, "body", f"{field}.body", _BODY_KEYS, ())
    method = reader.string(item, "method", field) if "method" in item else None
    budget_used = _count(reader, item, "budget_used", field)
    expect = _read_expect(reader, item, f"{field}.expect")
    if len(reader.problems) != before or None in (agency, url, at, expect):
        return None
    assert agency is not None and url is not None and at is not None and expect is not None
    assert raw_url is not None
    return TestCase(
        file=reader.file,
        line=line_of(item),
        index=index,
        agency=agency,
        clause=str(item["clause"]) if item.get("clause") is not None else None,
        why=str(item.get("why") or ""),
        url=url,
        raw_url=raw_url,
        at=at,
        user=reader.string(item, "user", field) if item.get("user") is not None else None,
        client=client,
        device=device,
        content=content,
        method=(method or ("POST" if body is not None else "GET")).upper(),
        body=body,
        budget_used=budget_used,
        expect=expect,
    )


def _read_expect(reader: FieldReader, item: dict[str, Any], field: str) -> dict[str, Any] | None:
    expect = reader.mapping(item, "expect", field, EXPECT_KEYS, ("action",))
    if expect is None:
        return None
    out: dict[str, Any] = {}
    for key, value in expect.items():
        if key in ("clauses", "categories"):
            if not isinstance(value, list):
                reader.problem(expect, key, f"{field}.{key}", "expected a list")
                continue
            out[key] = [str(v) for v in value]
        elif value is None and key in ("grant", "device", "network"):
            out[key] = None
        elif key == "rewrites":
            rewrites = reader.mapping(expect, key, f"{field}.{key}", _REWRITE_KEYS, ())
            if rewrites is not None:
                out[key] = {"controls": [], "headers": {}, "query": None, **rewrites}
        elif not isinstance(value, str | int | float) or isinstance(value, bool):
            reader.problem(expect, key, f"{field}.{key}", "expected text")
        else:
            out[key] = str(value)
    for key, allowed in (("action", ACTIONS), ("window", WINDOWS), ("step", _STEPS),
                         ("intercept", ("auto", "never")), ("direction", _DIRECTIONS)):
        if key in out and out[key] not in allowed:
            reader.problem(expect, key, f"{field}.{key}",
                           f"unknown {key} '{out[key]}' (one of: {', '.join(allowed)})")
    return out


def _moment(reader: FieldReader, item: Mapping[str, Any], key: str, field: str) -> datetime | None:
    value = item.get(key)
    try:
        return value if isinstance(value, datetime) else parse_moment(str(value))
    except ValueError as exc:
        reader.problem(item, key, field, str(exc))
        return None


def _one_of(reader: FieldReader, item: Mapping[str, Any], key: str, field: str,
            allowed: tuple[str, ...], what: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if value not in allowed:
        reader.problem(item, key, f"{field}.{key}",
                       f"unknown {what} '{value}' (one of: {', '.join(allowed)})")
        return None
    return str(value)


def _count(reader: FieldReader, item: Mapping[str, Any], key: str, field: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        reader.problem(item, key, f"{field}.{key}", f"expected a whole number, got {value!r}")
        return None
    return value
