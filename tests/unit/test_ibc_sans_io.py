"""The IBC core stays sans-I/O and host-independent: checked on its imports."""

from __future__ import annotations

import ast
from pathlib import Path

import chains.ibc

FORBIDDEN = ("asyncio", "socket", "time", "datetime", "random", "os", "subprocess", "threading",
             "grpc", "sqlite3", "relayer", "chains.node", "chains.evm", "chains.corda", "chains.store")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_ibc_core_imports_no_io_clock_randomness_or_other_chains() -> None:
    root = Path(chains.ibc.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        for name in _imports(path):
            for bad in FORBIDDEN:
                assert name != bad and not name.startswith(bad + "."), f"{path.name} imports {name}"
