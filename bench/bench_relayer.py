"""Relayer throughput in process: N packets sent while the relayer is down, then cleared.

What it isolates: the relayer's own pipeline (state queries, planning, proof fetching, tx
batching) over two in-process test hosts with real sparse-Merkle proofs, so the numbers are
an upper bound for relaying against gRPC nodes (no network, no signing, no block time). The
batch-size ratio shows what batching buys: max_msg_num=2 (one packet per tx) against 30.
The planner's own cost per packet is timed separately.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.timing import per_call_us
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from lightclients.interface import Height
from relayer.core import packets as planner
from relayer.core.supervisor import Supervisor
from tests.support import mockapp
from tests.support.host import START_NS
from tests.support.pair import Pair
from tests.support.relaying import HostHandle, services, until


async def _relay(n: int, max_msg_num: int) -> float:
    pair = Pair()
    ca, _ = pair.open_channel(mockapp.PORT_ID)
    for i in range(n):
        pair.a.send(mockapp.PORT_ID, ca, f"p{i}".encode(), timeout_height=Height(1, 10**9))
    svc = services(max_msg_num={"chain-a": max_msg_num, "chain-b": max_msg_num}, clear_limit=200)
    sup = Supervisor(HostHandle(pair.a), HostHandle(pair.b), svc, ports=(mockapp.PORT_ID,))
    started = time.perf_counter()
    await sup.start()
    try:
        await until(lambda: len(pair.a.events.of_type("acknowledge_packet")) >= n, timeout_s=600)
    finally:
        await sup.stop()
    return time.perf_counter() - started


def _planner_us(n: int) -> float:
    pkts = [chpb.Packet(sequence=i, source_port="transfer", source_channel="channel-0",
                        timeout_height=client_pb2.Height(revision_number=1, revision_height=10**6))
            for i in range(1, n + 1)]
    view = planner.DestinationView(Height(1, 100), START_NS, chpb.STATE_OPEN, chpb.ORDER_UNORDERED)
    seqs = list(range(1, n + 1))
    return per_call_us(lambda: planner.plan_packets(pkts, seqs, view)) / n


def run(quick: bool) -> dict[str, Any]:
    n = 60 if quick else 300
    small = asyncio.run(_relay(n, 2))
    large = asyncio.run(_relay(n, 30))
    return {
        "packets": n,
        "packets_per_s_max_msg_2": round(n / small, 1),
        "packets_per_s_max_msg_30": round(n / large, 1),
        "batching_speedup": round(small / large, 2),
        "planner_us_per_packet": round(_planner_us(1000), 3),
    }
