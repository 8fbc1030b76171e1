"""The package's import structure, read from the source (every import statement, lazy ones too).

Training and inference are two sides that meet only in a checkpoint (docs/architecture.md): inference (io,
match, models, predict, evaluate) must not reach train, data, generate, validation, real or gap, even
through a function-level import; the base (errors, files, pool, config, symmetry, wyckoff, structure,
simulate) imports neither side; nothing below the CLI imports it; and no two modules import each
other, directly or around a circle. Imports under ``if TYPE_CHECKING:`` are annotations, not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import synthxrd

ROOT = Path(synthxrd.__file__).parent

INFERENCE = ("synthxrd.io", "synthxrd.match", "synthxrd.models", "synthxrd.predict", "synthxrd.evaluate",
             "synthxrd.peaks")
TRAINING = ("synthxrd.train", "synthxrd.data", "synthxrd.generate", "synthxrd.validation", "synthxrd.real",
            "synthxrd.gap", "synthxrd.modelcard")
BASE = ("synthxrd.errors", "synthxrd.files", "synthxrd.pool", "synthxrd.config", "synthxrd.symmetry",
        "synthxrd.wyckoff", "synthxrd.structure", "synthxrd.simulate")
CLI = ("synthxrd.cli", "synthxrd.__main__", "synthxrd.quickstart", "synthxrd.bench")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST):
    """Import nodes anywhere in ``tree`` (functions, classes, try blocks), except TYPE_CHECKING blocks."""
    for node in ast.iter_child_nodes(tree):
        if _type_checking_block(node):
            yield from (n for child in node.orelse for n in _imports_of(child))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _imports(node)


def _owner(name: str) -> str | None:
    """The module of ``name`` (a module, or an attribute of one)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(module: str) -> set[str]:
    """synthxrd modules ``module`` imports, without its own ancestors (Python imports those first anyway)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
            targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
        for target in targets:
            owner = _owner(target) if target.startswith("synthxrd") else None
            if owner and owner != module and not module.startswith(owner + "."):
                found.add(owner)
    return found


GRAPH = {module: imported_modules(module) for module in MODULES}


def _in(module: str, side: tuple[str, ...]) -> bool:
    return any(module == s or module.startswith(s + ".") for s in side)


def reachable(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_walker_sees_lazy_imports_and_skips_annotations():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import synthxrd.train\n"
                     "def f():\n    from synthxrd import data\n")
    names = [n.module or n.names[0].name for n in _imports(tree)]
    assert names == ["typing", "synthxrd"]
    assert "synthxrd.models.checkpoint" in GRAPH["synthxrd.predict"]  # a top-level import is found


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, INFERENCE)))
def test_inference_does_not_reach_training(module):
    bad = sorted(m for m in reachable(module) | {module} if _in(m, TRAINING) or _in(m, CLI))
    assert not bad, f"{module} imports (perhaps through others) {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, BASE)))
def test_base_imports_neither_side(module):
    bad = sorted(m for m in GRAPH[module] if _in(m, INFERENCE + TRAINING + CLI))
    assert not bad, f"{module} imports {bad}"


def test_only_the_cli_imports_the_cli():
    bad = sorted((m, n) for m, deps in GRAPH.items() if not _in(m, CLI) for n in deps if _in(n, CLI))
    assert not bad


def test_no_import_circle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"


def test_inference_loads_without_numba_and_simulate_pattern_stays_the_function():
    import subprocess
    import sys

    code = ("import sys, types\n"
            "import synthxrd.io, synthxrd.predict, synthxrd.evaluate, synthxrd.simulate.common\n"
            "assert 'numba' not in sys.modules, 'numba imported by inference'\n"
            "import synthxrd.simulate.pattern\n"
            "from synthxrd import simulate\n"
            "assert not isinstance(simulate.pattern, types.ModuleType) and callable(simulate.pattern)\n"
            "assert simulate.peaks is sys.modules['synthxrd.simulate.pattern'].peaks\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
