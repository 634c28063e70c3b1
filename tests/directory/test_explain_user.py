"""`aupgate explain --user NAME` with a directory: the groups come from slapd (the policy's
service account), and the answer says where each of the user's policy groups came from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from gateway_support import lab_policy
from slapd_server import SlapdServer, free_port

from aupgate.cli import main
from aupgate.directory.dn import dn_key
from e2e.conftest import FIXTURES


def policy_dir(tmp_path: Path, url: str, password_file: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    text = lab_policy(url, password_file).replace(
        "      directory: [Engineers]\n", "      directory: [Engineers]\n      members: [alice]\n")
    (folder / "lab.yaml").write_text(text, encoding="utf-8")
    shutil.copy(FIXTURES / "policies" / "lab-logo.png", folder)  # its help desk's logo
    return folder


def explain(folder: Path, *args: str) -> list[str]:
    return ["explain", "--policy-dir", str(folder), "--categories",
            str(FIXTURES / "categories" / "sources.yaml"), "--agency", "lab",
            "--at", "2026-11-24T10:30", *args]


@pytest.fixture
def folder(tmp_path: Path, slapd: SlapdServer, password_file: Path) -> Path:
    return policy_dir(tmp_path, slapd.ldap_url, password_file)


def test_groups_and_where_they_came_from(folder: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(explain(folder, "http://mail.yahoo.com/", "--user", "ALICE")) == 0
    out = capsys.readouterr().out
    assert out.startswith("BLOCK  http://mail.yahoo.com/")
    assert "user alice," in out  # the directory's name for her, however it was typed
    assert "  directory alice (uid=alice,ou=people,dc=aup,dc=test); groups: all-employees, " \
           "engineers, loop-a, loop-b, staff" in out
    assert ("  group    engineers: listed in its members; directory group 'Engineers' "
            "(cn=engineers,ou=groups,dc=aup,dc=test, memberOf)") in out
    assert ("  group    employees: directory group 'cn=all-employees, ou=groups, dc=aup, "
            "dc=test' (cn=all-employees,ou=groups,dc=aup,dc=test, nested, via "
            "cn=staff,ou=groups,dc=aup,dc=test)") in out
    assert "rule 'engineers-no-webmail'" in out


def test_json_says_the_same(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(explain(folder, "http://www.bet365.com/", "--user", "zoë", "--json")) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["action"], answer["grant"]) == ("log", "finance-gambling-audit")
    [finance] = answer["groups"]["policy_groups"]
    [source] = finance["sources"]
    assert finance["group"] == "finance"
    assert dn_key(source.pop("dn")) == dn_key("cn=Finance\\, Budget,ou=groups,dc=aup,dc=test")
    assert source == {"from": "directory", "reference": "Finance, Budget",
                      "found_by": "memberOf", "via": None}
    assert answer["groups"]["directory"]["user"] == "zoë"


def test_a_user_the_directory_does_not_know(folder: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(explain(folder, "http://mail.yahoo.com/", "--user", "nobody")) == 1
    captured = capsys.readouterr()
    assert "the directory has no user 'nobody'" in captured.out + captured.err
    assert "none of the policy's groups" in captured.out


def test_without_asking_the_directory(folder: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """--no-directory: only the YAML members lists (alice is listed in engineers)."""
    assert main(explain(folder, "http://mail.yahoo.com/", "--user", "alice",
                        "--no-directory")) == 0
    out = capsys.readouterr().out
    assert "engineers: listed in its members" in out and "employees" not in out


def test_the_directory_down(tmp_path: Path, password_file: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    folder = policy_dir(tmp_path, f"ldap://127.0.0.1:{free_port()}", password_file)
    assert main(explain(folder, "http://mail.yahoo.com/", "--user", "alice")) == 1
    captured = capsys.readouterr()
    assert "the directory could not answer" in captured.err
    assert "deciding with the policy's own members lists only" in captured.out


def test_batch_lines_ask_the_directory(folder: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(json.dumps({"agency": "lab", **line}) for line in [
        {"url": "http://mail.yahoo.com/", "user": "alice"},
        {"url": "http://mail.yahoo.com/", "user": "bob"},
        {"url": "http://mail.yahoo.com/"},
        {"url": "http://mail.yahoo.com/", "user": "nobody"},
    ]) + "\n")
    assert main(explain(folder, "--batch", str(batch))) == 1  # nobody: the directory said no
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["user"], r["rule"]) for r in rows] == [
        ("alice", "engineers-no-webmail"), ("bob", "log-webmail"), (None, "log-webmail"),
        ("nobody", "log-webmail")]
    assert [("error" in r) for r in rows] == [False, False, False, True]
    assert rows[0]["groups"]["policy_groups"][0]["group"] == "engineers"


def test_check_names_the_directory(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--policy-dir", str(folder), "--categories",
                 str(FIXTURES / "categories" / "sources.yaml")]) == 0
    assert "  logins: directory ldap://127.0.0.1:" in capsys.readouterr().out
