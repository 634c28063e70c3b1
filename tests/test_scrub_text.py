"""`scrub_text`: what an employee types into the access-request box reaches the audit log and the
administrators' reports minus what looks secret, and otherwise unchanged."""

from __future__ import annotations

import pytest

from aupgate.audit.redaction import REDACTED, scrub_text


@pytest.mark.parametrize(("typed", "secret"), [
    ("my password is hunter2, please unblock", "hunter2"),
    ("Password: Tr0ub4dor&3 for the vendor portal", "Tr0ub4dor&3"),
    ("PWD=letmein", "letmein"),
    ("my pin: 4321", "4321"),
    ("the api key=sk_live_abc123 from the vendor", "sk_live_abc123"),
    ("API-KEY: abcdef", "abcdef"),
    ("token=eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9"),
    ("secret: s3", "s3"),
    ("use ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4 to log in", "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4"),
    ("card 4111 1111 1111 1111 for the conference fee", "4111 1111 1111 1111"),
    ("card 4111-1111-1111-1111", "4111-1111-1111-1111"),
    ("card 4111111111111111", "4111111111111111"),
    ("the page https://portal.example/reset?token=abc123&lang=en", "abc123"),
    ("JWT eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36",
     "SflKxwRJSMeKKF2QT4fwpMeJf36"),
])
def test_what_looks_secret_is_replaced(typed: str, secret: str) -> None:
    scrubbed = scrub_text(typed)
    assert secret not in scrubbed, scrubbed
    assert REDACTED in scrubbed


@pytest.mark.parametrize("typed", [
    "Auditing a vendor for the lottery commission",
    "I need https://www.bet365.com/promotions/terms-and-conditions for case 2026-0412",
    "Ticket INC0012345, call 651-266-8989",
    "see www.bet365.com/promotions/terms-and-conditions-2026 and lottery.mo.gov",
    "internationalization and counterrevolutionaries",  # long words are not tokens
    "the password policy says to ask the help desk",  # the word alone is not a secret
    "",
])
def test_ordinary_text_is_unchanged(typed: str) -> None:
    assert scrub_text(typed) == typed


def test_a_web_address_keeps_its_words_and_loses_its_login() -> None:
    typed = "log in at https://bob:hunter2@portal.example/login?lang=en then page 2"
    assert scrub_text(typed) == "log in at https://portal.example/login?lang=en then page 2"
