"""Every audit field is bounded (issue 12, item 4): cut with a marker, whatever the caller gives."""

from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import strategies as st

from aupgate.audit.bounds import (
    MARK,
    MAX_FIELD,
    MAX_ITEMS,
    MAX_URL,
    bound_fields,
    bound_text,
    fits,
)
from aupgate.audit.log import AuditLog
from aupgate.audit.redaction import redact_fields


def test_short_values_are_untouched() -> None:
    fields = {"host": "www.example.org", "path": "/a?b=c", "categories": ["news"], "status": 200}
    before = dict(fields)
    bound_fields(fields)
    assert fields == before


def test_long_values_are_cut_with_a_marker() -> None:
    fields = {"host": "a" * 5000, "path": "/" + "p" * 20_000, "names": ["x"] * 100,
              "errors": ["e" * 3000]}
    bound_fields(fields)
    assert fields["host"] == "a" * MAX_FIELD + f"{MARK}{5000 - MAX_FIELD} chars]"
    assert fields["path"].startswith("/" + "p" * (MAX_URL - 1)) and MARK in fields["path"]
    assert len(fields["names"]) == MAX_ITEMS + 1 and fields["names"][-1] == f"{MARK}36 items]"
    assert fields["errors"][0].endswith(f"{MARK}{3000 - MAX_FIELD} chars]")


@given(st.dictionaries(st.sampled_from(["host", "path", "url", "reason", "names", "error"]),
                       st.one_of(st.text(max_size=9000), st.lists(st.text(max_size=3000),
                                                                  max_size=200)),
                       max_size=6))
def test_any_event_renders_to_a_bounded_line(fields: dict[str, object]) -> None:
    """Whatever the fields, the rendered line stays within the sum of the bounds."""
    sink = io.StringIO()
    AuditLog([sink]).record("decision", dict(fields))
    line = sink.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    # each of at most six fields: a URL-sized string, or 65 bounded items (JSON may escape
    # every character as \uXXXX: six bytes each)
    assert len(line) < 6 * 6 * max(MAX_URL, (MAX_ITEMS + 1) * (MAX_FIELD + 40)) + 2000
    json.loads(line)


def test_bound_text_keeps_the_start() -> None:
    assert bound_text("abcdef", 3) == "abc…[cut 3 chars]"


_NEAR = st.integers(MAX_FIELD - 40, MAX_FIELD + 40)  # strings and lists either side of a bound
_TEXT = st.one_of(st.text(max_size=40),
                  st.builds(lambda n, c: c * n, _NEAR, st.sampled_from("aé\n")))
_VALUE = st.one_of(st.none(), st.integers(), _TEXT,
                   st.lists(st.one_of(st.integers(0, 9), _TEXT), max_size=3),
                   st.builds(lambda n: [1] * n, st.integers(MAX_ITEMS - 3, MAX_ITEMS + 3)),
                   st.tuples(st.text(max_size=30), _TEXT))


@given(st.dictionaries(st.sampled_from(["host", "path", "url", "reason", "names", "error",
                                        "categories", "status", "clauses"]), _VALUE, max_size=7))
def test_the_fast_path_writes_what_cutting_every_line_would(fields: dict[str, object]) -> None:
    """A line that `fits` is written without the per-field pass: the same line as if every
    field had been through `bound_fields` (the writer's shortcut changes nothing it writes)."""
    sink = io.StringIO()
    AuditLog([sink]).record("decision", dict(fields))
    written = json.loads(sink.getvalue())
    cut = dict(fields)
    redact_fields(cut)  # as the writer does first
    bound_fields(cut)
    expected = json.loads(json.dumps(cut))
    assert {k: v for k, v in written.items() if k not in ("schema_version", "time", "event")} \
        == expected


def test_fits_is_false_for_a_long_line_or_a_long_list() -> None:
    assert fits(b'{"a":"' + b"x" * 900 + b'"}') and not fits(b'{"a":"' + b"x" * 1100 + b'"}')
    assert not fits(b"[" + b",".join([b"1"] * 65) + b"]")
    assert fits(b"[" + b",".join([b"1"] * 64) + b"]")
