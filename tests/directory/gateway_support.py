"""A real `aupgate run` whose agency logs people in against the test directory: the end-to-end
tests' policy (tests/e2e/fixtures/policies/lab.yaml) with a `directory:` section, policy groups
made of directory groups, rules and a grant on them, and curl with proxy credentials.

The proxy itself comes from tests/e2e/conftest.py (`start_proxy`: the test CA, the local
upstreams and `aupgate_resolve`), so these tests go through exactly what the other end-to-end
tests do.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import time
from importlib import resources
from pathlib import Path
from typing import Any

from e2e.conftest import CURL, FIXTURES, Certs, Proxy, Result, Upstreams, curl, start_proxy

LAB = (FIXTURES / "policies" / "lab.yaml").read_text(encoding="utf-8")
REALM = "Test Laboratory Agency internet gateway"

GROUPS = """\
  groups:
    engineers:
      description: Engineering staff (a directory group named by its name, in another case)
      directory: [Engineers]
    employees:
      description: Everyone employed (a nested directory group, named by its DN)
      directory: ["cn=all-employees, ou=groups, dc=aup, dc=test"]
    finance:
      description: Finance staff (a directory group with a comma in its name)
      directory: ["Finance, Budget"]
"""

RULES = """\
rules:
  - id: engineers-no-webmail
    clauses: ["8"]
    match: {categories: [webmail], groups: [engineers]}
    action: block
    reason: Engineers use the agency's own mail.
  - id: employees-social
    clauses: ["2"]
    match: {categories: [social-networking], groups: [employees]}
    action: allow
    reason: Employees may use social networking for agency business.
"""

GRANT = """\
grants:
  - id: finance-gambling-audit
    rules: [no-gambling]
    groups: [finance]
    action: log
    approved_by: Lab director, memo 7
    reason: Auditing the state lottery's sites.
    expires: 2027-12-31
"""


def directory_yaml(url: str, password_file: Path, **overrides: Any) -> str:
    lines = [
        "directory:",
        f"  url: {url}",
        "  bind_dn: cn=svc-aupgate,ou=services,dc=aup,dc=test",
        f"  bind_password_file: {password_file}",
        "  base: dc=aup,dc=test",
        '  user_filter: "(&(objectClass=inetOrgPerson)(uid={user}))"',
        "  user_name_attribute: uid",
        "  groups: {member_of: memberOf, nested: walk}",
        "  timeouts: {connect: 2, receive: 3}",
        "  pool_size: 2",
    ]
    lines += [f"  {key}: {value}" for key, value in overrides.items()]
    return "\n".join(lines) + "\n"


def lab_policy(url: str, password_file: Path, *, extra: str = "", groups: str = GROUPS,
               directory: str | None = None, **overrides: Any) -> str:
    """lab.yaml with the directory, its groups, two group rules and a group grant (`groups` and
    `directory` replace the OpenLDAP ones: Active Directory's)."""
    text = LAB.replace("      device: state\n", "      device: state\n" + groups, 1)
    text = text.replace("rules:\n", RULES, 1)
    section = directory if directory is not None else directory_yaml(url, password_file,
                                                                      **overrides)
    return text + GRANT + section + extra


def start_directory_proxy(home: Path, certs: Certs, upstreams: Upstreams, policy: str,
                          *extra: str, workers: int = 1, env: dict[str, str] | None = None,
                          ) -> Proxy:
    """`aupgate run` on the lab policy with a directory (`policy`, from `lab_policy`)."""
    (home / "policies").mkdir(parents=True)
    (home / "policies" / "lab.yaml").write_text(policy, encoding="utf-8")
    shutil.copy(FIXTURES / "policies" / "lab-logo.png", home / "policies")
    shutil.copytree(FIXTURES / "categories", home / "categories")
    return start_proxy(home, certs, upstreams, *extra, workers=workers, env=env)


def login(proxy: Proxy, url: str, user: str | None, password: str = "", *args: str,
          timeout: float = 15) -> Result:
    """One request through the proxy with Basic proxy credentials (none when user is None)."""
    credentials = [] if user is None else ["--proxy-basic", "--proxy-user", f"{user}:{password}"]
    return curl(proxy, url, *credentials, *args, timeout=timeout)


def basic(user: str, password: str) -> str:
    """A Proxy-Authorization value as a client sends it, any bytes in the name allowed."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def with_header(proxy: Proxy, url: str, header: str) -> Result:
    """A request with this exact Proxy-Authorization value (curl would refuse some names)."""
    return curl(proxy, url, "-H", f"Proxy-Authorization: {header}")


def challenges(result: Result) -> list[str]:
    return [line.partition(":")[2].strip() for line in result.headers.split("\r\n")
            if line.lower().startswith("proxy-authenticate:")]


class RawConnection:
    """One keep-alive client connection to the proxy, for requests curl cannot make: several
    plain HTTP requests on one connection, each with its own Proxy-Authorization."""

    def __init__(self, proxy: Proxy) -> None:
        self.sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=15)
        self.buffer = b""

    def request(self, url: str, header: str | None = None) -> tuple[int, bytes]:
        host = url.split("/")[2]
        lines = [f"GET {url} HTTP/1.1", f"Host: {host}"]
        if header is not None:
            lines.append(f"Proxy-Authorization: {header}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self._response()

    def _response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            rest += self._read_more()
        self.buffer = rest[length:]
        return int(head.split(b" ")[1]), rest[:length]

    def _read(self) -> None:
        self.buffer += self._read_more()

    def _read_more(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the proxy closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


def https_through_tunnel(proxy: Proxy, host: str, header: str | None) -> tuple[int, bytes]:
    """CONNECT with this Proxy-Authorization, then one HTTPS request inside the tunnel, trusting
    the proxy's CA: what a browser does, without curl's handling of 407s."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=15)
    lines = [f"CONNECT {host}:443 HTTP/1.1", f"Host: {host}:443"]
    if header is not None:
        lines.append(f"Proxy-Authorization: {header}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    status = int(head.split(b" ")[1])
    if status != 200:
        sock.close()
        return status, head
    context = ssl.create_default_context(cafile=str(proxy.mitm_ca))
    tls = context.wrap_socket(sock, server_hostname=host)
    tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    answer = b""
    while chunk := tls.recv(65536):
        answer += chunk
    tls.close()
    return int(answer.split(b" ")[1]), answer


def invalid_lines(proxy: Proxy) -> list[str]:
    """Every audit line of the run checked against the audit schema: the problems found."""
    import jsonschema

    schema = json.loads(resources.files("aupgate").joinpath("audit_schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{record['event']}: {error.message}" for record in proxy.audit()
            for error in validator.iter_errors(record)]


def wait_until(condition: Any, timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def negotiate_curl(proxy: Proxy, url: str, ccache: Path | None, *args: str,
                   env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`curl --proxy-negotiate -U :` through the proxy by its name `localhost` (the service
    principal is HTTP/localhost), with this credential cache."""
    import os

    argv = [CURL, "-sS", "--max-time", "20", "--proxy", f"http://localhost:{proxy.port}",
            "--proxy-negotiate", "-U", ":", "--cacert", str(proxy.mitm_ca), "-o", "-",
            "-w", "\n%{http_code}", url, *args]
    environment = {**os.environ, **(env or {}),
                   "KRB5CCNAME": f"FILE:{ccache}" if ccache else "FILE:/nonexistent"}
    done = subprocess.run(argv, capture_output=True, timeout=30, check=False, env=environment)
    body, _, code = done.stdout.decode("utf-8", "replace").rpartition("\n")
    return int(code or 0), body, done.stderr.decode("utf-8", "replace")
