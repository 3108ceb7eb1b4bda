"""The contract between the generic node (gRPC, block loop, SQLite) and a chain's state machine.

The node knows nothing about accounts, UTXOs, seals or notaries: an EVM-style or a
Corda-style ledger plugs in by implementing :class:`ChainApp`. Keeping this seam narrow is
what lets one node implementation serve both chain kinds, and lets a real chain (Besu,
Corda) be put behind the same gRPC surface later.

Lifecycle of a height, driven by the node's block loop:
1. ``check_tx`` admits a transaction to the mempool (stateless checks only: decoding,
   signature, chain id); anything it rejects never reaches a block.
2. ``produce_block(txs, time_ns)`` executes the batch deterministically against the
   committed state, seals the result and returns it. Trie/SMT nodes it writes go to the
   node store it was built with (buffered until the database commit).
3. The node persists the block, results and ``ProducedBlock.meta`` in one SQLite transaction,
   then calls ``commit_block``; if persisting fails it calls ``discard_block`` instead. So the
   committed view the queries see never runs ahead of what is on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class TxRejected(ValueError):
    """A transaction refused at admission (malformed, bad signature, wrong chain)."""


class QueryError(ValueError):
    """A query the node cannot answer: unknown height, malformed path or arguments."""


def path_keys(paths: Sequence[str]) -> list[bytes]:
    """The store keys of IBC ``paths`` (their UTF-8 bytes), for the apps' batch queries; a
    path with no UTF-8 form is the caller's error (QueryError), not the node's."""
    keys = []
    for path in paths:
        try:
            keys.append(path.encode())
        except UnicodeEncodeError as exc:
            raise QueryError(f"path is not valid text: {exc}") from None
    return keys


@dataclass(frozen=True)
class AppEvent:
    type: str
    attributes: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class TxOutcome:
    tx_hash: bytes
    ok: bool
    reason: str = ""
    events: tuple[AppEvent, ...] = ()
    cost: int = 0


@dataclass(frozen=True)
class ProducedBlock:
    height: int
    time_ns: int
    hash: bytes
    header: bytes  # chain-native finalised header (sealed header RLP / signed checkpoint)
    txs: tuple[bytes, ...]
    results: tuple[TxOutcome, ...]
    meta: dict[str, bytes] = field(default_factory=dict)  # what restore() needs, persisted atomically
    # Changes to the node's flat index of latest state (key -> value, None deletes), persisted
    # in the height's transaction (NodeDatabase.commit_height ``state``).
    state: dict[bytes, bytes | None] = field(default_factory=dict)
    # Hashes of batch txs left out for now that stay in the mempool for a later block (e.g. a
    # nonce whose predecessor has not landed yet); every other batch tx leaves the mempool.
    deferred: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class HeaderInfo:
    height: int
    time_ns: int
    hash: bytes
    header: bytes
    client_header: bytes


@dataclass(frozen=True)
class IbcQueryResult:
    value: bytes | None
    proof: bytes
    height: int


class ChainApp(Protocol):
    kind: str
    chain_id: str
    revision_number: int

    def check_tx(self, tx: bytes) -> bytes:
        """Stateless admission checks; returns the tx hash or raises TxRejected."""
        ...

    def produce_block(self, txs: Sequence[bytes], time_ns: int) -> ProducedBlock: ...

    def commit_block(self, block: ProducedBlock) -> None: ...

    def discard_block(self, block: ProducedBlock) -> None: ...

    def latest_height(self) -> int: ...

    def earliest_height(self) -> int: ...

    def validators(self) -> list[bytes]: ...

    def header(self, height: int) -> HeaderInfo:
        """Raises QueryError for a height that is not committed or no longer retained."""
        ...

    def query_ibc(self, path: str, height: int, prove: bool) -> IbcQueryResult: ...

    def query_ibc_many(self, paths: Sequence[str], height: int, prove: bool) -> list[IbcQueryResult]:
        """``query_ibc`` of each path at one height, sharing one view of the store."""
        ...

    def query_ibc_multi(self, paths: Sequence[str], height: int) -> tuple[list[bytes | None], bytes]:
        """Values at ``paths`` and ONE multiproof of all of them at ``height`` (shared upper
        nodes sent and verified once); raises QueryError where the chain has none."""
        ...

    def packet_commitment_sequences(self, port_id: str, channel_id: str, height: int) -> list[int]: ...

    def unreceived_packets(self, port_id: str, channel_id: str, sequences: Sequence[int], height: int) -> list[int]: ...

    def unreceived_acks(self, port_id: str, channel_id: str, sequences: Sequence[int], height: int) -> list[int]: ...

    def query_app(self, query: str, args: dict[str, Any], height: int) -> Any:
        """JSON-serialisable answer to an application query; raises QueryError."""
        ...
