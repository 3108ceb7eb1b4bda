"""Registry of chain kinds a node can run, and the small contract each kind implements.

A kind owns its genesis format and how its ledger is opened over the node database; the
generic node owns everything else. Kinds are imported lazily so that `kakehashi node` for
one kind never imports the other's ledger.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from chains.node.app import ChainApp
from chains.node.config import NodeConfig
from chains.node.db import NodeDatabase

MODULES = {"evm": "chains.node.apps.evm", "corda": "chains.node.apps.corda"}


class ChainKind(Protocol):
    name: str

    def init_genesis(self, home: Path, chain_id: str, validators: int, genesis_time_ns: int) -> dict[str, Any]:
        """Write HOME/genesis.json and HOME/keys/*; return a JSON-able summary for the operator."""
        ...

    def open_app(self, config: NodeConfig, db: NodeDatabase) -> ChainApp:
        """Open the ledger at the last height committed in ``db`` (genesis when empty)."""
        ...


def chain_kind(name: str) -> ChainKind:
    if name not in MODULES:
        raise ValueError(f"unknown chain kind {name!r}; expected one of {sorted(MODULES)}")
    module = importlib.import_module(MODULES[name])
    kind: ChainKind = module.KIND
    return kind
