"""Content-addressed node storage behind the provable stores.

A trie node is stored under its own hash and never changes, so the interface is two
calls and the backing store needs no deletes or versioning: every root that was ever
committed stays readable (and provable) for as long as its nodes are kept. The chain node
backs this with SQLite and lands a height's nodes in the same transaction as its block.
"""

from __future__ import annotations

from typing import Protocol


class NodeStore(Protocol):
    """Maps a node hash to the node's encoding. Positional-only, so any naming fits."""

    def get(self, node_hash: bytes, /) -> bytes | None: ...

    def put(self, node_hash: bytes, node: bytes, /) -> None: ...


class MemoryNodeStore:
    """A dict-backed node store, for tests, benchmarks and chains that need no persistence."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def get(self, node_hash: bytes, /) -> bytes | None:
        return self.nodes.get(node_hash)

    def put(self, node_hash: bytes, node: bytes, /) -> None:
        self.nodes[bytes(node_hash)] = bytes(node)

    def __len__(self) -> int:
        return len(self.nodes)
