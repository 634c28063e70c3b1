"""Real MIT Kerberos KDCs for the single sign-on tests, in temporary directories on random ports.

Each realm gets its own kdc.conf, database (kdb5_util create -s), principals (kadmin.local) and
krb5kdc process; one krb5.conf lists every realm, with `localhost` in AUP.TEST. Clients get
tickets with `kinit` from a password, into a credential cache of the test's own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from slapd_server import free_port

KRB5KDC = "/usr/sbin/krb5kdc"
KDB5_UTIL = "/usr/sbin/kdb5_util"
KADMIN_LOCAL = "/usr/sbin/kadmin.local"
KINIT = "/usr/bin/kinit"
TOOLS = (KRB5KDC, KDB5_UTIL, KADMIN_LOCAL, KINIT)


def tools_missing() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def krb5_conf(realms: list[Realm], clockskew: int) -> str:
    realm_lines = "\n".join(
        f"    {r.name} = {{\n        kdc = 127.0.0.1:{r.port}\n    }}" for r in realms)
    return f"""\
[libdefaults]
    default_realm = {realms[0].name}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    clockskew = {clockskew}
    ignore_acceptor_hostname = false

[realms]
{realm_lines}

[domain_realm]
    localhost = {realms[0].name}
"""


@dataclass
class Realm:
    """One realm: its KDC's files, database and process."""

    name: str
    root: Path
    env: Mapping[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def kdc_conf(self) -> Path:
        return self.root / "kdc.conf"

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.env, "KRB5_KDC_PROFILE": str(self.kdc_conf)}

    def write_kdc_conf(self) -> None:
        self.kdc_conf.write_text(f"""\
[kdcdefaults]
    kdc_ports = {self.port}
    kdc_tcp_ports = {self.port}

[realms]
    {self.name} = {{
        database_name = {self.root}/principal
        key_stash_file = {self.root}/stash
        acl_file = {self.root}/kadm5.acl
        max_life = 10h
        max_renewable_life = 0
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }}

[logging]
    kdc = FILE:{self.root}/kdc.log
""", encoding="utf-8")
        (self.root / "kadm5.acl").write_text("", encoding="utf-8")

    def run(self, *command: str, stdin: str | None = None) -> str:
        result = subprocess.run(command, input=stdin.encode() if stdin is not None else None,
                                capture_output=True, env=self._env(), timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({result.returncode}): "
                               f"{result.stderr.decode(errors='replace')}")
        return result.stdout.decode(errors="replace")

    def kadmin(self, query: str) -> str:
        return self.run(KADMIN_LOCAL, "-r", self.name, "-q", query)

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_kdc_conf()
        self.run(KDB5_UTIL, "-r", self.name, "create", "-s", "-P", "master-key-for-tests")

    def add_user(self, name: str, password: str) -> str:
        self.kadmin(f"addprinc -pw {password} {name}")
        return f"{name}@{self.name}"

    def add_service(self, name: str, keytab: Path) -> str:
        self.kadmin(f"addprinc -randkey {name}")
        self.kadmin(f"ktadd -k {keytab} {name}")
        return f"{name}@{self.name}"

    def start(self) -> None:
        log = (self.root / "krb5kdc.out").open("ab")
        self.process = subprocess.Popen(
            [KRB5KDC, "-n", "-r", self.name, "-P", str(self.root / "kdc.pid")],
            env=self._env(), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("krb5kdc exited: "
                                   + (self.root / "krb5kdc.out").read_text(errors="replace"))
            log_text = (self.root / "kdc.log").read_text(errors="replace") \
                if (self.root / "kdc.log").exists() else ""
            if "commencing operation" in log_text:
                return
            time.sleep(0.02)
        raise RuntimeError("krb5kdc did not start within 20 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def kinit(self, principal: str, password: str, ccache: Path,
              lifetime: str | None = None) -> None:
        command = [KINIT, "-c", f"FILE:{ccache}"]
        if lifetime:
            command += ["-l", lifetime]
        self.run(*command, principal, stdin=password + "\n")
