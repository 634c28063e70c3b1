"""Fixtures for the directory tests: a real slapd for the session, a private one for tests that
kill or restart it, settings built through the real parser, and a clock the test moves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from slapd_server import BASE, SERVICE_DN, SERVICE_PASSWORD, SlapdServer, running_slapd

from aupgate.directory import DirectorySettings, parse_directory_settings


class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """The shared directory; tests must leave it running."""
    with running_slapd(tmp_path_factory.mktemp("slapd")) as server:
        yield server


@pytest.fixture
def own_slapd(tmp_path: Path) -> Iterator[SlapdServer]:
    """A directory of this test's own, to stop, kill and restart."""
    with running_slapd(tmp_path / "slapd") as server:
        yield server


@pytest.fixture(scope="session")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "directory-password"
    path.write_text(SERVICE_PASSWORD + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


SettingsFactory = Callable[..., DirectorySettings]


@pytest.fixture
def make_settings(password_file: Path) -> SettingsFactory:
    """Settings for a server, from the YAML-shaped mapping an administrator would write, with
    `overrides` merged in (a `groups` override replaces the default groups section)."""
    def build(server: SlapdServer, *, url: str | None = None, **overrides: Any) -> DirectorySettings:
        raw: dict[str, Any] = {
            "url": url or server.ldap_url,
            "bind_dn": SERVICE_DN,
            "bind_password_file": str(password_file),
            "base": BASE,
            "user_filter": "(&(objectClass=inetOrgPerson)(uid={user}))",
            "user_name_attribute": "uid",
            "groups": {"member_of": "memberOf", "nested": "auto"},
            "timeouts": {"connect": 2, "receive": 3},
            "pool_size": 2,
        }
        raw.update(overrides)
        return parse_directory_settings(raw, file="test-policy.yaml")
    return build
