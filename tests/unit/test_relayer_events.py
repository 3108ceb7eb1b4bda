"""The block source survives a node restart: no gap, no duplicate, reconnect reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chains.node.client import NodeClient, RetryPolicy
from chains.node.db import NodeDatabase
from chains.node.runtime import NodeRuntime, RuntimeConfig
from chains.node.service import build_server
from relayer.core.events import BlockSource
from tests.conftest import free_port
from tests.unit.kvapp import KvApp


class Node:
    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port

    async def start(self) -> None:
        self.db = NodeDatabase(self.path)
        self.rt = NodeRuntime(KvApp(self.db), self.db, RuntimeConfig(block_period_s=0.03))
        self.server, _ = build_server(self.rt, f"127.0.0.1:{self.port}")
        await self.server.start()
        self.loop = asyncio.create_task(self.rt.run())

    async def stop(self) -> None:
        await self.rt.stop()
        await self.loop
        await self.server.stop(None)
        self.db.close()


async def test_reconnect_and_backfill_without_gaps_or_duplicates(tmp_path: Path) -> None:
    node = Node(tmp_path / "n.db", free_port())
    await node.start()
    reconnects: list[int] = []

    async def on_reconnect(last: int) -> None:
        reconnects.append(last)

    client = NodeClient(f"127.0.0.1:{node.port}", retry=RetryPolicy(attempts=1, timeout_s=2))
    source = BlockSource(client, 1, on_reconnect=on_reconnect, initial_backoff_s=0.05, max_backoff_s=0.2)
    heights: list[int] = []
    restarted = False
    try:
        async def consume() -> None:
            nonlocal restarted
            async for blk in source.blocks():
                heights.append(blk.height)
                if len(heights) == 5 and not restarted:
                    restarted = True
                    await node.stop()
                    await asyncio.sleep(0.3)  # blocks are not produced while down
                    await node.start()
                if len(heights) >= 15:
                    return

        await asyncio.wait_for(consume(), 30)
    finally:
        await client.close()
        await node.stop()
    assert heights == list(range(1, 16))
    assert reconnects and reconnects[0] == 5


def test_an_event_with_undecodable_packet_bytes_names_no_packet() -> None:
    from chains.ibc.events import Event

    assert Event("send_packet", (("packet", b"\xff\xff\xff"),)).packet() is None
