"""`make run`, as the README's quick start has a new administrator use it: it says where the
audit log goes, and that file then holds the decisions (issue 17: it wrote none and said
nothing). The real Makefile target, on a free port, with the shipped policies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from .conftest import VENV_BIN, free_port

REPO = Path(__file__).resolve().parents[2]


def test_make_run_writes_the_audit_log_it_names(tmp_path: Path) -> None:
    port = free_port()
    audit = tmp_path / "var" / "audit.jsonl"
    venv = VENV_BIN.parent
    process = subprocess.Popen(
        ["make", "--no-print-directory", "-o", f"{venv}/.installed", "run", f"VENV={venv}",
         f"PORT={port}", f"AUDIT_LOG={audit}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "HOME": str(tmp_path)},  # its CA goes to tmp_path/.mitmproxy
        start_new_session=True)  # make and aupgate in a group of their own, stopped together
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        output.extend(process.stdout)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while f"listening at 127.0.0.1:{port}" not in "".join(output):
            assert process.poll() is None and time.monotonic() < deadline, "".join(output)
            time.sleep(0.1)
        said = "".join(output)
        assert (f"aupgate: audit log {audit} (read it with: {venv}/bin/aupgate review {audit})"
                in said), said
        done = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30",
             "-x", f"http://127.0.0.1:{port}", "http://www.bet365.com/make-run"],
            capture_output=True, text=True, timeout=60, check=False)
        assert done.stdout == "403", done  # MoDOT 7.E, answered by the gateway itself
        deadline = time.monotonic() + 30
        events: list[dict[str, object]] = []
        while not any(e.get("path") == "/make-run" for e in events):
            assert time.monotonic() < deadline, events
            time.sleep(0.1)
            if audit.exists():
                events = [json.loads(line) for line in audit.read_text().splitlines()]
        [decision] = [e for e in events if e.get("path") == "/make-run"]
        assert decision["agency"] == "modot" and decision["enforced"] == "blocked"
        assert not list(audit.parent.glob("audit.w*.jsonl"))  # one process: one whole file
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
