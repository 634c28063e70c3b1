"""Content kinds from what a proxy sees before the body: URL, Content-Type/-Length/-Disposition."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aupgate import content as content_module
from aupgate.content import CONTENT_KINDS, detect_content, detect_url_content, is_icy_response
from aupgate.hostname import looks_like_domain

MB = 1024 * 1024


def kinds(
    *,
    content_type: str | None = None,
    content_length: int | None = None,
    disposition: str | None = None,
    path: str = "/",
    query: str = "",
    limit_bytes: int | None = None,
    has_body: bool = True,
    icy: bool = False,
) -> set[str]:
    found = detect_content(
        content_type=content_type,
        content_length=content_length,
        disposition=disposition,
        path=path,
        query=query,
        limit_bytes=limit_bytes,
        has_body=has_body,
        icy=icy,
    )
    assert found <= set(CONTENT_KINDS)
    return set(found)


@pytest.mark.parametrize(
    "content_type", ["audio/mpeg", "audio/aac", "audio/ogg; codecs=opus", "Audio/MPEG"])
def test_audio_of_known_size_is_a_clip(content_type: str) -> None:
    """Audio with a Content-Length ends: an audio stream (a clip), not radio (MoDOT 9.B)."""
    assert kinds(content_type=content_type, content_length=300_000) == {"audio-stream"}


@pytest.mark.parametrize(
    "content_type", ["audio/mpeg", "audio/aac", "audio/ogg; codecs=opus", "Audio/MPEG"])
def test_audio_without_a_length_is_radio(content_type: str) -> None:
    """Audio sent without a Content-Length plays until stopped: a radio stream."""
    assert kinds(content_type=content_type) == {"radio-stream"}
    # ...unless no body follows at all (HEAD, 204, 304): nothing plays
    assert kinds(content_type=content_type, has_body=False) == {"audio-stream"}


@pytest.mark.parametrize(
    "content_type",
    [
        "audio/x-mpegurl",  # .m3u playlist
        "audio/mpegurl",  # an audio .m3u8
        "audio/x-scpls",  # .pls playlist
        "application/pls+xml",
    ],
)
def test_audio_playlists_are_radio(content_type: str) -> None:
    """A station's playlist is how a player tunes in: radio, whatever its size."""
    assert kinds(content_type=content_type, content_length=200) == {"radio-stream"}


@pytest.mark.parametrize(
    ("content_type", "path", "expected"),
    [
        (None, "/listen/station.pls", {"radio-stream"}),
        ("application/octet-stream", "/tune/jazz.M3U", {"radio-stream"}),
        ("text/html", "/about/station.pls", set()),  # a page about the playlist
    ],
)
def test_playlists_by_name_when_the_type_is_generic(
        content_type: str | None, path: str, expected: set[str]) -> None:
    assert kinds(content_type=content_type, path=path, content_length=100) == expected


def test_icy_answers_are_radio() -> None:
    """SHOUTcast/Icecast answers are radio, with any type and even with a length."""
    assert kinds(content_type="audio/mpeg", content_length=4096, icy=True) == {"radio-stream"}
    assert kinds(content_type="application/octet-stream", icy=True) == {"radio-stream"}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/auth-policy+xml",  # contains "icy" without being ICY
        "application/wspolicy+xml",
        "video/mp4",
        "application/vnd.apple.mpegurl",  # HLS: usually video, not a radio playlist
    ],
)
def test_not_audio(content_type: str) -> None:
    """Types that merely look alike are not audio streams."""
    assert kinds(content_type=content_type) == set()


TORRENT = "application/x-bittorrent"


@pytest.mark.parametrize(
    ("content_type", "disposition", "path", "query", "expected"),
    [
        (TORRENT, None, "/get", "", {"bittorrent"}),
        (None, None, "/files/ubuntu-24.04.iso.torrent", "", {"bittorrent"}),
        (None, None, "/files/UBUNTU.TORRENT", "", {"bittorrent"}),
        (None, 'attachment; filename="movie.torrent"', "/get", "", {"bittorrent"}),
        (None, None, "/announce", "info_hash=%12%34&peer_id=-qB4500-", {"bittorrent"}),
        (None, None, "/announce.php", "info_hash=abc&port=6881", {"bittorrent"}),
        (None, None, "/scrape", "info_hash=abc", {"bittorrent"}),
        (None, None, "/tracker/announce/", "info_hash=abc", {"bittorrent"}),
        (None, None, "/announce", "", set()),  # a page called announce
        (None, None, "/announcements", "info_hash=abc", set()),
        (None, None, "/myannounce", "info_hash=abc", set()),
        (None, None, "/search", "info_hash=abc", set()),
    ],
)
def test_torrents(
    content_type: str | None, disposition: str | None, path: str, query: str, expected: set[str]
) -> None:
    """Torrents by type, by `.torrent` name, and tracker announce/scrape requests (MoDOT 9.F)."""
    found = kinds(content_type=content_type, disposition=disposition, path=path, query=query)
    assert found == expected


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-msdownload",
        "application/x-msi",
        "application/vnd.microsoft.portable-executable",
        "application/x-apple-diskimage",
        "application/vnd.debian.binary-package",
        "application/vnd.android.package-archive",
        "application/java-archive",
        "application/x-msdownload; charset=binary",
        "APPLICATION/X-MSDOWNLOAD",
    ],
)
def test_executables_by_type(content_type: str) -> None:
    """Installer and program MIME types are executables whatever the URL says (MoDOT 23)."""
    assert kinds(content_type=content_type, path="/download") == {"executable"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/download/setup.exe", {"executable"}),
        ("/download/SETUP.EXE", {"executable"}),
        ("/pkg/tool.msi", {"executable"}),
        ("/mac/App.dmg", {"executable"}),
        ("/scripts/install.ps1", {"executable"}),
        ("/linux/tool.AppImage", {"executable"}),
        ("/addons/ext.xpi", {"executable"}),
        ("/docs/setup.exe.html", set()),
        ("/docs/exe", set()),
        ("/download/", set()),
        ("/report.pdf", set()),
    ],
)
def test_executables_by_extension(path: str, expected: set[str]) -> None:
    """A program's extension on the last path segment is an executable when the response gives
    no type; the URL alone (request time) shows no executable."""
    assert kinds(path=path) == expected
    assert kinds(content_type="application/octet-stream", path=path) == expected
    assert detect_url_content(path, "") == set()


@pytest.mark.parametrize(
    "extension",
    ["exe", "msi", "dmg", "pkg", "apk", "deb", "rpm", "appimage", "ps1", "bat", "vbs", "jar",
     "msix", "cmd", "scr", "vbe", "wsf", "hta", "xpi", "crx", "psm1", "cpl"],
)
def test_every_listed_program_type(extension: str) -> None:
    """Installers, packages and the scripts systems run by themselves (MoDOT 23)."""
    assert kinds(path=f"/files/tool.{extension}") == {"executable"}
    assert kinds(disposition=f'attachment; filename="tool.{extension.upper()}"',
                 content_type="application/octet-stream", path="/get") == {"executable"}


@pytest.mark.parametrize(
    ("content_type", "path", "expected"),
    [
        ("text/html; charset=utf-8", "/download/setup.exe", set()),  # the download page
        ("image/png", "/img/setup.exe", set()),
        ("application/json", "/api/setup.exe", set()),
        ("application/octet-stream", "/download/setup.exe", {"executable"}),
        ("binary/octet-stream", "/bucket/setup.msi", {"executable"}),
        ("application/force-download", "/get/tool.dmg", {"executable"}),
        ("text/plain", "/raw/main/install.ps1", {"executable"}),  # raw script hosting
        ("", "/download/setup.exe", {"executable"}),
        ("application/x-msdownload", "/download/readme.html", {"executable"}),  # type says so
    ],
)
def test_the_type_decides_before_the_extension(
        content_type: str, path: str, expected: set[str]) -> None:
    """Software by media type first; the URL's extension only when the type is missing or
    generic (a `.exe` address answered with a page is a page)."""
    assert kinds(content_type=content_type, path=path) == expected


@pytest.mark.parametrize(
    "path",
    ["/lookup/example.com", "/whois/www.example.org", "/check/Example.COM", "/site/gov.uk.com",
     "/dns/host.example.sh", "/report/putty.run"],
)
def test_a_domain_name_is_not_a_program(path: str) -> None:
    """A last path segment that is a domain name is not a `.com` (`.sh`, `.run`) program, at
    request time and when a response gives no type (the false positive, fixed as a class)."""
    assert kinds(path=path) == set()
    assert kinds(content_type="text/plain", path=path) == set()
    assert detect_url_content(path, "") == set()


def test_a_file_name_that_looks_like_a_domain_still_counts_when_given_as_a_file_name() -> None:
    """Content-Disposition names a file to save: `setup.com` there is a program."""
    assert kinds(disposition='attachment; filename="setup.com"',
                 content_type="application/octet-stream", path="/get") == {"executable"}
    assert kinds(path="/files/setup.exe.com") == set()  # the URL's segment is a domain name


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="setup.exe"', {"executable"}),
        ("attachment; filename=setup.exe", {"executable"}),
        ('attachment; filename = "Setup.EXE" ; size=1024', {"executable"}),
        ("attachment; filename*=UTF-8''setup%20v2.exe", {"executable"}),  # RFC 5987
        ("attachment; filename*=utf-8''installer.msi", {"executable"}),
        ("attachment; filename*=UTF-8'en'setup.exe", {"executable"}),  # with a language tag
        ("attachment; filename*=iso-8859-1''setup.exe", {"executable"}),
        ("attachment; filename=\"report.pdf\"; filename*=UTF-8''setup.exe", {"executable"}),
        ("attachment; filename=\"setup.exe\"; filename*=UTF-8''report.pdf", {"executable"}),
        ('attachment; filename="report.pdf"', set()),
        ('inline; filename="notes.txt"', set()),
        ("attachment", set()),
    ],
)
def test_executables_by_disposition(disposition: str, expected: set[str]) -> None:
    """The saved file name counts, quoted or RFC 5987-encoded, whichever parameter gives it."""
    assert kinds(disposition=disposition, path="/download") == expected


@pytest.mark.parametrize(
    ("length", "limit", "expected"),
    [
        (50 * MB + 1, 50 * MB, {"large-transfer"}),
        (50 * MB, 50 * MB, set()),  # at the limit is not over it
        (50 * MB - 1, 50 * MB, set()),
        (0, 50 * MB, set()),
        (10**12, None, set()),  # no limit configured
        (None, 50 * MB, set()),  # length unknown (chunked)
    ],
)
def test_large_transfers(length: int | None, limit: int | None, expected: set[str]) -> None:
    """A transfer is large only when its Content-Length is over the agency's limit (MoDOT 9.D)."""
    assert kinds(content_length=length, limit_bytes=limit) == expected


def test_several_kinds_at_once() -> None:
    """A response can show several kinds; all are reported."""
    found = kinds(
        content_type="application/x-bittorrent",
        content_length=200 * MB,
        disposition='attachment; filename="setup.exe"',
        path="/get",
        limit_bytes=50 * MB,
    )
    assert found == {"bittorrent", "executable", "large-transfer"}


@pytest.mark.parametrize(
    ("content_type", "path", "query"),
    [
        ("text/html; charset=utf-8", "/", ""),
        ("application/json", "/api/v1/items", "page=2"),
        ("image/png", "/logo.png", ""),
        ("application/pdf", "/report.pdf", ""),
        ("application/octet-stream", "/blob", ""),
        (None, "/news/2026/11/23/story", "ref=home"),
    ],
)
def test_ordinary_pages_are_empty(content_type: str | None, path: str, query: str) -> None:
    """Ordinary pages, images and documents show no content kind."""
    assert kinds(content_type=content_type, path=path, query=query, content_length=1000) == set()


@pytest.mark.parametrize(
    ("reason", "headers", "expected"),
    [
        ("OK", {"icy-name": "Radio 1", "content-type": "audio/mpeg"}, True),
        ("OK", {"Icy-MetaInt": "16000"}, True),
        ("ICY 200 OK", {}, True),
        ("OK", {"content-type": "text/html"}, False),
    ],
)
def test_icy_responses(reason: str, headers: dict[str, str], expected: bool) -> None:
    """SHOUTcast/Icecast answers are recognised by their status line or icy-* headers."""
    assert is_icy_response(reason, headers) is expected


def one_pass_reference(content_type: str | None, content_length: int | None,
                       disposition: str | None, path: str, query: str,
                       limit_bytes: int | None) -> frozenset[str]:
    """The detector's rules written out in one pass: what the fast version must equal."""
    found: set[str] = set()
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    segment = path.rsplit("/", 1)[-1]
    url_ext = "" if looks_like_domain(segment) else content_module._extension(segment)
    given = []
    if disposition:
        given = [m.group(1).strip() for m in content_module._FILENAME.finditer(disposition)]
    extensions = {content_module._extension(name) for name in given}
    if mime in content_module.GENERIC_TYPES and not given:
        extensions.add(url_ext)
    if mime in content_module._AUDIO_PLAYLIST_TYPES or extensions & {"pls", "m3u"}:
        found.add("radio-stream")
    elif mime.startswith("audio/"):
        found.add("radio-stream" if content_length is None else "audio-stream")
    if (mime in content_module._TORRENT_TYPES or "torrent" in extensions or url_ext == "torrent"
            or content_module._is_announce(path, query)):
        found.add("bittorrent")
    if mime in content_module._EXECUTABLE_TYPES or (
            extensions & content_module.EXECUTABLE_EXTENSIONS):
        found.add("executable")
    if limit_bytes is not None and content_length is not None and content_length > limit_bytes:
        found.add("large-transfer")
    return frozenset(found)


@settings(max_examples=600, deadline=None)
@given(
    path=st.from_regex(r"\A(/[a-z0-9._-]{0,12}){1,4}(\.(exe|torrent|mp3|EXE|html|com|pls))?\Z"),
    query=st.sampled_from(["", "q=1", "info_hash=abc&peer_id=x", "a=b.exe"]),
    content_type=st.sampled_from([None, "", "text/html; charset=utf-8", "AUDIO/MPEG",
                                  "audio/x-mpegurl", "application/x-bittorrent",
                                  "application/x-msdownload; q=1", "application/octet-stream",
                                  "text/plain", "audio/mpeg"]),
    disposition=st.sampled_from([None, "", "inline", 'attachment; filename="setup.exe"',
                                 "attachment; filename=a.torrent; filename*=UTF-8''b.msi",
                                 'attachment; filename="notes.txt"']),
    length=st.sampled_from([None, 0, MB, 3 * MB]),
    limit=st.sampled_from([None, 2 * MB]),
)
@pytest.mark.slow
def test_detector_equals_the_one_pass_reference(path: str, query: str, content_type: str | None,
                                                disposition: str | None, length: int | None,
                                                limit: int | None) -> None:
    """The detector (URL shortcut, media types remembered) answers as the one-pass reference."""
    expected = one_pass_reference(content_type, length, disposition, path, query, limit)
    assert detect_content(content_type=content_type, content_length=length,
                          disposition=disposition, path=path, query=query,
                          limit_bytes=limit) == expected
    assert detect_url_content(path, query) == one_pass_reference(
        None, None, None, path, query, None) & {"bittorrent"}
