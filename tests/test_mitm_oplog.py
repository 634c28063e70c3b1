"""The operational log of `aupgate run`: nothing secret reaches it, whatever a library puts in a
message; under systemd each line carries its priority and the worker's label."""

from __future__ import annotations

import io
import logging
import os
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # mitmproxy's ldap3 import, see master
    from aupgate.mitm.oplog import redact, stderr_handler


@pytest.mark.parametrize(("text", "gone", "kept"), [
    ("GET http://www.example.org/a?token=s3cret&x=1 failed", "s3cret", "http://www.example.org/a?"),
    ("https://bob:hunter2@intranet.example/path refused", "hunter2", "intranet.example/path"),
    ("headers: {'Authorization': 'Bearer abc.def'}", "abc.def", "Authorization"),
    ("Proxy-Authorization: Basic dXNlcjpwYXNz\r\nHost: x", "dXNlcjpwYXNz", "Host: x"),
    ("cookie=sid=abcdef; other", "abcdef", "cookie"),
    ("Set-Cookie: session=zzz", "zzz", "Set-Cookie"),
    ("ws://chat.example/socket?key=k1 closed", "k1", "ws://chat.example/socket"),
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
