"""Atomic DvP settlement throughput and latency: real nodes, the real relayer daemon, the real client.

What runs: one EVM node and one Corda node (``kakehashi node start`` subprocesses), a
connection and an unordered ``dvp`` channel made with the operator's ``kakehashi create``
commands, and the ``kakehashi start`` daemon relaying. Trades alice -> bob (ST on the EVM
chain, SC paid by firm-b to firm-a on the Corda chain) go through
:class:`relayer.dvp.DvpClient` exactly as the feed sends them: each trade is pre-checked,
locked on both chains and followed on its own (RTGS), with at most ``concurrency`` trades
between lock and final at any time. Sizes 100, 1,000 and 10,000 run one after another on the
same network (quick: 20).

What is measured: a trade's latency is from the moment the client submits its EVM lock to
the moment the Corda block carrying its lock's exit (the ack with Settle) reaches this
process on the Corda node's block stream, i.e. lock -> both legs final (the Corda exit
consumes the lock only with the proof of the EVM delivery). Throughput is settled trades
over first lock -> last exit. Latency is also given in block periods of the slower chain (the
EVM's); the floor is three (lock, recv, ack). The run checks the outcome on the chains: every
settled trade moved exactly its ST and SC and the escrows end empty.

Why the buyer's cash is split first: a lock spends whole Cash states, so one state would make
every lock wait for the previous lock's change; splitting it into ``concurrency`` states
lets the locks proceed in parallel as a real buyer's many states would.

Where the time goes: the machine stays partly idle, so throughput is concurrency over the
time a trade holds its slot (Little's law): the pre-check's node queries, the two locks (each
waits for its block) and lock -> exit. The relayer's pass sends the recv tx (EVM) and the
ack tx (Corda) together, so a packet waits for the pass in flight and then one pass. Two
costs that grew with history are gone and stay checked here: the Corda node's balance
queries read an unconsumed-state index (``corda_balances_query_ms``, before and after each
size, stays flat), and both nodes list a channel's packet commitments from an index instead
of probing every sequence ever sent (which at 10,000 trades held the Corda node's event loop
for hundreds of milliseconds per relayer pass). Each size has a time budget for
feeding trades; a size that does not finish within it reports what it settled and
``truncated: true`` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chains.corda.cash import CASH, cash_state
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.ibc import events as ev
from chains.ibc.apps import dvp as dvp_app
from chains.node.client import NodeClient
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.node.v1 import node_pb2
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from relayer.codecs.corda import fresh_salt
from relayer.dvp import DvpClient, Ledgers, parse_trade
from relayer.dvp.trade import ResolvedTrade
from tests.support.live import (
    NodeProc,
    Proc,
    Procs,
    RelayerSetup,
    add_keys,
    create_path,
    free_port,
    http_get,
    kj,
    metric,
    start_daemon,
    start_node,
    wait_ready,
    write_config,
)

EVM_PERIOD_S, CORDA_PERIOD_S = 1.0, 0.2
MAX_MSG_NUM = 64  # the EVM tx bound: one UpdateClient + 63 packet messages
CLEAR_LIMIT = 1000
CLEAR_INTERVAL = 10
RELAYER_KEYS = {"evm": "carol", "corda": "holder-firm-c"}
QTY, AMOUNT = 1, 10  # ST and SC per trade
DEADLINE_S = 600
IDLE_BEFORE_QUERY_S = 5.0
SIZES_FULL = (1000, 10_000)
SIZE_QUICK = 20
# trades between lock and final at once: throughput = in flight / latency (Little's law), so
# ~250/s at ~3 s needs ~750 in flight
CONCURRENCY_FULL, CONCURRENCY_QUICK = 1024, 20
# seconds of feeding per size before it is cut short (the in-flight trades then finish)
BUDGET_S = {SIZE_QUICK: 40.0, 100: 60.0, 1000: 120.0, 10_000: 600.0}
FINAL_WAIT_S = 120.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank (every value reported was observed)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class TimedClient(DvpClient):
    """The settlement client, noting when each trade's EVM lock is submitted (after its pre-check)."""

    def __init__(self, ledgers: Ledgers, **kw: Any) -> None:
        super().__init__(ledgers, **kw)
        self.lock_started: dict[str, float] = {}

    async def lock_evm(self, rt: ResolvedTrade, seller_key: bytes) -> node_pb2.TxResult:
        self.lock_started.setdefault(rt.trade_id, time.monotonic())
        return await super().lock_evm(rt, seller_key)


@dataclass
class ExitWatch:
    """Arrival time of every dvp exit (ack or timeout) on the Corda node's block stream."""

    channel: str
    seen: dict[int, tuple[float, str]] = field(default_factory=dict)  # sequence -> (monotonic s, event)
    waiters: dict[int, asyncio.Future[None]] = field(default_factory=dict)

    async def run(self, node: NodeClient, start: int) -> None:
        next_height = start
        while True:
            try:
                async for blk in node.stream_blocks(next_height):
                    next_height = int(blk.height) + 1
                    now = time.monotonic()
                    for r in blk.results:
                        for e in r.events:
                            if e.type not in (ev.ACKNOWLEDGE_PACKET, ev.TIMEOUT_PACKET):
                                continue
                            p = ev.Event(e.type, tuple((a.key, bytes(a.value)) for a in e.attributes)).packet()
                            if p is None or (p.source_port, p.source_channel) != (dvp_app.PORT_ID, self.channel):
                                continue
                            self.seen.setdefault(p.sequence, (now, e.type))
                            fut = self.waiters.pop(p.sequence, None)
                            if fut is not None and not fut.done():
                                fut.set_result(None)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken stream is reopened where it stopped
                await asyncio.sleep(0.2)

    async def wait(self, sequence: int, timeout_s: float) -> tuple[float, str] | None:
        if sequence not in self.seen:
            fut = self.waiters.setdefault(sequence, asyncio.get_running_loop().create_future())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        return self.seen.get(sequence)


async def split_cash(led: Ledgers, seed: bytes, owner: bytes, pieces: int) -> None:
    """One Cash Move from the buyer to itself: all its cash as ``pieces`` (nearly) equal states."""
    issuer = led.cash_issuer
    rows = [r for r in await led.cash_of(owner) if r["issuer"] == issuer.hex()]
    total = sum(int(r["amount"]) for r in rows)
    if total < pieces:
        raise RuntimeError(f"the buyer holds {total} SC, too little to split into {pieces} states")
    admission, _ = await led.admission(issuer)
    if admission is None:
        raise RuntimeError("the cash issuer has no Admission")
    each = total // pieces
    amounts = [each] * (pieces - 1) + [total - each * (pieces - 1)]
    wtx = WireTransaction(
        inputs=tuple(pb.StateRef(txid=bytes.fromhex(r["txid"]), index=int(r["index"])) for r in rows),
        outputs=tuple(cash_state(issuer, owner, a, led.notary) for a in amounts),
        commands=(pb.Command(contract=CASH, name="Move", signers=[owner]),),
        notary=led.notary, privacy_salt=fresh_salt(),
        references=(pb.StateRef(txid=bytes.fromhex(admission["txid"]), index=int(admission["index"])),))
    res = await led.submit_and_wait(False, SignedTransaction(wtx).sign(seed).encode())
    if res.status != node_pb2.TX_STATUS_COMMITTED:
        raise RuntimeError(f"splitting the buyer's cash failed: {res.reason}")


@dataclass
class Net:
    evm: NodeProc
    corda: NodeProc
    channel: str  # the Corda end of the dvp channel
    relayer: Proc | None = None

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each process of the run (this one is the DvP client)."""
        out = {"evm_node": self.evm.proc.cpu_s(), "corda_node": self.corda.proc.cpu_s(),
               "client": time.process_time()}
        if self.relayer is not None:
            out["relayer"] = self.relayer.cpu_s()
        return out


async def _holdings(led: Ledgers, net: Net) -> dict[str, int]:
    out = {"st:escrow": (await led.st_holding(led.escrow_address))[0],
           "sc:escrow": await led.sc_balance(bytes.fromhex(str(led.corda_info["dvp_escrow_owner"])), led.cash_issuer)}
    for name in ("alice", "bob"):
        out[f"st:{name}"] = (await led.st_holding(eth_address(secp256k1_public_key(net.evm.key(name)))))[0]
    for name in ("firm-a", "firm-b"):
        out[f"sc:{name}"] = await led.sc_balance(ed25519_public_key(net.corda.key(f"holder-{name}")), led.cash_issuer)
    return out


async def _size(client: TimedClient, watch: ExitWatch, net: Net, n: int, concurrency: int, tag: str,
                budget_s: float, sc_check: bool = True) -> dict[str, Any]:
    """One size on one path. ``sc_check=False`` when other paths settle against the same SC
    balances at the same time (the caller then checks the SC moves over all paths)."""
    led = client.ledgers
    alice, firm_b = net.evm.key("alice"), net.corda.key("holder-firm-b")
    parties = {"seller": {"evm": "0x" + eth_address(secp256k1_public_key(alice)).hex(),
                          "corda": ed25519_public_key(net.corda.key("holder-firm-a")).hex()},
               "buyer": {"evm": "0x" + eth_address(secp256k1_public_key(net.evm.key("bob"))).hex(),
                         "corda": ed25519_public_key(firm_b).hex()}}
    before = await _holdings(led, net)
    query_ms_before = await _query_ms(led, parties["buyer"]["corda"])
    cpu_before = net.cpu()
    sem = asyncio.Semaphore(concurrency)
    feed_until = time.monotonic() + budget_s
    latencies: list[float] = []
    ends: list[float] = []
    outcome: dict[str, int] = {"settled": 0, "not_final": 0, "lock_failed": 0, "not_fed": 0, "other_exit": 0}
    errors: list[str] = []

    async def one(i: int) -> None:
        async with sem:
            if time.monotonic() > feed_until:
                outcome["not_fed"] += 1
                return
            tid = f"b{tag}-{i:05d}"
            trade = parse_trade({"trade_id": tid, "st_quantity": QTY, "sc_amount": AMOUNT, **parties,
                                 "deadline_s": DEADLINE_S})
            got = await client.settle(trade, alice, firm_b, follow=False)
            seq = got.corda.get("sequence")
            if got.state not in ("locked", "delivered", "settled") or seq is None:
                outcome["lock_failed"] += 1
                if len(errors) < 5:
                    errors.append(f"{tid}: {got.state}: {got.error or got.reasons}")
                return
            seen = await watch.wait(int(seq), FINAL_WAIT_S)
            if seen is None:
                outcome["not_final"] += 1
                return
            at, kind = seen
            if kind != ev.ACKNOWLEDGE_PACKET:
                outcome["other_exit"] += 1
                return
            outcome["settled"] += 1
            latencies.append(at - client.lock_started[tid])
            ends.append(at)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    cpu_used = {k: v - cpu_before[k] for k, v in net.cpu().items()}
    after = await _holdings(led, net)
    # right after the last exit the node still works off the tail (relayer clearing, late
    # polls): let it settle, then time the query the pre-check makes per trade
    await asyncio.sleep(IDLE_BEFORE_QUERY_S)
    query_ms_after = await _query_ms(led, parties["buyer"]["corda"])
    settled = outcome["settled"]
    firsts = [client.lock_started[f"b{tag}-{i:05d}"] for i in range(n) if f"b{tag}-{i:05d}" in client.lock_started]
    span = (max(ends) - min(firsts)) if ends and firsts else 0.0
    # The chains agree: every settled trade moved exactly its ST and SC; nothing stays escrowed
    # once every trade that was locked has exited.
    moved_ok = (before["st:alice"] - after["st:alice"] == after["st:bob"] - before["st:bob"] == settled * QTY
                and (not sc_check or before["sc:firm-b"] - after["sc:firm-b"] == after["sc:firm-a"] - before["sc:firm-a"]
                     == settled * AMOUNT))
    escrow_empty = after["st:escrow"] == before["st:escrow"] and (not sc_check or after["sc:escrow"] == before["sc:escrow"])
    period = max(EVM_PERIOD_S, CORDA_PERIOD_S)
    result: dict[str, Any] = {
        "trades": n, "settled": settled, "concurrency": concurrency, **{k: v for k, v in outcome.items() if k != "settled"},
        "wall_s": round(time.monotonic() - started, 2),
        "span_s_first_lock_to_last_exit": round(span, 2),
        "settled_per_s": round(settled / span, 2) if span > 0 else None,
        "chain_check": {"moved_exactly_the_settled_amounts": moved_ok, "escrows_back_to_start": escrow_empty},
        # one Corda `balances` query (the pre-check asks it per trade) before and after this size
        # (after: once the node is idle again, so it shows the query's cost at this history)
        "corda_balances_query_ms": {"before": query_ms_before, "after": query_ms_after},
        # CPU of each process over the size (first trade fed -> last exit seen), per settled trade
        "cpu_s": {k: round(v, 2) for k, v in cpu_used.items()},
        "cpu_ms_per_trade": ({k: round(v / settled * 1000, 3) for k, v in cpu_used.items()}
                             | {"total": round(sum(cpu_used.values()) / settled * 1000, 3)}) if settled else None,
        "cpu_cores_busy": round(sum(cpu_used.values()) / (time.monotonic() - started), 2),
    }
    if latencies:
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        result.update({"latency_p50_s": round(p50, 3), "latency_p99_s": round(p99, 3),
                       "latency_max_s": round(max(latencies), 3),
                       "latency_p50_block_periods": round(p50 / period, 2),
                       "latency_p99_block_periods": round(p99 / period, 2)})
    if settled < n:
        result["truncated"] = True
        result["reason"] = (f"{outcome['not_fed']} trades not started within the {budget_s:g} s feeding budget"
                            if outcome["not_fed"] else "some trades did not settle; see the counts")
    if errors:
        result["errors"] = errors
    if not (moved_ok and escrow_empty):
        result["error"] = f"chain check failed: before {before}, after {after}"
    return result


async def _query_ms(led: Ledgers, buyer_hex: str, calls: int = 5) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await led.sc_balance(bytes.fromhex(buyer_hex), led.cash_issuer)
    return round((time.perf_counter() - started) / calls * 1000, 2)


def _setup(root: Path, procs: Procs, prover: str = "direct") -> tuple[Net, int, Any]:
    evm = start_node(root, "evm", "evm-bench", f"{int(EVM_PERIOD_S * 1000)}ms", procs)
    corda = start_node(root, "corda", "corda-bench", f"{int(CORDA_PERIOD_S * 1000)}ms", procs)
    add_keys(root / "keys", [(evm, RELAYER_KEYS["evm"]), (corda, RELAYER_KEYS["corda"])])
    port = free_port()
    cfg = write_config(root / "relayer.toml", [evm, corda], RelayerSetup(
        metrics_port=port, max_msg_num=MAX_MSG_NUM, clear_limit=CLEAR_LIMIT, clear_interval=CLEAR_INTERVAL,
        keys={evm.chain_id: f"{evm.chain_id}-{RELAYER_KEYS['evm']}",
              corda.chain_id: f"{corda.chain_id}-{RELAYER_KEYS['corda']}"}))
    if prover == "proxy":  # both chains proven through a proxy process (SIMULATED enclave)
        from tests.support.proxylive import proxy_section, start_proxy, use_proxy

        use_proxy(cfg, proxy_section(start_proxy(root, procs)))
    path = create_path(cfg, evm, corda, channel=False)
    chan = kj("create", "channel", "-c", str(cfg), "--a-chain", evm.chain_id, "--a-connection", path.a_connection,
              "--a-port", dvp_app.PORT_ID, "--b-port", dvp_app.PORT_ID, "--channel-version", dvp_app.VERSION)
    daemon = start_daemon(procs, cfg)
    wait_ready(daemon, port)
    return Net(evm, corda, chan["b_channel"], daemon), port, daemon


def run(quick: bool, prover: str = "direct", sizes: Sequence[int] | None = None, st_chains: int = 1) -> dict[str, Any]:
    """``prover``: "direct" or "proxy" (bench_proxy runs both); ``sizes`` overrides the default sizes;
    ``st_chains`` > 1 measures the hub instead (bench/dvp_paths.py: per path and in total)."""
    if st_chains > 1:
        from bench.dvp_paths import run_paths

        return run_paths(quick, st_chains)
    sizes = tuple(sizes) if sizes else (SIZE_QUICK,) if quick else SIZES_FULL
    concurrency = CONCURRENCY_QUICK if quick else CONCURRENCY_FULL
    out: dict[str, Any] = {"settings": {
        "evm_block_period_s": EVM_PERIOD_S, "corda_block_period_s": CORDA_PERIOD_S,
        "block_period_unit": "the slower chain's (EVM) block period",
        "latency_floor": ("three steps, lock, recv, ack; with the client's locks in turn that is EVM lock + Corda "
                          f"lock + EVM recv + Corda ack = {2 * EVM_PERIOD_S + 2 * CORDA_PERIOD_S:g} s here, a "
                          "lock submitted mid-block waits less than a full period"),
        "latency_floor_s": 2 * EVM_PERIOD_S + 2 * CORDA_PERIOD_S,
        "max_msg_num": MAX_MSG_NUM, "clear_limit": CLEAR_LIMIT, "clear_interval_blocks": CLEAR_INTERVAL,
        "concurrency": concurrency, "buyer_cash_states": concurrency, "st_per_trade": QTY, "sc_per_trade": AMOUNT,
        "validators": 4, "feeding_budget_s": {str(n): BUDGET_S.get(n, 120.0) for n in sizes}, "prover": prover,
        "latency": "EVM lock submitted -> Corda block with the lock's exit (Settle) received"}}
    with tempfile.TemporaryDirectory(prefix="bench-dvp-") as tmp:
        procs = Procs()
        try:
            net, port, daemon = _setup(Path(tmp), procs, prover)

            async def go() -> None:
                async with await Ledgers.connect(net.evm.addr, net.corda.addr, net.channel) as led:
                    firm_b = net.corda.key("holder-firm-b")
                    await split_cash(led, firm_b, ed25519_public_key(firm_b), concurrency)
                    client = TimedClient(led)
                    watch = ExitWatch(net.channel)
                    start = int((await led.corda.status()).latest_height) + 1
                    watcher = asyncio.create_task(watch.run(led.corda, start))
                    try:
                        for n in sizes:
                            out[f"n{n}"] = await _size(client, watch, net, n, concurrency, str(n), BUDGET_S.get(n, 120.0))
                    finally:
                        watcher.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await watcher

            asyncio.run(go())
            code, text = http_get(port, "/metrics")
            if code == 200:
                out["relayer"] = {
                    "txs_confirmed_evm": int(metric(text, "kakehashi_tx_latency_confirmed_seconds_count",
                                                    chain=net.evm.chain_id)),
                    "txs_confirmed_corda": int(metric(text, "kakehashi_tx_latency_confirmed_seconds_count",
                                                      chain=net.corda.chain_id)),
                    "tx_errors": int(metric(text, "kakehashi_tx_errors_total")),
                    "peak_rss_mib": round(daemon.peak_rss_kib() / 1024, 1)}
        finally:
            procs.stop_all()
    return out
