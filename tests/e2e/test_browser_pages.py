"""The pages in a real browser: Debian's Chromium driven by Playwright, through a real
`aupgate run`, with the proxy's CA trusted by its key (`--ignore-certificate-errors-spki-list`,
which trusts only certificates chained to that key: no blanket ignore of HTTPS errors).

Block page, warn -> continue, request access, an error page and the HTML report; layout facts
(the reason box and the button inside the viewport) at 1280x900 and on a 390x844 phone.
Screenshots are kept as test artifacts under var/test-artifacts/browser/ (git-ignored).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .conftest import AUPGATE, Certs, Proxy, Upstreams, free_port, start_proxy, stop_proxy

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "browser"
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


def spki_hash(pem: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, certs: Certs,
       upstreams: Upstreams) -> Iterator[Proxy]:
    closed = free_port()
    started = start_proxy(tmp_path_factory.mktemp("browser"), certs, upstreams,
                          "--set", f"aupgate_resolve=refused.test:443:127.0.0.1:{closed}")
    yield started
    stop_proxy(started)


@pytest.fixture(scope="module")
def browser(gw: Proxy) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  f"--ignore-certificate-errors-spki-list={spki_hash(gw.mitm_ca)}"],
            proxy={"server": gw.url})
        yield launched
        launched.close()


def open_page(browser: Any, size: str) -> Any:
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height},
                                  is_mobile=size == "phone", has_touch=size == "phone")
    return context.new_page()


def in_viewport(page: Any, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    return bool(box and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width
                and box["y"] + box["height"] <= height)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_block_page(browser: Any, gw: Proxy, size: str) -> None:
    page = open_page(browser, size)
    page.goto("https://www.bet365.com/odds")
    shot(page, f"block-{size}")
    assert page.locator("h1").inner_text() == "This site is blocked"
    assert "gambling" in page.locator(".site").inner_text()
    assert page.locator("header img").count() == 1  # the lab's logo
    assert "Lab Service Desk" in page.locator(".desk").inner_text()
    assert not page.locator("details").evaluate("d => d.open")  # details folded
    assert in_viewport(page, "button.primary") and in_viewport(page, "textarea")
    page.context.close()


@pytest.mark.parametrize("size", sorted(SIZES))
def test_warn_then_continue(browser: Any, gw: Proxy, size: str) -> None:
    page = open_page(browser, size)
    host = {"desktop": "www.facebook.com", "phone": "m.facebook.com"}[size]  # a pass per host
    page.goto(f"https://{host}/{size}")
    shot(page, f"warn-{size}")
    assert in_viewport(page, "textarea#reason") and in_viewport(page, "button.primary")
    box = page.locator("textarea#reason").bounding_box()
    assert box["x"] + box["width"] <= page.viewport_size["width"]  # no overflow of its column
    assert page.locator("button.primary").inner_text() == "Continue for 15 minutes"
    page.fill("#reason", "work")
    page.locator("button.primary").click()  # the browser's own check (8 characters) stops it
    assert page.url.endswith(f"/{size}")
    page.fill("#reason", "posting the storm closure notice")
    page.locator("button.primary").click()
    page.wait_for_load_state()
    assert f"upstream {host} GET /{size}" in page.content()
    page.context.close()


def test_request_access(browser: Any, gw: Proxy) -> None:
    page = open_page(browser, "desktop")
    page.goto("https://www.bet365.com/casino")
    page.fill("#explanation", "fraud investigation, case 12")
    page.locator("button.primary").click()
    page.wait_for_load_state()
    shot(page, "request-sent")
    assert page.locator("h1").inner_text() == "Your request for access was sent"
    [event] = gw.events("access_request", path="/casino")
    assert event["explanation"] == "fraud investigation, case 12"
    page.context.close()


def test_error_page(browser: Any, gw: Proxy) -> None:
    page = open_page(browser, "phone")
    response = page.goto("https://refused.test/")
    shot(page, "error-phone")
    assert response is not None and response.status == 502
    assert page.locator("h1").inner_text() == "refused.test could not be reached"
    assert "Errno" not in page.content()
    page.context.close()


def test_html_report(browser: Any, gw: Proxy, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = subprocess.run([str(AUPGATE), "report", str(gw.audit_path), "--format", "html",
                           "-o", str(out)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    page = open_page(browser, "desktop")
    page.goto(out.as_uri())
    shot(page, "report")
    text = page.locator("body").inner_text()
    assert "Requests for access" in text and "fraud investigation, case 12" in text
    page.context.close()
    shutil.copy(out, ARTIFACTS / "report.html")
    assert os.path.getsize(ARTIFACTS / "report.png") > 10_000
