"""Only the adapter (`aupgate.mitm`) may import mitmproxy: the core stays pure and testable."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "addon" / "aupgate"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_adapter_imports_mitmproxy() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "mitm" not in path.relative_to(PACKAGE).parts[:-1]
        and any(name == "mitmproxy" or name.startswith("mitmproxy.")
                for name in imported_modules(path))
    ]
    assert offenders == []


def test_the_adapter_does_import_mitmproxy() -> None:
    """The check above looks in the right place (it would pass vacuously otherwise)."""
    assert any(name.startswith("mitmproxy") for name in imported_modules(PACKAGE / "mitm" /
                                                                          "addon.py"))
