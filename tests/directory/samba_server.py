"""A real Active Directory domain controller for the tests: Debian's Samba AD DC, provisioned in a
temporary directory and running only its LDAP service, with a certificate from the test's own CA.

Samba implements what aupgate relies on in AD and OpenLDAP does not: the root DSE's AD
capability, LDAP_MATCHING_RULE_IN_CHAIN, AD's "data 52e"-style bind diagnostics and DNs in
AD's `CN=...,CN=Users` shape. Its LDAP port cannot be moved, so it listens on 127.0.0.1:389
and :636 (loopback only). Test runs on one machine take turns: each holds a lock file while its
DC runs (one module at a time, see conftest.py) and waits, bounded, for the lock and for the
ports to be free; the test fails with a clear message if they stay taken, or if the DC that
answers is not this run's (each run's DC has its own host name).

The domain (AD.AUP.TEST, base DC=ad,DC=aup,DC=test):
  users: ada (in Web Filter Admins and "Finance, Budget"), ann (no groups), dan (disabled),
         mia (must change her password), svc-aupgate (the search account)
  groups: Web Filter Admins ⊂ IT Staff ⊂ All Staff; Finance, Budget
As in a real domain, simple binds are accepted only over TLS (LDAPS or StartTLS).
"""

from __future__ import annotations

import fcntl
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from ldap3 import Connection, Server, Tls
from tls_material import make_ca_and_server

SAMBA = "/usr/sbin/samba"
SAMBA_TOOL = "/usr/bin/samba-tool"
REALM = "AD.AUP.TEST"
BASE = "DC=ad,DC=aup,DC=test"
USERS = f"CN=Users,{BASE}"
ADMIN_PASSWORD = "Admin-Pass-1!x"
SERVICE_DN = f"CN=svc-aupgate,{USERS}"
SERVICE_PASSWORD = "Svc-Pass:2!x"
AD_PASSWORDS = {"ada": "Ada-Pass:3!x", "ann": "Ann-Pass-4!x", "dan": "Dan-Pass-5!x",
                "mia": "Mia-Pass-6!x", "svc-aupgate": SERVICE_PASSWORD}
LDAP_PORT = 389
LOCK_FILE = Path("/tmp/aupgate-tests-samba-dc.lock")
TURN_SECONDS = 600  # how long a run waits for another run's DC to finish


def ad_user_dn(name: str) -> str:
    return f"CN={name},{USERS}"


def ad_group_dn(name: str) -> str:
    return f"CN={name.replace(',', chr(92) + ',')},{USERS}"


@dataclass
class SambaDc:
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def ldap_url(self) -> str:
        return f"ldap://127.0.0.1:{LDAP_PORT}"

    @property
    def ldaps_url(self) -> str:
        return "ldaps://127.0.0.1:636"

    @property
    def ca_file(self) -> Path:
        return self.root / "tls" / "ca.pem"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _provision(root: Path, host: str) -> Path:
    options = {
        "interfaces": "lo", "bind interfaces only": "yes", "server services": "ldap",
        "pid directory": str(root),
        "log file": str(root / "log.%m"), "lock directory": str(root / "lock"),
    }
    command = [SAMBA_TOOL, "domain", "provision", f"--targetdir={root / 'dc'}",
               f"--realm={REALM}", "--domain=AUPAD", "--server-role=dc",
               "--dns-backend=NONE", f"--adminpass={ADMIN_PASSWORD}", f"--host-name={host}",
               *(f"--option={k}={v}" for k, v in options.items())]
    result = subprocess.run(command, capture_output=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError("samba-tool domain provision failed: "
                           + result.stderr.decode(errors="replace")[-3000:])
    conf = root / "dc" / "etc" / "smb.conf"
    # TLS with a certificate from the test's own CA for 127.0.0.1 (as an agency's CA would
    # issue for its DCs); AD's default stays: simple binds only over TLS
    tls = make_ca_and_server(root / "tls", "aupgate test AD CA")
    text = conf.read_text(encoding="utf-8")
    text = text.replace("[global]\n", "[global]\n\ttls enabled = yes\n"
                        f"\ttls keyfile = {tls.key_file}\n\ttls certfile = {tls.cert_file}\n"
                        f"\ttls cafile = {tls.ca_file}\n", 1)
    conf.write_text(text, encoding="utf-8")
    return conf


def _populate(admin: Connection) -> None:
    def user(name: str, control: int = 512, **extra: object) -> None:
        attributes: dict[str, object] = {
            "objectClass": ["top", "person", "organizationalPerson", "user"],
            "sAMAccountName": name, "userPrincipalName": f"{name}@{REALM.lower()}",
            "unicodePwd": f'"{AD_PASSWORDS[name]}"'.encode("utf-16-le"),
            "userAccountControl": str(control), **extra}
        if not admin.add(ad_user_dn(name), attributes=attributes):
            raise RuntimeError(f"adding {name}: {admin.result}")

    def group(name: str, *members: str) -> None:
        if not admin.add(ad_group_dn(name), attributes={
                "objectClass": ["top", "group"], "sAMAccountName": name.replace(",", ""),
                "member": list(members)}):
            raise RuntimeError(f"adding {name}: {admin.result}")

    user("svc-aupgate")
    user("ada")
    user("ann")
    user("dan", control=514)  # ACCOUNTDISABLE
    user("mia", pwdLastSet="0")
    group("Web Filter Admins", ad_user_dn("ada"))
    group("IT Staff", ad_group_dn("Web Filter Admins"))
    group("All Staff", ad_group_dn("IT Staff"))
    group("Finance, Budget", ad_user_dn("ada"))


@contextmanager
def _turn_for_the_ports() -> Iterator[float]:
    """This run's turn at 127.0.0.1:389 and :636: the lock file, waited for at most
    TURN_SECONDS; gives the deadline for the ports to be free too (another program, or a run
    that does not take the lock, may hold them)."""
    deadline = time.monotonic() + TURN_SECONDS
    with LOCK_FILE.open("a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run's Samba AD DC held {LOCK_FILE} for "
                                f"{TURN_SECONDS} s")
                time.sleep(1)
        try:
            yield deadline
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wait_for_free_ports(deadline: float) -> None:
    while _port_in_use(LDAP_PORT) or _port_in_use(636):
        if time.monotonic() > deadline:
            pytest.fail("127.0.0.1:389 or :636 stayed in use; Samba AD's LDAP ports cannot be "
                        "moved")
        time.sleep(1)


def _answering_host() -> str:
    """The DC answering on 127.0.0.1:389 (its root DSE's dnsHostName, read anonymously): this
    run's, or one another run started in the moment between the ports' check and ours."""
    connection = Connection(Server("127.0.0.1", port=LDAP_PORT), auto_bind=True)
    try:
        connection.search("", "(objectClass=*)", search_scope="BASE",
                          attributes=["dnsHostName"])
        return str(connection.entries[0].dnsHostName) if connection.entries else ""
    finally:
        connection.unbind()


@contextmanager
def running_samba_dc(root: Path) -> Iterator[SambaDc]:
    if shutil.which(SAMBA) is None or shutil.which(SAMBA_TOOL) is None:
        pytest.skip("Samba AD DC is not installed (apt-get install samba)")
    with _turn_for_the_ports() as deadline:
        yield from _run_samba_dc(root, deadline)


def _run_samba_dc(root: Path, deadline: float) -> Iterator[SambaDc]:
    host = f"dc{secrets.token_hex(4)}"  # this run's DC, told apart from another run's
    conf = _provision(root, host)
    _wait_for_free_ports(deadline)
    log = (root / "samba.out").open("ab")
    process = subprocess.Popen([SAMBA, "-i", "-M", "single", "-s", str(conf)],
                               stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    dc = SambaDc(root, process)
    try:
        deadline = time.monotonic() + 60
        while not (_port_in_use(LDAP_PORT) and _port_in_use(636)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("samba did not start: "
                                   + (root / "samba.out").read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        answering = _answering_host()
        if not answering.lower().startswith(f"{host}."):
            pytest.fail(f"another Samba AD DC ({answering}) took 127.0.0.1:389 as this run's "
                        "started; run the Active Directory tests again")
        # Setting passwords needs an encrypted connection; the harness (not aupgate) accepts
        # Samba's self-signed certificate for this set-up step only.
        server = Server("127.0.0.1", port=636, use_ssl=True, tls=Tls(validate=ssl.CERT_NONE))
        admin = Connection(server, user=f"Administrator@{REALM.lower()}",
                           password=ADMIN_PASSWORD, auto_bind=True)
        try:
            _populate(admin)
        finally:
            admin.unbind()  # (ldap3's `with` leaves a connection bound before it open)
        yield dc
    finally:
        dc.stop()
