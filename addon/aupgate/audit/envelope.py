"""The audit line's envelope: its first bytes, which every writer writes and every reader reads.

Every line starts `{"schema_version": 1, "time": "YYYY-MM-DDTHH:MM:SS.ffffffZ", "event": `, spelt
exactly so: `review`, `report` and `verify` recognise aupgate's lines by those bytes and read the
time at a fixed offset without parsing JSON, which is most of what makes a year of logs quick to
skim. The rest of the line is orjson's compact form of the event's fields, and the hash chain's
`prev` (and `chain`) come last (`chain.link_bytes`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "HEAD",
    "SCHEMA_VERSION",
    "TIME_AT",
    "format_time",
    "render",
    "time_key",
]

SCHEMA_VERSION = 1
"""Bumped when a field is removed or changes type; adding a field does not bump it."""

HEAD = b'{"schema_version": 1, "time": "'
"""The first bytes of every line aupgate writes."""
TIME_AT = slice(len(HEAD), len(HEAD) + 27)
"""Where the time (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, fixed width) is in a line starting with HEAD."""
_EVENT = b'", "event": '
_ENVELOPE_KEYS = ("schema_version", "time", "event")


def format_time(moment: datetime) -> str:
    """UTC with microseconds always present: fixed width, so times sort and compare as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render(time: str, event: str, fields: dict[str, Any]) -> bytes:
    """One event as a JSON line (UTF-8 bytes, no newline): the envelope, then the fields.

    `fields` is the caller's and given up: the envelope's own keys are taken out of it (a field
    cannot displace the envelope). A value orjson refuses (a lone surrogate from undecodable
    bytes in a path) falls back to the standard library's encoder, which writes the whole line in
    its own spacing; the envelope's first bytes are the same.
    """
    for key in _ENVELOPE_KEYS:
        fields.pop(key, None)
    try:
        body = orjson.dumps(fields, default=_fallback)
        name = orjson.dumps(event)
    except TypeError:
        line = {"schema_version": SCHEMA_VERSION, "time": time, "event": event, **fields}
        return json.dumps(line, default=_fallback).encode("ascii")
    rest = b"}" if len(body) == 2 else b"," + body[1:]
    return b"".join((HEAD, time.encode("ascii"), _EVENT, name, rest))


def _fallback(value: Any) -> Any:
    """What the encoders do not know (an address, a set) is written as text, never dropped."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def time_key(raw: bytes, record: Mapping[str, Any] | None = None) -> str:
    """The event's time as fixed-width UTC text, straight from the line when it has our envelope."""
    if raw.startswith(HEAD):
        return raw[TIME_AT].decode("ascii", "replace")
    value = record.get("time") if record is not None else None
    if not isinstance(value, str):
        return ""
    if len(value) == 27 and value.endswith("Z"):
        return value
    try:
        return format_time(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return value
