"""YAML that remembers where every key and item came from.

Administrators edit policy files by hand. An error that says "rules[3].match.windows[1]" without a
line number sends them counting list items; so the loader keeps the line of every mapping key and
sequence item, and validation reports `FILE:LINE: FIELD: message`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import PolicyError, Problem


class Located(dict[str, Any]):
    """A mapping that knows its own line and the line of each key."""

    line: int
    key_lines: dict[str, int]


class LocatedList(list[Any]):
    """A sequence that knows its own line and the line of each item."""

    line: int
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry line numbers (1-based)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Located:
    result = Located()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            # Keys like `2026-11-26:` or `7:` arrive as dates or ints; policies name things by
            # strings, and a clause numbered 12 is the string "12".
            key = str(key)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _construct_timestamp(loader: _LineLoader, node: yaml.ScalarNode) -> Any:
    """A date, or the text itself when it only looks like one (`2026-13-01`, `2027-02-30`).

    PyYAML raises a bare ValueError for those; kept as text, validation reports the field.
    """
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; syntax errors become a PolicyError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(str(path), None, "", f"cannot read: {exc}")]) from exc
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = exc.problem or str(exc)
        raise PolicyError([Problem(str(path), line, "", f"invalid YAML: {message}")]) from exc
    except yaml.YAMLError as exc:
        raise PolicyError([Problem(str(path), None, "", f"invalid YAML: {exc}")]) from exc


def line_of(container: object, key: str | int | None = None) -> int | None:
    """The line of `container[key]` (or of the container itself), when known."""
    if isinstance(container, Located):
        if isinstance(key, str) and key in container.key_lines:
            return container.key_lines[key]
        return container.line
    if isinstance(container, LocatedList):
        if isinstance(key, int) and 0 <= key < len(container.item_lines):
            return container.item_lines[key]
        return container.line
    return None
