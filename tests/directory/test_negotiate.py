"""Kerberos single sign-on against real MIT KDCs, with curl's Negotiate as the client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import gssapi
import pytest
from auth_http_server import REALM, AuthHttpServer
from directory_support import KERBEROS_PASSWORDS, Kerberos, SettingsFactory
from slapd_server import PASSWORDS, SlapdServer

from aupgate.directory import DirectoryAuthenticator, DirectorySettingsError, LoginOk
from aupgate.directory import parse_kerberos_settings as parse
from aupgate.directory.negotiate import KerberosOk, KerberosRefused, NegotiateAcceptor

SPNEGO = gssapi.Mechanism.from_sasl_name("SPNEGO")


def acceptor(keytab: Path, principal: str | None = "HTTP/localhost@AUP.TEST",
             realms: dict[str, str] | None = None) -> NegotiateAcceptor:
    raw: dict[str, object] = {"keytab": str(keytab), "realms": realms or {"AUP.TEST": "{user}"}}
    if principal is not None:
        raw["service_principal"] = principal
    return NegotiateAcceptor(parse(raw, file="test-policy.yaml"))


def ticket(kerberos: Kerberos, user: str, lifetime: str | None = None) -> Path:
    """kinit from the password into a credential cache of its own."""
    realm = kerberos.other if user == "bob" else kerberos.aup
    ccache = kerberos.ccache(f"{user}-{time.monotonic_ns()}")
    realm.kinit(f"{user}@{realm.name}", KERBEROS_PASSWORDS[user], ccache, lifetime)
    return ccache


def client_token(ccache: Path, service: str = "HTTP@localhost") -> bytes:
    """What a browser sends: an SPNEGO token for the service, from the user's tickets."""
    previous = os.environ.get("KRB5CCNAME")
    os.environ["KRB5CCNAME"] = f"FILE:{ccache}"
    try:
        if "@" in service and "/" in service:
            name = gssapi.Name(service, gssapi.NameType.kerberos_principal)
        else:
            name = gssapi.Name(service, gssapi.NameType.hostbased_service)
        return gssapi.SecurityContext(name=name, usage="initiate", mech=SPNEGO).step() or b""
    finally:
        if previous is None:
            os.environ.pop("KRB5CCNAME", None)
        else:
            os.environ["KRB5CCNAME"] = previous


@pytest.fixture
async def server(kerberos: Kerberos, slapd: SlapdServer, make_settings: SettingsFactory
                 ) -> AsyncIterator[AuthHttpServer]:
    authenticator = DirectoryAuthenticator(make_settings(slapd))
    http = AuthHttpServer(acceptor(kerberos.keytab), authenticator)
    await http.start()
    yield http
    await http.stop()
    authenticator.close()


async def curl(*args: str, ccache: Path | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "KRB5CCNAME": f"FILE:{ccache}" if ccache else "FILE:/nonexistent"}
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await process.communicate()
    body, _, code = out.decode().rpartition("\n")
    return int(code), body, err.decode()


# --- curl as the client -----------------------------------------------------------------------

async def test_curl_negotiate_to_a_server(kerberos: Kerberos, server: AuthHttpServer) -> None:
    """`curl --negotiate -u :` with alice's ticket: 401 Negotiate, then the token; the
    principal maps to the directory user, whose groups come from slapd."""
    code, body, err = await curl("--negotiate", "-u", ":", f"http://localhost:{server.port}/",
                                 ccache=ticket(kerberos, "alice"))
    assert code == 200, err
    assert json.loads(body) == {"method": "negotiate", "principal": "alice@AUP.TEST",
                                "user": "alice", "groups": ["all-employees", "engineers",
                                                            "loop-a", "loop-b", "staff"]}


async def test_curl_proxy_negotiate(kerberos: Kerberos, server: AuthHttpServer) -> None:
    """The same through the proxy handshake: 407 with Proxy-Authenticate, token in
    Proxy-Authorization, as a browser on a domain-joined PC does it."""
    code, body, err = await curl("--proxy-negotiate", "-U", ":", "-x",
                                 f"http://localhost:{server.port}", "http://intranet.test/",
                                 ccache=ticket(kerberos, "alice"))
    assert code == 200, err
    assert json.loads(body)["user"] == "alice"


async def test_curl_proxy_basic_with_a_colon_in_the_password(server: AuthHttpServer) -> None:
    code, body, err = await curl("--proxy-basic", "-U", f"bob:{PASSWORDS['bob']}", "-x",
                                 f"http://localhost:{server.port}", "http://intranet.test/")
    assert code == 200, err
    assert json.loads(body) == {"method": "basic", "user": "bob",
                                "groups": ["all-employees", "staff"]}


async def test_without_a_ticket_curl_gets_the_407_again(server: AuthHttpServer) -> None:
    code, _, _ = await curl("--proxy-negotiate", "-U", ":", "-x",
                            f"http://localhost:{server.port}", "http://intranet.test/")
    assert code == 407
    assert not any(isinstance(o, KerberosOk) for o in server.outcomes)


async def test_challenges_offer_negotiate_before_basic(server: AuthHttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET http://intranet.test/ HTTP/1.1\r\nHost: intranet.test\r\n\r\n")
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    writer.close()
    assert head.startswith("HTTP/1.1 407 ")
    challenges = [line.partition(": ")[2] for line in head.split("\r\n")
                  if line.lower().startswith("proxy-authenticate:")]
    assert challenges == ["Negotiate", f'Basic realm="{REALM}", charset="UTF-8"']
    assert "mitmproxy" not in head


# --- the acceptor, with tokens made by the GSSAPI initiator --------------------------------------

@pytest.fixture
def aup_acceptor(kerberos: Kerberos) -> Iterator[NegotiateAcceptor]:
    yield acceptor(kerberos.keytab)


def test_a_good_token(kerberos: Kerberos, aup_acceptor: NegotiateAcceptor) -> None:
    outcome = aup_acceptor.accept(client_token(ticket(kerberos, "alice")))
    assert isinstance(outcome, KerberosOk)
    assert (outcome.principal, outcome.user, outcome.realm) == ("alice@AUP.TEST", "alice",
                                                                "AUP.TEST")
    assert outcome.reply_token  # mutual authentication token for the client


def test_a_replayed_token_is_refused(kerberos: Kerberos, aup_acceptor: NegotiateAcceptor) -> None:
    """Someone who captured a Negotiate header cannot use it again (MIT's replay cache)."""
    token = client_token(ticket(kerberos, "alice"))
    assert isinstance(aup_acceptor.accept(token), KerberosOk)
    again = aup_acceptor.accept(token)
    assert isinstance(again, KerberosRefused) and again.reason == "replay", again


async def test_an_expired_ticket_is_refused(kerberos: Kerberos, server: AuthHttpServer,
                                            aup_acceptor: NegotiateAcceptor) -> None:
    """A ticket with a 2 s lifetime: once it has expired, curl has nothing to send (MIT
    clients do not use expired tickets) and a token made while it was valid is refused
    (MIT reports the stale authenticator as clock skew; clockskew is 1 s here)."""
    short = ticket(kerberos, "alice", lifetime="2s")
    stale = client_token(short)
    await asyncio.sleep(3.2)
    outcome = aup_acceptor.accept(stale)
    assert isinstance(outcome, KerberosRefused) and outcome.reason == "expired", outcome
    code, _, _ = await curl("--proxy-negotiate", "-U", ":", "-x",
                            f"http://localhost:{server.port}", "http://intranet.test/",
                            ccache=short)
    assert code == 407
    assert not any(isinstance(o, KerberosOk) for o in server.outcomes)


def test_a_ticket_for_another_realms_service_is_refused(
        kerberos: Kerberos, aup_acceptor: NegotiateAcceptor) -> None:
    """bob@OTHER.TEST with a ticket for OTHER.TEST's HTTP/localhost: our key cannot read it."""
    token = client_token(ticket(kerberos, "bob"), "HTTP/localhost@OTHER.TEST")
    outcome = aup_acceptor.accept(token)
    assert isinstance(outcome, KerberosRefused), outcome
    assert outcome.reason == "not_for_this_service"
    assert "HTTP/localhost@OTHER.TEST" in outcome.detail


def test_a_valid_ticket_from_a_realm_not_listed_is_refused(kerberos: Kerberos) -> None:
    """With both services' keys the ticket decrypts, but OTHER.TEST is not a listed realm."""
    token = client_token(ticket(kerberos, "bob"), "HTTP/localhost@OTHER.TEST")
    outcome = acceptor(kerberos.both_keytab, principal=None).accept(token)
    assert isinstance(outcome, KerberosRefused) and outcome.reason == "foreign_realm", outcome
    assert outcome.principal == "bob@OTHER.TEST"


def test_a_listed_second_realm_maps_through_its_template(kerberos: Kerberos) -> None:
    token = client_token(ticket(kerberos, "bob"), "HTTP/localhost@OTHER.TEST")
    outcome = acceptor(kerberos.both_keytab, principal=None,
                       realms={"AUP.TEST": "{user}", "OTHER.TEST": "{user}.{realm}"}).accept(token)
    assert isinstance(outcome, KerberosOk) and outcome.user == "bob.OTHER.TEST"


def test_a_computer_principal_is_not_a_person(kerberos: Kerberos,
                                              aup_acceptor: NegotiateAcceptor) -> None:
    ccache = kerberos.ccache(f"pc1-{time.monotonic_ns()}")
    kerberos.aup.run("kinit", "-k", "-t", str(kerberos.pc_keytab), "-c", f"FILE:{ccache}",
                     "host/pc1@AUP.TEST")
    outcome = aup_acceptor.accept(client_token(ccache))
    assert isinstance(outcome, KerberosRefused) and outcome.reason == "not_a_user", outcome


@pytest.mark.parametrize(("header", "reason"), [
    ("Negotiate", "malformed"),
    ("Negotiate !!!", "malformed"),
    ("Negotiate " + base64.b64encode(b"garbage").decode(), "malformed"),
    # what a browser on a PC outside the domain may offer: NTLM, which is not Kerberos
    ("Negotiate " + base64.b64encode(b"NTLMSSP\x00\x01\x00\x00\x00" + b"\x00" * 24).decode(),
     "unsupported_mechanism"),
    ("Negotiate " + base64.b64encode(b"\x60\x05\x06\x03\x2b\x06\x01").decode(),
     "unsupported_mechanism"),
    ("Negotiate " + "A" * 70_000, "malformed"),
    ("Basic " + base64.b64encode(b"alice:pw").decode(), "malformed"),
])
def test_bad_negotiate_headers(aup_acceptor: NegotiateAcceptor, header: str,
                               reason: str) -> None:
    outcome = aup_acceptor.accept_header(header)
    assert isinstance(outcome, KerberosRefused) and outcome.reason == reason, outcome


async def test_negotiate_then_lookup_in_the_directory(
        kerberos: Kerberos, aup_acceptor: NegotiateAcceptor, slapd: SlapdServer,
        make_settings: SettingsFactory) -> None:
    """The proxy's sequence: accept the ticket, then look the mapped user up (no password)."""
    accepted = await aup_acceptor.accept_header_async(
        "Negotiate " + base64.b64encode(client_token(ticket(kerberos, "alice"))).decode())
    assert isinstance(accepted, KerberosOk)
    authenticator = DirectoryAuthenticator(make_settings(slapd))
    try:
        found = await authenticator.lookup(accepted.user)
        assert isinstance(found, LoginOk) and found.user.in_group("all-employees")
    finally:
        authenticator.close()


# --- start-up errors ------------------------------------------------------------------------------

def test_a_missing_keytab_is_named(tmp_path: Path) -> None:
    with pytest.raises(DirectorySettingsError) as caught:
        acceptor(tmp_path / "missing.keytab")
    assert str(tmp_path / "missing.keytab") in str(caught.value)
    assert "cannot read the keytab" in str(caught.value)


def test_a_file_that_is_not_a_keytab(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.keytab"
    bogus.write_text("not a keytab")
    with pytest.raises(DirectorySettingsError, match="not a Kerberos keytab"):
        acceptor(bogus)


def test_a_keytab_without_the_service_principal(kerberos: Kerberos) -> None:
    with pytest.raises(DirectorySettingsError, match=re.escape("HTTP/proxy.aup.test@AUP.TEST")):
        acceptor(kerberos.keytab, principal="HTTP/proxy.aup.test@AUP.TEST")
