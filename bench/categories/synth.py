"""A synthetic category list set of N million domains beside the shipped lists, for the bench.

Shaped like the real thing: most entries in one huge UT1-style folder (UT1's adult list alone is
4.6 million domains), the rest spread over a malware folder, a hosts file, an adblock list and a
plain list, each with a few malformed lines, some URL-prefix entries and some subdomain entries.
Names are unique by construction (one of 50,000 distinct letters-only labels, then a decimal
number), so no set of five million strings is needed to deduplicate them. The shipped lists are
referenced through a symlink, so the sources.yaml here names both.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from pathlib import Path

SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ra",
    "to",
    "bu",
    "shi",
    "zen",
    "tor",
    "vel",
    "qua",
    "ix",
    "om",
    "pre",
    "dex",
    "lin",
    "mar",
    "sol",
    "ty",
    "go",
    "bet",
    "cam",
    "pix",
    "web",
    "net",
    "hub",
    "zone",
    "shop",
    "play",
    "cash",
    "win",
    "star",
    "blue",
    "red",
    "max",
    "top",
    "fun",
    "club",
    "live",
    "hot",
    "deal",
]
TLDS = (
    ["com"] * 40
    + ["net"] * 10
    + ["org"] * 6
    + ["de"] * 5
    + ["ru"] * 5
    + ["fr"] * 4
    + [
        "info",
        "info",
        "xyz",
        "xyz",
        "co.uk",
        "co.uk",
        "com.br",
        "nl",
        "pl",
        "it",
        "es",
        "io",
        "top",
        "online",
        "site",
        "cn",
    ]
)
PROVENANCE = (
    "  source: synthetic (bench/categories)\n  licence: none (generated)\n  snapshot: generated\n"
)

# (relative path, format, category, share of the domains)
LISTS = (
    ("synth/adult", "ut1", "adult", 0.62),
    ("synth/malware", "ut1", "malware-phishing", 0.22),
    ("synth/ads.hosts", "hosts", "advertising", 0.08),
    ("synth/easylist.txt", "adblock", "advertising", 0.04),
    ("synth/shopping.txt", "plain", "shopping", 0.04),
)


def domains(n: int, seed: int) -> Iterator[str]:
    """n distinct domain names; about a quarter are subdomains (`www.`, `cdn3.`)."""
    rng = random.Random(seed)
    labels: set[str] = set()
    while len(labels) < 50_000:
        labels.add("".join(rng.choices(SYLLABLES, k=rng.randrange(2, 5))))
    pool = sorted(labels)
    rng.shuffle(pool)
    prefixes = ["www.", "cdn.", "m.", "img.", "api."] + [""] * 15
    for i in range(n):
        yield f"{rng.choice(prefixes)}{pool[i % 50_000]}{i // 50_000}.{rng.choice(TLDS)}"


def build(folder: Path, shipped_sources: Path, total: int, seed: int = 1) -> tuple[Path, list[str]]:
    """Write the list set and its sources.yaml; return it and a sample of listed hosts."""
    (folder / "shipped").symlink_to(shipped_sources.parent.resolve())
    rng = random.Random(seed)
    names = domains(total, seed)
    sample: list[str] = []
    for path, fmt, _category, share in LISTS:
        count = int(total * share)
        chunk = [next(names) for _ in range(count)]
        sample += rng.sample(chunk, min(len(chunk), 20_000))
        _write(folder / path, fmt, chunk, rng)
    shipped = shipped_sources.read_text(encoding="utf-8")
    items = shipped.split("sources:\n", 1)[1].replace("- path: ", "- path: shipped/")
    ours = "".join(
        f"- path: {path}\n  format: {fmt}\n  category: {category}\n{PROVENANCE}"
        for path, fmt, category, _ in LISTS
    )
    sources = folder / "sources.yaml"
    sources.write_text("sources:\n" + items + ours, encoding="utf-8")
    return sources, sample


def _write(target: Path, fmt: str, chunk: list[str], rng: random.Random) -> None:
    """One list in its format, with a few malformed lines as real lists have."""
    bad = ["bad host.example", "odd..example", "-", "http://"]
    if fmt == "ut1":
        target.mkdir(parents=True)
        lines = chunk + bad
        urls = [
            f"{rng.choice(chunk)}/{rng.choice(SYLLABLES)}/{i}" for i in range(len(chunk) // 200)
        ]
        _gz(target / "domains.gz", lines)
        _gz(target / "urls.gz", urls)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "hosts":
        lines = [f"0.0.0.0 {d}" for d in chunk] + ["127.0.0.1 localhost", "0.0.0.0"]
    elif fmt == "adblock":
        lines = ["[Adblock Plus 2.0]", "! synthetic"] + [f"||{d}^" for d in chunk]
        lines += [f"{d}##.ad" for d in chunk[:1000]] + ["@@||ok.example^", "||bad..example^"]
    else:
        lines = chunk + bad
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _gz(target: Path, lines: list[str]) -> None:
    with gzip.open(target, "wt", encoding="utf-8", compresslevel=3) as f:
        f.write("\n".join(lines) + "\n")
