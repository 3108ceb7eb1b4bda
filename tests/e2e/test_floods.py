"""Bounded floods against a real node process and the relayer's HTTP endpoint (section 4 of
the reliability issue): memory stays under a stated ceiling, the health services keep
answering, limits refuse with clear status codes and nothing committed is lost.

The sizes here are the ones `make test` runs; docs/RELIABILITY.md gives the figures. The
ceilings are generous multiples of what was measured (a node idles at ~100 MiB RSS) so that a
leak or an unbounded queue fails the test, not load on a shared machine.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kakehashi.node.v1 import node_pb2, node_pb2_grpc
from relayer.ops.telemetry import MAX_CONNECTIONS, Telemetry
from tests.support import live

pytestmark = pytest.mark.slow

NODE_RSS_CEILING_MIB = 400  # peak RSS of the node through every flood below
READS = 10_000  # concurrent reads in flight at once
STUCK_STREAMS = 16  # block-stream clients that never read


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live.NodeProc]:
    root: Path = tmp_path_factory.mktemp("floods")
    procs = live.Procs()
    try:
        started = live.start_node(root, "corda", "corda-floods", "200ms", procs)
        live.wait_heights(started, started, height=2)
        yield started
    finally:
        procs.stop_all()


async def _health_until(addr: str, stop: asyncio.Event, seen: list[float]) -> None:
    """The gRPC health service, asked every 0.2 s while a flood runs: each answer's latency."""
    async with grpc.aio.insecure_channel(addr) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while not stop.is_set():
            t = time.monotonic()
            got = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=15)
            assert got.status == health_pb2.HealthCheckResponse.SERVING
            seen.append(time.monotonic() - t)
            await asyncio.sleep(0.2)


async def _headers(addr: str, upto: int) -> list[bytes]:
    async with grpc.aio.insecure_channel(addr) as ch:
        stub = node_pb2_grpc.NodeStub(ch)
        return [(await stub.GetHeader(node_pb2.GetHeaderRequest(height=h), timeout=15)).hash
                for h in range(1, upto + 1)]


async def test_node_under_read_and_slow_client_floods(node: live.NodeProc) -> None:
    addr = node.addr
    async with grpc.aio.insecure_channel(addr) as ch:
        before = (await node_pb2_grpc.NodeStub(ch).Status(node_pb2.StatusRequest(), timeout=15)).latest_height
    committed = await _headers(addr, before)
    stop, health_latency = asyncio.Event(), []
    health = asyncio.create_task(_health_until(addr, stop, health_latency))

    # slow clients: block streams on a connection whose window never opens, nobody reading
    stuck_ch = grpc.aio.insecure_channel(addr, options=[("grpc.http2.lookahead_bytes", 1024),
                                                        ("grpc.http2.bdp_probe", 0)])
    stuck = [node_pb2_grpc.NodeStub(stuck_ch).StreamBlocks(node_pb2.StreamBlocksRequest(from_height=1))
             for _ in range(STUCK_STREAMS)]
    # 10,000 reads in flight at once, over 8 connections
    chans = [grpc.aio.insecure_channel(addr) for _ in range(8)]
    stubs = [node_pb2_grpc.NodeStub(c) for c in chans]

    async def read(i: int) -> str:
        try:
            await stubs[i % len(stubs)].Status(node_pb2.StatusRequest(), timeout=120)
            return "OK"
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
    try:
        codes = Counter(await asyncio.gather(*(read(i) for i in range(READS))))
    finally:
        for c in chans:
            await c.close()
    stop.set()
    await health
    for c in stuck:
        c.cancel()
    await stuck_ch.close()

    # every read answered, or refused with RESOURCE_EXHAUSTED (never CANCELLED or UNKNOWN)
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert codes["OK"] >= READS * 0.9, codes
    assert health_latency, "the health service never answered during the flood"
    peak = node.proc.peak_rss_kib() / 1024
    assert peak < NODE_RSS_CEILING_MIB, f"node peak RSS {peak:.0f} MiB"
    assert node.proc.alive()
    # nothing committed lost: the same headers, and the chain still advancing
    assert await _headers(addr, before) == committed
    deadline = time.monotonic() + 30
    async with grpc.aio.insecure_channel(addr) as ch:
        while (await node_pb2_grpc.NodeStub(ch).Status(node_pb2.StatusRequest(), timeout=15)).latest_height < before + 2:
            assert time.monotonic() < deadline, "the chain stopped advancing after the flood"
            await asyncio.sleep(0.2)
    print(f"flood: {READS} reads {dict(codes)}; health answered {len(health_latency)} times, "
          f"max {max(health_latency):.2f} s; node peak RSS {peak:.0f} MiB")


def test_relayer_health_under_a_flood_of_clients() -> None:
    """/health answers while clients hammer the endpoint and others hold connections open
    without finishing a request; the endpoint's threads stay bounded."""
    t = Telemetry()
    port = t.serve("127.0.0.1", 0)
    stuck: list[socket.socket] = []
    codes: Counter[int] = Counter()
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(25):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
                    code = resp.status
            except OSError:
                code = 0
            with lock:
                codes[code] += 1
    try:
        for _ in range(MAX_CONNECTIONS // 2):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\n")
            stuck.append(s)
        workers = [threading.Thread(target=hammer) for _ in range(20)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        threads = threading.active_count()
        assert codes[200] >= 0.95 * 500, codes
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read())["status"] == "ok"
        assert threads < MAX_CONNECTIONS * 2 + 40, threads
        print(f"relayer /health flood: {dict(codes)} with {len(stuck)} stuck connections; "
              f"{threads} threads at the end")
    finally:
        for s in stuck:
            s.close()
        t.close()
