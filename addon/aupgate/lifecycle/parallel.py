"""Reading a large file as blocks of whole lines, and working on the blocks in several processes
with the results handed back in input order.

Replay (`explain --batch`, `diff --replay`) is CPU-bound and its blocks independent, so it uses
every core: worker processes are forked once the policies and the category index are loaded
(they share the memory-mapped index and inherit the policies), each takes whole blocks, and the
parent writes their answers in the order the blocks were read. At most a few blocks per worker
are in flight, so memory stays bounded however large the input (a month of audit log).

Python's cyclic garbage collector does not run while blocks are decided: deciding allocates
hundreds of thousands of small containers a second, most of them kept in the bounded memos, and
the collector, triggered by allocation counts, walked those memos again and again, a third of
replay's time. Deciding makes no reference cycles (`tests/test_replay_gc.py` holds every block
worker to that), so reference counting frees all its garbage: the start-up's garbage is collected
once, then everything alive is frozen out of the collector's passes before each block and after
it (frozen objects are still freed by reference counting when a memo lets go of them).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any, TypeVar

from aupgate.files import open_lines

__all__ = ["BLOCK_BYTES", "default_jobs", "file_blocks", "ordered_map"]

BLOCK_BYTES = 1 << 20
R = TypeVar("R")
Block = tuple[bytes, int]  # whole lines, and the number of the first

_WORK: Callable[..., Any] | None = None  # what forked workers run (set before forking)


def default_jobs() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def file_blocks(paths: Iterable[Path], size: int = BLOCK_BYTES) -> Iterator[tuple[Path, Block]]:
    """Each file's lines in blocks of about `size` bytes, cut after a newline, with the number of
    each block's first line (counting from 1 in each file). Gzip files are read decompressed.

    Raises OSError (or EOFError for a truncated gzip) as the reading does.
    """
    for path in paths:
        with open_lines(path) as handle:
            line = 1
            tail = b""
            while True:
                chunk = handle.read(size)
                if not chunk:
                    break
                data = tail + chunk
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    tail = data
                    continue
                block, tail = data[:cut], data[cut:]
                yield path, (block, line)
                line += block.count(b"\n")
            if tail:
                yield path, (tail, line)


def ordered_map(work: Callable[..., R], tasks: Iterable[tuple[Any, ...]],
                jobs: int) -> Iterator[R]:
    """`work(*task)` for every task (a block and what goes with it), results in task order.

    With more than one job, `work` runs in forked worker processes (it and everything it uses
    are inherited, not pickled; the tasks and results are pickled), at most `2 * jobs` tasks
    ahead of the results handed out.
    """
    gc.collect()  # the start-up's garbage, once
    gc.freeze()  # the policies and the index: never garbage, shared with forked workers
    try:
        if jobs <= 1:
            for task in tasks:
                yield _one_block(work, task)
            return
        global _WORK
        _WORK = work
        context = multiprocessing.get_context("fork")
        pending: deque[AsyncResult[Any]] = deque()
        with context.Pool(jobs) as pool:
            for task in tasks:
                pending.append(pool.apply_async(_run, task))
                if len(pending) >= 2 * jobs:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
        _WORK = None
    finally:
        gc.unfreeze()  # a caller that goes on (a test, a library user) collects as before


def _run(*task: Any) -> Any:
    assert _WORK is not None  # set by ordered_map before the pool forked this worker
    return _one_block(_WORK, task)


def _one_block(work: Callable[..., R], task: tuple[Any, ...]) -> R:
    """`work(*task)` without the cyclic collector; what it leaves alive (memo entries) is frozen
    out of later passes (see the module's docstring)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return work(*task)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
