"""ChainWatch over a real gRPC node: one block stream for many starts, and the fate of txs the node lost."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from chains.node.client import NodeClient
from chains.node.db import NodeDatabase
from chains.node.runtime import NodeRuntime, RuntimeConfig
from chains.node.service import NodeService, build_server, mark_serving
from kakehashi.node.v1 import node_pb2
from relayer.core.watch import ChainWatch
from tests.unit.kvapp import KvApp


@contextlib.asynccontextmanager
async def served_node(tmp_path: Path) -> AsyncIterator[tuple[NodeRuntime, NodeService, ChainWatch]]:
    """A KvApp node making blocks every 50 ms behind a real gRPC server, and a watch on it."""
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
        yield rt, service, watch
    finally:
        await watch.close()
        await client.close()
        await rt.stop()
        await loop
        await server.stop(None)
        db.close()


async def test_concurrent_starts_share_one_block_stream(tmp_path: Path) -> None:
    """Found by the chaos soak: a DvP feed's 64 workers each started the shared watch while the
    first still awaited the node's status, so each opened a stream of its own and all but the
    last leaked; with the node's stream cap that locked the feed out of the node."""
    async with served_node(tmp_path) as (_, service, watch):
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


async def test_a_tx_the_node_never_saw_comes_back_with_a_reason(tmp_path: Path) -> None:
    """Found by the chaos soak: a tx dropped with the mempool of a killed node came back with an
    empty reason, so 96 trades ended "EVM lock failed: ; nothing locked"."""
    async with served_node(tmp_path) as (_, _, watch):
        got = await watch.wait_tx(b"\x07" * 32, timeout_s=0.3)
        assert got.status == node_pb2.TX_STATUS_UNKNOWN
        assert "dropped before any block took it" in got.reason


async def test_a_dropped_tx_is_sent_again_and_lands_once(tmp_path: Path) -> None:
    """Found by the full chaos soak: 429 of 10,000 DvP locks ended "lock failed" because a node
    kill emptied the mempool that held them; the same signed bytes sent again land once."""
    async with served_node(tmp_path) as (rt, _, watch):
        dropped = b"trade=locked"  # never reached a block: as if the node restarted right after admitting it
        got = await watch.wait_landed(dropped, hashlib.sha256(dropped).digest(), timeout_s=0.3)
        assert got.status == node_pb2.TX_STATUS_COMMITTED, got.reason
        assert sum(1 for h in range(1, rt.app.latest_height() + 1) for t in rt.db.txs_at(h)
                   if t[0] == hashlib.sha256(dropped).digest()) == 1
        refused = b"no equals sign"  # the resend is refused: the wait ends with why
        got = await watch.wait_landed(refused, hashlib.sha256(refused).digest(), timeout_s=0.3)
        assert got.status == node_pb2.TX_STATUS_UNKNOWN
        assert "sending it again was refused" in got.reason and "key=value" in got.reason
        lost = b"k=v2"
        got = await watch.wait_landed(lost, hashlib.sha256(lost).digest(), resubmits=0, timeout_s=0.3)
        assert got.status == node_pb2.TX_STATUS_UNKNOWN  # without resends: the old outcome
