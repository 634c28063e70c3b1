"""What a request sends, from its headers (`request_body`), and the programs among a form
upload's files as it streams (`PartScanner`), attacked with the spellings a sender might use to
slip a program past them."""

from __future__ import annotations

import pytest

from aupgate.uploads import (
    UNREADABLE_HEAD,
    PartScanner,
    multipart_boundary,
    request_body,
)

MIB = 1024 * 1024


def body(method: str = "POST", length: str | None = "10", te: str | None = None,
         h2: bool = False, ctype: str | None = None, disposition: str | None = None,
         path: str = "/upload", limit: int | None = MIB):
    return request_body(method=method, content_length=length, transfer_encoding=te,
                        multiplexed=h2, content_type=ctype, disposition=disposition, path=path,
                        query="", limit_bytes=limit)


@pytest.mark.parametrize(
    ("kwargs", "sends", "length", "kinds"),
    [
        ({}, True, 10, set()),
        ({"method": "GET", "length": None}, False, 0, set()),
        ({"length": "0"}, False, 0, set()),
        # a body on a GET is still a body: the direction comes from the body, not the method
        ({"method": "GET", "length": "5"}, True, 5, set()),
        ({"length": None, "te": "chunked"}, True, None, set()),
        ({"length": "10", "te": "gzip, CHUNKED"}, True, None, set()),  # chunked wins
        ({"length": None, "h2": True}, True, None, set()),  # HTTP/2 states no length
        ({"method": "GET", "length": None, "h2": True}, False, 0, set()),
        ({"length": " 12x"}, True, None, set()),  # malformed: counted as it streams
        ({"length": str(5 * MIB)}, True, 5 * MIB, {"large-transfer"}),
        ({"length": str(5 * MIB), "limit": None}, True, 5 * MIB, set()),
        ({"ctype": "application/x-msdownload"}, True, 10, {"executable"}),
        ({"ctype": "application/octet-stream",
          "disposition": 'attachment; filename="SETUP.EXE."'}, True, 10, {"executable"}),
        ({"ctype": "application/octet-stream", "path": "/files/tool.msi"}, True, 10,
         {"executable"}),
        # audio sent out is not radio played
        ({"ctype": "audio/mpeg", "length": None, "te": "chunked"}, True, None, set()),
    ],
)
def test_request_body(kwargs: dict[str, object], sends: bool, length: int | None,
                      kinds: set[str]) -> None:
    got = body(**kwargs)  # type: ignore[arg-type]
    assert (got.sends_body, got.length, set(got.kinds)) == (sends, length, kinds)
    assert got.counted == (sends and length is None)


@pytest.mark.parametrize(
    ("ctype", "boundary"),
    [
        ("multipart/form-data; boundary=XyZ", b"XyZ"),
        ('Multipart/Form-Data; BOUNDARY="a b;c"', b"a b;c"),
        ("multipart/mixed;boundary = q1", b"q1"),
        ("multipart/form-data", None),
        ("application/x-www-form-urlencoded; boundary=XyZ", None),
        (None, None),
    ],
)
def test_multipart_boundary(ctype: str | None, boundary: bytes | None) -> None:
    assert multipart_boundary(ctype) == boundary


def part(name: str, ctype: str = "image/png", eol: str = "\r\n", pad: int = 0) -> bytes:
    padding = f"X-Pad: {'p' * pad}{eol}" if pad else ""
    return (f"--XyZ{eol}{padding}Content-Disposition: form-data; name=\"f\"; filename={name}{eol}"
            f"Content-Type: {ctype}{eol}{eol}MZ data{eol}").encode()


@pytest.mark.parametrize(
    ("head", "found"),
    [
        (part('"setup.exe"'), ["setup.exe"]),
        (part('"SETUP.EXE"'), ["SETUP.EXE"]),
        (part('"setup.exe. "'), ["setup.exe."]),  # Windows drops trailing dots and spaces
        (part("setup.exe"), ["setup.exe"]),  # unquoted
        (part("\"x.png\"; filename*=UTF-8''a.msi"), ["a.msi"]),
        (part("\"x.png\"; filename*=UTF-8''setup%2Eexe"), ["setup%2Eexe"]),  # RFC 5987
        (part('"x.bin"', ctype="application/x-msdownload"), ["x.bin"]),  # the part's type
        (part('"install.ps1"', eol="\n"), ["install.ps1"]),  # bare LF, as lenient servers read
        (part('"report.pdf"', ctype="application/pdf"), []),
        (part('"photo.png"'), []),
    ],
)
def test_programs_in_a_form(head: bytes, found: list[str]) -> None:
    data = b'--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nreport\r\n' + head
    data += b"--XyZ--\r\n"
    assert PartScanner(b"XyZ").feed(data) == found
    # the same body a byte at a time: heads and delimiters cut anywhere by the chunking
    scanner = PartScanner(b"XyZ")
    assert [name for i in range(len(data)) for name in scanner.feed(data[i:i + 1])] == found


def test_a_file_that_contains_the_boundary_text_is_not_a_head() -> None:
    """File data mentioning a program after the boundary text, without a head's blank line,
    is not reported; the scanner keeps a bounded tail only."""
    scanner = PartScanner(b"XyZ")
    assert scanner.feed(part('"a.png"') + b"x" * 100000) == []
    assert len(scanner._tail) <= 16 * 1024 + 8  # the memory bound itself


def test_a_head_padded_past_what_is_read_counts_as_a_program() -> None:
    """A name hidden behind 20 KiB of padding: read when the whole head arrives at once, and
    reported as unreadable (fail closed) when it streams in before its end is seen."""
    data = part('"setup.exe"', pad=20000) + b"--XyZ--\r\n"
    assert PartScanner(b"XyZ").feed(data) == ["setup.exe"]
    scanner = PartScanner(b"XyZ")
    found = [name for i in range(0, len(data), 1000) for name in scanner.feed(data[i:i + 1000])]
    assert found == [UNREADABLE_HEAD]
