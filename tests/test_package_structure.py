"""The package's own import graph: no cycles, and imports run one way through the layers.

core -> ontology -> data -> models -> training -> pp (and datasets) -> tl -> pl -> the package -> cli.
Every import counts, also those inside functions and under ``TYPE_CHECKING``: a lazy import is still a
dependency. The graph is read from the source with :mod:`ast`, so nothing is imported to build it.
See ``docs/architecture.md`` for what each layer holds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "mmcontext"

#: Layer of each top-level part, lowest first; the top-level private modules (``_keys``, ``_io``, ...) are the core.
LAYERS = {
    "core": 0,
    "ontology": 1,
    "data": 2,
    "models": 3,
    "training": 4,
    "pp": 5,
    "datasets": 5,
    "tl": 6,
    "pl": 7,
    "package": 8,
    "cli": 9,
}

#: The only import from a lower layer into a higher one, and why: ``mmc.models.write_store`` has taken an
#: AnnData since 0.1; the array-level writer is ``mmcontext.data.write_store``, the AnnData form lives in pp.
PUBLIC_SHIMS = {("mmcontext.models", "mmcontext.pp._store")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / PKG).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """The mmcontext modules an ``from ... import ...`` names (a submodule when the name is one)."""
    if node.level:
        base = module.split(".") if _is_package(module) else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target != PKG and not target.startswith(PKG + "."):
        return []
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        out.append(sub if sub in MODULES else target)
    return out


def _imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.update(_resolve(module, node))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == PKG or a.name.startswith(PKG + "."))
    return {m for m in found if m in MODULES and m != module}


def _external(module: str) -> set[str]:
    """Top-level names of the other packages ``module`` imports (anywhere in it)."""
    tree = ast.parse(MODULES[module].read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out - {PKG}


GRAPH = {m: _imports(m) for m in MODULES}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    head = parts[1]
    if head in LAYERS:
        return head
    if head == "cli":
        return "cli"
    assert head.startswith("_"), f"{module}: a new public top-level module needs a layer in LAYERS"
    return "core"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_graph_is_read():
    # the reader sees relative, absolute, lazy and package-level imports
    assert "mmcontext._keys" in GRAPH["mmcontext.pp._prepare"]
    assert "mmcontext.data._store" in GRAPH["mmcontext.training._inputs"]
    assert "mmcontext.models" in GRAPH["mmcontext.tl._embed"]  # a lazy / TYPE_CHECKING import of the namespace
    assert {"mmcontext.pp", "mmcontext.tl", "mmcontext.pl"} <= GRAPH["mmcontext"]


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, "modules that import each other (directly or round a loop): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_imports_run_down_the_layers():
    upward = [
        f"{a} ({layer(a)}) imports {b} ({layer(b)})"
        for a, targets in GRAPH.items()
        for b in sorted(targets)
        if LAYERS[layer(b)] > LAYERS[layer(a)] and (a, b) not in PUBLIC_SHIMS
    ]
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(upward)


def test_public_shims_are_still_needed():
    for a, b in PUBLIC_SHIMS:
        assert b in GRAPH[a], f"{a} no longer imports {b}: drop it from PUBLIC_SHIMS"


@pytest.mark.parametrize("part", ["models", "data", "ontology"])
def test_lower_layers_do_not_import_anndata(part):
    offenders = [m for m in MODULES if layer(m) == part and {"anndata", "scanpy"} & _external(m)]
    assert not offenders, f"{part}/ must work on arrays, not AnnData: {offenders}"


@pytest.mark.parametrize("part", ["core", "ontology", "data"])
def test_layers_below_models_do_not_import_torch(part):
    # _compat wraps sentence-transformers' private API; _provenance hashes the text tower's tensors (both lazily)
    allowed = {"mmcontext._compat", "mmcontext._provenance"}
    offenders = [
        m
        for m in MODULES
        if layer(m) == part and m not in allowed and {"torch", "sentence_transformers"} & _external(m)
    ]
    assert not offenders, f"{part}/ must not need torch: {offenders}"
