"""Block event source: a node's StreamBlocks with reconnect and backfill.

The relayer must see every block exactly once and in order, across node restarts and
network blips, or it would miss SendPacket events. So the source remembers the last
height it handed out, reconnects with exponential backoff from the next height (the node
backfills from its database), and drops anything at or below what it already delivered.
After every reconnect it calls ``on_reconnect``: events may have been produced while it was
away, and the supervisor answers by clearing packets from chain state (never from memory).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import structlog

from chains.node.client import NodeClient, NodeError
from kakehashi.node.v1 import node_pb2

log = structlog.get_logger("kakehashi.events")


class BlockSource:
    def __init__(
        self,
        client: NodeClient,
        start_height: int,
        *,
        on_reconnect: Callable[[int], Awaitable[None]] | None = None,
        initial_backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        results_only: bool = False,
    ) -> None:
        self.client = client
        self.last_height = max(start_height - 1, 0)
        self.on_reconnect = on_reconnect
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.reconnects = 0
        self.results_only = results_only

    async def blocks(self) -> AsyncIterator[node_pb2.Block]:
        backoff = self.initial_backoff_s
        first = True
        while True:
            try:
                if not first:
                    self.reconnects += 1
                    log.info("block stream reconnected", node=self.client.address, from_height=self.last_height + 1)
                    if self.on_reconnect is not None:
                        await self.on_reconnect(self.last_height)
                first = False
                async for blk in self.client.stream_blocks(self.last_height + 1, results_only=self.results_only):
                    backoff = self.initial_backoff_s
                    if blk.height <= self.last_height:
                        continue
                    if blk.height != self.last_height + 1 and self.last_height > 0:
                        log.warning("block stream skipped heights (pruned?)", expected=self.last_height + 1,
                                    got=blk.height)
                    self.last_height = blk.height
                    yield blk
                raise NodeError("StreamBlocks", grpc.StatusCode.UNAVAILABLE, "stream ended by the node")
            except NodeError as exc:
                log.warning("block stream lost", node=self.client.address, error=str(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
