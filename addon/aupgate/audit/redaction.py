"""What never reaches the audit trail, a page or the proxy's log: credentials and secret values.

Redaction happens at the one place events are written (`log.AuditLog`), whoever records them,
by one rule set (docs/audit-log.md, "Redaction"; tests/test_redaction_rules.py holds it as a
table): userinfo never reaches an event (`Url` drops it; a raw URL passed by mistake is
scrubbed); query parameters, split on `&` and `;`, and path parameters (`;jsessionid=...`) whose
names look secret (`password`, `pw`, `token`, `sig`...) have their values replaced; a header
passed by mistake (Cookie, Authorization) is replaced whole. The trail can then be shared with a
supervisor without leaking credentials.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "redact_fields", "redact_path", "redact_query", "redact_url", "scrub_text",
           "scrub_url"]

REDACTED = "REDACTED"

_SECRET_NAME = re.compile(
    r"pass|pwd|pw|token|key|secret|sig|code|auth|session|sess|sid|cred|jwt|otp|ticket|nonce"
    r"|saml",
    re.IGNORECASE,
)
"""A parameter whose name contains one of these (after percent-decoding, any case) is secret:
`password`, `pw`, `access_token`, `api_key`, `X-Amz-Signature`, `code`, `jsessionid`,
`SAMLResponse`. It errs towards redacting: `zipcode` and `monkey` are redacted too."""
_QUERY_SEPARATOR = re.compile(r"([&;])")
_PATH_PARAMETER = re.compile(r";([^;=/?#]*)=([^;/?#]*)")
_SECRET_FIELDS = frozenset({"cookie", "set-cookie", "authorization", "proxy-authorization"})
_URL_FIELDS = frozenset({"url", "path"})
# Fields audit_schema.json defines as scalars or lists of scalars, none of them a URL: they cannot
# carry a header or a URL's secrets, so the redaction pass sets them aside.
_SCALAR_FIELDS = frozenset({
    "schema_version", "time", "event", "prev", "request_id", "phase", "client", "user", "host_raw",
    "agency", "policy_digest", "method", "scheme", "host", "port", "http_version", "sni",
    "connect_host", "device", "network", "error", "categories", "all_categories", "matched",
    "rule", "clauses", "reason", "action", "step", "window", "grant", "intercept", "enforced",
    "status", "bytes", "content", "rule_continued", "clauses_continued", "work_reason",
    "continued_host", "pass_minutes", "names", "actions", "hook", "agencies", "digest",
    "categories_digest", "warnings", "errors", "entries", "part", "version", "pid", "listen",
    "policy_dir", "default_agency", "fixed_time", "on_audit_failure", "uptime_s",
    "category_entries", "lost", "since", "upstream_error", "explanation",
})  # fmt: skip
_DOCUMENTED = _SCALAR_FIELDS | _URL_FIELDS  # every name an event may have without a second look
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@]*@")


def redact_query(query: str) -> str:
    """The query with every secret-looking value replaced; names, order and separators (`&` and
    the `;` some servers also split on) are kept."""
    if not query:
        return query
    parts = []
    for item in _QUERY_SEPARATOR.split(query):
        name, eq, _value = item.partition("=")
        if eq and _SECRET_NAME.search(urllib.parse.unquote_plus(name)):
            parts.append(f"{name}={REDACTED}")
        else:
            parts.append(item)
    return "".join(parts)


def redact_path(path: str) -> str:
    """The path with secret-looking path parameters replaced (`/a;jsessionid=...`, RFC 3986
    3.3's `;name=value` in a segment); anything else in the path is kept."""
    if ";" not in path:
        return path
    return _PATH_PARAMETER.sub(_path_parameter, path)


def _path_parameter(match: re.Match[str]) -> str:
    name = match.group(1)
    if _SECRET_NAME.search(urllib.parse.unquote_plus(name)):
        return f";{name}={REDACTED}"
    return match.group(0)


def redact_url(scheme: str, host: str, port: int | None, path: str, query: str) -> str:
    """A URL fit for the audit trail and the block page: no userinfo, no secret values."""
    shown_host = f"[{host}]" if ":" in host else host
    prefix = f"{scheme}://" if scheme else ""
    suffix = f":{port}" if port is not None else ""
    q = redact_query(query)
    return f"{prefix}{shown_host}{suffix}{redact_path(path)}" + (f"?{q}" if q else "")


def scrub_url(text: str) -> str:
    """A URL or path as given, minus userinfo and with secret-looking query values redacted."""
    if "@" in text:
        text = _USERINFO.sub(r"\1", text)
    base, mark, query = text.partition("?")
    return redact_path(base) + mark + redact_query(query) if mark else redact_path(text)


_SECRET_WORDS = re.compile(
    r"\b(pass(?:word|wd|code)?|pwd|pin|token|secret|api[ _-]?key)(\s*(?:is|[:=])\s*)\S+",
    re.IGNORECASE)
_LONG_TOKEN = re.compile(r"(?<![\w/])[A-Za-z0-9+/_=.-]{24,}(?![\w/])")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")


_ADDRESS = re.compile(
    r"(?i:\b[a-z][a-z0-9+.-]*://)\S+"  # a URL with its scheme
    r"|(?<![\w.-])(?:[a-z0-9-]+\.)+[a-z]{2,24}(?:[/?#]\S*)?(?![\w.])")  # a lower-case host[/path]
"""Web addresses in the text: the page an employee asks for is what the administrator needs to
read, so these keep their words and lose only userinfo and secret query values (`scrub_url`).
A host is matched in lower case only, so a mixed-case token with dots (a JWT) is not one."""


def scrub_text(text: str) -> str:
    """Free text an employee typed (an access request's explanation), minus what looks secret:
    a value after "password:" or "token=", a long token, a card-like run of digits; in a web
    address, its userinfo and secret query values."""
    parts: list[str] = []
    last = 0
    for found in _ADDRESS.finditer(text):
        parts.append(_scrub_words(text[last:found.start()]))
        parts.append(scrub_url(found.group(0)))
        last = found.end()
    parts.append(_scrub_words(text[last:]))
    return "".join(parts)


def _scrub_words(text: str) -> str:
    text = _SECRET_WORDS.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _LONG_TOKEN.sub(lambda m: REDACTED if _looks_random(m.group(0)) else m.group(0), text)
    return _CARD.sub(REDACTED, text)


def _looks_random(word: str) -> bool:
    """A long word with digits and letters mixed (a token), not a long ordinary word or URL."""
    return (any(c.isdigit() for c in word) and any(c.isalpha() for c in word)) and "://" not in word


@functools.lru_cache(maxsize=4096)
def _is_secret_field(name: str) -> bool:
    """`Cookie`, `set_cookie`, `Proxy-Authorization`: header names however a caller spells them."""
    return name.lower().replace("_", "-") in _SECRET_FIELDS


def redact_fields(fields: dict[str, Any]) -> None:
    """Make one event's fields fit for the trail, in place: the last line of defence.

    Only fields that can hold a secret are looked at: `url` and `path` (scrubbed), and every field
    the schema does not define as a scalar or a list of scalars (a header passed by mistake, a
    mapping of headers). The usual event has only documented fields, which one set test shows.
    """
    if not _DOCUMENTED.issuperset(fields):
        for name in fields.keys() - _SCALAR_FIELDS:
            value = fields[name]
            if _is_secret_field(name):
                fields[name] = REDACTED
            elif isinstance(value, Mapping):
                fields[name] = {k: REDACTED if _is_secret_field(str(k)) else v
                                for k, v in value.items()}
    for name in _URL_FIELDS:
        value = fields.get(name)
        if isinstance(value, str):
            fields[name] = scrub_url(value)
