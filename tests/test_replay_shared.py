"""`aupgate diff` looks each host up once and parses each request once for both policy sets.

The shared path (`SharedIndex` around the index, the candidate's `RequestDecider` reading the
current one's parsing memos) must give exactly the decisions two independent deciders give with
the plain index: on a candidate that amends the category lists (so `matches`, what overrides
read, goes through the shared memo too), for requests that repeat and requests that do not.
"""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime
from pathlib import Path

from aupgate.categories.cache import load_index
from aupgate.categories.entries import Entry
from aupgate.lifecycle.requests import RequestDecider
from aupgate.lifecycle.sharedindex import SharedIndex
from aupgate.policy.loader import load_policy_dir

FIXTURES = Path(__file__).parent / "fixtures"
POLICIES = FIXTURES / "lifecycle" / "policies"
CANDIDATE = FIXTURES / "lifecycle" / "candidate"
CATEGORIES = FIXTURES / "core" / "categories" / "sources.yaml"
AT = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
HOSTS = ["facebook.com", "www.facebook.com", "bet365.com", "m.bet365.com", "pandora.com",
         "colombia.com", "dropbox.com", "netlog.com", "docs.example", "news.example",
         "a.b.c.unlisted.example", "linkedin.com"]
PATHS = ["/", "/radio/live", "/radio", "/betting/x?y=1", "/f/setup.exe", "/a.torrent"]
AMENDED = """
categories:
  add:
    gambling: [news.example/betting, docs.example]
  remove: [dropbox.com]
  recategorise:
    pandora.com: social-networking
"""


def _candidate(tmp_path: Path) -> Path:
    """The lab candidate, also amending the shared lists."""
    folder = tmp_path / "candidate"
    shutil.copytree(CANDIDATE, folder)
    lab = folder / "lab.yaml"
    lab.write_text(lab.read_text(encoding="utf-8") + AMENDED, encoding="utf-8")
    return folder


def _requests(count: int) -> list[dict[str, str]]:
    rng = random.Random(18)
    out = []
    for _ in range(count):
        request = {"url": f"https://{rng.choice(HOSTS)}{rng.choice(PATHS)}",
                   "at": f"2026-11-{rng.randrange(22, 29)}T{rng.randrange(24):02d}:"
                         f"{rng.randrange(60):02d}:00+00:00"}
        if rng.random() < 0.5:
            request["agency"] = "lab"
        else:
            request["client"] = rng.choice(["10.50.1.9", "127.0.0.1"])
        if rng.random() < 0.4:
            request["user"] = rng.choice(["audrey", "bob"])
        out.append(request)
    return out


def test_shared_path_decides_as_two_plain_deciders(tmp_path: Path) -> None:
    candidate_dir = _candidate(tmp_path)
    today = AT.date()
    index = load_index(CATEGORIES)[0]
    plain_current = RequestDecider(load_policy_dir(POLICIES, today=today), index, AT)
    plain_candidate = RequestDecider(load_policy_dir(candidate_dir, today=today), index, AT)
    shared = SharedIndex(load_index(CATEGORIES)[0])
    current = RequestDecider(load_policy_dir(POLICIES, today=today), shared, AT)
    candidate = RequestDecider(load_policy_dir(candidate_dir, today=today), shared, AT,
                               parsing_of=current)
    changed = 0
    for request in _requests(4000):
        old, new = current.decide(**request), candidate.decide(**request)
        assert old == plain_current.decide(**request), request
        assert new == plain_candidate.decide(**request), request
        changed += old.categories != new.categories
    assert changed  # the amendments were in play
    assert current._urls is candidate._urls and current._moments is candidate._moments


def test_shared_index_answers_as_the_index() -> None:
    index = load_index(CATEGORIES)[0]
    shared = SharedIndex(index)
    for host in HOSTS:
        for path in PATHS:
            for _ in range(2):  # the second answer is the remembered one
                assert shared.classify(host, path) == index.classify(host, path)
                hits = shared.matches(host, path)
                assert sorted(hits) == sorted(index.matches(host, path))
                hits.clear()  # a caller changing its list leaves the remembered one alone
    assert len(shared) == len(index)
    assert shared.category_counts() == index.category_counts()
    assert shared.corrections is index.corrections
    entry = Entry("bet365.com", None)
    assert shared.categories_of(entry) == index.categories_of(entry)
    assert sorted(shared.list_entries_under(entry)) == sorted(index.list_entries_under(entry))
    assert sorted(shared.list_matches("bet365.com")) == sorted(index.list_matches("bet365.com"))
