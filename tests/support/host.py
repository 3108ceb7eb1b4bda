"""A test host chain: the IBC core over a provable store, with blocks, a clock and a bank.

Each transaction is one block: height + 1, time + block interval, then the store root is
committed and remembered for that height, so the counterparty's client can be updated to it
and proofs can be made against it. ``provable=False`` swaps the sparse Merkle tree for a dict
(benchmarks and unit tests that use the proof-accepting client).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import Message

from chains.ibc.apps import transfer
from chains.ibc.context import Context
from chains.ibc.events import EventLog
from chains.ibc.handler import IbcHandler
from chains.ibc.host.store import MemoryStore
from chains.store.smt import SparseMerkleTree
from lightclients.crypto import sha256
from lightclients.interface import Height, LightClientModule
from tests.support import rootclient
from tests.support.basehost import Block, ChainHost

T = TypeVar("T")

SECOND = 1_000_000_000
START_NS = 1_700_000_000 * SECOND


class SmtStore:
    """IbcStore over the project's sparse Merkle tree; keys are the ICS-24 path bytes."""

    def __init__(self) -> None:
        self.tree = SparseMerkleTree()

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.tree.get(key)
        return value

    def set(self, key: bytes, value: bytes) -> None:
        self.tree.set(key, value)

    def delete(self, key: bytes) -> None:
        self.tree.delete(key)

    def commit(self) -> bytes:
        root: bytes = self.tree.commit()
        return root

    def prove(self, root: bytes, key: bytes) -> bytes:
        proof: bytes = self.tree.at(root).prove_bytes(key)
        return proof

    def prove_many(self, root: bytes, keys: list[bytes]) -> bytes:
        proof: bytes = self.tree.at(root).prove_many_bytes(keys)
        return proof


class PlainStore(MemoryStore):
    """A dict store with an O(1) content digest as its 'root' (XOR of entry hashes): not a
    commitment anything can be proven against, but it changes exactly when content does."""

    def __init__(self) -> None:
        super().__init__()
        self.digest = 0

    @staticmethod
    def _entry(key: bytes, value: bytes) -> int:
        return int.from_bytes(sha256(len(key).to_bytes(4, "big") + key + value), "big")

    def set(self, key: bytes, value: bytes) -> None:
        self.delete(key)
        super().set(key, value)
        self.digest ^= self._entry(key, value)

    def delete(self, key: bytes) -> None:
        old = self.data.get(key)
        if old is not None:
            self.digest ^= self._entry(key, old)
        super().delete(key)

    def commit(self) -> bytes:
        return self.digest.to_bytes(32, "big")

    def prove(self, root: bytes, key: bytes) -> bytes:
        return b"unchecked"

    def prove_many(self, root: bytes, keys: list[bytes]) -> bytes:
        raise NotImplementedError("a PlainStore proves nothing; use provable=True for multiproofs")


@dataclass
class Host(ChainHost):
    """The test-only root host: IBC core over an SMT, trusted by the ``testroot`` client."""

    chain_id: str
    provable: bool = True
    verify_proofs: bool = True
    revision: int = 1
    block_ns: int = 5 * SECOND
    prefix: bytes = b"ibc"
    extra_clients: Sequence[LightClientModule] = ()
    blocks: dict[Height, Block] = field(default_factory=dict)

    client_type = rootclient.CLIENT_TYPE

    def __post_init__(self) -> None:
        self.store: SmtStore | PlainStore = SmtStore() if self.provable else PlainStore()
        self.events = EventLog()
        modules: dict[str, LightClientModule] = {
            rootclient.CLIENT_TYPE: rootclient.RootClient(verify_proofs=self.verify_proofs)
        }
        for module in self.extra_clients:
            modules[module.client_type] = module
        self.handler = IbcHandler(self.store, modules, self.prefix, self.events)
        self.transfer = transfer.install(self.handler)
        self.height = Height(self.revision, 1)
        self.now_ns = START_NS
        self._commit()

    def _commit(self) -> None:
        root = self.store.commit()
        self.blocks[self.height] = Block(self.height, self.now_ns, root)

    def tx(self, *msgs: Message) -> list[object]:
        """Execute msgs in a new block. The block is committed even when the tx fails."""
        self.next_block()
        try:
            results, _ = self.handler.execute(list(msgs), self.height, self.now_ns)
        finally:
            self._commit()
        return results

    def app_call(self, fn: Callable[[Context], T]) -> T:
        self.next_block()
        try:
            return self.handler.call(fn, self.height, self.now_ns)
        finally:
            self._commit()

    def idle(self, blocks: int = 1, advance_ns: int | None = None) -> None:
        for _ in range(blocks):
            self.next_block(advance_ns)
            self._commit()

    def prove(self, path: bytes, height: Height | None = None) -> bytes:
        block = self.blocks[height or self.height]
        return self.store.prove(block.root, path)

    def prove_many(self, paths: list[bytes], height: Height | None = None) -> bytes:
        block = self.blocks[height or self.height]
        return self.store.prove_many(block.root, paths)

    def header(self, height: Height | None = None, trusted: Height | None = None) -> bytes:
        block = self.blocks[height or self.height]
        return rootclient.header(block.height, block.time_ns, block.root)

    def conflicting_header(self, height: Height, trusted: Height) -> bytes:
        return rootclient.header(height, self.blocks[height].time_ns, b"\x66" * 32)

    def misbehaviour(self, height: Height, trusted: Height) -> bytes:
        return self.conflicting_header(height, trusted)

    def client_state(self, trusting_period_ns: int = 3600 * SECOND, max_clock_drift_ns: int = 0) -> bytes:
        return rootclient.client_state(self.chain_id, self.height, trusting_period_ns)

    def consensus_state(self) -> bytes:
        return rootclient.consensus_state(self.latest.time_ns, self.latest.root)
