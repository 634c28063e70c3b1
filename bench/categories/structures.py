"""Which structure for the compiled index: the measurement behind the choice of a MARISA trie.

Three candidates, each a read-only file mapped with mmap, each answering the question a request
asks ("which listed domains is this host on, on label boundaries?") for N synthetic domains:

- `marisa`: reversed hosts with a trailing dot in a marisa-trie, one `iter_prefixes_with_ids`
  call per request, a uint16 class per key in a second array;
- `hash`: an open-addressing hash table (crc32, linear probing) of every entry and every parent of
  an entry, probed from the top label down in Python, stopping at the first unknown suffix (the
  `ListIndex` algorithm on bytes instead of dicts);
- `sorted`: the reversed keys sorted in one blob with an offset array, searched with `bisect` in
  Python (a `__getitem__` per comparison).

Prints build time, file size, open time and lookups per second on one core for a mix of listed
hosts, deep subdomains of them and misses. The files live in a temporary folder, deleted after.

Usage: .venv/bin/python bench/categories/structures.py [--domains 5000000] [--queries 200000]
"""

from __future__ import annotations

import argparse
import array
import bisect
import mmap
import random
import shutil
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import marisa_trie  # type: ignore[import-not-found, import-untyped, unused-ignore]

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth

EMPTY = 0xFFFFFFFF


def build_marisa(domains: list[str], folder: Path) -> Callable[[], Callable[[str], bool]]:
    keys = [d[::-1] + "." for d in domains]
    trie = marisa_trie.Trie(keys)
    values = array.array("H", bytes(2 * len(keys)))
    for i, key in enumerate(keys):
        values[trie.key_id(key)] = 1 + i % 17
    (folder / "m.trie").write_bytes(trie.tobytes())
    (folder / "m.values").write_bytes(values.tobytes())

    def open_() -> Callable[[str], bool]:
        with (folder / "m.trie").open("rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        with (folder / "m.values").open("rb") as f:
            vmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        t = marisa_trie.Trie()
        t.map(memoryview(mapped))
        vals = memoryview(vmap).cast("H")

        def lookup(host: str, _keep: object = (mapped, vmap)) -> bool:
            # _keep: marisa maps the buffer without holding a reference to it
            last = -1
            for _key, last in t.iter_prefixes_with_ids(host[::-1] + "."):  # noqa: B007
                pass
            return last >= 0 and vals[last] > 0

        return lookup

    return open_


def build_hash(domains: list[str], folder: Path) -> Callable[[], Callable[[str], bool]]:
    keys: dict[str, int] = {}
    for d in domains:
        keys[d] = 1
        dot = d.find(".")
        while dot >= 0:
            d = d[dot + 1 :]
            if d in keys:
                break
            keys[d] = 0
            dot = d.find(".")
    size = 1
    while size < len(keys) * 1.5:
        size *= 2
    blob = bytearray()
    slots = array.array("I", [EMPTY]) * size
    for key, value in keys.items():
        raw = key.encode()
        offset = len(blob)
        blob += bytes([len(raw), value]) + raw
        h = zlib.crc32(raw) & (size - 1)
        while slots[h] != EMPTY:
            h = (h + 1) & (size - 1)
        slots[h] = offset
    (folder / "h.bin").write_bytes(struct.pack("<Q", size) + slots.tobytes() + blob)

    def open_() -> Callable[[str], bool]:
        with (folder / "h.bin").open("rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        n = struct.unpack_from("<Q", mm)[0]
        table = memoryview(mm)[8 : 8 + 4 * n].cast("I")
        base, mask, crc = 8 + 4 * n, n - 1, zlib.crc32

        def get(raw: bytes) -> int | None:
            h = crc(raw) & mask
            while True:
                offset = table[h]
                if offset == EMPTY:
                    return None
                at = base + offset
                length = mm[at]
                if mm[at + 2 : at + 2 + length] == raw:
                    return mm[at + 1]
                h = (h + 1) & mask

        def lookup(host: str) -> bool:
            raw = host.encode()
            found = False
            dot = raw.rfind(b".")
            while True:
                value = get(raw[dot + 1 :])
                if value is None:
                    return found
                found = found or bool(value)
                if dot < 0:
                    return found
                dot = raw.rfind(b".", 0, dot)

        return lookup

    return open_


def build_sorted(domains: list[str], folder: Path) -> Callable[[], Callable[[str], bool]]:
    keys = sorted((d[::-1] + ".").encode() for d in domains)
    offsets = array.array("I")
    blob = bytearray()
    for key in keys:
        offsets.append(len(blob))
        blob += key
    offsets.append(len(blob))
    (folder / "s.blob").write_bytes(bytes(blob))
    (folder / "s.offsets").write_bytes(offsets.tobytes())

    def open_() -> Callable[[str], bool]:
        with (folder / "s.blob").open("rb") as f:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        with (folder / "s.offsets").open("rb") as f:
            omap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        offs = memoryview(omap).cast("I")

        class Keys:
            def __len__(self) -> int:
                return len(offs) - 1

            def __getitem__(self, i: int) -> bytes:
                return data[offs[i] : offs[i + 1]]

        seq = Keys()
        count = len(seq)

        def lookup(host: str) -> bool:
            query = (host[::-1] + ".").encode()
            high = count
            while query:
                i = bisect.bisect_right(seq, query, 0, high) - 1  # type: ignore[call-overload]
                if i < 0:
                    return False
                key = seq[i]
                if query.startswith(key):
                    return True
                common = 0
                for a, b in zip(key, query, strict=False):
                    if a != b:
                        break
                    common += 1
                cut = query.rfind(b".", 0, common)
                query = query[: cut + 1] if cut >= 0 else b""
                high = i
            return False

        return lookup

    return open_


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=5_000_000)
    parser.add_argument("--queries", type=int, default=200_000)
    args = parser.parse_args()
    domains = list(synth.domains(args.domains, seed=1))
    rng = random.Random(3)
    queries = []
    for _ in range(args.queries):
        roll = rng.random()
        if roll < 0.4:
            queries.append(rng.choice(domains))
        elif roll < 0.7:
            queries.append(f"a{rng.randrange(99)}.b{rng.randrange(99)}.{rng.choice(domains)}")
        else:
            queries.append(f"miss{rng.randrange(10**6)}.example{rng.randrange(50)}.com")
    folder = Path(tempfile.mkdtemp(prefix="aupgate-structures-"))
    try:
        print(f"{'structure':<8} {'build s':>8} {'file MiB':>9} {'open ms':>8} {'lookups/s':>11}")
        for name, build in (
            ("marisa", build_marisa),
            ("hash", build_hash),
            ("sorted", build_sorted),
        ):
            started = time.perf_counter()
            opener = build(domains, folder)
            built = time.perf_counter() - started
            size = sum(p.stat().st_size for p in folder.iterdir() if p.name[0] == name[0])
            started = time.perf_counter()
            lookup = opener()
            opened = time.perf_counter() - started
            sample = queries if name != "sorted" else queries[: len(queries) // 4]
            started = time.perf_counter()
            hits = sum(lookup(q) for q in sample)
            rate = len(sample) / (time.perf_counter() - started)
            print(
                f"{name:<8} {built:>8.1f} {size / 2**20:>9.0f} {opened * 1000:>8.2f} "
                f"{rate:>11,.0f}   ({hits / len(sample):.0%} hits)"
            )
    finally:
        shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
