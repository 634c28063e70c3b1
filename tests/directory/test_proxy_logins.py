"""Directory logins through a real `aupgate run` against the real slapd: the 407, good and bad
logins, injection attempts, a password with colons, group rules and grants from directory groups
(direct and nested), keep-alive connections, the login cache, and what the audit log says (and
never says)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_support import (
    REALM,
    RawConnection,
    basic,
    challenges,
    https_through_tunnel,
    invalid_lines,
    lab_policy,
    login,
    start_directory_proxy,
    with_header,
)
from slapd_server import PASSWORDS, SERVICE_PASSWORD, SlapdServer

from e2e.conftest import Certs, Proxy, Upstreams, curl, stop_proxy

pytestmark = pytest.mark.e2e

ALICE = ("alice", PASSWORDS["alice"])  # engineers ⊂ staff ⊂ all-employees
BOB = ("bob", PASSWORDS["bob"])  # staff ⊂ all-employees; password pa:ss:wo:rd
CAROL = ("carol", PASSWORDS["carol"])  # contractors only (posix memberUid, not read here)
ZOE = ("zoë", PASSWORDS["zoë"])  # "Finance, Budget"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
          upstreams: Upstreams, slapd: SlapdServer, password_file: Path,
          ) -> Iterator[Proxy]:
    home = tmp_path_factory.mktemp("login-proxy")
    started = start_directory_proxy(home, certs, upstreams,
                                    lab_policy(slapd.ldap_url, password_file))
    yield started
    stop_proxy(started)


def decisions(proxy: Proxy, host: str) -> list[dict[str, object]]:
    return [e for e in proxy.events("decision") if e.get("host") == host]


# --------------------------------------------------------------------------- the 407


def test_without_credentials_the_gateway_asks_for_a_login(proxy: Proxy) -> None:
    result = login(proxy, "http://www.example.org/ask", None)
    assert result.status == 407, result
    assert challenges(result) == [f'Basic realm="{REALM}", charset="UTF-8"']  # no Kerberos here
    assert "mitmproxy" not in result.headers + result.body
    assert "Sign in to use the internet" in result.body
    assert "Test Laboratory Agency" in result.body


def test_https_without_credentials_gets_the_407_at_connect(proxy: Proxy) -> None:
    status, head = https_through_tunnel(proxy, "www.example.org", None)
    assert status == 407
    assert f'Proxy-Authenticate: Basic realm="{REALM}"'.encode() in head


def test_a_browser_page_is_html(proxy: Proxy) -> None:
    result = curl(proxy, "http://www.example.org/", "-H", "Accept: text/html")
    assert result.status == 407
    assert "<h1>Sign in to use the internet</h1>" in result.body


# --------------------------------------------------------------------------- good logins


def test_a_good_login_over_plain_http(proxy: Proxy, upstreams: Upstreams) -> None:
    """The user is decided and audited; the credentials never reach the site."""
    result = login(proxy, "http://www.example.org/headers", *ALICE)
    assert result.status == 200, result
    seen = {k.lower(): v for k, v in json.loads(result.body).items()}
    assert "proxy-authorization" not in seen
    line = decisions(proxy, "www.example.org")[-1]
    assert line["user"] == "alice" and line["action"] == "allow"


def test_a_good_login_over_https(proxy: Proxy) -> None:
    result = login(proxy, "https://www.example.org/tls-login", *ALICE)
    assert result.status == 200, result
    inside = [e for e in decisions(proxy, "www.example.org") if e.get("path") == "/tls-login"]
    assert inside and inside[-1]["user"] == "alice"
    connect = [e for e in decisions(proxy, "www.example.org") if e.get("phase") == "connect"]
    assert connect and connect[-1]["user"] == "alice"


def test_a_password_with_colons(proxy: Proxy) -> None:
    """bob's password is pa:ss:wo:rd; the user name ends at the first colon (RFC 7617)."""
    result = login(proxy, "http://www.example.org/colons", *BOB)
    assert result.status == 200, result


def test_the_name_typed_in_another_case_is_the_directory_user(proxy: Proxy) -> None:
    result = login(proxy, "http://www.example.org/upper", "ALICE", ALICE[1])
    assert result.status == 200, result
    assert [e["user"] for e in decisions(proxy, "www.example.org")
            if e.get("path") == "/upper"] == ["alice"]


def test_a_unicode_name(proxy: Proxy) -> None:
    assert login(proxy, "http://www.example.org/zoe", *ZOE).status == 200


# --------------------------------------------------------------------------- refused logins


@pytest.mark.parametrize(("user", "password", "reason"), [
    ("alice", "wrong-password", "bad_credentials"),
    ("alice", PASSWORDS["bob"], "bad_credentials"),  # another user's password
    ("nobody", "whatever", "unknown_user"),
    ("alice", "", "bad_credentials"),  # LDAP would take an empty password as anonymous
])
def test_refused_logins_get_the_407_again(proxy: Proxy, user: str, password: str,
                                          reason: str) -> None:
    result = login(proxy, f"http://www.example.org/refused-{reason}", user, password)
    assert result.status == 407, result
    assert "was not accepted" in result.body
    assert challenges(result) == [f'Basic realm="{REALM}", charset="UTF-8"']
    failed = proxy.events("login_failed", user=user, reason=reason)
    assert failed and failed[-1]["method"] == "basic" and failed[-1]["agency"] == "lab"


INJECTIONS = [
    ("*", "unknown_user"),
    ("a*", "unknown_user"),
    ("*)(uid=*", "unknown_user"),
    ("alice)(|(uid=*", "unknown_user"),
    ("alice)(objectClass=*", "unknown_user"),
    ("\\2a", "unknown_user"),
    ("star*", None),  # a real user whose name has a star: only they match
]


@pytest.mark.parametrize(("user", "reason"), INJECTIONS)
def test_filter_injection_finds_nobody(proxy: Proxy, user: str, reason: str | None) -> None:
    """Every value is escaped: a star or parentheses never widen the filter to alice. With
    alice's password, an injection that matched her entry would log in."""
    result = with_header(proxy, "http://www.example.org/inject", basic(user, ALICE[1]))
    assert result.status == 407, result
    if reason is not None:
        assert proxy.events("login_failed", reason=reason)
    assert not [e for e in decisions(proxy, "www.example.org")
                if e.get("path") == "/inject" and e.get("user")]


def test_star_user_logs_in_as_themselves(proxy: Proxy) -> None:
    result = with_header(proxy, "http://www.example.org/star", basic("star*", PASSWORDS["star*"]))
    assert result.status == 200
    assert [e["user"] for e in decisions(proxy, "www.example.org")
            if e.get("path") == "/star"] == ["star*"]


@pytest.mark.parametrize(("raw_user", "detail"), [
    (b"al\x00ice", "NUL"),
    (b"alice\x00)(uid=*", "NUL"),
    (b"a" * 300, "longer than"),
    (b"alice\x1b[31m", "control"),
    (b" alice", "spaces"),
    ("ali\u200bce".encode(), "invisible"),
])
def test_names_no_directory_is_asked_about(proxy: Proxy, slapd: SlapdServer, raw_user: bytes,
                                           detail: str) -> None:
    header = "Basic " + base64.b64encode(raw_user + b":" + ALICE[1].encode()).decode()
    before = slapd.operations()
    result = with_header(proxy, "http://www.example.org/invalid", header)
    after = slapd.operations()
    assert result.status == 407
    events = proxy.events("login_failed", reason="invalid_name")
    assert any(detail in str(e["detail"]) for e in events), events
    assert after["Search"] - before["Search"] == 1  # only the counter's own search
    assert all("\x00" not in str(e["user"]) for e in events)  # shown as \x00


@pytest.mark.parametrize("header", [
    "Basic",
    "Basic !!!",
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Bearer abc",
    "Negotiate " + base64.b64encode(b"not kerberos").decode(),  # not offered here
    "Basic " + "A" * 20_000,
])
def test_malformed_headers_get_the_407(proxy: Proxy, header: str) -> None:
    result = with_header(proxy, "http://www.example.org/malformed", header)
    assert result.status == 407


def test_two_proxy_authorization_headers_are_refused(proxy: Proxy) -> None:
    result = curl(proxy, "http://www.example.org/two", "-H",
                  f"Proxy-Authorization: {basic(*ALICE)}", "-H",
                  f"Proxy-Authorization: {basic(*BOB)}")
    assert result.status == 407


# --------------------------------------------------------------------------- groups


def test_a_group_rule_on_a_direct_directory_group(proxy: Proxy) -> None:
    """engineers-no-webmail: alice is in cn=engineers (named `Engineers` in the policy)."""
    assert login(proxy, "http://mail.yahoo.com/", *ALICE).status == 403
    assert login(proxy, "http://mail.yahoo.com/", *BOB).status == 200  # staff, not engineers
    lines = decisions(proxy, "mail.yahoo.com")
    assert [(e["user"], e["rule"]) for e in lines[-2:]] == [
        ("alice", "engineers-no-webmail"), ("bob", "log-webmail")]


def test_a_rule_on_a_nested_group_by_dn(proxy: Proxy) -> None:
    """employees is cn=all-employees by DN; alice is in it through engineers ⊂ staff, bob
    through staff; carol is in none of them and gets the warn page."""
    assert login(proxy, "http://www.facebook.com/", *ALICE).status == 200
    assert login(proxy, "http://www.facebook.com/", *BOB).status == 200
    carol = login(proxy, "http://www.facebook.com/", *CAROL)
    assert carol.status == 403 and "needs a work reason" in carol.body
    rules = [(e["user"], e["rule"]) for e in decisions(proxy, "www.facebook.com")]
    assert rules[-3:] == [("alice", "employees-social"), ("bob", "employees-social"),
                          ("carol", "social-warn")]


def test_a_grant_for_a_directory_group(proxy: Proxy) -> None:
    """zoë is in "Finance, Budget" (a comma in the name): the grant relaxes no-gambling."""
    assert login(proxy, "http://www.bet365.com/", *ZOE).status == 200
    assert login(proxy, "http://www.bet365.com/", *ALICE).status == 403
    lines = decisions(proxy, "www.bet365.com")
    assert [(e["user"], e["grant"]) for e in lines[-2:]] == [
        ("zoë", "finance-gambling-audit"), ("alice", None)]


def test_a_warn_pass_is_the_logged_in_users_own(proxy: Proxy) -> None:
    """carol and zoë share a client address (as behind NAT or a terminal server); carol's
    work reason opens the site for carol, not for zoë."""
    url = "http://www.facebook.com/pass-test"
    first = login(proxy, url, *CAROL, "-H", "Accept: text/html")
    assert first.status == 403 and 'name="reason"' in first.body, first
    token = first.body.split('name="token" value="')[1].split('"')[0]
    stolen = login(proxy, "http://www.facebook.com/.aupgate/continue", *ZOE,
                   "--data-urlencode", f"token={token}", "--data-urlencode",
                   "reason=using carol's token")
    assert stolen.status != 303  # the token was issued to carol
    go = login(proxy, "http://www.facebook.com/.aupgate/continue", *CAROL,
               "--data-urlencode", f"token={token}", "--data-urlencode",
               "reason=answering a citizen's question")
    assert go.status == 303, go
    assert login(proxy, url, *CAROL).status == 200
    assert login(proxy, url, *ZOE).status == 403  # zoë has no pass
    assert login(proxy, url, "CAROL", CAROL[1]).status == 200  # carol, however she types it
    [cont] = [e for e in proxy.events("decision", phase="continue") if e.get("work_reason")
              == "answering a citizen's question"]
    assert cont["user"] == "carol"
    used = [e["user"] for e in proxy.events("decision", host="www.facebook.com",
                                            enforced="pass-used")]
    assert used == ["carol", "carol"]


# --------------------------------------------------------------------------- connections


def test_a_keep_alive_connection_takes_each_requests_own_credentials(proxy: Proxy) -> None:
    """Plain HTTP: each request carries its header, and a different one is checked anew."""
    conn = RawConnection(proxy)
    try:
        assert conn.request("http://www.example.org/ka-1", basic(*ALICE))[0] == 200
        assert conn.request("http://www.example.org/ka-2", basic(*ALICE))[0] == 200
        assert conn.request("http://www.example.org/ka-3", basic(*BOB))[0] == 200
        assert conn.request("http://www.example.org/ka-4", basic("bob", "wrong"))[0] == 407
        assert conn.request("http://www.example.org/ka-5")[0] == 407  # Basic: every request
        assert conn.request("http://www.example.org/ka-6", basic(*ALICE))[0] == 200
    finally:
        conn.close()
    users = {e["path"]: e["user"] for e in decisions(proxy, "www.example.org")
             if str(e.get("path", "")).startswith("/ka-")}
    assert users == {"/ka-1": "alice", "/ka-2": "alice", "/ka-3": "bob", "/ka-6": "alice"}


def test_requests_in_a_tunnel_are_the_connects_user(proxy: Proxy) -> None:
    status, _ = https_through_tunnel(proxy, "www.example.org", basic(*BOB))
    assert status == 200
    assert decisions(proxy, "www.example.org")[-1]["user"] == "bob"


def test_a_cached_login_costs_the_directory_nothing(proxy: Proxy, slapd: SlapdServer) -> None:
    """The first login asks the directory; the next twenty, each on a new connection, ask it
    nothing (the directory's own operation counters, cn=Monitor, say so)."""
    user = ("deep", PASSWORDS["deep"])
    assert login(proxy, "http://www.example.org/cache-0", *user).status == 200
    quiet = slapd.operations()
    idle = slapd.operations()  # reading the counters costs one bind and one search
    overhead = {k: idle[k] - quiet[k] for k in ("Bind", "Search")}
    for i in range(1, 21):
        assert login(proxy, f"http://www.example.org/cache-{i}", *user).status == 200
    after = slapd.operations()
    assert {k: after[k] - idle[k] for k in ("Bind", "Search")} == overhead


# --------------------------------------------------------------------------- the audit log


def test_login_events_and_never_a_secret(proxy: Proxy) -> None:
    """`login` once per user and client within the hour; nothing in the audit file or the
    proxy's output carries a password or a Proxy-Authorization value."""
    for _ in range(3):
        assert login(proxy, "http://www.example.org/events", *ALICE).status == 200
    logins = proxy.events("login", user="alice")
    assert len(logins) == 1, logins  # alice logged in many times in this module
    assert logins[0]["groups"] == ["all-employees", "engineers", "loop-a", "loop-b", "staff"]
    text = proxy.audit_path.read_text(encoding="utf-8") + proxy.log()
    secrets = [*PASSWORDS.values(), SERVICE_PASSWORD, "wrong-password"]
    secrets += [basic(*ALICE).split(" ")[1], basic(*BOB).split(" ")[1]]
    assert [s for s in secrets if s in text] == []
    assert "proxy-authorization" not in text.lower()
    assert invalid_lines(proxy) == []


# --------------------------------------------------------------------------- --workers 2


def test_logins_with_two_workers(tmp_path: Path, certs: Certs, upstreams: Upstreams,
                                 slapd: SlapdServer, password_file: Path) -> None:
    """`aupgate run --workers 2`: each worker logs people in (its own directory connections and
    cache); good and bad logins, a group rule and HTTPS, whichever worker takes the
    connection."""
    proxy = start_directory_proxy(tmp_path / "workers", certs, upstreams,
                                  lab_policy(slapd.ldap_url, password_file), workers=2)
    try:
        for i in range(6):  # new connections: the kernel spreads them over both workers
            assert login(proxy, f"http://www.example.org/w-{i}", *ALICE).status == 200
            assert login(proxy, "http://mail.yahoo.com/", *ALICE).status == 403
            assert login(proxy, "http://www.example.org/w-bad", "alice", "x").status == 407
        assert login(proxy, "https://www.example.org/w-tls", *BOB).status == 200
        lines = [json.loads(line) for path in proxy.home.glob("audit.w*.jsonl")
                 for line in path.read_text().splitlines()]
        users = {e.get("path"): e.get("user") for e in lines if e["event"] == "decision"}
        assert users["/w-0"] == "alice" and users["/w-tls"] == "bob"
        assert {e["reason"] for e in lines if e["event"] == "login_failed"} == {
            "bad_credentials"}
    finally:
        stop_proxy(proxy)
