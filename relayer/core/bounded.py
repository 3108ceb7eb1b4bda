"""Batches of node reads run concurrently, a bounded number at a time.

Why one helper: the relayer reads a batch's proofs and the Corda codec a batch's dvp lock
states; one round trip after another made a batch of N cost N node latencies, and under load
that dominated a relaying pass. All of them want the same thing: hide the round trips
without crowding out the node's other clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")

# Reads one batch keeps in flight to one node.
NODE_QUERY_CONCURRENCY = 16


async def gather_bounded(aws: Iterable[Awaitable[T]], limit: int = NODE_QUERY_CONCURRENCY) -> list[T]:
    """Await every one of ``aws``, at most ``limit`` at a time; results in their order."""
    slots = asyncio.Semaphore(limit)

    async def one(aw: Awaitable[T]) -> T:
        async with slots:
            return await aw

    return list(await asyncio.gather(*(one(aw) for aw in aws)))
