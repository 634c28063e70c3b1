"""The pure parts: header parsing, name vetting, the login cache, challenges, DN comparison."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aupgate.directory import (
    BasicCredentials,
    DirectoryUser,
    Group,
    LoginFailed,
    MalformedAuthorization,
    NegotiateToken,
    authenticate_challenges,
    basic_challenge,
    negotiate_reply,
    parse_authorization,
)
from aupgate.directory.cache import LoginCache
from aupgate.directory.credentials import password_problem, user_name_problem
from aupgate.directory.dn import dn_key, rdn_value, unescape_dn_value
from aupgate.directory.outcomes import loggable_name


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


# --- Proxy-Authorization --------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "user", "password"), [
    (b"alice:secret", "alice", "secret"),
    (b"bob:pa:ss:wo:rd", "bob", "pa:ss:wo:rd"),
    (b"carol::", "carol", ":"),
    (b"dave:", "dave", ""),
    (b":only-password", "", "only-password"),
    ("zoë:pässwörd".encode(), "zoë", "pässwörd"),
])
def test_basic_splits_on_the_first_colon(raw: bytes, user: str, password: str) -> None:
    assert parse_authorization(basic(raw)) == BasicCredentials(user, password)


@given(st.text(alphabet=st.characters(blacklist_characters=":", blacklist_categories=("Cs",))),
       st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_basic_round_trips_any_user_without_a_colon(user: str, password: str) -> None:
    header = basic(f"{user}:{password}".encode())
    parsed = parse_authorization(header)
    if len(header) > 8 * 1024 * 4 // 3:
        assert isinstance(parsed, MalformedAuthorization)
    else:
        assert parsed == BasicCredentials(user, password)


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC", "bAsIc"])
def test_the_scheme_is_case_insensitive(scheme: str) -> None:
    value = base64.b64encode(b"a:b").decode()
    assert parse_authorization(f"{scheme} {value}") == BasicCredentials("a", "b")
    assert parse_authorization(f"  {scheme}   {value}  ") == BasicCredentials("a", "b")


def test_negotiate_tokens_are_decoded() -> None:
    assert parse_authorization("Negotiate " + base64.b64encode(b"\x60\x01").decode()) == \
        NegotiateToken(b"\x60\x01")
    assert isinstance(parse_authorization("Negotiate ####"), MalformedAuthorization)


def test_a_password_never_shows_in_a_repr() -> None:
    parsed = parse_authorization(basic(b"alice:hunter2"))
    assert "hunter2" not in repr(parsed) and "hunter2" not in str(parsed)


@pytest.mark.parametrize(("name", "problem"), [
    ("alice", None), ("zoë", None), ("comma,user", None), ("o'brien", None), ("a b", None),
    ("*", None), ("x" * 256, None), ("日本語", None),
    ("", "empty"), ("x" * 257, "longer"), ("😀" * 200, None), ("😀" * 257, "longer"),
    ("a\x00", "NUL"), ("a\x7f", "control"), ("a\u0085", "control"), ("a\u00ad", "invisible"),
    ("a\u200b", "invisible"), ("a\ufeff", "invisible"), ("\ud800", "invisible"),
    ("a\U000e0041", "invisible"), ("a\u0378", "invisible"), ("\ue000", "invisible"),
    (" a", "spaces"), ("a\u3000", "spaces"),
])
def test_user_names(name: str, problem: str | None) -> None:
    found = user_name_problem(name, 256)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(("password", "problem"), [
    ("x", None), (":", None), ("a" * 1024, None), ("", "empty"), ("a" * 1025, "longer"),
    ("a\x00b", "NUL"),
])
def test_passwords(password: str, problem: str | None) -> None:
    found = password_problem(password)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_loggable_names_are_bounded_and_visible() -> None:
    assert loggable_name("alice") == "alice"
    assert loggable_name("a\x00b\n") == "a\\x00b\\x0a"
    assert loggable_name("\u202eevil") == "\\u202eevil"
    long = loggable_name("x" * 100_000)
    assert long.startswith("x" * 64) and long.endswith("…(+99936 characters)")


# --- challenges -----------------------------------------------------------------------------------

def test_challenges() -> None:
    assert authenticate_challenges("MoDOT internet gateway", negotiate=True) == [
        "Negotiate", 'Basic realm="MoDOT internet gateway", charset="UTF-8"']
    assert authenticate_challenges("x", negotiate=False) == ['Basic realm="x", charset="UTF-8"']
    assert authenticate_challenges("x", negotiate=True, basic=False) == ["Negotiate"]
    assert basic_challenge('say "hi" \\o/') == 'Basic realm="say \\"hi\\" \\\\o/", charset="UTF-8"'
    with pytest.raises(ValueError, match="control"):
        basic_challenge("gateway\r\nSet-Cookie: x=1")
    with pytest.raises(ValueError, match="at least one"):
        authenticate_challenges("x", negotiate=False, basic=False)
    assert negotiate_reply(None) == "Negotiate"
    assert negotiate_reply(b"\x01\x02") == "Negotiate AQI="


# --- DNs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b", "same"), [
    ("cn=Staff,ou=Groups,dc=x", "CN=staff,OU=groups,DC=X", True),
    ("CN=Staff, OU=Groups, DC=x", "cn=staff,ou=groups,dc=x", True),
    ("cn=Finance\\, Budget,dc=x", "cn=Finance\\2C Budget,dc=x", True),
    ("uid=zo\\C3\\AB,dc=x", "uid=zoë,dc=x", True),
    ("cn=a\\,ou=b,dc=x", "cn=a,ou=b,dc=x", False),
    ("cn=a+sn=b,dc=x", "cn=a,sn=b,dc=x", False),
    ("cn=staff,dc=x", "cn=staff2,dc=x", False),
])
def test_dn_comparison(a: str, b: str, same: bool) -> None:
    assert (dn_key(a) == dn_key(b)) == same


def test_rdn_values() -> None:
    assert rdn_value("cn=Finance\\, Budget,ou=groups") == "Finance, Budget"
    assert rdn_value("CN=Domain Users,CN=Users,DC=x", "cn") == "Domain Users"
    assert rdn_value("uid=alice,dc=x", "cn") is None
    assert unescape_dn_value("a\\\\2C") == "a\\2C"
    assert unescape_dn_value("\\e6\\97\\a5") == "日"


def test_in_group_by_name_or_dn() -> None:
    user = DirectoryUser("alice", "uid=alice,dc=x", (
        Group("CN=Web Admins,OU=Groups,DC=x", "Web Admins", "memberOf"),
        Group("cn=staff,ou=groups,dc=x", "staff", "nested", "CN=Web Admins,OU=Groups,DC=x")))
    assert user.in_group("web admins") and user.in_group("STAFF")
    assert user.in_group("cn=web admins, ou=groups, dc=x")
    assert not user.in_group("cn=web admins,ou=other,dc=x")
    assert not user.in_group("admins")


# --- the cache ------------------------------------------------------------------------------------

ALICE = DirectoryUser("alice", "uid=alice,dc=x", (Group("cn=g,dc=x", "g", "memberOf"),))
REFUSED = LoginFailed("bad_credentials", "alice", "invalidCredentials")


def make_cache(**kw: float) -> LoginCache:
    settings = {"success_ttl": 60.0, "failure_ttl": 5.0, "grace_period": 0.0, "max_entries": 100}
    settings.update(kw)
    return LoginCache(success_ttl=settings["success_ttl"], failure_ttl=settings["failure_ttl"],
                      grace_period=settings["grace_period"],
                      max_entries=int(settings["max_entries"]))


def test_successes_and_failures_expire_on_their_own_clocks() -> None:
    cache = make_cache()
    good, bad = cache.key("alice", "right"), cache.key("alice", "wrong")
    cache.remember(good, ALICE, now=0)
    cache.remember(bad, REFUSED, now=0)
    assert cache.fresh(good, 59.9) == ALICE and cache.fresh(bad, 4.9) == REFUSED
    assert cache.fresh(bad, 5) is None
    assert cache.fresh(good, 60) is None
    assert len(cache) == 0


def test_keys_hold_no_password_and_differ_per_process() -> None:
    one, two = make_cache(), make_cache()
    key = one.key("alice", "hunter2")
    assert b"hunter2" not in key.digest and "hunter2" not in repr(key)
    assert key == one.key("alice", "hunter2")
    assert key != two.key("alice", "hunter2")  # a random key per cache
    assert key != one.key("alice", "hunter3") and key != one.key("alice2", "hunter2")
    assert one.key("alice", None).kind == "lookup"


def test_a_new_password_retires_the_old_one() -> None:
    cache = make_cache()
    old, new = cache.key("alice", "old"), cache.key("alice", "new")
    cache.remember(old, ALICE, now=0)
    cache.remember(new, ALICE, now=10)
    assert cache.fresh(old, 11) is None and cache.fresh(new, 11) == ALICE


def test_grace_needs_the_same_password_and_ends() -> None:
    cache = make_cache(grace_period=3600)
    key = cache.key("alice", "right")
    cache.remember(key, ALICE, now=0)
    assert cache.fresh(key, 120) is None  # past the ttl: ask the directory
    assert cache.grace(key, 120) == ALICE  # but if it is down, alice was seen
    assert cache.grace(cache.key("alice", "wrong"), 120) is None
    assert cache.grace(key, 3600) is None


def test_least_recently_used_entries_go_first() -> None:
    cache = make_cache(max_entries=3)
    keys = [cache.key(f"u{i}", "pw") for i in range(4)]
    for i, key in enumerate(keys[:3]):
        cache.remember(key, ALICE, now=i)
    assert cache.fresh(keys[0], 3) == ALICE  # u0 used: u1 is now the oldest
    cache.remember(keys[3], ALICE, now=4)
    assert len(cache) == 3
    assert cache.fresh(keys[1], 5) is None
    assert all(cache.fresh(k, 5) == ALICE for k in (keys[0], keys[2], keys[3]))


def test_a_zero_ttl_caches_nothing_and_forget_user_drops_all() -> None:
    cache = make_cache(success_ttl=0, failure_ttl=0)
    cache.remember(cache.key("a", "p"), ALICE, now=0)
    cache.remember(cache.key("a", "q"), REFUSED, now=0)
    assert len(cache) == 0
    cache = make_cache()
    cache.remember(cache.key("a", "p"), ALICE, now=0)
    cache.remember(cache.key("a", None), ALICE, now=0)
    cache.remember(cache.key("b", "p"), ALICE, now=0)
    cache.forget_user("a")
    assert len(cache) == 1
