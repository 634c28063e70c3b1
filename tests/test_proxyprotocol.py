"""The PROXY protocol parser: what a trusted balancer sends is read exactly, anything else refused.

The parser decides whose connection this is, so it is attacked here: truncated and oversized
headers, wrong signatures and versions, LOCAL and UNSPEC/UNIX families, TLVs that overrun, odd
spellings of v1 lines, and arbitrary bytes. Reading by `Incomplete.needed` must never take a byte
of the client's own data.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aupgate.proxyprotocol import (
    FIRST_READ,
    MAX_V2_PAYLOAD,
    V1_MAX,
    V2_SIGNATURE,
    Incomplete,
    ProxyHeader,
    ProxyProtocolError,
    Tlv,
    encode_v1,
    encode_v2,
    is_trusted,
    parse,
    parse_trusted,
    starts_like_header,
)

ports = st.integers(0, 65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
addresses = st.one_of(
    st.tuples(st.tuples(ipv4, ports), st.tuples(ipv4, ports)),
    st.tuples(st.tuples(ipv6, ports), st.tuples(ipv6, ports)),
)
tlvs = st.lists(st.builds(Tlv, st.integers(0, 255), st.binary(max_size=64)), max_size=4)


def read_like_the_listener(stream: bytes) -> tuple[ProxyHeader, bytes]:
    """What the listener does: read exactly `needed` bytes at a time until a header is whole."""
    buffer, position, needed = b"", 0, FIRST_READ
    while True:
        if needed > len(stream):
            raise EOFError
        buffer += stream[position:needed]
        position = needed
        result = parse(buffer)
        if isinstance(result, Incomplete):
            assert result.needed > len(buffer), "asked for nothing new: would loop for ever"
            needed = result.needed
            continue
        assert result.length == len(buffer), "a header ended before the bytes read"
        return result, stream[position:]


# --------------------------------------------------------------------------- round trips


@given(addresses, st.binary(max_size=64))
def test_v1_round_trip_leaves_the_client_bytes(pair: tuple, rest: bytes) -> None:
    source, destination = pair
    header = encode_v1(source, destination)
    assert len(header) <= V1_MAX
    parsed, left = read_like_the_listener(header + rest)
    assert parsed.version == 1 and parsed.length == len(header)
    assert parsed.source == (str(ipaddress.ip_address(source[0])), source[1])
    assert parsed.destination == (str(ipaddress.ip_address(destination[0])), destination[1])
    assert left == rest


@given(addresses, tlvs, st.binary(max_size=64))
def test_v2_round_trip_with_tlvs(pair: tuple, extra: list[Tlv], rest: bytes) -> None:
    source, destination = pair
    header = encode_v2(source, destination, tlvs=extra)
    parsed, left = read_like_the_listener(header + rest)
    assert parsed.version == 2 and not parsed.local
    assert parsed.source == source and parsed.destination == destination
    assert list(parsed.tlvs) == extra
    assert left == rest


@given(st.one_of(addresses.map(lambda p: encode_v1(*p)),
                 st.tuples(addresses, tlvs).map(lambda a: encode_v2(*a[0], tlvs=a[1]))))
def test_every_prefix_asks_for_more_never_past_the_end(header: bytes) -> None:
    for cut in range(len(header)):
        result = parse(header[:cut])
        assert isinstance(result, Incomplete), (cut, result)
        assert cut < result.needed <= len(header)


def outcome_is_consistent(data: bytes) -> None:
    """Any input: a refusal, a header no longer than the input, or a need for more than it."""
    try:
        result = parse(data)
    except ProxyProtocolError:
        return
    if isinstance(result, ProxyHeader):
        assert result.length <= len(data)
        assert (result.source is None) == (result.destination is None)
    else:
        assert result.needed > len(data)


@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    outcome_is_consistent(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_after_a_v2_signature(data: bytes) -> None:
    outcome_is_consistent(V2_SIGNATURE + data)


@given(st.binary(max_size=120))
def test_arbitrary_bytes_after_a_v1_prefix(data: bytes) -> None:
    outcome_is_consistent(b"PROXY " + data)


# --------------------------------------------------------------------------- version 1


def test_v1_unknown_means_the_connection_itself() -> None:
    assert parse(b"PROXY UNKNOWN\r\n") == ProxyHeader(1, 15, None, None)
    line = b"PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n"
    header = parse(line)
    assert isinstance(header, ProxyHeader) and header.local and header.length == len(line)


@pytest.mark.parametrize(("line", "why"), [
    (b"PROXY TCP4 10.30.0.2 10.0.0.1 4000 8080\n", "not CRLF"),
    (b"PROXY TCP4 10.30.0.2 10.0.0.1 4000 8080\r\r\n", "not CRLF"),
    (b"PROXY TCP4  10.30.0.2 10.0.0.1 4000 8080\r\n", "single spaces"),
    (b"PROXY TCP4 10.30.0.2 10.0.0.1 4000\r\n", "single spaces"),
    (b"PROXY TCP4 10.30.0.2 10.0.0.1 4000 8080 x\r\n", "single spaces"),
    (b"PROXY TCP5 10.30.0.2 10.0.0.1 4000 8080\r\n", "unknown protocol"),
    (b"PROXY tcp4 10.30.0.2 10.0.0.1 4000 8080\r\n", "unknown protocol"),
    (b"PROXY TCP4 ::1 10.0.0.1 4000 8080\r\n", "not an IPv4 address"),
    (b"PROXY TCP6 10.30.0.2 ::1 4000 8080\r\n", "not an IPv6 address"),
    (b"PROXY TCP6 fe80::1%eth0 ::1 4000 8080\r\n", "zone"),
    (b"PROXY TCP4 010.30.0.2 10.0.0.1 4000 8080\r\n", "not an IP address"),
    (b"PROXY TCP4 10.30.0.2 10.0.0.1 04000 8080\r\n", "not a port"),
    (b"PROXY TCP4 10.30.0.2 10.0.0.1 65536 8080\r\n", "out of range"),
    (b"PROXY TCP4 10.30.0.2 10.0.0.1 -1 8080\r\n", "not a port"),
    (b"PROXY TCP4 10.30.0.2 10.0.0.1 +1 8080\r\n", "not a port"),
    (b"PROXY TCP4 10.30.0.\xc2\xb2 10.0.0.1 1 8080\r\n", "not ASCII"),
    (b"PROXY TCP4 10.30.0.2 10.0.0.1 \xd9\xa1 8080\r\n", "not ASCII"),
])
def test_v1_odd_spellings_are_refused(line: bytes, why: str) -> None:
    with pytest.raises(ProxyProtocolError, match=why):
        parse(line)


def test_v1_without_crlf_is_refused_at_107_bytes() -> None:
    line = b"PROXY UNKNOWN " + b"x" * (V1_MAX - 14)
    assert len(line) == V1_MAX
    assert isinstance(parse(line[:-1]), Incomplete)
    with pytest.raises(ProxyProtocolError, match="no CRLF within 107"):
        parse(line)


def test_v1_longest_valid_lines_fit() -> None:
    """The spec's worst cases: 104 bytes for TCP6, 107 for UNKNOWN with every field."""
    full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"
    line = f"PROXY TCP6 {full} {full} 65535 65535\r\n".encode()
    assert len(line) == 104
    header = parse(line)
    assert isinstance(header, ProxyHeader) and header.source == (
        str(ipaddress.ip_address(full)), 65535)
    unknown = f"PROXY UNKNOWN {full} {full} 65535 65535\r\n".encode()
    assert len(unknown) == V1_MAX
    assert parse(unknown) == ProxyHeader(1, V1_MAX, None, None)


# --------------------------------------------------------------------------- version 2


def v2(command: int, family: int, payload: bytes, declared: int | None = None) -> bytes:
    size = len(payload) if declared is None else declared
    return V2_SIGNATURE + struct.pack("!BBH", command, family, size) + payload


INET_BLOCK = bytes([10, 39, 0, 2, 10, 0, 0, 1]) + struct.pack("!HH", 5000, 8080)


def test_v2_local_ignores_whatever_block_it_carries() -> None:
    """LOCAL (a balancer's health check): the spec says use the real endpoints, any family."""
    for family in (0x00, 0x11, 0x21, 0x31):
        header = parse(v2(0x20, family, b"\x00" * 20))
        assert isinstance(header, ProxyHeader) and header.local and header.length == 36
    assert parse(encode_v2(None)) == ProxyHeader(2, 16, None, None)


@pytest.mark.parametrize(("data", "why"), [
    (v2(0x11, 0x11, INET_BLOCK), "version 1"),
    (v2(0x31, 0x11, INET_BLOCK), "version 3"),
    (v2(0x22, 0x11, INET_BLOCK), "unknown command"),
    (v2(0x2F, 0x11, INET_BLOCK), "unknown command"),
    (v2(0x21, 0x41, INET_BLOCK), "unknown address family"),
    (v2(0x21, 0x13, INET_BLOCK), "unknown address family"),
    (v2(0x21, 0x00, b""), "UNSPEC address"),
    (v2(0x21, 0x31, b"/run/x".ljust(216, b"\0")), "UNIX address"),
    (v2(0x21, 0x12, INET_BLOCK), "DGRAM transport"),
    (v2(0x21, 0x10, INET_BLOCK), "UNSPEC transport"),
    (v2(0x21, 0x11, INET_BLOCK[:11]), "cannot hold the INET addresses"),
    (v2(0x21, 0x21, INET_BLOCK + b"\0" * 20), "cannot hold the INET6 addresses"),
    (v2(0x21, 0x11, INET_BLOCK + b"\x04\x00"), "truncated TLV"),
    (v2(0x21, 0x11, INET_BLOCK + b"\x04\x00\x05abc"), "says 5 bytes, only 3 follow"),
])
def test_v2_refusals(data: bytes, why: str) -> None:
    with pytest.raises(ProxyProtocolError, match=why):
        parse(data)


def test_v2_oversized_is_refused_before_reading_it() -> None:
    """A length past the bound is refused from the 16 fixed bytes, not buffered first."""
    fixed = v2(0x21, 0x11, b"", declared=MAX_V2_PAYLOAD + 1)
    assert len(fixed) == 16
    with pytest.raises(ProxyProtocolError, match="more than 4096"):
        parse(fixed)
    assert parse(v2(0x21, 0x11, b"", declared=MAX_V2_PAYLOAD)) == Incomplete(16 + MAX_V2_PAYLOAD)


def test_v2_truncated_waits_for_the_declared_length() -> None:
    data = v2(0x21, 0x11, INET_BLOCK)
    assert parse(data[:20]) == Incomplete(len(data))
    assert parse(data[:5]) == Incomplete(16)


def test_v2_ipv6_and_mapped_addresses() -> None:
    header = parse(encode_v2(("2001:db8::7", 443), ("::ffff:10.0.0.1", 8080)))
    assert isinstance(header, ProxyHeader)
    assert header.source == ("2001:db8::7", 443)
    assert header.destination == ("::ffff:a00:1", 8080)


def test_v2_tlvs_are_kept() -> None:
    extra = [Tlv(0x01, b"h2"), Tlv(0x04, b""), Tlv(0x20, b"\x05" * 40)]
    header = parse(encode_v2(("10.39.0.2", 5000), ("10.0.0.1", 8080), tlvs=extra))
    assert isinstance(header, ProxyHeader) and list(header.tlvs) == extra


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize(("data", "expected"), [
    (b"PROXY TCP4 ", True), (b"PROXY ", True), (V2_SIGNATURE + b"!", True),
    (b"P", None), (b"PROX", None), (b"\r\n\r\n\x00", None), (b"", None),
    (b"POST / HTTP/1.1", False), (b"PROXYZ", False), (b"GET ", False), (b"\x16\x03\x01", False),
    (b"\r\n\r\n\x01", False), (b"CONNECT a:443 HTTP/1.1", False),
])
def test_starts_like_header(data: bytes, expected: bool | None) -> None:
    assert starts_like_header(data) is expected


@pytest.mark.parametrize("data", [b"", b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00", b"XPROXY "])
def test_not_a_header(data: bytes) -> None:
    if not data:
        assert parse(data) == Incomplete(FIRST_READ)
        return
    with pytest.raises(ProxyProtocolError, match="not a PROXY protocol header"):
        parse(data)


# --------------------------------------------------------------------------- trusted peers


def test_parse_trusted() -> None:
    nets = parse_trusted(["10.0.0.5, 192.168.0.0/24", "2001:db8::/32"])
    assert [str(n) for n in nets] == ["10.0.0.5/32", "192.168.0.0/24", "2001:db8::/32"]
    assert is_trusted(ipaddress.ip_address("192.168.0.77"), nets)
    assert is_trusted(ipaddress.ip_address("2001:db8::1"), nets)
    assert not is_trusted(ipaddress.ip_address("10.0.0.6"), nets)
    assert not is_trusted(None, nets)
    assert parse_trusted([""]) == ()


@pytest.mark.parametrize(("spec", "message"), [
    ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
    ("lb.example", "'lb.example' is not an address or network"),
    ("10.0.0.0/33", "is not an address or network"),
])
def test_parse_trusted_refuses(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_trusted([spec])
