"""What a request sends: whether it carries a body, what that body shows, and the files inside a
form upload as it streams.

The direction of a request (read, upload, publish: `engine.direction_of`) and the content kinds of
its own body are decided at `requestheaders`, before a byte of the body is read, from the method,
the framing headers, Content-Type, Content-Length and Content-Disposition. A body whose length is
not stated is counted as it streams, and a form upload (`multipart/form-data`) is read part head
by part head as it streams, so a program sent out (MoDOT 22) is seen even inside a browser's
file-upload form. Only part heads are parsed, with a bounded look-behind: the data itself is
never kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from .content import detect_content, is_executable_name

__all__ = ["UNREADABLE_HEAD", "PartScanner", "RequestBody", "multipart_boundary", "request_body"]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose requests carry a body even when HTTP/2 states no length."""
_UPLOAD_KINDS = frozenset({"executable", "bittorrent", "large-transfer"})
"""What a request body can show: audio sent out is not radio played."""
_MAX_PART_HEAD = 16 * 1024
UNREADABLE_HEAD = "(a form part head over 16 KiB, unreadable)"
_BOUNDARY = re.compile(r"""boundary\s*=\s*(?:"([^"]{1,200})"|([^\s;,]{1,200}))""", re.IGNORECASE)
_PART_NAME = re.compile(rb"""filename\*?\s*=\s*(?:UTF-8''|"?)([^";\r\n]+)""", re.IGNORECASE)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
"""The end of a part head: an empty line, CRLF or a bare LF (which many servers accept)."""
_PART_TYPE = re.compile(rb"^content-type\s*:\s*([^\r\n;]+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RequestBody:
    """What the request's headers say about its body."""

    sends_body: bool
    length: int | None  # the stated length; None when it is not stated (chunked, HTTP/2)
    kinds: frozenset[str]  # content kinds the body shows by its headers (and the URL)

    @property
    def counted(self) -> bool:
        """The body must be counted as it streams: its length is not stated."""
        return self.sends_body and self.length is None


NO_BODY = RequestBody(False, 0, frozenset())


def request_body(
    *,
    method: str,
    content_length: str | None,
    transfer_encoding: str | None,
    multiplexed: bool,
    content_type: str | None,
    disposition: str | None,
    path: str,
    query: str,
    limit_bytes: int | None,
) -> RequestBody:
    """Whether a request sends a body, and what its headers show.

    HTTP/1 frames a body with Content-Length or chunked Transfer-Encoding; HTTP/2 and 3 do not
    need either, so there a body-carrying method without a stated length is counted.
    """
    length: int | None
    if transfer_encoding and "chunked" in transfer_encoding.lower():
        length = None
    elif content_length is not None:
        text = content_length.strip()
        if not text.isdigit():
            length = None  # malformed: mitmproxy refuses it; count whatever does come
        else:
            length = int(text)
            if length == 0:
                return NO_BODY
    elif multiplexed and method.upper() in BODY_METHODS:
        length = None
    else:
        return NO_BODY
    kinds = detect_content(content_type=content_type, content_length=length,
                           disposition=disposition, path=path, query=query,
                           limit_bytes=limit_bytes) & _UPLOAD_KINDS
    return RequestBody(True, length, kinds)


def multipart_boundary(content_type: str | None) -> bytes | None:
    """The boundary of a `multipart/*` body, or None."""
    if not content_type or not content_type.strip().lower().startswith("multipart/"):
        return None
    found = _BOUNDARY.search(content_type)
    if not found:
        return None
    return (found.group(1) or found.group(2)).encode("latin-1", "replace")


class PartScanner:
    """Reads the head of each part of a multipart body fed to it chunk by chunk, and reports the
    programs among the files (name and type as the form sent them).

    Keeps at most one part head (16 KiB) between chunks; a longer head cannot be read, and is
    reported as a program (`UNREADABLE_HEAD`): fail closed.
    """

    __slots__ = ("_delimiter", "_tail")

    def __init__(self, boundary: bytes) -> None:
        self._delimiter = b"--" + boundary
        self._tail = b""

    def feed(self, chunk: bytes) -> list[str]:
        """The file names of the program parts whose heads complete in this chunk."""
        buf = self._tail + chunk
        found: list[str] = []
        start = 0
        while True:
            at = buf.find(self._delimiter, start)
            if at < 0:
                # the delimiter may be cut by the chunk boundary: keep enough to see it whole
                self._tail = buf[max(start, len(buf) - len(self._delimiter)):]
                return found
            head = at + len(self._delimiter)
            blank = _BLANK_LINE.search(buf, head)  # CRLF, or bare LF as lenient servers read it
            if blank is None:
                if len(buf) - at > _MAX_PART_HEAD:
                    # No browser writes such a head; padding one out to hide a file name past
                    # what is read must not get the file through: it counts as a program.
                    found.append(UNREADABLE_HEAD)
                    start = head
                    continue
                self._tail = buf[at:]
                return found
            name = _program_in(buf[head:blank.start()])
            if name is not None:
                found.append(name)
            start = blank.end()


def _program_in(head: bytes) -> str | None:
    names = [m.group(1).strip().decode("utf-8", "replace") for m in _PART_NAME.finditer(head)]
    if not names:
        return None
    typed = _PART_TYPE.search(head)
    content_type = typed.group(1).strip().decode("latin-1") if typed else None
    for name in names:
        # `filename*` is percent-encoded (RFC 5987): `setup%2Eexe` is saved as setup.exe
        if is_executable_name(name, content_type) or is_executable_name(unquote(name),
                                                                         content_type):
            return name
    return None
