"""`aupgate check`, `explain` and `clauses`, called as `main([...])`: output and exit codes.

Exit codes: 0 fine, 1 a problem was found, 2 bad usage. Every command is pointed at the fixtures
under `tests/fixtures/core/`, never at the shipped policies or categories.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aupgate.cli import main

CORE = Path(__file__).parent / "fixtures" / "core"
POLICIES = CORE / "policies"
BROKEN = CORE / "broken"
SOURCES = CORE / "categories" / "sources.yaml"
ALPHA = POLICIES / "alpha.yaml"
FIXTURES = ["--policy-dir", str(POLICIES), "--categories", str(SOURCES)]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `aupgate ARGV` and return (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def line_in(path: Path, text: str) -> int:
    """The 1-based line of `path` that is exactly `text`."""
    return path.read_text(encoding="utf-8").splitlines().index(text) + 1


# --------------------------------------------------------------------------- check


def test_check_good_policies(capsys: pytest.CaptureFixture[str]) -> None:
    """`check` on valid policies prints a summary per agency and exits 0."""
    code, out, err = run(capsys, "check", *FIXTURES, "--at", "2026-11-23")
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "6 category lists: 13 entries loaded, 0 lines rejected, 0 duplicates"
    assert (
        f"alpha: 13 rules, 12 clauses (1 not enforceable at a proxy), 2 grants [{ALPHA}]" in lines
    )
    assert (
        "beta: 1 rules, 2 clauses (0 not enforceable at a proxy), 0 grants "
        f"[{POLICIES / 'beta.yaml'}]" in lines
    )
    assert ": 13 distinct sites and URL prefixes in the index (fewer than the list entries" in \
        lines[-1]  # the two counts, and why they differ


def test_check_broken_policies(capsys: pytest.CaptureFixture[str]) -> None:
    """`check` prints every error as FILE:LINE: FIELD: message, a count, and exits 1."""
    code, out, _ = run(capsys, "check", "--policy-dir", str(BROKEN), "--categories", str(SOURCES))
    gamma = BROKEN / "gamma.yaml"
    assert code == 1
    assert out.splitlines() == [
        f"{gamma}:{line_in(gamma, '      categories: [gamling]')}: rules[0].match.categories[0]: "
        "unknown category 'gamling' (did you mean 'gambling'?)",
        f"{gamma}:{line_in(gamma, '  orphan:')}: clauses.orphan: "
        "no rule cites this clause: cite it or say why it is not_enforceable",
        "2 error(s), 0 warning(s): policies NOT usable",
    ]


def test_check_reports_expired_grants(capsys: pytest.CaptureFixture[str]) -> None:
    """Expired grants are warnings: printed, and `check` exits 1 since a problem was found."""
    code, out, _ = run(capsys, "check", *FIXTURES, "--at", "2027-07-01")
    assert code == 1
    lines = out.splitlines()
    expires = [n for n, text in enumerate(ALPHA.read_text().splitlines(), 1) if "expires:" in text]
    assert lines[:2] == [
        f"{ALPHA}:{expires[0]}: grants[0].expires: "
        "warning: grant 'gis-dropbox' expired on 2027-06-30 and has no effect",
        f"{ALPHA}:{expires[1]}: grants[1].expires: "
        "warning: grant 'jdoe-lab-webmail' expired on 2027-06-30 and has no effect",
    ]
    assert lines[-1] == "2 warning(s)"


def test_check_grant_on_its_expiry_day_is_fine(capsys: pytest.CaptureFixture[str]) -> None:
    """On the expiry date itself a grant is still live: no warning."""
    code, _, _ = run(capsys, "check", *FIXTURES, "--at", "2027-06-30")
    assert code == 0


def test_check_broken_category_sources(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A broken sources.yaml is reported on stderr with its file and line, exit 1."""
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        "  - path: gambling.txt\n"
        "    format: plain\n"
        "    category: gamling\n"
        "    source: test\n"
        "    licence: CC0-1.0\n"
        '    snapshot: "2026-11-01"\n',
        encoding="utf-8",
    )
    (tmp_path / "gambling.txt").write_text("bet365.com\n", encoding="utf-8")
    code, _, err = run(capsys, "check", "--policy-dir", str(POLICIES), "--categories", str(sources))
    assert code == 1
    assert f"{sources}:4: sources[0].category: unknown category 'gamling'" in err


# --------------------------------------------------------------------------- explain


def test_explain_human(capsys: pytest.CaptureFixture[str]) -> None:
    """`explain` says what was decided, when, for which site and user, by which rule and clause."""
    code, out, _ = run(
        capsys,
        "explain",
        *FIXTURES,
        "https://www.bet365.com/odds",
        "--client",
        "10.20.1.5",
        "--user",
        "Bob",
        "--at",
        "2026-11-23T12:30",
    )
    assert code == 0
    rule_line = line_in(ALPHA, "  - id: no-gambling")
    assert out.splitlines() == [
        "BLOCK  https://www.bet365.com/odds",
        "  agency   alpha (Alpha Department)",
        "  when     Mon 2026-11-23 12:30 America/Chicago: window lunch",
        "  site     gambling (matched bet365.com)",
        "  who      user bob, device state, network hq-wired",
        f"  decided  by rule 'no-gambling' ({ALPHA}:{rule_line}), the first matching rule",
        "  clause   Alpha IT Acceptable Use Policy 7.E: Gambling",
        "           Employees are strictly prohibited from gambling or maintaining betting pools.",
        "  reason   Gambling is prohibited.",
    ]


@pytest.mark.parametrize(
    ("url", "extra", "decided", "site"),
    [
        (
            "https://dropbox.com/f",
            ["--user", "mlee", "--device", "state"],
            "relaxed by grant 'gis-dropbox'",
            "file-hosting (matched dropbox.com)",
        ),
        ("malware.example", [], "the agency's deny list", "uncategorized"),
        ("https://alpha.gov.example/", [], "the agency's allow list", "uncategorized"),
        (
            "https://example.org/",
            ["--at", "2026-11-23T18:00"],
            "the policy default (no rule matched)",
            "uncategorized",
        ),
        (
            "https://ads.netlog.com/",
            [],
            "the policy default (no rule matched)",
            "advertising (matched ads.netlog.com); also listed as social-networking",
        ),
    ],
)
def test_explain_names_the_deciding_step(
    capsys: pytest.CaptureFixture[str], url: str, extra: list[str], decided: str, site: str
) -> None:
    """The `decided` line names the step: a grant, the deny or allow list, or the default."""
    argv = ["explain", *FIXTURES, url, "--agency", "alpha", "--at", "2026-11-23T09:00", *extra]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    lines = out.splitlines()
    assert next(line for line in lines if line.startswith("  decided")).endswith(decided)
    assert f"  site     {site}" in lines


def test_explain_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`explain --json` prints one JSON object with the decision's fields."""
    code, out, _ = run(
        capsys,
        "explain",
        *FIXTURES,
        "https://facebook.com/",
        "--agency",
        "alpha",
        "--user",
        "JDoe",
        "--at",
        "2026-11-23T09:00",
        "--json",
    )
    assert code == 0
    assert len(out.splitlines()) == 1
    data = json.loads(out)
    assert {"action", "categories", "rule", "clauses", "reason", "agency", "window"} <= set(data)
    assert data["action"] == "allow"
    assert data["rule"] == "comms-social"
    assert data["clauses"] == ["7.S"]
    assert data["categories"] == ["social-networking"]
    assert data["agency"] == "alpha"
    assert data["window"] == "work"
    assert data["user"] == "jdoe"
    assert data["reason"] == "Communications staff post for the department."


@pytest.mark.parametrize(
    ("at", "window"),
    [
        ("2026-11-23T12:30", "lunch"),  # no offset: agency-local (Chicago)
        ("2026-11-23T12:30:00+00:00", "before-work"),  # 06:30 in Chicago
        ("2026-11-23T18:30:00Z", "lunch"),  # 12:30 in Chicago
        ("2026-11-23T13:30:00-05:00", "lunch"),  # New York 13:30 = Chicago 12:30
        ("2026-11-24T01:00:00+01:00", "after-work"),  # Berlin, Tuesday = Monday 18:00 Chicago
        ("2026-11-26T10:00", "holiday"),
    ],
)
def test_explain_at_with_and_without_offset(
    capsys: pytest.CaptureFixture[str], at: str, window: str
) -> None:
    """`--at` without an offset is agency-local; with one it is converted to the agency's zone."""
    argv = ["explain", *FIXTURES, "example.org", "--agency", "alpha", "--at", at, "--json"]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert json.loads(out)["window"] == window


@pytest.mark.parametrize(
    ("client", "agency", "network", "window"),
    [
        ("10.20.1.5", "alpha", "hq-wired", "lunch"),  # 12:30 Chicago
        ("10.20.5.9", "alpha", "hq-lab", "lunch"),
        ("fd00:20::7", "alpha", "hq-wired", "lunch"),
        ("10.30.1.1", "beta", "beta-office", "work"),  # 13:30 New York
    ],
)
def test_explain_client_chooses_the_agency(
    capsys: pytest.CaptureFixture[str], client: str, agency: str, network: str, window: str
) -> None:
    """Without `--agency`, the client address decides which agency's policy applies."""
    argv = ["explain", *FIXTURES, "bet365.com", "--client", client, "--json"]
    code, out, _ = run(capsys, *argv, "--at", "2026-11-23T18:30:00Z")
    data = json.loads(out)
    assert code == 0
    assert (data["agency"], data["network"], data["window"]) == (agency, network, window)
    assert data["action"] == "block"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["example.org", "--agency", "gamma"], "unknown agency 'gamma' (known: alpha, beta)"),
        (
            ["example.org", "--client", "192.0.2.1"],
            "no agency given and the client is in no agency's networks (known: alpha, beta)",
        ),
        (
            ["example.org"],
            "no agency given and the client is in no agency's networks (known: alpha, beta)",
        ),
        (
            ["example.org", "--client", "not-an-ip"],
            "'not-an-ip' does not appear to be an IPv4 or IPv6 address",
        ),
        (
            ["http://exa mple.org/", "--agency", "alpha"],
            "invalid host 'exa mple.org': contains whitespace",
        ),
        (
            ["example.org", "--agency", "alpha", "--at", "soon"],
            "--at: 'soon' is not an ISO-8601 time (Invalid isoformat string: 'soon')",
        ),
        ([], "explain needs a URL or --batch FILE.jsonl (not both)"),
    ],
)
def test_explain_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Bad usage (unknown agency, bad client, URL or time) exits 2 with one message on stderr."""
    code, out, err = run(capsys, "explain", *FIXTURES, *argv)
    assert code == 2
    assert out == ""
    assert err == f"aupgate: {message}\n"


def test_explain_with_broken_policies(capsys: pytest.CaptureFixture[str]) -> None:
    """`explain` refuses a broken policy directory: the problems on stderr, exit 1."""
    argv = ["explain", "--policy-dir", str(BROKEN), "--categories", str(SOURCES), "example.org"]
    code, out, err = run(capsys, *argv, "--agency", "beta")
    assert code == 1
    assert out == ""
    assert "unknown category 'gamling'" in err


# --------------------------------------------------------------------------- explain --batch


def write_batch(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def batch(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, list[dict[str, Any]]]:
    argv = ["explain", *FIXTURES, "--batch", str(path), "--at", "2026-11-23T12:30"]
    code, out, _ = run(capsys, *argv)
    return code, [json.loads(line) for line in out.splitlines()]


def test_batch_good_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Each request line gives one decision object with its line number; all good, exit 0."""
    path = write_batch(
        tmp_path,
        [
            json.dumps({"url": "https://facebook.com/", "agency": "alpha"}),
            "",  # blank lines are skipped but still counted
            json.dumps({"url": "bet365.com", "client": "10.30.1.1"}),
            json.dumps(
                {"url": "https://facebook.com/", "agency": "alpha", "at": "2026-11-23T09:00"}
            ),
            json.dumps(
                {
                    "url": "https://dropbox.com/",
                    "agency": "alpha",
                    "user": "MLEE",
                    "device": "state",
                }
            ),
        ],
    )
    code, results = batch(capsys, path)
    assert code == 0
    assert [(r["line"], r["agency"], r["action"], r["rule"], r["window"]) for r in results] == [
        (1, "alpha", "log", "social-personal-time", "lunch"),  # --at applies to every line
        (3, "beta", "block", "no-gambling", "work"),
        (4, "alpha", "warn", "social-at-work", "work"),  # a line's own `at` wins
        (5, "alpha", "log", "file-hosting-state", "lunch"),
    ]
    assert results[3]["grant"] == "gis-dropbox"


JSON_AT_1_2 = "unexpected character, expected a string key: line 1 column 2 (char 1)"


def test_batch_bad_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A bad line becomes `{"line", "error": "FILE:LINE: ..."}`; the rest are decided; exit 1."""
    path = write_batch(
        tmp_path,
        [
            "{oops",
            json.dumps(["https://facebook.com/"]),
            json.dumps({"agency": "alpha"}),
            json.dumps({"url": "https://facebook.com/", "agency": "gamma"}),
            json.dumps({"url": "https://facebook.com/", "agency": "alpha", "browser": "x"}),
            json.dumps({"url": "http://exa mple.org/", "agency": "alpha"}),
            json.dumps({"url": "https://facebook.com/", "agency": "alpha", "at": "noon"}),
            json.dumps({"url": "https://facebook.com/", "agency": "alpha", "device": "laptop"}),
            json.dumps({"url": "https://facebook.com/", "agency": "alpha", "user": 5}),
            json.dumps({"url": "https://facebook.com/", "agency": "alpha"}),
        ],
    )
    code, results = batch(capsys, path)
    assert code == 1
    errors = [(r["line"], r.get("error")) for r in results]
    assert errors == [
        (1, f"{path}:1: {JSON_AT_1_2}"),
        (2, f"{path}:2: each line must be a JSON object"),
        (3, f"{path}:3: 'url' is required and must be text"),
        (4, f"{path}:4: unknown agency 'gamma' (known: alpha, beta)"),
        (5, f"{path}:5: unknown field(s): browser"),
        (6, f"{path}:6: invalid host 'exa mple.org': contains whitespace"),
        (7, f"{path}:7: 'at': 'noon' is not an ISO-8601 time (Invalid isoformat string: 'noon')"),
        (8, f"{path}:8: unknown device class 'laptop' (one of: state, personal)"),
        (9, f"{path}:9: 'user' must be text"),
        (10, None),
    ]
    assert results[-1]["rule"] == "social-personal-time"


def test_batch_unreadable_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A batch file that cannot be read is a usage error."""
    missing = tmp_path / "missing.jsonl"
    code, _, err = run(capsys, "explain", *FIXTURES, "--batch", str(missing))
    assert code == 2
    assert err.startswith(f"aupgate: --batch: cannot read {missing}: ")


# --------------------------------------------------------------------------- clauses


def test_clauses_table(capsys: pytest.CaptureFixture[str]) -> None:
    """`clauses` prints the document, then one row per clause saying how it is enforced."""
    code, out, _ = run(capsys, "clauses", *FIXTURES, "--agency", "alpha")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Alpha Department: Alpha IT Acceptable Use Policy (2026-01-15)"
    assert lines[1].split() == ["CLAUSE", "TITLE", "ENFORCEMENT"]
    rows = {line.split()[0]: line for line in lines[2:] if not line.startswith(" ")}
    assert list(rows) == [
        "1",
        "4",
        "7.E",
        "7.S",
        "9.A",
        "9.B",
        "9.D",
        "9.F",
        "9.H",
        "23",
        "webmail",
        "12",
    ]
    assert rows["7.E"].endswith("enforced by auditor-gambling, no-gambling")
    assert rows["4"].endswith("enforced by deny-list")
    assert rows["1"].endswith("enforced by default")
    assert "not enforceable at a proxy: Signatures never cross the web" in rows["12"]
    assert "social-at-work" in out  # rule ids are never split across lines
    assert "limits: The proxy sees" in out


def test_clauses_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`clauses --json` gives every clause with its enforcing rules or why it cannot be enforced."""
    code, out, _ = run(capsys, "clauses", *FIXTURES, "--agency", "alpha", "--json")
    assert code == 0
    rows = {row["clause"]: row for row in json.loads(out)}
    assert len(rows) == 12
    assert rows["7.S"] == {
        "clause": "7.S",
        "title": "Social networking",
        "enforced_by": ["comms-social", "social-personal-time", "social-at-work"],
        "not_enforceable": None,
        "proxy_limits": None,
    }
    assert rows["12"]["enforced_by"] == []
    assert rows["12"]["not_enforceable"] == "Signatures never cross the web proxy."
    assert rows["9.A"]["proxy_limits"] == "The proxy sees windows, not whether work suffered."


def test_clauses_unknown_agency(capsys: pytest.CaptureFixture[str]) -> None:
    """`clauses` for an agency that has no policy exits 2 naming the known ones."""
    code, out, err = run(capsys, "clauses", *FIXTURES, "--agency", "gamma")
    assert (code, out) == (2, "")
    assert err == "aupgate: unknown agency 'gamma' (known: alpha, beta)\n"
