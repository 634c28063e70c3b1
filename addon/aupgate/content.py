"""What a transfer is, when the domain cannot tell: radio and audio, torrents, software, bulk.

MoDOT 9.B (streaming radio), 9.D (large transfers), 9.F (peer-to-peer), 22 and 23 (transferring
and downloading software), and Saint Paul's shareware clause, are about what flows, not where
from: a news site serves an MP3, a CDN serves an installer, a web mail attachment is a program.
These checks look only at what a proxy sees before the body (URL, Content-Type, Content-Length,
Content-Disposition), so a decision never waits for data; they serve a request's own body (an
upload) and a response alike.

Software is recognised by what the message says it is first: an executable media type, or a
file name given by Content-Disposition (what the browser saves it as). The URL's extension
counts only when the type is missing or generic (`application/octet-stream`, `text/plain`...),
and never when the last path segment is a domain name: `/lookup/example.com` is a page about a
domain, not a `.com` program. Software packed inside an archive (a `.zip`) is not seen.

Audio is split in two. `radio-stream` is what plays without end: a SHOUTcast/Icecast (ICY)
answer, an audio playlist (`.pls`, `.m3u`, an audio `.m3u8`), or an audio body sent without a
Content-Length. Other audio, a clip of known size, is `audio-stream`.
"""

from __future__ import annotations

import functools
import re

from .hostname import looks_like_domain

CONTENT_KINDS: tuple[str, ...] = (
    "audio-stream",
    "radio-stream",
    "bittorrent",
    "executable",
    "large-transfer",
)

EXECUTABLE_EXTENSIONS: frozenset[str] = frozenset(
    {
        # Windows: programs, installers and packages, and the scripts Windows runs by itself
        "exe", "msi", "msp", "msix", "msixbundle", "appx", "appxbundle", "com", "scr", "cpl",
        "bat", "cmd", "ps1", "psm1", "vbs", "vbe", "wsf", "hta",
        # macOS
        "dmg", "pkg", "mpkg", "app",
        # Linux
        "deb", "rpm", "appimage", "run", "snap", "flatpak", "flatpakref", "sh",
        # Android, Java, browser extensions
        "apk", "xapk", "aab", "jar", "xpi", "crx",
    }
)
"""File extensions of programs, installers, packages and scripts (documented in
docs/policy-language.md, "Content rules")."""

_EXECUTABLE_TYPES = frozenset(
    {
        "application/x-msdownload",
        "application/x-msdos-program",
        "application/x-ms-installer",
        "application/x-msi",
        "application/x-ms-application",
        "application/x-ms-shortcut",
        "application/vnd.microsoft.portable-executable",
        "application/x-dosexec",
        "application/x-executable",
        "application/x-elf",
        "application/x-mach-binary",
        "application/x-apple-diskimage",
        "application/vnd.apple.installer+xml",
        "application/x-newton-compatible-pkg",
        "application/vnd.debian.binary-package",
        "application/x-debian-package",
        "application/x-rpm",
        "application/x-redhat-package-manager",
        "application/vnd.appimage",
        "application/x-iso9660-appimage",
        "application/vnd.android.package-archive",
        "application/java-archive",
        "application/x-java-archive",
        "application/x-xpinstall",
        "application/x-chrome-extension",
        "application/x-sh",
        "application/x-shellscript",
        "text/x-shellscript",
        "application/x-bat",
        "application/x-powershell",
        "application/x-msdos-windows",
        "text/vbscript",
    }
)
GENERIC_TYPES: frozenset[str] = frozenset(
    {
        "",
        "application/octet-stream",
        "binary/octet-stream",
        "application/binary",
        "application/x-binary",
        "application/unknown",
        "application/download",
        "application/x-download",
        "application/force-download",
        "application/x-unknown-content-type",
        "text/plain",
    }
)
"""Media types that say nothing about what a file is: a server that does not know (or hides) the
type sends one of these, so the file name's extension is the evidence."""

_AUDIO_PLAYLIST_TYPES = frozenset(
    {
        "audio/x-mpegurl",
        "audio/mpegurl",
        "audio/x-scpls",
        "application/pls+xml",
    }
)
_AUDIO_PLAYLIST_EXTENSIONS = frozenset({"pls", "m3u"})
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
    has_body: bool = True,
    icy: bool = False,
) -> frozenset[str]:
    """The content kinds a response (or a request's own body) shows; empty when it is ordinary.

    `content_length` is None when the message does not state it; `has_body` is False for an
    answer that has no body whatever its headers say (HEAD, 204, 304); `icy` is a SHOUTcast or
    Icecast answer (`is_icy_response`).
    """
    mime = _mime(content_type)
    kinds = detect_url_content(path, query)
    names = _disposition_names(disposition)
    extensions = {_extension(name) for name in names}
    if mime in GENERIC_TYPES and not names:
        extensions.add(url_extension(path))
    kinds = kinds | _type_kinds(mime) | _name_kinds(frozenset(extensions))
    if "audio-stream" in kinds and (icy or (content_length is None and has_body)):
        kinds = (kinds - _AUDIO) | _RADIO  # plays without end: radio, not a clip
    elif icy:
        kinds = kinds | _RADIO
    if limit_bytes is not None and content_length is not None and content_length > limit_bytes:
        kinds = kinds | _LARGE
    return kinds


def detect_url_content(path: str, query: str) -> frozenset[str]:
    """The content kinds the URL alone shows, before any header: a BitTorrent tracker announce
    or a `.torrent` link. (A program's extension waits for the media type: a `.exe` address may
    answer with a page about the program.)

    Only a file name with an extension or a tracker announce can show anything, so the common
    URL costs two string searches; the engine calls this for every request.
    """
    if "." not in path[path.rfind("/") :] and "info_hash=" not in query:
        return _NONE
    if url_extension(path) == "torrent" or _is_announce(path, query):
        return _TORRENT
    return _NONE


def url_extension(path: str) -> str:
    """The extension of the URL's last path segment, "" when that segment is a domain name
    (`/lookup/example.com`, `/whois/www.example.org`): such a name is not a file name."""
    segment = path.rsplit("/", 1)[-1]
    extension = _extension(segment)
    if extension and looks_like_domain(segment):
        return ""
    return extension


@functools.lru_cache(maxsize=1024)
def _mime(content_type: str | None) -> str:
    """The media type without parameters, lower-case; "" when there is none."""
    return (content_type or "").split(";", 1)[0].strip().lower()


@functools.lru_cache(maxsize=1024)
def _type_kinds(mime: str) -> frozenset[str]:
    """What a media type shows by itself (a gateway sees few distinct ones: remembered)."""
    kinds: set[str] = set()
    if mime in _AUDIO_PLAYLIST_TYPES:
        kinds.add("radio-stream")
    elif mime.startswith("audio/"):
        kinds.add("audio-stream")
    if mime in _TORRENT_TYPES:
        kinds.add("bittorrent")
    if mime in _EXECUTABLE_TYPES:
        kinds.add("executable")
    return frozenset(kinds)


@functools.lru_cache(maxsize=1024)
def _name_kinds(extensions: frozenset[str]) -> frozenset[str]:
    """What the file names a transfer is saved under show."""
    kinds: set[str] = set()
    if "torrent" in extensions:
        kinds.add("bittorrent")
    if extensions & EXECUTABLE_EXTENSIONS:
        kinds.add("executable")
    if extensions & _AUDIO_PLAYLIST_EXTENSIONS:
        kinds.add("radio-stream")
    return frozenset(kinds)


def _disposition_names(disposition: str | None) -> list[str]:
    """Every filename parameter counts: browsers save under `filename*` when both are given."""
    if not disposition:
        return []
    return [match.group(1).strip() for match in _FILENAME.finditer(disposition)]


def is_executable_name(name: str, content_type: str | None) -> bool:
    """Whether a file sent under `name` with `content_type` is a program (an upload's part)."""
    mime = _mime(content_type)
    if mime in _EXECUTABLE_TYPES:
        return True
    return _extension(name) in EXECUTABLE_EXTENSIONS


_NONE: frozenset[str] = frozenset()
_TORRENT = frozenset({"bittorrent"})
_AUDIO = frozenset({"audio-stream"})
_RADIO = frozenset({"radio-stream"})
_LARGE = frozenset({"large-transfer"})


def _extension(name: str) -> str:
    """The extension a file is saved with: Windows drops trailing dots and spaces, so
    `setup.exe.` and `setup.exe ` are `setup.exe`."""
    _stem, dot, ext = name.strip().rstrip(". ").rpartition(".")
    return ext.strip().lower() if dot else ""


def _is_announce(path: str, query: str) -> bool:
    """A BitTorrent tracker request: `/announce?info_hash=...&peer_id=...`."""
    return "info_hash=" in query and bool(_ANNOUNCE.search(path.rstrip("/")))


def is_icy_response(status_line_reason: str, headers: dict[str, str]) -> bool:
    """SHOUTcast/Icecast servers answer with `icy-*` headers (or an `ICY 200 OK` status)."""
    return status_line_reason.upper().startswith("ICY") or any(
        name.lower().startswith("icy-") for name in headers
    )
