"""`aupgate pac`: the generated PAC file evaluated in a real PAC engine (pacparser).

pacparser embeds a JavaScript engine with the Netscape PAC functions, the same contract the
browsers implement; the browser test (tests/deploy/test_browser_pac.py) then runs one generated
file in Chromium itself. Each case builds a small policy with the `pac` section under test.
"""

from __future__ import annotations

import ipaddress
import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from aupgate.cli import main
from aupgate.pac import PAC_CONTENT_TYPE, client_hash, proxy_orders, render_pac, result_for_client
from aupgate.policy.loader import load_policy

try:
    import pacparser
except ImportError:  # pragma: no cover - the failure below says what to do
    pacparser = None

POLICY = """\
agency: {agency}
name: Test Agency
document:
  title: Test Internet Policy
  date: 2025-09-01
  source: https://test.gov.example/policy
contact: Test IT, 555-0100
timezone: America/Chicago
schedule:
  work_days: [mon, tue, wed, thu, fri]
  work_hours: "08:00-17:00"
clauses:
  general:
    title: General use
    text: Internet access is for agency business.
rules:
  - id: log-all
    clauses: [general]
    match:
      categories: [gambling]
    action: block
    reason: Gambling is prohibited.
default:
  action: log
  clauses: [general]
  reason: Agency internet use is logged.
"""

PAC = """\
pac:
  proxies: ["gw1.test.example:8080", "gw2.test.example:8080", "10.0.0.3:3128"]
  on_proxy_failure: {failure}
  spread: {spread}
  intranet:
    networks: [10.0.0.0/8, 172.16.0.0/12, "fd00::/8"]
    domains: [intranet.test.example, Agency.Example]
  bypass: [windowsupdate.com]
"""

GW = "PROXY gw1.test.example:8080; PROXY gw2.test.example:8080; PROXY 10.0.0.3:3128"


def write_policy(directory: Path, *, failure: str = "closed", spread: str = "none") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "test.yaml"
    pac = PAC.format(failure=failure, spread=spread)
    path.write_text(POLICY.format(agency="test") + pac, encoding="utf-8")
    return path


def pac_text(tmp_path: Path, **kwargs: str) -> str:
    policy, problems = load_policy(write_policy(tmp_path / "policies", **kwargs), today=_today())
    assert policy is not None, problems
    return render_pac(policy)


def _today() -> date:
    return date(2026, 11, 24)


@pytest.fixture
def engine() -> Iterator[object]:
    """pacparser, initialised and cleaned up around each test (it keeps global state)."""
    if pacparser is None:
        pytest.fail(
            "pacparser is not installed: it is in pyproject's dev extras "
            "(`make test` or `.ci/run` installs it; or `.venv/bin/pip install pacparser`)"
        )
    yield pacparser


def evaluate(engine: object, text: str, url: str, *, myip: str = "10.20.1.5") -> str:
    """FindProxyForURL(url, host) as a browser on `myip` would call it."""
    pp = pacparser
    pp.init()
    try:
        pp.setmyip(myip)
        pp.parse_pac_string(text)
        host = url.split("//", 1)[1].split("/", 1)[0]
        if host.startswith("["):
            host = host[1:].split("]", 1)[0]  # browsers pass IPv6 hosts without brackets
        else:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return str(pp.find_proxy(url, host))
    finally:
        pp.cleanup()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://intranet/", "DIRECT"),
        ("http://fileserver:8080/share", "DIRECT"),
        ("http://localhost/", "DIRECT"),
        ("https://intranet.test.example/", "DIRECT"),
        ("https://wiki.intranet.test.example/page", "DIRECT"),
        ("https://WIKI.Intranet.Test.Example/", "DIRECT"),
        ("https://agency.example/", "DIRECT"),
        ("https://hr.agency.example/", "DIRECT"),
        ("http://10.1.2.3/", "DIRECT"),
        ("http://10.255.255.255:8443/", "DIRECT"),
        ("http://172.31.255.1/", "DIRECT"),
        ("http://127.0.0.1:631/", "DIRECT"),
        ("http://[fd00::1]/", "DIRECT"),
        ("http://download.windowsupdate.com/x.cab", "DIRECT"),
        ("http://windowsupdate.com/", "DIRECT"),
        ("https://www.bet365.com/", GW),
        ("https://evilintranet.test.example/", GW),
        ("https://intranet.test.example.evil.com/", GW),
        ("https://notagency.example/", GW),
        ("http://172.32.0.1/", GW),
        ("http://11.1.2.3/", GW),
        ("http://[2001:db8::1]/", GW),
        ("http://[::ffff:8.8.8.8]/", GW),
        ("https://intranet.test.example./", GW),
        ("http://unlisted-intranet-name.test.invalid/", GW),
    ],
)
def test_direct_and_proxied(engine: object, tmp_path: Path, url: str, expected: str) -> None:
    """Plain names, intranet domains/networks, loopback, bypass: DIRECT; the rest: the proxies."""
    assert evaluate(engine, pac_text(tmp_path), url) == expected


def test_ipv6_literal_is_not_a_plain_host_name(engine: object, tmp_path: Path) -> None:
    """`isPlainHostName("2001:db8::1")` is true (no dot): the file must not let it go DIRECT."""
    text = pac_text(tmp_path)
    assert evaluate(engine, text, "http://[2001:db8::1]/") == GW
    assert (
        evaluate(
            engine,
            "function FindProxyForURL(u, h) { return isPlainHostName(h) ? "
            '"DIRECT" : "PROXY x:1"; }',
            "http://[2001:db8::1]/",
        )
        == "DIRECT"
    )


@pytest.mark.parametrize(
    ("failure", "expected"),
    [("closed", GW), ("direct", GW + "; DIRECT")],
)
def test_failover_order_and_failure_choice(
    engine: object, tmp_path: Path, failure: str, expected: str
) -> None:
    """Proxies in the listed order; DIRECT appended only with on_proxy_failure: direct."""
    text = pac_text(tmp_path, failure=failure)
    assert evaluate(engine, text, "https://example.com/") == expected
    assert (
        f"If no proxy answers: {'fall back to DIRECT' if failure == 'direct' else 'fail closed'}"
        in text
    )


def test_hash_spreads_clients_deterministically(engine: object, tmp_path: Path) -> None:
    """spread: hash gives each client address a fixed rotation; every proxy stays a fallback."""
    text = pac_text(tmp_path, spread="hash")
    policy, _ = load_policy(tmp_path / "policies" / "test.yaml", today=_today())
    assert policy is not None and policy.pac is not None
    orders = proxy_orders(policy.pac)
    assert len(orders) == 3
    proxies = [p.strip() for p in GW.split(";")]
    for order in orders:
        assert sorted(p.strip() for p in order.split(";")) == sorted(proxies)
    seen: Counter[str] = Counter()
    network = ipaddress.ip_network("10.20.0.0/22")
    for number, address in enumerate(network.hosts()):
        if number % 7:  # a sample of 147 addresses keeps the engine calls quick
            continue
        got = evaluate(engine, text, "https://example.com/", myip=str(address))
        assert got == result_for_client(policy.pac, str(address)), address
        seen[got] += 1
    assert set(seen) == set(orders)
    assert min(seen.values()) >= 0.2 * sum(seen.values()), seen
    again = [evaluate(engine, text, "https://example.org/", myip="10.20.1.77") for _ in range(3)]
    assert len(set(again)) == 1
    assert evaluate(engine, text, "https://intranet.test.example/") == "DIRECT"


def test_hash_is_the_same_function_as_the_pac_file(engine: object) -> None:
    """client_hash mirrors the JavaScript, so operators can tell which gateway a client prefers."""
    script = (
        "function FindProxyForURL(u, h) { var ip = myIpAddress(), x = 0, i;"
        " for (i = 0; i < ip.length; i++) x = (x * 31 + ip.charCodeAt(i)) % 65521;"
        ' return "PROXY h:" + x; }'
    )
    for address in ["10.20.1.5", "192.168.255.254", "fd00:20::1:2", "127.0.0.1"]:
        got = evaluate(engine, script, "http://example.com/", myip=address)
        assert got == f"PROXY h:{client_hash(address)}"


def test_single_order_without_hash(tmp_path: Path) -> None:
    """spread: none writes one fixed list and never calls myIpAddress or resolves names."""
    text = pac_text(tmp_path)
    assert "myIpAddress" not in text
    assert "dnsResolve" not in text
    assert "PROXY_ORDERS" not in text


def test_output_is_deterministic_and_commented(tmp_path: Path) -> None:
    """Same policy, same bytes: deployments compare before replacing, diffs show real changes."""
    assert pac_text(tmp_path) == pac_text(tmp_path)
    text = pac_text(tmp_path)
    assert text.startswith("// Proxy auto-configuration for Test Agency (agency test).")
    assert "sha256" in text


def test_cli_writes_pac_and_wpad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`aupgate pac --output F --wpad` writes F and wpad.dat beside it, identical and readable."""
    write_policy(tmp_path / "policies")
    out = tmp_path / "www" / "proxy.pac"
    missing = main(["pac", "--agency", "test", "--policy-dir", str(tmp_path / "policies"),
                    "--output", str(out)])
    assert missing == 2 and not out.parent.exists()  # no directory made behind one's back
    assert "is not a directory" in capsys.readouterr().err
    out.parent.mkdir()
    code = main(
        [
            "pac",
            "--agency",
            "test",
            "--policy-dir",
            str(tmp_path / "policies"),
            "--output",
            str(out),
            "--wpad",
        ]
    )
    assert code == 0
    wpad = out.parent / "wpad.dat"
    assert out.read_text() == wpad.read_text()
    assert out.stat().st_mode & 0o777 == 0o644
    assert "FindProxyForURL" in out.read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["proxy.pac", "wpad.dat"]
    assert main(["pac", "--agency", "test", "--policy-dir", str(tmp_path / "policies")]) == 0
    assert capsys.readouterr().out == out.read_text()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--agency", "nobody"], 2, "unknown agency 'nobody' (known: nopac, test)"),
        (["--agency", "test", "--wpad"], 2, "--wpad needs --output"),
        (["--agency", "nopac"], 1, "has no pac section"),
    ],
)
def test_cli_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    """Usage mistakes exit 2, a policy without a pac section exits 1; each names the problem."""
    directory = tmp_path / "policies"
    write_policy(directory)
    (directory / "nopac.yaml").write_text(
        POLICY.format(agency="nopac").replace("America/Chicago", "America/Denver"),
        encoding="utf-8",
    )
    assert main(["pac", "--policy-dir", str(directory), *argv]) == code
    assert message in capsys.readouterr().err


def test_content_type_constant() -> None:
    """The media type the docs and the nginx snippet use."""
    assert PAC_CONTENT_TYPE == "application/x-ns-proxy-autoconfig"
    snippet = Path(__file__).parents[1] / "deploy" / "nginx" / "aupgate-pac.conf"
    assert "application/x-ns-proxy-autoconfig" in snippet.read_text()


def test_policy_example_renders(tmp_path: Path) -> None:
    """The docs' example pac section (docs/policy-language.md) is accepted and renders."""
    example = textwrap.dedent(
        """\
        pac:
          proxies: ["gw1.modot.example:8080", "gw2.modot.example:8080"]
          on_proxy_failure: closed
          spread: hash
          intranet:
            networks: [10.0.0.0/8]
            domains: [modot.mo.gov]
          bypass: [windowsupdate.com]
        """
    )
    path = tmp_path / "test.yaml"
    path.write_text(POLICY.format(agency="test") + example, encoding="utf-8")
    policy, problems = load_policy(path, today=_today())
    assert policy is not None, problems
    assert "PROXY gw2.modot.example:8080; PROXY gw1.modot.example:8080" in render_pac(policy)


@pytest.mark.parametrize(
    ("agency", "intranet"),
    [("modot", "www.modot.org"), ("mo-dnr", "dnr.mo.gov"), ("saint-paul", "www.stpaul.gov")],
)
def test_shipped_policies_render(engine: object, agency: str, intranet: str) -> None:
    """Each shipped policy's pac section gives a file that proxies the web and not its intranet."""
    path = Path(__file__).parents[1] / "policies" / f"{agency}.yaml"
    policy, problems = load_policy(path, today=_today())
    assert policy is not None, problems
    text = render_pac(policy)
    assert evaluate(engine, text, f"https://{intranet}/") == "DIRECT"
    got = evaluate(engine, text, "https://www.bet365.com/")
    assert got.startswith("PROXY gw") and "DIRECT" not in got
