"""Network namespaces for tests that need clients with real, distinct addresses.

`Lab` builds, with iproute2 and only inside namespaces it creates (deleted afterwards, with the
veth pairs in them), a small agency network:

    state client 10.30.0.2 ─┐                 ┌─ gateway box gw1 10.20.1.2
                            ├─ front 10.30.0.1 ┤
    guest client 10.39.0.2 ─┘   10.39.0.1      └─ gateway box gw2 10.20.2.2
                                10.20.1.1, 10.20.2.1

10.30.0.0/16 and 10.39.0.0/16 are Missouri DNR's state and guest networks in
policies/mo-dnr.yaml. The front box is where a single-box gateway runs (`aupgate run --workers`)
or where HAProxy runs in front of gw1 and gw2. Every namespace has its own loopback, so each box
runs its own upstream web server on 127.0.0.1. Nothing is routed out of the lab: the clients'
default route is the front box, which forwards nothing.

Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and `ip`; `Lab.create` raises `LabUnavailableError`, with
the reason, where namespaces cannot be made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class LabUnavailableError(Exception):
    """Namespaces cannot be made here; the message says why."""


@dataclass(frozen=True)
class Link:
    """A veth pair from the `near` namespace (`near_ip`) to the `far` one (`far_ip`)."""

    near: str
    far: str
    near_ip: str
    far_ip: str
    prefix: int = 24


@dataclass
class Lab:
    tag: str = field(default_factory=lambda: f"aupg{os.getpid()}")
    made: list[str] = field(default_factory=list)

    BOXES = ("front", "state", "guest", "gw1", "gw2")
    LINKS = (
        Link("front", "state", "10.30.0.1", "10.30.0.2"),
        Link("front", "guest", "10.39.0.1", "10.39.0.2"),
        Link("front", "gw1", "10.20.1.1", "10.20.1.2"),
        Link("front", "gw2", "10.20.2.1", "10.20.2.2"),
    )

    def ns(self, box: str) -> str:
        return f"{self.tag}-{box}"

    def create(self) -> None:
        ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
        if ip is None:
            raise LabUnavailableError("iproute2's `ip` is not installed (apt-get install iproute2)")
        if os.geteuid() != 0:
            raise LabUnavailableError("network namespaces need root")
        try:
            for box in self.BOXES:
                self._ip("netns", "add", self.ns(box))
                self.made.append(box)
                self._ip("-n", self.ns(box), "link", "set", "lo", "up")
            for n, link in enumerate(self.LINKS):
                near_if, far_if = f"v{n}", "eth0" if link.far in ("state", "guest") else "up0"
                self._ip("-n", self.ns(link.near), "link", "add", near_if, "type", "veth",
                         "peer", "name", far_if, "netns", self.ns(link.far))
                for box, name, address in ((link.near, near_if, link.near_ip),
                                           (link.far, far_if, link.far_ip)):
                    self._ip("-n", self.ns(box), "addr", "add", f"{address}/{link.prefix}",
                             "dev", name)
                    self._ip("-n", self.ns(box), "link", "set", name, "up")
                self._ip("-n", self.ns(link.far), "route", "add", "default", "via",
                         link.near_ip)
        except subprocess.CalledProcessError as exc:
            self.destroy()
            raise LabUnavailableError(f"cannot build network namespaces: {' '.join(exc.cmd)}: "
                                 f"{(exc.stderr or '').strip()}") from exc

    def destroy(self) -> None:
        for box in reversed(self.made):
            subprocess.run(["ip", "netns", "del", self.ns(box)], capture_output=True, check=False)
        self.made.clear()

    def argv(self, box: str, argv: Sequence[str]) -> list[str]:
        """A command line that runs `argv` inside the box's namespace."""
        return ["ip", "netns", "exec", self.ns(box), *argv]

    def run(self, box: str, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 30)
        return subprocess.run(self.argv(box, argv), check=False, **kwargs)

    def popen(self, box: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(box, argv), **kwargs)

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=15)
