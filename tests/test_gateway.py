"""Hot reload: a valid edit swaps in whole, a broken one keeps the last good policy."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from aupgate.errors import PolicyError
from aupgate.gateway import Gateway

FIXTURES = Path(__file__).parent / "e2e" / "fixtures"


def today() -> date:
    return date(2026, 11, 24)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "policies", tmp_path / "policies")
    shutil.copytree(FIXTURES / "categories", tmp_path / "categories")
    return tmp_path


def make(tree: Path) -> Gateway:
    return Gateway(tree / "policies", tree / "categories" / "sources.yaml", today)


def bump(path: Path, text: str) -> None:
    """Write and move the mtime forward, so the change is seen even within one clock tick."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_loads_once(tree: Path) -> None:
    gw = make(tree)
    assert set(gw.current.policies.policies) == {"lab"}
    assert gw.current.index.classify("www.bet365.com").categories == ("gambling",)
    assert gw.check() == []
    assert gw.poll() == []


def test_broken_policy_at_start_raises(tree: Path) -> None:
    (tree / "policies" / "lab.yaml").write_text("agency: [")
    with pytest.raises(PolicyError):
        make(tree)


def test_valid_policy_edit_swaps(tree: Path) -> None:
    gw = make(tree)
    before = gw.current
    path = tree / "policies" / "lab.yaml"
    bump(path, path.read_text().replace("Test Laboratory Agency", "Renamed Agency"))
    assert gw.check() == ["policies"]
    [outcome] = gw.poll()
    assert outcome.ok and outcome.part == "policies"
    assert gw.current.policies.policies["lab"].name == "Renamed Agency"
    assert gw.current.index is before.index  # categories untouched
    assert gw.check() == []


def test_broken_policy_edit_keeps_last_good(tree: Path) -> None:
    """A typo in a category name is reported with file and line, and the old policy stays."""
    gw = make(tree)
    before = gw.current
    path = tree / "policies" / "lab.yaml"
    bump(path, path.read_text().replace("categories: [gambling]", "categories: [gamling]"))
    [outcome] = gw.poll()
    assert not outcome.ok
    assert any("gamling" in str(p) and "lab.yaml" in str(p) for p in outcome.errors)
    assert gw.current is before
    assert gw.poll() == []  # the broken file is not retried until it changes again


def test_touch_without_change_does_not_reload(tree: Path) -> None:
    gw = make(tree)
    before = gw.current
    path = tree / "policies" / "lab.yaml"
    bump(path, path.read_text())
    [outcome] = gw.poll()
    assert outcome.ok
    assert gw.current is before


def test_category_list_edit_swaps_index(tree: Path) -> None:
    gw = make(tree)
    bump(tree / "categories" / "gambling.txt", "bet365.com\npokerstars.com\n")
    assert gw.check() == ["categories"]
    [outcome] = gw.poll()
    assert outcome.ok and outcome.entries == 5
    assert gw.current.index.classify("pokerstars.com").categories == ("gambling",)


def test_broken_sources_keeps_index(tree: Path) -> None:
    gw = make(tree)
    before = gw.current
    bump(tree / "categories" / "sources.yaml", "sources: [{path: nope.txt}]\n")
    [outcome] = gw.poll()
    assert not outcome.ok and outcome.problems
    assert gw.current is before
