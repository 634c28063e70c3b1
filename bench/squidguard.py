"""squidGuard as the peer of `aupgate explain --batch`: the same URLs against the same UT1 lists.

squidGuard (Debian's /usr/bin/squidGuard) is the classic URL filter that Squid asks about each
request over stdin; it is the program an agency would otherwise replay its logs through. This
module gives it every UT1 list aupgate ships (`categories/ut1/*/domains.gz` and `urls.gz`),
decompressed into a private database directory and compiled to Berkeley DB files once (as
`squidGuard -C all` is run when lists are updated, so not timed), with one ACL that blocks every
list. `run` then times one `squidGuard` process deciding the URLs from its start: start-up
(opening the .db files) included, as aupgate's start-up is included in its own figure.

Used by `bench/decisions.py --batch`; nothing here is imported by aupgate.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import time
from pathlib import Path

__all__ = ["SQUIDGUARD", "prepare", "run"]

SQUIDGUARD = shutil.which("squidGuard") or "/usr/bin/squidGuard"
LISTS = ("domains", "urls")


def prepare(ut1: Path, home: Path) -> tuple[Path, int]:
    """Write squidGuard's database directory and configuration under `home` and compile the
    lists; returns the configuration file and how many list lines it was given."""
    db = home / "db"
    logs = home / "log"
    logs.mkdir(parents=True, exist_ok=True)
    dests: list[str] = []
    lines = 0
    for category in sorted(path.parent for path in ut1.glob("*/*.gz")):
        if category.name in dests:
            continue
        target = db / category.name
        target.mkdir(parents=True, exist_ok=True)
        for kind in LISTS:
            source = category / f"{kind}.gz"
            if source.exists():
                with gzip.open(source, "rb") as handle:
                    data = handle.read()
                (target / kind).write_bytes(data)
                lines += data.count(b"\n")
        dests.append(category.name)
    blocks = []
    for name in dests:
        entries = [f"    {kind[:-1]}list {name}/{kind}" for kind in LISTS
                   if (db / name / kind).exists()]
        blocks.append(f"dest {_ident(name)} {{\n" + "\n".join(entries) + "\n}\n")
    passing = " ".join(f"!{_ident(name)}" for name in dests)
    config = home / "squidGuard.conf"
    config.write_text(
        f"dbhome {db}\nlogdir {logs}\n\n" + "\n".join(blocks)
        + "\nacl {\n    default {\n"
        + f"        pass {passing} all\n"
        + "        redirect http://blocked.invalid/?url=%u\n    }\n}\n",
        encoding="utf-8",
    )
    compiled = subprocess.run([SQUIDGUARD, "-c", str(config), "-C", "all"],
                              capture_output=True, check=False, timeout=600)
    if compiled.returncode != 0:
        raise RuntimeError(f"squidGuard -C all failed: {compiled.stderr.decode()[-2000:]}")
    return config, lines


def run(config: Path, urls: list[str]) -> tuple[float, bytes]:
    """Seconds one squidGuard process takes from its start to its last answer on `urls`, and
    its output (one line per URL: empty or `OK` to pass, a redirect to block)."""
    stdin = "".join(f"{url} 10.0.0.1/- - GET\n" for url in urls).encode()
    started = time.perf_counter()
    done = subprocess.run([SQUIDGUARD, "-c", str(config)], input=stdin,
                          capture_output=True, check=False, timeout=3600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"squidGuard failed: {done.stderr.decode()[-2000:]}")
    return elapsed, done.stdout


def _ident(name: str) -> str:
    """A list's directory name as a squidGuard destination name (letters, digits, `_`)."""
    return "".join(c if c.isalnum() else "_" for c in name)
