"""Reading audit files into a `Summary`: streaming in this process, or in byte ranges across
several (a summary needs no time order, and summaries merge)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import BinaryIO

from aupgate.files import is_gzip, open_lines

from ..reader import ReviewError
from .summary import Options, Summary

__all__ = ["summarise"]

Progress = Callable[[int], None]
"""Called now and then with the bytes read so far, of all files (for a progress bar)."""

_CHUNK = 64 * 1024 * 1024


def _parts(paths: Sequence[Path], sizes: Sequence[int], jobs: int) -> list[tuple[Path, int, int]]:
    """(file, start, end) pieces: plain files cut at line starts, about two per worker each."""
    parts: list[tuple[Path, int, int]] = []
    for path, size in zip(paths, sizes, strict=True):
        gz = is_gzip(path)
        with path.open("rb") as handle:
            pieces = 1 if gz or jobs == 1 else max(1, min(jobs * 2, size // _CHUNK))
            start = 0
            for index in range(1, pieces + 1):
                end = size
                if index < pieces:
                    handle.seek(size * index // pieces)
                    handle.readline()  # to the start of the next whole line
                    end = handle.tell()
                if end > start:
                    parts.append((path, start, end))
                start = end
    return parts


def _summarise_part(path: Path, start: int, end: int, options: Options) -> Summary:
    """A worker's job: one byte range of a plain file (or a whole .gz file), in blocks."""
    summary = Summary(options)
    if start == 0 and end == path.stat().st_size:
        with open_lines(path) as handle:
            summary.feed_lines(handle)
        return summary
    with path.open("rb") as handle:
        handle.seek(start)
        remaining, tail = end - start, b""
        while remaining > 0:
            block = handle.read(min(8 * 1024 * 1024, remaining))
            if not block:
                break
            remaining -= len(block)
            lines = (tail + block).split(b"\n")
            tail = lines.pop()
            summary.feed_lines(lines)
        if tail:
            summary.feed_lines([tail])
    return summary


def summarise(
    paths: Sequence[Path], options: Options, *, progress: Progress | None = None, jobs: int = 1
) -> Summary:
    """Read every file once (a summary needs no time order), in `jobs` processes.

    With one job the lines stream through this process; with more, plain files are cut into
    byte ranges at line boundaries, summarised by worker processes, and the bounded summaries
    merged. Each worker holds one summary, so memory is about `jobs` times one summary.
    """
    sizes = []
    for path in paths:
        try:
            sizes.append(path.stat().st_size)
        except OSError as exc:
            raise ReviewError(f"{path}: {exc.strerror or exc}") from exc
    done = 0  # bytes of the files (or parts) finished
    try:
        if jobs <= 1:
            summary = Summary(options)
            for path, size in zip(paths, sizes, strict=True):
                with open_lines(path) as handle:
                    raw = getattr(handle, "fileobj", None) or handle  # a gzip file's own bytes
                    tick = None if progress is None else _ticker(progress, done, raw)
                    summary.feed_lines(handle, tick)
                done += size
            return summary
        summary = Summary(options)
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {
                pool.submit(_summarise_part, path, start, end, options): end - start
                for path, start, end in _parts(paths, sizes, jobs)
            }
            for future in as_completed(futures):
                summary.merge(future.result())
                done += futures[future]
                if progress is not None:
                    progress(done)
        return summary
    except (OSError, EOFError) as exc:
        raise ReviewError(str(exc)) from exc


def _ticker(progress: Progress, start: int, raw: BinaryIO) -> Callable[[], None]:
    """What `feed_lines` calls now and then: the bytes read so far, this file's position added."""

    def tick() -> None:
        progress(start + raw.tell())

    return tick
