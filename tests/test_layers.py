"""The layer contract: every import in rerank_align (module level, inside functions, under TYPE_CHECKING) points
down the layer list in pyproject.toml's ``[tool.importlinter]`` contract, and no module imports itself through a
chain. ``lint-imports`` (make lint) checks the same contract with import-linter; this test reads the source itself,
so it needs nothing beyond the standard library and cannot be satisfied by a tool that skips an import.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "rerank_align"


def modules(root: Path = REPO) -> dict[str, Path]:
    out = {}
    for p in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def import_edges(mods: dict[str, Path]) -> set[tuple[str, str, int]]:
    """(importer, imported, line) for every import of a package module, wherever the statement stands."""

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges = set()
    for m, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = m.split(".") if is_pkg else m.split(".")[:-1]
                    pkg = pkg[: len(pkg) - node.level + 1]
                    base = ".".join([*pkg, *([base] if base else [])])
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for name in names:
                if name == PACKAGE or not name.startswith(PACKAGE + "."):
                    continue
                target = owner(name)
                if target and target != m:
                    edges.add((m, target, node.lineno))
    return edges


def contract_layers(pyproject: Path = REPO / "pyproject.toml") -> list[list[str]]:
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [[s.strip() for s in line.split("|")] for line in layers]


def layer_of(module: str, layers: list[list[str]]) -> tuple[int, str] | None:
    """(index of the layer line, top first; the sibling package on that line) of a module."""
    for i, line in enumerate(layers):
        for sibling in line:
            if module == sibling or module.startswith(sibling + "."):
                return i, sibling
    return None


def violations(edges: set[tuple[str, str, int]], layers: list[list[str]]) -> list[str]:
    out = []
    for a, b, line in sorted(edges):
        la, lb = layer_of(a, layers), layer_of(b, layers)
        if la is None or lb is None or la[1] == lb[1]:
            continue
        if la[0] > lb[0]:
            out.append(f"{a}:{line} imports {b}, a higher layer")
        elif la[0] == lb[0]:
            out.append(f"{a}:{line} imports its independent sibling {b}")
    return out


def cycles(edges: set[tuple[str, str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b, _ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_cycles(edges: set[tuple[str, str, int]]) -> list[list[str]]:
    """Cycles between the sibling subpackages/modules of each package (import-linter's acyclic_siblings)."""
    collapsed = set()
    for a, b, line in edges:
        pa, pb = a.split("."), b.split(".")
        common = 0
        while common < min(len(pa), len(pb)) and pa[common] == pb[common]:
            common += 1
        if common < min(len(pa), len(pb)):
            collapsed.add((".".join(pa[: common + 1]), ".".join(pb[: common + 1]), line))
    return cycles(collapsed)


MODS = modules()
EDGES = import_edges(MODS)
LAYERS = contract_layers()


def test_every_module_sits_in_a_layer():
    assert [m for m in MODS if m != PACKAGE and layer_of(m, LAYERS) is None] == []


def test_imports_point_down_the_layers():
    assert violations(EDGES, LAYERS) == []


def test_no_import_cycles():
    assert cycles(EDGES) == []
    assert package_cycles(EDGES) == []


def test_the_checks_catch_an_upward_import_and_a_cycle():
    # the same checks on the real graph plus one added import must fail: they are not vacuous
    assert len(EDGES) > 200
    upward = EDGES | {("rerank_align.scoring.reranker", "rerank_align.training.model", 1)}
    assert violations(upward, LAYERS) == [
        "rerank_align.scoring.reranker:1 imports rerank_align.training.model, a higher layer"
    ]
    sideways = EDGES | {("rerank_align.evaluation.metrics", "rerank_align.export.card", 1)}
    assert len(violations(sideways, LAYERS)) == 1
    cyclic = EDGES | {("rerank_align.scoring.contract", "rerank_align.scoring.reranker", 1)}
    assert any("rerank_align.scoring.contract" in c for c in cycles(cyclic))
    assert package_cycles(EDGES | {("rerank_align.export.common", "rerank_align.export.merge", 1)})
