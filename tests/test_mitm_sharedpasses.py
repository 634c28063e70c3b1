"""Warn tickets and passes shared between workers: what one issues or grants, the other honours;
what has expired or is malformed is ignored; the supervisor's replay keys."""

from __future__ import annotations

import json
from typing import Any

from aupgate.mitm.passes import browser_holder, user_holder
from aupgate.mitm.sharedpasses import SharedPasses, encode, replay_key

BROWSER = browser_holder("c00kie")


def pair() -> tuple[SharedPasses, SharedPasses, list[dict[str, Any]], list[dict[str, Any]]]:
    sent_a: list[dict[str, Any]] = []
    sent_b: list[dict[str, Any]] = []
    return SharedPasses(900, sent_a.append), SharedPasses(900, sent_b.append), sent_a, sent_b


def issue(passes: SharedPasses, now: float = 100.0) -> str:
    return passes.issue(client="10.30.0.2", user=None, host="www.facebook.com",
                        url="http://www.facebook.com/x", agency="mo-dnr", rule="social",
                        clauses=("c1",), now=now)


def test_a_ticket_from_one_worker_is_redeemed_by_the_other() -> None:
    a, b, sent_a, sent_b = pair()
    token = issue(a)
    [event] = sent_a
    b.apply(json.loads(encode(event)), now=101.0)  # through the wire format
    ticket = b.redeem(token, client="10.30.0.2", user=None, host="www.facebook.com",
                      holder=BROWSER, now=102.0)
    assert ticket is not None and ticket.url == "http://www.facebook.com/x"
    [granted] = sent_b
    assert granted["pass"] == [BROWSER, "www.facebook.com"]
    assert "c00kie" not in json.dumps(granted)  # the cookie itself never travels
    assert not a.has_pass(holder=BROWSER, host="www.facebook.com", now=103.0)
    a.apply(granted, now=103.0)
    assert a.has_pass(holder=BROWSER, host="www.facebook.com", now=103.0)
    # the ticket is spent everywhere: the other worker dropped it when the pass arrived
    assert a.redeem(token, client="10.30.0.2", user=None, host="www.facebook.com",
                    holder=BROWSER, now=104.0) is None
    # another browser behind the same address holds no pass; neither does "no cookie"
    assert not a.has_pass(holder=browser_holder("other"), host="www.facebook.com", now=103.0)
    assert not a.has_pass(holder=None, host="www.facebook.com", now=103.0)


def test_expired_and_malformed_events_are_ignored() -> None:
    a, b, sent_a, _ = pair()
    token = issue(a, now=0.0)
    b.apply(sent_a[0], now=10_000.0)  # the ticket expired in transit
    assert b.redeem(token, client="10.30.0.2", user=None, host="www.facebook.com",
                    holder=BROWSER, now=10_000.0) is None
    b.apply({"pass": [BROWSER, "h"], "expires": 5.0}, now=6.0)
    assert not b.has_pass(holder=BROWSER, host="h", now=6.0)
    for junk in ({"ticket": "t"}, {"pass": "abc", "expires": 9e9},
                 {"pass": [1, 2, 3], "expires": 1},
                 {"ticket": "t", "client": "c", "user": "", "host": "h", "url": "u",
                  "agency": "a", "rule": "r", "clauses": ["c"], "expires": "soon"}):
        b.apply(junk, now=1.0)
    assert not b.has_pass(holder=BROWSER, host="h", now=1.0)


def test_replay_keys() -> None:
    """The supervisor keeps the latest event per ticket and per pass; a pass spends its ticket."""
    assert replay_key({"ticket": "T", "expires": 5}) == ("ticket T", 5.0, None)
    assert replay_key({"pass": ["user:jdoe", "h"], "redeemed": "T", "expires": 9}) == (
        "pass user:jdoe h", 9.0, "ticket T")
    assert replay_key({"nonsense": 1}) is None
    assert replay_key({"pass": ["c"], "expires": 1}) is None


def test_a_login_holds_its_pass_on_any_browser_and_address() -> None:
    a, _, _, _ = pair()
    token = a.issue(client="10.30.0.2", user="jdoe", host="www.facebook.com", url="u",
                    agency="mo-dnr", rule="social", clauses=("c1",), now=100.0)
    assert a.redeem(token, client="10.30.0.2", user="jdoe", host="www.facebook.com",
                    holder=user_holder("jdoe"), now=101.0)
    assert a.has_pass(holder=user_holder("jdoe"), host="www.facebook.com", now=102.0)
    assert not a.has_pass(holder=user_holder("asmith"), host="www.facebook.com", now=102.0)
    assert not a.has_pass(holder=user_holder("jdoe"), host="www.twitter.com", now=102.0)
