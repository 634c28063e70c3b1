"""The administrator's commands as issue 17 found them, each finding pinned: `aupgate --version`,
`aupgate ca` (an agency-named CA that mitmproxy itself then loads), `explain` warning on a
mistyped URL and taking `--at HH:MM` for the agency's today, and `clauses` wrapping titles
whole. Called as `main([...])` against the fixtures under `tests/fixtures/core/`."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aupgate import __version__
from aupgate.cli import main
from aupgate.cli import policy as policy_cli

CORE = Path(__file__).parent / "fixtures" / "core"
FIXTURES = ["--policy-dir", str(CORE / "policies"), "--categories",
            str(CORE / "categories" / "sources.yaml")]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- --version


def test_version_names_aupgate_mitmproxy_and_python(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == (f"aupgate {__version__} (mitmproxy 11.0.2, Python "
                   f"{sys.version.split()[0]})")


# --------------------------------------------------------------------------- ca


def ca(capsys: pytest.CaptureFixture[str], confdir: Path, *argv: str) -> tuple[int, str, str]:
    return run(capsys, "ca", "--confdir", str(confdir), *argv)


def fingerprint_in(out: str) -> str:
    found = re.search(r"SHA-256 (?:fingerprint )?([0-9A-F:]{95})", out)
    assert found, out
    return found[1]


def test_ca_is_named_for_the_agency_and_says_what_to_keep_secret(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    confdir = tmp_path / "conf"
    code, out, err = ca(capsys, confdir, "--agency", "alpha", *FIXTURES[:2])
    assert code == 0, err
    assert out.splitlines()[0].startswith(
        'Created the CA "Alpha Department internet gateway CA" (expires ')
    public, secret = out.split("Keep secret")
    for name in ("mitmproxy-ca-cert.pem", "mitmproxy-ca-cert.cer", "mitmproxy-ca-cert.p12"):
        assert str(confdir / name) in public
        assert (confdir / name).exists()
    for name in ("mitmproxy-ca.pem", "mitmproxy-ca.p12"):
        assert str(confdir / name) in secret and str(confdir / name) not in public
        assert stat.S_IMODE((confdir / name).stat().st_mode) == 0o600  # the key: the proxy's only
    assert b"PRIVATE KEY" not in (confdir / "mitmproxy-ca-cert.pem").read_bytes()
    assert f"aupgate run --set confdir={confdir}" in out


def test_mitmproxy_loads_the_ca_it_made(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    """The files are the ones mitmproxy reads at start: the issuer browsers show is the agency."""
    from mitmproxy import certs

    code, out, _ = ca(capsys, tmp_path, "--name", "City of Saint Paul")
    assert code == 0
    store = certs.CertStore.from_store(tmp_path, "mitmproxy", 2048)
    assert store.default_ca.cn == "City of Saint Paul internet gateway CA"
    assert store.default_ca.organization == "City of Saint Paul"
    assert store.default_ca.is_ca
    from cryptography import x509

    leaf = store.get_cert("www.example.org", x509.GeneralNames([x509.DNSName("www.example.org")]))
    assert leaf.cert.issuer == store.default_ca.issuer  # sites are signed by the agency's CA
    assert fingerprint_in(out).replace(":", "") == store.default_ca.fingerprint().hex().upper()


def test_an_existing_ca_is_kept_unless_replace(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    code, first, _ = ca(capsys, tmp_path, "--name", "Alpha")
    assert code == 0
    key = (tmp_path / "mitmproxy-ca.pem").read_bytes()
    code, _, err = ca(capsys, tmp_path, "--name", "Beta")
    assert code == 1
    assert "exists already (Alpha internet gateway CA" in err and "--replace" in err
    assert (tmp_path / "mitmproxy-ca.pem").read_bytes() == key  # devices still trust it
    code, second, _ = ca(capsys, tmp_path, "--name", "Beta", "--replace")
    assert code == 0 and '"Beta internet gateway CA"' in second
    assert fingerprint_in(second) != fingerprint_in(first)


@pytest.mark.parametrize("name", ["", "   ", "Tab\tname\x07", "x" * 61])
def test_a_ca_name_must_be_short_printable_text(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path, name: str) -> None:
    code, _, err = ca(capsys, tmp_path / "conf", "--name", name)
    assert code == 2 and "printable text of 1 to 60 characters" in err
    assert not (tmp_path / "conf").exists()


def test_a_ca_for_an_unknown_agency(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = ca(capsys, tmp_path / "conf", "--agency", "alpah", *FIXTURES[:2])
    assert code == 2 and "alpah" in err and "alpha" in err
    assert not (tmp_path / "conf").exists()


def test_ca_needs_a_name_or_an_agency(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["ca", "--confdir", str(tmp_path)])
    assert stopped.value.code == 2


# --------------------------------------------------------------------------- explain


@pytest.mark.parametrize(("url", "fixed"), [
    ("https//www.bet365.com/", "https://www.bet365.com/"),
    ("http:/www.bet365.com/odds", "http://www.bet365.com/odds"),
    ("HTTPS//www.bet365.com", "https://www.bet365.com"),
    ("https;//www.bet365.com/", "https://www.bet365.com/"),
    ("http:\\\\www.bet365.com\\", "http://www.bet365.com\\"),
])
def test_explain_warns_on_a_mistyped_scheme(capsys: pytest.CaptureFixture[str], url: str,
                                           fixed: str) -> None:
    """`explain 'https//www.bet365.com/'` answered confidently about the host "https"."""
    code, _, err = run(capsys, "explain", *FIXTURES, url, "--agency", "alpha",
                         "--at", "2026-11-23T10:00")
    assert code == (2 if ";" in url else 0)  # answered if it parses: it may be meant
    assert f"looks like a mistyped URL; did you mean '{fixed}'?" in err
    assert err.count("warning") == 1


@pytest.mark.parametrize(("url", "said"), [
    ("www", "the host is 'www'"),
    ("https://http/", "the host is 'http'"),
    ("intranet", "the host 'intranet' has no dot"),
])
def test_explain_warns_on_a_host_that_is_not_a_whole_address(
        capsys: pytest.CaptureFixture[str], url: str, said: str) -> None:
    code, _, err = run(capsys, "explain", *FIXTURES, url, "--agency", "alpha")
    assert code == 0 and said in err


@pytest.mark.parametrize("url", ["https://www.bet365.com/", "http://localhost:8080/",
                                 "10.1.2.3", "[fd00::1]:443", "https://xn--bcher-kva.example/"])
def test_explain_is_quiet_about_good_addresses(capsys: pytest.CaptureFixture[str],
                                              url: str) -> None:
    code, _, err = run(capsys, "explain", *FIXTURES, url, "--agency", "alpha")
    assert code == 0 and err == ""


def test_explain_at_clock_time_is_today_in_the_agencys_zone(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """03:00 UTC Tuesday is still Monday evening in Chicago: `--at 12:30` is Monday's lunch."""
    monkeypatch.setattr(policy_cli, "now", lambda: datetime(2026, 11, 24, 3, 0, tzinfo=UTC))
    code, out, _ = run(capsys, "explain", *FIXTURES, "https://www.bet365.com/", "--agency",
                       "alpha", "--at", "12:30")
    assert code == 0
    assert "  when     Mon 2026-11-23 12:30 America/Chicago: window lunch" in out.splitlines()
    code, out, _ = run(capsys, "explain", *FIXTURES, "https://www.bet365.com/", "--agency",
                       "alpha", "--at", "9:05")
    assert "  when     Mon 2026-11-23 09:05 America/Chicago: window work" in out.splitlines()


@pytest.mark.parametrize("at", ["24:00", "12:60", "12:5", "noon", "12:30:99"])
def test_explain_rejects_a_clock_time_that_is_not_one(capsys: pytest.CaptureFixture[str],
                                                     at: str) -> None:
    code, out, err = run(capsys, "explain", *FIXTURES, "example.org", "--agency", "alpha",
                         "--at", at)
    assert code == 2 and out == ""
    assert f"--at: '{at}'" in err


# --------------------------------------------------------------------------- clauses


def test_clauses_wraps_titles_at_word_boundaries(capsys: pytest.CaptureFixture[str]) -> None:
    """A title longer than its column continues on the next line, never cut mid-word."""
    code, out, _ = run(capsys, "clauses", *FIXTURES, "--agency", "alpha")
    assert code == 0
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("9.A "))
    title = "Personal use must not interfere with work"  # 41 characters: wider than 40
    first = lines[start][27:67].rstrip()
    follow = lines[start + 1][27:67].rstrip()
    assert f"{first} {follow}" == title, lines[start:start + 2]
    assert lines[start + 1][:27].strip() == ""  # the continuation has no clause of its own


def test_version_from_the_installed_command() -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "aupgate"), "--version"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.startswith(f"aupgate {__version__} (")
