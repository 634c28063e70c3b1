"""What a response is, judged on its media type first, on every site (allow-listed ones too);
and the schedule's holidays by rule, years after any date was written down.

Through a real `aupgate run` on the lab policy (tests/e2e/fixtures): `no-exe` blocks programs,
`no-audio` radio streams, `audio-clips` logs clips, intranet.test is on the allow list, and
booking.test is closed on holidays (`holiday-closed`; Missouri's calendar plus Lincoln's
Birthday).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Certs, Proxy, Upstreams, curl, start_proxy, stop_proxy

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("url", "status", "rule"),
    [
        # a page about a program, at a program's address: the type says page
        ("http://www.example.org/pages/setup.exe", 200, "default"),
        # a domain name as the last segment is not a .com program (served as text/plain)
        ("http://www.example.org/lookup/example.com", 200, "default"),
        # a program sent as application/octet-stream: the extension decides
        ("http://www.example.org/files/tool.msi", 403, "no-exe"),
        # the allow list decides the site, not the content: an installer from it is blocked
        ("http://intranet.test/download", 403, "no-exe"),
        ("http://intranet.test/handbook", 200, "allow-list"),
        # a clip of known size is not radio: logged, not blocked
        ("http://www.example.org/clip.mp3", 200, "audio-clips"),
    ],
)
def test_content_is_judged_by_type_first_everywhere(proxy: Proxy, url: str, status: int,
                                                    rule: str) -> None:
    r = curl(proxy, url)
    assert r.status == status, r
    path = "/" + url.split("/", 3)[3]
    [event] = [e for e in proxy.events("decision") if e.get("path") == path
               and e.get("host") == url.split("/")[2]]
    assert event["rule"] == rule, event


@pytest.mark.parametrize(
    ("moment", "window", "status"),
    [
        ("2031-11-27T10:00:00-06:00", "holiday", 403),  # Thanksgiving 2031
        ("2032-02-12T10:00:00-06:00", "holiday", 403),  # Lincoln's Birthday (the agency's add)
        ("2033-05-09T10:00:00-05:00", "holiday", 403),  # Truman Day 2033 observed (8th: Sun)
        ("2031-11-26T10:00:00-06:00", "work", 200),  # the day before: a work day
    ],
)
def test_a_holiday_years_ahead(tmp_path: Path, certs: Certs, upstreams: Upstreams, moment: str,
                               window: str, status: int) -> None:
    """No date is written in the lab policy: the state calendar gives each year's holidays."""
    proxy = start_proxy(tmp_path, certs, upstreams, fixed_time=moment)
    try:
        r = curl(proxy, "http://booking.test/reserve")
        assert r.status == status, r
        [event] = proxy.events("decision", host="booking.test")
        assert event["window"] == window
    finally:
        stop_proxy(proxy)


def test_a_program_answering_an_upload_is_a_download(proxy: Proxy) -> None:
    """A form POST whose answer is an installer downloads software: the download rule decides
    (`no-exe`), not the rule about programs sent out; the audit line still says the request
    was an upload."""
    r = curl(proxy, "http://www.example.org/download", "--data", "accept=1")
    assert r.status == 403, r
    [event] = [e for e in proxy.events("decision", host="www.example.org")
               if e.get("path") == "/download"]
    assert (event["rule"], event["direction"], event["phase"]) == ("no-exe", "upload",
                                                                   "response"), event
