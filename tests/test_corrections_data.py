"""categories/aupgate/corrections.yaml: well formed, every correction live, meaning as documented.

The proxy does not apply corrections yet (the index code follows the package restructuring); until
then this holds the data file to its format and to the shipped lists, through the reference
reading in bench/coverage/corrections.py that the coverage benchmark previews them with, so the
file cannot rot while it waits: a typo, an unknown category, a missing reason or an entry the
lists no longer carry fails here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from aupgate import CATEGORY_IDS, CategoryIndex, load_index
from aupgate.categories.loadreport import LoadReport

ROOT = Path(__file__).resolve().parents[1]
CORRECTIONS = ROOT / "categories" / "aupgate" / "corrections.yaml"


def _preview() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "coverage_corrections", ROOT / "bench" / "coverage" / "corrections.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["coverage_corrections"] = module
    spec.loader.exec_module(module)
    return module


preview = _preview()


@pytest.fixture(scope="module")
def shipped() -> tuple[CategoryIndex, LoadReport]:
    return load_index(ROOT / "categories" / "sources.yaml")


@pytest.fixture(scope="module")
def corrected(shipped: tuple[CategoryIndex, LoadReport]) -> object:
    return preview.CorrectedIndex(shipped[0], preview.read_corrections(CORRECTIONS, CATEGORY_IDS))


def test_every_correction_is_well_formed_and_has_a_reason() -> None:
    corrections = preview.read_corrections(CORRECTIONS, CATEGORY_IDS)
    assert len(corrections) > 100
    assert all(c.reason and c.source in CATEGORY_IDS for c in corrections)
    assert all(c.target is None or c.target in CATEGORY_IDS for c in corrections)


def test_every_correction_changes_something_in_the_shipped_lists(
    shipped: tuple[CategoryIndex, LoadReport],
) -> None:
    """A correction whose entry the lists no longer carry under `from` is stale: remove it."""
    corrections = preview.read_corrections(CORRECTIONS, CATEGORY_IDS)
    assert [str(c.scope) for c in preview.stale(shipped[0], corrections)] == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("corrections:\n  - entries: [a.example]\n    from: adult\n", "missing 'reason'"),
        ("corrections:\n  - entries: [a.example]\n    from: adlt\n    reason: r\n", "unknown"),
        (
            "corrections:\n  - entries: [a.example]\n    from: adult\n    to: adult\n"
            "    reason: r\n",
            "other than 'from'",
        ),
        ("corrections:\n  - entries: [a.example]\n    from: adult\n    reason: '  '\n", "text"),
        ("corrections:\n  - entry: a.example\n    from: adult\n    reason: r\n", "keys"),
        (
            "corrections:\n  - entries: [a.example]\n    from: adult\n    reason: r\n"
            "  - entries: [A.Example.]\n    from: adult\n    reason: s\n",
            "already corrected",
        ),
        ("fixes: []\n", "one key 'corrections'"),
    ],
)
def test_malformed_files_are_refused_naming_the_line(
    tmp_path: Path, bad: str, message: str
) -> None:
    target = tmp_path / "corrections.yaml"
    target.write_text(bad, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as raised:
        preview.read_corrections(target, CATEGORY_IDS)
    assert str(target) in str(raised.value)


@pytest.mark.parametrize(
    ("host", "path", "shipped_has", "corrected_categories"),
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
    corrected: object,
    host: str,
    path: str,
    shipped_has: str,
    corrected_categories: tuple[str, ...],
) -> None:
    assert shipped_has in shipped[0].classify(host, path).all_categories
    assert corrected.classify(host, path).categories == corrected_categories  # type: ignore[attr-defined]
