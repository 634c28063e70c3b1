"""Opening the files aupgate reads line by line, gzipped or not.

Category lists and audit logs are both kept gzipped by their publishers and by logrotate. A file is
read as gzip when its name says so (`.gz`) or its first two bytes do (the gzip magic): a rotated
log renamed by hand, or a list saved without its `.gz`, reads the same, and a `.gz` that is not
gzip is an error (a list cut short must stop a load, not be read as text).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO

__all__ = ["GZIP_MAGIC", "is_gzip", "open_lines"]

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic."""
    with path.open("rb") as probe:
        return probe.read(2) == GZIP_MAGIC


def open_lines(path: Path) -> BinaryIO:
    """A binary file to iterate by lines, decompressed when the file is gzip.

    Raises:
        OSError: the file cannot be opened (reading a damaged gzip raises OSError or EOFError).
    """
    if path.name.endswith(".gz") or is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")
