"""categories/aupgate/corrections.yaml as shipped: applied by the index, every correction live.

The shipped index applies the corrections sources.yaml names (`categories/corrections.py`).
`bench/coverage/corrections.py` is the data half's independent reading of the same file; these
tests hold the index to it and to the documented examples, on the shipped lists, so the file
cannot rot: a correction the lists no longer need, or a meaning the code gets wrong, fails here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from aupgate import CATEGORY_IDS, CategoryIndex, load_index
from aupgate.categories.corrections import stale_corrections
from aupgate.categories.loadreport import LoadReport

ROOT = Path(__file__).resolve().parents[1]
CORRECTIONS = ROOT / "categories" / "aupgate" / "corrections.yaml"


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "coverage_corrections", ROOT / "bench" / "coverage" / "corrections.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["coverage_corrections"] = module
    spec.loader.exec_module(module)
    return module


reference = _reference()


@pytest.fixture(scope="module")
def shipped() -> tuple[CategoryIndex, LoadReport]:
    return load_index(ROOT / "categories" / "sources.yaml")


class _Uncorrected:
    """The shipped index as the lists give it, for the reference reading to correct itself."""

    def __init__(self, index: CategoryIndex) -> None:
        self.index = index

    def matches(self, host: str, path: str = "/") -> object:
        return self.index.list_matches(host, path)

    def classify(self, host: str, path: str = "/") -> object:
        from aupgate.categories.index import classification_of

        return classification_of(self.index.list_matches(host, path))


def test_the_shipped_index_applies_every_correction_of_the_file(
    shipped: tuple[CategoryIndex, LoadReport],
) -> None:
    corrections = reference.read_corrections(CORRECTIONS, CATEGORY_IDS)
    assert len(corrections) > 100
    applied = shipped[0].corrections
    assert [(str(c.scope), c.source, c.target, c.reason) for c in applied.items] == [
        (str(c.scope), c.source, c.target, " ".join(c.reason.split())) for c in corrections
    ]


def test_every_correction_changes_something_in_the_shipped_lists(
    shipped: tuple[CategoryIndex, LoadReport],
) -> None:
    """A correction whose entry the lists no longer carry under `from` is stale: remove it."""
    index = shipped[0]
    assert [str(c.scope) for c in stale_corrections(index.corrections, index)] == []
    assert not [p for p in shipped[1].problems if "stale correction" in p.message]


@pytest.mark.parametrize(
    ("host", "path", "listed_as", "corrected_categories"),
    [
        # a publisher's torrents listed it as P2P; its trackers (more specific) stay P2P
        ("archive.org", "/details/texts", "p2p-file-sharing", ()),
        ("bt1.archive.org", "/announce", "p2p-file-sharing", ("p2p-file-sharing",)),
        # recategorised: remote-control list -> web conferencing
        ("www.webex.com", "/", "remote-access", ("web-conferencing",)),
        # a carve-out under a broader entry: AWS is not the amazon.com shop, the shop still is
        ("console.aws.amazon.com", "/", "shopping", ()),
        ("www.amazon.com", "/", "shopping", ("shopping",)),
        # a URL-prefix carve-out outranks a more specific host entry (www.linkedin.com)
        ("www.linkedin.com", "/learning/", "social-networking", ()),
        ("www.linkedin.com", "/feed/", "social-networking", ("social-networking",)),
        # subdomains: every listed WhatsApp host becomes a messenger
        ("mmg.whatsapp.net", "/", "social-networking", ("instant-messaging",)),
        ("web.whatsapp.com", "/", "social-networking", ("instant-messaging",)),
        # a file host is not adult; it stays a file host
        ("www.mediafire.com", "/file/abc", "adult", ("file-hosting",)),
        # betting pools are gambling, not games
        ("www.runyourpool.com", "/", "games", ("gambling",)),
    ],
)
def test_corrections_mean_what_the_file_says(
    shipped: tuple[CategoryIndex, LoadReport],
    host: str,
    path: str,
    listed_as: str,
    corrected_categories: tuple[str, ...],
) -> None:
    index = shipped[0]
    listed = {c for hit in index.list_matches(host, path) for c in hit.categories}
    assert listed_as in listed
    assert index.classify(host, path).categories == corrected_categories
    assert (
        listed_as not in index.classify(host, path).categories or listed_as in corrected_categories
    )


def test_the_index_agrees_with_the_reference_reading_on_every_corrected_entry(
    shipped: tuple[CategoryIndex, LoadReport],
) -> None:
    """On each correction's own entry, a subdomain of it and a path under it, the index's answer
    is the reference implementation's (bench/coverage/corrections.py) over the same lists."""
    index = shipped[0]
    corrections = reference.read_corrections(CORRECTIONS, CATEGORY_IDS)
    preview = reference.CorrectedIndex(_Uncorrected(index), corrections)
    disagree = []
    for c in corrections:
        for host, path in (
            (c.scope.host, c.scope.path or "/"),
            ("www." + c.scope.host, c.scope.path or "/"),
            (c.scope.host, (c.scope.path or "") + "/x"),
        ):
            mine, theirs = index.classify(host, path), preview.classify(host, path)
            if (mine.categories, mine.all_categories) != (theirs.categories, theirs.all_categories):
                disagree.append((host, path, mine, theirs))
    assert disagree == []
