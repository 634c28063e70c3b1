"""Corrections: read with located errors, applied alike by both indexes, checked and shown.

The shipped file and its meaning on the shipped lists are in test_corrections_data.py; here small
lists in a temporary folder pin down each rule, each error and each command.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aupgate.categories.cache import load_index
from aupgate.categories.compiled import CompiledIndex
from aupgate.categories.index import classification_of
from aupgate.categories.listindex import load_lists
from aupgate.cli import main
from aupgate.errors import CategoryError

POLICIES = Path(__file__).parent / "fixtures" / "core" / "policies"
PROVENANCE = "    source: test\n    licence: test\n    snapshot: test\n"

LISTS = [
    ("remote.example", "remote-access"),
    ("meet.example", "remote-access"),
    ("archive.example", "p2p-file-sharing"),
    ("bt1.archive.example", "p2p-file-sharing"),
    ("shop.example", "shopping"),
    ("www.social.example", "social-networking"),
    ("social.example", "social-networking"),
    ("chat.example", "social-networking"),
    ("a.chat.example", "social-networking"),
    ("b.a.chat.example", "social-networking"),
]
GOOD = """\
corrections:
  - entries: [meet.example]
    from: remote-access
    to: web-conferencing
    reason: A meeting service, not a remote-control tool.
  - entries: [archive.example]
    from: p2p-file-sharing
    reason: A public archive that also offers torrents.
  - entries: [cloud.shop.example]
    from: shopping
    reason: The cloud console is not the shop.
  - entries: [social.example/learning]
    from: social-networking
    reason: Training pages.
  - entries: [chat.example]
    subdomains: true
    from: social-networking
    to: instant-messaging
    reason: A messenger, listed host by host as a social network.
"""


def write(folder: Path, pairs: Iterable[tuple[str, str]], corrections: str | None) -> Path:
    """Plain lists per category, a sources.yaml naming them and, if given, a corrections file."""
    by_category: dict[str, list[str]] = {}
    for entry, category in pairs:
        by_category.setdefault(category, []).append(entry)
    items = []
    for category, entries in by_category.items():
        (folder / f"{category}.txt").write_text("".join(e + "\n" for e in entries), "utf-8")
        items.append(
            f"  - path: {category}.txt\n    format: plain\n    category: {category}\n" + PROVENANCE
        )
    head = ""
    if corrections is not None:
        (folder / "corrections.yaml").write_text(corrections, "utf-8")
        head = "corrections: corrections.yaml\n"
    sources = folder / "sources.yaml"
    sources.write_text(head + "sources:\n" + "".join(items), "utf-8")
    return sources


@pytest.fixture
def corrected(tmp_path: Path) -> Path:
    return write(tmp_path, LISTS, GOOD)


@pytest.mark.parametrize(
    ("host", "path", "categories", "all_categories"),
    [
        ("meet.example", "/", ("web-conferencing",), ("web-conferencing",)),
        ("remote.example", "/", ("remote-access",), ("remote-access",)),
        ("archive.example", "/details", (), ()),
        ("bt1.archive.example", "/announce", ("p2p-file-sharing",), ("p2p-file-sharing",)),
        ("cloud.shop.example", "/", (), ()),
        ("www.shop.example", "/", ("shopping",), ("shopping",)),
        ("www.social.example", "/learning/x", (), ()),
        ("www.social.example", "/feed", ("social-networking",), ("social-networking",)),
        ("b.a.chat.example", "/", ("instant-messaging",), ("instant-messaging",)),
        ("x.b.a.chat.example", "/", ("instant-messaging",), ("instant-messaging",)),
        ("notchat.example", "/", (), ()),
    ],
)
def test_both_indexes_apply_corrections_as_documented(
    corrected: Path,
    host: str,
    path: str,
    categories: tuple[str, ...],
    all_categories: tuple[str, ...],
) -> None:
    compiled, report = load_index(corrected)
    lists, _ = load_lists(corrected)
    for index in (compiled, lists):
        result = index.classify(host, path)
        assert (result.categories, result.all_categories) == (categories, all_categories)
        assert result == classification_of(index.matches(host, path))
    assert not [p for p in report.problems if "stale" in p.message]


ITEM = st.tuples(
    st.sampled_from([e for e, _ in LISTS] + ["x.archive.example", "social.example/a"]),
    st.sampled_from(["remote-access", "p2p-file-sharing", "shopping", "social-networking"]),
    st.sampled_from([None, "web-conferencing", "instant-messaging"]),
    st.booleans(),
)
REQUESTS = [(e.split("/")[0], "/" + "/".join(e.split("/")[1:])) for e, _ in LISTS] + [
    ("deep.b.a.chat.example", "/"),
    ("www.social.example", "/a/b"),
    ("x.archive.example", "/"),
]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(ITEM, max_size=4, unique_by=lambda i: (i[0], i[1])))
def test_compiled_and_list_indexes_agree_under_any_corrections(
    tmp_path_factory: pytest.TempPathFactory, items: list[tuple[str, str, str | None, bool]]
) -> None:
    text = "corrections:\n" + "".join(
        f"  - entries: [{entry}]\n    from: {source}\n"
        + (f"    to: {target}\n" if target and target != source else "")
        + f"    subdomains: {str(sub).lower()}\n    reason: r\n"
        for entry, source, target, sub in items
    )
    sources = write(tmp_path_factory.mktemp("c"), LISTS, text if items else None)
    compiled, _ = load_index(sources)
    lists, _ = load_lists(sources)
    for host, path in REQUESTS:
        assert compiled.classify(host, path) == lists.classify(host, path), (host, path)
        assert sorted(compiled.matches(host, path), key=str) == sorted(
            lists.matches(host, path), key=str
        )


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("fixes: []\n", ":1:", "expected a mapping with the one key 'corrections'"),
        ("corrections: 3\n", ":1: corrections:", "expected a list"),
        ("corrections:\n  - 3\n", ":2: corrections[0]:", "expected a mapping"),
        (
            "corrections:\n  - entries: [a.example]\n    from: shopping\n",
            ":2: corrections[0]:",
            "missing required key 'reason'",
        ),
        (
            "corrections:\n  - entries: [a.example]\n    from: shoping\n    reason: r\n",
            ":3: corrections[0].from:",
            "unknown category 'shoping'",
        ),
        (
            "corrections:\n  - entries: [a.example]\n    from: shopping\n    to: shopping\n"
            "    reason: r\n",
            ":4: corrections[0].to:",
            "is also 'from'",
        ),
        (
            "corrections:\n  - entries: [a.example]\n    from: shopping\n    subdomains: often\n"
            "    reason: r\n",
            ":4: corrections[0].subdomains:",
            "expected true or false",
        ),
        (
            "corrections:\n  - entries: [a.example]\n    from: shopping\n    reason: '  '\n",
            ":4: corrections[0].reason:",
            "expected the reason",
        ),
        (
            "corrections:\n  - entries: ['bad host.example']\n    from: shopping\n    reason: r\n",
            ":2: corrections[0].entries[0]:",
            "cannot use 'bad host.example'",
        ),
        (
            "corrections:\n  - entries: a.example\n    from: shopping\n    reason: r\n",
            ":2: corrections[0].entries:",
            "expected a list",
        ),
        (
            "corrections:\n  - entries: [a.example]\n    form: shopping\n    reason: r\n",
            ":3: corrections[0].form:",
            "unknown key",
        ),
        (
            "corrections:\n  - entries: [a.example]\n    from: shopping\n    reason: r\n"
            "  - entries: [A.Example.]\n    from: shopping\n    reason: s\n",
            ":5: corrections[1].entries[0]:",
            "already corrected from shopping at line 2",
        ),
        (
            "corrections:\n  - entries: [a.example]\n    from: uncategorized\n    reason: r\n",
            ":3: corrections[0].from:",
            "no list's category",
        ),
    ],
)
def test_a_bad_corrections_file_stops_the_load_naming_file_line_and_field(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    sources = write(tmp_path, LISTS, text)
    for load in (load_index, load_lists):
        with pytest.raises(CategoryError) as raised:
            load(sources)
        shown = "\n".join(str(p) for p in raised.value.problems)
        assert f"{tmp_path / 'corrections.yaml'}{where}" in shown, shown
        assert message in shown, shown


def test_sources_yaml_naming_a_missing_corrections_file_is_a_located_error(
    tmp_path: Path,
) -> None:
    sources = write(tmp_path, LISTS, None)
    sources.write_text("corrections: nowhere.yaml\n" + sources.read_text("utf-8"), "utf-8")
    with pytest.raises(CategoryError, match=r"sources.yaml:1: corrections: no such file"):
        load_index(sources)


def test_editing_the_corrections_file_recompiles_the_index(corrected: Path) -> None:
    first, _ = load_index(corrected)
    assert first.classify("archive.example").categories == ()
    text = GOOD.replace("  - entries: [archive.example]", "  - entries: [other.example]")
    (corrected.parent / "corrections.yaml").write_text(text, "utf-8")
    second, report = load_index(corrected)
    assert isinstance(second, CompiledIndex) and second.checksum != first.checksum
    assert second.classify("archive.example").categories == ("p2p-file-sharing",)
    stale = [p for p in report.problems if "stale correction" in p.message]
    assert [(p.severity, p.field) for p in stale] == [("warning", "entries: other.example")]


def test_check_validates_corrections_and_refuses_stale_ones(
    capsys: pytest.CaptureFixture[str], corrected: Path
) -> None:
    argv = ["check", "--policy-dir", str(POLICIES), "--categories", str(corrected)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"corrections: 5 from {corrected.parent / 'corrections.yaml'}, 0 stale" in out
    text = GOOD.replace("[cloud.shop.example]", "[cloud.shop.example, gone.example]")
    (corrected.parent / "corrections.yaml").write_text(text, "utf-8")
    assert main(argv) == 1
    out = capsys.readouterr().out
    line = text.splitlines().index("  - entries: [cloud.shop.example, gone.example]") + 1
    assert (
        f"{corrected.parent / 'corrections.yaml'}:{line}: entries: gone.example: stale correction"
    ) in out
    (corrected.parent / "corrections.yaml").write_text(GOOD.replace("from: shopping", "from: x"))
    assert main(argv) == 1
    assert "corrections[2].from: unknown category 'x'" in capsys.readouterr().err


def test_lookup_shows_the_correction_that_decided(
    capsys: pytest.CaptureFixture[str], corrected: Path
) -> None:
    assert main(["categories", "lookup", "www.meet.example", "--categories", str(corrected)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "www.meet.example/: web-conferencing (matched meet.example)"
    assert out[1].startswith("  corrected: meet.example remote-access -> web-conferencing (")
    assert out[1].endswith("corrections.yaml:2: A meeting service, not a remote-control tool.)")
    assert any(line.startswith("  won meet.example") and "web-conferencing" in line for line in out)
    assert "        corrected: remote-access taken off (" in "\n".join(out)
    argv = ["categories", "lookup", "archive.example", "--json", "--categories", str(corrected)]
    assert main(argv) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["categories"] == [] and shown["matched"] is None
    assert shown["corrections"][0].startswith("archive.example p2p-file-sharing -> (removed) (")
    assert [(h["entry"], h["won"]) for h in shown["hits"]] == [("archive.example", False)]
    argv = ["categories", "lookup", "remote.example", "--json", "--categories", str(corrected)]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["corrections"] == []
