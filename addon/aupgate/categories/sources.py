"""sources.yaml: which list feeds which category, where each list came from, and the corrections.

Read with the one YAML reader (`yamlsource`, every value as the text written) so every problem
names file, line and field; edited (by `aupgate categories import`) with ruamel.yaml's round trip,
so an administrator's comments and layout survive an import.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aupgate.errors import CategoryError, Problem
from aupgate.yamlsource import FieldReader, line_of, load_yaml

from .corrections import NO_CORRECTIONS, Corrections, read_corrections
from .ids import category_problem
from .readers import FORMATS, Format, ut1_files

__all__ = [
    "SOURCE_KEYS",
    "SourceSpec",
    "Sources",
    "edit_sources",
    "read_corrections_file",
    "read_source_config",
    "read_sources",
]

SOURCE_KEYS = ("path", "format", "category", "source", "licence", "snapshot")
TOP_KEYS = ("sources", "corrections")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One list named in sources.yaml, with its path resolved against the file's folder."""

    path: Path
    format: Format
    category: str
    source: str
    licence: str
    snapshot: str
    line: int


@dataclass(frozen=True, slots=True)
class Sources:
    """All of sources.yaml: the lists, and the corrections file it names (None when none)."""

    specs: list[SourceSpec]
    corrections: Path | None


def read_sources(sources_file: Path) -> list[SourceSpec]:
    """The lists sources.yaml names (see `read_source_config`).

    Raises:
        CategoryError: as `read_source_config`.
    """
    return read_source_config(sources_file).specs


def read_source_config(sources_file: Path) -> Sources:
    """Read and validate sources.yaml; every problem is collected before raising.

    Raises:
        CategoryError: the file is unreadable or names an unknown key, category or format, or a
            list or corrections file that does not exist.
    """
    root = load_yaml(sources_file, error=CategoryError, text=True)
    reader = FieldReader(str(sources_file))
    specs = _read_source_list(reader, root, sources_file)
    corrections = _corrections_path(reader, root, sources_file)
    if reader.problems:
        raise CategoryError(reader.problems)
    return Sources(specs, corrections)


def read_corrections_file(path: Path | None) -> Corrections:
    """Read and validate the corrections file sources.yaml names (None: no corrections).

    Raises:
        CategoryError: every problem, naming the file, line and field.
    """
    if path is None:
        return NO_CORRECTIONS
    root = load_yaml(path, error=CategoryError)
    corrections, problems = read_corrections(root, str(path))
    if problems:
        raise CategoryError(problems)
    return corrections


def _corrections_path(reader: FieldReader, root: Any, sources_file: Path) -> Path | None:
    if not isinstance(root, dict) or "corrections" not in root:
        return None
    value = root["corrections"]
    if not isinstance(value, str) or not value.strip():
        reader.problem(root, "corrections", "corrections", "expected the path of a YAML file")
        return None
    path = sources_file.parent / value
    if not path.is_file():
        reader.problem(root, "corrections", "corrections", f"no such file: {value}")
        return None
    return path


def _read_source_list(reader: FieldReader, root: Any, sources_file: Path) -> list[SourceSpec]:
    if not isinstance(root, dict):
        reader.problem(root, None, "", "expected a mapping with key 'sources'")
        return []
    for key in root:
        if key not in TOP_KEYS:
            reader.problem(root, key, key, "unknown key (expected 'sources' or 'corrections')")
    if "sources" not in root:
        reader.problem(root, None, "sources", "missing")
        return []
    items = root["sources"]
    if not isinstance(items, list):
        reader.problem(root, "sources", "sources", "expected a list")
        return []
    specs: list[SourceSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        spec = _read_source(reader, items, i, sources_file)
        if spec is None:
            continue
        key = str(spec.path)
        if key in seen:
            where = f"sources[{i}].path"
            reader.problem(item, None, where, f"already listed at line {seen[key]}")
        else:
            seen[key] = spec.line
            specs.append(spec)
    return specs


def _read_source(
    reader: FieldReader, items: list[Any], i: int, sources_file: Path
) -> SourceSpec | None:
    where = f"sources[{i}]"
    item = items[i]
    if not isinstance(item, dict):
        reader.problem(items, i, where, "expected a mapping")
        return None
    before = len(reader.problems)
    values: dict[str, tuple[str, int]] = {}  # key -> (text, line)
    for key, value in item.items():
        field = f"{where}.{key}"
        if key not in SOURCE_KEYS:
            expected = ", ".join(sorted(SOURCE_KEYS))
            reader.problem(item, key, field, f"unknown key (expected one of: {expected})")
        elif not isinstance(value, str) or not value.strip():
            reader.problem(item, key, field, "expected a non-empty string")
        else:
            values[key] = (value, line_of(item, key) or 0)
    for key in SOURCE_KEYS:
        if key not in item:
            reader.problem(item, None, where, f"missing key '{key}'")
    _check_category(reader, values, where)
    fmt = _check_format(reader, values, where)
    path = _check_path(reader, values, fmt, where, sources_file)
    if len(reader.problems) > before or fmt is None or path is None:
        return None
    return SourceSpec(
        path=path,
        format=fmt,
        category=values["category"][0],
        source=values["source"][0],
        licence=values["licence"][0],
        snapshot=values["snapshot"][0],
        line=line_of(item) or 0,
    )


def _check_category(reader: FieldReader, values: dict[str, tuple[str, int]], where: str) -> None:
    if "category" in values:
        category, line = values["category"]
        if message := category_problem(category):
            reader.problems.append(Problem(reader.file, line, f"{where}.category", message))


def _check_format(
    reader: FieldReader, values: dict[str, tuple[str, int]], where: str
) -> Format | None:
    if "format" not in values:
        return None
    fmt, line = values["format"]
    for known in FORMATS:
        if fmt == known:
            return known
    message = f"unknown format '{fmt}' (expected one of: {', '.join(FORMATS)})"
    reader.problems.append(Problem(reader.file, line, f"{where}.format", message))
    return None


def _check_path(
    reader: FieldReader,
    values: dict[str, tuple[str, int]],
    fmt: Format | None,
    where: str,
    sources_file: Path,
) -> Path | None:
    if "path" not in values or fmt is None:
        return None  # without a known format there is no telling whether a file or folder is due
    rel, line = values["path"]
    path = sources_file.parent / rel
    message = None
    if fmt == "ut1":
        if not path.is_dir():
            message = f"no such folder: {rel}"
        elif not ut1_files(path):
            message = f"no domains or urls file (optionally .gz) in {rel}"
    elif not path.is_file():
        message = f"no such file: {rel}"
    if message:
        reader.problems.append(Problem(reader.file, line, f"{where}.path", message))
        return None
    return path


# --- editing -------------------------------------------------------------------------------------


def edit_sources(sources_file: Path, items: Iterable[Mapping[str, str]]) -> None:
    """Name lists in sources.yaml: an item with the same `path` is replaced, others appended.

    ruamel.yaml's round trip keeps the rest of the file as it was written: comments, key order,
    quoting and the file's own indentation (guessed from it). A `sources: []` written inline
    becomes a block list, one item per list, as the rest of the file has them.
    """
    text = sources_file.read_text(encoding="utf-8")
    # ruamel.yaml only for editing (imported here: reading sources.yaml, on every start-up and
    # reload, never needs it)
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.util import load_yaml_guess_indent

    data, indent, block_seq_indent = load_yaml_guess_indent(text) if text.strip() else (None, 2, 0)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long source or licence line
    yaml.indent(mapping=indent or 2, sequence=(indent or 2) + (block_seq_indent or 0),
                offset=block_seq_indent or 0)
    if not isinstance(data, CommentedMap):
        data = CommentedMap()
    listed = data.get("sources")
    if not isinstance(listed, CommentedSeq):
        listed = data["sources"] = CommentedSeq()
    new = [CommentedMap(item) for item in items]
    paths = {item["path"] for item in new}
    for i in reversed(range(len(listed))):
        if isinstance(listed[i], Mapping) and listed[i].get("path") in paths:
            del listed[i]
    listed.extend(new)
    listed.fa.set_block_style()
    out = io.StringIO()
    yaml.dump(data, out)
    sources_file.write_text(out.getvalue(), encoding="utf-8")
