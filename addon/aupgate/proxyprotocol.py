"""The PROXY protocol (HAProxy's, versions 1 and 2): the client address a load balancer passes on.

A TCP load balancer in front of the gateway hides every client behind its own address, and
aupgate decides by client address (agency, device class, warn passes). With the PROXY protocol
the balancer starts each connection with a short header naming the client it accepted; this
module reads that header. It is pure: bytes in, a `ProxyHeader` (or what it still needs, or an
error) out, no sockets, no clock, nothing from mitmproxy, so every odd byte sequence can be tested
directly. The listener (`aupgate.mitm.listener`) feeds it the first bytes of a connection from a
trusted balancer and hands mitmproxy the stream after the header, with the client's address.

Specification: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt. Reading it the
strict way on purpose, because the header decides who a connection belongs to:

- `parse` never asks for a byte past the end of a header (`Incomplete.needed` is a total that a
  header of that kind cannot end before), so the listener can read exactly the header and leave
  the client's own bytes to mitmproxy;
- v1: one line of at most 107 bytes, single spaces, `TCP4` with dotted quads, `TCP6` with IPv6
  addresses (no zone), decimal ports 0-65535 without leading zeros. `UNKNOWN` means "use the
  connection's own addresses" (the spec says so), like v2's LOCAL;
- v2: the 12-byte signature, version 2, command LOCAL or PROXY, a known family and transport, and
  a length within `MAX_V2_PAYLOAD`; the address block must fit in it and the TLVs after it must
  fill it exactly. PROXY with an address family that carries no IP address (UNSPEC, UNIX), or a
  datagram transport on this TCP listener, is refused: the gateway cannot decide a client it
  cannot place, and guessing the balancer's address would put everyone under the default agency.
"""

from __future__ import annotations

import contextlib
import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest v1 line, CRLF included (the spec's worst case, an UNKNOWN line)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version/command, family/transport, payload length
MAX_V2_PAYLOAD = 4096
"""Largest v2 address block + TLVs accepted. The spec allows 65,535; balancers send tens of bytes
(a few hundred with TLS details). A bound keeps a trusted but misconfigured peer from making the
gateway buffer 64 KiB per connection before anything is decided."""

FIRST_READ = len(b"PROXY UNKNOWN\r\n")  # 15: no header of either version is shorter
"""Bytes to read before the first `parse`: reading this many never reads past a header."""

_INET = {0x1: (4, 12), 0x2: (16, 36)}  # family -> (address bytes, address block bytes)
_FAMILIES = {0x0: "UNSPEC", 0x1: "INET", 0x2: "INET6", 0x3: "UNIX"}
_TRANSPORTS = {0x0: "UNSPEC", 0x1: "STREAM", 0x2: "DGRAM"}
_UNIX_BLOCK = 216

Address = tuple[str, int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyProtocolError(ValueError):
    """The bytes are not a PROXY protocol header this gateway accepts; the message says why."""


class Incomplete(NamedTuple):
    """More bytes are needed: read until `needed` bytes have arrived in all, then parse again."""

    needed: int


class Tlv(NamedTuple):
    """One v2 type-length-value field after the addresses (ALPN, authority, TLS details...)."""

    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed header: how long it was, and the client and the address it connected to.

    `source` and `destination` are None for v2 LOCAL and v1 UNKNOWN: the balancer made the
    connection itself (a health check) or does not know the client, and the spec says to use the
    connection's own addresses then.
    """

    version: Literal[1, 2]
    length: int
    source: Address | None
    destination: Address | None
    tlvs: tuple[Tlv, ...] = ()

    @property
    def local(self) -> bool:
        """True when the connection's own addresses stand (v2 LOCAL, v1 UNKNOWN)."""
        return self.source is None


def parse(data: bytes) -> ProxyHeader | Incomplete:
    """Read a header from the first bytes of a connection (all of them received so far).

    Returns the header (its `length` may be less than `len(data)` only if the caller read past
    it, which reading by `Incomplete.needed` never does), or `Incomplete` with the total to read
    before calling again. Raises `ProxyProtocolError` as soon as the bytes cannot become a valid
    header.
    """
    if data[:12] == V2_SIGNATURE[: len(data[:12])] and data[:1] == b"\r":
        return _parse_v2(data)
    if data[:6] == V1_PREFIX[: len(data[:6])] and data[:1] == b"P":
        return _parse_v1(data)
    if not data:
        return Incomplete(FIRST_READ)
    raise ProxyProtocolError("not a PROXY protocol header (neither the v1 nor the v2 signature)")


def starts_like_header(data: bytes) -> bool | None:
    """Whether a connection's first bytes are a PROXY signature: True, False, or None while
    `data` is still a proper prefix of one (`P`, `PRO`, `\\r\\n`...) and more bytes will tell.

    Used on connections from untrusted peers, whose headers are refused rather than read.
    """
    for signature in (V1_PREFIX, V2_SIGNATURE):
        if data[: len(signature)] == signature:
            return True
        if len(data) < len(signature) and signature.startswith(data):
            return None
    return False


# --------------------------------------------------------------------------- version 1


def _parse_v1(data: bytes) -> ProxyHeader | Incomplete:
    end = data.find(b"\r\n")
    if end == -1:
        if b"\n" in data or b"\r" in data[:-1]:
            raise ProxyProtocolError("v1 header: a line break that is not CRLF")
        if len(data) >= V1_MAX:
            raise ProxyProtocolError(f"v1 header: no CRLF within {V1_MAX} bytes")
        return Incomplete(max(FIRST_READ, len(data) + 1))
    length = end + 2
    if length > V1_MAX:
        raise ProxyProtocolError(f"v1 header: longer than {V1_MAX} bytes")
    if b"\r" in data[:end] or b"\n" in data[:end]:
        raise ProxyProtocolError("v1 header: a line break that is not CRLF")
    if data[6:13] == b"UNKNOWN" and data[13:14] in (b" ", b"\r"):
        return ProxyHeader(1, length, None, None)  # the spec: ignore the rest of the line
    try:
        line = data[:end].decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProxyProtocolError("v1 header: bytes that are not ASCII") from exc
    parts = line.split(" ")
    if len(parts) != 6:
        raise ProxyProtocolError(
            "v1 header: expected 'PROXY TCP4|TCP6 SRC DST SPORT DPORT' with single spaces"
        )
    _, proto, src, dst, sport, dport = parts
    if proto not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"v1 header: unknown protocol {proto[:8]!r}")
    version = 4 if proto == "TCP4" else 6
    source = (_v1_address(src, version), _v1_port(sport))
    destination = (_v1_address(dst, version), _v1_port(dport))
    return ProxyHeader(1, length, source, destination)


def _v1_address(text: str, version: int) -> str:
    if "%" in text:
        raise ProxyProtocolError("v1 header: an address with a zone (%) is not a client address")
    try:
        address = ipaddress.ip_address(text)
    except ValueError as exc:
        raise ProxyProtocolError(f"v1 header: {text[:45]!r} is not an IP address") from exc
    if address.version != version:
        raise ProxyProtocolError(f"v1 header: {text!r} is not an IPv{version} address")
    return str(address)


def _v1_port(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or (
            len(text) > 1 and text[0] == "0"):
        raise ProxyProtocolError(f"v1 header: {text[:8]!r} is not a port number")
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError(f"v1 header: port {port} is out of range")
    return port


# --------------------------------------------------------------------------- version 2


def _parse_v2(data: bytes) -> ProxyHeader | Incomplete:
    if len(data) < V2_FIXED:
        return Incomplete(V2_FIXED)
    version, command = data[12] >> 4, data[12] & 0xF
    if version != 2:
        raise ProxyProtocolError(f"v2 header: version {version}, expected 2")
    if command not in (0x0, 0x1):
        raise ProxyProtocolError(f"v2 header: unknown command {command:#x}")
    family, transport = data[13] >> 4, data[13] & 0xF
    if family not in _FAMILIES or transport not in _TRANSPORTS:
        raise ProxyProtocolError(f"v2 header: unknown address family/transport {data[13]:#04x}")
    (payload,) = struct.unpack_from("!H", data, 14)
    if payload > MAX_V2_PAYLOAD:
        raise ProxyProtocolError(
            f"v2 header: {payload} bytes of addresses and TLVs, more than {MAX_V2_PAYLOAD}"
        )
    length = V2_FIXED + payload
    if len(data) < length:
        return Incomplete(length)
    body = data[V2_FIXED:length]
    if command == 0x0:  # LOCAL: the balancer's own connection; the spec says ignore the block
        return ProxyHeader(2, length, None, None)
    if family not in _INET:
        raise ProxyProtocolError(
            f"v2 header: PROXY for a {_FAMILIES[family]} address, which names no client IP "
            "address to decide by"
        )
    if transport != 0x1:
        raise ProxyProtocolError(
            f"v2 header: {_TRANSPORTS[transport]} transport on a TCP listener"
        )
    size, block = _INET[family]
    if payload < block:
        raise ProxyProtocolError(
            f"v2 header: {payload} bytes cannot hold the {_FAMILIES[family]} addresses ({block})"
        )
    src = ipaddress.ip_address(body[:size])
    dst = ipaddress.ip_address(body[size : 2 * size])
    sport, dport = struct.unpack_from("!HH", body, 2 * size)
    tlvs = tuple(_tlvs(body[block:]))
    return ProxyHeader(2, length, (str(src), sport), (str(dst), dport), tlvs)


def _tlvs(data: bytes) -> Iterable[Tlv]:
    at = 0
    while at < len(data):
        if len(data) - at < 3:
            raise ProxyProtocolError("v2 header: a truncated TLV after the addresses")
        kind = data[at]
        (size,) = struct.unpack_from("!H", data, at + 1)
        if at + 3 + size > len(data):
            raise ProxyProtocolError(
                f"v2 header: TLV {kind:#04x} says {size} bytes, only {len(data) - at - 3} follow"
            )
        yield Tlv(kind, data[at + 3 : at + 3 + size])
        at += 3 + size


# --------------------------------------------------------------------------- writing


def encode_v1(source: Address | None, destination: Address | None = None) -> bytes:
    """A v1 line for the addresses (UNKNOWN when `source` is None): for tests and tools."""
    if source is None or destination is None:
        return b"PROXY UNKNOWN\r\n"
    proto = "TCP4" if ipaddress.ip_address(source[0]).version == 4 else "TCP6"
    return f"PROXY {proto} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def encode_v2(
    source: Address | None,
    destination: Address | None = None,
    *,
    tlvs: Sequence[Tlv] = (),
) -> bytes:
    """A v2 header: PROXY for the addresses, LOCAL when `source` is None; TLVs appended."""
    extra = b"".join(struct.pack("!BH", t.type, len(t.value)) + t.value for t in tlvs)
    if source is None or destination is None:
        return V2_SIGNATURE + struct.pack("!BBH", 0x20, 0x00, len(extra)) + extra
    src = ipaddress.ip_address(source[0])
    dst = ipaddress.ip_address(destination[0])
    family = 0x1 if src.version == 4 else 0x2
    block = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1]) + extra
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, (family << 4) | 0x1, len(block)) + block


# --------------------------------------------------------------------------- who may send one


def parse_trusted(specs: Iterable[str]) -> tuple[Network, ...]:
    """`aupgate_proxy_protocol_from`: addresses and networks (comma- or space-separated) whose
    connections must start with a PROXY header. A bare address means that one host."""
    networks: list[Network] = []
    for spec in specs:
        for item in spec.replace(",", " ").split():
            try:
                networks.append(ipaddress.ip_network(item, strict=True))
            except ValueError as exc:
                hint = ""
                with contextlib.suppress(ValueError):
                    hint = f"; did you mean {ipaddress.ip_network(item, strict=False)}?"
                raise ValueError(f"'{item}' is not an address or network{hint}") from exc
    return tuple(networks)


def is_trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, networks: Sequence[Network]
) -> bool:
    """Whether a peer's address is in one of the trusted networks."""
    if address is None:
        return False
    return any(address in network for network in networks)
