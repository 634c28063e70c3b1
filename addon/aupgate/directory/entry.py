"""A directory search result and the search scopes: shared by the client and the group resolver."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Scope = Literal["BASE", "LEVEL", "SUBTREE"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A search result: its DN and its values by lower-cased attribute name, decoded UTF-8."""

    dn: str
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def values(self, attribute: str) -> tuple[str, ...]:
        return self.attributes.get(attribute.lower(), ())

    def first(self, attribute: str) -> str | None:
        values = self.values(attribute)
        return values[0] if values else None
