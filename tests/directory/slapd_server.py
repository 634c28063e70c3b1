"""A real OpenLDAP `slapd` for the directory tests, in a temporary directory on random ports.

The server is Debian's slapd with the `memberof` and `refint` overlays, configured by a generated
slapd.conf, listening on ldap:// and ldaps:// (certificate from a throwaway CA) on 127.0.0.1.
The test directory is loaded with `ldapadd` through the running server, so the memberof overlay
writes memberOf the way it does in production (slapadd would bypass it).

The tree (base dc=aup,dc=test):
  people: alice, bob (password with colons), carol (posix memberUid only), "comma,user",
          zoë (unicode), "star*", deep (at the bottom of a 12-level chain), two "Sam Smith"s
  groups: engineers ⊂ staff ⊂ all-employees (nested), loop-a ⇄ loop-b (a cycle),
          "Finance, Budget" (a comma in its name), contractors (posixGroup, memberUid),
          chain-01 ⊂ chain-02 ⊂ … ⊂ chain-12
  services: svc-aupgate, the search account (can read everything; anonymous can only bind)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tls_material import TlsFiles, make_ca_and_server

SLAPD = "/usr/sbin/slapd"
BASE = "dc=aup,dc=test"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "root-secret"
SERVICE_DN = f"cn=svc-aupgate,ou=services,{BASE}"
SERVICE_PASSWORD = "svc-Secret:123"

# user id -> password; every password differs so a mix-up shows
PASSWORDS = {
    "alice": "alice-password-1",
    "bob": "pa:ss:wo:rd",
    "carol": "carol-pw-3",
    "comma,user": "comma-pw-4",
    "zoë": "pässwörd-5",
    "star*": "star-pw-6",
    "deep": "deep-pw-7",
    "sam1": "sam-pw-8",
    "sam2": "sam-pw-9",
}
CHAIN_LENGTH = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ssha(password: str) -> str:
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _ldif_value(attr: str, value: str) -> str:
    """An LDIF line, base64 when the value is not safe as plain text (RFC 2849)."""
    if value.isascii() and value.isprintable() and not value.startswith((" ", ":", "<")):
        return f"{attr}: {value}"
    return f"{attr}:: {base64.b64encode(value.encode()).decode()}"


def _entry(dn: str, *lines: tuple[str, str]) -> str:
    return "\n".join([_ldif_value("dn", dn), *(_ldif_value(a, v) for a, v in lines)]) + "\n"


def user_dn(uid: str) -> str:
    escaped = uid.replace("\\", "\\\\").replace(",", "\\,").replace("+", "\\+")
    escaped = escaped.replace('"', '\\"').replace("<", "\\<").replace(">", "\\>")
    escaped = escaped.replace(";", "\\;").replace("=", "\\=")
    return f"uid={escaped},ou=people,{BASE}"


def group_dn(cn: str) -> str:
    return f"cn={cn.replace(',', chr(92) + ',')},ou=groups,{BASE}"


def _person(uid: str, number: int, cn: str | None = None) -> str:
    return _entry(
        user_dn(uid),
        ("objectClass", "inetOrgPerson"), ("objectClass", "posixAccount"),
        ("uid", uid), ("cn", cn or uid), ("sn", uid), ("uidNumber", str(10000 + number)),
        ("gidNumber", "10000"), ("homeDirectory", f"/home/u{number}"),
        ("userPassword", ssha(PASSWORDS[uid])),
    )


def _group(cn: str, *members: str) -> str:
    return _entry(group_dn(cn), ("objectClass", "groupOfNames"), ("cn", cn),
                  *(("member", m) for m in members))


def directory_ldif() -> str:
    """The test directory, in the order ldapadd must add it (members before their groups)."""
    entries = [
        _entry(BASE, ("objectClass", "dcObject"), ("objectClass", "organization"),
               ("dc", "aup"), ("o", "aupgate test agency")),
        *(_entry(f"ou={ou},{BASE}", ("objectClass", "organizationalUnit"), ("ou", ou))
          for ou in ("people", "groups", "services")),
        _entry(SERVICE_DN, ("objectClass", "organizationalRole"),
               ("objectClass", "simpleSecurityObject"), ("cn", "svc-aupgate"),
               ("userPassword", ssha(SERVICE_PASSWORD))),
    ]
    for number, uid in enumerate(PASSWORDS):
        cn = "Sam Smith" if uid.startswith("sam") else None
        entries.append(_person(uid, number, cn))
    entries += [
        _group("engineers", user_dn("alice"), user_dn("comma,user")),
        _group("staff", group_dn("engineers"), user_dn("bob")),
        _group("all-employees", group_dn("staff")),
        _group("loop-a", user_dn("alice")),
        _group("loop-b", group_dn("loop-a")),
        _group("Finance, Budget", user_dn("zoë")),
        _entry(group_dn("contractors"), ("objectClass", "posixGroup"), ("cn", "contractors"),
               ("gidNumber", "20000"), ("memberUid", "carol")),
        _group("chain-01", user_dn("deep")),
        *(_group(f"chain-{n:02d}", group_dn(f"chain-{n - 1:02d}"))
          for n in range(2, CHAIN_LENGTH + 1)),
    ]
    return "\n".join(entries)


# closes the loop once both groups exist (loop-a gains loop-b as a member)
CLOSE_LOOP_LDIF = (f"dn: {group_dn('loop-a')}\nchangetype: modify\nadd: member\n"
                   f"member: {group_dn('loop-b')}\n")


def slapd_conf(root: Path, tls: TlsFiles) -> str:
    return f"""\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload refint
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
TLSCACertificateFile {tls.ca_file}
TLSCertificateFile {tls.cert_file}
TLSCertificateKeyFile {tls.key_file}
sizelimit 500

database mdb
maxsize 33554432
suffix "{BASE}"
rootdn "{ROOT_DN}"
rootpw {ssha(ROOT_PASSWORD)}
directory {root}/db
index objectClass,uid,cn,member,memberUid eq

overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
overlay refint
refint_attributes member

access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by dn.exact="{SERVICE_DN}" read
    by self read
    by * none

# the directory's own operation counters (cn=Monitor), read by the tests as the administrator
database monitor
access to *
    by dn.exact="{ROOT_DN}" read
    by * none
"""


@dataclass
class SlapdServer:
    """One slapd process and its files; start, stop (gracefully or by SIGKILL) and restart it on
    the same ports."""

    root: Path
    tls: TlsFiles
    ldap_port: int = field(default_factory=free_port)
    ldaps_port: int = field(default_factory=free_port)
    # ldaps:// on 127.0.0.2, an address the certificate does not name
    ldaps_misnamed_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def ldap_url(self) -> str:
        return f"ldap://127.0.0.1:{self.ldap_port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def ldaps_misnamed_url(self) -> str:
        return f"ldaps://127.0.0.2:{self.ldaps_misnamed_port}"

    @property
    def conf(self) -> Path:
        return self.root / "slapd.conf"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        log = (self.root / "slapd.log").open("ab")
        self.process = subprocess.Popen(
            [SLAPD, "-f", str(self.conf), "-d", "0", "-s", "0",
             "-h", f"{self.ldap_url}/ {self.ldaps_url}/ {self.ldaps_misnamed_url}/"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.process.returncode}: "
                                   + (self.root / "slapd.log").read_text(errors="replace")[-2000:])
            if _accepts("127.0.0.1", self.ldap_port) and _accepts("127.0.0.1", self.ldaps_port) \
                    and _accepts("127.0.0.2", self.ldaps_misnamed_port):
                return
            time.sleep(0.02)
        raise RuntimeError("slapd did not listen within 20 s")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ldapadd(self, ldif: str, *, modify: bool = False) -> None:
        command = ["ldapmodify" if modify else "ldapadd", "-x", "-H", self.ldap_url,
                   "-D", ROOT_DN, "-w", ROOT_PASSWORD]
        result = subprocess.run(command, input=ldif.encode(), capture_output=True, timeout=30,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stderr.decode(errors='replace')}")


    def operations(self) -> dict[str, int]:
        """Operations the directory has completed, by kind (`Bind`, `Search`...), from its
        monitor database; reading them costs one bind and one search, counted in the answer."""
        result = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-H", self.ldap_url, "-D", ROOT_DN, "-w", ROOT_PASSWORD,
             "-b", "cn=Operations,cn=Monitor", "-s", "one", "(objectClass=*)",
             "monitorOpCompleted"], capture_output=True, timeout=30, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"ldapsearch cn=Monitor failed: {result.stderr.decode()}")
        counts: dict[str, int] = {}
        kind = ""
        for line in result.stdout.decode().splitlines():
            if line.startswith("dn: cn="):
                kind = line[len("dn: cn="):].split(",")[0]
            elif line.startswith("monitorOpCompleted: "):
                counts[kind] = int(line.split(": ", 1)[1])
        return counts


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def make_slapd(root: Path) -> SlapdServer:
    """A running slapd with the test directory loaded."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "db").mkdir()
    tls = make_ca_and_server(root / "tls")
    server = SlapdServer(root, tls)
    server.conf.write_text(slapd_conf(root, tls), encoding="utf-8")
    server.start()
    server.ldapadd(directory_ldif())
    server.ldapadd(CLOSE_LOOP_LDIF, modify=True)
    return server


@contextlib.contextmanager
def running_slapd(root: Path) -> Iterator[SlapdServer]:
    if shutil.which(SLAPD) is None and not Path(SLAPD).exists():
        import pytest
        pytest.skip("slapd is not installed (apt-get install slapd ldap-utils)")
    server = make_slapd(root)
    try:
        yield server
    finally:
        server.stop()
