"""What a transfer is, when the domain cannot tell: audio streams, torrents, executables, bulk.

MoDOT 9.B (streaming radio), 9.D (large transfers), 9.F (peer-to-peer) and 23 (downloading
software), and Saint Paul's shareware clause, are about what flows, not where from: a news site
serves an MP3, a CDN serves an installer. These checks look only at what a proxy sees before the
body (URL, Content-Type, Content-Length, Content-Disposition), so a decision never waits for data.
"""

from __future__ import annotations

import functools
import re

CONTENT_KINDS: tuple[str, ...] = ("audio-stream", "bittorrent", "executable", "large-transfer")

_EXECUTABLE_EXTENSIONS = frozenset(
    {
        "exe",
        "msi",
        "msix",
        "msixbundle",
        "appx",
        "appxbundle",
        "bat",
        "cmd",
        "com",
        "scr",
        "ps1",
        "vbs",
        "jar",
        "dmg",
        "pkg",
        "mpkg",
        "app",
        "deb",
        "rpm",
        "apk",
        "appimage",
        "run",
        "snap",
        "flatpak",
        "xpi",
        "crx",
    }
)
_EXECUTABLE_TYPES = frozenset(
    {
        "application/x-msdownload",
        "application/x-msdos-program",
        "application/x-ms-installer",
        "application/x-msi",
        "application/x-ms-application",
        "application/vnd.microsoft.portable-executable",
        "application/x-dosexec",
        "application/x-executable",
        "application/x-apple-diskimage",
        "application/vnd.debian.binary-package",
        "application/x-debian-package",
        "application/x-rpm",
        "application/x-redhat-package-manager",
        "application/vnd.android.package-archive",
        "application/java-archive",
        "application/x-java-archive",
        "application/x-xpinstall",
        "application/x-chrome-extension",
        "application/x-sh",
        "application/x-msdos-windows",
    }
)
_AUDIO_PLAYLIST_TYPES = frozenset(
    {
        "audio/x-mpegurl",
        "audio/mpegurl",
        "audio/x-scpls",
        "application/pls+xml",
    }
)
_TORRENT_TYPES = frozenset({"application/x-bittorrent"})
_ANNOUNCE = re.compile(r"(^|/)(announce|scrape)(\.php)?$")
_FILENAME = re.compile(r"""filename\*?\s*=\s*(?:UTF-8''|"?)([^";]+)""", re.IGNORECASE)


def detect_content(
    *,
    content_type: str | None,
    content_length: int | None,
    disposition: str | None,
    path: str,
    query: str,
    limit_bytes: int | None,
) -> frozenset[str]:
    """The content kinds a request or response shows; empty when it is ordinary.

    At request time pass `content_type=None` and `content_length=None` (the URL alone can show a
    tracker announce or a `.exe` link); at response time pass the response headers.

    What each piece of evidence shows is independent of the others, so the answer is the union
    of what the URL, the media type, the download's file names and the size each show; the
    media type's part is remembered per distinct Content-Type, since a gateway sees few.
    """
    kinds = detect_url_content(path, query)
    if content_type:
        kinds = kinds | _type_kinds(content_type)
    if disposition:
        # Every filename parameter counts: browsers save under `filename*` when both are given.
        names = [match.group(1).strip() for match in _FILENAME.finditer(disposition)]
        kinds = kinds | _name_kinds({_extension(name) for name in names})
    if limit_bytes is not None and content_length is not None and content_length > limit_bytes:
        kinds = kinds | _LARGE
    return kinds


def detect_url_content(path: str, query: str) -> frozenset[str]:
    """The content kinds the URL alone shows (a request, before any header has come back).

    Only a file name with an extension or a tracker announce can show anything, so the common
    URL costs two string searches; the engine calls this for every request.
    """
    if "." not in path[path.rfind("/") :] and "info_hash=" not in query:
        return _NONE
    kinds = _name_kinds({_extension(path.rsplit("/", 1)[-1])})
    return kinds | _TORRENT if _is_announce(path, query) else kinds


@functools.lru_cache(maxsize=1024)
def _type_kinds(content_type: str) -> frozenset[str]:
    """What a Content-Type header shows by itself (parameters and case ignored)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    kinds: set[str] = set()
    if mime.startswith("audio/") or mime in _AUDIO_PLAYLIST_TYPES:
        kinds.add("audio-stream")
    if mime in _TORRENT_TYPES:
        kinds.add("bittorrent")
    if mime in _EXECUTABLE_TYPES:
        kinds.add("executable")
    return frozenset(kinds)


def _name_kinds(extensions: set[str]) -> frozenset[str]:
    """What the file extensions a transfer is saved under show."""
    if "torrent" in extensions:
        return _TORRENT | _EXECUTABLE if extensions & _EXECUTABLE_EXTENSIONS else _TORRENT
    return _EXECUTABLE if extensions & _EXECUTABLE_EXTENSIONS else _NONE


_NONE: frozenset[str] = frozenset()
_TORRENT = frozenset({"bittorrent"})
_EXECUTABLE = frozenset({"executable"})
_LARGE = frozenset({"large-transfer"})


def _extension(name: str) -> str:
    _stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot else ""


def _is_announce(path: str, query: str) -> bool:
    """A BitTorrent tracker request: `/announce?info_hash=...&peer_id=...`."""
    return "info_hash=" in query and bool(_ANNOUNCE.search(path.rstrip("/")))


def is_icy_response(status_line_reason: str, headers: dict[str, str]) -> bool:
    """SHOUTcast/Icecast servers answer with `icy-*` headers (or an `ICY 200 OK` status)."""
    return status_line_reason.upper().startswith("ICY") or any(
        name.lower().startswith("icy-") for name in headers
    )
