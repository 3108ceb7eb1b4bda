"""A minimal key-value ChainApp used only by unit tests of the generic node and relayer plumbing.

txs are b"key=value"; a tx whose value is "fail" executes but fails. The real ledgers go
through the same node in the end-to-end tests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from chains.node.app import (
    AppEvent,
    HeaderInfo,
    IbcQueryResult,
    ProducedBlock,
    QueryError,
    TxOutcome,
    TxRejected,
)
from chains.node.db import NodeDatabase
from kakehashi.node.v1 import node_pb2


class KvApp:
    """txs are b"key=value"; a tx whose value is "fail" executes but fails."""

    kind = "evm"
    chain_id = "kv-1"
    revision_number = 0

    def __init__(self, db: NodeDatabase) -> None:
        self.db = db
        self.state: dict[str, str] = json.loads(db.get_meta("state") or b"{}")
        self.height = db.latest_height()

    def check_tx(self, tx: bytes) -> bytes:
        if b"=" not in tx:
            raise TxRejected("expected key=value")
        return hashlib.sha256(tx).digest()

    def produce_block(self, txs: Sequence[bytes], time_ns: int) -> ProducedBlock:
        state = dict(self.state)
        results = []
        for tx in txs:
            k, _, v = tx.decode().partition("=")
            if v == "fail":
                results.append(TxOutcome(hashlib.sha256(tx).digest(), False, "value 'fail' refused"))
                continue
            state[k] = v
            results.append(TxOutcome(hashlib.sha256(tx).digest(), True, events=(AppEvent("set", (("key", k.encode()),)),)))
        h = self.height + 1
        header = json.dumps({"h": h, "t": time_ns, "state": state}, sort_keys=True).encode()
        self._next = state
        return ProducedBlock(h, time_ns, hashlib.sha256(header).digest(), header, tuple(txs), tuple(results),
                             {"state": json.dumps(state).encode()})

    def commit_block(self, block: ProducedBlock) -> None:
        self.state, self.height = self._next, block.height

    def discard_block(self, block: ProducedBlock) -> None:
        self._next = self.state

    def latest_height(self) -> int:
        return self.height

    def earliest_height(self) -> int:
        return 1

    def validators(self) -> list[bytes]:
        return [b"\x01" * 20]

    def header(self, height: int) -> HeaderInfo:
        if not 1 <= height <= self.height:
            raise QueryError(f"no header at height {height}")
        blk = node_pb2.Block.FromString(self.db.get_block(height) or b"")
        return HeaderInfo(height, blk.time_ns, blk.hash, blk.header, b"")

    def query_ibc(self, path: str, height: int, prove: bool) -> IbcQueryResult:
        v = self.state.get(path)
        return IbcQueryResult(None if v is None else v.encode(), b"proof" if prove else b"", height)

    def query_ibc_many(self, paths: Sequence[str], height: int, prove: bool) -> list[IbcQueryResult]:
        return [self.query_ibc(p, height, prove) for p in paths]

    def packet_commitment_sequences(self, port_id: str, channel_id: str, height: int) -> list[int]:
        return []

    def unreceived_packets(self, port_id: str, channel_id: str, sequences: Sequence[int], height: int) -> list[int]:
        return list(sequences)

    def unreceived_acks(self, port_id: str, channel_id: str, sequences: Sequence[int], height: int) -> list[int]:
        return []

    def query_app(self, query: str, args: dict[str, Any], height: int) -> Any:
        if query != "get":
            raise QueryError(f"unknown query {query!r}")
        return {"value": self.state.get(str(args.get("key")))}
