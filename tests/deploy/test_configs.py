"""The shipped deploy/ files, checked by the tools that will read them on a gateway.

systemd-analyze verifies the units, HAProxy parses its configuration, nginx serves the PAC file
and wpad.dat with the snippet as shipped, logrotate really rotates a file with the shipped
stanza, and the permissions script sets the documented owners and modes in a staging root.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from deploy_support import (
    DEPLOY,
    Upstream,
    free_port,
    require,
    start_worker,
    wait_for_port,
)

from aupgate.pac import PAC_CONTENT_TYPE

UNITS = ("aupgate.service", "aupgate-health.service", "aupgate-health.timer")


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """The units parse, with the venv path pointing at this environment."""
    analyze = require("systemd-analyze")
    venv = str(Path(sys.executable).parent.parent)
    for unit in UNITS:
        text = (DEPLOY / "systemd" / unit).read_text()
        (tmp_path / unit).write_text(text.replace("/opt/aupgate/venv", venv))
    done = subprocess.run(
        [analyze, "verify", "--man=no", *UNITS],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    problems = [
        line
        for line in done.stderr.splitlines()
        if "aupgate" in line and "user" not in line.lower()  # the aupgate user is made on install
    ]
    assert done.returncode == 0 and not problems, done.stderr


def test_unit_command_line_is_what_aupgate_run_takes() -> None:
    """ExecStart with gateway.env's values (empty ones too) parses as `aupgate run` arguments."""
    from aupgate.cli import _parser

    text = (DEPLOY / "systemd" / "aupgate.service").read_text()
    command = text.split("ExecStart=", 1)[1].split("\n#", 1)[0].replace("\\\n", " ")
    env = dict(line.split("=", 1) for line in (DEPLOY / "systemd" / "gateway.env").read_text()
               .splitlines() if line and not line.startswith("#"))
    assert set(env) == {"AUPGATE_LISTEN_HOST", "AUPGATE_PROXY_PROTOCOL_FROM",
                        "AUPGATE_DEFAULT_AGENCY", "AUPGATE_ADMIN"}
    argv = [env[word[2:-1]] if word.startswith("${") else word for word in command.split()]
    assert argv[0].endswith("/aupgate") and argv[1] == "run"
    args = _parser().parse_args(argv[1:])
    assert args.workers is None  # one per core
    assert args.listen_host == "0.0.0.0" and args.proxy_protocol_from == [""]
    assert str(args.audit_log) == "/var/log/aupgate/audit.jsonl"
    assert args.admin == "127.0.0.1:9180"


def test_health_unit_asks_the_gateways_healthz(tmp_path: Path, upstream: Upstream) -> None:
    """aupgate-health.service's command, with gateway.env's AUPGATE_ADMIN pointed at a real
    `aupgate run --admin`, succeeds while it is healthy and fails, printing the reasons, when
    its audit file cannot be written."""
    text = (DEPLOY / "systemd" / "aupgate-health.service").read_text()
    command = text.split("ExecStart=", 1)[1].split("\n", 2)
    words = " ".join(part.rstrip("\\").strip() for part in command[:2]).split()
    assert words[0] == "/usr/bin/curl" and "${AUPGATE_ADMIN}" in words[-1]
    worker = start_worker(tmp_path / "gw", upstream, admin=True)
    try:
        argv = [w.replace("${AUPGATE_ADMIN}", f"127.0.0.1:{worker.admin}") for w in words]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0 and done.stdout == "ok\n", done
        worker.audit_path.unlink()
        worker.audit_path.mkdir()  # unwritable from the next event on
        worker.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while True:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            if done.returncode != 0 or time.monotonic() > deadline:
                break
            subprocess.run(["curl", "-s", "-o", "/dev/null", "--proxy",
                            f"http://127.0.0.1:{worker.port}", "http://www.example.org/x"],
                           timeout=30, check=False)
            time.sleep(0.2)
        assert done.returncode == 22 and "audit log cannot be written" in done.stdout, done
    finally:
        worker.stop()


def test_unit_is_hardened() -> None:
    """The hardening the deployment guide promises is in the unit."""
    text = (DEPLOY / "systemd" / "aupgate.service").read_text()
    for line in [
        "User=aupgate",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/log/aupgate",
        "CapabilityBoundingSet=\n",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "Restart=always",
        "Type=notify",
        "KillMode=mixed",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ]:
        assert line in text, f"aupgate.service lacks {line!r}"


def test_unit_keeps_budgets_where_it_may_write() -> None:
    """Budget counts go to the service's own state directory, the one place besides the logs and
    the cache that ProtectSystem=strict leaves writable (not var/ under a read-only working
    folder)."""
    text = (DEPLOY / "systemd" / "aupgate.service").read_text()
    assert "StateDirectory=aupgate\n" in text
    assert "Environment=AUPGATE_STATE_DIR=/var/lib/aupgate\n" in text


def test_haproxy_config_parses() -> None:
    """`haproxy -c` accepts the shipped configuration (the scale-out test runs it)."""
    haproxy = require("haproxy")
    done = subprocess.run(
        [haproxy, "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_nginx_serves_pac_and_wpad(tmp_path: Path) -> None:
    """The nginx snippet serves proxy.pac and wpad.dat as application/x-ns-proxy-autoconfig."""
    nginx = require("nginx")
    www = tmp_path / "www"
    www.mkdir()
    body = b'function FindProxyForURL(url, host) { return "DIRECT"; }\n'
    (www / "proxy.pac").write_bytes(body)
    (www / "wpad.dat").write_bytes(body)
    (www / "secret.txt").write_bytes(b"not served")
    port = free_port()
    snippet = (DEPLOY / "nginx" / "aupgate-pac.conf").read_text()
    for old, new in [
        ("    listen 80;\n", f"    listen 127.0.0.1:{port};\n"),
        ("    listen [::]:80;\n", ""),
        ("root /var/www/aupgate-pac;", f"root {www};"),
        ("/var/log/nginx/aupgate-pac.access.log", str(tmp_path / "access.log")),
    ]:
        assert old in snippet, f"deploy/nginx/aupgate-pac.conf no longer contains {old!r}"
        snippet = snippet.replace(old, new)
    (tmp_path / "snippet.conf").write_text(snippet)
    (tmp_path / "nginx.conf").write_text(
        ""
        # Workers as the test's own user: pytest's temporary folders are private to it.
        + ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\npid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
        "events {}\nhttp {\n"
        f"  client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;\n"
        f"  fastcgi_temp_path {tmp_path}/fcgi; uwsgi_temp_path {tmp_path}/uwsgi;\n"
        f"  scgi_temp_path {tmp_path}/scgi;\n"
        f"  include {tmp_path / 'snippet.conf'};\n}}\n"
    )
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process=process, log=tmp_path / "error.log")
        for name in ("proxy.pac", "wpad.dat"):
            url = f"http://127.0.0.1:{port}/{name}"
            request = urllib.request.Request(url, headers={"Host": "wpad.lab.example"})
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.headers["Content-Type"] == PAC_CONTENT_TYPE
                assert "max-age=300" in response.headers["Cache-Control"]
                assert response.read() == body
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/secret.txt", timeout=5)
        assert refused.value.code == 404
        refused.value.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


SIGNAL_COMMAND = ("systemctl kill --kill-whom=main --signal=HUP aupgate.service "
                  ">/dev/null 2>&1 || true")


def shipped_logrotate(logs: Path, signal_command: str) -> str:
    """The shipped stanza pointed at `logs`, run as root, with `signal_command` in place of the
    systemctl call (no systemd here): everything else as shipped."""
    text = (DEPLOY / "logrotate" / "aupgate").read_text()
    for shipped in ("su aupgate adm", "create 0640 aupgate adm", SIGNAL_COMMAND):
        assert shipped in text, shipped
    return (text.replace("/var/log/aupgate", str(logs))
            .replace("su aupgate adm", "su root root")
            .replace("create 0640 aupgate adm", "create 0640 root root")
            .replace(SIGNAL_COMMAND, signal_command))


def test_logrotate_create_and_one_signal_for_every_worker(tmp_path: Path) -> None:
    """The shipped stanza renames every worker's file, creates an empty 0640 one in its place
    (a new inode: the writer moves to it), and runs postrotate once for all of them."""
    logrotate = require("logrotate")
    text = (DEPLOY / "logrotate" / "aupgate").read_text()
    assert "copytruncate" not in text.split("{", 1)[1]
    assert "sharedscripts" in text and "delaycompress" in text
    logs = tmp_path / "log"
    logs.mkdir()
    signals = tmp_path / "signals"
    inodes = {}
    for name in ("audit.w0.jsonl", "audit.w1.jsonl", "audit.jsonl"):
        (logs / name).write_text(f'{{"event": "{name}"}}\n')
        inodes[name] = (logs / name).stat().st_ino
    (tmp_path / "aupgate").write_text(shipped_logrotate(logs, f"echo hup >> {signals}"))
    done = subprocess.run(
        [logrotate, "-f", "-s", str(tmp_path / "state"), str(tmp_path / "aupgate")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert signals.read_text() == "hup\n"  # once, for all the files
    for name, inode in inodes.items():
        [rotated] = [p for p in logs.iterdir() if p.name.startswith(f"{name}-")]
        assert rotated.read_text() == f'{{"event": "{name}"}}\n'  # not compressed yet
        assert rotated.stat().st_ino == inode  # renamed, not copied
        live = logs / name
        assert live.stat().st_size == 0 and live.stat().st_ino != inode
        assert stat.S_IMODE(live.stat().st_mode) == 0o640


def test_permissions_script(tmp_path: Path) -> None:
    """permissions.sh gives the CA key, policies and logs the documented owners and modes."""
    if os.geteuid() != 0:
        pytest.fail("permissions.sh changes owners: run the deployment tests as root (CI does)")
    root = tmp_path / "root"
    confdir = root / "etc" / "aupgate" / "mitmproxy"
    confdir.mkdir(parents=True)
    (confdir / "mitmproxy-ca.pem").write_text("key and cert")
    (confdir / "mitmproxy-ca.p12").write_text("key again")
    (confdir / "mitmproxy-ca-cert.pem").write_text("cert")
    policies = root / "etc" / "aupgate" / "policies"
    policies.mkdir()
    (policies / "lab.yaml").write_text("agency: lab\n")
    logs = root / "var" / "log" / "aupgate"
    logs.mkdir(parents=True)
    (logs / "audit-8081.jsonl").write_text("{}\n")
    env = {
        **os.environ,
        "DESTDIR": str(root),
        "AUPGATE_USER": "nobody",
        "AUPGATE_GROUP": "nogroup",
    }
    done = subprocess.run(
        ["bash", str(DEPLOY / "permissions.sh")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr

    def mode(path: Path) -> tuple[str, str, int]:
        info = path.stat()
        return (path.owner(), path.group(), stat.S_IMODE(info.st_mode))

    assert mode(confdir / "mitmproxy-ca.pem") == ("root", "nogroup", 0o640)
    assert mode(confdir / "mitmproxy-ca-cert.pem") == ("root", "nogroup", 0o644)
    assert not (confdir / "mitmproxy-ca.p12").exists()
    assert mode(confdir) == ("root", "nogroup", 0o750)
    assert mode(policies / "lab.yaml") == ("root", "nogroup", 0o640)
    assert mode(logs) == ("nobody", "adm", 0o2750)
    assert mode(logs / "audit-8081.jsonl") == ("nobody", "adm", 0o640)
