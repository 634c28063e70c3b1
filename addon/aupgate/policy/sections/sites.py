"""Sites in a policy: the categories, domains and URL prefixes a condition or list covers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from aupgate.errors import UrlError
from aupgate.hostname import normalise_host
from aupgate.yamlsource import FieldReader, join_field

from ..model import POLICY_CATEGORIES, Site

__all__ = ["read_domains", "read_site", "read_urls"]

def read_site(reader: FieldReader, m: Mapping[str, Any], field: str) -> Site:
    categories = reader.choices(m, "categories", field, sorted(POLICY_CATEGORIES), "category")
    return Site(
        categories=categories or frozenset(),
        domains=frozenset(read_domains(reader, m, "domains", field)),
        urls=tuple(read_urls(reader, m, "urls", field)),
    )


def read_domains(
    reader: FieldReader, parent: Mapping[str, Any], key: str, field: str
) -> Iterator[str]:
    for i, text in reader.strings(parent, key, field):
        try:
            yield normalise_host(text)
        except UrlError as exc:
            reader.problem(parent[key], i, f"{join_field(field, key)}[{i}]", str(exc))


def read_urls(
    reader: FieldReader, parent: Mapping[str, Any], key: str, field: str
) -> Iterator[tuple[str, str]]:
    for i, text in reader.strings(parent, key, field):
        host, slash, path = text.removeprefix("https://").removeprefix("http://").partition("/")
        if not slash:
            reader.problem(
                parent[key],
                i,
                f"{join_field(field, key)}[{i}]",
                f"'{text}' is not a URL prefix (host/path); use domains for a whole site",
            )
            continue
        try:
            yield normalise_host(host), "/" + path
        except UrlError as exc:
            reader.problem(parent[key], i, f"{join_field(field, key)}[{i}]", str(exc))
