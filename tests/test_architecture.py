"""The code's shape, read from the source with `ast` (nothing is imported): layers point one way
(seqsum <- study <- analysis <- benchmarks), no import cycles, every import inside a function says why,
and every module stays within 300 lines."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO

LAYERS = ("seqsum", "study", "analysis", "benchmarks")  # each may import only those before it
DISPATCHER = "seqsum.cli"  # the `seqsum` entry point: wires the subcommands of study and analysis
MAX_LINES = 300


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. "study.runner"
    target: str  # the imported first-party module, e.g. "seqsum.data"
    line: int
    in_function: bool


def modules() -> dict[str, Path]:
    """Every first-party module by dotted name (benchmarks' scripts included)."""
    return {
        ".".join(f.relative_to(REPO).with_suffix("").parts): f
        for layer in LAYERS
        for f in sorted((REPO / layer).rglob("*.py"))
    }


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module `name` denotes: itself, or the module holding the attribute it names."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported_names(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = module.split(".")[: len(module.split(".")) - node.level] if node.level else []
    mod = ".".join(base + ([node.module] if node.module else []))
    return [mod, *(f"{mod}.{a.name}" for a in node.names)]


def _sibling(module: str, name: str) -> str:
    """A benchmarks script imports its sibling modules by bare name (the script's folder is on sys.path)."""
    return f"benchmarks.{name}" if module.startswith("benchmarks.") and name.split(".")[0] not in LAYERS else name


def imports_of(module: str, path: Path, known: dict[str, Path]) -> tuple[list[Import], list[tuple[int, str]]]:
    """The first-party imports of `module` (annotation-only ones under TYPE_CHECKING left out), and every
    import statement inside a function as (line, statement)."""
    found: list[Import] = []
    in_functions: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if in_function:
                    in_functions.append((child.lineno, ast.unparse(child)))
                targets = {_resolve(_sibling(module, n), known) for n in _imported_names(module, child)}
                for target in sorted(t for t in targets if t and t != module):
                    found.append(Import(module, target, child.lineno, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return found, in_functions


def graph() -> tuple[dict[str, Path], list[Import], dict[str, list[tuple[int, str]]]]:
    known = modules()
    edges, lazy = [], {}
    for name, path in known.items():
        found, in_functions = imports_of(name, path, known)
        edges += found
        lazy[name] = in_functions
    return known, edges, lazy


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def upward(edges: list[Import]) -> list[Import]:
    """Imports of a layer above the importer's (the dispatcher's of study.cli/analysis.cli excepted)."""
    return [
        e
        for e in edges
        if layer(e.target) > layer(e.source)
        and not (e.source == DISPATCHER and e.target in ("study.cli", "analysis.cli"))
    ]


def cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    succ: dict[str, set[str]] = {}
    for e in edges:
        succ.setdefault(e.source, set()).add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(succ):
        if v not in index:
            connect(v)
    return found


@pytest.fixture(scope="module")
def code():
    return graph()


def test_the_graph_is_read(code):
    known, edges, _ = code
    assert {"seqsum.train", "study.runner", "analysis.report"} <= set(known)
    pairs = {(e.source, e.target) for e in edges}
    assert ("study.runner", "seqsum.data") in pairs
    assert ("benchmarks.throughput", "benchmarks.padded_reference") in pairs


def test_layers_point_one_way(code):
    _, edges, _ = code
    assert [f"{e.source}:{e.line} imports {e.target}" for e in upward(edges)] == []


def test_no_import_cycles(code):
    _, edges, _ = code
    assert cycles(edges) == []


def test_an_import_inside_a_function_says_why(code):
    """A lazy import is kept only where import time or order matters, and a comment on its line or the
    line above says which."""
    known, _, lazy = code
    silent = []
    for name, found in lazy.items():
        lines = known[name].read_text().splitlines()
        for line, statement in found:
            said = "#" in lines[line - 1] or lines[line - 2].strip().startswith("#")
            if not said:
                silent.append(f"{name}:{line} {statement}")
    assert silent == []


def test_modules_stay_short(code):
    known, _, _ = code
    long = {name: n for name, path in known.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_checks_fail_on_a_regression():
    edges = [Import("seqsum.data", "study.runner", 1, True), Import("study.runner", "seqsum.data", 1, False)]
    assert [e.source for e in upward(edges)] == ["seqsum.data"]
    assert cycles(edges) == [["seqsum.data", "study.runner"]]
    assert upward([Import(DISPATCHER, "study.cli", 1, True)]) == []
