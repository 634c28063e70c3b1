"""Operational logging for `aupgate run`: plain lines on standard error, no flows, no secrets.

mitmdump prints every flow (with its query string) and every connection to standard output.
A gateway's operational log is read by administrators and shipped to the journal, so here:

- lines go to standard error (standard output is left to `--audit-stdout` JSON lines);
- no flow dump unless asked for (`--set flow_detail=1..4` loads mitmproxy's dumper, as in
  mitmdump; see `aupgate.mitm.master`);
- mitmproxy's per-connection chatter ("client connect", "server connect") only at `debug`;
- `termlog_verbosity` (mitmdump's own option name) sets the level: error, warn, info, alert, debug;
- every line goes through `redact`: raw bytes off the wire (mitmproxy quotes them as `b'...'`
  when a head is malformed or cut short), query strings (after a URL or a bare path),
  user:password in URLs and the values of Authorization, Proxy-Authorization, Cookie and
  Set-Cookie never reach the log, whatever a library puts in an exception message;
- under systemd (`JOURNAL_STREAM` names our standard error) each line carries its syslog
  priority (`<4>`) and no timestamp, which the journal adds; elsewhere a timestamp leads;
- a worker's lines say which worker (`w0`, `w1`, ...).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import TextIO

from mitmproxy import ctx
from mitmproxy import log as mitmlog
from mitmproxy.addonmanager import Loader
from mitmproxy.utils import human

LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
          "alert": mitmlog.ALERT, "debug": logging.DEBUG}
CHATTY = ("mitmproxy.proxy.server",)
"""Loggers that write a line per connection at info; shown only at debug."""
LISTENING = "mitmproxy.proxy.mode_servers"
"""The logger of mitmproxy's "HTTP(S) proxy listening at ..." line, shown even with --quiet."""
_MODE_HINT = re.compile(r"Try specifying a different port by using `--mode [a-z0-9_]+@(\d+)`\.")

_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#'\"<>]*)\?[^\s#'\"<>]*", re.IGNORECASE)
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^\s/@'\"<>]+@", re.IGNORECASE)
_SECRET_HEADER = re.compile(  # no \b: in a repr "\r\nCookie" follows the letter n
    r"((?:proxy-)?authorization|(?:set-)?cookie)(['\"]?\s*[:=,]\s*['\"]?)[^\r\n'\"]+",
    re.IGNORECASE)
_BYTES = re.compile(r"""\bb(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
_BYTES_OPEN = re.compile(r"""\bb['"](?!<)[^\n]*""")  # a repr cut short, with no closing quote
_PATH_QUERY = re.compile(r"""((?:^|[\s'"(=])/[^\s?#'"<>]*)\?[^\s#'"<>]*""")
_SYSLOG = {logging.DEBUG: 7, logging.INFO: 6, mitmlog.ALERT: 5, logging.WARNING: 4,
           logging.ERROR: 3, logging.CRITICAL: 2}


def reword(text: str) -> str:
    """mitmproxy's hints in aupgate's terms (`--mode regular@PORT` is not an aupgate option)."""
    if "--mode" in text:
        text = _MODE_HINT.sub(r"Choose another port (aupgate run --listen-port \1), or stop what "
                              r"is using this one.", text)
    return text


def redact(text: str) -> str:
    """The text without raw client bytes, query strings, URL credentials or credential header
    values."""
    if "b'" in text or 'b"' in text:  # a repr of bytes off the wire (a cut or malformed head)
        text = _BYTES.sub(lambda m: f"b'<{len(m.group(0)) - 3} bytes removed>'", text)
        text = _BYTES_OPEN.sub("b'<bytes removed>", text)
    if "?" in text:
        text = _PATH_QUERY.sub(r"\1?<query removed>", text)
    if "://" in text:
        text = _QUERY.sub(r"\1?<query removed>", text)
        text = _USERINFO.sub(r"\1<credentials removed>@", text)
    if "ookie" in text or "uthorization" in text or "OOKIE" in text or "UTHORIZATION" in text:
        text = _SECRET_HEADER.sub(r"\1\2<removed>", text)
    return text


def under_journald(stream: TextIO) -> bool:
    """Whether `stream` is the journal's stream socket (systemd sets JOURNAL_STREAM=dev:ino)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


class _Formatter(logging.Formatter):
    def __init__(self, *, journal: bool, label: str) -> None:
        super().__init__(datefmt="%Y-%m-%d %H:%M:%S")
        self.journal = journal
        self.label = f"{label} " if label else ""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        client = getattr(record, "client", None)
        if client:
            message = f"[{human.format_address(client)}] {message}"
        message = redact(reword(message))
        if self.journal:
            priority = _SYSLOG.get(record.levelno, 6)
            return "\n".join(f"<{priority}>{self.label}{line}" for line in message.splitlines())
        level = record.levelname.lower()
        return f"{self.formatTime(record, self.datefmt)} {level:<7} {self.label}{message}"


class _Handler(logging.Handler):
    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # standard error is gone: nothing left to tell
            pass


def stderr_handler(label: str = "", stream: TextIO | None = None) -> logging.Handler:
    """A handler writing redacted lines to standard error, for the journal or a terminal."""
    out = stream or sys.stderr
    handler = _Handler(out)
    handler.setFormatter(_Formatter(journal=under_journald(out), label=label))
    return handler


def _listening_line_too(record: logging.LogRecord) -> bool:
    """Below the chosen level only mitmproxy's "listening at" line gets through (see set_level)."""
    floor: int = getattr(record, "_floor", logging.NOTSET)
    return record.levelno >= floor or record.name == LISTENING


class _Floor(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        record._floor = self.level  # read by _listening_line_too
        return True


def set_level(handler: logging.Handler, verbosity: str) -> None:
    """Apply a `termlog_verbosity` to the handler and the loggers feeding it.

    Whatever the level, the line saying where the proxy listens is shown: an administrator who
    starts it with --quiet must still see that it is serving, and where.
    """
    level = LEVELS[verbosity]
    for old in [f for f in handler.filters if isinstance(f, _Floor)]:
        handler.removeFilter(old)
    handler.addFilter(_Floor(level))
    handler.filters.sort(key=lambda f: not isinstance(f, _Floor))
    handler.setLevel(min(level, logging.INFO))
    logging.getLogger(LISTENING).setLevel(logging.INFO)
    # Below the level nothing is even formatted: mitmproxy logs a great deal at debug.
    logging.getLogger().setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.NOTSET if level <= logging.DEBUG
                                         else max(level, logging.WARNING))


class OperationalLog:
    """The addon that owns `aupgate run`'s log handler and its level option."""

    def __init__(self, *, worker: int | None = None, quiet: bool = False,
                 stream: TextIO | None = None) -> None:
        self.handler = stderr_handler(f"w{worker}" if worker is not None else "", stream)
        self.default_level = "warn" if quiet else "info"
        set_level(self.handler, self.default_level)
        self.handler.addFilter(_listening_line_too)
        logging.getLogger().addHandler(self.handler)

    def load(self, loader: Loader) -> None:
        loader.add_option("termlog_verbosity", str, self.default_level,
                          "Log verbosity on standard error.", choices=list(LEVELS))

    def configure(self, updated: set[str]) -> None:
        if "termlog_verbosity" in updated:
            set_level(self.handler, ctx.options.termlog_verbosity)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self.handler)
