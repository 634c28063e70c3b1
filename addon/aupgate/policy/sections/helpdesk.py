"""The `help_desk` section: whom an employee asks about a block, and the agency's logo.

The pages show the help desk's name, phone and link in "what you can do", and the logo beside
the agency's name. Every value reaches an employee's browser from a page the agency's CA vouches
for, so each is checked here: a link is an `https:`, `http:` or `mailto:` URL and nothing else (no
`javascript:`), a phone number is a phone number, and a logo is either an `https:` URL or an image
file beside the policy that `load_logo` reads and checks (the loader hands in the reading, so
this section stays pure).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from aupgate.yamlsource import FieldReader

from ..model import HelpDesk

__all__ = ["LOGO_URL_SCHEMES", "read_help_desk"]

_KEYS = ("name", "phone", "link", "logo")
_NAME_MAX = 80
_PHONE = re.compile(r"^[0-9A-Za-z+()./, -]{3,40}$")
_LINK_MAX = 300
LOGO_URL_SCHEMES = ("https",)

LoadLogo = Callable[[str], str]
"""A file name as the policy gives it -> a `data:` URI; raises ValueError saying what is wrong."""


def read_help_desk(reader: FieldReader, top: Mapping[str, Any],
                   load_logo: LoadLogo) -> HelpDesk | None:
    """`help_desk`: `name` (required), `phone`, `link` and `logo` (all optional)."""
    item = reader.mapping(top, "help_desk", "help_desk", _KEYS, ("name",))
    if item is None:
        return None
    name = reader.string(item, "name", "help_desk")
    if name is not None and len(name) > _NAME_MAX:
        reader.problem(item, "name", "help_desk.name",
                       f"at most {_NAME_MAX} characters (it is a heading on every page)")
    phone = reader.string(item, "phone", "help_desk")
    if phone is not None and (not _PHONE.match(phone) or sum(c.isdigit() for c in phone) < 3):
        reader.problem(item, "phone", "help_desk.phone",
                       f"'{phone}' is not a phone number (digits, spaces, + ( ) . - and an "
                       "extension, at most 40 characters)")
        phone = None
    link = reader.string(item, "link", "help_desk")
    if link is not None:
        problem = link_problem(link)
        if problem:
            reader.problem(item, "link", "help_desk.link", problem)
            link = None
    logo = reader.string(item, "logo", "help_desk")
    if logo is not None:
        try:
            logo = _logo(logo, load_logo)
        except ValueError as exc:
            reader.problem(item, "logo", "help_desk.logo", str(exc))
            logo = None
    if name is None:
        return None
    return HelpDesk(name=" ".join(name.split()), phone=phone, link=link, logo=logo)


def link_problem(link: str) -> str:
    """"" for a link a page may carry: https, http or mailto, no spaces or control characters."""
    if len(link) > _LINK_MAX:
        return f"at most {_LINK_MAX} characters"
    if any(c.isspace() or not c.isprintable() for c in link):
        return f"'{link}' contains spaces or control characters"
    parts = urllib.parse.urlsplit(link)
    scheme = parts.scheme.lower()
    if scheme == "mailto":
        return "" if "@" in parts.path else f"'{link}' names no e-mail address"
    if scheme not in ("https", "http"):
        return f"'{link}' must start with https://, http:// or mailto:"
    if not parts.hostname:
        return f"'{link}' names no host"
    return ""


def _logo(text: str, load_logo: LoadLogo) -> str:
    """An https URL as it is, or a file read into a data: URI by `load_logo`."""
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme in LOGO_URL_SCHEMES:
        problem = link_problem(text)
        if problem:
            raise ValueError(problem)
        return text
    if scheme in ("http", "data", "javascript", "file", "ftp"):
        raise ValueError(f"'{text}': a logo is an image file beside the policy or an https:// "
                         f"URL, not {scheme}:")
    return load_logo(text)
