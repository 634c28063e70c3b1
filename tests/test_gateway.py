"""Hot reload: a valid edit swaps in whole, a broken one keeps the last good policy.

The compiled index file changed under the process (issue 12 item 5): the process answers from
its own verified copy of the file (`indexfile`), so truncating it, overwriting bytes or copying
another index over it changes no answer; the gateway notices the file is no longer the one it
read, refuses a bad one loudly (the index in force stays) and rebuilds it from the lists.
tests/e2e/test_index_file.py does the same through `aupgate run`.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from aupgate.categories.cache import check_index, load_index
from aupgate.categories.compiled import CompiledIndex, IndexFileError
from aupgate.categories.indexfile import read_verified
from aupgate.errors import PolicyError
from aupgate.gateway import Gateway

FIXTURES = Path(__file__).parent / "e2e" / "fixtures"
HOSTS = [f"h{i}.bet365.com" for i in range(50)]


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
# --- the index file changed under the process ---------------------------------------------------


def live(gw: Gateway) -> Path:
    index = gw.current.index
    assert isinstance(index, CompiledIndex)
    return index.path


def other_index(folder: Path) -> Path:
    """A valid index compiled from other lists (no gambling at all)."""
    folder.mkdir()
    (folder / "shop.txt").write_text("shop.example\n")
    sources = folder / "sources.yaml"
    sources.write_text(
        "sources:\n  - {path: shop.txt, format: plain, category: shopping, source: t, "
        "licence: t, snapshot: t}\n"
    )
    index, _ = load_index(sources)
    return index.path


def all_gambling(gw: Gateway) -> bool:
    index = gw.current.index
    return all(index.classify(h).categories == ("gambling",) for h in HOSTS)


def damage(path: Path, how: str, tmp: Path) -> None:
    if how == "other index copied over it":
        shutil.copyfile(other_index(tmp / "other"), path)  # in place: same inode
    elif how == "truncated":
        os.truncate(path, path.stat().st_size // 2)
    elif how == "bytes overwritten":
        with path.open("r+b") as f:
            f.seek(200)
            f.write(os.urandom(64))
    elif how == "garbage":
        path.write_bytes(os.urandom(4096))
    elif how == "deleted":
        path.unlink()


@pytest.mark.parametrize(
    "how", ["other index copied over it", "truncated", "bytes overwritten", "garbage"]
)
def test_a_damaged_or_foreign_index_file_changes_no_answer_and_is_refused_then_rebuilt(
    tree: Path, tmp_path: Path, how: str
) -> None:
    gw = make(tree)
    in_force = gw.current.index
    path = live(gw)
    assert all_gambling(gw)
    damage(path, how, tmp_path)
    assert all_gambling(gw)  # nothing done to the file reaches the copy in force
    assert gw.check() == ["categories"]
    refused, rebuilt = gw.poll()
    assert not refused.ok and refused.part == "categories"
    [problem] = refused.problems
    assert problem.file == str(path) and "it was NOT used" in problem.message
    if how == "other index copied over it":
        assert "compiled from other lists" in problem.message
    else:
        assert "damaged or replaced" in problem.message
    assert rebuilt.ok
    assert check_index(tree / "categories" / "sources.yaml").state == "current"
    assert all_gambling(gw)
    assert gw.current.index is in_force  # the rebuilt file has the same content: nothing swapped
    assert gw.check() == []


def test_a_deleted_index_file_is_rebuilt_with_a_warning(tree: Path, tmp_path: Path) -> None:
    gw = make(tree)
    path = live(gw)
    damage(path, "deleted", tmp_path)
    assert all_gambling(gw)
    [outcome] = gw.poll()
    assert outcome.ok and "deleted" in outcome.problems[0].message
    assert path.is_file() and gw.check() == []


def test_a_good_replacement_compiled_from_the_same_lists_is_adopted(tree: Path) -> None:
    gw = make(tree)
    path = live(gw)
    copy = path.with_name("copy.aupidx")
    shutil.copyfile(path, copy)
    os.replace(copy, path)  # the same bytes, another file: an administrator's recompile
    assert gw.check() == ["categories"]
    assert gw.poll() == []  # adopted silently: the same content is already in force
    assert gw.check() == []


def test_when_nothing_can_be_rebuilt_the_index_in_force_stays(tree: Path) -> None:
    gw = make(tree)
    os.truncate(live(gw), 100)
    (tree / "categories" / "gambling.txt").unlink()  # and the lists cannot be read either
    outcomes = gw.poll()
    assert outcomes and not any(o.ok for o in outcomes)
    assert all_gambling(gw)


def test_provenance_is_read_only_from_the_file_that_was_verified(tree: Path) -> None:
    """`origins` re-reads the file for the provenance; a changed file is refused, not read."""
    gw = make(tree)
    index = gw.current.index
    assert isinstance(index, CompiledIndex)
    with index.path.open("r+b") as f:
        f.seek(index.path.stat().st_size - 10)
        f.write(b"X")
    with pytest.raises(IndexFileError):
        index.origins(index.matches("bet365.com")[0].entry)
    with pytest.raises(IndexFileError, match="checksum mismatch"):
        read_verified(index.path)
