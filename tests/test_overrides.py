"""Agency overrides: `categories: {add, remove, recategorise}` in a policy, as edited lists."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from aupgate.categories.entries import Entry, parse_entry
from aupgate.categories.ids import CATEGORY_IDS
from aupgate.categories.index import CategoryIndex, Classification, classification_of
from aupgate.categories.listindex import ListIndex
from aupgate.categories.overrides import CategoryOverrides, describe_effect, read_overrides
from aupgate.cli import main
from aupgate.engine import Facts, decide
from aupgate.normalise import parse_url
from aupgate.policy.loader import load_policy
from aupgate.yamlsource import load_yaml

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "tests" / "fixtures" / "core"

SHARED = [
    ("zoho.com", "webmail"),
    ("mail.zoho.com", "webmail"),
    ("bet365.com", "gambling"),
    ("bet365.com", "malware-phishing"),
    ("netlog.com", "social-networking"),
    ("netlog.com/play", "games"),
]


@pytest.fixture(scope="module")
def index() -> CategoryIndex:
    return ListIndex.from_entries(SHARED)


def overrides(text: str, tmp_path: Path) -> tuple[CategoryOverrides | None, list[str]]:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    data = load_yaml(path)
    found, problems = read_overrides(data, str(path))
    return found, [f"{p.line}: {p.field}: {p.message}" for p in problems]


EXAMPLE = """\
categories:
  add:
    gambling: [pokerclub.example, news.example/betting]
  remove: [zoho.com]
  recategorise:
    bet365.com: games
    mail.zoho.com: [shopping, webmail]
"""


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        # remove: zoho.com is off the agency's lists; mail.zoho.com (own entry) is not
        ("crm.zoho.com", "/", Classification((), (), None)),
        (
            "mail.zoho.com",
            "/",
            Classification(("shopping", "webmail"), ("shopping", "webmail"), "mail.zoho.com"),
        ),
        # recategorise replaces every category the lists give that entry
        ("www.bet365.com", "/", Classification(("games",), ("games",), "bet365.com")),
        # add: a new domain entry, and a URL prefix that beats the domain as usual
        (
            "pokerclub.example",
            "/",
            Classification(("gambling",), ("gambling",), "pokerclub.example"),
        ),
        (
            "www.news.example",
            "/betting/today",
            Classification(("gambling",), ("gambling",), "news.example/betting"),
        ),
        ("news.example", "/sport", Classification((), (), None)),
        # untouched hosts take the shared answer
        (
            "netlog.com",
            "/play/x",
            Classification(("games",), ("games", "social-networking"), "netlog.com/play"),
        ),
    ],
)
def test_overrides_amend_the_lists(
    index: CategoryIndex, tmp_path: Path, host: str, path: str, expected: Classification
) -> None:
    found, problems = overrides(EXAMPLE, tmp_path)
    assert problems == [] and found is not None
    assert found.classify(index, host, path) == expected


def test_overrides_mean_edited_lists(index: CategoryIndex, tmp_path: Path) -> None:
    """The definition: the same answers as an index built from the edited list of entries."""
    found, _ = overrides(EXAMPLE, tmp_path)
    assert found is not None
    edited = [
        (e, c)
        for e, c in SHARED
        if parse_entry(e) not in {Entry("zoho.com"), Entry("bet365.com"), Entry("mail.zoho.com")}
    ] + [
        ("pokerclub.example", "gambling"),
        ("news.example/betting", "gambling"),
        ("bet365.com", "games"),
        ("mail.zoho.com", "shopping"),
        ("mail.zoho.com", "webmail"),
    ]
    reference = ListIndex.from_entries(edited)
    for host in (
        "zoho.com",
        "a.mail.zoho.com",
        "bet365.com",
        "x.pokerclub.example",
        "news.example",
        "netlog.com",
        "example.org",
    ):
        for path in ("/", "/betting", "/play"):
            assert found.classify(index, host, path) == reference.classify(host, path)


LABELS = st.sampled_from(["a", "b", "ab"])
HOSTS = st.lists(LABELS, min_size=1, max_size=3).map(".".join)
PATHS = st.sampled_from(["/", "/a", "/a/b", "/b"])
ENTRIES = st.tuples(HOSTS, st.none() | PATHS).map(lambda e: e[0] if e[1] is None else e[0] + e[1])
CATS = st.sampled_from(CATEGORY_IDS[:3])


@settings(max_examples=200, deadline=None)
@given(
    shared=st.lists(st.tuples(ENTRIES, CATS), max_size=8),
    added=st.lists(st.tuples(ENTRIES, CATS), max_size=3),
    removed=st.lists(ENTRIES, max_size=3),
    queries=st.lists(st.tuples(HOSTS, PATHS), min_size=1, max_size=5),
)
@pytest.mark.slow
def test_overrides_equal_an_edited_index(
    shared: list[tuple[str, str]],
    added: list[tuple[str, str]],
    removed: list[str],
    queries: list[tuple[str, str]],
) -> None:
    """Property: overrides over any lists equal a ListIndex of the edited entries."""
    gone = {parse_entry(e) for e in removed}
    adds = tuple((parse_entry(e), c) for e, c in added if parse_entry(e) not in gone)
    found = CategoryOverrides.of(add=adds, remove=frozenset(gone))
    index = ListIndex.from_entries(shared)
    kept = [(e, c) for e, c in shared if parse_entry(e) not in gone]
    reference = ListIndex.from_entries(kept + [(str(e), c) for e, c in adds])
    for host, path in queries:
        assert found.classify(index, host, path) == reference.classify(host, path)
        assert classification_of(found.hits(index, host, path)) == reference.classify(host, path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("categories: [a]\n", "1: categories: expected a mapping with add, remove, recategorise"),
        ("categories:\n  ad: {}\n", "2: categories.ad: unknown key"),
        (
            "categories:\n  recategorize: {a.example: games}\n",
            "2: categories.recategorize: unknown key (did you mean 'recategorise'?)",
        ),
        (
            "categories:\n  add:\n    gamling: [a.example]\n",
            "3: categories.add.gamling: unknown category 'gamling' (did you mean 'gambling'?)",
        ),
        (
            "categories:\n  add:\n    uncategorized: [a.example]\n",
            "3: categories.add.uncategorized: 'uncategorized' is no list's category; "
            "use categories.remove",
        ),
        (
            "categories:\n  remove: [a.example, 'bad host']\n",
            "2: categories.remove[1]: cannot use 'bad host': "
            "contains whitespace (a hosts-format line? declare format: hosts)",
        ),
        (
            "categories:\n  remove: [a.example]\n  add:\n    games: [A.Example]\n",
            "2: categories.remove[0]: 'a.example' is already named at categories.add.games[0]",
        ),
        (
            "categories:\n  recategorise:\n    a.example: []\n",
            "3: categories.recategorise.a.example: names no category (to drop it, use remove)",
        ),
        ("categories: {}\n", "1: categories: changes nothing: give add, remove or recategorise"),
    ],
)
def test_override_errors_name_line_and_field(tmp_path: Path, text: str, problem: str) -> None:
    found, problems = overrides(text, tmp_path)
    assert found is None
    assert problems[0].startswith(problem), problems


def test_describe_effect(index: CategoryIndex, tmp_path: Path) -> None:
    """What `aupgate check` prints per agency: counts, and overrides that change nothing."""
    found, _ = overrides(
        EXAMPLE.replace("remove: [zoho.com]", "remove: [zoho.com, crm.zoho.com]")
        .replace("gambling: [pokerclub.example", "gambling: [bet365.com, pokerclub.example")
        .replace("    bet365.com: games\n", "    netlog.com: games\n"),
        tmp_path,
    )
    assert found is not None
    assert describe_effect(found, index) == [
        "adds gambling +3 (1 already listed so)",
        "removes 1 shared entries: zoho.com (webmail); "
        "on no shared list, so nothing to remove: crm.zoho.com",
        "re-categorises 2: netlog.com (social-networking -> games); "
        "mail.zoho.com (webmail -> shopping, webmail)",
    ]


# --- through the policy loader, the engine and `aupgate check` -----------------------------------


def policy_with(tmp_path: Path, overrides_yaml: dict[str, Any]) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    for source in sorted((CORE / "policies").glob("*.yaml")):
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        if source.stem == "alpha":
            data["categories"] = overrides_yaml
        (folder / source.name).write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    return folder


def test_policy_overrides_reach_the_engine_and_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = policy_with(
        tmp_path, {"add": {"gambling": ["intranet-casino.example"]}, "remove": ["nothere.example"]}
    )
    policy, problems = load_policy(folder / "alpha.yaml", today=datetime(2026, 11, 23).date())
    assert [p for p in problems if p.severity == "error"] == []
    assert policy is not None and policy.overrides is not None
    index = ListIndex.from_entries([("bet365.com", "gambling")])
    facts = Facts(url=parse_url("http://www.intranet-casino.example/"))
    decision = decide(policy, index, facts, datetime(2026, 11, 23, 15, tzinfo=UTC))
    assert decision.categories == ("gambling",)
    assert decision.matched == "intranet-casino.example"
    code = main(
        [
            "check",
            "--policy-dir",
            str(folder),
            "--categories",
            str(CORE / "categories" / "sources.yaml"),
            "--at",
            "2026-11-23",
        ]
    )
    out = capsys.readouterr().out
    assert "  categories: adds gambling +1" in out
    assert "nothing to remove: nothere.example" in out
    assert code == 0, out


def test_policy_override_errors_stop_the_policy(tmp_path: Path) -> None:
    folder = policy_with(tmp_path, {"add": {"gamling": ["x.example"]}})
    policy, problems = load_policy(folder / "alpha.yaml", today=datetime(2026, 11, 23).date())
    assert policy is None
    assert any(p.field == "categories.add.gamling" for p in problems)


def test_lookup_with_an_agency_shows_its_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lookup --agency` marks shared entries the agency took off and the entries it added."""
    folder = policy_with(tmp_path, {"recategorise": {"bet365.com": "games"}})
    sources = str(CORE / "categories" / "sources.yaml")
    args = ["categories", "lookup", "www.bet365.com", "--categories", sources]
    assert main([*args, "--agency", "alpha", "--policy-dir", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "www.bet365.com/: games (matched bet365.com)"
    policy_file = folder / "alpha.yaml"
    assert "won bet365.com" not in out[1] and out[1].split() == ["bet365.com", "gambling"]
    assert out[2].strip() == f"taken off by alpha's categories ({policy_file})"
    assert out[3].split()[0].endswith("gambling.txt:2")
    assert out[4].split() == ["won", "bet365.com", "games"]
    assert out[5].strip() == f"alpha's categories ({policy_file})"
    assert main([*args]) == 0
    assert capsys.readouterr().out.startswith("www.bet365.com/: gambling (matched bet365.com)")
    assert main([*args, "--agency", "nope", "--policy-dir", str(folder)]) == 1
    assert "unknown agency 'nope'" in capsys.readouterr().err
