"""The policy loader under random input: whatever the YAML, a located problem, never a traceback.

Issue 12, item 13: 300 `[` in a row raised `RecursionError` from the YAML library, so
`aupgate check` and the gateway's start printed a traceback. These properties feed the loader
shapes an administrator (or an attacker with write access to a staging copy) can produce:
random structures under the policy's own keys, a real policy with one part replaced by random
data, token soup, and nesting of every kind and depth. Every run must end in a policy or in
problems that name the file and a line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aupgate.errors import PolicyError, Problem
from aupgate.policy.loader import load_policy, load_policy_dir
from aupgate.yamlsource import MAX_DEPTH

TODAY = date(2026, 11, 23)
ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "tests" / "e2e" / "fixtures" / "policies" / "lab.yaml"
AUPGATE = Path(sys.executable).with_name("aupgate")

# The words a policy is made of: random structures use them as keys, so the section readers see
# their own keys holding the wrong things, not only unknown keys.
WORDS = [
    "agency", "name", "document", "title", "date", "source", "contact", "timezone", "schedule",
    "work_days", "work_hours", "lunch", "breaks", "holidays", "window_sets", "identity",
    "networks", "cidrs", "device", "groups", "members", "description", "clauses", "text",
    "not_enforceable", "proxy_limits", "rules", "id", "match", "categories", "domains", "urls",
    "windows", "users", "content", "action", "reason", "default", "allow", "deny", "grants",
    "expires", "rule", "never_decrypt", "pac", "proxies", "direct", "on_proxy_failure",
    "limits", "transfer_mb", "add", "remove", "block", "warn", "log", "gambling", "mon", "lab",
]
FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
pytestmark = pytest.mark.slow  # properties: a few seconds each (`make test` runs them)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS), st.text(max_size=30),
    st.dates(), st.sampled_from(["08:00-17:00", "10.0.0.0/8", "2026-13-01", "7", "::1/128"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(WORDS), st.text(max_size=10)), inner,
                        max_size=5),
    ),
    max_leaves=25,
)


def load_text(text: str, *, whole_dir: bool = False) -> tuple[Path, list[Problem], bool]:
    """Load `text` as `lab.yaml` in a fresh folder: (path, problems, whether a policy came back).

    Any exception other than the loader's own result fails the property. `whole_dir` also
    loads the folder, as `aupgate check` and the gateway do (the checks across agencies).
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lab.yaml"
        path.write_text(text, encoding="utf-8")
        policy, problems = load_policy(path, today=TODAY)
        if whole_dir:
            try:
                load_policy_dir(Path(folder), today=TODAY)
            except PolicyError as exc:
                assert exc.problems, "PolicyError without problems"
        return path, problems, policy is not None


def line_count(text: str) -> int:
    """Lines as YAML counts them: NEL and the Unicode separators break lines too."""
    return len(re.findall("\r\n|[\r\n\x85\u2028\u2029]", text))


def assert_located(path: Path, problems: list[Problem], *, lines: int) -> None:
    """Every problem names the file and a line inside it (or just past it: end of file)."""
    for problem in problems:
        assert problem.file == str(path), problem
        assert problem.message, problem
        assert problem.line is not None, f"no line: {problem}"
        assert 1 <= problem.line <= lines + 1, f"line outside the file ({lines}): {problem}"
        str(problem)  # the form `aupgate check` prints


def dump(data: Any) -> str:
    return yaml.safe_dump(data, default_flow_style=None, allow_unicode=True, sort_keys=False)


@FUZZ
@given(st.dictionaries(st.sampled_from(WORDS), values, max_size=12))
def test_random_structures_under_the_policy_keys(data: dict[str, Any]) -> None:
    text = dump(data)
    path, problems, ok = load_text(text, whole_dir=True)
    assert ok or any(p.severity == "error" for p in problems)
    assert_located(path, problems, lines=line_count(text))


def _replace(data: Any, route: list[int], new: Any) -> Any:
    """`data` with the node that `route` leads to (each step an index among the children)
    replaced by `new`."""
    if not route or not isinstance(data, dict | list) or not data:
        return new
    step, rest = route[0], route[1:]
    if isinstance(data, dict):
        key = list(data)[step % len(data)]
        return {**data, key: _replace(data[key], rest, new)}
    copy = list(data)
    copy[step % len(copy)] = _replace(copy[step % len(copy)], rest, new)
    return copy


@FUZZ
@given(st.lists(st.integers(0, 50), min_size=1, max_size=6), values)
def test_a_real_policy_with_one_part_replaced(route: list[int], new: Any) -> None:
    """The shape an editing mistake makes: a valid policy with one subtree wrong."""
    text = dump(_replace(yaml.safe_load(LAB.read_text()), route, new))
    path, problems, _ = load_text(text)
    assert_located(path, problems, lines=line_count(text))


TOKENS = ["[", "]", "{", "}", "-", "- ", ": ", ":", ",", "\n", "  ", "\t", "&a ", "*a", "*b",
          "&b ", "!!str ", "!!python/object:os.system ", "? ", "|", ">", "'", '"', "#", "agency",
          "rules", "lab", "1", "2026-01-01", "---\n", "...\n", "%YAML 1.1\n", "\\", "\x00", "é"]


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=80))
def test_token_soup(tokens: list[str]) -> None:
    text = "".join(tokens)
    path, problems, _ = load_text(text)
    assert_located(path, problems, lines=line_count(text))


@FUZZ
@given(st.binary(max_size=200))
def test_bytes_that_are_not_text(raw: bytes) -> None:
    """Undecodable bytes are one problem for the file (there is no line to point at)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lab.yaml"
        path.write_bytes(raw)
        _, problems = load_policy(path, today=TODAY)
    for problem in problems:
        assert problem.file == str(path)
        assert problem.line is not None or problem.message.startswith(
            ("cannot read", "invalid YAML")), problem


OPENERS = {
    "flow-list": ("[", "]"),
    "flow-map": ("{k: ", "}"),
    "block": None,
}


def nested(kinds: list[str], leaf: str) -> str:
    """`rules:` holding the given kinds of containers one inside the other."""
    text = "rules: "
    closing = ""
    indent = 1
    for kind in kinds:
        pair = OPENERS[kind]
        if pair is None:  # a block list item on its own, deeper line
            text += "\n" + "  " * indent + "- "
            indent += 1
            continue
        text += pair[0]
        closing = pair[1] + closing
    return "agency: lab\n" + text + leaf + closing + "\n"


@FUZZ
@given(st.integers(1, 400), st.lists(st.sampled_from(sorted(OPENERS)), min_size=1, max_size=8),
       st.sampled_from(["1", "x", "[]", "{}", ""]))
def test_nesting_of_every_kind_and_depth(depth: int, pattern: list[str], leaf: str) -> None:
    """Flow lists and maps, and block lists, mixed (a pattern repeated to the depth), up to 400
    deep: past the limit the problem is the nesting itself, at its line, with the path."""
    kinds = (pattern * depth)[:depth]
    # block items cannot follow a flow opener on the same line: once in flow, stay in flow
    first_flow = next((i for i, k in enumerate(kinds) if k != "block"), len(kinds))
    kinds = kinds[:first_flow] + [k for k in kinds[first_flow:] if k != "block"]
    text = nested(kinds, leaf)
    path, problems, _ = load_text(text)
    assert_located(path, problems, lines=line_count(text))
    if len(kinds) + 2 > MAX_DEPTH + 1:  # the document and `rules` hold the rest
        [problem] = problems
        assert "nested more than 64 levels deep" in problem.message, problem
        assert problem.field.startswith("rules"), problem


@pytest.mark.parametrize("depth", [MAX_DEPTH, 300, 100_000])
def test_deep_flow_list_is_one_located_problem(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text("agency: lab\nrules: " + "[" * depth + "]" * depth + "\n")
    _, problems = load_policy(path, today=TODAY)
    [problem] = problems
    assert (problem.file, problem.line) == (str(path), 2)
    assert problem.field == "rules[0][0][0] ... [0][0]"
    assert problem.message.startswith("nested more than 64 levels deep")


def test_nesting_within_the_limit_is_read(tmp_path: Path) -> None:
    """62 lists inside `rules` (64 levels with the document and `rules` itself): no nesting
    problem, only what the rules section says about a list of lists."""
    path = tmp_path / "lab.yaml"
    path.write_text("agency: lab\nrules: " + "[" * 62 + "]" * 62 + "\n")
    _, problems = load_policy(path, today=TODAY)
    assert problems and not any("nested" in p.message for p in problems)


def test_deep_nesting_names_the_keys_on_the_way(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text("agency: lab\nrules:\n  - match:\n      categories: "
                    + "{a: " * 80 + "1" + "}" * 80 + "\n")
    _, problems = load_policy(path, today=TODAY)
    [problem] = problems
    assert problem.line == 4
    assert problem.field == "rules[0].match.categories ... a.a"


@pytest.mark.parametrize("command", [["check"], ["run", "--listen-port", "0"]])
def test_check_and_start_say_where_not_a_traceback(tmp_path: Path, command: list[str]) -> None:
    """The CLI end of item 13: `aupgate check` and the gateway's start both print the located
    problem and exit 1."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "lab.yaml").write_text("agency: lab\nrules: " + "[" * 300 + "]" * 300 + "\n")
    done = subprocess.run(
        [str(AUPGATE), *command, "--policy-dir", str(policies),
         *(["--set", f"confdir={tmp_path / 'conf'}"] if command[0] == "run" else [])],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "AUPGATE_INDEX_DIR": str(tmp_path / "index")})
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and "RecursionError" not in output, output
    assert f"{policies / 'lab.yaml'}:2: rules[0][0][0] ... [0][0]: nested more than 64" \
        in output, output
