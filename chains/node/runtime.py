"""The node's block loop, mempool and block fan-out (asyncio).

One coroutine owns block production, so state changes are serial and the app stays a
plain synchronous state machine. A block is produced every ``block_period`` (empty blocks
too: the counterparty's light client needs the time to advance for timeouts to be
provable) or as soon as ``max_block_txs`` are waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog

from chains.node.app import ChainApp, ProducedBlock, TxOutcome, TxRejected
from chains.node.db import DatabaseError, NodeDatabase
from chains.node.limits import DEFAULT_MEMPOOL_BYTES, MAX_BLOCK_TX_BYTES
from chains.node.prune import Pruner
from kakehashi.node.v1 import node_pb2

log = structlog.get_logger("kakehashi.node")


class MempoolFull(RuntimeError):
    """The mempool is at capacity; the client should retry later."""


class BlockLoopHalted(RuntimeError):
    """Block production failed in a way a retry cannot fix; the node must stop (and be restarted,
    which reopens it at its last committed height) rather than keep answering with a dead chain."""


@dataclass(frozen=True)
class RuntimeConfig:
    block_period_s: float = 1.0
    max_block_txs: int = 500
    max_block_bytes: int = MAX_BLOCK_TX_BYTES  # raw txs per block; the first tx always fits
    max_mempool: int = 10_000
    max_mempool_bytes: int = DEFAULT_MEMPOOL_BYTES
    default_wait_s: float = 30.0
    retain_heights: int = 0  # 0 = serve state and proofs at every height


def outcome_to_proto(o: TxOutcome, height: int, index: int) -> node_pb2.TxResult:
    return node_pb2.TxResult(
        tx_hash=o.tx_hash,
        status=node_pb2.TX_STATUS_COMMITTED if o.ok else node_pb2.TX_STATUS_FAILED,
        height=height,
        reason=o.reason,
        events=[
            node_pb2.Event(type=e.type, attributes=[node_pb2.Attribute(key=k, value=v) for k, v in e.attributes])
            for e in o.events
        ],
        cost=o.cost,
        index=index,
    )


def block_to_proto(b: ProducedBlock) -> node_pb2.Block:
    return node_pb2.Block(
        height=b.height,
        time_ns=b.time_ns,
        hash=b.hash,
        header=b.header,
        txs=list(b.txs),
        results=[outcome_to_proto(o, b.height, i) for i, o in enumerate(b.results)],
    )


def persist_block(db: NodeDatabase, block: ProducedBlock) -> node_pb2.Block:
    """Write ``block`` as its height in one database transaction (the block, its tx results, its
    meta and flat-state changes) and return it as served. The block loop and an app committing
    its genesis block both persist this way, so a height reads back the same whichever wrote it;
    the caller then commits (or, on DatabaseError, discards) the block in the app."""
    proto = block_to_proto(block)
    db.commit_height(
        block.height,
        block.hash,
        proto.SerializeToString(deterministic=True),
        [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results],
        block.meta,
        block.state,
    )
    return proto


class NodeRuntime:
    def __init__(
        self,
        app: ChainApp,
        db: NodeDatabase,
        config: RuntimeConfig | None = None,
        clock: Callable[[], int] = time.time_ns,
        pruner: Pruner | None = None,
    ) -> None:
        self.app = app
        self.db = db
        self.pruner = pruner
        self.config = config or RuntimeConfig()
        self.clock = clock
        self._mempool: OrderedDict[bytes, bytes] = OrderedDict()
        self._mempool_bytes = 0
        self._pending_raw: dict[bytes, bytes] = {}  # raw tx -> its hash, for every mempool tx
        self._rejected: dict[bytes, str] = {}
        self._new_block = asyncio.Condition()
        self._wake = asyncio.Event()
        self._stopping = False
        self._latest_block: node_pb2.Block | None = None
        latest = self.block(self.db.latest_height()) if self.db.latest_height() else None
        self.last_time_ns = latest.time_ns if latest is not None else 0

    # --- submission ----------------------------------------------------------------

    def submit(self, tx: bytes) -> bytes:
        """Admit ``tx`` to the mempool; its hash. Room is checked before the tx is decoded, so
        a flood against a full mempool costs no decoding or signature checks (and fills no
        cache); a tx already waiting gets its hash again even then."""
        waiting = self._pending_raw.get(tx)
        if waiting is not None:
            return waiting
        self._check_room(len(tx))
        tx_hash = self.app.check_tx(tx)  # raises TxRejected
        if self.db.get_tx(tx_hash) is not None:
            raise TxRejected(f"transaction 0x{tx_hash.hex()} is already committed")
        if tx_hash in self._mempool:
            return tx_hash
        self._mempool[tx_hash] = tx
        self._pending_raw[tx] = tx_hash
        self._mempool_bytes += len(tx)
        if len(self._mempool) >= self.config.max_block_txs or self._mempool_bytes >= self.config.max_block_bytes:
            self._wake.set()
        return tx_hash

    def _check_room(self, size: int) -> None:
        cfg = self.config
        if len(self._mempool) >= cfg.max_mempool:
            raise MempoolFull(f"mempool is full ({cfg.max_mempool} transactions)")
        if self._mempool_bytes + size > cfg.max_mempool_bytes:
            raise MempoolFull(f"mempool is full ({self._mempool_bytes} of {cfg.max_mempool_bytes} bytes; "
                              f"this transaction has {size})")

    def mempool_bytes(self) -> int:
        return self._mempool_bytes

    def earliest_height(self) -> int:
        """Oldest height whose state and proofs are served (see RuntimeConfig.retain_heights)."""
        earliest = self.app.earliest_height()
        if self.config.retain_heights:
            earliest = max(earliest, self.app.latest_height() - self.config.retain_heights + 1)
        return earliest

    def mempool_size(self) -> int:
        return len(self._mempool)

    def tx_result(self, tx_hash: bytes) -> node_pb2.TxResult:
        stored = self.db.get_tx(tx_hash)
        if stored is not None:
            return node_pb2.TxResult.FromString(stored[2])
        if tx_hash in self._mempool:
            return node_pb2.TxResult(tx_hash=tx_hash, status=node_pb2.TX_STATUS_PENDING)
        return node_pb2.TxResult(tx_hash=tx_hash, status=node_pb2.TX_STATUS_UNKNOWN)

    async def wait_result(self, tx_hash: bytes, timeout_s: float | None = None) -> node_pb2.TxResult:
        deadline = asyncio.get_running_loop().time() + (timeout_s or self.config.default_wait_s)
        async with self._new_block:
            while True:
                res = self.tx_result(tx_hash)
                if res.status in (node_pb2.TX_STATUS_COMMITTED, node_pb2.TX_STATUS_FAILED):
                    return res
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    return res
                try:
                    await asyncio.wait_for(self._new_block.wait(), left)
                except TimeoutError:
                    return self.tx_result(tx_hash)

    # --- blocks --------------------------------------------------------------------

    def block(self, height: int) -> node_pb2.Block | None:
        latest = self._latest_block
        if latest is not None and latest.height == height:
            out = node_pb2.Block()
            out.CopyFrom(latest)  # callers may edit what they get (StreamBlocks drops txs)
            return out
        data = self.db.get_block(height)
        return None if data is None else node_pb2.Block.FromString(data)

    def latest_header(self) -> tuple[int, int, bytes]:
        """(height, time_ns, hash) of the newest committed block, without decoding it again."""
        latest = self._latest_block
        if latest is None:
            height = self.db.latest_height()
            blk = self.block(height) if height else None
            if blk is None:
                return 0, 0, b""
            self._latest_block = blk
            latest = blk
        return latest.height, latest.time_ns, latest.hash

    async def stream_blocks(self, from_height: int) -> AsyncIterator[node_pb2.Block]:
        """Committed blocks from ``from_height`` on, then each new one as it commits."""
        next_height = max(from_height, 1)
        while not self._stopping:
            latest = self.db.latest_height()
            while next_height <= latest:
                blk = self.block(next_height)
                if blk is None:  # pruned history: skip to what is retained
                    next_height += 1
                    continue
                yield blk
                next_height += 1
            async with self._new_block:
                if self.db.latest_height() < next_height and not self._stopping:
                    await self._new_block.wait()

    def _next_batch(self) -> list[tuple[bytes, bytes]]:
        """The mempool head in arrival order, up to the block's tx count and byte budgets
        (stopping at the first tx that does not fit, so a sender's txs keep their order)."""
        batch: list[tuple[bytes, bytes]] = []
        size = 0
        for item in itertools.islice(self._mempool.items(), self.config.max_block_txs):
            if batch and size + len(item[1]) > self.config.max_block_bytes:
                break
            batch.append(item)
            size += len(item[1])
        return batch

    def produce_once(self) -> ProducedBlock:
        """Produce, persist and commit one block from the mempool head (synchronous)."""
        batch = self._next_batch()
        now = max(self.clock(), self.last_time_ns + 1)
        block = self.app.produce_block([tx for _, tx in batch], now)
        try:
            proto = persist_block(self.db, block)
        except DatabaseError:
            self.app.discard_block(block)
            raise
        self.app.commit_block(block)
        self.last_time_ns = block.time_ns
        self._latest_block = proto
        deferred = set(block.deferred)
        for tx_hash, _ in batch:
            if tx_hash not in deferred:
                raw = self._mempool.pop(tx_hash, None)
                if raw is not None:
                    self._mempool_bytes -= len(raw)
                    self._pending_raw.pop(raw, None)
        return block

    async def _announce(self) -> None:
        async with self._new_block:
            self._new_block.notify_all()

    async def run(self) -> None:
        log.info("block loop started", chain_id=self.app.chain_id, height=self.app.latest_height())
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.block_period_s)
            self._wake.clear()
            if self._stopping:
                break
            try:
                block = self.produce_once()
            except DatabaseError as exc:
                log.error("block commit failed; will retry", error=str(exc))
                continue
            except Exception as exc:
                # Anything else leaves the app in an unknown state between two heights: stop.
                log.exception("block production failed; the node stops", height=self.app.latest_height() + 1)
                raise BlockLoopHalted(f"producing block {self.app.latest_height() + 1} failed: "
                                      f"{type(exc).__name__}: {exc}") from exc
            if block.txs:
                log.info("block committed", height=block.height, txs=len(block.txs))
            await self._announce()
            self._prune(block.height)
            if (len(self._mempool) >= self.config.max_block_txs
                    or self._mempool_bytes >= self.config.max_block_bytes):
                self._wake.set()

    def _prune(self, height: int) -> None:
        """One bounded pruning step; a failure is logged and retried at the next block (the
        chain goes on: pruning only frees disk)."""
        if self.pruner is None:
            return
        try:
            self.pruner.step(height)
        except Exception as exc:
            log.error("pruning step failed; retried after the next block", error=f"{type(exc).__name__}: {exc}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        await self._announce()
