"""Reading the help desk's logo file into a `data:` URI the pages can carry.

Pages are answered by the gateway for any host, so a logo cannot be a path on the gateway; it is
embedded. Only raster images whose bytes say what they are (PNG, JPEG, GIF, WebP) and at most
`MAX_LOGO_BYTES` are accepted: SVG can carry script, and a large image would be sent with every
block page.
"""

from __future__ import annotations

import base64
from pathlib import Path

__all__ = ["MAX_LOGO_BYTES", "image_type", "logo_data_uri"]

MAX_LOGO_BYTES = 64 * 1024

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
             ".gif": "image/gif", ".webp": "image/webp"}


def image_type(data: bytes) -> str | None:
    """The media type the bytes themselves show, or None for anything else (SVG included)."""
    for magic, media in _MAGIC:
        if data.startswith(magic):
            return media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def logo_data_uri(name: str, base: Path) -> str:
    """The logo file `name` (relative to `base`, the policy's folder) as a data: URI.

    Raises ValueError saying what is wrong: missing, too large, not an image of its kind.
    """
    path = base / name
    suffix = path.suffix.lower()
    if suffix == ".svg":
        raise ValueError(f"'{name}': SVG is not accepted (it can carry script); use PNG")
    if suffix not in _SUFFIXES:
        raise ValueError(f"'{name}': a logo is a .png, .jpg, .gif or .webp file")
    try:
        size = path.stat().st_size
        if size > MAX_LOGO_BYTES:
            raise ValueError(f"'{name}' is {size} bytes; a logo is at most {MAX_LOGO_BYTES} "
                             "bytes (it is sent with every page)")
        data = path.read_bytes()[: MAX_LOGO_BYTES + 1]
    except OSError as exc:
        raise ValueError(f"cannot read the logo '{path}': {exc.strerror or exc}") from exc
    if len(data) > MAX_LOGO_BYTES:
        raise ValueError(f"'{name}' is over {MAX_LOGO_BYTES} bytes (it is sent with every page)")
    media = image_type(data)
    if media is None or media != _SUFFIXES[suffix]:
        raise ValueError(f"'{name}' is not a {suffix[1:].upper()} image (its first bytes say "
                         f"{media or 'something else'})")
    return f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"
