"""Fast replay: `explain --batch` in blocks and processes, orjson in and out, ordered output.

The rendering from remembered pieces must give exactly `orjson.dumps(decision.to_json())`, and
the parallel run exactly what one process writes, in input order, across block boundaries.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import random
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from aupgate.categories.cache import load_index
from aupgate.cli import main
from aupgate.engine import Facts, decide
from aupgate.lifecycle.parallel import file_blocks, ordered_map
from aupgate.lifecycle.render import DecisionRenderer
from aupgate.normalise import parse_url
from aupgate.policy.loader import load_policy_dir

CORE = Path(__file__).parent / "fixtures" / "core"
FIXTURES = ["--policy-dir", str(CORE / "policies"), "--categories",
            str(CORE / "categories" / "sources.yaml")]
CHICAGO = ZoneInfo("America/Chicago")
HOSTS = ["facebook.com", "www.bet365.com", "dropbox.com", "pandora.com", "colombia.com",
         "mail.yahoo.com", "alpha.gov.example", "malware.example", "news.example",
         "xn--bcher-kva.example", "ads.netlog.com", "unlisted.example"]
PATHS = ["/", "/radio/live", "/f/setup.exe", "/a?q=1&x=%22", "/alpha-shared/doc"]
USERS = [None, "mlee", "JDoe", "bob", "Auditor"]
CLIENTS = [None, "10.20.1.5", "10.20.5.9", "10.99.0.5", "10.30.1.1"]


def _requests(count: int, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        request = {"url": f"https://{rng.choice(HOSTS)}{rng.choice(PATHS)}",
                   "at": f"2026-11-{rng.randrange(22, 29)}T{rng.randrange(24):02d}:"
                         f"{rng.randrange(60):02d}"}
        client = rng.choice(CLIENTS)
        if client is None or i % 3 == 0:
            request["agency"] = "alpha"
        else:
            request["client"] = client
        user = rng.choice(USERS)
        if user:
            request["user"] = user
        out.append(request)
    return out


def test_rendering_is_the_decisions_json() -> None:
    policies = load_policy_dir(CORE / "policies", today=date(2026, 11, 23)).policies
    index, _ = load_index(CORE / "categories" / "sources.yaml")
    renderer = DecisionRenderer()
    seen = 0
    for request in _requests(3000):
        moment = datetime.fromisoformat(request["at"]).replace(tzinfo=CHICAGO)
        client = request.get("client")
        facts = Facts(url=parse_url(request["url"]), user=request.get("user"),
                      client=ipaddress.ip_address(client) if client else None)
        decision = decide(policies["alpha"], index, facts, moment)
        assert renderer.render(decision) == orjson.dumps(decision.to_json())
        seen += bool(decision.grant)
    assert seen  # grants are among them


def _run_batch(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, bytes]:
    code = main(["explain", *FIXTURES, "--batch", str(path), "--at", "2026-11-23T12:30",
                 *extra])
    return code, capsys.readouterr().out.encode()


def test_parallel_output_is_the_single_process_output_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requests = _requests(24000)
    text = "".join(json.dumps(r) + "\n" for r in requests)
    assert len(text) > 2 * (1 << 20)  # several blocks
    path = tmp_path / "requests.jsonl"
    path.write_text(text, encoding="utf-8")
    code1, one = _run_batch(capsys, path, "--jobs", "1")
    code2, two = _run_batch(capsys, path, "--jobs", "2")
    assert (code1, code2) == (0, 0)
    assert one == two
    lines = one.splitlines()
    assert [orjson.loads(line)["line"] for line in lines] == list(range(1, 24001))
    assert orjson.loads(lines[-1])["url"] == str(parse_url(requests[-1]["url"]))


def test_gzip_input_and_errors_keep_their_line_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [json.dumps(r) for r in _requests(5)] + ["{not json", json.dumps({"url": 3})]
    path = tmp_path / "requests.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines))  # no final newline
    code, out = _run_batch(capsys, path, "--jobs", "2")
    results = [orjson.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [r["line"] for r in results] == [1, 2, 3, 4, 5, 6, 7]
    assert results[5]["error"].startswith(f"{path}:6: unexpected character")
    assert results[6]["error"] == f"{path}:7: 'url' is required and must be text"


def test_blocks_cut_at_newlines(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_bytes(b"".join(b"%d\n" % i for i in range(1, 5001)) + b"5001")
    blocks = [block for _p, block in file_blocks([path], size=1000)]
    assert all(data.endswith(b"\n") for data, _ in blocks[:-1])
    numbers = [int(x) for data, _ in blocks for x in data.split()]
    assert numbers == list(range(1, 5002))
    assert [first for _, first in blocks] == [
        1 + sum(d.count(b"\n") for d, _ in blocks[:i]) for i in range(len(blocks))]


def test_ordered_map_keeps_order_with_workers() -> None:
    blocks = [(b"x" * (i % 7), i) for i in range(50)]
    assert list(ordered_map(lambda data, first: (first, len(data)), blocks, 2)) == [
        (i, i % 7) for i in range(50)]
