"""Helpers shared by the directory tests (a module of its own: the suite has several conftest
modules, so `from conftest import ...` would depend on which was imported last)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kdc_server import Realm

from aupgate.directory import DirectorySettings

SettingsFactory = Callable[..., DirectorySettings]


class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Kerberos:
    """Two realms with running KDCs: AUP.TEST (the agency: alice, the gateway's HTTP/localhost
    and a computer's host/pc1) and OTHER.TEST (bob and its own HTTP/localhost)."""

    root: Path
    aup: Realm
    other: Realm
    keytab: Path  # HTTP/localhost@AUP.TEST
    other_keytab: Path  # HTTP/localhost@OTHER.TEST
    both_keytab: Path  # both services' keys
    pc_keytab: Path  # host/pc1@AUP.TEST (a computer's key, for a client that is not a person)

    def ccache(self, name: str) -> Path:
        return self.root / f"ccache-{name}"


KERBEROS_PASSWORDS = {"alice": "alice-kerberos:pw", "bob": "bob-kerberos-pw",
                      "carol": "carol-kerberos-pw"}
