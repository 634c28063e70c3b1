"""Copy the category lists aupgate ships from the shared data folder into `categories/`.

The proxy must carry everything it needs at run time, so the third-party lists are copied into the
repository (byte for byte: UT1's gzip files stay gzip files, so anyone can check them against the
upstream snapshot) together with their attribution and licence texts, and `categories/sources.yaml`
is written to say which list feeds which aupgate category and where it came from.

The project's own hand-curated lists (`categories/aupgate/*.txt`) live in the repository already;
this tool only lists them in `sources.yaml` and checks that they exist.

Run from the repository root (build time only; nothing reads the shared folder at run time):

    .venv/bin/python tools/build_categories.py --shared ../shared/data --out categories
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from aupgate.categories.cache import load_index
from aupgate.categories.ids import CATEGORY_IDS
from aupgate.categories.ut1 import UT1_MAP
from aupgate.errors import CategoryError

UT1_DIR = "categories-ut1"
UT1_COMMIT = "804da92a9177149204d9a3d0c4ab5bd1cafe120d"
UT1_OLD_COMMIT = "c6387984350c74578d8bd9cb85ce6b828229a55b"
UT1_SOURCE = (
    "UT1 blacklists, Université Toulouse Capitole (https://dsi.ut-capitole.fr/blacklists/), "
    "via the olbat/ut1-blacklists mirror"
)
UT1_LICENCE = "CC BY-SA 4.0 (recategorised by aupgate; see ut1/ATTRIBUTION.txt and README.md)"
UT1_SNAPSHOT = f"olbat/ut1-blacklists {UT1_COMMIT[:7]} (2026-08-17)"
UT1_OLD_SNAPSHOT = (
    f"urls: olbat/ut1-blacklists {UT1_COMMIT[:7]} (2026-08-17); "
    f"domains: {UT1_OLD_COMMIT[:7]} (2025-07-13)"
)
# The README and catalogue travel with the lists: they explain layout, quirks and overlaps.
UT1_EXTRA_FILES = ("ATTRIBUTION.txt", "README.md", "global_usage.txt")

# UT1 folder -> aupgate category: aupgate.ut1.UT1_MAP (docs/categories.md gives the reasons).
# Folders whose domains file comes from the older snapshot (see ut1/ATTRIBUTION.txt).
UT1_OLD_DOMAINS = frozenset({"malware", "phishing"})

BLP_DIR = "blocklistproject"
BLP_FILES = ("torrent.txt", "ATTRIBUTION.txt", "LICENSE.txt")
BLP_COMMIT = "ee3bdbaddf49c756cf3340bb2e6a9dee5282d1c6"

# Sinfonietta's hosts files (MIT). snuff-hosts is not shipped: 23 names with no category a policy
# clause needs, mixing gore sites with file hosts and a news blog (categories/README.md).
SINFONIETTA_DIR = "sinfonietta"
SINFONIETTA_COMMIT = "62631ce2ee373595bbc187623aa5bb7f7a1ad534"
SINFONIETTA_EXTRA_FILES = ("ATTRIBUTION.txt", "LICENSE", "README.md")
SINFONIETTA_LISTS: tuple[tuple[str, str], ...] = (
    ("pornography-hosts", "adult"),
    ("gambling-hosts", "gambling"),
    ("social-hosts", "social-networking"),
)

PROJECT_SOURCE = "aupgate project, hand-curated (each entry group names its service)"
PROJECT_LICENCE = "Apache-2.0 (part of aupgate)"
PROJECT_SNAPSHOT = "maintained in this repository"
PROJECT_LISTS: tuple[tuple[str, str], ...] = (
    ("aupgate/social-networking.txt", "social-networking"),
    ("aupgate/blogs-forums.txt", "blogs-forums"),
    ("aupgate/webmail.txt", "webmail"),
    ("aupgate/gambling.txt", "gambling"),
    ("aupgate/p2p-file-sharing.txt", "p2p-file-sharing"),
    ("aupgate/streaming-radio.txt", "streaming-radio"),
    ("aupgate/streaming-video.txt", "streaming-video"),
    ("aupgate/instant-messaging.txt", "instant-messaging"),
    ("aupgate/voip.txt", "voip"),
    ("aupgate/web-conferencing.txt", "web-conferencing"),
    ("aupgate/file-hosting.txt", "file-hosting"),
    ("aupgate/software-downloads.txt", "software-downloads"),
    ("aupgate/shopping.txt", "shopping"),
    ("aupgate/classifieds-selling.txt", "classifieds-selling"),
    ("aupgate/fundraising.txt", "fundraising"),
    ("aupgate/tunnel-hosting.txt", "tunnel-hosting"),
    ("aupgate/banking.txt", "banking"),
    ("aupgate/health.txt", "health"),
)

SOURCES_HEADER = """\
# Which list feeds which aupgate category, and where each list came from.
# Written by tools/build_categories.py; paths are relative to this folder.
# Keys: path, format (ut1 | plain | hosts), category (see docs/categories.md),
# source, licence, snapshot. Unknown keys and unknown categories are errors.
# corrections: aupgate's corrections to the third-party lists, each with its reason.
"""
CORRECTIONS = "aupgate/corrections.yaml"


@dataclass(frozen=True, slots=True)
class Source:
    """One line of sources.yaml: a list and where it came from."""

    path: str
    format: str
    category: str
    source: str
    licence: str
    snapshot: str


class BuildError(Exception):
    """The shared data is not what this tool was written for."""


def check_attribution(shared: Path) -> None:
    """Refuse a data drop whose attribution names other snapshots than the ones we record.

    The provenance in sources.yaml is written from constants here; if the data were refreshed
    without updating them, sources.yaml would lie.
    """
    ut1 = (shared / UT1_DIR / "ATTRIBUTION.txt").read_text(encoding="utf-8")
    blp = (shared / BLP_DIR / "ATTRIBUTION.txt").read_text(encoding="utf-8")
    sinf = (shared / SINFONIETTA_DIR / "ATTRIBUTION.txt").read_text(encoding="utf-8")
    for text, commit, name in (
        (ut1, UT1_COMMIT, "UT1"),
        (ut1, UT1_OLD_COMMIT, "UT1 malware/phishing"),
        (blp, BLP_COMMIT, "blocklistproject"),
        (sinf, SINFONIETTA_COMMIT, "sinfonietta"),
    ):
        if commit not in text:
            raise BuildError(f"{name} attribution does not name snapshot {commit}; update the tool")


def check_ut1_folders(shared: Path) -> None:
    """Every UT1 folder in the data must be mapped, and every mapped folder must be there."""
    present = {p.name for p in (shared / UT1_DIR).iterdir() if p.is_dir()}
    mapped = {folder for folder, _ in UT1_MAP}
    if missing := sorted(mapped - present):
        raise BuildError(f"UT1 folders missing from the data: {', '.join(missing)}")
    if unmapped := sorted(present - mapped):
        raise BuildError(f"UT1 folders with no aupgate category: {', '.join(unmapped)}")


def copy_ut1(shared: Path, out: Path) -> list[Source]:
    """Copy every mapped UT1 folder's list files and the attribution, unchanged."""
    src_root, dst_root = shared / UT1_DIR, out / "ut1"
    sources = []
    for folder, category in UT1_MAP:
        dst = dst_root / folder
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted((src_root / folder).iterdir()):
            shutil.copyfile(f, dst / f.name)
        snapshot = UT1_OLD_SNAPSHOT if folder in UT1_OLD_DOMAINS else UT1_SNAPSHOT
        sources.append(Source(f"ut1/{folder}", "ut1", category, UT1_SOURCE, UT1_LICENCE, snapshot))
    for name in UT1_EXTRA_FILES:
        shutil.copyfile(src_root / name, dst_root / name)
    return sources


def copy_blocklistproject(shared: Path, out: Path) -> list[Source]:
    """Copy the Block List Project torrent list with its attribution and licence."""
    dst = out / BLP_DIR
    dst.mkdir(parents=True, exist_ok=True)
    for name in BLP_FILES:
        shutil.copyfile(shared / BLP_DIR / name, dst / name)
    return [
        Source(
            f"{BLP_DIR}/torrent.txt",
            "plain",
            "p2p-file-sharing",
            "The Block List Project, github.com/blocklistproject/Lists, alt-version/torrent-nl.txt",
            "Unlicense (public domain; see blocklistproject/LICENSE.txt)",
            f"{BLP_COMMIT[:7]} (2026-07-20)",
        )
    ]


def copy_sinfonietta(shared: Path, out: Path) -> list[Source]:
    """Copy Sinfonietta's pornography, gambling and social hosts files with attribution and
    licence, unchanged (the MIT licence asks that its notice travel with the copies)."""
    dst = out / SINFONIETTA_DIR
    dst.mkdir(parents=True, exist_ok=True)
    for name in (*(name for name, _ in SINFONIETTA_LISTS), *SINFONIETTA_EXTRA_FILES):
        shutil.copyfile(shared / SINFONIETTA_DIR / name, dst / name)
    return [
        Source(
            f"{SINFONIETTA_DIR}/{name}",
            "hosts",
            category,
            f"Sinfonietta hostfiles (https://github.com/Sinfonietta/hostfiles), {name}",
            "MIT, copyright 2016 Sinfonietta (see sinfonietta/LICENSE)",
            f"{SINFONIETTA_COMMIT[:7]} (2026-04-23)",
        )
        for name, category in SINFONIETTA_LISTS
    ]


def project_lists(out: Path) -> list[Source]:
    """The lists aupgate authors itself; they must already exist in the repository."""
    missing = [rel for rel, _ in PROJECT_LISTS if not (out / rel).is_file()]
    if missing:
        raise BuildError(f"project lists missing from {out}: {', '.join(missing)}")
    return [
        Source(rel, "plain", category, PROJECT_SOURCE, PROJECT_LICENCE, PROJECT_SNAPSHOT)
        for rel, category in PROJECT_LISTS
    ]


def write_sources(out: Path, sources: Sequence[Source]) -> Path:
    """Write sources.yaml in CATEGORY_IDS order, so a reader finds a category's lists together."""
    ordered = sorted(sources, key=lambda s: CATEGORY_IDS.index(s.category))
    document: dict[str, object] = {}
    if (out / CORRECTIONS).is_file():
        document["corrections"] = CORRECTIONS
    document["sources"] = [_as_dict(s) for s in ordered]
    body = yaml.safe_dump(
        document,
        sort_keys=False,
        allow_unicode=True,
        width=200,
    )
    target = out / "sources.yaml"
    target.write_text(SOURCES_HEADER + body, encoding="utf-8")
    return target


def _as_dict(source: Source) -> dict[str, str]:
    return {
        "path": source.path,
        "format": source.format,
        "category": source.category,
        "source": source.source,
        "licence": source.licence,
        "snapshot": source.snapshot,
    }


def build(shared: Path, out: Path) -> Path:
    """Copy everything and write sources.yaml; returns its path."""
    check_attribution(shared)
    check_ut1_folders(shared)
    out.mkdir(parents=True, exist_ok=True)
    sources = (
        copy_ut1(shared, out)
        + copy_blocklistproject(shared, out)
        + copy_sinfonietta(shared, out)
        + project_lists(out)
    )
    return write_sources(out, sources)


def main(argv: Sequence[str] | None = None) -> int:
    """Build, then load the result once so a broken list fails the build, not the proxy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--shared", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--out", type=Path, required=True, help="the categories folder to write")
    args = parser.parse_args(argv)
    try:
        sources_file = build(args.shared, args.out)
        _, report = load_index(sources_file)
    except (BuildError, CategoryError, OSError) as e:
        print(f"build_categories: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
