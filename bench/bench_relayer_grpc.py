"""Relayer throughput and latency over gRPC: real EVM and Corda nodes, the real daemon.

What it measures, per batch size: transfers are sent both ways (half each) from the demo
accounts, 64 per tx, all submitted back to back; the ``kakehashi start`` subprocess relays
them. Every figure comes from the chains' own block times: a packet's latency is from the
block that committed its send to the block that committed its acknowledgement, both on the
source chain (one clock); throughput is packets over first send -> last ack. Peak RSS is the
daemon process's VmHWM. The EVM node seals whole-second block times, so EVM-sourced
latencies have one-second resolution.

Load: each direction's transfers are submitted back to back (64 per tx) without waiting for
blocks in between, so the offered load is a burst far above what the relayer clears per block
and the figure is the relayer's (and the nodes') capacity, not the senders'.

How the relayer keeps up (issue 12): its txs are pipelined (several per chain per block, nonces
counted locally), each tx's packets are proven by one multiproof fetched in one QueryIbcBatch,
the UpdateClient leads only the first tx of a pass, and the pending set is followed from
block events instead of re-asking the chains about every live sequence each pass.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from chains.ibc import events as ev
from chains.node.client import NodeClient
from tests.support.live import (
    SEC,
    NodeProc,
    Procs,
    RelayerSetup,
    Sender,
    add_keys,
    block_events,
    client,
    create_path,
    free_port,
    http_get,
    metric,
    start_daemon,
    start_node,
    transfers,
    wait_ready,
    write_config,
)

EVM_PERIOD = "1s"
CORDA_PERIOD = "250ms"
MAX_MSG_NUM = 200  # one UpdateClient + 199 packet messages per tx, well under 1 MiB
CLEAR_LIMIT = 1000
CLEAR_INTERVAL = 10
RELAYER_KEYS = {"evm": "carol", "corda": "holder-firm-c"}
PORT = "transfer"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _send(node: NodeProc, user: str, channel: str, denom: str, receiver: str, n: int) -> None:
    async with client(node) as c:
        sender = Sender(node, user, c)
        await sender.send(transfers(PORT, channel, denom, sender.address, receiver, [1] * n,
                                    time.time_ns() + 3600 * SEC))


async def _committed(c: NodeClient, channel: str) -> int:
    return len(await c.packet_commitments(PORT, channel))


async def _latencies(c: NodeClient, channel: str, first: int) -> tuple[list[float], int, int]:
    """(per-packet send->ack seconds, first send time, last ack time) on the source chain."""
    sent: dict[int, int] = {}
    acked: dict[int, int] = {}
    for _, t, e in await block_events(c, first):
        p = e.packet()
        if p is None or (p.source_port, p.source_channel) != (PORT, channel):
            continue
        if e.type == ev.SEND_PACKET:
            sent[p.sequence] = t
        elif e.type == ev.ACKNOWLEDGE_PACKET:
            acked[p.sequence] = t
    assert set(sent) == set(acked), f"{len(sent)} sent, {len(acked)} acked"
    return [(acked[s] - sent[s]) / SEC for s in sent], min(sent.values()), max(acked.values())


def _one_run(root: Path, n: int, timeout_s: float) -> dict[str, Any]:
    procs = Procs()
    try:
        evm = start_node(root, "evm", "evm-bench", EVM_PERIOD, procs)
        corda = start_node(root, "corda", "corda-bench", CORDA_PERIOD, procs)
        add_keys(root / "keys", [(evm, RELAYER_KEYS["evm"]), (corda, RELAYER_KEYS["corda"])])
        port = free_port()
        cfg = write_config(root / "relayer.toml", [evm, corda], RelayerSetup(
            metrics_port=port, max_msg_num=MAX_MSG_NUM, clear_limit=CLEAR_LIMIT, clear_interval=CLEAR_INTERVAL,
            keys={evm.chain_id: f"{evm.chain_id}-{RELAYER_KEYS['evm']}",
                  corda.chain_id: f"{corda.chain_id}-{RELAYER_KEYS['corda']}"}))
        path = create_path(cfg, evm, corda)
        daemon = start_daemon(procs, cfg)
        wait_ready(daemon, port)

        async def go() -> dict[str, Any]:
            async with client(evm) as e, client(corda) as c:
                first = [int((await x.status()).latest_height) + 1 for x in (e, c)]
                half = n // 2
                started = time.monotonic()
                await asyncio.gather(
                    _send(evm, "alice", path.a_channel, "stake", corda.account("holder-firm-b"), half),
                    _send(corda, "holder-firm-b", path.b_channel, "jpy", evm.account("alice"), n - half))
                sent_s = time.monotonic() - started
                deadline = time.monotonic() + timeout_s
                while await _committed(e, path.a_channel) or await _committed(c, path.b_channel):
                    assert daemon.alive(), daemon.tail()
                    assert time.monotonic() < deadline, f"not relayed in {timeout_s} s:\n{daemon.tail()}"
                    await asyncio.sleep(0.5)
                wall_s = time.monotonic() - started
                rss_kib = daemon.peak_rss_kib()
                evm_lat, evm_t0, evm_t1 = await _latencies(e, path.a_channel, first[0])
                corda_lat, corda_t0, corda_t1 = await _latencies(c, path.b_channel, first[1])
            lat = evm_lat + corda_lat
            assert len(lat) == n
            span_s = (max(evm_t1, corda_t1) - min(evm_t0, corda_t0)) / SEC
            return {
                "transfers": n,
                "packets_per_s": round(n / span_s, 1),
                "span_s_first_send_to_last_ack": round(span_s, 2),
                "wall_s_send_start_to_all_acked": round(wall_s, 2),
                "send_phase_s": round(sent_s, 2),
                "latency_p50_s": round(_percentile(lat, 0.5), 2),
                "latency_p99_s": round(_percentile(lat, 0.99), 2),
                "latency_p50_s_evm_to_corda": round(statistics.median(evm_lat), 2),
                "latency_p50_s_corda_to_evm": round(statistics.median(corda_lat), 2),
                "relayer_peak_rss_mib": round(rss_kib / 1024, 1),
            }

        result = asyncio.run(go())
        code, text = http_get(port, "/metrics")
        assert code == 200
        result["relayer_txs_confirmed_evm"] = int(metric(text, "kakehashi_tx_latency_confirmed_seconds_count",
                                                         chain=evm.chain_id))
        result["relayer_txs_confirmed_corda"] = int(metric(text, "kakehashi_tx_latency_confirmed_seconds_count",
                                                           chain=corda.chain_id))
        result["relayer_tx_errors"] = int(metric(text, "kakehashi_tx_errors_total"))
        # every packet costs the EVM chain one message (its recv or its ack): how full the txs were
        result["evm_packet_msgs_per_relayer_tx"] = round(n / max(1, result["relayer_txs_confirmed_evm"]), 1)
        assert daemon.stop() == 0, daemon.tail()
        return result
    finally:
        procs.stop_all()


def run(quick: bool) -> dict[str, Any]:
    sizes = [100] if quick else [100, 1000, 10_000]  # 100: latency without a backlog
    out: dict[str, Any] = {
        "settings": {"evm_block_period": EVM_PERIOD, "corda_block_period": CORDA_PERIOD,
                     "max_msg_num": MAX_MSG_NUM, "clear_limit": CLEAR_LIMIT, "clear_interval_blocks": CLEAR_INTERVAL,
                     "transfers_per_tx": 64, "send": "all txs back to back, then awaited", "directions": "half each way",
                     "validators": 4},
    }
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-relayer-grpc-") as tmp:
            out[f"n{n}"] = _one_run(Path(tmp), n, timeout_s=120 + n * 0.06)
    return out
