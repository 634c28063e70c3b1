"""Every audit field is bounded (issue 12, item 4): cut with a marker, whatever the caller gives."""

from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import strategies as st

from aupgate.audit.bounds import MARK, MAX_FIELD, MAX_ITEMS, MAX_URL, bound_fields, bound_text
from aupgate.audit.log import AuditLog


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
