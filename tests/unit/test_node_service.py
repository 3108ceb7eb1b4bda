"""The generic node (runtime + gRPC service + client) over real gRPC on 127.0.0.1.

The chain state machine here is a minimal key-value app defined in this test module: the
point is the node's own behaviour (mempool, block loop, persistence, streaming, status
codes). The real ledgers are exercised through the same node in the end-to-end tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from chains.node.app import TxRejected
from chains.node.client import NodeClient, NodeError, RetryPolicy
from chains.node.db import NodeDatabase
from chains.node.runtime import NodeRuntime, RuntimeConfig
from chains.node.service import build_server, mark_serving
from kakehashi.node.v1 import node_pb2, node_pb2_grpc
from tests.unit.kvapp import KvApp


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[NodeClient, NodeRuntime, str]]:
    db = NodeDatabase(tmp_path / "node.db")
    rt = NodeRuntime(KvApp(db), db, RuntimeConfig(block_period_s=0.05, max_block_txs=10))
    server, port = build_server(rt, "127.0.0.1:0")
    await server.start()
    await mark_serving(server)
    loop = asyncio.create_task(rt.run())
    addr = f"127.0.0.1:{port}"
    client = NodeClient(addr, retry=RetryPolicy(attempts=2, timeout_s=5))
    try:
        yield client, rt, addr
    finally:
        await client.close()
        await rt.stop()
        await loop
        await server.stop(None)
        db.close()


async def test_submit_commit_stream_and_query(node: tuple[NodeClient, NodeRuntime, str]) -> None:
    client, _rt, _ = node
    res = await client.submit_and_wait(b"a=1", wait_s=5)
    assert res.status == node_pb2.TX_STATUS_COMMITTED
    assert [e.type for e in res.events] == ["set"]
    failed = await client.submit_and_wait(b"b=fail", wait_s=5)
    assert failed.status == node_pb2.TX_STATUS_FAILED and "refused" in failed.reason
    assert (await client.query_app("get", key="a")) == {"value": "1"}
    st = await client.status()
    assert st.chain_id == "kv-1" and st.latest_height >= 2
    seen = []
    async for blk in client.stream_blocks(1):  # backfill from 1, then live
        seen.append(blk.height)
        if blk.height >= st.latest_height + 2:
            break
    assert seen == list(range(1, st.latest_height + 3))
    hdr = await client.header(res.height)
    assert hdr.height == res.height
    q = await client.query_ibc("a")
    assert q.found and q.value == b"1"


async def test_bad_requests_get_status_codes_and_node_keeps_serving(node: tuple[NodeClient, NodeRuntime, str]) -> None:
    client, _, addr = node
    with pytest.raises(NodeError) as err:
        await client.submit(b"no-equals-sign")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "key=value" in err.value.details
    with pytest.raises(NodeError) as err:
        await client.header(10_000)
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(NodeError) as err:
        await client.query_app("nope")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(NodeError) as err:
        await client.tx_result(b"short")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    # raw garbage bytes in place of a protobuf request
    async with grpc.aio.insecure_channel(addr) as ch:
        raw = ch.unary_unary("/kakehashi.node.v1.Node/SubmitTx")
        with pytest.raises(grpc.aio.AioRpcError) as rpc_err:
            await raw(b"\xff\xff\xff\xff", timeout=5)
        assert rpc_err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed SubmitTxRequest" in (rpc_err.value.details() or "")
        big = ch.unary_unary("/kakehashi.node.v1.Node/SubmitTx")
        payload = node_pb2.SubmitTxRequest(tx=b"k=" + b"v" * (5 * 1024 * 1024)).SerializeToString()
        with pytest.raises(grpc.aio.AioRpcError) as rpc_err:
            await big(payload, timeout=5)
        assert rpc_err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await client.status()).chain_id == "kv-1"  # still serving


async def test_unreceived_packets_and_acks_each_reach_their_own_app_query(
    node: tuple[NodeClient, NodeRuntime, str],
) -> None:
    """One handler serves both calls (batch limit, height, QueryError as INVALID_ARGUMENT); each
    must still ask its own app query (KvApp: every packet unreceived, no ack pending)."""
    client, _, _ = node
    await client.submit_and_wait(b"a=1", wait_s=5)
    assert await client.unreceived_packets("p", "c", [3, 1, 2]) == [3, 1, 2]
    assert await client.unreceived_acks("p", "c", [3, 1, 2]) == []
    for call in (client.unreceived_packets, client.unreceived_acks):
        with pytest.raises(NodeError) as err:
            await call("p", "c", [1], height=10_000)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "above the latest" in err.value.details


async def test_health_and_reflection(node: tuple[NodeClient, NodeRuntime, str]) -> None:
    _, _, addr = node
    async with grpc.aio.insecure_channel(addr) as ch:
        hs = health_pb2_grpc.HealthStub(ch)
        resp = await hs.Check(health_pb2.HealthCheckRequest(service="kakehashi.node.v1.Node"), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)

        async def one() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for r in refl.ServerReflectionInfo(one()):
            names = {s.name for s in r.list_services_response.service}
            assert "kakehashi.node.v1.Node" in names
            break


async def test_restart_keeps_committed_state(tmp_path: Path) -> None:
    db = NodeDatabase(tmp_path / "n.db")
    rt = NodeRuntime(KvApp(db), db, RuntimeConfig(block_period_s=0.05))
    h = rt.submit(b"x=42")
    rt.produce_once()
    rt.produce_once()
    db.close()
    db2 = NodeDatabase(tmp_path / "n.db")
    rt2 = NodeRuntime(KvApp(db2), db2)
    assert rt2.app.latest_height() == 2
    assert rt2.tx_result(h).status == node_pb2.TX_STATUS_COMMITTED
    assert rt2.app.query_app("get", {"key": "x"}, 2) == {"value": "42"}
    with pytest.raises(TxRejected, match="already committed"):
        rt2.submit(b"x=42")
    assert rt2.last_time_ns > 0


async def test_retained_heights_bound_queries_but_not_blocks(tmp_path: Path) -> None:
    db = NodeDatabase(tmp_path / "n.db")
    rt = NodeRuntime(KvApp(db), db, RuntimeConfig(retain_heights=2))
    for _ in range(5):
        rt.produce_once()
    server, port = build_server(rt, "127.0.0.1:0")
    await server.start()
    client = NodeClient(f"127.0.0.1:{port}", retry=RetryPolicy(attempts=1, timeout_s=5))
    try:
        assert (await client.status()).earliest_height == 4
        assert (await client.header(4)).height == 4
        with pytest.raises(NodeError) as err:
            await client.query_ibc("a", height=3)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "retain_heights" in err.value.details
        with pytest.raises(NodeError) as err:
            await client.header(3)
        assert err.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(NodeError) as err:
            await client.query_app("get", height=99, key="a")
        assert "above the latest" in err.value.details
        assert (await client.block(1)).height == 1  # blocks stay available for backfill
    finally:
        await client.close()
        await server.stop(None)
        db.close()


async def test_a_flood_of_concurrent_queries_is_queued_not_cancelled(
        node: tuple[NodeClient, NodeRuntime, str]) -> None:
    """gRPC servers cancel calls beyond their pending-request limit (1,000 by default); a
    client with thousands of reads in flight (a DvP feed at high concurrency) must queue them
    instead of losing some as CANCELLED."""
    client, _rt, _addr = node
    n = 2 * 1024
    got = await asyncio.gather(*(client.status() for _ in range(n)), return_exceptions=True)
    failed = [g for g in got if isinstance(g, BaseException)]
    assert not failed, f"{len(failed)} of {n} failed, e.g. {failed[0]!r}"


def test_answers_encode_fast_path_and_big_integers_alike() -> None:
    """orjson for the common case, json for integers beyond 64 bits: one canonical text."""
    import json

    from chains.node.answers import encode_answer

    small = {"b": 1, "a": [1, 2, {"z": "x", "y": None}]}
    big = {"b": 2**200, "a": [1, 2]}
    for doc in (small, big):
        text = encode_answer(doc)
        assert json.loads(text) == doc
        assert text == json.dumps(doc, sort_keys=True, separators=(",", ":"))


class _BrokenApp(KvApp):
    """Production raises (a bug, not a disk error) once a tx ``boom=1`` is in the batch."""

    def produce_block(self, txs, time_ns):  # type: ignore[no-untyped-def]
        if b"boom=1" in txs:
            raise KeyError("a bug in the state machine")
        return super().produce_block(txs, time_ns)


async def test_a_block_loop_that_fails_stops_the_node_instead_of_serving_a_dead_chain(tmp_path: Path) -> None:
    """Found by the chaos soak: a block loop that raised died silently while gRPC and health
    kept answering SERVING, so every client waited on a chain that never advanced. Now the
    loop raises BlockLoopHalted, ``serve`` turns health NOT_SERVING and stops, and nothing of
    the failed height is committed (a restart reopens at the last committed one)."""
    from chains.node import main as node_main
    from chains.node.config import NodeConfig
    from chains.node.runtime import BlockLoopHalted

    db = NodeDatabase(tmp_path / "node.db")
    rt = NodeRuntime(_BrokenApp(db), db, RuntimeConfig(block_period_s=0.05))
    rt.submit(b"a=1")
    rt.produce_once()
    rt.submit(b"boom=1")
    with pytest.raises(BlockLoopHalted, match="producing block 2 failed: KeyError"):
        await asyncio.wait_for(rt.run(), 10)
    assert db.latest_height() == 1
    db.close()

    class Kind:
        def open_app(self, config: NodeConfig, db: NodeDatabase) -> _BrokenApp:
            return _BrokenApp(db)

    config = NodeConfig(home=tmp_path / "home", chain_id="kv-1", kind="evm", block_period_s=0.05)
    (tmp_path / "home" / "data").mkdir(parents=True)
    original = node_main.chain_kind
    node_main.chain_kind = lambda kind: Kind()  # type: ignore[assignment,return-value]
    try:
        serving = asyncio.create_task(node_main.serve(config, "127.0.0.1:0"))
        addr_file = tmp_path / "home" / "node.addr"
        while not addr_file.exists():
            await asyncio.sleep(0.02)
        async with grpc.aio.insecure_channel(addr_file.read_text().strip()) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            ok = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert ok.status == health_pb2.HealthCheckResponse.SERVING
            async with NodeClient(addr_file.read_text().strip()) as client:
                await client.submit(b"boom=1")
        with pytest.raises(BlockLoopHalted):
            await asyncio.wait_for(serving, 15)
        assert not addr_file.exists()
    finally:
        node_main.chain_kind = original  # type: ignore[assignment]


async def test_block_streams_are_capped_and_a_client_that_stops_reading_is_dropped(tmp_path: Path) -> None:
    """A client that opens block streams and never reads: past the cap a stream is refused
    RESOURCE_EXHAUSTED; an open one whose client reads nothing (its flow-control window stays
    shut) ends after the write timeout, freeing what the node held for it. Readers and the
    health service are unaffected."""
    from chains.node.service import NodeService

    db = NodeDatabase(tmp_path / "node.db")
    rt = NodeRuntime(KvApp(db), db, RuntimeConfig(block_period_s=0.05))
    service = NodeService(rt, max_streams=4, stream_write_timeout_s=1.0)
    server, port = build_server(rt, "127.0.0.1:0", service=service)
    await server.start()
    await mark_serving(server)
    loop = asyncio.create_task(rt.run())
    addr = f"127.0.0.1:{port}"
    # a window of 1 KiB that never grows, and nobody reading: the node's writes cannot complete
    stuck = grpc.aio.insecure_channel(addr, options=[("grpc.http2.lookahead_bytes", 1024),
                                                     ("grpc.http2.bdp_probe", 0)])
    calls: list[Any] = []
    try:
        for i in range(30):  # one key: the KvApp header carries the whole state, keep it at one value
            rt.submit(f"k={i}{'x' * 200_000}".encode())
        calls = [node_pb2_grpc.NodeStub(stuck).StreamBlocks(node_pb2.StreamBlocksRequest(from_height=1))
                 for _ in range(4)]
        clock = asyncio.get_running_loop().time
        deadline = clock() + 20
        while service.streams < 4 and clock() < deadline:
            await asyncio.sleep(0.05)
        assert service.streams == 4
        # the fifth, from a client that does read, is refused with a reason (a stuck client
        # would not even see its status: it sits behind the answers it never read)
        async with grpc.aio.insecure_channel(addr) as ch:
            fifth = node_pb2_grpc.NodeStub(ch).StreamBlocks(node_pb2.StreamBlocksRequest(from_height=1))
            assert await asyncio.wait_for(fifth.code(), 10) == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too many block streams open (4)" in (await fifth.details())
        deadline = clock() + 20
        while service.streams_dropped < 4 and clock() < deadline:
            await asyncio.sleep(0.2)
        assert service.streams_dropped == 4 and service.streams == 0
        async with NodeClient(addr, retry=RetryPolicy(attempts=2, timeout_s=5)) as reader:
            got = []
            async for blk in reader.stream_blocks(1, results_only=True):  # room again, and served
                got.append(blk.height)
                if len(got) == 3:
                    break
            assert got == [1, 2, 3]
        async with grpc.aio.insecure_channel(addr) as ch:
            health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for c in calls:
            c.cancel()
        await stuck.close()
        await rt.stop()
        await loop
        await server.stop(None)
        db.close()


async def test_a_block_takes_txs_up_to_its_byte_budget_and_the_rest_wait(tmp_path: Path) -> None:
    """A block (with its results) must fit one gRPC message of a stream or GetBlock."""
    db = NodeDatabase(tmp_path / "node.db")
    rt = NodeRuntime(KvApp(db), db, RuntimeConfig(max_block_txs=100, max_block_bytes=3000))
    hashes = [rt.submit(f"k{i}={'x' * 1000}".encode()) for i in range(7)]
    first = rt.produce_once()
    assert len(first.txs) == 2  # 2 x ~1 KB fit in 3,000 bytes, the third would not
    second = rt.produce_once()
    assert len(second.txs) == 2 and rt.mempool_size() == 3
    big = rt.submit(b"big=" + b"y" * 5000)  # larger than the budget alone: still goes, alone
    while rt.mempool_size():
        rt.produce_once()
    assert all(rt.tx_result(h).status == node_pb2.TX_STATUS_COMMITTED for h in [*hashes, big])
    db.close()


async def test_get_block_without_its_raw_txs(node: tuple[NodeClient, NodeRuntime, str]) -> None:
    client, _rt, _ = node
    res = await client.submit_and_wait(b"a=1", wait_s=5)
    full = await client.block(res.height)
    slim = await client.block(res.height, results_only=True)
    assert list(full.txs) == [b"a=1"] and not slim.txs
    assert [r.tx_hash for r in slim.results] == [r.tx_hash for r in full.results]
