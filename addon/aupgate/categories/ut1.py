"""UT1's category folders and the aupgate category each one feeds.

One table for everything that maps UT1 names: `tools/build_categories.py` (which writes the shipped
`categories/sources.yaml`) and `aupgate categories import --format ut1 --mapping ut1` (an agency
importing a newer UT1 tree). docs/categories.md gives the reason for every row; change both
together.
"""

from __future__ import annotations

__all__ = ["UT1_MAP"]

# UT1 folder -> aupgate category, in CATEGORY_IDS order.
UT1_MAP: tuple[tuple[str, str], ...] = (
    ("social_networks", "social-networking"),
    ("webmail", "webmail"),
    ("gambling", "gambling"),
    ("warez", "p2p-file-sharing"),
    ("radio", "streaming-radio"),
    ("audio-video", "streaming-video"),
    ("adult", "adult"),
    ("mixed_adult", "adult"),
    ("chat", "instant-messaging"),
    ("filehosting", "file-hosting"),
    ("download", "software-downloads"),
    ("dating", "dating"),
    ("games", "games"),
    ("shopping", "shopping"),
    ("publicite", "advertising"),
    ("remote-control", "remote-access"),
    ("vpn", "vpn-proxy"),
    ("redirector", "vpn-proxy"),
    ("doh", "vpn-proxy"),
    ("malware", "malware-phishing"),
    ("phishing", "malware-phishing"),
)
