"""The architecture, enforced: a pure core, two edges, no import cycle, no oversized module.

- Only the edges, `aupgate.mitm` (the mitmproxy addon) and `aupgate.cli` (the `aupgate` command),
  may import mitmproxy (in fact only `mitm/` does), and nothing outside them imports them.
- The clock (`datetime.now`, `time.monotonic`, `time.sleep`...) is read only at the edges and in
  the modules declared in `CLOCK_READERS`, each with its reason.
- Files, the environment and other processes are touched only at the edges and in the modules
  declared in `IO_MODULES`; every other module is pure (facts in, values out).
- No import cycle: strongly connected components over every import statement, including the ones
  inside functions (a lazy import hides a cycle from Python, not from this test).
- No module over about 500 lines.

Every check first proves that it can see what it forbids (on the real tree or on a snippet), so
none of them passes by looking at nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "addon" / "aupgate"
EDGES = ("aupgate.mitm", "aupgate.cli")
MAX_LINES = 520  # "about 500": a module past this has more than one job

CLOCK_READERS = {
    "aupgate.audit.log": "an event's time is when it is recorded (now_text)",
    "aupgate.audit.file": "the time of an audit_gap and of a checkpoint, the checkpoint timer, "
                          "and the once-a-minute complaint while failing",
    "aupgate.directory.authenticator": "the default clock of the login cache (tests inject one)",
}
IO_MODULES = {
    "aupgate.files": "opens list and audit files, gzipped or not",
    "aupgate.paths": "finds the default policy and category files (environment, working folder)",
    "aupgate.yamlsource": "reads YAML files",
    "aupgate.gateway": "watches and reloads the policy and category files",
    "aupgate.policy.loader": "reads policy files and digests them",
    "aupgate.categories.readers": "reads category list files",
    "aupgate.categories.sources": "reads and edits sources.yaml",
    "aupgate.categories.indexfile": "writes the index file; reads it back verified, never maps it",
    "aupgate.categories.compiler": "digests the lists and writes the index file",
    "aupgate.categories.cache": "finds, locks, compiles (in a child process) and opens the index",
    "aupgate.categories.importer": "copies imported lists and writes the manifest",
    "aupgate.audit.file": "appends to the audit file and follows its rotation",
    "aupgate.audit.reader": "opens, follows and dates audit files",
    "aupgate.audit.review": "merges audit files",
    "aupgate.audit.report.reading": "reads audit files, in byte ranges across processes",
    "aupgate.directory.authenticator": "reads the service account's password file",
    "aupgate.directory.connections": "opens connections to the directory (network I/O)",
    "aupgate.directory.ldap": "searches and binds against the directory (network I/O)",
    "aupgate.directory.negotiate": "reads the Kerberos keytab",
    "aupgate.policy.logo": "reads the help desk logo a policy names, to embed it in the pages",
    "aupgate.lifecycle.parallel": "reads replay input in blocks and forks worker processes",
    "aupgate.shadowset": "watches and reloads the shadow policy directory",
    "aupgate.budgetstore": "the budget database (SQLite) and its default path (environment)",
}

_CLOCK_FUNCTIONS = {
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns",
             "process_time", "process_time_ns", "sleep", "localtime", "gmtime", "ctime",
             "asctime", "strftime"},
    "datetime": {"now", "utcnow", "today"},  # on the classes datetime and date
}
_IO_CALLS = {
    "open", "read_text", "read_bytes", "write_text", "write_bytes", "stat", "lstat", "fstat",
    "exists", "is_file", "is_dir", "iterdir", "glob", "rglob", "mkdir", "unlink", "touch",
    "chmod", "fdopen", "mkstemp", "readinto", "execv", "mmap", "flock", "copyfile", "copytree",
    "cwd", "home", "getenv",
}
_IO_MODULES_IMPORTED = {"subprocess", "fcntl", "shutil", "mmap", "tempfile", "multiprocessing"}


# --------------------------------------------------------------------------- reading the tree


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_edge(name: str) -> bool:
    return any(name == edge or name.startswith(edge + ".") for edge in EDGES)


def imports(source: str, name: str, *, package: bool = False) -> set[str]:
    """Every module an import statement anywhere in `source` names, functions included.

    `from X import y` names X.y when that is a module of ours, else X. Relative imports are
    resolved against `name` (a package's own name when `package`).
    """
    here = name.split(".") if package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports."""
    return {
        name: {m for m in imports(path.read_text(), name, package=path.name == "__init__.py")
               if m in MODULES and m != name}
        for name, path in MODULES.items()
    }


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def clock_reads(source: str) -> list[str]:
    """Where `source` reads the clock: `time.monotonic`, `datetime.now`, `date.today`, also
    through `from time import monotonic` and aliases, called or passed as a function."""
    tree = ast.parse(source)
    time_modules = {"time"}
    clock_classes = {"datetime", "date"}
    bare: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            time_modules |= {a.asname or a.name for a in node.names if a.name == "time"}
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            bare |= {a.asname or a.name for a in node.names if a.name in _CLOCK_FUNCTIONS["time"]}
        elif isinstance(node, ast.ImportFrom) and node.module == "datetime":
            clock_classes |= {a.asname or a.name for a in node.names
                              if a.name in ("datetime", "date")}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, attr = node.value.id, node.attr
            if (owner in time_modules and attr in _CLOCK_FUNCTIONS["time"]) or (
                    owner in clock_classes and attr in _CLOCK_FUNCTIONS["datetime"]):
                found.append(f"{owner}.{attr} (line {node.lineno})")
            elif isinstance(node.value, ast.Name) and owner == "datetime" and attr in (
                    "datetime", "date"):
                pass  # `datetime.datetime` itself; `.now` on it is caught one level up
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner = node.value
            if (isinstance(inner.value, ast.Name) and inner.value.id == "datetime"
                    and inner.attr in ("datetime", "date")
                    and node.attr in _CLOCK_FUNCTIONS["datetime"]):
                found.append(f"datetime.{inner.attr}.{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.Name) and node.id in bare and isinstance(node.ctx, ast.Load):
            found.append(f"{node.id} (line {node.lineno})")
    return found


def io_uses(source: str) -> list[str]:
    """Where `source` touches files, the environment or other processes."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else (
                func.id if isinstance(func, ast.Name) else None)
            if called in _IO_CALLS:
                found.append(f"{called}() (line {node.lineno})")
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "os" and node.attr == "environ"):
            found.append(f"os.environ (line {node.lineno})")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            found += [f"import {n} (line {node.lineno})" for n in names
                      if n.split(".")[0] in _IO_MODULES_IMPORTED]
    return found


def core() -> Iterable[tuple[str, Path]]:
    return ((name, path) for name, path in MODULES.items() if not is_edge(name))


# --------------------------------------------------------------------------- mitmproxy


def test_only_the_adapter_imports_mitmproxy() -> None:
    offenders = {
        name: sorted(m for m in imports(path.read_text(), name) if m.split(".")[0] == "mitmproxy")
        for name, path in MODULES.items()
        if not name.startswith("aupgate.mitm")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_mitmproxy_check_sees_imports() -> None:
    """The check looks in the right place, and sees an import inside a function too."""
    assert "mitmproxy" in imports(MODULES["aupgate.mitm.addon"].read_text(), "aupgate.mitm.addon")
    lazy = "def f():\n    from mitmproxy import http\n    return http\n"
    assert imports(lazy, "aupgate.x") == {"mitmproxy"}


# --------------------------------------------------------------------------- the edges


def test_nothing_in_the_core_imports_an_edge() -> None:
    edges = graph()
    offenders = {name: sorted(m for m in targets if is_edge(m))
                 for name, targets in edges.items() if not is_edge(name)}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_edge_check_sees_edges_being_imported() -> None:
    """The edges are imported by someone (cli runs the proxy through mitm.run), so the check
    above would see a core module doing the same; and the core is most of the package."""
    edges = graph()
    assert "aupgate.mitm.run" in edges["aupgate.cli.run"]
    core_modules = [name for name, _ in core()]
    assert len(core_modules) > len(MODULES) / 2
    assert "aupgate.engine" in core_modules and "aupgate.mitm.addon" not in core_modules


# --------------------------------------------------------------------------- cycles


def test_no_import_cycle() -> None:
    assert strongly_connected(graph()) == []


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function() -> None:
    """The cycle the categories once had: a module-level import one way, a lazy one back."""
    a = "from .b import thing\n"
    b = "def load():\n    from .a import other\n    return other\n"
    edges = {"pkg.a": imports(a, "pkg.a") & {"pkg.b"}, "pkg.b": imports(b, "pkg.b") & {"pkg.a"}}
    assert edges == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert strongly_connected(edges) == [["pkg.a", "pkg.b"]]
    real = graph()
    assert sum(len(targets) for targets in real.values()) > 100  # it reads the real imports


# --------------------------------------------------------------------------- the clock


def test_the_core_never_reads_the_clock() -> None:
    offenders = {name: clock_reads(path.read_text()) for name, path in core()
                 if name not in CLOCK_READERS}
    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.parametrize("name", sorted(CLOCK_READERS))
def test_each_declared_clock_reader_reads_the_clock(name: str) -> None:
    """A declaration that is no longer needed is removed, not kept as a blanket exception."""
    assert clock_reads(MODULES[name].read_text())


def test_the_clock_check_sees_every_spelling() -> None:
    assert clock_reads(MODULES["aupgate.mitm.deciding"].read_text())  # datetime.now(UTC)
    assert clock_reads(MODULES["aupgate.cli.common"].read_text())
    for snippet in (
        "import time\nx = time.monotonic()\n",
        "from time import monotonic as m\nx = m()\n",
        "from datetime import datetime\nx = datetime.now()\n",
        "import datetime\nx = datetime.datetime.utcnow()\n",
        "from datetime import date\nx = date.today()\n",
        "import time\nclock = time.time\n",  # passed as a function, not called
    ):
        assert clock_reads(snippet), snippet
    assert not clock_reads("from datetime import datetime\nx = datetime.fromisoformat(s)\n")


# --------------------------------------------------------------------------- files


def test_only_declared_modules_touch_files_or_the_environment() -> None:
    offenders = {name: io_uses(path.read_text()) for name, path in core()
                 if name not in IO_MODULES}
    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.parametrize("name", sorted(IO_MODULES))
def test_each_declared_io_module_does_io(name: str) -> None:
    assert io_uses(MODULES[name].read_text())


def test_the_io_check_sees_files_and_processes() -> None:
    for snippet in (
        "x = Path(p).read_text()\n",
        "with open(p) as f: pass\n",
        "import os\nx = os.environ.get('A')\n",
        "import subprocess\n",
        "x = path.stat().st_size\n",
    ):
        assert io_uses(snippet), snippet
    assert not io_uses("x = text.replace('a', 'b')\n")


# --------------------------------------------------------------------------- size


def test_no_module_over_about_500_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
    assert max(sizes.values()) > 300  # the sizes are real line counts of real modules
