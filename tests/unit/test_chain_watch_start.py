"""ChainWatch.start from many tasks at once opens one block stream, over a real gRPC server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chains.node.client import NodeClient
from chains.node.db import NodeDatabase
from chains.node.runtime import NodeRuntime, RuntimeConfig
from chains.node.service import NodeService, build_server, mark_serving
from kakehashi.node.v1 import node_pb2
from relayer.core.watch import ChainWatch
from tests.unit.kvapp import KvApp


async def test_concurrent_starts_share_one_block_stream(tmp_path: Path) -> None:
    """Found by the chaos soak: a DvP feed's 64 workers each started the shared watch while the
    first still awaited the node's status, so each opened a stream of its own and all but the
    last leaked; with the node's stream cap that locked the feed out of the node."""
    db = NodeDatabase(tmp_path / "node.db")
    rt = NodeRuntime(KvApp(db), db, RuntimeConfig(block_period_s=0.05))
    service = NodeService(rt)
    server, port = build_server(rt, "127.0.0.1:0", service=service)
    await server.start()
    await mark_serving(server)
    loop = asyncio.create_task(rt.run())
    client = NodeClient(f"127.0.0.1:{port}")
    watch = ChainWatch(client)
    try:
        heads = await asyncio.gather(*(watch.start() for _ in range(32)))
        assert len({id(h) for h in heads}) == 1
        clock = asyncio.get_running_loop().time
        deadline = clock() + 5
        while service.streams < 1 and clock() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # any extra followers would have opened theirs by now
        assert service.streams == 1
        await watch.close()
        deadline = clock() + 5
        while service.streams and clock() < deadline:
            await asyncio.sleep(0.05)
        assert service.streams == 0
    finally:
        await watch.close()
        await client.close()
        await rt.stop()
        await loop
        await server.stop(None)
        db.close()


async def test_a_tx_the_node_never_saw_comes_back_with_a_reason(tmp_path: Path) -> None:
    """Found by the chaos soak: a tx dropped with the mempool of a killed node came back with an
    empty reason, so 96 trades ended "EVM lock failed: ; nothing locked"."""
    db = NodeDatabase(tmp_path / "node.db")
    rt = NodeRuntime(KvApp(db), db, RuntimeConfig(block_period_s=0.05))
    server, port = build_server(rt, "127.0.0.1:0")
    await server.start()
    await mark_serving(server)
    loop = asyncio.create_task(rt.run())
    client = NodeClient(f"127.0.0.1:{port}")
    watch = ChainWatch(client)
    try:
        got = await watch.wait_tx(b"\x07" * 32, timeout_s=0.3)
        assert got.status == node_pb2.TX_STATUS_UNKNOWN
        assert "dropped before any block took it" in got.reason
    finally:
        await watch.close()
        await client.close()
        await rt.stop()
        await loop
        await server.stop(None)
        db.close()
