"""The operational log of `aupgate run`: nothing secret reaches it, whatever a library puts in a
message; under systemd each line carries its priority and the worker's label."""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # mitmproxy's ldap3 import, see master
    from aupgate.mitm.oplog import (
        LISTENING,
        OperationalLog,
        redact,
        reword,
        set_level,
        stderr_handler,
    )


@pytest.mark.parametrize(("text", "gone", "kept"), [
    ("GET http://www.example.org/a?token=s3cret&x=1 failed", "s3cret", "http://www.example.org/a?"),
    ("https://bob:hunter2@intranet.example/path refused", "hunter2", "intranet.example/path"),
    ("headers: {'Authorization': 'Bearer abc.def'}", "abc.def", "Authorization"),
    ("Proxy-Authorization: Basic dXNlcjpwYXNz\r\nHost: x", "dXNlcjpwYXNz", "Host: x"),
    ("cookie=sid=abcdef; other", "abcdef", "cookie"),
    ("Set-Cookie: session=zzz", "zzz", "Set-Cookie"),
    ("ws://chat.example/socket?key=k1 closed", "k1", "ws://chat.example/socket"),
    # raw bytes mitmproxy quotes from a malformed or cut-short head, whatever they hold
    ("Client closed connection before completing request headers: b'GET /y HTTP/1.1\\r\\n"
     "X-Api: zz9\\r\\n'", "zz9", "Client closed connection"),
    ("HTTP/2 protocol error: Illegal character in header value: b'v\\r\\nx: q77'", "q77",
     "bytes removed"),
    ("Bad HTTP request line: b'GET /x?token=t55 HTTP/9.9", "t55", "Bad HTTP request line"),
    # a bare path's query, and a credential header inside a repr ("\r\nAuthorization")
    ("GET /private?token=p44 HTTP/1.1 failed", "p44", "GET /private?"),
    ("headers\\r\\nAuthorization: Basic b66", "b66", "Authorization"),
])
def test_redact(text: str, gone: str, kept: str) -> None:
    out = redact(text)
    assert gone not in out and kept in out, out


def test_redact_leaves_ordinary_lines_alone() -> None:
    line = "HTTP(S) proxy listening at 10.30.0.1:8080."
    assert redact(line) == line


def record(message: str, level: int = logging.WARNING, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("mitmproxy.proxy.server", level, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_plain_format_with_worker_label_and_client() -> None:
    handler = stderr_handler("w1", io.StringIO())
    line = handler.format(record("GET http://x.example/?q=secret", client=("10.30.0.2", 5000)))
    assert line.endswith("warning w1 [10.30.0.2:5000] GET http://x.example/?<query removed>")


def test_journal_format_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd names the stream in JOURNAL_STREAM: priorities as `<N>`, no timestamp."""
    with open(os.devnull, "w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        handler = stderr_handler("w0", stream)
        assert handler.format(record("first\nsecond", logging.ERROR)) == "<3>w0 first\n<3>w0 second"
        assert handler.format(record("fine", logging.INFO)) == "<6>w0 fine"


# --------------------------------------------------------------------------- --quiet, reword


@pytest.fixture
def quiet_log() -> Iterator[tuple[OperationalLog, io.StringIO]]:
    """`aupgate run --quiet`'s log on a string; the root logger as it was afterwards."""
    root = logging.getLogger()
    saved = (root.level, logging.getLogger(LISTENING).level)
    stream = io.StringIO()
    oplog = OperationalLog(quiet=True, stream=stream)
    try:
        yield oplog, stream
    finally:
        oplog.uninstall()
        root.setLevel(saved[0])
        logging.getLogger(LISTENING).setLevel(saved[1])


def test_quiet_keeps_warnings_errors_and_where_it_listens(
        quiet_log: tuple[OperationalLog, io.StringIO]) -> None:
    """Issue 17: --quiet hid the frozen-clock warning and the listening line."""
    _, stream = quiet_log
    logging.getLogger("aupgate.mitm.addon").warning("!!! aupgate: POLICY CLOCK FROZEN")
    logging.getLogger("aupgate.mitm.lifecycle").info("aupgate: 3 agencies loaded")
    logging.getLogger(LISTENING).info("HTTP(S) proxy listening at 127.0.0.1:8080.")
    logging.getLogger("mitmproxy.proxy.server").info("client connect")
    logging.getLogger("aupgate.mitm.addon").error("aupgate: engine error")
    lines = stream.getvalue().splitlines()
    assert [line.split(None, 2)[2] for line in lines] == [
        "warning !!! aupgate: POLICY CLOCK FROZEN",
        "info    HTTP(S) proxy listening at 127.0.0.1:8080.",
        "error   aupgate: engine error",
    ]


def test_quiet_can_still_be_raised_to_info() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.level
    oplog = OperationalLog(quiet=True, stream=stream)
    try:
        set_level(oplog.handler, "info")
        logging.getLogger("aupgate.mitm.lifecycle").info("aupgate: 3 agencies loaded")
        set_level(oplog.handler, "error")
        logging.getLogger("aupgate.mitm.addon").warning("hidden at error")
        logging.getLogger(LISTENING).info("HTTP(S) proxy listening at 127.0.0.1:8080.")
    finally:
        oplog.uninstall()
        root.setLevel(saved)
    text = stream.getvalue()
    assert "3 agencies loaded" in text and "hidden at error" not in text
    assert "listening at 127.0.0.1:8080" in text  # even at error


def test_a_busy_port_is_told_in_aupgates_terms() -> None:
    said = ("HTTP(S) proxy failed to listen on 127.0.0.1:8080 with [Errno 98] address already in "
            "use\nTry specifying a different port by using `--mode regular@8082`.")
    reworded = reword(said)
    assert "--mode" not in reworded
    assert reworded.endswith("Choose another port (aupgate run --listen-port 8082), or stop what "
                             "is using this one.")
    assert reword("nothing to change") == "nothing to change"
    handler = stderr_handler("", io.StringIO())
    assert "aupgate run --listen-port 8082" in handler.format(record(said, logging.ERROR))
