"""Does history slow the present? DvP cost per trade from 1,000 to 100,000 trades already settled.

What runs: the same network as ``bench dvp`` (real nodes, the real relayer daemon, the real
settlement client), fed one continuous stream of trades (alice -> bob, firm-b pays firm-a, 1 ST
against 1 SC each) with ``CONCURRENCY`` in flight. Every ``WINDOW`` settled trades the run
notes the time and the CPU every process has used, so each window gives settled trades/s and
CPU ms per trade (all four processes) at the history size it started at; at the report
marks it also times the per-trade queries a pre-check makes (Corda balances, EVM escrow).

The goal (issue 12): cost per trade flat, <= 1.2x, from 1,000 to 100,000 trades already
settled. At the end both nodes are restarted (SIGTERM, start again from their SQLite files) and
the time until they answer again is measured with that history behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_dvp import ExitWatch, Net, TimedClient, _setup, split_cash
from chains.ibc import events as ev
from chains.node.client import NodeClient, RetryPolicy
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from relayer.dvp import Ledgers, parse_trade
from tests.support.live import NodeProc, Procs

TOTAL_FULL, WINDOW_FULL = 100_000, 1000
TOTAL_QUICK, WINDOW_QUICK = 120, 40
REPORT_AT_FULL = (1000, 10_000, 25_000, 50_000, 75_000, 99_000)
CONCURRENCY_FULL, CONCURRENCY_QUICK = 1024, 40
QTY = AMOUNT = 1
DEADLINE_S = 3600
FINAL_WAIT_S = 300.0
TIME_LIMIT_S = 1800.0  # the whole stream; a slower machine reports what it reached


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def _query_ms(fn: Any, calls: int = 5) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await fn()
    return round((time.perf_counter() - started) / calls * 1000, 2)


async def _stream(client: TimedClient, watch: ExitWatch, net: Net, total: int, window: int, concurrency: int,
                  report_at: set[int]) -> dict[str, Any]:
    led = client.ledgers
    alice, firm_b = net.evm.key("alice"), net.corda.key("holder-firm-b")
    parties = {"seller": {"evm": "0x" + eth_address(secp256k1_public_key(alice)).hex(),
                          "corda": ed25519_public_key(net.corda.key("holder-firm-a")).hex()},
               "buyer": {"evm": "0x" + eth_address(secp256k1_public_key(net.evm.key("bob"))).hex(),
                         "corda": ed25519_public_key(firm_b).hex()}}
    buyer = bytes.fromhex(parties["buyer"]["corda"])
    sem = asyncio.Semaphore(concurrency)
    stop_at = time.monotonic() + TIME_LIMIT_S
    settled = 0
    failed = 0
    marks: list[dict[str, Any]] = [{"settled": 0, "t": time.monotonic(), "cpu": net.cpu(), "lat": []}]
    current: list[float] = []
    pending_probe: list[int] = []

    async def one(i: int) -> None:
        nonlocal settled, failed
        async with sem:
            if time.monotonic() > stop_at:
                return
            tid = f"h-{i:06d}"
            trade = parse_trade({"trade_id": tid, "st_quantity": QTY, "sc_amount": AMOUNT, **parties,
                                 "deadline_s": DEADLINE_S})
            got = await client.settle(trade, alice, firm_b, follow=False)
            seq = got.corda.get("sequence")
            if got.state not in ("locked", "delivered", "settled") or seq is None:
                failed += 1
                return
            seen = await watch.wait(int(seq), FINAL_WAIT_S)
            if seen is None or seen[1] != ev.ACKNOWLEDGE_PACKET:
                failed += 1
                return
        settled += 1
        current.append(seen[0] - client.lock_started[tid])
        if settled % window == 0:
            marks.append({"settled": settled, "t": time.monotonic(), "cpu": net.cpu(), "lat": list(current)})
            current.clear()
            if settled in report_at:
                pending_probe.append(len(marks) - 1)

    async def probe() -> None:
        """Per-trade query cost at the report marks, while the stream runs."""
        done: set[int] = set()
        while True:
            for idx in [i for i in pending_probe if i not in done]:
                done.add(idx)
                marks[idx]["corda_balances_query_ms"] = await _query_ms(
                    lambda: led.corda.query_app("balances", owner=buyer.hex()))
                marks[idx]["evm_escrow_query_ms"] = await _query_ms(
                    lambda: led.evm.query_app("dvp_escrow", trade_id="h-000000"))
            await asyncio.sleep(0.5)

    prober = asyncio.create_task(probe())
    try:
        # A pool of ``concurrency`` workers, not one task per trade: 100,000 parked tasks cost
        # the driver gigabytes and would be counted against the client's memory.
        ids = iter(range(total))

        async def worker() -> None:
            for i in ids:
                await one(i)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        prober.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await prober
    windows: list[dict[str, Any]] = []
    for prev, cur in itertools.pairwise(marks):
        n = cur["settled"] - prev["settled"]
        dt = cur["t"] - prev["t"]
        cpu = sum(cur["cpu"][k] - prev["cpu"][k] for k in cur["cpu"])
        windows.append({
            "settled_before": prev["settled"], "trades": n, "settled_per_s": round(n / dt, 1) if dt > 0 else None,
            "cpu_ms_per_trade": round(cpu / n * 1000, 3),
            "cpu_ms_per_trade_by_process": {k: round((cur["cpu"][k] - prev["cpu"][k]) / n * 1000, 3)
                                            for k in cur["cpu"]},
            "latency_p50_s": round(_percentile(cur["lat"], 50), 3) if cur["lat"] else None,
            "latency_p99_s": round(_percentile(cur["lat"], 99), 3) if cur["lat"] else None,
            "report": "corda_balances_query_ms" in cur or prev["settled"] == 0,
            **{k: cur[k] for k in ("corda_balances_query_ms", "evm_escrow_query_ms") if k in cur},
        })
    out: dict[str, Any] = {"settled": settled, "failed": failed, "windows": windows}
    # the first full window after warm-up against the last one
    if len(windows) >= 3:
        first, last = windows[1], windows[-1]
        out["flatness"] = {
            "first_at": first["settled_before"], "last_at": last["settled_before"],
            "cpu_ratio": round(last["cpu_ms_per_trade"] / first["cpu_ms_per_trade"], 3),
            "throughput_ratio": round((last["settled_per_s"] or 0) / (first["settled_per_s"] or 1), 3)}
    return out


async def _restart_s(node: NodeProc, procs: Procs) -> float:
    """SIGTERM the node, start it again on its home, time until it answers Status."""
    node.proc.stop()
    (node.home / "node.addr").unlink(missing_ok=True)
    started = time.monotonic()
    proc = procs.spawn(node.chain_id + "-restarted", ["node", "start", "--home", str(node.home),
                                                       "--grpc", "127.0.0.1:0"], node.home / "node.log")
    addr_file = node.home / "node.addr"
    while not (addr_file.exists() and addr_file.read_text().strip()):
        if not proc.alive():
            raise RuntimeError(f"{node.chain_id} did not restart:\n{proc.tail()}")
        await asyncio.sleep(0.05)
    async with NodeClient(addr_file.read_text().strip(), retry=RetryPolicy(attempts=50, timeout_s=5)) as c:
        await c.status()
    return round(time.monotonic() - started, 2)


def run(quick: bool) -> dict[str, Any]:
    total = TOTAL_QUICK if quick else TOTAL_FULL
    window = WINDOW_QUICK if quick else WINDOW_FULL
    concurrency = CONCURRENCY_QUICK if quick else CONCURRENCY_FULL
    report_at = {window, total // 2, total - window} if quick else set(REPORT_AT_FULL)
    out: dict[str, Any] = {"settings": {"total": total, "window": window, "concurrency": concurrency,
                                        "st_per_trade": QTY, "sc_per_trade": AMOUNT, "validators": 4}}
    with tempfile.TemporaryDirectory(prefix="bench-dvp-history-") as tmp:
        procs = Procs()
        try:
            net, _port, _daemon = _setup(Path(tmp), procs)

            async def go() -> None:
                async with await Ledgers.connect(net.evm.addr, net.corda.addr, net.channel) as led:
                    firm_b = net.corda.key("holder-firm-b")
                    await split_cash(led, firm_b, ed25519_public_key(firm_b), concurrency)
                    client = TimedClient(led)
                    watch = ExitWatch(net.channel)
                    start = int((await led.corda.status()).latest_height) + 1
                    watcher = asyncio.create_task(watch.run(led.corda, start))
                    try:
                        out.update(await _stream(client, watch, net, total, window, concurrency, report_at))
                    finally:
                        watcher.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await watcher
                    heights = {"evm": int((await led.evm.status()).latest_height),
                               "corda": int((await led.corda.status()).latest_height)}
                out["restart"] = [
                    {"node": "evm", "trades": out["settled"], "height": heights["evm"],
                     "restart_s": await _restart_s(net.evm, procs)},
                    {"node": "corda", "trades": out["settled"], "height": heights["corda"],
                     "restart_s": await _restart_s(net.corda, procs)}]

            asyncio.run(go())
        finally:
            procs.stop_all()
    return out
