"""One block stream per node, feeding everything that waits on a chain: heads, tx outcomes, events.

Why: a client that settles hundreds of trades at once used to learn each tx's outcome by
polling ``GetTxResult`` every 100 ms and the chain's time by asking ``Status`` per trade, so
the questions grew with the trades in flight while the answers only change once per block.
A :class:`ChainWatch` reads the node's block stream (results only, no raw txs) once and
answers all of them locally: the head height and time, each submitted tx's result, and each
block's events for whoever subscribed. A stream that breaks reconnects and backfills from
the last height seen (:class:`relayer.core.events.BlockSource`), so no outcome is missed.

A tx that never shows up in a block (refused at block production and dropped) is asked for
once with ``GetTxResult`` after ``lost_after_blocks`` blocks, so a waiter always ends.
:meth:`ChainWatch.wait_landed` goes one step further for a tx the node no longer knows at all
(a restart empties the mempool): it sends the same signed bytes again, which can land at most
once (same hash; an EVM nonce or a Corda input is spent only once).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from chains.node.client import NodeClient, NodeError
from kakehashi.node.v1 import node_pb2
from relayer.core.events import BlockSource
from relayer.core.tasks import cancel_and_wait

log = structlog.get_logger("kakehashi.watch")

FINAL = (node_pb2.TX_STATUS_COMMITTED, node_pb2.TX_STATUS_FAILED)
# Blocks whose tx results are kept for a waiter that asks after the block went by (a waiter
# normally registers right after submitting, long before its block): memory stays a few blocks'
# results, not every result ever seen (at 10k trades that alone was tens of MB).
REMEMBERED_BLOCKS = 8


@dataclass(frozen=True, slots=True)
class Head:
    height: int
    time_ns: int


BlockListener = Callable[[node_pb2.Block], None]


# What a result the node gives no reason for means, so an outcome never reads "failed: "
# (the chaos soak saw 96 trades end with an empty reason when a node restart dropped its mempool).
_NO_REASON = {
    node_pb2.TX_STATUS_UNKNOWN: "the node does not know this tx: it was dropped before any block took it "
                                "(a node restart empties the mempool), so it did nothing",
    node_pb2.TX_STATUS_PENDING: "still in the node's mempool when the wait ended; it may yet land",
}
# How many times ``wait_landed`` sends a dropped tx again. The chaos soak's 71 faults (25 node
# kills) dropped 429 of 10,000 DvP locks with the mempools of killed nodes; each needs one resend.
RESUBMITS = 3


class ChainWatch:
    """The block stream of one node and the waiters on it; see the module docstring."""

    def __init__(self, node: NodeClient, *, lost_after_blocks: int = 8) -> None:
        self.node = node
        self.lost_after_blocks = lost_after_blocks
        self.head: Head | None = None
        self._results: dict[bytes, node_pb2.TxResult] = {}
        self._by_height: OrderedDict[int, list[bytes]] = OrderedDict()
        self._waiters: dict[bytes, tuple[asyncio.Future[node_pb2.TxResult], int]] = {}
        self._listeners: list[BlockListener] = []
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._head_changed = asyncio.Event()
        self._floor = 0  # a height this process knows is committed (read-your-writes)
        self.blocks_seen = 0

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> Head:
        """Start following from the node's next block; returns the head it started at."""
        # One start at a time: callers arriving while the first awaits the node's status used to
        # each start a follower of their own, only the last one kept, the rest never stopped
        # (found by the chaos soak: a 64-trade feed held 64+ block streams per node open).
        async with self._starting:
            if self._task is None:
                status = await self.node.status()
                self.head = Head(int(status.latest_height), int(status.latest_time_ns))
                source = BlockSource(self.node, self.head.height + 1, results_only=True)
                self._task = asyncio.create_task(self._follow(source), name=f"watch:{self.node.address}")
        assert self.head is not None
        return self.head

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        for fut, _ in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    @property
    def following(self) -> bool:
        """Whether the stream task runs (the head is then at most one delivery behind)."""
        return self._task is not None and not self._task.done()

    def subscribe(self, listener: BlockListener) -> None:
        """Call ``listener`` with every new block (results and events, no raw txs), in order."""
        self._listeners.append(listener)

    # --- answers -------------------------------------------------------------------------

    async def current(self) -> Head:
        """The newest block seen on the stream (starting the stream if needed), never below a
        height :meth:`saw` was told of: a caller's own committed write is always visible."""
        if self.head is None or self._task is None:
            await self.start()
        assert self.head is not None
        if self.head.height < self._floor:
            return await self.next_block(self._floor - 1, timeout_s=30.0)
        return self.head

    @property
    def floor(self) -> int:
        """The highest height this process knows is committed with its own write."""
        return self._floor

    def saw(self, height: int) -> None:
        """A tx of this process committed at ``height`` (learnt outside the stream)."""
        self._floor = max(self._floor, height)

    async def next_block(self, after: int, timeout_s: float | None = None) -> Head:
        """Wait until a block above height ``after`` has been seen."""
        if self.head is None or self._task is None:
            await self.start()
        assert self.head is not None
        head = self.head
        loop = asyncio.get_running_loop()
        limit = None if timeout_s is None else loop.time() + timeout_s
        while head.height <= after:
            self._head_changed.clear()
            left = None if limit is None else limit - loop.time()
            if left is not None and left <= 0:
                raise TimeoutError(f"no block above {after} within {timeout_s} s")
            await asyncio.wait_for(self._head_changed.wait(), left)
            head = self.head
        return head

    async def wait_tx(self, tx_hash: bytes, timeout_s: float = 60.0) -> node_pb2.TxResult:
        """The result of a submitted tx, from the block that carries it.

        A tx not seen within ``lost_after_blocks`` blocks (or by ``timeout_s``) is asked for
        directly: a PENDING answer keeps waiting, anything else is returned as it is.
        """
        tx_hash = bytes(tx_hash)
        head = await self.current()
        seen = self._results.get(tx_hash)
        if seen is not None:
            return seen
        loop = asyncio.get_running_loop()
        limit = loop.time() + timeout_s
        while True:
            entry = self._waiters.get(tx_hash)
            if entry is None:
                fut: asyncio.Future[node_pb2.TxResult] = loop.create_future()
                self._waiters[tx_hash] = (fut, head.height)
            else:
                fut = entry[0]
            left = limit - loop.time()
            try:
                return await asyncio.wait_for(asyncio.shield(fut), max(left, 0.0))
            except TimeoutError:
                pass
            # Not in any block so far: ask once (dropped, or a stream we could not follow).
            self._waiters.pop(tx_hash, None)
            try:
                got = await self.node.tx_result(tx_hash)
            except NodeError as exc:
                log.warning("tx result lookup failed", tx=tx_hash.hex()[:16], error=str(exc))
                got = node_pb2.TxResult(tx_hash=tx_hash, status=node_pb2.TX_STATUS_UNKNOWN)
            if got.status != node_pb2.TX_STATUS_PENDING or loop.time() >= limit:
                if not got.reason:
                    got.reason = _NO_REASON.get(got.status, "")
                return got
            head = await self.current()

    async def wait_landed(self, tx: bytes, tx_hash: bytes, *, resubmits: int = RESUBMITS,
                          timeout_s: float = 60.0) -> node_pb2.TxResult:
        """``wait_tx``, sending ``tx`` (already submitted once) again while the node does not know it.

        UNKNOWN means the node has no record of the tx (dropped with its mempool), or that we
        could not ask; a resend answered "already committed" is the second case, and the next
        wait reads its result. Any other refusal of the resend ends the wait with its reason.
        """
        result = await self.wait_tx(tx_hash, timeout_s)
        for attempt in range(1, resubmits + 1):
            if result.status != node_pb2.TX_STATUS_UNKNOWN:
                break
            try:
                await self.node.submit(tx)
                log.warning("tx unknown to the node (dropped); sent again", tx=bytes(tx_hash).hex()[:16],
                            attempt=attempt)
            except NodeError as exc:
                if "already committed" not in (exc.details or ""):
                    result.reason = f"{result.reason}; sending it again was refused: {exc.details or exc}"
                    break
            result = await self.wait_tx(tx_hash, timeout_s)
        return result

    # --- the stream ----------------------------------------------------------------------

    async def _follow(self, source: BlockSource) -> None:
        async for blk in source.blocks():
            self._on_block(blk)

    def _on_block(self, blk: node_pb2.Block) -> None:
        self.blocks_seen += 1
        self.head = Head(int(blk.height), int(blk.time_ns))
        kept = self._by_height.setdefault(int(blk.height), [])
        for res in blk.results:
            if res.status not in FINAL:
                continue
            h = bytes(res.tx_hash)
            self._results[h] = res
            kept.append(h)
            waiter = self._waiters.pop(h, None)
            if waiter is not None and not waiter[0].done():
                waiter[0].set_result(res)
        while len(self._by_height) > REMEMBERED_BLOCKS:
            for h in self._by_height.popitem(last=False)[1]:
                self._results.pop(h, None)
        for listener in self._listeners:
            try:
                listener(blk)
            except Exception as exc:  # one broken listener must not stop the stream
                log.warning("block listener failed", error=f"{type(exc).__name__}: {exc}")
        self._head_changed.set()
        self._expire_lost(int(blk.height))

    def _expire_lost(self, height: int) -> None:
        """Wake waiters whose tx has not appeared for ``lost_after_blocks`` blocks: they ask."""
        for h, (fut, since) in list(self._waiters.items()):
            if height - since >= self.lost_after_blocks and not fut.done():
                self._waiters.pop(h, None)
                fut.set_exception(TimeoutError("not in any block yet"))
