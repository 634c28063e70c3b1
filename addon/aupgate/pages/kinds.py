"""Every kind of page the gateway answers with, in one table.

A kind says the HTTP status, the heading, what happened in plain words when the page has no
policy reason of its own, what the employee can do next, and which form the page offers. Adding
a kind (a directory that is down, a personal-use budget spent, a port that is blocked) is one
entry here; `page_for(kind, ...)` then builds it, and every format renders it. See
docs/pages.md.

Headings and texts may name `{host}` and `{thing}` ("site", "download", ...); they are filled
in and escaped when the page is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["KINDS", "Kind", "Offer"]

Offer = Literal["continue", "request", "retry", "none"]


@dataclass(frozen=True, slots=True)
class Kind:
    """What one kind of page says and offers."""

    status: int
    heading: str
    happened: str  # "what happened", when the page has no reason of its own
    next_steps: str  # "what you can do"
    offer: Offer = "none"


KINDS: dict[str, Kind] = {
    "block": Kind(
        403, "This {thing} is blocked",
        "Your agency's internet policy does not allow this {thing}.",
        "If you need this {thing} for your work, ask for access below: your request goes to the "
        "people who can grant an exception. You can also contact the help desk.",
        "request"),
    "warn": Kind(
        403, "Is this {thing} for your work?",
        "Your agency's internet policy allows this {thing} only for work.",
        "Say briefly why you need it for your work to continue. Your reason is recorded.",
        "continue"),
    "refused": Kind(
        403, "This computer is not on an agency network",
        "The gateway serves agency networks only.",
        "Ask the help desk to connect this computer to an agency network."),
    "error": Kind(
        502, "The gateway could not check this request, so it stopped it",
        "Something went wrong inside the gateway before anything was sent to {host}.",
        "Try again in a moment. If it keeps happening, tell the help desk the request id below."),
    # a spent personal-use budget (aupgate.budgets): the page's reason says how much was used
    "budget": Kind(
        403, "Today's personal use of sites like this is used up",
        "Your agency's internet policy allows personal use of such sites only up to a daily "
        "budget, and today's is spent.",
        "It starts again tomorrow. If you need this {thing} for your work, contact the help "
        "desk."),
    "unavailable": Kind(
        503, "The gateway cannot record requests right now",
        "Your agency allows no unrecorded internet use, and the gateway cannot write its log.",
        "Try again in a few minutes. If it keeps happening, tell the help desk.",
        "retry"),
    "unreachable": Kind(
        502, "{host} could not be reached",
        "The gateway could not connect to {host}.",
        "Check the address, or try again later: the site may be down. If other sites fail too, "
        "tell the help desk the request id below.",
        "retry"),
    "timeout": Kind(
        504, "{host} took too long to answer",
        "The gateway waited for {host}, but it did not answer in time.",
        "Try again later: the site may be busy or down. If other sites fail too, tell the "
        "help desk the request id below.",
        "retry"),
    "upstream-tls": Kind(
        502, "{host}'s secure connection could not be verified",
        "The gateway could not confirm that it was talking to the real {host}, so it sent "
        "nothing to it.",
        "Do not try to get around this. If you need this site for your work, tell the help "
        "desk the request id below."),
    "expired": Kind(
        403, "This continue form has expired",
        "The form was used already, has expired, or was opened on another computer or by "
        "another user.",
        "Open the site again to get a new form."),
    "reserved": Kind(
        404, "This address belongs to the agency gateway",
        "Addresses under /.aupgate/ are answered by the gateway itself.",
        "Go back to the page you came from."),
    "login": Kind(
        407, "Sign in to use the internet",
        "The agency's internet gateway needs your network user name and password.",
        "Sign in with your usual network account. If it is refused, contact the help desk."),
    "login-unavailable": Kind(
        503, "The sign-in service cannot be reached, so the gateway cannot let you in",
        "The directory that checks agency logins did not answer the gateway.",
        "Try again in a few minutes. If it persists, contact the help desk.",
        "retry"),
    "request-sent": Kind(
        200, "Your request for access was sent",
        "Your explanation was recorded with the block, for the people who grant exceptions.",
        "You do not need to do anything else now. Contact the help desk if it is urgent."),
    "too-many": Kind(
        429, "Too many requests from this computer",
        "This computer sent many access requests in the last minute.",
        "Wait a minute and try again, or contact the help desk."),
}
"""Every page kind by name. Each has a test in tests/test_pages.py that renders it."""
