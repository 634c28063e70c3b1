"""The category ids policies may name, and the one check of a category name.

Ids are fixed and documented in docs/categories.md; a list, an import, an agency override and a
policy rule all name categories, and all of them say the same thing about a name that is not one.
"""

from __future__ import annotations

from aupgate.errors import did_you_mean

__all__ = ["CATEGORY_IDS", "LISTS_CANNOT_CARRY", "UNCATEGORIZED", "category_problem"]

CATEGORY_IDS: tuple[str, ...] = (
    "social-networking",
    "blogs-forums",
    "webmail",
    "gambling",
    "p2p-file-sharing",
    "streaming-radio",
    "streaming-video",
    "adult",
    "instant-messaging",
    "voip",
    "web-conferencing",
    "file-hosting",
    "software-downloads",
    "dating",
    "games",
    "shopping",
    "classifieds-selling",
    "fundraising",
    "advertising",
    "remote-access",
    "tunnel-hosting",
    "vpn-proxy",
    "malware-phishing",
    "banking",
    "health",
)
"""The category ids policies may name; fixed, and documented in docs/categories.md."""

UNCATEGORIZED = "uncategorized"
"""The pseudo-category a policy names for requests that match no list; no list may carry it."""


LISTS_CANNOT_CARRY = f"'{UNCATEGORIZED}' means 'on no list'; a list cannot carry it"

_HINT_CUTOFF = 0.6
"""Category ids are short hyphenated words: a looser match than for policy keys still helps."""


def category_problem(name: str, *, uncategorized: str = LISTS_CANNOT_CARRY) -> str:
    """"" when a list may carry `name`; else what is wrong with it, with a hint when one is close.

    `uncategorized` is the message for the pseudo-category, which every caller words for its own
    context (an override says to use `remove` instead).
    """
    if name in CATEGORY_IDS:
        return ""
    if name == UNCATEGORIZED:
        return uncategorized
    return f"unknown category '{name}'{did_you_mean(name, CATEGORY_IDS, cutoff=_HINT_CUTOFF)}"
