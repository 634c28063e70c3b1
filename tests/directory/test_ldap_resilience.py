"""The directory misbehaving: down at start, killed and restarted mid-traffic, silent, behind
TLS that must not be bypassed; and what the cache and the grace period do about it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from directory_support import FakeClock, SettingsFactory
from slapd_server import PASSWORDS, SlapdServer, free_port
from tls_material import make_ca_and_server

from aupgate.directory import (
    DirectoryAuthenticator,
    DirectoryUnavailable,
    LoginFailed,
    LoginOk,
)


def ok(outcome: object, source: str = "directory") -> str:
    assert isinstance(outcome, LoginOk), outcome
    assert outcome.source == source, outcome
    return outcome.user.name


def unavailable(outcome: object, containing: str = "") -> str:
    assert isinstance(outcome, DirectoryUnavailable), outcome
    assert containing in outcome.detail, outcome.detail
    return outcome.detail


# --- cache ------------------------------------------------------------------------------------

async def test_a_cached_login_costs_no_directory_call_even_with_the_directory_down(
        own_slapd: SlapdServer, make_settings: SettingsFactory, clock: FakeClock) -> None:
    auth = DirectoryAuthenticator(make_settings(own_slapd, cache={"success_ttl": 60}),
                                  clock=clock)
    try:
        ok(await auth.authenticate("alice", PASSWORDS["alice"]))
        operations = auth.directory_operations
        assert operations >= 2  # at least the user search and the bind
        for _ in range(50):
            ok(await auth.authenticate("alice", PASSWORDS["alice"]), "cache")
        assert auth.directory_operations == operations
        assert auth.stats.cache_hits == 50

        own_slapd.stop()
        clock.advance(59)
        ok(await auth.authenticate("alice", PASSWORDS["alice"]), "cache")
        assert auth.directory_operations == operations
        unavailable(await auth.authenticate("bob", PASSWORDS["bob"]))  # never seen: refused
        wrong = await auth.authenticate("alice", "guess")  # the cache is keyed by password too
        unavailable(wrong)
        clock.advance(2)  # past success_ttl: refused by default
        unavailable(await auth.authenticate("alice", PASSWORDS["alice"]))
    finally:
        auth.close()


async def test_failures_are_cached_briefly(
        slapd: SlapdServer, make_settings: SettingsFactory, clock: FakeClock) -> None:
    auth = DirectoryAuthenticator(make_settings(slapd, cache={"failure_ttl": "10s"}), clock=clock)
    try:
        first = await auth.authenticate("alice", "wrong")
        assert isinstance(first, LoginFailed) and first.source == "directory"
        operations = auth.directory_operations
        again = await auth.authenticate("alice", "wrong")
        assert isinstance(again, LoginFailed) and again.source == "cache"
        assert again.reason == "bad_credentials"
        assert auth.directory_operations == operations
        ok(await auth.authenticate("alice", PASSWORDS["alice"]))  # the right password still works
        clock.advance(11)
        later = await auth.authenticate("alice", "wrong")
        assert isinstance(later, LoginFailed) and later.source == "directory"
    finally:
        auth.close()


async def test_identical_logins_at_once_share_one_directory_call(
        slapd: SlapdServer, make_settings: SettingsFactory) -> None:
    auth = DirectoryAuthenticator(make_settings(slapd))
    try:
        outcomes = await asyncio.gather(*(auth.authenticate("bob", PASSWORDS["bob"])
                                          for _ in range(20)))
        assert {ok(o) for o in outcomes} == {"bob"}
        assert auth.stats.directory_checks == 1
        assert auth.stats.shared_calls == 19
    finally:
        auth.close()


# --- down, restarted, silent -------------------------------------------------------------------

async def test_down_at_start_refuses_then_recovers_without_a_restart(
        own_slapd: SlapdServer, make_settings: SettingsFactory) -> None:
    own_slapd.stop()
    auth = DirectoryAuthenticator(make_settings(own_slapd))
    try:
        started = time.monotonic()
        unavailable(await auth.authenticate("alice", PASSWORDS["alice"]), "127.0.0.1")
        assert time.monotonic() - started < 5
        own_slapd.start()
        ok(await auth.authenticate("alice", PASSWORDS["alice"]))
    finally:
        auth.close()


async def test_grace_period_serves_a_recently_seen_identity(
        own_slapd: SlapdServer, make_settings: SettingsFactory, clock: FakeClock) -> None:
    settings = make_settings(own_slapd, on_unavailable="grace", grace_period="1h",
                             cache={"success_ttl": "1m"})
    auth = DirectoryAuthenticator(settings, clock=clock)
    try:
        first = await auth.authenticate("alice", PASSWORDS["alice"])
        ok(first)
        own_slapd.stop(kill=True)
        clock.advance(600)  # past the success ttl, within the grace period
        graced = await auth.authenticate("alice", PASSWORDS["alice"])
        ok(graced, "grace")
        assert isinstance(graced, LoginOk) and isinstance(first, LoginOk)
        assert graced.user == first.user  # same groups as last seen
        unavailable(await auth.authenticate("alice", "not-her-password"))
        unavailable(await auth.authenticate("bob", PASSWORDS["bob"]))  # never seen
        assert auth.stats.grace_hits == 1
        clock.advance(3001)  # 3601 s after the directory last confirmed alice
        unavailable(await auth.authenticate("alice", PASSWORDS["alice"]))
        own_slapd.start()
        ok(await auth.authenticate("alice", PASSWORDS["alice"]))
    finally:
        auth.close()


async def test_grace_does_not_help_when_the_directory_was_down_from_the_start(
        own_slapd: SlapdServer, make_settings: SettingsFactory) -> None:
    own_slapd.stop()
    auth = DirectoryAuthenticator(make_settings(own_slapd, on_unavailable="grace",
                                                grace_period=3600))
    try:
        unavailable(await auth.authenticate("alice", PASSWORDS["alice"]))
    finally:
        auth.close()


@pytest.mark.parametrize("kill", [True, False], ids=["SIGKILL", "SIGTERM"])
async def test_reconnects_after_the_directory_restarts(
        own_slapd: SlapdServer, make_settings: SettingsFactory, kill: bool) -> None:
    """Pooled connections die with slapd; the next login reconnects on its own."""
    auth = DirectoryAuthenticator(make_settings(own_slapd, cache={"success_ttl": 0}))
    try:
        ok(await auth.authenticate("alice", PASSWORDS["alice"]))
        opened = auth.connections_opened
        own_slapd.restart(kill=kill)
        assert ok(await auth.authenticate("bob", PASSWORDS["bob"])) == "bob"
        assert ok(await auth.authenticate("alice", PASSWORDS["alice"])) == "alice"
        assert auth.connections_opened > opened
    finally:
        auth.close()


async def test_restart_in_the_middle_of_traffic(
        own_slapd: SlapdServer, make_settings: SettingsFactory) -> None:
    """Logins keep flowing while slapd is killed and restarted on the same ports: each one is
    right or says the directory is unavailable; none crashes or names the wrong user; the
    ones after the restart all succeed."""
    auth = DirectoryAuthenticator(make_settings(own_slapd, cache={"success_ttl": 0}))
    users = ["alice", "bob", "carol", "zoë"]
    restarted = threading.Event()

    def bounce() -> None:
        time.sleep(0.15)
        own_slapd.stop(kill=True)
        time.sleep(0.2)
        own_slapd.start()
        restarted.set()

    bouncer = threading.Thread(target=bounce)
    bouncer.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while not restarted.is_set() and time.monotonic() < deadline:
            outcomes = await asyncio.gather(*(auth.authenticate(u, PASSWORDS[u]) for u in users))
            for user, outcome in zip(users, outcomes, strict=True):
                if isinstance(outcome, LoginOk):
                    assert outcome.user.name == user
                    seen.append("ok")
                else:
                    unavailable(outcome)
                    seen.append("down")
        bouncer.join()
        after = await asyncio.gather(*(auth.authenticate(u, PASSWORDS[u]) for u in users))
        assert [ok(o) for o in after] == users
        assert "ok" in seen and "down" in seen
    finally:
        bouncer.join()
        auth.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


async def test_a_silent_directory_times_out(
        slapd: SlapdServer, make_settings: SettingsFactory, silent_server: int) -> None:
    auth = DirectoryAuthenticator(make_settings(
        slapd, url=f"ldap://127.0.0.1:{silent_server}", timeouts={"connect": 1, "receive": 1}))
    try:
        started = time.monotonic()
        unavailable(await auth.authenticate("alice", PASSWORDS["alice"]))
        assert time.monotonic() - started < 6
    finally:
        auth.close()


async def test_failover_to_the_next_url(slapd: SlapdServer, make_settings: SettingsFactory
                                        ) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    auth = DirectoryAuthenticator(make_settings(slapd, url=[dead, slapd.ldap_url]))
    try:
        ok(await auth.authenticate("alice", PASSWORDS["alice"]))
    finally:
        auth.close()


async def test_a_refused_service_account_is_reported_as_such(
        slapd: SlapdServer, make_settings: SettingsFactory, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-service-password\n")
    wrong.chmod(0o600)
    auth = DirectoryAuthenticator(make_settings(slapd, bind_password_file=str(wrong)))
    try:
        detail = unavailable(await auth.authenticate("alice", PASSWORDS["alice"]),
                             "service account bind refused")
        assert "not-the-service-password" not in detail
    finally:
        auth.close()


# --- TLS ----------------------------------------------------------------------------------------

async def test_ldaps_with_the_agency_ca(slapd: SlapdServer, make_settings: SettingsFactory
                                        ) -> None:
    auth = DirectoryAuthenticator(make_settings(slapd, url=slapd.ldaps_url,
                                                ca_file=str(slapd.tls.ca_file)))
    try:
        assert ok(await auth.authenticate("bob", PASSWORDS["bob"])) == "bob"
    finally:
        auth.close()


async def test_starttls_with_the_agency_ca(slapd: SlapdServer, make_settings: SettingsFactory
                                           ) -> None:
    auth = DirectoryAuthenticator(make_settings(slapd, start_tls=True,
                                                ca_file=str(slapd.tls.ca_file)))
    try:
        assert ok(await auth.authenticate("alice", PASSWORDS["alice"])) == "alice"
    finally:
        auth.close()


@pytest.mark.parametrize("case", ["system CAs", "another CA", "misnamed host", "starttls"])
async def test_tls_that_cannot_be_verified_fails_closed(
        slapd: SlapdServer, make_settings: SettingsFactory, tmp_path: Path, case: str) -> None:
    """An unverifiable certificate never falls back to plaintext or to trusting it."""
    other_ca = make_ca_and_server(tmp_path / "other", "someone else's CA").ca_file
    overrides: dict[str, object] = {
        "system CAs": {"url": slapd.ldaps_url},
        "another CA": {"url": slapd.ldaps_url, "ca_file": str(other_ca)},
        "misnamed host": {"url": slapd.ldaps_misnamed_url, "ca_file": str(slapd.tls.ca_file)},
        "starttls": {"start_tls": True, "ca_file": str(other_ca)},
    }[case]
    auth = DirectoryAuthenticator(make_settings(slapd, **overrides))
    try:
        before = auth.directory_operations
        detail = unavailable(await auth.authenticate("alice", PASSWORDS["alice"]))
        assert any(word in detail.lower() for word in ("certificate", "hostname", "tls", "ssl"))
        assert auth.directory_operations == before  # nothing was sent
    finally:
        auth.close()


async def test_a_flood_of_distinct_logins_does_not_queue_without_bound(
        slapd: SlapdServer, make_settings: SettingsFactory) -> None:
    """Made-up credentials all differ, so no cache helps: past 32 waiting logins per worker,
    new ones are refused at once as directory_unavailable instead of queueing."""
    auth = DirectoryAuthenticator(make_settings(slapd, url=f"ldap://127.0.0.1:{free_port()}",
                                                pool_size=1))
    try:
        outcomes = await asyncio.gather(*(auth.authenticate(f"user{i}", "pw")
                                          for i in range(40)))
        busy = [o for o in outcomes if isinstance(o, DirectoryUnavailable)
                and "already waiting" in o.detail]
        assert len(busy) == 8 and auth.stats.busy == 8
        assert auth.stats.directory_checks == 32
        assert all(isinstance(o, DirectoryUnavailable) for o in outcomes)
        later = await auth.authenticate("user0", "pw")  # the queue drained: asked again
        unavailable(later, "refused")
    finally:
        await auth.aclose()
