"""A stand-in for :class:`relayer.core.watch.ChainWatch` in unit tests of one module.

The fake node decides each tx's outcome (``outcome_of``); ``wait_tx`` returns it as the block
stream would, optionally after the test releases it, so tests can hold txs "in flight".
"""

from __future__ import annotations

import asyncio
from typing import Any

from kakehashi.node.v1 import node_pb2
from relayer.core.watch import Head


class ResultWatch:
    def __init__(self, node: Any, *, held: bool = False) -> None:
        self.node = node
        self.release = asyncio.Event()
        if not held:
            self.release.set()

    async def start(self) -> Head:
        return Head(1, 0)

    async def current(self) -> Head:
        return Head(1, 0)

    async def wait_tx(self, tx_hash: bytes, timeout_s: float = 60.0) -> node_pb2.TxResult:
        await self.release.wait()
        result: node_pb2.TxResult = self.node.outcome_of(bytes(tx_hash))
        return result

    async def close(self) -> None:
        return None
