"""A realistic audit log of a given size, for benchmarking `aupgate report` and friends.

Realistic means shaped like a gateway's month: three agencies of different sizes; users whose
activity is heavy-tailed (a few people make most requests); host popularity following a Zipf law
over 200,000 sites, most of them on no category list; actions mostly `allow` with a few percent
of blocks and warnings; CONNECT and TLS phases beside HTTP requests; warn continuations with
stated reasons; a policy reload now and then; times through working hours over 30 days; and the
real hash chain (`prev`) on every line, so the lines are as long as the gateway's.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import json
import random
import sys
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

CATEGORIES = [
    ("social-networking", 0.05),
    ("streaming-video", 0.04),
    ("shopping", 0.03),
    ("advertising", 0.08),
    ("webmail", 0.02),
    ("software-downloads", 0.01),
    ("file-hosting", 0.01),
    ("games", 0.006),
    ("gambling", 0.004),
    ("instant-messaging", 0.01),
    ("adult", 0.002),
    ("remote-access", 0.002),
    ("vpn-proxy", 0.002),
    ("malware-phishing", 0.001),
]
AGENCIES = [("modot", 0.6, 5000), ("dnr", 0.25, 2000), ("saint-paul", 0.15, 1500)]
REASONS = [
    "posting the road closure notice",
    "checking the agency facebook page",
    "customer complaint on twitter",
    "researching a contractor",
    "watching a training video",
    "vendor support chat",
    "press office monitoring",
    "verifying a citizen report",
]
BLOCKING = {"gambling", "adult", "malware-phishing", "remote-access", "vpn-proxy", "games"}
WARNING = {"social-networking", "streaming-video", "webmail"}


def _hosts(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """(host, category) by popularity rank; popular sites are more often categorized."""
    names = [
        "google.com",
        "microsoft.com",
        "office365.com",
        "facebook.com",
        "youtube.com",
        "amazon.com",
        "mo.gov",
        "windowsupdate.com",
        "doubleclick.net",
        "linkedin.com",
    ]
    cats = [c for c, _ in CATEGORIES]
    weights = [w for _, w in CATEGORIES]
    hosts = []
    for rank in range(count):
        base = names[rank] if rank < len(names) else f"site{rank}.example{rank % 97}.com"
        host = rng.choice(["www.", "", "cdn.", "api."]) + base if rank >= len(names) else base
        category = "uncategorized"
        if rng.random() < (0.6 if rank < 2000 else 0.25):
            category = rng.choices(cats, weights)[0]
        hosts.append((host, category))
    known = [
        "uncategorized",
        "uncategorized",
        "uncategorized",
        "social-networking",
        "streaming-video",
        "shopping",
        "uncategorized",
        "uncategorized",
        "advertising",
        "social-networking",
    ]
    for rank, category in enumerate(known):
        hosts[rank] = (names[rank], category)
    return hosts


def _zipf_cdf(count: int, exponent: float) -> list[float]:
    weights = [1 / (rank + 1) ** exponent for rank in range(count)]
    total = sum(weights)
    return list(itertools.accumulate(w / total for w in weights))


def events(seed: int = 4) -> Iterator[dict[str, object]]:
    """An endless stream of audit events (without `prev`), in time order."""
    rng = random.Random(seed)
    hosts = _hosts(rng, 200_000)
    host_cdf = _zipf_cdf(len(hosts), 1.05)
    users = {agency: [f"{agency[:2]}{i:05d}" for i in range(n)] for agency, _, n in AGENCIES}
    user_cdf = {agency: _zipf_cdf(len(u), 0.8) for agency, u in users.items()}
    agency_names = [a for a, _, _ in AGENCIES]
    agency_weights = [w for _, w, _ in AGENCIES]
    moment = datetime(2026, 4, 1, 12, tzinfo=UTC)
    digest = hashlib.sha256(b"policies-1").hexdigest()
    yield {
        "event": "policy_loaded",
        "time": moment,
        "agencies": agency_names,
        "policy_digest": digest,
        "categories_digest": hashlib.sha256(b"c").hexdigest(),
        "fixed_time": None,
    }
    for n in itertools.count():
        local_hour = (moment.hour - 5) % 24
        busy = 7 <= local_hour < 18 and moment.weekday() < 5
        moment += timedelta(microseconds=rng.randrange(1, 40_000 if busy else 600_000))
        if n % 250_000 == 249_999:
            digest = hashlib.sha256(str(n).encode()).hexdigest()
            failed = rng.random() < 0.3
            yield {
                "event": "policy_reload_failed" if failed else "policy_reloaded",
                "time": moment,
                "part": "policies",
                "digest": digest,
                **(
                    {
                        "errors": [
                            "policies/modot.yaml:88: rules[4].match.categories[0]: "
                            "unknown category 'gamling'"
                        ]
                    }
                    if failed
                    else {"warnings": []}
                ),
            }
            continue
        agency = rng.choices(agency_names, agency_weights)[0]
        user = users[agency][bisect.bisect(user_cdf[agency], rng.random())]
        host, category = hosts[min(bisect.bisect(host_cdf, rng.random()), len(hosts) - 1)]
        roll = rng.random()
        action = "allow"
        if category in BLOCKING:
            action = "block"
        elif category in WARNING and roll < 0.3:
            action = "warn"
        elif roll < 0.05:
            action = "log"
        phase = rng.choices(["request", "connect", "tls"], [0.8, 0.15, 0.05])[0]
        crc = zlib.crc32(user.encode())
        client = f"10.{agency_names.index(agency) * 20 + 20}.{crc % 250}.{crc // 250 % 250 + 1}"
        record: dict[str, object] = {
            "event": "decision",
            "time": moment,
            "request_id": f"{rng.getrandbits(128):032x}",
            "phase": phase,
            "client": client,
            "user": user,
            "agency": agency,
            "method": "CONNECT" if phase == "connect" else ("GET" if roll < 0.9 else "POST"),
            "scheme": "https" if phase != "request" or roll < 0.85 else "http",
            "host": host,
            "path": None
            if phase != "request"
            else rng.choice(
                [
                    "/",
                    "/index.html",
                    "/api/v2/items?page=2",
                    "/static/app.js",
                    "/login",
                    "/search?q=road+closures&token=REDACTED",
                    "/images/logo.png",
                ]
            ),
            "http_version": "HTTP/1.1" if phase == "request" else None,
            "categories": [category],
            "rule": "default" if action == "allow" else f"{category}-rule",
            "clauses": ["8"] if action == "allow" else ["7.E"],
            "action": action,
            "step": "default" if action == "allow" else "rule",
            "window": "work" if busy else "after-work",
            "grant": None,
            "enforced": {"allow": "passed", "log": "passed", "warn": "warned", "block": "blocked"}[
                action
            ],
            "status": 403 if action == "block" else 200,
            "bytes": rng.randrange(200, 200_000),
            "error": None,
        }
        yield record
        if action == "warn" and rng.random() < 0.4:
            moment += timedelta(seconds=rng.randrange(5, 60))
            yield {
                "event": "decision",
                "time": moment,
                "request_id": f"{rng.getrandbits(128):032x}",
                "phase": "continue",
                "client": client,
                "user": user,
                "agency": agency,
                "method": "POST",
                "scheme": "https",
                "host": host,
                "path": "/.aupgate/continue",
                "categories": [],
                "rule": None,
                "clauses": [],
                "action": None,
                "enforced": "continue",
                "status": 302,
                "bytes": 0,
                "rule_continued": f"{category}-rule",
                "clauses_continued": ["7.E"],
                "work_reason": rng.choice(REASONS),
                "continued_host": host,
                "pass_minutes": 30,
            }


def write_log(path: Path, size_bytes: int, seed: int = 4) -> int:
    """Write events as the gateway does (envelope first, `prev` last) until `size_bytes`; lines."""
    prev: str | None = None
    written = 0
    lines = 0
    with path.open("wb") as out:
        for event in events(seed):
            moment = event.pop("time")
            assert isinstance(moment, datetime)
            head = {
                "schema_version": 1,
                "time": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "event": event.pop("event"),
            }
            body = {**head, **event, "prev": prev}
            if prev is None:
                body["chain"] = {"reason": "new-file", "file": str(path), "continues": None}
            line = json.dumps(body).encode()
            prev = hashlib.sha256(line).hexdigest()
            out.write(line + b"\n")
            written += len(line) + 1
            lines += 1
            if written >= size_bytes:
                return lines
    return lines  # pragma: no cover - the stream is endless


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("output", type=Path)
    parser.add_argument("--size-mb", type=float, default=1024)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)
    lines = write_log(args.output, int(args.size_mb * 1024 * 1024), args.seed)
    print(f"{args.output}: {lines} lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
