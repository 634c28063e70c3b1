"""Reading `Proxy-Authorization` and deciding whether a user name may be sent to a directory.

Everything here runs before any directory call, on attacker-controlled bytes: sizes are bounded
before decoding, Basic credentials split on the FIRST colon (RFC 7617: the user name cannot hold
one, the password can), and names with NUL, control or invisible format characters, or longer
than the configured limit, never reach an LDAP filter.
"""

from __future__ import annotations

import base64
import binascii
import unicodedata
from dataclasses import dataclass, field

MAX_HEADER_LENGTH = 64 * 1024  # Kerberos tokens with an AD group PAC reach tens of kilobytes
MAX_BASIC_LENGTH = 8 * 1024
MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    """A user name and password from a Basic header; the password never shows in a repr."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class NegotiateToken:
    """A decoded SPNEGO/Kerberos token from a Negotiate header."""

    token: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class MalformedAuthorization:
    """A header that is not usable Basic or Negotiate credentials (why, without its content)."""

    detail: str


Authorization = BasicCredentials | NegotiateToken | MalformedAuthorization


def _scheme_and_value(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.strip().partition(" ")
    if not scheme or not value.strip():
        return None
    return scheme.casefold(), value.strip()


def _b64(value: str, limit: int) -> bytes | None:
    if len(value) > limit:
        return None
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def parse_authorization(header: str) -> Authorization:
    """Read a `Proxy-Authorization` (or `Authorization`) value: Basic or Negotiate."""
    if len(header) > MAX_HEADER_LENGTH:
        return MalformedAuthorization(f"header longer than {MAX_HEADER_LENGTH} characters")
    parts = _scheme_and_value(header)
    if parts is None:
        return MalformedAuthorization("no scheme and credentials")
    scheme, value = parts
    if scheme == "basic":
        return parse_basic_value(value)
    if scheme == "negotiate":
        token = _b64(value, MAX_HEADER_LENGTH)
        if not token:
            return MalformedAuthorization("Negotiate token is not base64")
        return NegotiateToken(token)
    return MalformedAuthorization(f"unsupported scheme {scheme[:20]!r}")


def parse_basic_value(value: str) -> BasicCredentials | MalformedAuthorization:
    """Decode the base64 part of Basic credentials and split them on the first colon."""
    raw = _b64(value, MAX_BASIC_LENGTH)
    if raw is None:
        return MalformedAuthorization("Basic credentials are not base64 (or too long)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return MalformedAuthorization("Basic credentials are not UTF-8")
    user, colon, password = text.partition(":")
    if not colon:
        return MalformedAuthorization("Basic credentials have no colon")
    return BasicCredentials(user, password)


def user_name_problem(name: str, max_length: int) -> str | None:
    """Why a user name must not be looked up, or None.

    Refused: empty; longer than `max_length` characters (or 4 bytes each in UTF-8); NUL or any
    other control character (Cc); invisible format characters (Cf: zero-width joiners, bidi
    overrides) that make two names look alike; unpaired surrogates; leading or trailing spaces,
    which directories ignore when matching (so ` alice` would log in as alice under a name the
    audit log shows differently).
    """
    if not name:
        return "empty user name"
    if len(name) > max_length or len(name.encode("utf-8", "surrogatepass")) > 4 * max_length:
        return f"user name longer than {max_length} characters"
    for char in name:
        category = unicodedata.category(char)
        if category == "Cc":
            return "user name with a control character" if char != "\x00" \
                else "user name with a NUL character"
        if category in ("Cf", "Cs", "Co", "Cn"):
            return f"user name with an invisible or unassigned character (U+{ord(char):04X})"
    if name != name.strip():
        return "user name with leading or trailing spaces"
    return None


def password_problem(password: str) -> str | None:
    """Why a password must not be sent to a directory, or None. An empty password is refused
    because LDAP treats a simple bind with a DN and no password as an anonymous bind that
    *succeeds* (RFC 4513 5.1.2), which would let anyone log in as anyone."""
    if not password:
        return "empty password"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password longer than {MAX_PASSWORD_LENGTH} characters"
    if "\x00" in password:
        return "password with a NUL character"
    return None
