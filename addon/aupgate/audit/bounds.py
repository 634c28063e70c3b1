"""Every audit field bounded: a long value is cut, with a marker saying how much was cut.

The proxy refuses request heads over its limits (docs/security.md), but an audit line must stay
a line whatever a caller hands it: one field of megabytes would make the file, `review` and every
report slow, and a trail that can be grown at will by a client is a denial of service on the
evidence. Strings longer than `MAX_FIELD` characters (`MAX_URL` for `path` and `url`), and lists
longer than `MAX_ITEMS`, are cut where they stand. Cut text ends in `MARK` and the number of
characters left out, so a reader knows the value is not whole.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MARK", "MAX_FIELD", "MAX_ITEMS", "MAX_URL", "bound_fields", "bound_text"]

MAX_FIELD = 1024
MAX_URL = 4096
MAX_ITEMS = 64
MARK = "…[cut "


def bound_text(text: str, limit: int = MAX_FIELD) -> str:
    """`text`, or its first `limit` characters and a marker with the count of the rest."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}{MARK}{len(text) - limit} chars]"


def fits(line: bytes) -> bool:
    """True when no field of this rendered line can be over a bound, so `bound_fields` would
    change nothing: the line is no longer than one string field may be (a string's JSON is at
    least as many bytes as it has characters), and has fewer commas than a list may have items
    (a list of n items has n - 1 of them). Two C calls, against a pass of type checks per field:
    the usual request line (about 700 bytes, 30 commas) is rendered once and written."""
    return len(line) <= MAX_FIELD and line.count(b",") < MAX_ITEMS


def bound_fields(fields: dict[str, Any]) -> None:
    """Cut over-long strings and lists in one event's fields, in place (one level deep).

    The writer calls it only for a line that does not `fit`, and renders that line again.
    """
    for name, value in fields.items():
        kind = type(value)
        if kind is str:
            if len(value) > MAX_FIELD:
                fields[name] = bound_text(value, MAX_URL if name in ("path", "url") else MAX_FIELD)
        elif kind is list or kind is tuple:
            if len(value) <= MAX_ITEMS:
                for item in value:
                    if type(item) is str and len(item) > MAX_FIELD:
                        break
                else:
                    continue
            items = [bound_text(v) if type(v) is str else v for v in value[:MAX_ITEMS]]
            if len(value) > MAX_ITEMS:
                items.append(f"{MARK}{len(value) - MAX_ITEMS} items]")
            fields[name] = items
