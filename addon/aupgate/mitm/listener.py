"""Where client connections enter `aupgate run`: shared listening sockets and the PROXY protocol.

mitmproxy 11 listens with `asyncio.start_server(instance.handle_stream, host, port)` in
`mitmproxy/proxy/mode_servers.py` and has no PROXY protocol (upstream issue #4776). This addon
takes over those two points of each TCP server instance before it starts (the proxyserver addon
announces new, not yet started instances on `servers.changed`), and nothing else:

- `listen`: with `--workers`, the supervisor binds the listening sockets once and every worker
  inherits them (`AUPGATE_LISTEN_FDS`); a worker serves the inherited socket instead of binding
  its own. Why one shared socket rather than `SO_REUSEPORT`: see `aupgate.mitm.workers`.
- `handle_stream`: a connection from an address in `aupgate_proxy_protocol_from` must start with
  a PROXY header (v1 or v2), read here with `aupgate.proxyprotocol` before mitmproxy sees a byte;
  mitmproxy and aupgate then see the client's address as the connection's peer. A trusted peer
  that sends no header, a garbled one, or nothing within `HEADER_TIMEOUT` is disconnected. A
  PROXY header from any other address is refused too (disconnected and logged): nobody else may
  claim to speak for a client.

Without inherited sockets and without trusted balancers the only cost is one wrapped first read
per connection (`_UntrustedReader`), which refuses PROXY headers from clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from mitmproxy import ctx
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import mode_specs
from mitmproxy.proxy.mode_servers import AsyncioServerInstance, ServerInstance

from ..identity import client_address
from ..proxyprotocol import (
    FIRST_READ,
    Incomplete,
    Network,
    ProxyHeader,
    ProxyProtocolError,
    is_trusted,
    parse,
    parse_trusted,
    starts_like_header,
)
from .guard import options_error

logger = logging.getLogger(__name__)

LISTEN_FDS_ENV = "AUPGATE_LISTEN_FDS"
"""Set by the supervisor for its workers: JSON list of {"host", "port", "fds"}."""

BACKLOG = 1024
"""Length of the shared socket's listen queue (the supervisor's `listen()`)."""

ACCEPTS_PER_WAKEUP = 1
"""Connections a worker accepts each time the shared socket wakes it. asyncio accepts up to its
`backlog` argument per wake-up, so the first worker to wake took a whole burst of new keep-alive
connections: with 20 opened at once the two workers of a 2-core box served 22/78 %, 85/15 %,
52/48 % of the requests in three runs, against 48/52 %, 50/50 %, 49/51 % accepting one at a time
(docs/benchmarks.md, "Scale"). One at a time, the worker that is free takes the next connection,
as nginx does with `multi_accept off`."""

HEADER_TIMEOUT = 5.0
"""Seconds a trusted balancer has to send the PROXY header. Balancers send it with the first
packet; a peer that has sent nothing by then is not speaking the protocol."""

SHAREABLE_MODES = ("regular", "upstream", "socks5", "reverse", "transparent")

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# --------------------------------------------------------------------------- listen addresses


def listen_addresses(modes: Sequence[str], listen_host: str, listen_port: int,
                     ) -> list[tuple[str, int]]:
    """The (host, port) each proxy mode listens on, as mitmproxy's server instances work it out.

    An empty listen_host means 127.0.0.1 under aupgate (the addon narrows it the same way).
    Raises ValueError for a mode whose listener cannot be shared between workers.
    """
    found: list[tuple[str, int]] = []
    for spec in modes:
        mode = mode_specs.ProxyMode.parse(spec)
        if mode.type_name not in SHAREABLE_MODES or mode.transport_protocol != "tcp":
            raise ValueError(f"proxy mode '{spec}' cannot be shared between workers; run it "
                             "with --workers 1")
        port = mode.listen_port(listen_port)
        assert port is not None  # every TCP mode has a port
        found.append((mode.listen_host(listen_host or "127.0.0.1"), port))
    return found


def bind_shared(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for host:port (one per address the name has), to hand to workers.

    Bound to the address given, never wider; inheritable so that workers get them.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[Any] = set()
    try:
        for family, kind, proto, _, address in infos:
            if address in seen:
                continue
            seen.add(address)
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.set_inheritable(True)
            if port == 0:  # the same kernel-chosen port for every address of the name
                port = sock.getsockname()[1]
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def inherited_env(bound: Mapping[tuple[str, int], Sequence[socket.socket]]) -> str:
    """The `AUPGATE_LISTEN_FDS` value describing the bound sockets to a worker."""
    return json.dumps([{"host": host, "port": port, "fds": [s.fileno() for s in socks]}
                       for (host, port), socks in bound.items()])


class InheritedSockets:
    """Listening sockets a worker got from its supervisor, by the address they were bound for."""

    def __init__(self, by_address: dict[tuple[str, int], list[int]]) -> None:
        self._by_address = by_address

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> InheritedSockets | None:
        text = environ.get(LISTEN_FDS_ENV)
        if not text:
            return None
        entries = json.loads(text)
        return cls({(str(e["host"]), int(e["port"])): [int(fd) for fd in e["fds"]]
                    for e in entries})

    def take(self, host: str, port: int) -> list[socket.socket]:
        """New socket objects for the inherited descriptors of host:port (duplicated, so that
        mitmproxy closing its server does not close the worker's inherited descriptor)."""
        fds = self._by_address.get((host, port))
        if not fds:
            known = ", ".join(f"{h}:{p}" for h, p in self._by_address) or "none"
            raise OSError(f"the supervisor passed no listening socket for {host}:{port} "
                          f"(passed: {known}); options differ between supervisor and worker")
        return [socket.socket(fileno=os.dup(fd)) for fd in fds]


# --------------------------------------------------------------------------- streams


class _ClientAddressWriter:
    """A stream writer whose peer is the client named in the PROXY header, not the balancer.

    mitmproxy reads a client's address from `writer.get_extra_info("peername")` once, when it
    makes the connection's `Client`; every other use goes to the real writer's own methods,
    bound here once so that a write costs no extra call.
    """

    def __init__(self, writer: asyncio.StreamWriter, header: ProxyHeader) -> None:
        self._writer = writer
        self._extra = {"peername": header.source, "sockname": header.destination}
        self.transport = writer.transport
        self.write = writer.write
        self.writelines = writer.writelines
        self.write_eof = writer.write_eof
        self.can_write_eof = writer.can_write_eof
        self.drain = writer.drain
        self.close = writer.close
        self.is_closing = writer.is_closing
        self.wait_closed = writer.wait_closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            return self._extra[name]
        return self._writer.get_extra_info(name, default)


class _UntrustedReader:
    """A client's stream whose first read refuses a PROXY header (only balancers may send one).

    After the first read, `read` is the stream's own method again.
    """

    def __init__(self, reader: asyncio.StreamReader, refuse: Callable[[], None]) -> None:
        self._reader = reader
        self._refuse = refuse
        self.read: Callable[[int], Awaitable[bytes]] = self._first_read

    async def _first_read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        verdict = starts_like_header(data)
        while data and verdict is None and (n < 0 or len(data) < n):
            more = await self._reader.read(n - len(data) if n > 0 else 65536)
            if not more:
                break
            data += more
            verdict = starts_like_header(data)
        self.read = self._reader.read
        if verdict:
            self._refuse()
            raise ConnectionAbortedError("PROXY protocol header from an untrusted peer")
        return data


class _Complaints:
    """Log refused connections: up to `burst` lines a minute, then a count of the rest. A flood
    of bad connections must not become a flood of log lines."""

    def __init__(self, burst: int = 20, per: float = 60.0) -> None:
        self.burst, self.per = burst, per
        self._times: deque[float] = deque()
        self._quiet = 0

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        while self._times and now - self._times[0] > self.per:
            self._times.popleft()
        if len(self._times) >= self.burst:
            self._quiet += 1
            return
        suffix = f" ({self._quiet} more refused and not logged before this)" if self._quiet else ""
        self._times.append(now)
        self._quiet = 0
        logger.warning("aupgate: " + message + suffix, *args)


# --------------------------------------------------------------------------- the addon


class Listener:
    """Takes over `listen` and `handle_stream` of mitmproxy's TCP server instances."""

    def __init__(self, inherited: InheritedSockets | None = None) -> None:
        self.inherited = inherited
        self.trusted: tuple[Network, ...] = ()
        self._complain = _Complaints()

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "aupgate_proxy_protocol_from", Sequence[str], [],
            "Load balancers (addresses or networks, e.g. 10.0.0.5 or 10.0.0.0/29) whose "
            "connections start with a PROXY protocol header (v1 or v2) naming the client. "
            "Connections from them without a valid header are refused, and so is a header from "
            "anyone else.")
        proxyserver = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
        proxyserver.servers.changed.connect(self._adopt)

    def configure(self, updated: set[str]) -> None:
        if "aupgate_proxy_protocol_from" in updated:
            try:
                self.trusted = parse_trusted(ctx.options.aupgate_proxy_protocol_from)
            except ValueError as exc:
                raise options_error(f"aupgate_proxy_protocol_from: {exc}") from exc
            if self.trusted:
                logger.info("aupgate: PROXY protocol expected from %s",
                            ", ".join(str(n) for n in self.trusted))
        if {"aupgate_proxy_protocol_from", "mode"} & updated and self.trusted and any(
                m.startswith("transparent") for m in ctx.options.mode):
            raise options_error("aupgate_proxy_protocol_from: transparent mode reads the "
                                "destination from the socket and cannot sit behind a balancer")

    def _adopt(self) -> None:
        """Take over each TCP server instance that has not started yet."""
        proxyserver = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
        for instance in proxyserver.servers:
            if (isinstance(instance, AsyncioServerInstance) and not instance.is_running
                    and instance.mode.transport_protocol == "tcp"
                    and "handle_stream" not in vars(instance)):
                self._take_over(instance)

    def _take_over(self, instance: AsyncioServerInstance[Any]) -> None:
        inner = ServerInstance.handle_stream.__get__(instance)
        entry = self._entry(inner)
        instance.handle_stream = entry  # type: ignore[method-assign,assignment]
        if self.inherited is not None:
            inherited = self.inherited

            async def listen(host: str, port: int) -> list[Any]:
                servers = []
                for sock in inherited.take(host, port):
                    # asyncio's `backlog` is both the listen() length and the accepts per
                    # wake-up: serve with the latter, then give the shared queue its length back.
                    servers.append(await asyncio.start_server(entry, sock=sock,
                                                              backlog=ACCEPTS_PER_WAKEUP))
                    sock.listen(BACKLOG)
                return servers

            instance.listen = listen  # type: ignore[method-assign]

    def _entry(self, inner: Callable[..., Awaitable[None]]) -> StreamHandler:
        """The stream handler the server calls for each accepted client connection."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")
            if self.trusted and is_trusted(client_address(peer), self.trusted):
                header = await self._read_header(reader, peer)
                if header is None:
                    writer.close()
                    return
                if not header.local:
                    await inner(reader, _ClientAddressWriter(writer, header))
                    return
                await inner(reader, writer)
                return
            await inner(_UntrustedReader(reader, lambda: self._complain(
                "refused a PROXY protocol header from %s, which is not in "
                "aupgate_proxy_protocol_from", _text(peer))), writer)

        return handle

    async def _read_header(self, reader: asyncio.StreamReader,
                           peer: Any) -> ProxyHeader | None:
        """Exactly the header's bytes from a trusted balancer; None (logged) if it sent none."""
        data = b""
        needed = FIRST_READ
        try:
            async with asyncio.timeout(HEADER_TIMEOUT):
                while True:
                    data += await reader.readexactly(needed - len(data))
                    result = parse(data)
                    if not isinstance(result, Incomplete):
                        return result
                    needed = result.needed
        except ProxyProtocolError as exc:
            self._complain("refused a connection from balancer %s: %s", _text(peer), exc)
        except TimeoutError:
            self._complain("refused a connection from balancer %s: no PROXY protocol header "
                           "within %gs", _text(peer), HEADER_TIMEOUT)
        except (asyncio.IncompleteReadError, OSError):
            self._complain("refused a connection from balancer %s: closed before a complete "
                           "PROXY protocol header", _text(peer))
        return None


def _text(peer: Any) -> str:
    with contextlib.suppress(Exception):
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)
