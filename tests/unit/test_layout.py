"""The layout rules stay true: no import cycles among the project's modules, small package tops.

Why every import counts (function-level, ``TYPE_CHECKING``, re-exports): an import moved into a
function or behind ``TYPE_CHECKING`` hides a cycle from Python's loader but not from a reader,
who still has to hold both modules in mind at once. ``from pkg import name`` depends on
``pkg.name`` when that is a module, else on ``pkg``; a submodule's implicit import of its parent
package is not counted, since every submodule has it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("chains", "lightclients", "relayer")
MAX_TOP_LEVEL = 12  # modules + subpackages directly in one package


def _modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join([*base, node.module] if node.module else base)
    else:
        mod = node.module or ""
    return [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]


def import_graph(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in the file)."""
    modules = _modules(root, packages)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(name, path, node, modules):
                    while target and target not in modules:
                        target = target.rpartition(".")[0]  # `import a.b.attr` -> module a.b
                    if target and target != name:
                        deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def crowded_packages(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, list[str]]:
    """Packages whose top level holds more than MAX_TOP_LEVEL modules and subpackages."""
    crowded: dict[str, list[str]] = {}
    for pkg in packages:
        for init in sorted((root / pkg).rglob("__init__.py")):
            here = init.parent
            entries = sorted(p.stem for p in here.glob("*.py") if p.name != "__init__.py")
            entries += sorted(p.name + "/" for p in here.iterdir() if (p / "__init__.py").is_file())
            if len(entries) > MAX_TOP_LEVEL:
                crowded[str(here.relative_to(root))] = entries
    return crowded


def test_no_import_cycles_among_the_projects_modules() -> None:
    graph = import_graph(ROOT)
    assert len(graph) > 100 and "relayer.cli.parser" in graph
    found = cycles(graph)
    detail = "; ".join(" <-> ".join(c) for c in found)
    assert not found, f"import cycles: {detail}"


def test_no_package_top_level_holds_more_than_a_dozen_modules() -> None:
    crowded = crowded_packages(ROOT)
    assert not crowded, "; ".join(f"{pkg}/ holds {len(e)}: {', '.join(e)}" for pkg, e in crowded.items())


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_see_hidden_cycles_and_crowded_packages(tmp_path: Path) -> None:
    """The checker itself: a cycle behind TYPE_CHECKING, through a relative import or a
    function-level import is found; implicit parent-package imports are not cycles."""
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg.a import A\n",
        "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\nclass A: ...\n",
        "pkg/b.py": "from .a import A\nclass B: ...\n",
        "pkg/c.py": "def f():\n    import pkg.d\n",
        "pkg/d.py": "from pkg import c\n",
        "pkg/e.py": "from pkg import a\n",  # parent __init__ imports a: not a cycle
    })
    found = cycles(import_graph(tmp_path, ["pkg"]))
    assert sorted(found) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"]]
    assert crowded_packages(tmp_path, ["pkg"]) == {}
    _write(tmp_path, {f"pkg/m{i}.py": "" for i in range(8)})
    assert list(crowded_packages(tmp_path, ["pkg"])) == ["pkg"]
