"""The compiled index: same answers as the lists, provenance, and never trusting a bad file."""

from __future__ import annotations

import gzip
import logging
import random
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aupgate.categories import cache as indexcache
from aupgate.categories import compiler
from aupgate.categories.cache import (
    check_index,
    index_locations,
    load_index,
    rebuild,
)
from aupgate.categories.compiled import CompiledIndex, IndexFileError
from aupgate.categories.entries import Entry
from aupgate.categories.ids import CATEGORY_IDS
from aupgate.categories.index import classification_of
from aupgate.categories.indexfile import MAGIC
from aupgate.categories.listindex import load_lists
from aupgate.errors import CategoryError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "categories" / "sources.yaml"
PROVENANCE = "    source: test\n    licence: test\n    snapshot: test\n"


def write_lists(folder: Path, pairs: Iterable[tuple[str, str]]) -> Path:
    """One plain list per category, in first-seen order, and a sources.yaml naming them."""
    by_category: dict[str, list[str]] = {}
    for entry, category in pairs:
        by_category.setdefault(category, []).append(entry)
    items = []
    for category, entries in by_category.items():
        name = f"{category}.txt"
        (folder / name).write_text("".join(e + "\n" for e in entries), encoding="utf-8")
        items.append(
            f"  - path: {name}\n    format: plain\n    category: {category}\n" + PROVENANCE
        )
    sources = folder / "sources.yaml"
    sources.write_text("sources:\n" + "".join(items) if items else "sources: []\n", "utf-8")
    return sources


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write_lists(
        tmp_path,
        [
            ("netlog.com", "social-networking"),
            ("ads.netlog.com", "advertising"),
            ("netlog.com/play", "games"),
            ("netlog.com/play/cards", "gambling"),
            ("bet365.com", "gambling"),
            ("bet365.com", "malware-phishing"),
            ("10.1.2.3", "malware-phishing"),
            ("only.example/path", "shopping"),
        ],
    )


# --- same answers as the lists -------------------------------------------------------------------

LABELS = st.sampled_from(["a", "b", "ab", "c0", "x-y"])
HOSTS = st.lists(LABELS, min_size=1, max_size=4).map(".".join)
PATHS = st.lists(st.sampled_from(["a", "b", "A", "ab", ""]), max_size=3).map(
    lambda parts: "/" + "/".join(parts)
)
ENTRIES = st.tuples(HOSTS, st.none() | PATHS).map(lambda e: e[0] if e[1] is None else e[0] + e[1])
PAIRS = st.lists(st.tuples(ENTRIES, st.sampled_from(CATEGORY_IDS[:4])), max_size=12)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=PAIRS, queries=st.lists(st.tuples(HOSTS, PATHS), min_size=1, max_size=8))
def test_compiled_index_equals_the_lists(
    pairs: list[tuple[str, str]], queries: list[tuple[str, str]]
) -> None:
    """Compiled from files, the index answers every request exactly as the lists do."""
    with tempfile.TemporaryDirectory() as folder:
        sources = write_lists(Path(folder), pairs)
        compiled, report = load_index(sources)
        lists, list_report = load_lists(sources)
        assert isinstance(compiled, CompiledIndex)
        assert len(compiled) == len(lists)
        assert compiled.category_counts() == lists.category_counts()
        assert report == list_report
        for host, path in queries + queries:  # twice: remembered chains must not leak
            expected = lists.classify(host, path)
            assert compiled.classify(host, path) == expected
            assert set(compiled.matches(host, path)) == set(lists.matches(host, path))
            assert classification_of(compiled.matches(host, path)) == expected


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("www.netlog.com", "/play/cards/7"),
        ("ads.netlog.com", "/play"),
        ("ads.netlog.com", "/"),
        ("netlog.com", "play"),  # a path that does not start with "/" matches no URL entry
        ("netlog.com", ""),
        ("x.bet365.com", "/"),
        ("10.1.2.3", "/"),
        ("9.10.1.2.3", "/"),
        ("only.example", "/path/x"),
        ("only.example", "/"),
        ("notnetlog.com", "/play"),
        ("com", "/"),
    ],
)
def test_compiled_matches_lists_on_the_tricky_shapes(small: Path, host: str, path: str) -> None:
    compiled, _ = load_index(small)
    lists, _ = load_lists(small)
    assert compiled.classify(host, path) == lists.classify(host, path)


@pytest.mark.slow
def test_shipped_compiled_index_equals_the_lists() -> None:
    """The one test that reads the shipped lists in full: 20,000 requests answer identically.

    The compiled index is the one `load_index` keeps beside sources.yaml, so this compiles the
    shipped lists only when they (or the list code) changed since the last run.
    """
    compiled, report = load_index(SHIPPED)
    lists, list_report = load_lists(SHIPPED)
    assert report == list_report
    assert len(compiled) == len(lists) > 400_000
    assert compiled.category_counts() == lists.category_counts()
    rng = random.Random(5)
    listed = [e.host for e in _sample_entries(SHIPPED, rng, 4000)]
    queries = []
    for _ in range(20_000):
        roll = rng.random()
        host = rng.choice(listed) if roll < 0.6 else f"h{rng.randrange(10**6)}.example.com"
        if rng.random() < 0.3:
            host = f"a{rng.randrange(50)}.b.{host}"
        path = rng.choice(["/", "/mail/", "/radio", "/index.php?showforum=11", "/a/b"])
        queries.append((host, path))
    assert [compiled.classify(h, p) for h, p in queries] == [
        lists.classify(h, p) for h, p in queries
    ]


def _sample_entries(sources: Path, rng: random.Random, n: int) -> list[Entry]:
    entries = []
    for path in sorted(sources.parent.rglob("*.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
        entries += [
            Entry(line.split("/")[0]) for line in rng.sample(lines, min(n // 20, len(lines)))
        ]
    return entries


# --- provenance ----------------------------------------------------------------------------------


def test_origins_name_every_file_and_line(tmp_path: Path) -> None:
    """Every list line that gave an entry, duplicates included, with the source's provenance."""
    (tmp_path / "a.txt").write_text("# header\nbet365.com\nbet365.com\n", encoding="utf-8")
    ut1 = tmp_path / "ut1" / "malware"
    ut1.mkdir(parents=True)
    (ut1 / "domains.gz").write_bytes(gzip.compress(b"x.example\nbet365.com\n"))
    (ut1 / "urls").write_text("bet365.com/promo\n", encoding="utf-8")
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        "  - path: a.txt\n    format: plain\n    category: gambling\n"
        "    source: Agency list\n    licence: public domain\n    snapshot: 2026-11-01\n"
        "  - path: ut1/malware\n    format: ut1\n    category: malware-phishing\n" + PROVENANCE,
        encoding="utf-8",
    )
    index, report = load_index(sources)
    assert isinstance(index, CompiledIndex)
    origins = index.origins(Entry("bet365.com"))
    assert [(o.file, o.line, o.source.category) for o in origins] == [
        (str(tmp_path / "a.txt"), 2, "gambling"),
        (str(tmp_path / "a.txt"), 3, "gambling"),
        (str(ut1 / "domains.gz"), 2, "malware-phishing"),
    ]
    assert origins[0].source.licence == "public domain"
    assert origins[0].source.snapshot == "2026-11-01"
    (url,) = index.origins(Entry("bet365.com", "/promo"))
    assert (url.file, url.line) == (str(ut1 / "urls"), 1)
    assert index.origins(Entry("nothere.example")) == []
    assert index.categories_of(Entry("bet365.com")) == ("gambling", "malware-phishing")
    assert index.categories_of(Entry("www.bet365.com")) == ()
    assert report.sources[0].duplicates == 1


# --- where it lives, and when it is rebuilt ------------------------------------------------------


def test_first_use_compiles_beside_sources_and_then_reuses(small: Path) -> None:
    target = small.parent / "index.aupidx"
    assert not target.exists()
    load_index(small)
    assert target.read_bytes()[:8] == MAGIC
    stamp = target.stat().st_mtime_ns
    load_index(small)
    assert target.stat().st_mtime_ns == stamp
    assert check_index(small).state == "current"


def test_index_dir_from_the_environment(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("AUPGATE_INDEX_DIR", str(cache))
    (location,) = index_locations(small)
    assert location.parent == cache
    load_index(small)
    assert location.is_file()
    assert not (small.parent / "index.aupidx").exists()


def test_a_changed_list_is_recompiled(small: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A content change makes the index stale: it is rebuilt, and the new entry is seen."""
    load_index(small)
    with (small.parent / "gambling.txt").open("a", encoding="utf-8") as f:
        f.write("newcasino.example\n")
    assert check_index(small).state == "stale"
    with caplog.at_level(logging.WARNING, logger="aupgate.indexcache"):
        index, _ = load_index(small)
    assert index.classify("newcasino.example").categories == ("gambling",)
    assert "is stale" in caplog.text


def test_touching_a_list_without_changing_it_is_not_a_change(small: Path) -> None:
    load_index(small)
    target = small.parent / "index.aupidx"
    stamp = target.stat().st_mtime_ns
    lst = small.parent / "gambling.txt"
    lst.write_bytes(lst.read_bytes())
    load_index(small)
    assert target.stat().st_mtime_ns == stamp


def test_a_new_ut1_file_makes_the_index_stale(tmp_path: Path) -> None:
    """sources.yaml names the folder; a `urls` file appearing in it is a change of source."""
    folder = tmp_path / "gambling"
    folder.mkdir()
    (folder / "domains").write_text("bingo.example\n", encoding="utf-8")
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n  - path: gambling\n    format: ut1\n    category: gambling\n" + PROVENANCE,
        encoding="utf-8",
    )
    load_index(sources)
    (folder / "urls").write_text("news.example/odds\n", encoding="utf-8")
    assert check_index(sources).state == "stale"
    index, _ = load_index(sources)
    assert index.classify("news.example", "/odds/1").matched == "news.example/odds"


def corrupt(target: Path, how: str) -> None:
    data = bytearray(target.read_bytes())
    if how == "magic":
        data[:8] = b"NOTANIDX"
    elif how == "truncated":
        data = data[: len(data) // 2]
    elif how == "flipped":
        data[len(data) // 3] ^= 0x40
    elif how == "version":
        data[8] = 99
    elif how == "empty":
        data = bytearray()
    elif how == "extended":
        data += b"\0" * 16
    target.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("magic", "bad magic: not an aupgate category index"),
        ("truncated", "truncated or extended"),
        ("extended", "truncated or extended"),
        ("flipped", "checksum mismatch: the file is corrupt"),
        ("empty", "truncated: shorter than the preamble"),
    ],
)
def test_a_corrupt_index_is_refused_and_rebuilt(
    small: Path, how: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Bad magic, wrong version, truncation or a flipped byte: refused, said why, rebuilt."""
    load_index(small)
    target = small.parent / "index.aupidx"
    corrupt(target, how)
    with pytest.raises(IndexFileError, match=reason.split(":")[0]):
        CompiledIndex.open(target)
    fresh = check_index(small)
    assert (fresh.state, fresh.reason.startswith(reason)) == ("corrupt", True)
    with caplog.at_level(logging.WARNING, logger="aupgate.indexcache"):
        index, _ = load_index(small)
    assert "is corrupt" in caplog.text
    assert index.classify("www.bet365.com").matched == "bet365.com"
    assert check_index(small).state == "current"


def test_an_index_of_another_version_is_stale_not_corrupt(
    small: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An upgrade finds the old version's index on every machine: a warning and a rebuild.

    Logged as an error it would stop `aupgate run` at start-up (mitmproxy exits on an error
    logged while starting), so an upgrade would not start until someone deleted the file.
    """
    load_index(small)
    target = small.parent / "index.aupidx"
    corrupt(target, "version")
    with pytest.raises(IndexFileError, match="format version 99, this aupgate reads 2"):
        CompiledIndex.open(target)
    fresh = check_index(small)
    assert fresh.state == "stale"
    assert fresh.reason == (
        "written by another aupgate version: format version 99, this aupgate reads 2"
    )
    with caplog.at_level(logging.INFO, logger="aupgate.indexcache"):
        index, _ = load_index(small)
    [record] = [r for r in caplog.records if "compiling it" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert index.classify("www.bet365.com").matched == "bet365.com"
    assert check_index(small).state == "current"


def test_an_unwritable_location_falls_back_to_the_next(small: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where a folder should be", encoding="utf-8")
    good = tmp_path / "cache" / "x.aupidx"
    index, stats = rebuild(small, [blocked / "index.aupidx", good])
    assert index.path == good
    assert stats is not None and (stats["entries"], stats["keys"]) == (7, 8)


def test_no_writable_location_is_an_error(small: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("", encoding="utf-8")
    with pytest.raises(CategoryError, match="cannot write a compiled index"):
        load_index(small, index_file=blocked / "index.aupidx")


def test_concurrent_starters_compile_once(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker processes starting together wait for one compile and share its file."""
    calls: list[int] = []
    real = compiler.compile_sources

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(indexcache, "compile_sources", counting)
    results: list[str | None] = []

    def start() -> None:
        index, _ = load_index(small)
        results.append(index.classify("bet365.com").matched)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["bet365.com"] * 4
    assert len(calls) == 1


@pytest.fixture
def broken_sources(tmp_path: Path) -> Path:
    """A sources.yaml whose one UT1 list (`broken/domains.gz`) is not gzip."""
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "domains.gz").write_bytes(b"not gzip")
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n  - path: broken\n    format: ut1\n    category: dating\n" + PROVENANCE,
        encoding="utf-8",
    )
    return sources


def test_a_broken_list_is_an_error_not_an_empty_index(broken_sources: Path) -> None:
    with pytest.raises(CategoryError, match="cannot read"):
        load_index(broken_sources)
    assert not (broken_sources.parent / "index.aupidx").exists()


def test_moving_the_folder_keeps_the_index_and_renames_report_files(small: Path) -> None:
    """File names are stored relative to sources.yaml: a moved folder reports its new names."""
    (small.parent / "dating.txt").write_text("bad host\n", encoding="utf-8")
    text = small.read_text(encoding="utf-8")
    small.write_text(
        text + "  - path: dating.txt\n    format: plain\n    category: dating\n" + PROVENANCE,
        encoding="utf-8",
    )
    load_index(small)
    moved = small.parent.parent / "moved"
    small.parent.rename(moved)
    target = moved / "index.aupidx"
    stamp = target.stat().st_mtime_ns
    _, report = load_index(moved / "sources.yaml")
    assert target.stat().st_mtime_ns == stamp
    assert [p.file for p in report.problems] == [str(moved / "dating.txt")]


def test_compiling_in_a_child_process(small: Path, tmp_path: Path) -> None:
    """Large lists are compiled in a child, so a long-running proxy does not keep its garbage."""
    target = tmp_path / "child.aupidx"
    index, stats = rebuild(small, [target], isolate=True)
    assert stats is not None and (stats["entries"], stats["keys"]) == (7, 8)
    assert index.classify("www.bet365.com").categories == ("gambling", "malware-phishing")


def test_a_child_compile_reports_problems_like_an_in_process_one(broken_sources: Path) -> None:
    with pytest.raises(CategoryError) as info:
        rebuild(broken_sources, [broken_sources.parent / "x.aupidx"], isolate=True)
    (problem,) = info.value.problems
    assert problem.file == str(broken_sources.parent / "broken" / "domains.gz")
    assert problem.message.startswith("cannot read")


def test_large_lists_are_compiled_in_a_child(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[bool] = []
    real = indexcache._compile_in_child

    def spy(*args: Path | str) -> object:
        used.append(True)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(indexcache, "_compile_in_child", spy)
    monkeypatch.setattr(indexcache, "ISOLATE_BYTES", 10)
    load_index(small)
    assert used == [True]
