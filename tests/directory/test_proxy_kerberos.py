"""Kerberos single sign-on through a real `aupgate run`: real MIT KDCs, the gateway's keytab,
`curl --proxy-negotiate -U :` as the domain-joined browser, and the directory for the groups."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from directory_support import Kerberos
from gateway_support import (
    REALM,
    challenges,
    invalid_lines,
    lab_policy,
    login,
    negotiate_curl,
    start_directory_proxy,
    with_header,
)
from slapd_server import PASSWORDS, SlapdServer
from test_negotiate import client_token, ticket

from e2e.conftest import Certs, Proxy, Upstreams, stop_proxy

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
          upstreams: Upstreams, slapd: SlapdServer, password_file: Path,
          kerberos: Kerberos) -> Iterator[Proxy]:
    sso = ("kerberos:\n"
           f"  keytab: {kerberos.keytab}\n"
           "  service_principal: HTTP/localhost@AUP.TEST\n"
           '  realms: {AUP.TEST: "{user}"}\n')
    home = tmp_path_factory.mktemp("kerberos-proxy")
    # the proxy inherits KRB5_CONFIG and KRB5RCACHEDIR from the kerberos fixture
    started = start_directory_proxy(home, certs, upstreams,
                                    lab_policy(slapd.ldap_url, password_file, extra=sso))
    yield started
    stop_proxy(started)


def users_of(proxy: Proxy, path: str) -> list[object]:
    return [e.get("user") for e in proxy.events("decision") if e.get("path") == path]


def test_the_407_offers_negotiate_before_basic(proxy: Proxy) -> None:
    result = login(proxy, "http://www.example.org/", None)
    assert result.status == 407
    assert challenges(result) == ["Negotiate", f'Basic realm="{REALM}", charset="UTF-8"']


def test_a_ticket_over_plain_http(proxy: Proxy, kerberos: Kerberos) -> None:
    """No password anywhere: the ticket proves alice@AUP.TEST, the directory gives her groups,
    and the group rule holds (alice is in engineers: webmail is blocked for her)."""
    ccache = ticket(kerberos, "alice")
    status, _body, err = negotiate_curl(proxy, "http://www.example.org/sso", ccache)
    assert status == 200, err
    assert users_of(proxy, "/sso") == ["alice"]
    status, _, err = negotiate_curl(proxy, "http://mail.yahoo.com/", ccache)
    assert status == 403, err
    event = proxy.events("login", user="alice", method="negotiate")[-1]
    assert event["principal"] == "alice@AUP.TEST" and "engineers" in event["groups"]


def test_a_ticket_over_https_connect(proxy: Proxy, kerberos: Kerberos) -> None:
    status, _body, err = negotiate_curl(proxy, "https://www.example.org/sso-tls",
                                       ticket(kerberos, "alice"))
    assert status == 200, err
    assert users_of(proxy, "/sso-tls") == ["alice"]
    connects = [e for e in proxy.events("decision", phase="connect") if e.get("user")]
    assert connects and connects[-1]["user"] == "alice"


def test_several_requests_on_one_negotiated_connection(proxy: Proxy,
                                                       kerberos: Kerberos) -> None:
    """Negotiate authenticates the connection: later requests on it need no new token."""
    status, _body, err = negotiate_curl(
        proxy, "http://www.example.org/nc-1", ticket(kerberos, "alice"),
        "-o", "/dev/null", "http://www.example.org/nc-2", "-o", "/dev/null",
        "http://www.example.org/nc-3")
    assert status == 200, err
    assert [users_of(proxy, f"/nc-{i}") for i in (1, 2, 3)] == [["alice"]] * 3


def test_without_a_ticket_curl_gets_the_407(proxy: Proxy) -> None:
    status, _, _ = negotiate_curl(proxy, "http://www.example.org/no-ticket", None)
    assert status == 407
    assert users_of(proxy, "/no-ticket") == []


def test_an_expired_ticket_is_refused(proxy: Proxy, kerberos: Kerberos) -> None:
    """A 2-second ticket: once expired, curl has nothing to send (407), and a token made while
    it was valid is refused by the gateway (clockskew is 1 s in the test realm)."""
    short = ticket(kerberos, "alice", lifetime="2s")
    stale = "Negotiate " + base64.b64encode(client_token(short)).decode()
    time.sleep(3.2)
    status, _, _ = negotiate_curl(proxy, "http://www.example.org/expired", short)
    assert status == 407
    result = with_header(proxy, "http://www.example.org/stale", stale)
    assert result.status == 407
    failed = proxy.events("login_failed", method="negotiate", reason="expired")
    assert failed, proxy.events("login_failed")
    assert users_of(proxy, "/expired") == users_of(proxy, "/stale") == []


def test_a_foreign_ticket_is_refused(proxy: Proxy, kerberos: Kerberos) -> None:
    """bob@OTHER.TEST's ticket for OTHER.TEST's HTTP/localhost: the gateway's key cannot read
    it; a replayed good token is refused too."""
    foreign = client_token(ticket(kerberos, "bob"), "HTTP/localhost@OTHER.TEST")
    result = with_header(proxy, "http://www.example.org/foreign",
                         "Negotiate " + base64.b64encode(foreign).decode())
    assert result.status == 407
    assert proxy.events("login_failed", method="negotiate", reason="not_for_this_service")
    good = "Negotiate " + base64.b64encode(client_token(ticket(kerberos, "alice"))).decode()
    assert with_header(proxy, "http://www.example.org/first", good).status == 200
    assert with_header(proxy, "http://www.example.org/replayed", good).status == 407
    assert proxy.events("login_failed", method="negotiate", reason="replay")


def test_a_warn_pass_is_the_users_however_they_signed_in(proxy: Proxy,
                                                        kerberos: Kerberos) -> None:
    """carol (in no policy group: social networking warns her) continues past the warn page
    with her Kerberos ticket; the pass is hers when she signs in with her password too, and
    not zoë's, who shares her address."""
    url = "http://www.facebook.com/kerberos-pass"
    ccache = ticket(kerberos, "carol")
    status, body, err = negotiate_curl(proxy, url, ccache, "-H", "Accept: text/html")
    assert status == 403 and 'name="reason"' in body, err
    token = body.split('name="token" value="')[1].split('"')[0]
    stolen = login(proxy, "http://www.facebook.com/.aupgate/continue", "zoë", PASSWORDS["zoë"],
                   "--data-urlencode", f"token={token}", "--data-urlencode",
                   "reason=using carol's form")
    assert stolen.status != 303  # issued to carol
    status, _, err = negotiate_curl(proxy, "http://www.facebook.com/.aupgate/continue", ccache,
                                    "--data-urlencode", f"token={token}", "--data-urlencode",
                                    "reason=replying to a citizen by message")
    assert status == 303, err
    assert negotiate_curl(proxy, url, ccache)[0] == 200
    assert login(proxy, url, "carol", PASSWORDS["carol"]).status == 200  # Basic: the same carol
    assert login(proxy, url, "zoë", PASSWORDS["zoë"]).status == 403
    used = [e["user"] for e in proxy.events("decision", host="www.facebook.com",
                                            enforced="pass-used")]
    assert used == ["carol", "carol"]


def test_basic_still_works_beside_negotiate(proxy: Proxy) -> None:
    assert login(proxy, "http://www.example.org/basic", "bob", PASSWORDS["bob"]).status == 200
    assert users_of(proxy, "/basic") == ["bob"]


def test_no_token_in_the_audit_log(proxy: Proxy) -> None:
    text = proxy.audit_path.read_text(encoding="utf-8") + proxy.log()
    assert "Negotiate " not in text and "YII" not in text  # SPNEGO tokens start with YII
    assert invalid_lines(proxy) == []
