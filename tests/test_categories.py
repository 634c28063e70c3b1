"""Category lists and the index: readers, sources.yaml, matching rules and the shipped data."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aupgate.categories.cache import load_index
from aupgate.categories.entries import Entry, EntryError, parse_entry
from aupgate.categories.ids import CATEGORY_IDS, UNCATEGORIZED
from aupgate.categories.index import CategoryIndex, Classification, Hit, classification_of
from aupgate.categories.listindex import ListIndex
from aupgate.categories.loadreport import LoadReport
from aupgate.categories.readers import read_entries, read_numbered
from aupgate.errors import CategoryError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "categories" / "sources.yaml"
SHARED = ROOT.parent / "shared" / "data"

PROVENANCE = "    source: test\n    licence: test\n    snapshot: test\n"


def index(*pairs: tuple[str, str]) -> CategoryIndex:
    return ListIndex.from_entries(pairs)


def warnings_of(report: LoadReport) -> list[str]:
    return [str(p) for p in report.problems]


def write_sources(folder: Path, *items: str) -> Path:
    """A sources.yaml whose items are given as YAML text blocks (without provenance)."""
    text = "sources:\n" + "".join(item + PROVENANCE for item in items)
    target = folder / "sources.yaml"
    target.write_text(text, encoding="utf-8")
    return target


# --- constants -----------------------------------------------------------------------------------


def test_category_ids_are_the_fixed_list_in_order() -> None:
    """Policies name these ids; their order is the one docs/categories.md documents."""
    assert CATEGORY_IDS == (
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
    assert UNCATEGORIZED == "uncategorized"
    assert UNCATEGORIZED not in CATEGORY_IDS


# --- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "matched"),
    [
        ("bet365.com", "bet365.com"),
        ("www.bet365.com", "bet365.com"),
        ("a.b.bet365.com", "bet365.com"),
        ("notbet365.com", None),
        ("bet365.com.example.net", None),
        ("com", None),
        ("et365.com", None),
    ],
)
def test_domain_entries_match_on_label_boundaries(host: str, matched: str | None) -> None:
    """A domain entry covers itself and its subdomains, never a name that merely ends alike."""
    assert index(("bet365.com", "gambling")).classify(host).matched == matched


def test_parents_of_entries_are_not_entries() -> None:
    """example.com is looked at on the way to a.b.example.com, but it is not on the list."""
    idx = index(("a.b.example.com", "games"))
    assert idx.classify("b.example.com").matched is None
    assert idx.classify("example.com").matched is None
    assert idx.classify("x.a.b.example.com").matched == "a.b.example.com"
    assert len(idx) == 1


def test_no_match_is_empty() -> None:
    assert index(("bet365.com", "gambling")).classify("example.org") == Classification((), (), None)


@pytest.mark.parametrize(
    ("host", "path", "matched"),
    [
        ("colombia.com", "/radio", "colombia.com/radio"),
        ("www.colombia.com", "/radio/station/1", "colombia.com/radio"),
        ("colombia.com", "/radiohead", "colombia.com/radio"),  # a string prefix, as squidGuard
        ("colombia.com", "/Radio", None),  # paths keep their case
        ("colombia.com", "/news", None),
        ("colombia.com", "/", None),
        ("notcolombia.com", "/radio", None),
    ],
)
def test_url_prefix_entries(host: str, path: str, matched: str | None) -> None:
    """`host/path` matches that host or a subdomain when the path starts with the entry's path."""
    idx = index(("colombia.com/radio", "streaming-radio"))
    assert idx.classify(host, path).matched == matched


@pytest.fixture(scope="module")
def nested() -> CategoryIndex:
    """The ads.netlog.com shape from UT1, plus URL entries at two depths."""
    return index(
        ("netlog.com", "social-networking"),
        ("netlog.com", "streaming-video"),
        ("ads.netlog.com", "advertising"),
        ("netlog.com/play", "games"),
        ("netlog.com/play/cards", "gambling"),
        ("ads.netlog.com/promo", "shopping"),
        ("netlog.com/promotions", "dating"),
    )


@pytest.mark.parametrize(
    ("host", "path", "categories", "all_categories", "matched"),
    [
        (
            "netlog.com",
            "/",
            ("social-networking", "streaming-video"),
            ("social-networking", "streaming-video"),
            "netlog.com",
        ),
        (
            "ads.netlog.com",
            "/",
            ("advertising",),
            ("advertising", "social-networking", "streaming-video"),
            "ads.netlog.com",
        ),
        (
            "x.ads.netlog.com",
            "/banner",
            ("advertising",),
            ("advertising", "social-networking", "streaming-video"),
            "ads.netlog.com",
        ),
        (
            "www.netlog.com",
            "/play/1",
            ("games",),
            ("games", "social-networking", "streaming-video"),
            "netlog.com/play",
        ),
        (
            "www.netlog.com",
            "/play/cards/7",
            ("gambling",),
            ("gambling", "games", "social-networking", "streaming-video"),
            "netlog.com/play/cards",
        ),
        (
            # any URL match beats any domain match, even at a less specific host
            "ads.netlog.com",
            "/play",
            ("games",),
            ("advertising", "games", "social-networking", "streaming-video"),
            "netlog.com/play",
        ),
        (
            # among URL matches the longest host wins before the longest path
            "ads.netlog.com",
            "/promotions/spring",
            ("shopping",),
            ("advertising", "dating", "shopping", "social-networking", "streaming-video"),
            "ads.netlog.com/promo",
        ),
    ],
)
def test_most_specific_entry_wins_and_all_categories_are_kept(
    nested: CategoryIndex,
    host: str,
    path: str,
    categories: tuple[str, ...],
    all_categories: tuple[str, ...],
    matched: str,
) -> None:
    """The winner's categories decide; every matching entry's categories stay visible."""
    assert nested.classify(host, path) == Classification(categories, all_categories, matched)


def test_repeated_classification_with_other_paths(nested: CategoryIndex) -> None:
    """Results remembered per host must not leak a URL match into another path."""
    assert nested.classify("ads.netlog.com", "/play").matched == "netlog.com/play"
    assert nested.classify("ads.netlog.com", "/").matched == "ads.netlog.com"
    assert nested.classify("ads.netlog.com", "/play").matched == "netlog.com/play"


def test_one_entry_on_several_lists_carries_every_category() -> None:
    idx = index(("bet365.com", "gambling"), ("bet365.com", "malware-phishing"))
    result = idx.classify("www.bet365.com")
    assert result.categories == ("gambling", "malware-phishing")
    assert result.all_categories == ("gambling", "malware-phishing")


def test_ip_address_entries_match_only_that_address() -> None:
    idx = index(("10.1.2.3", "malware-phishing"))
    assert idx.classify("10.1.2.3").matched == "10.1.2.3"
    assert idx.classify("9.10.1.2").matched is None
    assert idx.classify("10.1.2.30").matched is None


def test_from_entries_rejects_bad_entries_and_categories() -> None:
    with pytest.raises(CategoryError) as info:
        index(("ok.example", "gambling"), ("bad host", "gambling"), ("x.example", "gamling"))
    assert [str(p) for p in info.value.problems] == [
        "<entries>:2: entry: cannot use 'bad host': "
        "contains whitespace (a hosts-format line? declare format: hosts)",
        "<entries>:3: category: unknown category 'gamling' (did you mean 'gambling'?)",
    ]


# --- entries -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("example.com", Entry("example.com")),
        ("  Example.COM.  ", Entry("example.com")),
        ("*.example.com", Entry("example.com")),
        (".example.com", Entry("example.com")),
        ("https://example.com", Entry("example.com")),
        ("HTTP://example.com/Path", Entry("example.com", "/Path")),
        ("example.com/a/b?x=1", Entry("example.com", "/a/b?x=1")),
        ("example.com/#frag", Entry("example.com", "/")),
        ("example.com/Espa%c3%b1ol/", Entry("example.com", "/Espa%C3%B1ol/")),
        ("example.com/%7Euser", Entry("example.com", "/~user")),
        ("bücher.de", Entry("xn--bcher-kva.de")),
        ("foo_bar.tripod.com", Entry("foo_bar.tripod.com")),
        ("0x7f.1", Entry("127.0.0.1")),
    ],
)
def test_parse_entry_normalises_like_requests(text: str, entry: Entry) -> None:
    """Entries are spelt the way normalise spells request hosts and paths, or they never match."""
    assert parse_entry(text) == entry


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no host name"),
        ("/path", "no host name"),
        ("http://", "no host name"),
        ("a b.com", "contains whitespace (a hosts-format line? declare format: hosts)"),
        ("bad..host", "invalid host 'bad..host': empty label"),
        ("*.*.example.com", "invalid host '*.example.com': contains '*'"),
        (
            "example.com:8080",
            "invalid host 'example.com:8080': contains ':' outside an IPv6 literal",
        ),
    ],
)
def test_parse_entry_says_why_an_entry_is_unusable(text: str, reason: str) -> None:
    with pytest.raises(EntryError) as info:
        parse_entry(text)
    assert str(info.value) == reason


# --- readers -------------------------------------------------------------------------------------


def load_one(
    tmp_path: Path, rel: str, fmt: str, category: str = "gambling"
) -> tuple[CategoryIndex, LoadReport]:
    sources = write_sources(
        tmp_path, f"  - path: {rel}\n    format: {fmt}\n    category: {category}\n"
    )
    return load_index(sources)


def test_plain_reader(tmp_path: Path) -> None:
    """Comments, blanks and the usual spellings load; each bad line is reported with its place."""
    lst = tmp_path / "list.txt"
    lst.write_bytes(
        b"# a header comment\n"
        b"\n"
        b"  casino.example  \n"
        b"*.poker.example\n"
        b".dice.example # inline comment\n"
        b"https://slots.example/Play/\n"
        b"bad host.example\n"
        b"casino.example\n"
        b"\xff\xfe.example\n"
        b"odd..example\n"
    )
    idx, report = load_one(tmp_path, "list.txt", "plain")
    assert warnings_of(report) == [
        f"{lst}:7: warning: cannot use 'bad host.example': "
        "contains whitespace (a hosts-format line? declare format: hosts)",
        f"{lst}:9: warning: not UTF-8",
        f"{lst}:10: warning: cannot use 'odd..example': invalid host 'odd..example': empty label",
    ]
    (source,) = report.sources
    assert (source.entries, source.rejected, source.duplicates) == (4, 3, 1)
    assert idx.classify("www.poker.example").matched == "poker.example"
    assert idx.classify("dice.example").matched == "dice.example"
    assert idx.classify("slots.example", "/Play/x").matched == "slots.example/Play/"
    assert idx.classify("slots.example", "/play/x").matched is None


def test_hosts_reader(tmp_path: Path) -> None:
    """Any sinkhole address; housekeeping names and malformed lines are counted and reported."""
    lst = tmp_path / "hosts"
    lst.write_text(
        "# hosts-style blocklist\n"
        "127.0.0.1 localhost\n"
        "255.255.255.255 broadcasthost\n"
        "::1 ip6-localhost ip6-loopback\n"
        "0.0.0.0 ads.example tracker.example # two names\n"
        ":: v6.example\n"
        "127.0.0.1\tTabbed.Example\n"
        "plain.example\n"
        "0.0.0.0\n"
        "0.0.0.0 good.example bad..example\n",
        encoding="utf-8",
    )
    idx, report = load_one(tmp_path, "hosts", "hosts", "advertising")
    housekeeping = "a hosts-file housekeeping name, not a site"
    assert warnings_of(report) == [
        f"{lst}:2: warning: cannot use 'localhost': {housekeeping}",
        f"{lst}:3: warning: cannot use 'broadcasthost': {housekeeping}",
        f"{lst}:4: warning: cannot use 'ip6-localhost': {housekeeping}",
        f"{lst}:4: warning: cannot use 'ip6-loopback': {housekeeping}",
        f"{lst}:8: warning: cannot use 'plain.example': "
        "does not start with an IP address (a plain list?)",
        f"{lst}:9: warning: cannot use '0.0.0.0': an address without host names",
        f"{lst}:10: warning: cannot use 'bad..example': invalid host 'bad..example': empty label",
    ]
    (source,) = report.sources
    assert (source.entries, source.rejected) == (5, 7)
    for host in ("ads.example", "tracker.example", "v6.example", "tabbed.example", "good.example"):
        assert idx.classify(host).categories == ("advertising",)


def ut1_folder(folder: Path, *, gz: bool) -> None:
    folder.mkdir()
    domains = b"bingo.example\nlotto.example\nlotto.example/draws\n"
    urls = b"news.example/Sport/Betting\nnews.example/odds/#top\nnopath.example\n"
    for name, data in (("domains", domains), ("urls", urls)):
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_ut1_reader(tmp_path: Path, gz: bool) -> None:
    """A UT1 folder: domains and urls, gzipped or not; a line of the wrong kind is reported."""
    folder = tmp_path / "gambling"
    ut1_folder(folder, gz=gz)
    suffix = ".gz" if gz else ""
    idx, report = load_one(tmp_path, "gambling", "ut1")
    assert warnings_of(report) == [
        f"{folder}/domains{suffix}:3: warning: cannot use 'lotto.example/draws': "
        "a URL in a domains file",
        f"{folder}/urls{suffix}:3: warning: cannot use 'nopath.example': no path in a urls file",
    ]
    assert idx.classify("www.news.example", "/Sport/Betting/today").categories == ("gambling",)
    assert idx.classify("news.example", "/odds/").matched == "news.example/odds/"
    assert idx.classify("news.example", "/sport/betting").matched is None
    assert idx.classify("bingo.example").matched == "bingo.example"


def test_adblock_reader(tmp_path: Path) -> None:
    """`||domain^` rules and bare domains load; rules naming no whole site are skipped and counted,
    malformed ones are reported like any other unusable line."""
    lst = tmp_path / "easylist.txt"
    lst.write_text(
        "[Adblock Plus 2.0]\n"
        "! Title: test list\n"
        "||ads.example^\n"
        "||Tracker.Example^$important\n"
        "||cdn.example/banners/\n"
        "plain.example\n"
        "# a DNS-list comment\n"
        "||social.example^$third-party\n"
        "@@||good.example^\n"
        "example.org##.ad-banner\n"
        "##.sponsored\n"
        "example.com#@#.ad\n"
        "||ads*.example^\n"
        "/banner[0-9]+/\n"
        "-ad-banner.\n"
        "|https://exact.example/\n"
        "||bad..example^\n"
        "||ads.example^\n",
        encoding="utf-8",
    )
    idx, report = load_one(tmp_path, "easylist.txt", "adblock", "advertising")
    assert warnings_of(report) == [
        f"{lst}:17: warning: cannot use '||bad..example^': "
        "invalid host 'bad..example': empty label",
    ]
    (source,) = report.sources
    assert (source.entries, source.rejected, source.duplicates, source.skipped) == (4, 1, 1, 9)
    assert "9 rules naming no site skipped" in report.summary()
    assert idx.classify("x.ads.example").matched == "ads.example"
    assert idx.classify("tracker.example").matched == "tracker.example"
    assert idx.classify("cdn.example", "/banners/1.png").matched == "cdn.example/banners/"
    assert idx.classify("cdn.example", "/").matched is None
    assert idx.classify("plain.example").matched == "plain.example"
    for host in ("social.example", "good.example", "example.org", "exact.example"):
        assert idx.classify(host).matched is None


def test_adblock_skip_reasons(tmp_path: Path) -> None:
    """Each kind of skipped rule says why, for the import manifest."""
    lst = tmp_path / "list.txt"
    lst.write_text(
        "@@||a.example^\nx.example##.ad\n||b.example^$script\n||c*.example^\n/re/\n"
        "|http://d.example/\n&ad_box_\n",
        encoding="utf-8",
    )
    reasons = [getattr(result, "reason", None) for _, _, result in read_numbered(lst, "adblock")]
    assert reasons == [
        "exception rule (@@), names no site to categorise",
        "cosmetic rule (hides page elements), names no site",
        "options narrow the rule to some requests ($script)",
        "wildcard or separator inside the rule, not a whole site",
        "regular-expression rule, names no single site",
        "start-anchored rule (|...), matches one exact URL form",
        "generic URL pattern, names no site",
    ]


def test_readers_number_every_result(tmp_path: Path) -> None:
    """Provenance needs the line of every entry, not only of rejected ones."""
    lst = tmp_path / "hosts"
    lst.write_text("# c\n0.0.0.0 a.example b.example\n\n0.0.0.0 c.example\n", encoding="utf-8")
    numbered = [(n, str(r)) for _, n, r in read_numbered(lst, "hosts")]
    assert numbered == [(2, "a.example"), (2, "b.example"), (4, "c.example")]


def test_read_entries_names_the_file_of_each_result(tmp_path: Path) -> None:
    ut1_folder(tmp_path / "f", gz=True)
    files = {path.name for path, _ in read_entries(tmp_path / "f", "ut1")}
    assert files == {"domains.gz", "urls.gz"}


def test_corrupt_gzip_is_an_error(tmp_path: Path) -> None:
    """A list that cannot be read at all must stop the load, not silently empty a category."""
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "domains.gz").write_bytes(b"not gzip at all")
    with pytest.raises(CategoryError) as info:
        load_one(tmp_path, "broken", "ut1")
    assert str(info.value).startswith(f"{folder}/domains.gz: cannot read: ")


def test_report_summary(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one.example\ntwo.example\nbad host\n", encoding="utf-8")
    _, report = load_one(tmp_path, "a.txt", "plain", "dating")
    summary = report.summary()
    assert summary.startswith("1 category lists: 2 entries loaded, 1 lines rejected, 0 duplicates")
    assert "  dating                     2 distinct entries" in summary
    assert f"{tmp_path / 'a.txt'}: 1 lines rejected (see warnings)" in summary


# --- sources.yaml --------------------------------------------------------------------------------


def source_errors(sources: Path) -> list[str]:
    with pytest.raises(CategoryError) as info:
        load_index(sources)
    return [str(p) for p in info.value.problems]


def test_sources_yaml_errors_name_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("x.example\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    sources = write_sources(
        tmp_path,
        "  - path: list.txt\n    format: plain\n    category: gamling\n",
        "  - path: list.txt\n    format: csv\n    category: dating\n",
        "  - path: missing.txt\n    format: plain\n    category: dating\n",
        "  - path: empty\n    format: ut1\n    category: dating\n",
        "  - path: list.txt\n    format: hosts\n    category: uncategorized\n",
        "  - path: list.txt\n    format: plain\n    category: voip\n    colour: red\n",
        "  - format: plain\n    category: voip\n",
        "  - path: list.txt\n    format: plain\n    category: voip\n",
        "  - path: list.txt\n    format: plain\n    category: webmail\n",
    )
    s = str(sources)
    keys = "category, format, licence, path, snapshot, source"
    assert source_errors(sources) == [
        f"{s}:4: sources[0].category: unknown category 'gamling' (did you mean 'gambling'?)",
        f"{s}:9: sources[1].format: "
        "unknown format 'csv' (expected one of: ut1, plain, hosts, adblock)",
        f"{s}:14: sources[2].path: no such file: missing.txt",
        f"{s}:20: sources[3].path: no domains or urls file (optionally .gz) in empty",
        f"{s}:28: sources[4].category: 'uncategorized' means 'on no list'; a list cannot carry it",
        f"{s}:35: sources[5].colour: unknown key (expected one of: {keys})",
        f"{s}:39: sources[6]: missing key 'path'",
        f"{s}:50: sources[8].path: already listed at line 44",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", " expected a mapping with key 'sources'"),
        ("- a\n", "1: expected a mapping with key 'sources'"),
        ("lists: []\n", "1: lists: unknown key (expected 'sources' or 'corrections')"),
        ("sources: 3\n", "1: sources: expected a list"),
        ("sources:\n  - 3\n", "2: sources[0]: expected a mapping"),
        ("sources:\n  - path: [a]\n", "2: sources[0].path: expected a non-empty string"),
        ("sources: [\n", "2: invalid YAML: "),
    ],
)
def test_sources_yaml_shape_errors(tmp_path: Path, text: str, message: str) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text(text, encoding="utf-8")
    first = source_errors(sources)[0]
    assert first.startswith(f"{sources}:{message}"), first


def test_missing_sources_yaml(tmp_path: Path) -> None:
    assert source_errors(tmp_path / "nope.yaml") == [
        f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"
    ]


def test_empty_source_list_loads_an_empty_index(tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources: []\n", encoding="utf-8")
    idx, report = load_index(sources)
    assert len(idx) == 0
    assert report.sources == ()
    assert idx.classify("example.com").matched is None


# --- the shipped data ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> tuple[CategoryIndex, LoadReport]:
    """The real index, loaded once for the module: it takes a few seconds."""
    return load_index(SHIPPED)


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("facebook.com", "/", "social-networking"),
        ("www.facebook.com", "/", "social-networking"),
        ("mail.google.com", "/", "webmail"),
        ("mail.proton.me", "/", "webmail"),
        ("outlook.live.com", "/", "webmail"),
        ("www.icloud.com", "/mail/", "webmail"),
        ("bet365.com", "/", "gambling"),
        ("www.pokerstars.com", "/", "gambling"),
        ("thepiratebay.org", "/", "p2p-file-sharing"),
        ("1337x.to", "/", "p2p-file-sharing"),
        ("pandora.com", "/", "streaming-radio"),
        ("www.iheart.com", "/", "streaming-radio"),
        ("www.youtube.com", "/", "streaming-video"),
        ("zoom.us", "/", "web-conferencing"),
        ("us02web.zoom.us", "/j/123", "web-conferencing"),
        ("cityofexample.webex.com", "/meet/jdoe", "web-conferencing"),
        ("meet.google.com", "/abc-defg-hij", "web-conferencing"),
        ("vonage.com", "/", "voip"),
        ("voice.google.com", "/", "voip"),
        ("skype.com", "/", "voip"),
        ("web.whatsapp.com", "/", "instant-messaging"),
        ("www.facebook.com", "/messages/t/123", "instant-messaging"),
        ("www.linkedin.com", "/messaging/", "instant-messaging"),
        ("mail.google.com", "/chat/u/0/", "instant-messaging"),
        ("www.facebook.com", "/marketplace/create/item", "classifieds-selling"),
        ("post.craigslist.org", "/k/abc", "classifieds-selling"),
        ("www.ebay.com", "/sl/sell", "classifieds-selling"),
        ("www.gofundme.com", "/create/fundraiser/category", "fundraising"),
        ("medium.com", "/@someone/post", "blogs-forums"),
        ("example.blogspot.com", "/", "blogs-forums"),
        ("groups.google.com", "/g/comp.lang.python", "blogs-forums"),
        ("abc123.ngrok-free.app", "/", "tunnel-hosting"),
        ("random-words.trycloudflare.com", "/", "tunnel-hosting"),
        ("myhome.duckdns.org", "/", "tunnel-hosting"),
        ("www.pornhub.com", "/", "adult"),
        ("www.runyourpool.com", "/", "gambling"),
        ("open.spotify.com", "/", "streaming-radio"),
        ("www.netflix.com", "/", "streaming-video"),
        ("discord.com", "/", "instant-messaging"),
        ("doubleclick.net", "/", "advertising"),
        ("dropbox.com", "/", "file-hosting"),
        ("teamviewer.com", "/", "remote-access"),
        ("nordvpn.com", "/", "vpn-proxy"),
        ("dns.google", "/", "vpn-proxy"),
        ("tinder.com", "/", "dating"),
        ("store.steampowered.com", "/", "games"),
        ("amazon.com", "/", "shopping"),
    ],
)
def test_shipped_spot_checks(
    shipped: tuple[CategoryIndex, LoadReport], host: str, path: str, expected: str
) -> None:
    """Well-known sites land in the category a policy author would expect."""
    assert expected in shipped[0].classify(host, path).categories


def test_shipped_bet365_is_gambling_among_others(shipped: tuple[CategoryIndex, LoadReport]) -> None:
    """UT1 also files bet365.com under games and malware/phishing; all are reported."""
    result = shipped[0].classify("bet365.com")
    assert result.matched == "bet365.com"
    assert {"gambling", "malware-phishing"} <= set(result.categories)


def test_shipped_hosts_files_list_subdomains_that_win(
    shipped: tuple[CategoryIndex, LoadReport],
) -> None:
    """Sinfonietta's hosts files name subdomains (www.bet365.com), which are more specific than
    UT1's domain entries and so win: the parent's other categories remain in all_categories."""
    result = shipped[0].classify("www.bet365.com")
    assert result.matched == "www.bet365.com"
    assert result.categories == ("gambling",)
    assert {"games", "malware-phishing"} <= set(result.all_categories)


def test_shipped_nesting(shipped: tuple[CategoryIndex, LoadReport]) -> None:
    """ads.netlog.com is advertising although netlog.com is social networking (UT1 README)."""
    result = shipped[0].classify("ads.netlog.com")
    assert result.categories == ("advertising",)
    assert "social-networking" in result.all_categories


@pytest.mark.parametrize("host", ["modot.org", "www.mo.gov", "stpaul.gov", "example.com"])
def test_shipped_agency_sites_are_uncategorised(
    shipped: tuple[CategoryIndex, LoadReport], host: str
) -> None:
    assert shipped[0].classify(host).matched is None


def test_shipped_data_loads_cleanly(shipped: tuple[CategoryIndex, LoadReport]) -> None:
    """Every shipped line is usable and every category has at least one list."""
    idx, report = shipped
    assert report.problems == ()
    assert {s.category for s in report.sources} == set(CATEGORY_IDS)
    assert all(count > 0 for count in idx.category_counts().values())
    assert len(idx) > 400_000


def test_shipped_sources_stay_inside_categories() -> None:
    """The proxy carries its data: no list may live outside categories/ (e.g. ../shared)."""
    folder = SHIPPED.parent.resolve()
    for line in SHIPPED.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("- path:"):
            target = (folder / line.split(":", 1)[1].strip()).resolve()
            assert target.is_relative_to(folder), line


def test_ut1_attribution_and_licence_are_shipped() -> None:
    folder = SHIPPED.parent
    assert "CC BY-SA 4.0" in (folder / "ut1" / "ATTRIBUTION.txt").read_text(encoding="utf-8")
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "CC BY-SA 4.0" in readme
    assert "We recategorise" in readme
    assert "unlicense.org" in (folder / "blocklistproject" / "LICENSE.txt").read_text(
        encoding="utf-8"
    )


def _build_tool() -> object:
    spec = importlib.util.spec_from_file_location(
        "build_categories", ROOT / "tools" / "build_categories.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_categories"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared data folder is not beside the checkout")
def test_shipped_categories_are_what_the_build_tool_makes(tmp_path: Path) -> None:
    """categories/ is up to date with the shared data: copies are byte for byte, sources agree."""
    tool = _build_tool()
    out = tmp_path / "categories"
    (out / "aupgate").mkdir(parents=True)
    for f in (SHIPPED.parent / "aupgate").iterdir():
        (out / "aupgate" / f.name).write_bytes(f.read_bytes())
    tool.build(SHARED, out)  # type: ignore[attr-defined]
    for built in out.rglob("*"):
        if built.is_file():
            shipped = SHIPPED.parent / built.relative_to(out)
            assert shipped.read_bytes() == built.read_bytes(), shipped


# --- property: the index agrees with a naive reference -------------------------------------------

LABELS = st.sampled_from(["a", "b", "ab", "c0", "x-y"])
HOSTS = st.lists(LABELS, min_size=1, max_size=4).map(".".join)
PATHS = st.lists(st.sampled_from(["a", "b", "A", "ab", ""]), max_size=3).map(
    lambda parts: "/" + "/".join(parts)
)
ENTRIES = st.tuples(HOSTS, st.none() | PATHS).map(lambda e: e[0] if e[1] is None else e[0] + e[1])
PAIRS = st.lists(st.tuples(ENTRIES, st.sampled_from(CATEGORY_IDS[:4])), max_size=12)


def naive_classify(pairs: Iterable[tuple[str, str]], host: str, path: str) -> Classification:
    """The rules as docs/categories.md states them, checked entry by entry."""
    hits: list[tuple[Entry, str]] = []
    for text, category in pairs:
        entry = parse_entry(text)
        on_host = host == entry.host or host.endswith("." + entry.host)
        if on_host and (entry.path is None or path.startswith(entry.path)):
            hits.append((entry, category))
    if not hits:
        return Classification((), (), None)

    def rank(entry: Entry) -> tuple[int, int, int]:
        is_url = entry.path is not None
        return (is_url, entry.host.count("."), len(entry.path or ""))

    best = max((entry for entry, _ in hits), key=rank)
    categories = tuple(sorted({c for e, c in hits if e == best}))
    everything = tuple(sorted({c for _, c in hits}))
    return Classification(categories, everything, str(best))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(pairs=PAIRS, queries=st.lists(st.tuples(HOSTS, PATHS), min_size=1, max_size=6))
def test_index_agrees_with_naive_reference(
    pairs: list[tuple[str, str]], queries: list[tuple[str, str]]
) -> None:
    idx = ListIndex.from_entries(pairs)
    for host, path in queries + queries:  # twice: remembered results must not change answers
        expected = naive_classify(pairs, host, path)
        assert idx.classify(host, path) == expected
        assert classification_of(idx.matches(host, path)) == expected


def test_matches_lists_every_matching_entry(nested: CategoryIndex) -> None:
    """`matches` is what explain and agency overrides start from: all hits, losers included."""
    hits = set(nested.matches("ads.netlog.com", "/play"))
    assert hits == {
        Hit(Entry("ads.netlog.com"), ("advertising",)),
        Hit(Entry("netlog.com"), ("social-networking", "streaming-video")),
        Hit(Entry("netlog.com", "/play"), ("games",)),
    }
    assert nested.matches("example.org") == []
