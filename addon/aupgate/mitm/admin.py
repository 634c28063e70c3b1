"""The admin endpoint: `/metrics` (Prometheus text format) and `/healthz`, on its own port.

`aupgate run --admin [HOST:]PORT` (the `aupgate_admin` option) serves it; HOST defaults to
127.0.0.1 and must be a loopback address or the address the proxy itself listens on (never a
wildcard): the numbers name agencies and policy digests, and a health check is nobody else's
business. Served by prometheus-client's threaded WSGI server in a thread of its own, so a scrape
never waits behind traffic on the proxy's event loop and traffic never waits behind a scrape.

- `/metrics`: what `metrics.GatewayMetrics` counts; with `--workers`, the supervisor serves the
  sum of every worker's values (prometheus-client's multiprocess mode) and its own view of the
  workers (alive, configured, restarts).
- `/healthz`: 200 `ok` when the gateway can take traffic, else 503 with one reason per line: no
  policy loaded, an audit file that cannot be written, (with `--workers`) no worker serving.
  HAProxy's health check and systemd's watchdog script use it (deploy/).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ..audit.log import AuditLog
from ..gateway import Gateway
from .metrics import GatewayMetrics, health_problems

__all__ = ["MULTIPROC_ENV", "AdminEdge", "AdminServer", "WorkersCollector", "make_multiproc_dir",
           "parse_admin", "supervisor_registry", "workers_health"]

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's multiprocess mode: set for the workers of `--workers` (their values go to
files there); the supervisor sums them."""

Health = Callable[[], list[str]]
"""Why the gateway should not get traffic (empty: healthy)."""

LOOP_WAIT = 2.5
"""Seconds /healthz waits for the proxy's event loop to answer (HAProxy's check timeout is 3 s):
the endpoint is served from its own thread, so without this a wedged proxy would look healthy."""
STALE_AFTER = 5.0
"""With --workers: a worker whose state is older than this is stuck (it refreshes every second)."""


def parse_admin(text: str, listen_host: str) -> tuple[str, int] | None:
    """`aupgate_admin`: "" (off), `PORT` or `HOST:PORT` (`[V6]:PORT`); HOST a loopback address
    or the proxy's own listen address, never a wildcard. Raises ValueError."""
    text = text.strip()
    if not text:
        return None
    host, port_text = "127.0.0.1", text
    if ":" in text:
        host, _, port_text = text.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise ValueError(f"aupgate_admin '{text}': an IPv6 address goes in brackets, "
                             "[::1]:PORT")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"aupgate_admin '{text}': '{port_text}' is not a port number (1-65535)")
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"aupgate_admin '{text}': '{host}' is not an IP address") from exc
    own = listen_host.strip().strip("[]")
    if not address.is_loopback and (address.is_unspecified or str(address) != own):
        raise ValueError(f"aupgate_admin '{text}': the admin endpoint binds only to a loopback "
                         f"address or the proxy's own listen address ({listen_host or 'none'})")
    return str(address), int(port_text)


class AdminEdge:
    """The addon's side: its metrics, the endpoint when it serves one, a worker's publishing."""

    def __init__(self, gateway_of: Callable[[], Gateway | None],
                 audit_of: Callable[[], AuditLog]) -> None:
        self.metrics = GatewayMetrics()
        self.server: AdminServer | None = None
        self._gateway_of, self._audit_of = gateway_of, audit_of
        self._publishing: asyncio.Task[None] | None = None
        self._serving: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def health(self) -> list[str]:
        problems = health_problems(self._gateway_of(), self._audit_of())
        if self._loop is not None and not loop_answers(self._loop, LOOP_WAIT):
            problems.append(f"the proxy's event loop has not answered for {LOOP_WAIT:g} s")
        return problems

    def refresh(self) -> None:
        self.metrics.refresh(self._gateway_of(), self._audit_of())

    def configure(self, text: str, listen_host: str) -> None:
        """Serve `aupgate_admin` (ValueError: a bad or unsafe address; OSError: cannot bind)."""
        address = parse_admin(text, listen_host)
        if address == self._serving:
            return
        self.close_server()
        if address is not None:
            self.server = AdminServer(address, self.metrics.registry, self.health, self.refresh)
            self._serving = address

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Note the proxy's loop (for /healthz); a worker of `--workers` publishes its state for
        the supervisor every second."""
        self._loop = loop
        if os.environ.get(MULTIPROC_ENV) and self._publishing is None:
            self._publishing = loop.create_task(
                self.metrics.publish(self._gateway_of, self._audit_of))

    def close_server(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server, self._serving = None, None

    def close(self) -> None:
        self.close_server()
        if self._publishing is not None:
            self._publishing.cancel()
            self._publishing = None


def loop_answers(loop: asyncio.AbstractEventLoop, timeout: float) -> bool:
    """Whether `loop` runs a callback from another thread within `timeout` seconds."""
    answered = threading.Event()
    try:
        loop.call_soon_threadsafe(answered.set)
    except RuntimeError:  # closed: the proxy is stopping
        return False
    return answered.wait(timeout)


class AdminServer:
    """`/metrics` and `/healthz` on (host, port), served from a daemon thread."""

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, health: Health,
                 before_scrape: Callable[[], None] = lambda: None) -> None:
        host, port = address
        metrics_app = make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                try:
                    before_scrape()
                except Exception:  # a scrape shows what was counted; the failure is logged
                    logger.exception("aupgate: could not refresh the metrics")
                return metrics_app(environ, start_response)  # type: ignore[no-any-return]
            if path == "/healthz":
                try:
                    problems = health()
                except Exception as exc:
                    problems = [f"health check failed: {exc!r}"]
                body = ("\n".join(problems) if problems else "ok").encode() + b"\n"
                start_response("503 Service Unavailable" if problems else "200 OK",
                               [("Content-Type", "text/plain; charset=utf-8"),
                                ("Cache-Control", "no-store")])
                return [body]
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: the admin endpoint serves /metrics and /healthz\n"]

        server_class = _V6Server if ":" in host else ThreadingWSGIServer
        self.httpd = make_server(host, port, app, server_class, handler_class=_Handler)
        bound = self.httpd.server_address
        self.address: tuple[str, int] = (str(bound[0]), int(bound[1]))
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="aupgate-admin",
                                        daemon=True)
        self._thread.start()
        logger.info("aupgate: admin endpoint on http://%s/metrics and /healthz",
                    _shown(*self.address))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(_SilentHandler):
    """prometheus-client's quiet handler, with a deadline: a client that connects and sends
    nothing (or sends slowly) holds its thread for at most this long."""

    timeout = 10


class _V6Server(ThreadingWSGIServer):
    address_family = socket.AF_INET6


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --------------------------------------------------------------------------- supervisor side


class WorkersCollector(Collector):
    """The supervisor's view of its workers, read at each scrape."""

    def __init__(self, view: Callable[[], tuple[int, int, int]]) -> None:
        self._view = view  # () -> (alive and serving, configured, restarts so far)

    def collect(self) -> Iterator[Metric]:
        alive, configured, restarts = self._view()
        yield GaugeMetricFamily("aupgate_workers_alive",
                                "Worker processes running and serving", value=alive)
        yield GaugeMetricFamily("aupgate_workers_configured",
                                "Worker processes the supervisor keeps (--workers)",
                                value=configured)
        yield CounterMetricFamily("aupgate_worker_restarts",
                                  "Workers restarted after they ended", value=restarts)


def supervisor_registry(directory: str, view: Callable[[], tuple[int, int, int]]
                        ) -> CollectorRegistry:
    """Every worker's metrics (from `directory`) summed, and the supervisor's own."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(WorkersCollector(view))
    return registry


def workers_health(registry: CollectorRegistry) -> list[str]:
    """`/healthz` of a supervisor: from the values the workers published."""
    values = {name: registry.get_sample_value(name) for name in
              ("aupgate_workers_alive", "aupgate_policy_loaded", "aupgate_audit_writable",
               "aupgate_refreshed_timestamp_seconds")}
    problems = []
    if not values["aupgate_workers_alive"]:
        problems.append("no worker serving")
    if values["aupgate_policy_loaded"] is None:
        problems.append("no worker has reported yet")
    elif values["aupgate_policy_loaded"] == 0:
        problems.append("no policy loaded (in at least one worker)")
    if values["aupgate_audit_writable"] == 0:
        problems.append("audit log cannot be written (in at least one worker)")
    refreshed = values["aupgate_refreshed_timestamp_seconds"]
    if refreshed and (age := time.time() - refreshed) > STALE_AFTER:
        problems.append(f"a worker has not refreshed its state for {age:.0f} s (stuck?)")
    return problems


def make_multiproc_dir() -> str:
    """A fresh, private directory for the workers' metric files."""
    directory = tempfile.mkdtemp(prefix="aupgate-metrics-")
    return directory
