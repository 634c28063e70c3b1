"""`aupgate run --workers N`: N gateway processes on one listening socket, and their supervisor.

mitmproxy runs one event loop per process, so one process uses one core. The supervisor binds
the listening sockets once (only to the configured address), starts N workers that inherit
them, and does nothing else with them: the kernel queues connections on the one socket and
whichever worker is free accepts the next. Clients connect to the gateway directly, so every
worker sees real client addresses, with no HAProxy hop on the box.

Why one inherited socket rather than `SO_REUSEPORT` (each worker binding its own):
- a worker that dies takes nothing with it: connections waiting in the queue are accepted by the
  others (with `SO_REUSEPORT` the kernel drops the ones hashed to the dead worker's queue);
- a second gateway started by mistake on the same port fails with "address in use" instead of
  silently sharing the traffic (`SO_REUSEPORT` lets any process of the same user join);
- an idle worker takes the next connection; hashing would queue it behind a busy one.
The price is that every worker wakes for a new connection and one wins; each accepts one
connection per wake-up (`listener.ACCEPTS_PER_WAKEUP`), so a burst is spread over the workers.
Both were measured side by side (docs/benchmarks.md, "Scale"): the same throughput within this
machine's noise and the same even shares, and 7-9 failed requests when a worker was killed
under load with the shared socket against 12-30 with SO_REUSEPORT.

The supervisor
- restarts a worker that dies, after 0.5 s, then with doubling delays up to 30 s while it keeps
  dying within a minute of starting (a worker that cannot start, e.g. because the policy files
  on disk are broken, is retried, loudly, while the others serve);
- passes SIGHUP on to every worker (each reopens its audit file, e.g. after logrotate), and
  SIGTERM / SIGINT (each worker stops cleanly and records `proxy_stop`), then waits for them;
- starts worker 0 first and the others once it serves (it creates the agency CA in a new
  confdir and the compiled category index once, and reports a bad option once);
- exits 1 if a worker fails before every worker has served once (bad options, a broken policy):
  the start-up failed, as it would with one process;
- tells systemd when every worker is serving (`Type=notify`).

A client's connections may land on different workers, so the supervisor also relays the warn
tickets and passes each worker issues to the others, and replays the live ones to a worker that
starts later (`sharedpasses`): a warn page's form is accepted, and its pass honoured, by every
worker of the box.

Each worker writes its own audit file (`audit.jsonl` becomes `audit.w0.jsonl`, `audit.w1.jsonl`,
...): a hash chain must have one writer, and one file per worker costs nothing per request,
where one writer for all would add a hand-off per audit line. `aupgate audit verify`, `review`
and `report` read all the files at once. Policies reload in every worker by itself (each watches
the files, as one process does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .adminworkers import SupervisorAdmin
from .passes import MAX_ENTRIES
from .sharedpasses import encode, replay_key

logger = logging.getLogger(__name__)

LINK_ENV = "AUPGATE_SUPERVISOR_FD"
"""Set for a worker: its end of a socket pair with the supervisor (readiness, and EOF when the
supervisor goes away)."""

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
STABLE_AFTER = 60.0  # a worker that ran this long was not failing at start: reset the backoff
STOP_GRACE = 12.0  # seconds workers get to stop before SIGKILL (systemd's TimeoutStopSec: 15)
LINE_LIMIT = 1 << 20  # longest event line on a link (a ticket carries its URL)
MAX_LINK_BACKLOG = 4 << 20  # bytes a worker queues for a supervisor that does not read


def worker_audit_path(path: str, index: int) -> str:
    """`audit.jsonl` -> `audit.w0.jsonl`: each worker's own audit file beside the one named."""
    given = Path(path)
    return str(given.with_name(f"{given.stem}.w{index}{given.suffix}"))


def restart_delay(failures: int, ran: float) -> tuple[int, float]:
    """(failures so far, seconds to wait) for a worker that ended after running `ran` seconds:
    0.5 s, then doubling up to 30 s while it keeps dying within a minute of starting."""
    failures = 1 if ran >= STABLE_AFTER else failures + 1
    return failures, min(MAX_DELAY, FIRST_DELAY * 2 ** (failures - 1))


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def notify_systemd(state: str) -> None:
    """`sd_notify`: tell systemd (Type=notify) how the service is; nothing without systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.sendall(state.encode())


# --------------------------------------------------------------------------- worker side


class SupervisorLink:
    """A worker's end of its socket pair with the supervisor: says "ready", passes warn-pass
    events both ways (one JSON line each, `sharedpasses`), and notices when the supervisor is
    gone (its end closes, even when it was SIGKILLed)."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.sock.set_inheritable(False)
        self.on_event: Callable[[dict[str, Any]], None] = lambda event: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out = bytearray()
        self._in = bytearray()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SupervisorLink | None:
        fd = environ.get(LINK_ENV)
        return cls(int(fd)) if fd else None

    def ready(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"ready\n")

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event to the supervisor without ever blocking the event loop."""
        if self._loop is None:
            return  # not serving yet: nothing to share
        pending = bool(self._out)
        self._out += encode(event)
        if len(self._out) > MAX_LINK_BACKLOG:
            logger.error("aupgate: the supervisor is not reading; shared warn passes dropped")
            self._out.clear()
            return
        if not pending:
            self._flush()

    def _flush(self) -> None:
        assert self._loop is not None
        try:
            sent = self.sock.send(self._out)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._out.clear()
            return
        del self._out[:sent]
        if self._out:
            self._loop.add_writer(self.sock, self._flush_later)

    def _flush_later(self) -> None:
        assert self._loop is not None
        self._loop.remove_writer(self.sock)
        self._flush()

    def watch(self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[], None]) -> None:
        """Read events from the supervisor; call `on_lost` once its end closes."""
        self._loop = loop
        self.sock.setblocking(False)

        def readable() -> None:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(self.sock)
                on_lost()
                return
            self._in += data
            while (end := self._in.find(b"\n")) != -1:
                line = bytes(self._in[:end])
                del self._in[: end + 1]
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self.on_event(event)

        loop.add_reader(self.sock, readable)


# --------------------------------------------------------------------------- supervisor side


@dataclass
class Slot:
    """One worker position: the process in it now and how its restarts are going."""

    index: int
    pid: int | None = None
    process: asyncio.subprocess.Process | None = None
    link: asyncio.StreamWriter | None = None
    ready: bool = False
    ever_ready: bool = False
    failures: int = 0
    started: float = 0.0
    restarts: int = 0


@dataclass
class Supervisor:
    """Starts `count` workers with `argv_for(index)`, keeps them running, passes signals on."""

    count: int
    argv_for: Callable[[int], Sequence[str]]
    pass_fds: Sequence[int] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    on_exit: Callable[[int], None] = lambda pid: None  # a worker process ended (its pid)
    slots: list[Slot] = field(default_factory=list)
    stopping: bool = False
    failed: str | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _first_ready: asyncio.Event = field(default_factory=asyncio.Event)
    _all_ready_said: bool = False
    # live shared warn-pass events, replayed to a worker that starts: key -> (expires, line)
    _book: dict[str, tuple[float, bytes]] = field(default_factory=dict)

    async def run(self) -> int:
        """Run until stopped by a signal (0) or until a worker fails to start (1)."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self.forward, signal.SIGHUP)
        self.slots = [Slot(i) for i in range(self.count)]
        # Worker 0 first, the others once it serves: it creates the agency CA in a new confdir
        # (workers creating it at once would each sign with their own) and the compiled
        # category index, and a bad option is reported once, not N times.
        lives = [asyncio.create_task(self._keep(self.slots[0]))]
        first = asyncio.create_task(self._first_ready.wait())
        stopped = asyncio.create_task(self._stop.wait())
        await asyncio.wait([first, stopped], return_when=asyncio.FIRST_COMPLETED)
        first.cancel()
        if not self._stop.is_set():
            lives += [asyncio.create_task(self._keep(slot)) for slot in self.slots[1:]]
        await stopped
        done, pending = await asyncio.wait(lives, timeout=STOP_GRACE)
        for slot in self.slots:
            if slot.process is not None and slot.process.returncode is None:
                logger.error("aupgate: worker %d (pid %s) did not stop within %gs; killing it",
                             slot.index, slot.pid, STOP_GRACE)
                with contextlib.suppress(ProcessLookupError):
                    slot.process.kill()
        if pending:
            await asyncio.wait(pending, timeout=5)
        for task in done:
            task.result()  # a bug in the supervisor itself must not pass silently
        if self.failed:
            logger.error("aupgate: %s", self.failed)
            return 1
        logger.info("aupgate: all workers stopped")
        return 0

    def stop(self, signum: int = signal.SIGTERM, why: str | None = None) -> None:
        """Stop: pass the signal to every worker, restart nothing, and let run() return."""
        if self.stopping:
            return
        self.stopping = True
        notify_systemd("STOPPING=1")
        logger.info("aupgate: %s: stopping the workers", why or signal.Signals(signum).name)
        self._send(signum)
        self._stop.set()

    def forward(self, signum: int) -> None:
        """Pass a signal (SIGHUP) on to every running worker."""
        sent = self._send(signum)
        logger.info("aupgate: %s passed to workers %s", signal.Signals(signum).name,
                    ", ".join(sent) or "(none running)")

    def _send(self, signum: int) -> list[str]:
        sent = []
        for slot in self.slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)
                    sent.append(f"w{slot.index} (pid {slot.pid})")
        return sent

    async def _keep(self, slot: Slot) -> None:
        """Run the slot's worker, restarting it until the supervisor stops."""
        while not self._stop.is_set():
            status = await self._one_life(slot)
            if self._stop.is_set():
                return
            how = (f"signal {signal.Signals(-status).name}" if status < 0
                   else f"exit status {status}")
            if not slot.ever_ready and not self._all_ready_said:
                self.failed = (f"worker {slot.index} failed to start ({how}); see its "
                               "messages above")
                self.stop(signal.SIGTERM, "a worker failed to start")
                return
            ran = time.monotonic() - slot.started
            slot.failures, delay = restart_delay(slot.failures, ran)
            logger.error("aupgate: worker %d (pid %s) ended after %.1fs (%s); restarting in "
                         "%gs", slot.index, slot.pid, ran, how, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _one_life(self, slot: Slot) -> int:
        """Start the worker, note when it is serving, and return its exit status."""
        ours, theirs = socket.socketpair()
        try:
            env = {**os.environ, **self.env, LINK_ENV: str(theirs.fileno())}
            slot.process = await asyncio.create_subprocess_exec(
                *self.argv_for(slot.index), env=env,
                pass_fds=(*self.pass_fds, theirs.fileno()), start_new_session=True)
        finally:
            theirs.close()
        slot.pid, slot.ready, slot.started = slot.process.pid, False, time.monotonic()
        if slot.restarts:
            logger.warning("aupgate: worker %d restarted (pid %d)", slot.index, slot.pid)
        slot.restarts += 1
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=LINE_LIMIT)
        slot.link = writer
        listening = asyncio.create_task(self._listen(slot, reader))
        try:
            return await slot.process.wait()
        finally:
            self.on_exit(slot.pid)
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
            writer.close()
            slot.link, slot.ready = None, False

    async def _listen(self, slot: Slot, reader: asyncio.StreamReader) -> None:
        """Read the worker's link: "ready" once, then warn-pass events to relay."""
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a line over LINE_LIMIT: not one of ours
                continue
            if not line:
                return
            if line == b"ready\n":
                slot.ready = slot.ever_ready = True
                self._first_ready.set()
                if slot.link is not None:  # what the others granted before it was serving
                    slot.link.writelines(kept for _, kept in self._live_book())
                self._said_ready(slot)
            else:
                self._relay(slot, line)

    def _relay(self, source: Slot, line: bytes) -> None:
        """Pass a worker's event to every other running worker, and keep it for later ones."""
        try:
            event = json.loads(line)
        except ValueError:
            return
        kept = replay_key(event) if isinstance(event, dict) else None
        if kept is None:
            return
        key, expires, consumes = kept
        if consumes:
            self._book.pop(consumes, None)
        self._book[key] = (expires, line)
        if len(self._book) > 2 * MAX_ENTRIES:  # bounded like each worker's own tables
            now = time.monotonic()
            live = [(k, v) for k, v in self._book.items() if v[0] >= now]
            self._book = dict(live[-MAX_ENTRIES:])
        for slot in self.slots:
            if slot is not source and slot.link is not None and slot.ready:
                slot.link.write(line)

    def view(self) -> tuple[int, int, int]:
        """(workers running and serving, workers kept, restarts so far), for /metrics."""
        alive = sum(1 for s in self.slots if s.ready and s.process is not None
                    and s.process.returncode is None)
        return alive, self.count, sum(max(0, s.restarts - 1) for s in self.slots)

    def _live_book(self) -> list[tuple[str, bytes]]:
        now = time.monotonic()
        return [(key, line) for key, (expires, line) in self._book.items() if expires >= now]

    def _said_ready(self, slot: Slot) -> None:
        if self._all_ready_said or not all(s.ready for s in self.slots):
            return
        self._all_ready_said = True
        logger.info("aupgate: %d workers serving (pids %s)", self.count,
                    ", ".join(str(s.pid) for s in self.slots))
        notify_systemd("READY=1")


def worker_argv(index: int, specs: Sequence[str], *, quiet: bool) -> list[str]:
    """The command line of worker `index`: this Python, the master module, the options."""
    return [sys.executable, "-m", "aupgate.mitm.master", "--worker", str(index),
            *(["--quiet"] if quiet else []), "--", *specs]


def run_workers(specs: Sequence[str], count: int, *, quiet: bool) -> int:
    """`aupgate run --workers N`: bind the listening sockets, then supervise N workers."""
    from mitmproxy import exceptions, optmanager
    from mitmproxy.options import Options

    from .listener import LISTEN_FDS_ENV, bind_shared, inherited_env, listen_addresses
    from .oplog import set_level, stderr_handler

    handler = stderr_handler()
    set_level(handler, "warn" if quiet else "info")  # --quiet: warnings and errors
    logging.getLogger().addHandler(handler)
    opts = Options()
    try:
        opts.set(*specs, defer=True)
        confdir = Path(opts.confdir).expanduser()
        optmanager.load_paths(opts, confdir / "config.yaml", confdir / "config.yml")
        addresses = listen_addresses(opts.mode, opts.listen_host, opts.listen_port)
    except (exceptions.OptionsError, ValueError) as exc:
        logger.error("aupgate: %s", exc)
        return 1
    bound: dict[tuple[str, int], list[socket.socket]] = {}
    for host, port in addresses:
        try:
            bound[(host, port)] = bind_shared(host, port)
        except OSError as exc:
            logger.error("aupgate: cannot listen on %s:%s: %s", host, port,
                         exc.strerror or exc)
            return 1
    shown = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}"
                      for socks in bound.values() for s in socks)
    logger.info("aupgate: listening on %s; starting %d workers", shown, count)
    fds = [s.fileno() for socks in bound.values() for s in socks]

    try:
        admin = SupervisorAdmin.from_specs(specs, opts.listen_host)
    except ValueError as exc:
        logger.error("aupgate: %s", exc)
        return 1
    worker_specs = admin.worker_specs(specs)
    supervisor = Supervisor(count, lambda i: worker_argv(i, worker_specs, quiet=quiet), fds,
                            {LISTEN_FDS_ENV: inherited_env(bound), **admin.env},
                            on_exit=admin.worker_ended)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        try:
            admin.serve(supervisor.view)
        except OSError as exc:
            logger.error("aupgate: cannot serve the admin endpoint: %s", exc.strerror or exc)
            return 1
        return asyncio.run(supervisor.run())
    finally:
        admin.close()
