"""The Corda node's app (CordaApp over SQLite) as a pair host, for tests and benchmarks.

Every step is a produced, persisted and committed block, exactly as the node's block loop
does it, so IBC and DvP flows written against the in-memory hosts run over the real ledger
store, checkpoints and batch signatures.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message as PbMessage

from chains.corda.ibc_host import ibc_command
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.ibc.errors import InvalidMessage, TxFailed
from chains.ibc.events import Event, EventLog
from chains.node.app import ProducedBlock
from chains.node.apps.corda import CordaApp
from chains.node.db import NodeDatabase
from chains.node.runtime import block_to_proto
from lightclients.crypto import ed25519_public_key, sha256
from lightclients.interface import Height
from tests.support.basehost import Block
from tests.support.cordahost import CordaHost

SEC = 1_000_000_000
RELAYER_SEED = sha256(b"node-host-relayer")


class NodeCordaHost(CordaHost):
    """CordaApp behind the CordaHost interface; ``tx`` returns the IBC handler's results."""

    def __init__(self, app: CordaApp, db: NodeDatabase, block_ns: int = 5 * SEC) -> None:
        self.app, self.db = app, db
        self.chain_id = app.chain_id
        self.block_ns = block_ns
        self.prefix = b"ibc"
        self.cluster = app.cluster
        self.tree = self.store = app.cluster.ibc_store
        self.handler = app.handler
        self.seeds = list(app.cluster.member_seeds)
        self.events = EventLog()
        self.blocks = {}
        self._salt = 0
        self._results: list[object] = []
        execute = app.handler.execute

        def kept(messages: Any, height: Height, now_ns: int) -> Any:
            out = execute(messages, height, now_ns)
            self._results = list(out[0])
            return out

        app.handler.execute = kept  # type: ignore[method-assign]
        latest = app.cluster.latest
        assert latest is not None
        cp = latest.checkpoint
        self.height = Height(app.revision_number, cp.height)
        self.now_ns = cp.timestamp
        self.blocks[self.height] = Block(self.height, cp.timestamp, bytes(cp.ibc_root))

    def block(self, txs: list[bytes]) -> ProducedBlock:
        self.next_block()
        block = self.app.produce_block(txs, self.now_ns)
        proto = block_to_proto(block)
        self.db.commit_height(block.height, block.hash, proto.SerializeToString(deterministic=True),
                              [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results],
                              block.meta)
        self.app.commit_block(block)
        latest = self.app.cluster.latest
        assert latest is not None and latest.checkpoint.height == self.height.revision_height
        cp = latest.checkpoint
        self.blocks[self.height] = Block(self.height, cp.timestamp, bytes(cp.ibc_root))
        for result in block.results:
            for e in result.events:
                self.events.emit(self.height, Event(e.type, e.attributes))
        return block

    def submit(self, stx: SignedTransaction) -> None:
        (result,) = self.block([stx.encode()]).results
        assert result.ok, result.reason

    def tx(self, *msgs: PbMessage) -> list[object]:
        self._salt += 1
        wtx = WireTransaction(inputs=(), outputs=(), notary=self.cluster.identity,
                              privacy_salt=sha256(b"node-relayer" + self._salt.to_bytes(8, "big")),
                              commands=tuple(ibc_command(m, [ed25519_public_key(RELAYER_SEED)]) for m in msgs))
        stx = SignedTransaction(wtx).sign(RELAYER_SEED)
        self._results = []
        (result,) = self.block([stx.encode()]).results
        if not result.ok:
            raise TxFailed(0, InvalidMessage(result.reason))
        return self._results

    def idle(self, blocks: int = 1, advance_ns: int | None = None) -> None:
        for _ in range(blocks):
            self.block([])
