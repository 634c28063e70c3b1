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


# --------------------------------------------------------------------------- dropping an agency


def add_agency(tree: Path, agency: str, cidr: str) -> Path:
    """A second agency, a copy of the lab's policy on its own network."""
    text = (tree / "policies" / "lab.yaml").read_text()
    text = text.replace("agency: lab", f"agency: {agency}").replace(
        'cidrs: [127.0.0.1/32, "::1/128"]', f"cidrs: [{cidr}]")
    path = tree / "policies" / f"{agency}.yaml"
    path.write_text(text)
    return path


def test_deleting_an_agency_in_force_is_refused(tree: Path) -> None:
    """Issue 12, item 10: a policy file deleted is not a valid reload; the agency stays."""
    other = add_agency(tree, "other", "10.99.0.0/16")
    gw = make(tree)
    before = gw.current
    other.unlink()
    [outcome] = gw.poll()
    assert not outcome.ok
    [problem] = outcome.errors
    assert problem.file == str(other) and problem.field == "agency"
    assert "agency 'other' is in force and its policy is gone" in problem.message
    assert "would fall to the default agency or be refused" in problem.message
    assert f"list 'other' in {tree / 'policies' / 'retired.txt'}" in problem.message
    assert gw.current is before
    assert gw.poll() == []  # not retried until the directory changes again


def test_renaming_an_agency_is_dropping_it(tree: Path) -> None:
    """`other` becomes `other2`: the old id is gone, which is refused like a deletion."""
    other = add_agency(tree, "other", "10.99.0.0/16")
    gw = make(tree)
    other.unlink()
    add_agency(tree, "other2", "10.99.0.0/16")
    [outcome] = gw.poll()
    assert not outcome.ok and "agency 'other' is in force" in str(outcome.errors[0])
    assert set(gw.current.policies.policies) == {"lab", "other"}


def test_dropping_the_default_agency_says_everyone_would_be_refused(tree: Path) -> None:
    other = add_agency(tree, "other", "10.99.0.0/16")
    gw = make(tree)
    gw.default_agency = "other"
    other.unlink()
    [outcome] = gw.poll()
    [problem] = outcome.errors
    assert "it is the default agency: every client outside the agencies' networks would be " \
           "refused" in problem.message


def test_retired_txt_is_the_explicit_yes(tree: Path) -> None:
    """Listing the agency in retired.txt (which is watched: adding it retries the reload)
    lets the reload through; a retired default agency is a warning on the reload."""
    other = add_agency(tree, "other", "10.99.0.0/16")
    gw = make(tree)
    gw.default_agency = "other"
    other.unlink()
    assert not gw.poll()[0].ok
    (tree / "policies" / "retired.txt").write_text(
        "# moved to its own gateway (ticket 4711)\nother   # since 2026-11-24\n")
    assert gw.check() == ["policies"]
    [outcome] = gw.poll()
    assert outcome.ok, outcome.problems
    assert set(gw.current.policies.policies) == {"lab"}
    [warning] = outcome.problems
    assert warning.severity == "warning"
    assert "the default agency 'other' is retired" in warning.message


def test_retired_txt_must_list_agency_ids(tree: Path) -> None:
    gw = make(tree)
    (tree / "policies" / "retired.txt").write_text("other\nNot An Id\n# fine\n")
    [outcome] = gw.poll()
    assert not outcome.ok
    assert [str(p) for p in outcome.errors] == [
        f"{tree / 'policies' / 'retired.txt'}:2: agency: 'Not An Id' is not an agency id "
        f"([a-z0-9-]+, one per line)"]


def test_adding_and_editing_agencies_needs_no_retirement(tree: Path) -> None:
    gw = make(tree)
    add_agency(tree, "other", "10.99.0.0/16")
    [outcome] = gw.poll()
    assert outcome.ok and set(gw.current.policies.policies) == {"lab", "other"}
