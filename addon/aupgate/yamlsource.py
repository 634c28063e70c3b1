"""The one way aupgate reads YAML: data that remembers where every key and item came from.

Administrators edit policy files, sources.yaml and mapping files by hand. An error that says
"rules[3].match.windows[1]" without a line number sends them counting list items; so the loader
keeps the line of every mapping key and sequence item, and `FieldReader` walks the data collecting
problems as `FILE:LINE: FIELD: message`. Policies are read with YAML's types (dates, numbers);
files whose values are all text (sources.yaml, a UT1 mapping) are read with every scalar as the
text written, so `snapshot: 1.10` stays "1.10".

Reading only: the importer edits sources.yaml with ruamel.yaml's round trip, which keeps comments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import PolicyError, Problem, ProblemsError, did_you_mean


class Located(dict[str, Any]):
    """A mapping that knows its own line and the line of each key."""

    line: int
    key_lines: dict[str, int]


class LocatedList(list[Any]):
    """A sequence that knows its own line and the line of each item."""

    line: int
    item_lines: list[int]


MAX_DEPTH = 64
"""How deeply mappings and lists may nest. aupgate's files nest a handful of levels; the limit
keeps a hostile or garbled file (300 `[` in a row) from exhausting Python's recursion limit in
the YAML library, which would end `aupgate check` and the gateway's start with a traceback."""


class TooDeepError(yaml.MarkedYAMLError):
    """Nesting past `MAX_DEPTH`, with the field path that got there."""

    def __init__(self, field: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=mark)
        self.field = field


class _Nesting:
    """Loader mixin: stops composing a document at `MAX_DEPTH` nested mappings and lists,
    naming the path of keys and list positions that got there.

    Only what is written nests: an alias is built once, where its anchor is, so aliases do not
    make PyYAML recurse deeper than the text does.
    """

    _path: list[str]

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        path = self.__dict__.setdefault("_path", [])
        path.append(_step(index))
        try:
            event = self.peek_event()  # type: ignore[attr-defined]
            nests = isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent)
            if nests and len(path) > MAX_DEPTH:  # the document itself is path[0]
                raise TooDeepError(_path_text(path[1:]), event.start_mark)
            return super().compose_node(parent, index)  # type: ignore[misc, no-any-return]
        finally:
            path.pop()


def _step(index: Any) -> str:
    """One step of a field path: a mapping key's text, a list position, or a complex key."""
    if isinstance(index, int):
        return f"[{index}]"
    if isinstance(index, yaml.ScalarNode):
        return str(index.value)[:40]
    return "(key)"


def _path_text(steps: list[str]) -> str:
    """`rules[0].match[2]`; a long path keeps its first and last steps around an ellipsis."""

    def joined(part: list[str]) -> str:
        text = ""
        for step in part:
            text += step if step.startswith("[") or not text else f".{step}"
        return text

    if len(steps) <= 8:
        return joined(steps)
    return f"{joined(steps[:4])} ... {joined(steps[-2:])}"


class _LineLoader(_Nesting, yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry line numbers (1-based)."""


_FastBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FastLineLoader(_FastBase):  # type: ignore[misc]
    """The same over libyaml's parser where PyYAML was built with it: ten times faster on a
    policy file (the start-up of every command, and each reload). Its nodes carry the same
    marks, so lines are the same; a file it refuses, or one nested near `MAX_DEPTH` (libyaml
    composes without `_Nesting`), is parsed again by the Python parser, whose messages the tests
    and the documentation show."""


class _TextLineLoader(_Nesting, yaml.BaseLoader):
    """The same, with every scalar kept as the text written (YAML's BaseLoader resolves none)."""


def _construct_mapping(loader: yaml.BaseLoader, node: yaml.MappingNode) -> Located:
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


def _construct_sequence(loader: yaml.BaseLoader, node: yaml.SequenceNode) -> LocatedList:
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


for _loader in (_LineLoader, _FastLineLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
    _loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
_TextLineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_TextLineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence
)


def load_yaml(
    path: Path, *, error: type[ProblemsError] = PolicyError, text: bool = False
) -> Any:
    """Parse one YAML file into `Located` data; problems raise `error` naming file and line.

    `text`: every scalar is the text written (no dates, numbers or booleans).
    """
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise error([Problem(str(path), None, "", f"cannot read: {reason}")]) from exc
    loader = _TextLineLoader if text else _LineLoader
    if not text:
        try:
            data = yaml.load(source, Loader=_FastLineLoader)  # noqa: S506 - a SafeLoader
        except (yaml.YAMLError, RecursionError):
            pass  # the Python parser below says what is wrong, in its own words
        else:
            if not _nests_near_limit(data):
                return data
    try:
        return yaml.load(source, Loader=loader)  # noqa: S506 - SafeLoader/BaseLoader subclasses
    except TooDeepError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        message = f"{exc.problem}: a policy or list file needs a handful of levels"
        raise error([Problem(str(path), line, exc.field, message)]) from exc
    except RecursionError as exc:  # a shape the limit above does not foresee: still no traceback
        message = "nested too deeply to read (Python's recursion limit)"
        raise error([Problem(str(path), None, "", message)]) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = exc.problem or str(exc)
        raise error([Problem(str(path), line, "", f"invalid YAML: {message}")]) from exc
    except yaml.reader.ReaderError as exc:  # a character YAML forbids (NUL, most controls)
        line = source.count("\n", 0, max(exc.position, 0)) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or b"?")
        message = f"invalid YAML: character #x{code:04x} is not allowed in YAML text"
        raise error([Problem(str(path), line, "", message)]) from exc
    except yaml.YAMLError as exc:
        raise error([Problem(str(path), None, "", f"invalid YAML: {exc}")]) from exc


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


# --------------------------------------------------------------------------- reading located data

MISSING = object()  # a key that is absent, distinct from a key whose value is null


class FieldReader:
    """Collects problems while walking one file, so every mistake is reported at once."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def problem(
        self,
        container: object,
        key: str | int | None,
        field: str,
        message: str,
        severity: Literal["error", "warning"] = "error",
    ) -> None:
        self.problems.append(Problem(self.file, line_of(container, key), field, message, severity))

    def mapping(
        self,
        parent: object,
        key: str | int,
        field: str,
        allowed: Iterable[str],
        required: Iterable[str] = (),
    ) -> dict[str, Any] | None:
        """Read a mapping, reporting unknown and missing keys by name."""
        value = _item(parent, key)
        if value is MISSING:
            return None
        if not isinstance(value, dict):
            self.problem(parent, key, field, f"expected a mapping, got {kind_of(value)}")
            return None
        allowed = tuple(allowed)
        for name in value:
            if name not in allowed:
                hint = did_you_mean(name, allowed)
                self.problem(value, name, join_field(field, name), f"unknown key{hint}")
        for name in required:
            if name not in value:
                # A top-level key is missing from the file itself: point at its first line.
                where = parent if line_of(parent, key) is not None else value
                self.problem(where, key, field, f"missing required key '{name}'")
        return value

    def string(self, parent: Mapping[str, Any], key: str, field: str) -> str | None:
        value = parent.get(key, MISSING)
        if value is MISSING:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(
                parent, key, join_field(field, key), f"expected text, got {kind_of(value)}"
            )
            return None
        return value.strip()

    def strings(self, parent: Mapping[str, Any], key: str, field: str) -> list[tuple[int, str]]:
        """A list of strings (a single string is accepted as a list of one)."""
        value = parent.get(key, MISSING)
        if value is MISSING:
            return []
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return [(0, str(value))]
        if not isinstance(value, list):
            self.problem(
                parent, key, join_field(field, key), f"expected a list, got {kind_of(value)}"
            )
            return []
        out: list[tuple[int, str]] = []
        for i, item in enumerate(value):
            if isinstance(item, (str, int, float)) and not isinstance(item, bool):
                out.append((i, str(item)))
            else:
                self.problem(
                    value,
                    i,
                    f"{join_field(field, key)}[{i}]",
                    f"expected text, got {kind_of(item)}",
                )
        return out

    def choices(
        self,
        parent: Mapping[str, Any],
        key: str,
        field: str,
        allowed: Iterable[str],
        what: str,
    ) -> frozenset[str] | None:
        """A list of names each of which must be one of `allowed`; None when the key is absent."""
        if key not in parent:
            return None
        allowed = tuple(allowed)
        chosen: set[str] = set()
        items = self.strings(parent, key, field)
        # a single name (`work_days: monday`) has no item lines: its key's line locates it
        listed = isinstance(parent[key], list)
        for i, name in items:
            if name in allowed:
                chosen.add(name)
            else:
                problem = f"unknown {what} '{name}'{did_you_mean(name, allowed)}"
                where, at = (parent[key], i) if listed else (parent, key)
                self.problem(where, at, f"{join_field(field, key)}[{i}]", problem)
        if listed and not parent[key]:  # anything else that gave no names was reported above
            self.problem(parent, key, join_field(field, key), "must list at least one value")
        return frozenset(chosen)


    def sequence(self, parent: Mapping[str, Any], key: str, field: str, *,
                 null_is_empty: bool = True) -> list[Any]:
        """A list section (absent: empty); anything else is a problem and reads as empty.

        `null_is_empty`: a key given with no value (`rules:`) is an empty list, not a problem.
        """
        value = parent.get(key, MISSING)
        if value is MISSING or (value is None and null_is_empty):
            return []
        if not isinstance(value, list):
            self.problem(parent, key, field, f"expected a list, got {kind_of(value)}")
            return []
        return value

    def items(self, parent: Mapping[str, Any], key: str, where: str, message: str) -> list[Any]:
        """A non-empty list (a single value is a list of one); `message` when it is neither."""
        value = parent.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.problem(parent, key, where, message)
            return []
        return value

    def day(self, container: object, key: str | int, field: str, value: object) -> date | None:
        """A calendar date (YAML's own, or `YYYY-MM-DD` text); None and a problem otherwise."""
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.problem(container, key, field, f"'{value}' is not a date (YYYY-MM-DD)")
            return None


def plain(value: Any) -> Any:
    """`Located` data as plain dicts and lists again (for writing it back out)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def keys_of(value: object) -> tuple[str, ...]:
    """The keys of a mapping (any name allowed), or none when it is not one."""
    return tuple(value) if isinstance(value, dict) else ()


def _item(parent: object, key: str | int) -> Any:
    if isinstance(parent, dict) and isinstance(key, str):
        return parent.get(key, MISSING)
    if isinstance(parent, list) and isinstance(key, int) and 0 <= key < len(parent):
        return parent[key]
    return MISSING


def kind_of(value: object) -> str:
    """How an administrator would describe a YAML value ("a list", "text")."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def join_field(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _nests_near_limit(data: Any) -> bool:
    """Whether mappings and lists nest `MAX_DEPTH` levels or more, or share a node (an alias:
    walking it again could cost as much as expanding it), so the Python parser reads the file
    again and `_Nesting` decides and locates any problem."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    seen: set[int] = set()
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(
            item, list) else None
        if children is None:
            continue
        if depth >= MAX_DEPTH or id(item) in seen:
            return True
        seen.add(id(item))
        stack += [(child, depth + 1) for child in children]
    return False
