"""The layout's rules, checked on the source: layers, no import cycle, no private imports.

Layers, lowest first (a module may import its own layer and those below):

    errors            one-line user errors
    runtime, testing  model specs, backends, retries, journal, storage; fake models
    tasks             what is predicted, how it is asked, parsed, scored
    core              state, context, prompts, memory, nodes, graph, sequence driver
    data              where sequences come from (bundled, MIMIC-IV, user files)
    evals             the comparison of methods
    frontends         CLI, online API, terminal and HTML views
    llm_as_rnn        the package's public surface (__init__, __main__, memory: the
                      ``memory`` verbs as functions)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "llm_as_rnn"
LAYERS = {
    "errors": 0,
    "runtime": 1,
    "testing": 1,
    "tasks": 2,
    "core": 3,
    "data": 4,
    "evals": 5,
    "frontends": 6,
    "__init__": 7,
    "__main__": 7,
    "memory": 7,
}
MAX_LINES = 350


def module_name(path: Path) -> str:
    """Return the dotted module name of a source file under ``src``."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Return every module of the package by dotted name."""
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def imported(tree: ast.AST, known: set[str]) -> Iterator[tuple[int, str, list[str]]]:
    """Yield ``(line, module, names)`` for every import of the package (lazy ones too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != PACKAGE:
                continue
            names = [a.name for a in node.names]
            # `from pkg import module` imports the module itself.
            submodules = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in known]
            for sub in submodules:
                yield node.lineno, sub, []
            rest = [n for n in names if f"{node.module}.{n}" not in known]
            if rest or not submodules:
                yield node.lineno, node.module, rest


def graph() -> dict[str, set[str]]:
    """Return the package's import graph (module -> modules it imports)."""
    found = modules()
    known = set(found)
    edges: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for _, target, _ in imported(tree, known):
            if target in known and target != name:
                edges[name].add(target)
    return edges


def layer(module: str) -> int:
    """Return the layer of a module of the package."""
    parts = module.split(".")
    return LAYERS["__init__"] if len(parts) == 1 else LAYERS[parts[1]]


def test_every_module_has_a_layer() -> None:
    for name in modules():
        parts = name.split(".")
        assert len(parts) == 1 or parts[1] in LAYERS, f"{name}: add its folder to LAYERS"


def test_imports_go_down_the_layers() -> None:
    upward = [
        f"{source} (layer {layer(source)}) imports {target} (layer {layer(target)})"
        for source, targets in graph().items()
        for target in targets
        if layer(target) > layer(source)
    ]
    assert not upward, "\n".join(upward)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle as a path of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def python_files() -> list[Path]:
    """Return every Python file of the package, tests, benchmarks, examples and scripts."""
    folders = [SRC, ROOT / "tests", ROOT / "benchmarks", ROOT / "examples", ROOT / "scripts"]
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def private_uses(path: Path) -> list[str]:
    """Return the uses of another module's private names in a file.

    Private: a name starting with one underscore (not a dunder), imported
    from a module of the project, read as an attribute of such a module, or
    replaced on it with ``setattr`` / ``monkeypatch.setattr``.
    """
    local = {p.stem for p in path.parent.glob("*.py")}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    ours: set[str] = set()  # names bound to modules of the project
    found = []

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    def project(module: str) -> bool:
        return module.split(".")[0] in {PACKAGE, "tests", "benchmarks", *local}

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and project(node.module):
            for alias in node.names:
                if private(alias.name):
                    found.append(f"{path}:{node.lineno}: imports {node.module}.{alias.name}")
                ours.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if project(alias.name):
                    ours.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ours
            and private(node.attr)
        ):
            found.append(f"{path}:{node.lineno}: reads {node.value.id}.{node.attr}")
        if (
            isinstance(node, ast.Call)
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and private(node.args[1].value)
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in ours
        ):
            found.append(f"{path}:{node.lineno}: patches {node.args[0].id}.{node.args[1].value}")
    return found


def test_the_private_name_rule_catches_each_form(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from llm_as_rnn.runtime.local import _secret\n"
        "from llm_as_rnn.runtime import local\n"
        "local._cache\n"
        "monkeypatch.setattr(local, '_LOADED', set())\n"
        "from llm_as_rnn.runtime.local import load_local\n"
        "local.__name__\n"
    )
    assert len(private_uses(sample)) == 3


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_of_another_module(path: Path) -> None:
    uses = private_uses(path)
    assert not uses, "\n".join(uses)


def test_no_source_file_over_the_size_limit() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in (SRC / PACKAGE).rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines: {long}"
