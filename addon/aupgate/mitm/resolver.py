"""`aupgate_resolve`: answer name lookups for chosen names, like `curl --resolve`.

The override works where curl's does, in name resolution: mitmproxy opens upstream connections
with `asyncio.open_connection(host, port)`, which asks the event loop's `getaddrinfo`; for a name
and port in the table the answer is the configured address and port, for anything else the real
resolver is asked. The upstream connection keeps the name as its address, so everything mitmproxy
does by address works as it does with real DNS: decisions, the audit log, the SNI and certificate
checks use the name; a kept-alive connection is reused for the next request to the same name; and
mitmproxy's limit of five concurrent upstream connections per address and client connection
counts per name.

(Rewriting `server.address` in `server_connect`, as this once did, broke the last two: mitmproxy
matches reusable connections by address, so every request opened a new connection, the old ones
stayed open, and the sixth request on a kept-alive client connection waited for a free slot for
as long as the upstream kept its idle connections open.)

An IP literal in a request is never looked up, so it is never redirected either, as with DNS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from . import options as opts

logger = logging.getLogger(__name__)

AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
GetAddrInfo = Callable[..., Awaitable[Any]]


def answer(
    table: Mapping[tuple[str, int], tuple[str, int]], host: object, port: object,
    type_: int, proto: int,
) -> list[AddrInfo] | None:
    """The getaddrinfo answer for an overridden (host, port), or None to ask the real resolver."""
    if not table:
        return None
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str) or not host:
        return None
    try:
        port_number = int(port)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None  # a service name ("http"): not something the table can name
    target = opts.resolve(table, host, port_number)
    if target is None:
        return None
    address, to_port = target
    sockaddr: tuple[Any, ...]
    if ipaddress.ip_address(address).version == 6:
        family, sockaddr = socket.AF_INET6, (address, to_port, 0, 0)
    else:
        family, sockaddr = socket.AF_INET, (address, to_port)
    return [(family, type_ or socket.SOCK_STREAM, proto or socket.IPPROTO_TCP, "", sockaddr)]


class ResolveOverride:
    """The override table and the event loop it is installed on."""

    def __init__(self) -> None:
        self.table: dict[tuple[str, int], tuple[str, int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._installed: GetAddrInfo | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Answer lookups on `loop` from the table (read at each lookup, so it may change)."""
        if self._loop is loop:
            return
        self.uninstall()
        original: GetAddrInfo = loop.getaddrinfo

        async def getaddrinfo(host: Any, port: Any, *, family: int = 0, type: int = 0,
                              proto: int = 0, flags: int = 0) -> list[AddrInfo]:
            found = answer(self.table, host, port, type, proto)
            if found is not None:
                return found
            result: list[AddrInfo] = await original(host, port, family=family, type=type,
                                                    proto=proto, flags=flags)
            return result

        setattr(loop, "getaddrinfo", getaddrinfo)  # noqa: B010 - an instance override
        self._loop, self._installed = loop, getaddrinfo

    def configure(self, specs: Sequence[str]) -> None:
        """`aupgate_resolve`: the table from its entries, each override said aloud (a test aid
        that must never pass unnoticed), followed at once when a loop runs (else `running`)."""
        self.table = opts.resolve_table(specs)
        for (host, port), (addr, to_port) in self.table.items():
            logger.warning("aupgate: resolve override %s:%s -> %s:%s", host, port, addr, to_port)
        with contextlib.suppress(RuntimeError):  # no loop yet
            self.follow(asyncio.get_running_loop())

    def follow(self, loop: asyncio.AbstractEventLoop) -> None:
        """Installed on `loop` while the table has overrides (`aupgate_resolve`), else not."""
        if self.table:
            self.install(loop)
        else:
            self.uninstall()

    def uninstall(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and vars(loop).get("getaddrinfo") is self._installed:
            del loop.getaddrinfo
        self._installed = None
