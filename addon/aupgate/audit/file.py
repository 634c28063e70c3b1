"""The production audit file: append-only, one write per line, safe with logrotate, loud on failure.

An audit trail that silently stops is worse than none: everybody believes it is there. So this
sink
- opens with `O_APPEND` and writes each line with one `write(2)` (no user-space buffer): a line is
  on disk, in the kernel's cache, before the request goes on, and `copytruncate` can cut the file
  under us without leaving a hole of zeros;
- follows logrotate's `create` mode without losing a line: before every line it checks whether
  the path still names the file it has open (inode and device). When logrotate has renamed the
  file and not yet created the new one, lines keep going to the renamed file (they are kept
  there); once the path names a new file, or on `SIGHUP` (`reopen`), the writer ends the old
  file with a `rotated` checkpoint and moves to the new one. A file that was deleted (no name
  left) or that is failing is left at once. `copytruncate` (the file shrank) starts a new chain;
- links every line to the one before it (`chain`), starting a new chain in a new file and
  saying why, with the hash of the last line of the file before;
- writes its own `audit_checkpoint` lines (`chain.CHECKPOINT`): when it opens a file (so a file
  it opened is never empty), every `checkpoint_s` seconds from a timer thread even when no
  traffic comes (so a live file's last line is never older than that), as the last line of a
  file it leaves after a rotation, and as the last line when it closes. `aupgate audit verify`
  tells from them a file whose end was cut (docs/audit-log.md, "Tamper evidence");
- on a full disk or an unwritable file logs at CRITICAL, counts what it loses, keeps retrying on
  every event, and writes an `audit_gap` event with the count when it can write again. Whether the
  gateway keeps serving meanwhile is the operator's choice, `on_audit_failure`: `serve` carries on
  (the decisions still reach stdout/journald if that is on), `fail-closed` makes `write` raise
  `AuditUnavailableError` and `refusing` true, so the adapter blocks traffic until the log is back.

One writer per file: two processes appending to one file interleave two chains. Durability is
the page cache's (no fsync per line): a killed process loses nothing, a power cut may.

Reads the clock: the time of an `audit_gap` and of a checkpoint, the checkpoint timer, and the
once-a-minute complaint while failing (one of the two modules outside the edges that may; see
`log.py`).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal, Protocol

from .chain import CHECKPOINT, ChainReason, line_hash, link
from .envelope import format_time, render
from .reader import last_line

OnAuditFailure = Literal["serve", "fail-closed"]
ON_AUDIT_FAILURE: tuple[OnAuditFailure, ...] = ("serve", "fail-closed")

log = logging.getLogger(__name__)

_REPEAT_COMPLAINT_S = 60.0
_HOST = socket.gethostname()  # checkpoints say which box wrote them (files may be compared)
CHECKPOINT_S = 60.0
"""Seconds between two `interval` checkpoints: how stale a live file's last line may get."""


class TextSink(Protocol):
    """What the audit logger writes rendered lines to: a text file, stdout, or an `AuditFile`."""

    def write(self, s: str, /) -> int: ...

    def flush(self) -> None: ...


class AuditUnavailableError(Exception):
    """The audit file cannot be written and `on_audit_failure` is `fail-closed`."""


def parse_on_audit_failure(value: str) -> OnAuditFailure:
    """`serve` or `fail-closed`; anything else is a ValueError naming the choices."""
    for choice in ON_AUDIT_FAILURE:
        if value == choice:
            return choice
    raise ValueError(f"on_audit_failure must be one of {', '.join(ON_AUDIT_FAILURE)}: {value!r}")


class AuditFile:
    """An append-only, hash-chained JSON-lines file that survives rotation; a `TextSink`.

    Thread-safe: the adapter records from the event loop and from its reload thread.
    """

    def __init__(
        self,
        path: Path,
        *,
        on_failure: OnAuditFailure = "serve",
        mode: int = 0o640,
        clock: Callable[[], datetime] | None = None,
        checkpoint_s: float = CHECKPOINT_S,
    ) -> None:
        if checkpoint_s <= 0:
            raise ValueError(f"checkpoint_s must be positive: {checkpoint_s}")
        self.path = path
        self._path_text = os.fspath(path)
        self.on_failure = on_failure
        self._mode = mode
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._ident: tuple[int, int] = (0, 0)
        self._end = 0
        self._prev: str | None = None  # hash of the last line written to the open file
        self._pending_chain: dict[str, Any] | None = None
        self._reopen = False
        self._torn = False
        self._lost = 0
        self._lost_since: str | None = None
        self._lost_error: str | None = None  # the error behind the loss (a checkpoint may
        # succeed, clearing `last_error`, before the gap is written)
        self.write_errors = 0  # events lost since this file was opened, never reset (metrics)
        self._last_complaint = 0.0
        self.last_error: str | None = None
        self.checkpoint_s = checkpoint_s
        self._stopping = threading.Event()
        with self._lock:
            try:
                self._open(initial=True)
            except OSError as exc:
                self._failed(exc, lost=0, refuse=False)  # `refusing` tells the adapter
        self._timer = threading.Thread(target=self._tick, name=f"audit checkpoints {path.name}",
                                       daemon=True)
        self._timer.start()

    # ----------------------------------------------------------------- state the adapter reads

    @property
    def healthy(self) -> bool:
        """False from a failed write until a write succeeds again."""
        return self.last_error is None

    @property
    def refusing(self) -> bool:
        """True when traffic must be refused: the file is failing and the choice is fail-closed."""
        return self.on_failure == "fail-closed" and not self.healthy

    @property
    def last_hash(self) -> str | None:
        """The hash of the last line written: note it off-box to anchor the chain."""
        return self._prev

    # ----------------------------------------------------------------- TextSink

    def write(self, s: str, /) -> int:
        """Write one rendered event (a JSON object, newline optional), linked to the line before."""
        self.write_line(s.rstrip("\n").encode("utf-8"))
        return len(s)

    def write_line(self, line: bytes, /) -> None:
        """`write` for a line rendered as bytes without its newline (the audit logger's form)."""
        with self._lock:
            try:
                self._ensure_open()
                if self._lost:
                    self._write_gap()
                self._write_linked(line)
            except OSError as exc:
                self._failed(exc, lost=1)

    def flush(self) -> None:
        """Nothing to do: every line went out with its own write(2)."""

    def request_reopen(self) -> None:
        """Move to whatever the path names before the next line (SIGHUP); safe to call from a
        signal handler (it only sets a flag)."""
        self._reopen = True

    def reopen(self) -> None:
        """Move to whatever the path names, now (logrotate's `postrotate`, through SIGHUP): the
        old file gets its `rotated` checkpoint and the new one its `open` checkpoint at once, so
        neither waits for traffic. Nothing happens when the path still names the open file."""
        with self._lock:
            self._reopen = True
            try:
                self._ensure_open()
            except OSError as exc:
                self._failed(exc, lost=0, refuse=False)

    def checkpoint(self) -> None:
        """Write an `interval` checkpoint now (the timer thread's job; rotation is followed too)."""
        with self._lock:
            if self._stopping.is_set():
                return
            try:
                self._ensure_open()
                if self._lost:
                    self._write_gap()
                self._write_checkpoint("interval")
            except OSError as exc:
                self._failed(exc, lost=0, refuse=False)

    def close(self) -> None:
        """End the file with a `close` checkpoint (after following a rotation) and stop."""
        self._stopping.set()
        with self._lock:
            if self._fd is not None:
                try:
                    self._ensure_open()
                    self._write_checkpoint("close")
                except OSError as exc:
                    log.warning("audit log %s: no closing checkpoint: %s", self.path,
                                exc.strerror or exc)
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        if self._timer is not threading.current_thread():
            self._timer.join(timeout=5)

    # ----------------------------------------------------------------- internals

    def _open(self, *, initial: bool = False, reason: ChainReason = "rotated") -> None:
        """Open (creating) the path; continue the chain of a non-empty file, else start one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.path, flags, self._mode)
        continues = self._prev
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        st = os.fstat(fd)
        self._ident = (st.st_dev, st.st_ino)
        self._end = st.st_size
        self._reopen = False
        if st.st_size == 0:
            self._start_chain("new-file" if initial else reason, continues)
            self._write_checkpoint("open")
            return
        try:
            tail, ends_clean = last_line(self.path)
        except OSError:
            # Append-only may leave the file unreadable to us (chattr +a, 0200): start afresh.
            self._start_chain("resumed-unreadable", continues)
            self._write_checkpoint("open")
            return
        if ends_clean and tail is not None:
            self._prev = line_hash(tail)
            self._pending_chain = None
        else:
            self._torn = not ends_clean
            self._start_chain("damaged-tail", continues)
        self._write_checkpoint("open")

    def _start_chain(self, reason: ChainReason, continues: str | None) -> None:
        self._prev = None
        self._pending_chain = {"reason": reason, "file": str(self.path), "continues": continues}

    def _ensure_open(self) -> None:
        """Follow the path to the file it names now, or start a chain on truncation.

        A missing path is the moment between logrotate's rename and its `create`: the renamed
        file keeps the lines until the new one exists, unless a reopen was asked for (SIGHUP),
        the file has no name left (deleted), or it is failing anyway.
        """
        if self._fd is None:
            self._open(reason="rotated")
            return
        requested, self._reopen = self._reopen, False
        try:
            # one system call answers both questions below (os.stat: no Path object per line)
            st = os.stat(self._path_text)  # noqa: PTH116
        except FileNotFoundError:
            deleted = os.fstat(self._fd).st_nlink == 0
            if requested or deleted or self.last_error is not None:
                self._move("deleted" if deleted else "rotated")
            return
        if st.st_ino != self._ident[1] or st.st_dev != self._ident[0]:
            self._move("rotated")
            return
        if st.st_size < self._end:  # the path is our file, so its size is our file's
            self._end = 0  # copytruncate: O_APPEND already writes at the new end
            self._start_chain("truncated", self._prev)

    def _move(self, reason: ChainReason) -> None:
        """Leave the open file for the path: a `rotated` checkpoint ends the old file (while it
        still has a name), and the new file's chain continues from it."""
        assert self._fd is not None
        try:
            if os.fstat(self._fd).st_nlink > 0:
                self._write_checkpoint("rotated")
        except OSError as exc:  # the old file is full or gone: the new one may still work
            log.warning("audit log %s: no rotation checkpoint in the old file: %s", self.path,
                        exc.strerror or exc)
        self._open(reason=reason)

    def _write_checkpoint(self, reason: str) -> None:
        fields = {"reason": reason, "file": self._path_text, "host": _HOST,
                  "interval_s": self.checkpoint_s, "pid": os.getpid()}
        self._write_linked(render(format_time(self._clock()), CHECKPOINT, fields))

    def _tick(self) -> None:
        """The timer thread: a checkpoint every `checkpoint_s` seconds until `close`."""
        while not self._stopping.wait(self.checkpoint_s):
            try:
                self.checkpoint()
            except Exception:  # the timer must outlive anything one checkpoint meets
                log.exception("audit log %s: checkpoint failed", self.path)

    def _write_linked(self, rendered: bytes) -> None:
        assert self._fd is not None
        if self._torn:
            self._write_all(b"\n")  # end the torn line so the next one is whole
            self._torn = False
            self._end += 1
        data = link(rendered, self._prev, self._pending_chain) + b"\n"
        self._write_all(data)
        self._prev = hashlib.sha256(memoryview(data)[:-1]).hexdigest()  # line_hash, no copy
        self._pending_chain = None
        self._end += len(data)  # one writer per file: the file ends where we wrote
        if self.last_error is not None:
            log.warning("audit log %s is writable again", self.path)
            self.last_error = None

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        written = os.write(self._fd, data)  # raising here, nothing of the line was written
        if written == len(data):
            return  # the usual case: one write(2) took the whole line
        view = memoryview(data)[written:]  # a short write: a full disk took part of the line
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError:
                self._torn = True
                self._start_chain("damaged-tail", self._prev)
                raise
            if written == 0:  # pragma: no cover - a regular file does not do this
                raise OSError(errno.EIO, "write returned 0")
            view = view[written:]

    def _write_gap(self) -> None:
        """Record, in the chain, how many events were lost while the file could not be written."""
        error = self._lost_error or self.last_error or "unknown"
        gap = {"lost": self._lost, "since": self._lost_since, "error": error}
        self._write_linked(render(format_time(self._clock()), "audit_gap", gap))
        self._lost = 0
        self._lost_since = None
        self._lost_error = None

    def _failed(self, exc: OSError, *, lost: int, refuse: bool = True) -> None:
        """Report loudly (first time, then once a minute), count the loss, raise if fail-closed."""
        message = f"cannot write audit log {self.path}: {exc.strerror or exc}"
        first = self.last_error is None
        self.last_error = message
        if lost:
            if self._lost == 0:
                self._lost_since = format_time(self._clock())
            self._lost += lost
            self._lost_error = message
            self.write_errors += lost
        now = time.monotonic()
        if first or now - self._last_complaint >= _REPEAT_COMPLAINT_S:
            self._last_complaint = now
            consequence = (
                "REFUSING TRAFFIC until it is writable (on_audit_failure=fail-closed)"
                if self.on_failure == "fail-closed"
                else "still serving, decisions are NOT being recorded (on_audit_failure=serve)"
            )
            log.critical("%s; %s; %d event(s) lost so far", message, consequence, self._lost)
        if refuse and self.on_failure == "fail-closed":
            raise AuditUnavailableError(message) from exc


def install_sighup_reopen(files: Iterable[AuditFile]) -> None:
    """Make SIGHUP reopen the files (logrotate's `postrotate kill -HUP`), keeping any old handler.

    Call from the main thread. Rotation is detected without it; the signal only makes the switch
    immediate instead of at the next event.
    """
    targets = tuple(files)
    previous = signal.getsignal(signal.SIGHUP)

    def on_hup(signum: int, frame: FrameType | None) -> None:
        for target in targets:
            target.request_reopen()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGHUP, on_hup)
