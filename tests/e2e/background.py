"""Load in the background of an end-to-end test: `loadgen.py` in its own process, bounded in
time, its progress readable while it runs and its summary once it stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOADGEN = Path(__file__).with_name("loadgen.py")


@dataclass
class LoadRun:
    """A running load generator; `summary` is filled in when the `with` block ends."""

    process: subprocess.Popen[str]
    progress_file: Path
    summary: dict[str, Any] = field(default_factory=dict)

    def answered(self) -> int:
        """Requests answered (any status) so far."""
        try:
            return int(self.progress_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def wait_for(self, answered: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.answered() < answered:
            assert self.process.poll() is None, "the load generator stopped early"
            assert time.monotonic() < deadline, (
                f"only {self.answered()} of {answered} requests answered in {timeout} s")
            time.sleep(0.1)


@contextmanager
def background_load(port: int, folder: Path, *, prefix: str, threads: int = 4,
                    seconds: float = 300, distinct: int = 0,
                    record: bool = False) -> Iterator[LoadRun]:
    """Requests through the proxy on `port` for as long as the block runs (at most `seconds`)."""
    progress = folder / f"load-{prefix}.progress"
    argv = [sys.executable, str(LOADGEN), "--port", str(port), "--prefix", prefix,
            "--threads", str(threads), "--seconds", str(seconds), "--progress", str(progress)]
    if distinct:
        argv += ["--distinct", str(distinct)]
    if record:
        argv.append("--record")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = LoadRun(process, progress)
    try:
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, f"load generator exit {process.returncode}: {err}"
        run.summary = json.loads(out)
