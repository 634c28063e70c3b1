"""`aupgate report`: the counts, each format, users only with --by-user, bounded top lists, and the
HTML page opened in a real headless Chromium whose screenshot must show the charts."""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aupgate.audit.reader import ReviewError
from aupgate.audit.report import reading
from aupgate.audit.report.counting import TopCounter
from aupgate.audit.report.html import COLOURS, render_html
from aupgate.audit.report.reading import summarise
from aupgate.audit.report.summary import Options
from aupgate.cli.audit import add_audit_parsers, run_report

NOW = datetime(2026, 5, 5, 9, 0, tzinfo=UTC)
DIGEST = "ab" * 32


def decision(hour: int, minute: int = 0, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema_version": 1,
        "time": f"2026-05-04T{hour:02d}:{minute:02d}:00.000000Z",
        "event": "decision",
        "request_id": f"r{hour}{minute}",
        "phase": "request",
        "client": "10.20.1.5",
        "user": "jdoe",
        "agency": "modot",
        "host": "www.example.org",
        "categories": ["uncategorized"],
        "rule": "default",
        "clauses": ["8"],
        "action": "allow",
        "enforced": "passed",
    }
    record.update(fields)
    return record


def other(hour: int, event: str, **fields: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "time": f"2026-05-04T{hour:02d}:30:00.000000Z",
        "event": event,
        **fields,
    }


GAMBLING = {
    "categories": ["gambling"],
    "action": "block",
    "rule": "no-gambling",
    "enforced": "blocked",
}
CONTINUE = {
    "phase": "continue",
    "action": None,
    "rule": None,
    "categories": [],
    "host": "www.facebook.com",
    "enforced": "continue",
    "rule_continued": "social-warn",
}
SOCIAL = {"categories": ["social-networking"], "action": "warn", "enforced": "warned"}


def sample() -> list[dict[str, Any]]:
    """A day at an agency in Chicago (UTC-5 in May): 15:00Z is 10:00 local."""
    return [
        other(13, "policy_loaded", agencies=["modot"], policy_digest=DIGEST,
              categories_digest=DIGEST),
        decision(14, 0),
        decision(14, 1, host="intranet.modot.mo.gov", user="asmith"),
        decision(15, 0, host="www.bet365.com", **GAMBLING),
        decision(15, 5, host="www.bet365.com", user="asmith", **GAMBLING),
        decision(15, 9, host="pokerstars.com", **GAMBLING),
        decision(17, 0, host="www.facebook.com", **SOCIAL),
        decision(17, 1, work_reason="Posting the  storm notice", **CONTINUE),
        decision(17, 2, host="www.facebook.com", user="asmith", **SOCIAL),
        decision(17, 3, work_reason="posting the storm notice", **CONTINUE),
        decision(18, 0, phase="connect", method="CONNECT", host="www.example.org"),
        decision(18, 1, phase="connect", method="CONNECT", host="www.bet365.com", **GAMBLING),
        decision(19, 0, host="weird.example", categories=["uncategorized"], action="log"),
        decision(19, 1, host="weird.example", categories=["uncategorized"]),
        decision(20, 0, agency=None, action=None, rule=None, categories=[], enforced="refused"),
        other(20, "policy_reloaded", part="policies", digest="cd" * 32, warnings=[]),
        other(21, "policy_reload_failed", part="policies", digest="ef" * 32,
              errors=["policies/modot.yaml:12: rules[0].action: unknown action 'deny'"]),
        other(21, "engine_error", request_id="e1", error="KeyError()", action="block"),
        other(22, "audit_gap", lost=7, since="2026-05-04T21:59:00.000000Z", error="disk full"),
        other(22, "domain_mismatch", request_id="m1", names=["a", "b"], actions=["allow", "block"],
              action="block"),
    ]  # fmt: skip


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write(tmp_path / "audit.jsonl", sample())


def report(*argv: str) -> str:
    root = argparse.ArgumentParser(prog="aupgate")
    add_audit_parsers(root.add_subparsers(dest="command"))
    args = root.parse_args(["report", *argv])
    out = io.StringIO()
    assert run_report(args, out, io.StringIO(), now=NOW) == 0
    return out.getvalue()


def model(*argv: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        report(*argv, "--format", "json", "--tz", "America/Chicago")
    )
    return result


def test_counts(log: Path) -> None:
    """Allowed CONNECTs are tunnels, not requests; continuations are counted as such."""
    m = model(str(log))
    assert m["decisions"] == {
        "total": 11,
        "by_action": {"block": 4, "warn": 2, "log": 1, "allow": 3, "refused": 1},
    }
    cats = {c["category"]: c for c in m["categories"]}
    assert [c["category"] for c in m["categories"]] == [
        "gambling",
        "uncategorized",
        "social-networking",
    ]  # by total, ties by name; a refused request has no category
    assert cats["gambling"]["by_action"] == {"block": 4}
    assert cats["gambling"]["top_hosts"]["items"] == [
        {"host": "www.bet365.com", "count": 3},
        {"host": "pokerstars.com", "count": 1},
    ]
    assert cats["gambling"]["top_hosts"]["approximate"] is False
    assert m["warn"]["shown"] == 2
    assert m["warn"]["continued"] == 2
    assert m["warn"]["continued_by_rule"] == [{"rule": "social-warn", "count": 2}]
    assert m["warn"]["reasons"]["items"] == [{"reason": "posting the storm notice", "count": 2}]
    assert m["policy"]["loads"] == 1
    assert m["policy"]["reloads"] == 1
    assert m["policy"]["reload_failures"] == 1
    failed = m["policy"]["events"][-1]
    assert failed["errors"] == 1
    assert "unknown action 'deny'" in failed["first_error"]
    assert m["health"] == {"engine_errors": 1, "domain_mismatches": 1, "audit_gaps": 1, "lost": 7}


def test_blocks_by_hour_in_the_agency_zone(log: Path) -> None:
    """15:xxZ and 18:01Z are 10:xx and 13:01 in Chicago (CDT)."""
    hours = model(str(log))["blocks_by_hour"]
    assert hours[10] == 3
    assert hours[13] == 1
    assert sum(hours) == 4
    utc = json.loads(report(str(log), "--format", "json", "--tz", "UTC"))["blocks_by_hour"]
    assert utc[15] == 3


def test_period(log: Path) -> None:
    m = model(str(log), "--since", "2026-05-04T15:00", "--until", "2026-05-04T17:00")
    assert m["decisions"]["by_action"] == {"block": 3}
    assert m["report"]["lines_outside_period"] == len(sample()) - 3
    assert model(str(log), "--since", "15h")["decisions"]["total"] == 4  # from 18:00Z


def test_no_user_is_named_without_by_user(log: Path) -> None:
    """Privacy: not in any format, not even in a top list, unless --by-user."""
    for fmt in ("table", "csv", "json", "html"):
        text = report(str(log), "--format", fmt)
        assert "jdoe" not in text and "asmith" not in text, fmt
    m = model(str(log), "--by-user")
    assert m["top_users"]["items"] == [{"user": "jdoe", "count": 8}, {"user": "asmith", "count": 3}]
    cats = {c["category"]: c for c in m["categories"]}
    assert cats["gambling"]["top_users"]["items"][0] == {"user": "jdoe", "count": 3}
    assert "asmith" in report(str(log), "--by-user")


def test_uncategorized_hosts(log: Path) -> None:
    m = model(str(log), "--uncategorized")
    assert m["uncategorized"]["items"] == [
        {"host": "weird.example", "count": 2},
        {"host": "intranet.modot.mo.gov", "count": 1},
        {"host": "www.example.org", "count": 1},
    ]
    assert "uncategorized" not in model(str(log))
    assert "MOST REQUESTED UNCATEGORIZED HOSTS" in report(str(log), "--uncategorized")


def test_table(log: Path) -> None:
    text = report(str(log), "--tz", "America/Chicago")
    assert "DECISIONS BY ACTION\n  block               4\n" in text
    assert "  gambling                       4        4        0        0        0" in text
    assert "  10:00         3 ########################################" in text
    assert "WARNINGS: 2 shown, 2 continued with a stated reason" in text
    assert "POLICY: 1 load(s), 1 reload(s), 1 failed reload(s)" in text


def test_csv(log: Path) -> None:
    rows = list(csv.reader(io.StringIO(report(str(log), "--format", "csv"))))
    assert rows[0] == ["section", "category", "key", "count"]
    assert ["action", "", "block", "4"] in rows
    assert ["category_host", "gambling", "www.bet365.com", "3"] in rows
    assert ["warn_reason", "", "posting the storm notice", "2"] in rows
    assert ["health", "", "engine_errors", "1"] in rows
    assert sum(1 for r in rows if r[0] == "blocks_by_hour") == 24


def test_gz_and_several_files(tmp_path: Path) -> None:
    records = sample()
    a = write(tmp_path / "audit.jsonl.1.gz", records[:8])
    b = write(tmp_path / "audit.jsonl", records[8:])
    assert model(str(a), str(b))["decisions"]["total"] == 11


def test_output_file(log: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    assert report(str(log), "--format", "html", "-o", str(target)) == ""
    assert target.read_text().startswith("<!DOCTYPE html>")


def test_bad_arguments(log: Path, tmp_path: Path) -> None:
    with pytest.raises(ReviewError, match="unknown time zone"):
        report(str(log), "--tz", "Mars/Olympus")
    with pytest.raises(ReviewError, match="no such file"):
        report(str(tmp_path / "missing.jsonl"))


def test_unreadable_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(json.dumps(decision(14)) + "\n{torn\n[1]\n")
    assert model(str(path))["report"]["lines_unreadable"] == 2


# --------------------------------------------------------------------------- bounded memory


def test_top_counter_is_exact_below_its_cap() -> None:
    counter = TopCounter(cap=10)
    for key in "aaabbc":
        counter.add(key)
    assert counter.top(2) == [("a", 3), ("b", 2)]
    assert counter.error == 0


def test_top_counter_stays_bounded_and_honest() -> None:
    """Past the cap: at most `cap` keys, heavy hitters kept, undercount within the bound."""
    rng = random.Random(4)
    truth: dict[str, int] = {}
    counter = TopCounter(cap=50)
    stream = [f"heavy{i}" for i in range(5) for _ in range(400)]
    stream += [f"tail{rng.randrange(5000)}" for _ in range(8000)]
    rng.shuffle(stream)
    for key in stream:
        counter.add(key)
        truth[key] = truth.get(key, 0) + 1
        assert len(counter.counts) <= 50
    assert counter.error > 0
    assert counter.error <= len(stream) / 51
    top = dict(counter.top(5))
    assert set(top) == {f"heavy{i}" for i in range(5)}
    for key, estimate in top.items():
        assert truth[key] - counter.error <= estimate <= truth[key]


def test_report_says_when_a_list_is_approximate(tmp_path: Path) -> None:
    path = write(
        tmp_path / "audit.jsonl",
        [decision(14, i % 60, host=f"h{i}.example") for i in range(30)],
    )
    summary = summarise([path], Options(cap=5))
    hosts = summary.to_json([str(path)], NOW)["categories"][0]["top_hosts"]
    assert hosts["approximate"] is True
    assert hosts["error_bound"] > 0
    assert "Approximate: too many distinct entries" in render_html(summary.to_json([], NOW))


def test_top_counter_merge_keeps_the_bound() -> None:
    """Two workers' summaries merged: at most `cap` keys, undercount within the summed bound."""
    rng = random.Random(7)
    stream = [f"heavy{i % 3}" for i in range(900)] + [
        f"t{rng.randrange(3000)}" for _ in range(3000)
    ]
    rng.shuffle(stream)
    left, right = TopCounter(cap=40), TopCounter(cap=40)
    for index, key in enumerate(stream):
        (left if index % 2 else right).add(key)
    left.merge(right)
    assert len(left.counts) <= 40
    assert left.total == len(stream)
    for key, estimate in left.top(3):
        assert key.startswith("heavy")
        assert 300 - left.error <= estimate <= 300


def test_jobs_give_the_same_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Byte ranges summarised by worker processes and merged equal one streaming pass."""
    records = sample() * 20
    plain = write(tmp_path / "audit.jsonl", records)
    packed = write(tmp_path / "audit.jsonl.1.gz", sample())
    monkeypatch.setattr(reading, "_CHUNK", 1000)  # cut even this small file
    assert len(reading._parts([plain], [plain.stat().st_size], 3)) == 6
    one = model(str(plain), str(packed), "--by-user", "--uncategorized")
    three = model(str(plain), str(packed), "--by-user", "--uncategorized", "--jobs", "3")
    assert three == one
    assert one["decisions"]["total"] == 11 * 21


def test_progress_counts_the_bytes_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`summarise` says how far it got in bytes, ending at the files' size (the bar's total)."""
    plain = write(tmp_path / "audit.jsonl", sample() * 20)
    packed = write(tmp_path / "audit.jsonl.1.gz", sample())
    total = plain.stat().st_size + packed.stat().st_size
    monkeypatch.setattr(reading, "_CHUNK", 1000)
    seen: list[int] = []
    summarise([plain, packed], Options(), progress=seen.append, jobs=2)
    assert seen == sorted(seen) and seen[-1] == total and len(seen) > 2


# --------------------------------------------------------------------------- HTML


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    """No script, no fetched asset; hostile host names are text, not markup."""
    records = sample()
    records.append(decision(16, host="<script>alert(1)</script>.example", **GAMBLING))
    page = report(str(write(tmp_path / "a.jsonl", records)), "--format", "html")
    lower = page.lower()
    assert "<script" not in lower
    for external in ("src=", "href=", "@import", "url(", "<link", "<img", "<iframe"):
        assert external not in lower, external
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.example" in page
    assert page.count("<svg") >= 3


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of an 8-bit truecolour PNG: enough for a screenshot."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            upleft = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - upleft
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else upleft
                line[i] = (line[i] + pred) & 0xFF
        rows.append(
            bytes(line) if channels == 3 else bytes(line[j] for j in range(stride) if j % 4 != 3)
        )
        previous = line
    return width, height, rows


def histogram(rows: list[bytes]) -> Counter[tuple[int, int, int]]:
    """How many pixels of each colour (zip runs in C: fast enough for 2.4 million pixels)."""
    found: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        found.update(zip(row[0::3], row[1::3], row[2::3], strict=True))
    return found


def count_colour(found: Counter[tuple[int, int, int]], hex_colour: str, tolerance: int = 6) -> int:
    target = bytes.fromhex(hex_colour.lstrip("#"))
    return sum(
        n for rgb, n in found.items() if all(abs(rgb[c] - target[c]) <= tolerance for c in range(3))
    )


@pytest.mark.e2e
@pytest.mark.skipif(find_chromium() is None, reason="needs chromium (apt-get install chromium)")
def test_html_report_renders_its_charts_in_chromium(tmp_path: Path) -> None:
    """A real browser draws the page; the screenshot has every action colour's bars."""
    page = tmp_path / "report.html"
    report(str(write(tmp_path / "audit.jsonl", sample())), "--format", "html", "-o", str(page))
    shot = tmp_path / "shot.png"
    chromium = find_chromium()
    assert chromium is not None
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri(),
        ],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    width, height, rows = decode_png(shot.read_bytes())
    assert (width, height) == (1200, 2000)
    found = histogram(rows)
    counts = {action: count_colour(found, colour) for action, colour in COLOURS.items()}
    # Every action appears in the bar charts; blocks also fill the hour-of-day columns.
    for pixels in counts.values():
        assert pixels > 300, counts
    assert counts["block"] > counts["allow"], counts
