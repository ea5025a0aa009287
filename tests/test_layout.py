"""The package's shape, checked from its source: no import circle, imports that run one way
(from the top of LAYERS to the bottom), and the purity rules of the lower rooms.

Every import statement counts, wherever it stands: at the top, inside a function (a lazy
import is still an import), or under `if TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import imgen

PACKAGE = Path(imgen.__file__).parent

# Top to bottom; a module may import its own layer and the layers below it, never above.
LAYERS = [
    ("imgen.__main__",),
    ("imgen.cli",),
    ("imgen.gallery",),
    ("imgen.batch",),
    ("imgen.pipeline", "imgen.ledger"),
    ("imgen.generation",),
    ("imgen.config", "imgen.tasks"),
    ("imgen.models",),
    ("imgen.dialects",),
    ("imgen.transport",),
    ("imgen.files", "imgen.preview"),
    ("imgen.report", "imgen.results", "imgen.request", "imgen.faults"),
    ("imgen.errors", "imgen"),
]

# Third-party (and standard) modules a room must never import.
FORBIDDEN = {
    "imgen.dialects": ("typer", "rich", "httpx", "socket", "urllib.request", "subprocess"),
    "imgen.transport": ("typer", "rich"),
    "imgen.files": ("typer", "rich", "httpx"),
    "imgen.models": ("typer", "rich"),
    "imgen.config": ("typer", "rich", "httpx"),
    "imgen.tasks": ("typer", "rich", "httpx"),
    "imgen.generation": ("typer",),
    "imgen.pipeline": ("typer",),
    "imgen.cli": ("httpx",),
    "imgen.preview": ("typer", "rich", "httpx"),
    "imgen.gallery": ("typer", "rich", "httpx"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(imgen modules, other top-level names) that `path` imports, anywhere in it."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    ours: set[str] = set()
    theirs: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (ours if alias.name.split(".")[0] == "imgen" else theirs).add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "imgen":
                theirs.add(target)
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                ours.add(sub if sub in known else target)  # `from . import x`: the module x
    ours.discard(name)
    return ours, theirs


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found))[0] for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def layer_of(name: str) -> int:
    best = None
    for depth, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (depth, len(prefix))
    assert best is not None, f"{name} belongs to no layer: add it to LAYERS"
    return best[0]


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_walker_sees_lazy_and_relative_imports():
    found = imports(PACKAGE / "pipeline.py", set(modules()))[0]
    assert {"imgen.generation.plan", "imgen.transport.http", "imgen.generation.stream"} <= found  # the last two are lazy


def test_no_import_circle():
    assert cycles(graph()) == []


def test_imports_run_one_way_top_to_bottom():
    upward = [
        f"{name} imports {dep}"
        for name, deps in graph().items()
        for dep in sorted(deps)
        if layer_of(dep) < layer_of(name)
    ]
    assert upward == []


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_rooms_keep_their_hands_off(room):
    found = modules()
    bad = []
    for name, path in found.items():
        if name == room or name.startswith(room + "."):
            theirs = imports(path, set(found))[1]
            bad += [f"{name} imports {t}" for t in sorted(theirs) if any(t == f or t.startswith(f + ".") for f in FORBIDDEN[room])]
    assert bad == []


def test_every_module_is_in_a_layer_and_every_folder_says_what_it_holds():
    for name, path in modules().items():
        layer_of(name)
        if path.name == "__init__.py" and name != "imgen":
            assert ast.get_docstring(ast.parse(path.read_text())), f"{name} has no docstring saying what lives inside"
