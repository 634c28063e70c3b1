"""The admin endpoint of `aupgate run --workers N`: served once, by the supervisor.

Why prometheus-client's multiprocess mode, not the supervisor asking each worker: a worker's
counters live in a memory-mapped file (`PROMETHEUS_MULTIPROC_DIR`), so a scrape reads files and
never waits on a worker busy with traffic, a dead worker's counts are kept (counters never go
backwards when a worker is restarted), and the supervisor needs no new messages on its links.
The price per counted event is a lock and a write to the mapped page instead of an in-process
add; docs/benchmarks.md ("Metrics") has what it costs. State gauges (policy loaded, audit
writable, digests) are refreshed by each worker every second (`metrics.REFRESH_SECONDS`), and a
dead worker's gauges are dropped (`mark_process_dead`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client.multiprocess import mark_process_dead

from .admin import (
    MULTIPROC_ENV,
    AdminServer,
    make_multiproc_dir,
    parse_admin,
    supervisor_registry,
    workers_health,
)

__all__ = ["SupervisorAdmin"]

_PREFIX = "aupgate_admin="


@dataclass
class SupervisorAdmin:
    """Where the supervisor serves the endpoint (None: nowhere), and the workers' metric files."""

    address: tuple[str, int] | None
    directory: str | None = None
    server: AdminServer | None = None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_specs(cls, specs: Sequence[str], listen_host: str) -> SupervisorAdmin:
        """The last `aupgate_admin=` setting (ValueError: a bad or unsafe address)."""
        given = [spec[len(_PREFIX):] for spec in specs if spec.startswith(_PREFIX)]
        address = parse_admin(given[-1], listen_host) if given else None
        admin = cls(address)
        if address is not None:
            admin.directory = make_multiproc_dir()
            admin.env = {MULTIPROC_ENV: admin.directory}
        return admin

    @staticmethod
    def worker_specs(specs: Sequence[str]) -> list[str]:
        """The workers' settings: the endpoint is the supervisor's, not theirs."""
        return [spec for spec in specs if not spec.startswith(_PREFIX)]

    def serve(self, view: Callable[[], tuple[int, int, int]]) -> None:
        """Bind the endpoint (OSError: the port is taken)."""
        if self.address is None or self.directory is None:
            return
        registry = supervisor_registry(self.directory, view)
        self.server = AdminServer(self.address, registry, lambda: workers_health(registry))

    def worker_ended(self, pid: int | None) -> None:
        if self.directory is not None and pid is not None:
            mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
