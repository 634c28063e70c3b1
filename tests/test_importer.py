"""`aupgate categories import|compile|lookup`: each format, the manifest, conflicts, progress."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from aupgate.categories.cache import load_index
from aupgate.categories.importer import ImportRequest, load_mapping, run_import
from aupgate.categories.sources import read_sources
from aupgate.categories.ut1 import UT1_MAP
from aupgate.cli import main
from aupgate.cli.progress import Progress
from aupgate.errors import CategoryError

TODAY = date(2026, 11, 22)
PROVENANCE = "    source: shared list\n    licence: CC0\n    snapshot: s1\n"


@pytest.fixture
def categories(tmp_path: Path) -> Path:
    """A categories folder with one shared list: gambling, with one entry also in games."""
    folder = tmp_path / "categories"
    folder.mkdir()
    (folder / "gambling.txt").write_text("casino.example\nbet.example\n", encoding="utf-8")
    (folder / "games.txt").write_text("bet.example\n", encoding="utf-8")
    sources = folder / "sources.yaml"
    sources.write_text(
        "# hand-written header, kept by imports\n"
        "sources:\n"
        "- path: gambling.txt\n  format: plain\n  category: gambling\n"
        + PROVENANCE.replace("    ", "  ")
        + "- path: games.txt\n  format: plain\n  category: games\n"
        + PROVENANCE.replace("    ", "  "),
        encoding="utf-8",
    )
    return sources


def manifest(sources: Path) -> list[dict[str, object]]:
    data = yaml.safe_load((sources.parent / "manifest.yaml").read_text(encoding="utf-8"))
    return list(data["imports"])


def cli(sources: Path, *args: str) -> int:
    return main(["categories", *args, "--categories", str(sources)])


# --- each format ---------------------------------------------------------------------------------


def test_import_plain_list_with_malformed_lines(
    categories: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Copied unchanged, named in sources.yaml, reasons counted, the index recompiled."""
    src = tmp_path / "Agency Gambling.txt"
    src.write_bytes(
        b"# agency list\npoker.example\nbad host.example\npoker.example\n\xff.example\n"
        b"casino.example\nodd..example\n"
    )
    before = datetime.now(UTC).date()
    code = cli(
        categories,
        "import",
        str(src),
        "--format",
        "plain",
        "--as",
        "gambling",
        "--licence",
        "public domain",
        "--snapshot",
        "2026-11-20",
    )
    assert code == 0
    out = capsys.readouterr().out
    copied = categories.parent / "imported" / "agency-gambling" / "Agency Gambling.txt"
    assert copied.read_bytes() == src.read_bytes()
    assert "7 lines: 2 entries, 1 duplicates, 3 rejected, 0 skipped" in out
    assert "already gambling on other lists: 1 entries" in out
    spec = read_sources(categories)[-1]
    assert (spec.path, spec.category, spec.licence, spec.snapshot) == (
        copied,
        "gambling",
        "public domain",
        "2026-11-20",
    )
    assert categories.read_text(encoding="utf-8").startswith("# hand-written header")
    index, _ = load_index(categories)
    assert index.classify("www.poker.example").categories == ("gambling",)
    (record,) = manifest(categories)
    assert record["lines"] == 7
    assert record["entries"] == 2
    assert record["duplicates"] == 1
    rejected = record["rejected"]
    assert isinstance(rejected, dict) and rejected["count"] == 3
    assert rejected["reasons"] == {
        "contains whitespace (a hosts-format line? declare format: hosts)": {
            "count": 1,
            "examples": ["Agency Gambling.txt:3: bad host.example"],
        },
        "not UTF-8": {"count": 1, "examples": ["Agency Gambling.txt:5"]},
        "invalid host '…': empty label": {
            "count": 1,
            "examples": ["Agency Gambling.txt:7: odd..example"],
        },
    }
    assert record["licence"] == "public domain"
    # the command dates the import by the clock (run_import is handed `today`)
    assert before <= date.fromisoformat(record["imported"]) <= datetime.now(UTC).date()


def test_import_hosts_file(categories: Path, tmp_path: Path) -> None:
    src = tmp_path / "hosts"
    src.write_text(
        "127.0.0.1 localhost\n0.0.0.0 ads.example track.example\nplain.example\n",
        encoding="utf-8",
    )
    request = ImportRequest(src, "hosts", "vendor-ads", "vendor", "MIT", "v1", "advertising")
    (item,), _ = run_import(request, categories, today=TODAY)
    assert (item.lines, item.entries, item.rejected.count) == (3, 2, 2)
    assert set(item.rejected.reasons) == {
        "a hosts-file housekeeping name, not a site",
        "does not start with an IP address (a plain list?)",
    }
    index, _ = load_index(categories)
    assert index.classify("track.example").categories == ("advertising",)


def test_import_adblock_counts_cosmetic_and_exception_rules(
    categories: Path, tmp_path: Path
) -> None:
    src = tmp_path / "easylist.txt"
    src.write_text(
        "[Adblock Plus 2.0]\n! comment\n||ads.example^\n||casino.example^\n"
        "example.org##.banner\n##.ad\n@@||ok.example^\n||x.example^$third-party\n"
        "||bad..example^\n",
        encoding="utf-8",
    )
    request = ImportRequest(src, "adblock", "easylist", "EasyList", "GPLv3", "v2", "advertising")
    (item,), _ = run_import(request, categories, today=TODAY)
    assert (item.entries, item.rejected.count, item.skipped.count) == (2, 1, 4)
    assert {r: n for r, (n, _) in item.skipped.reasons.items()} == {
        "cosmetic rule (hides page elements), names no site": 2,
        "exception rule (@@), names no site to categorise": 1,
        "options narrow the rule to some requests ($third-party)": 1,
    }
    # casino.example is gambling on the shared list: a conflict, reported, not hidden
    assert item.conflicts == 1
    assert item.conflicts_by_category == {"gambling": 1}
    assert item.conflict_examples == ["casino.example: also gambling"]
    record = manifest(categories)[0]
    assert record["conflicts"] == {
        "entries": 1,
        "by_category": {"gambling": 1},
        "examples": ["casino.example: also gambling"],
    }
    assert record["skipped"]["count"] == 4  # type: ignore[index]
    index, report = load_index(categories)
    assert report.sources[-1].skipped == 4
    result = index.classify("casino.example")
    assert result.categories == ("advertising", "gambling")


def ut1_tree(root: Path) -> Path:
    for folder, domains in (
        ("gambling", b"lotto.example\n"),
        ("publicite", b"ads.example\nbad..example\n"),
        ("astrology", b"stars.example\n"),
    ):
        (root / folder).mkdir(parents=True)
        (root / folder / "domains.gz").write_bytes(gzip.compress(domains))
    (root / "gambling" / "urls").write_text("news.example/odds\n", encoding="utf-8")
    (root / "README").write_text("not a category\n", encoding="utf-8")
    return root


def test_import_ut1_tree_with_the_documented_mapping(
    categories: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--mapping ut1` reuses aupgate.ut1.UT1_MAP; unmapped folders are named, not imported."""
    tree = ut1_tree(tmp_path / "ut1-new")
    code = cli(
        categories,
        "import",
        str(tree),
        "--format",
        "ut1",
        "--mapping",
        "ut1",
        "--licence",
        "CC BY-SA 4.0",
        "--name",
        "ut1-2026-11",
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "not imported (no category in the mapping): astrology" in out
    dests = {
        (s.path.relative_to(categories.parent).as_posix(), s.category)
        for s in read_sources(categories)
    }
    assert ("imported/ut1-2026-11/gambling", "gambling") in dests
    assert ("imported/ut1-2026-11/publicite", "advertising") in dests
    index, _ = load_index(categories)
    assert index.classify("ads.example").categories == ("advertising",)
    assert index.classify("news.example", "/odds/today").matched == "news.example/odds"
    assert [r["path"] for r in manifest(categories)] == [
        "imported/ut1-2026-11/gambling",
        "imported/ut1-2026-11/publicite",
    ]


def test_a_mapping_file(tmp_path: Path) -> None:
    mapping = tmp_path / "map.yaml"
    mapping.write_text("astrology: games\npublicite: advertising\n", encoding="utf-8")
    assert load_mapping(str(mapping)) == {"astrology": "games", "publicite": "advertising"}
    mapping.write_text("astrology: gamez\nx: uncategorized\n", encoding="utf-8")
    with pytest.raises(CategoryError) as info:
        load_mapping(str(mapping))
    assert [p.message for p in info.value.problems] == [
        "unknown category 'gamez' (did you mean 'games'?)",
        "'uncategorized' means 'on no list'; a list cannot carry it",
    ]
    assert load_mapping("ut1") == dict(UT1_MAP)


# --- safety --------------------------------------------------------------------------------------


def test_dry_run_changes_nothing(categories: Path, tmp_path: Path) -> None:
    src = tmp_path / "l.txt"
    src.write_text("a.example\n", encoding="utf-8")
    before = categories.read_text(encoding="utf-8")
    request = ImportRequest(src, "plain", "l", "x", "y", "z", "dating")
    (item,), _ = run_import(request, categories, today=TODAY, dry_run=True)
    assert item.entries == 1
    assert categories.read_text(encoding="utf-8") == before
    assert not (categories.parent / "imported").exists()
    assert not (categories.parent / "manifest.yaml").exists()


def test_importing_the_same_name_twice_needs_replace(categories: Path, tmp_path: Path) -> None:
    """An update replaces its sources.yaml item and manifest record instead of duplicating them;
    its own earlier copy does not count as an overlap."""
    src = tmp_path / "l.txt"
    src.write_text("a.example\n", encoding="utf-8")
    request = ImportRequest(src, "plain", "l", "x", "y", "v1", "dating")
    run_import(request, categories, today=TODAY)
    with pytest.raises(CategoryError, match=r"already imported as imported/l/l\.txt"):
        run_import(request, categories, today=TODAY)
    src.write_text("a.example\nb.example\n", encoding="utf-8")
    index, _ = load_index(categories)
    newer = ImportRequest(src, "plain", "l", "x", "y", "v2", "dating")
    (item,), _ = run_import(newer, categories, today=TODAY, replace=True, index=index)
    assert item.overlaps == 0
    specs = [s for s in read_sources(categories) if s.category == "dating"]
    assert [s.snapshot for s in specs] == ["v2"]
    assert [r["snapshot"] for r in manifest(categories)] == ["v2"]
    index, _ = load_index(categories)
    assert index.classify("b.example").categories == ("dating",)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as", "gamling"], "unknown category 'gamling' (did you mean 'gambling'?)"),
        (["--as", "uncategorized"], "'uncategorized' means 'on no list'"),
        (["--as", "dating", "--name", "Bad Name"], "'Bad Name' is not [a-z0-9._-]+"),
        (["--as", "dating", "--format", "ut1"], "a UT1 list is a folder"),
        (["--mapping", "ut1"], "--mapping needs a UT1 tree"),
    ],
)
def test_import_refusals(
    categories: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    src = tmp_path / "l.txt"
    src.write_text("a.example\n", encoding="utf-8")
    fmt = [] if "--format" in args else ["--format", "plain"]
    assert cli(categories, "import", str(src), *fmt, *args, "--licence", "x") == 1
    assert message in capsys.readouterr().err
    assert not (categories.parent / "imported").exists()


def test_an_empty_sources_file_takes_imports(tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources: []\n", encoding="utf-8")
    src = tmp_path / "l.txt"
    src.write_text("a.example\n", encoding="utf-8")
    run_import(ImportRequest(src, "plain", "l", "x", "y", "z", "dating"), sources, today=TODAY)
    assert [s.category for s in read_sources(sources)] == ["dating"]


# --- compile and lookup --------------------------------------------------------------------------


def test_compile_and_check(categories: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(categories, "compile", "--check") == 1
    assert "missing" in capsys.readouterr().out
    assert cli(categories, "compile") == 0
    assert "2 entries (2 keys) from 2 lists, 3 lines, 0 rejected" in capsys.readouterr().out
    assert cli(categories, "compile", "--check") == 0
    assert cli(categories, "compile") == 0
    assert "current, nothing to do" in capsys.readouterr().out
    assert cli(categories, "compile", "--force") == 0
    assert "compiled in" in capsys.readouterr().out


def test_lookup_names_every_line_and_the_winner(
    categories: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (categories.parent / "ads.txt").write_text("# ads\nx.bet.example\n", encoding="utf-8")
    categories.write_text(
        categories.read_text(encoding="utf-8")
        + "- path: ads.txt\n  format: plain\n  category: advertising\n"
        + PROVENANCE.replace("    ", "  "),
        encoding="utf-8",
    )
    assert cli(categories, "lookup", "https://www.x.bet.example/page") == 0
    out = capsys.readouterr().out.splitlines()
    folder = categories.parent
    assert out[0] == "www.x.bet.example/page: advertising (matched x.bet.example)"
    assert out[1].split() == ["won", "x.bet.example", "advertising"]
    assert out[2].split() == [f"{folder / 'ads.txt'}:2", "advertising", "[1]"]
    assert out[3].split() == ["bet.example", "gambling,", "games"]
    assert out[4].split() == [f"{folder / 'gambling.txt'}:2", "gambling", "[2]"]
    assert out[5].split() == [f"{folder / 'games.txt'}:1", "games", "[3]"]
    assert out[6] == "  [1] advertising: shared list; licence CC0; snapshot s1"
    assert cli(categories, "lookup", "x.bet.example", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["matched"] == "x.bet.example"
    assert [h["won"] for h in data["hits"]] == [True, False]
    assert data["hits"][1]["lines"][0] == {
        "file": str(folder / "gambling.txt"),
        "line": 2,
        "category": "gambling",
        "source": "shared list",
        "licence": "CC0",
        "snapshot": "s1",
    }
    assert cli(categories, "lookup", "nothing.example") == 0
    assert "nothing.example/: uncategorized" in capsys.readouterr().out
    assert cli(categories, "lookup", "bad..host") == 1


# --- progress ------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_only_on_a_terminal() -> None:
    pipe = io.StringIO()
    bar = Progress("reading", 100, stream=pipe)
    bar.update(50)
    bar.close(100)
    assert pipe.getvalue() == ""
    tty = Terminal()
    bar = Progress("reading", 200, stream=tty)
    bar.update(50)
    bar.update(60)  # within a tenth of a second: not redrawn
    bar.close(200)
    text = tty.getvalue()
    assert text.count("\r") == 2
    assert "[#######.......................]  25% 50 lines" in text
    assert text.endswith("100% 200 lines\x1b[K\n")


def test_progress_without_a_total_counts() -> None:
    tty = Terminal()
    bar = Progress("compiling", stream=tty)
    bar.update(1234, "compiling ut1/adult")
    bar.close()
    assert tty.getvalue() == "\rcompiling ut1/adult 1,234 lines\x1b[K\n"
