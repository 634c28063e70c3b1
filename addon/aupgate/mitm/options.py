"""The `aupgate_*` mitmproxy options, and the pure parsers behind them.

Options are declared the mitmproxy way (so `mitmdump --set aupgate_policy_dir=...` and `aupgate run`
behave the same), and each non-trivial value has a module-level parser that raises ValueError with
a message an administrator can act on; the addon turns that into `OptionsError` in `configure`,
which makes mitmdump exit 1 at start-up instead of running with a misread setting. The parsers
import nothing from mitmproxy and are tested without a proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from ..policy.schedule import parse_moment

TEST_MODE_ENV = "AUPGATE_TEST_MODE"
"""`aupgate_fault` is refused unless this environment variable is "1": a production gateway can
never be configured to fail on purpose."""

HTTPS_BLOCK_MODES = ("page", "refuse")
RESPONSE_TIMEOUT = 60
"""Seconds a site has to start its answer (`aupgate_response_timeout`, aupgate.mitm.deadline)."""
FAULT_POINTS = ("decide", "connect", "clienthello", "responseheaders", "audit")


class OptionSpec(NamedTuple):
    name: str
    typespec: Any
    default: Any
    help: str
    choices: Sequence[str] | None = None


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("aupgate_policy_dir", str, "",
               "Directory of agency policy files (*.yaml). Default: $AUPGATE_POLICY_DIR, "
               "./policies, the checkout's policies/, or /etc/aupgate/policies."),
    OptionSpec("aupgate_categories", str, "",
               "Category sources file (sources.yaml). Default: $AUPGATE_CATEGORIES or "
               "categories/sources.yaml found like the policy directory."),
    OptionSpec("aupgate_audit_log", str, "",
               "Append audit events as JSON lines to this file (made if missing)."),
    OptionSpec("aupgate_audit_stdout", bool, False,
               "Also write audit events as JSON lines to standard output."),
    OptionSpec("aupgate_on_audit_failure", str, "serve",
               "When the audit file cannot be written: serve (keep serving, log CRITICAL, count "
               "lost events) or fail-closed (refuse every request until it can be written).",
               ("serve", "fail-closed")),
    OptionSpec("aupgate_default_agency", str, "",
               "Agency id for clients in no agency's networks. Empty: such clients are refused."),
    OptionSpec("aupgate_fixed_time", str, "",
               "Freeze the policy clock at this ISO-8601 time (tests and demos only; logged "
               "loudly). Without an offset the time is agency-local."),
    OptionSpec("aupgate_clock_from", str, "",
               "Run the policy clock from this ISO-8601 time, starting when the proxy serves "
               "(tests and demos of window boundaries only; logged loudly). Without an offset "
               "the time is agency-local. Not with aupgate_fixed_time."),
    OptionSpec("aupgate_resolve", Sequence[str], [],
               "Answer name lookups for HOST:PORT with ADDR (and TOPORT if given), like curl "
               "--resolve: HOST:PORT:ADDR[:TOPORT]; deciding, audit and TLS still use the name. "
               "HOST may be * for any name."),
    OptionSpec("aupgate_reload_seconds", int, 2,
               "How often to look for changed policy and category files; 0 disables hot reload."),
    OptionSpec("aupgate_warn_minutes", int, 15,
               "How long a warn page's continue lasts, for that client, user and host."),
    OptionSpec("aupgate_login_audit_minutes", int, 60,
               "Directory logins: audit a `login` event at most once per user, client and "
               "method in this many minutes; 0: none (failures are always audited)."),
    OptionSpec("aupgate_https_block", str, "page",
               "How a blocked HTTPS site that may be decrypted is answered: page (intercept and "
               "show the block page; clients must trust the agency CA) or refuse (refuse the "
               "CONNECT).", HTTPS_BLOCK_MODES),
    OptionSpec("aupgate_response_timeout", int, RESPONSE_TIMEOUT,
               "Seconds a site has, once the request is sent, to start its answer; then the "
               "employee gets the gateway's timeout page (504). 0: wait as long as mitmproxy's "
               "idle timeout (10 minutes)."),
    OptionSpec("aupgate_login_realm", str, "",
               "The name the proxy-login prompt shows (the Basic realm). Default: the client's "
               "agency's name and \"internet gateway\"."),
    OptionSpec("aupgate_shadow_policy_dir", str, "",
               "A candidate policy directory decided beside the policies in force for every "
               "request, never enforced; differences are audited as shadow_diff events. Empty: "
               "no shadow. A shadow that fails to load is reported and changes nothing."),
    OptionSpec("aupgate_shadow_max_per_minute", int, 600,
               "At most this many shadow_diff events a minute; the rest are counted in the next "
               "one written (suppressed)."),
    OptionSpec("aupgate_budget_db", str, "",
               "SQLite database where personal-use budgets are counted, shared by every gateway "
               "process on the host (made if missing). Default: $AUPGATE_STATE_DIR/"
               "budgets.sqlite3, else var/budgets.sqlite3. Opened only when a policy has "
               "budgets."),
    OptionSpec("aupgate_budget_flush_ms", int, 1000,
               "How often (milliseconds) counted budget use is written to the database and "
               "everyone's read back: the most a budget lags behind the other processes."),
    OptionSpec("aupgate_admin", str, "",
               "Serve /metrics (Prometheus) and /healthz on [HOST:]PORT; HOST defaults to "
               "127.0.0.1 and must be a loopback address or the proxy's listen address. Empty: "
               "off."),
    OptionSpec("aupgate_fault", str, "",
               "Tests only (needs AUPGATE_TEST_MODE=1): POINT[@HOST] makes that step raise, to "
               "prove the gateway fails closed. Points: " + ", ".join(FAULT_POINTS) + "."),
)


class ResolveEntry(NamedTuple):
    """One resolve override: connections for (host, port) go to (address, to_port)."""

    host: str  # lower-case name, or "*"
    port: int
    address: str
    to_port: int


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"'{spec}': '{text}' is not a port number (1-65535)")
    return int(text)


def parse_resolve(spec: str) -> ResolveEntry:
    """`HOST:PORT:ADDR[:TOPORT]`; an IPv6 ADDR goes in brackets: `a.example:443:[::1]:8443`."""
    host, sep, rest = spec.strip().partition(":")
    port_text, sep2, addr_part = rest.partition(":")
    if not sep or not sep2 or not host or not addr_part:
        raise ValueError(f"'{spec}': expected HOST:PORT:ADDR[:TOPORT]")
    port = _port(port_text, spec)
    if addr_part.startswith("["):
        addr, bracket, tail = addr_part[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"'{spec}': unclosed '[' in the address")
        to_port_text = tail[1:]
    else:
        addr, _, to_port_text = addr_part.partition(":")
    try:
        address = str(ipaddress.ip_address(addr))
    except ValueError as exc:
        raise ValueError(f"'{spec}': '{addr}' is not an IP address") from exc
    to_port = _port(to_port_text, spec) if to_port_text else port
    return ResolveEntry(host.lower().rstrip("."), port, address, to_port)


def resolve_table(specs: Iterable[str]) -> dict[tuple[str, int], tuple[str, int]]:
    """The overrides as a lookup from (host, port) to (address, port)."""
    table: dict[tuple[str, int], tuple[str, int]] = {}
    for spec in specs:
        entry = parse_resolve(spec)
        table[(entry.host, entry.port)] = (entry.address, entry.to_port)
    return table


def resolve(
    table: Mapping[tuple[str, int], tuple[str, int]], host: str, port: int
) -> tuple[str, int] | None:
    """Where a connection for (host, port) must really go, if an override names it."""
    if not table:
        return None
    key = host.lower().rstrip(".")
    return table.get((key, port)) or table.get(("*", port))


def parse_fixed_time(text: str) -> datetime | None:
    """`aupgate_fixed_time`: empty for the real clock; ISO-8601 (`Z` allowed) otherwise."""
    if not text.strip():
        return None
    return parse_moment(text)


class Fault(NamedTuple):
    point: str
    host: str | None


def parse_fault(text: str, env: Mapping[str, str]) -> Fault | None:
    """`aupgate_fault`: POINT[@HOST], honoured only in test mode."""
    if not text:
        return None
    if env.get(TEST_MODE_ENV) != "1":
        raise ValueError(f"only available when {TEST_MODE_ENV}=1 (tests)")
    point, _, host = text.partition("@")
    if point not in FAULT_POINTS:
        raise ValueError(f"unknown fault point '{point}' (one of: {', '.join(FAULT_POINTS)})")
    return Fault(point, host.lower() or None)


def check_positive(name: str, value: int, *, allow_zero: bool) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'zero or more' if allow_zero else 'positive'}")
