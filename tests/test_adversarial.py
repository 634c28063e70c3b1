"""The adversarial suite's property half (issue 12): what an attacker controls, generated.

Raw-socket cases against a real proxy live in tests/e2e/test_bypass_*.py and
test_fail_closed.py; docs/security.md maps each claim to its tests. Here hypothesis varies the
spelling of a blocked name, the shape of a secret, the size of a head and the port, and checks
the pure parts that stand between those and the upstream: the normaliser and engine, the
redaction rules, the head limits, the port policy (and what the loader makes of any YAML
under `ports`) and the audit's canonical host.
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from mitmproxy.test import tutils

from aupgate.audit.redaction import REDACTED, scrub_url
from aupgate.categories.listindex import ListIndex
from aupgate.engine import Facts, decide
from aupgate.errors import UrlError
from aupgate.hostname import normalise_host
from aupgate.mitm.events import hosts
from aupgate.mitm.headlimits import oversized
from aupgate.mitm.requestshape import MAX_FIELDS, MAX_HEAD, MAX_TARGET, refusal
from aupgate.normalise import parse_url
from aupgate.policy.model import PortPolicy
from aupgate.ports import port_allowed
from test_policy_validation import load, policy_text

pytestmark = pytest.mark.slow  # about ten seconds of generated cases: `make test`, not test-fast
MANY = settings(max_examples=300, deadline=None)
WORK = datetime(2026, 11, 24, 10, 30, tzinfo=ZoneInfo("America/Chicago"))


# --------------------------------------------------------------------------- spellings


@st.composite
def spellings(draw: st.DrawFn, host: str) -> str:
    """A spelling of `host` a browser or curl would send to the same site."""
    out = []
    for char in host:
        choice = draw(st.integers(0, 4))
        if choice == 1:
            out.append(char.upper())
        elif choice == 2 and char.isalnum():
            out.append(f"%{ord(char):02x}")  # percent-encoded host bytes (WHATWG decodes them)
        elif choice == 3 and char == ".":
            out.append(draw(st.sampled_from([".", "\u3002", "\uff0e", "\uff61"])))  # IDN dots
        elif choice == 4 and char.isalpha():
            out.append(chr(ord(char.lower()) - ord("a") + ord("\uff41")))  # full-width letter
        else:
            out.append(char)
    return "".join(out) + draw(st.sampled_from(["", "."]))


@MANY
@given(spellings("www.bet365.com"), st.sampled_from(["http", "https"]),
       st.sampled_from(["", ":80", ":443"]))
def test_every_spelling_of_a_blocked_host_is_decided_as_that_host(
        spelling: str, scheme: str, port: str) -> None:
    """No spelling reaches a different decision: it is the blocked name, or it is refused."""
    assume(not (scheme == "http" and port == ":443") and not (scheme == "https" and port == ":80"))
    try:
        url = parse_url(f"{scheme}://{spelling}{port}/")
    except UrlError:
        return  # the proxy refuses what it cannot read
    assert url.host == "www.bet365.com", (spelling, url.host)
    assert INDEX.classify(url.host, "/").categories == ("gambling",)


INDEX = ListIndex.from_entries([("bet365.com", "gambling")])


@st.composite
def ipv4_spellings(draw: st.DrawFn) -> tuple[str, str]:
    """An IPv4 address and one of its WHATWG spellings (hex, octal, decimal, short forms)."""
    parts = draw(st.lists(st.integers(0, 255), min_size=4, max_size=4))
    canonical = ".".join(map(str, parts))
    form = draw(st.integers(0, 3))
    if form == 0:
        text = ".".join(draw(st.sampled_from([str(p), hex(p), f"0{p:o}" if p else "0"]))
                        for p in parts)
    elif form == 1:
        text = str(int.from_bytes(bytes(parts), "big"))
    elif form == 2:
        text = f"{parts[0]}.{int.from_bytes(bytes(parts[1:]), 'big')}"
    else:
        text = f"{parts[0]}.{parts[1]}.{int.from_bytes(bytes(parts[2:]), 'big')}"
    return text, canonical


@MANY
@given(ipv4_spellings())
def test_every_ipv4_spelling_is_one_address(pair: tuple[str, str]) -> None:
    text, canonical = pair
    assert normalise_host(text) == canonical
    assert hosts(None, text) == ({"host": canonical} if text == canonical
                                 else {"host": canonical, "host_raw": text})


@MANY
@given(spellings("www.bet365.com"))
def test_the_audit_names_the_canonical_host_and_keeps_the_spelling(spelling: str) -> None:
    try:
        canonical = normalise_host(spelling)
    except UrlError:
        return
    fields = hosts(None, spelling)
    assert fields["host"] == canonical == "www.bet365.com"
    assert fields.get("host_raw") == (None if spelling == canonical else spelling)


# --------------------------------------------------------------------------- redaction

SECRET_WORDS = ["password", "pw", "PWD", "token", "access_token", "api_key", "jsessionid",
                "SAMLResponse", "X-Amz-Signature", "sid", "auth", "otp"]
VALUE = st.text(alphabet=st.sampled_from("ABCDEFGHJKMNPQRSTUVWXYZ23456789"), min_size=12,
                max_size=24)


@MANY
@given(st.sampled_from(SECRET_WORDS), VALUE, st.sampled_from(["&", ";"]),
       st.sampled_from(["query", "path-parameter"]), st.booleans())
def test_a_secret_value_never_reaches_the_audit_path(
        name: str, value: str, separator: str, where: str, encode: bool) -> None:
    shown = urllib.parse.quote(name, safe="") if encode else name
    if where == "query":
        target = f"/a?x=1{separator}{shown}={value}{separator}y=2"
    else:
        target = f"/a/b;{shown}={value}/c?x=1"
    out = scrub_url(target)
    assert value not in out and f"{shown}={REDACTED}" in out, out


# --------------------------------------------------------------------------- heads


@MANY
@given(st.integers(MAX_HEAD + 1, 4 * MAX_HEAD), st.integers(0, 2 * MAX_TARGET),
       st.sampled_from([b"\r\n", b"\n"]))
def test_a_head_past_the_limit_is_always_refused(total: int, line: int, eol: bytes) -> None:
    """However the bytes are laid out, a head that has not ended within MAX_HEAD is refused."""
    head = (b"GET /" + b"a" * line + b" HTTP/1.1" + eol + b"X: " + b"b" * total)[: MAX_HEAD + 1]
    found = oversized(head, total)
    assert found is not None and found[0] in (414, 431)


@MANY
@given(st.integers(0, 6000), st.integers(0, 40))
def test_a_small_complete_head_is_never_cut_while_arriving(line: int, fields: int) -> None:
    head = (b"GET /" + b"a" * line + b" HTTP/1.1\r\n" + b"X: v\r\n" * fields + b"\r\n")
    assert oversized(head, len(head)) is None


@MANY
@given(st.binary(max_size=40), st.sampled_from([b"\r", b"\n", b"\0"]))
def test_a_header_value_with_a_line_break_is_refused(value: bytes, bad: bytes) -> None:
    req = tutils.treq(headers=((b"host", b"example.org"), (b"x", value + bad + value)))
    found = refusal(req)
    assert found is not None and found.status == 400


@MANY
@given(st.integers(1, 3 * MAX_FIELDS))
def test_header_count_limit(count: int) -> None:
    req = tutils.treq(headers=tuple((b"x-%d" % i, b"v") for i in range(count)))
    found = refusal(req)
    assert (found is not None and found.status == 431) == (count > MAX_FIELDS)


# --------------------------------------------------------------------------- ports


@MANY
@given(st.integers(1, 65535), st.frozensets(st.integers(1, 65535), max_size=5),
       st.sampled_from(["http", "https", "ws", "wss"]))
def test_a_port_is_open_only_if_listed(port: int, listed: frozenset[int], scheme: str) -> None:
    ports = PortPolicy(tunnel=frozenset({443}) | listed, http=frozenset({80}) | listed)
    default = 443 if scheme in ("https", "wss") else 80
    assert port_allowed(ports, scheme, port) == (port == default or port in listed)


def test_port_policy_holds_for_every_allowed_site(tmp_path: Path) -> None:
    """The engine: an allowed site on a shut port is blocked whatever the path or query."""
    policy, problems, _ = load(tmp_path, policy_text())
    assert policy is not None, problems

    @MANY
    @given(st.integers(1, 65535).filter(lambda p: p not in (80, 443)),
           st.text(alphabet="abc/?=&", max_size=20), st.sampled_from(["http", "https"]))
    def check(port: int, tail: str, scheme: str) -> None:
        url = parse_url(f"{scheme}://news.example:{port}/{tail}")
        assert decide(policy, INDEX, Facts(url=url), WORK).rule == "port-policy"

    check()


# --------------------------------------------------------------------------- the loader

_SCALARS = st.one_of(
    st.integers(-70000, 140000), st.booleans(), st.none(), st.floats(allow_nan=False),
    st.text(alphabet="abc:22-", max_size=6), st.sampled_from(["443", "0x50", "1e3", "~", "'80'"]))
_VALUES = st.one_of(_SCALARS, st.lists(st.one_of(_SCALARS, st.lists(_SCALARS, max_size=2),
                                                 st.dictionaries(st.sampled_from("ab"), _SCALARS,
                                                                 max_size=1)), max_size=4))


def _valid_ports(value: object) -> set[int] | None:
    """The ports a `tunnel`/`http`/`raw` value opens, or None if the loader must refuse it."""
    listed = value if isinstance(value, list) else [] if value is None else [value]
    if all(type(p) is int and 0 < p < 65536 for p in listed):
        return set(listed)  # type: ignore[arg-type]
    return None


def test_the_ports_section_is_loaded_or_refused_with_a_located_error(tmp_path: Path) -> None:
    """Whatever YAML an administrator writes under `ports`, the loader never raises: it loads
    exactly the ports listed, or names the file, the line and a `ports` field."""
    @MANY
    @given(st.dictionaries(st.sampled_from(["tunnel", "http", "raw"]), _VALUES, max_size=3))
    def check(section: dict[str, object]) -> None:
        body = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in section.items())
        text = policy_text(extra=f"ports:\n{body}  clauses: [general]\n  reason: Web only.\n")
        policy, problems, path = load(tmp_path, text)
        wanted = {key: _valid_ports(section.get(key)) for key in ("tunnel", "http", "raw")}
        tunnel = (wanted["tunnel"] or set()) | {443}
        if None not in wanted.values() and wanted["raw"] <= tunnel:  # type: ignore[operator]
            assert problems == [] and policy is not None, problems
            assert policy.ports.tunnel == tunnel
            assert policy.ports.http == (wanted["http"] or set()) | {80}
            assert policy.ports.raw == wanted["raw"]
        else:
            assert policy is None and problems
            assert all(p.startswith(f"{path}:") and ": ports." in p for p in problems), problems

    check()
