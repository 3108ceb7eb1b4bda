"""`make run`: the local testnet end to end — transfers both ways, watched from the chains.

Why the demo trusts only the nodes: it is the check that the relayer works, so delivery and
acknowledgement are observed in the chains' own block streams (recv_packet on the
destination, acknowledge_packet back on the source) and the supply check reads balances,
escrow and supply from the nodes; nothing is taken from the relayer's logs or metrics.

The demo is a list of phases sharing one :class:`DemoContext`; a phase records its numbers
in ``ctx.report[name]`` and any failed check in ``ctx.failures``. A later phase (e.g. DvP)
is one more entry in :data:`PHASES`. Latency is wall-clock time in this process, from the
moment the send tx is committed (its submit returns) to the moment the block carrying the
acknowledge_packet event arrives on the stream; chain block times are not used because the
EVM chain's whole-second block time may run ahead of the wall clock.

Exit status: 0 when every check passed; 1 with the reasons otherwise. The testnet is left
running (`kakehashi testnet down --home DIR` stops it) unless ``--down`` is given, so the
state it produced can be inspected with the query commands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from chains.ibc import events as ev
from chains.ibc.apps.transfer import ack_succeeded
from chains.ibc.events import Event
from chains.node.client import NodeClient
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from relayer.cli.console import stdout_console
from relayer.codecs import codec_for
from relayer.core.chain import GrpcChainHandle
from relayer.core.tasks import cancel_and_wait
from relayer.testnet import network as testnet
from relayer.testnet.demo_context import DEFAULT_TRADES, DemoContext, Direction, Phase, address_of
from relayer.testnet.demo_dvp import phase_dvp
from relayer.testnet.demo_dvp import print_report as print_dvp_report
from relayer.testnet.demo_paths import phase_paths
from relayer.testnet.demo_paths import print_report as print_paths_report
from relayer.testnet.procs import TestnetError

SEC_NS = 1_000_000_000
DEFAULT_HOME = Path(".testnet")
# a testnet's clients are of one kind, so proxy mode gets its own default home
DEFAULT_HOMES = {"direct": DEFAULT_HOME, "proxy": Path(".testnet-proxy")}
MODES = {"direct": "direct light clients (qbft, corda) verified on chain",
         "proxy": "proxy (LCP-style): SIMULATED enclave signs, chains verify 12-proxy clients"}
# Transfers per send tx: about four send txs each way (5..50 messages each), so sends spread
# over a few blocks without one tx per transfer.
MIN_BATCH, MAX_BATCH, SEND_TXS = 5, 50, 4
AMOUNT = 100
PACKET_TIMEOUT_S = 600


def _key(home: Path, name: str) -> bytes:
    return bytes.fromhex((home / "keys" / f"{name}.key").read_text().strip().removeprefix("0x"))


# --- phase: testnet ------------------------------------------------------------------------


async def phase_testnet(ctx: DemoContext) -> None:
    started = time.monotonic()
    ctx.tn = await testnet.up_async(ctx.home, prover=ctx.prover, st_chains=ctx.st_chains)
    transfer = ctx.tn.channel("transfer")
    ctx.report["testnet"] = {"home": str(ctx.home), "seconds": round(time.monotonic() - started, 2),
                             "channel": transfer, "relayer_pid": ctx.tn.relayer.pid,
                             "metrics": ctx.tn.relayer.metrics, "prover": ctx.tn.prover,
                             "verification": MODES[ctx.tn.prover],
                             "clients": [ctx.tn.connection.get("a_client"), ctx.tn.connection.get("b_client")]}
    ctx.console.print(f"verification mode: [bold]{ctx.tn.prover}[/] — {MODES[ctx.tn.prover]}")
    a_chain, b_chain = ctx.tn.chain_ids
    ctx.console.print(f"testnet up in {ctx.report['testnet']['seconds']} s: transfer channel "
                      f"{transfer['a_channel']} ({a_chain}) <-> {transfer['b_channel']} ({b_chain}); relayer pid "
                      f"{ctx.tn.relayer.pid}, metrics {ctx.tn.relayer.metrics}")


# --- phase: transfers ------------------------------------------------------------------------


async def _bank(node: NodeClient, account: str, denom: str) -> tuple[int, int]:
    got = await node.query_app("bank_balance", account=account, denom=denom)
    return int(got["amount"]), int(got["supply"])


async def _escrow(node: NodeClient, port: str, channel: str, denom: str) -> int:
    return int((await node.query_app("escrow", port_id=port, channel_id=channel, denom=denom))["amount"])


async def _snapshot(d: Direction, src: NodeClient, dst: NodeClient) -> dict[str, int]:
    sender, supply = await _bank(src, d.sender, d.denom)
    receiver, voucher_supply = await _bank(dst, d.receiver, d.voucher)
    return {"sender": sender, "supply": supply, "receiver": receiver, "voucher_supply": voucher_supply,
            "escrow": await _escrow(src, d.port, d.src_channel, d.denom)}


async def _watch(node: NodeClient, kind: str, dirs: list[Direction], start: int) -> None:
    """Follow one chain's blocks and note our packets' recv / ack events (reconnecting)."""
    next_height = start
    while True:
        try:
            async for blk in node.stream_blocks(next_height):
                next_height = int(blk.height) + 1
                now = time.monotonic()
                for r in blk.results:
                    for e in r.events:
                        _note(Event(e.type, tuple((a.key, bytes(a.value)) for a in e.attributes)), kind, dirs, now)
        except Exception:  # any broken stream is reopened; a stuck demo fails on its timeout
            await asyncio.sleep(0.2)


def _note(e: Event, kind: str, dirs: list[Direction], now: float) -> None:
    p = e.packet()
    if p is None:
        return
    for d in dirs:
        if kind == d.dst_kind and (p.destination_port, p.destination_channel) == (d.port, d.dst_channel):
            if e.type == ev.RECV_PACKET:
                d.received.setdefault(p.sequence, now)
            elif e.type == ev.WRITE_ACKNOWLEDGEMENT and not ack_succeeded(e.get("ack") or b""):
                d.failed_acks.add(p.sequence)
        if kind == d.src_kind and (p.source_port, p.source_channel) == (d.port, d.src_channel) and \
                e.type == ev.ACKNOWLEDGE_PACKET:
            d.acked.setdefault(p.sequence, now)


async def _send(ctx: DemoContext, d: Direction, node: NodeClient) -> None:
    info = await node.query_app("chain_info")
    handle = GrpcChainHandle(ctx.chain_id(d.src_kind), node, codec_for(d.src_kind, d.sender_key, info))
    remaining = ctx.transfers
    batch = min(MAX_BATCH, max(MIN_BATCH, math.ceil(ctx.transfers / SEND_TXS)))
    while remaining > 0:
        n = min(batch, remaining)
        deadline = time.time_ns() + PACKET_TIMEOUT_S * SEC_NS
        msgs = [transfer_pb2.MsgTransfer(
            source_port=d.port, source_channel=d.src_channel, denom=d.denom, amount=str(AMOUNT), sender=d.sender,
            receiver=d.receiver, timeout_height=client_pb2.Height(), timeout_timestamp=deadline) for _ in range(n)]
        out = await handle.submit(msgs)
        if not out.committed:
            raise RuntimeError(f"{d.name}: send tx failed: {out.reason}")
        now = time.monotonic()
        for e in out.events:
            if e.type == ev.SEND_PACKET and (p := e.packet()) is not None:
                d.sent[p.sequence] = now
        remaining -= n


def _done(d: Direction) -> bool:
    return bool(d.sent) and all(q in d.acked for q in d.sent)


async def phase_transfers(ctx: DemoContext) -> None:
    """N transfers each way from the demo accounts; progress and latency from the block streams."""
    tn = ctx.testnet
    ch = tn.channel("transfer")
    evm_home, corda_home = (next(n.home for n in tn.nodes if n.kind == k) for k in ("evm", "corda"))
    ctx.directions = [
        Direction("evm -> corda", "evm", "corda", ch["a_channel"], ch["b_channel"], "stake", _key(evm_home, "alice"),
                  address_of("corda", _key(corda_home, "holder-firm-a"))),
        Direction("corda -> evm", "corda", "evm", ch["b_channel"], ch["a_channel"], "jpy",
                  _key(corda_home, "holder-firm-b"), address_of("evm", _key(evm_home, "bob"))),
    ]
    nodes = {k: NodeClient(ctx.address(k)) for k in ("evm", "corda")}
    watchers: list[asyncio.Task[None]] = []
    try:
        for d in ctx.directions:
            d.before = await _snapshot(d, nodes[d.src_kind], nodes[d.dst_kind])
        for kind, node in nodes.items():
            start = int((await node.status()).latest_height) + 1
            watchers.append(asyncio.create_task(_watch(node, kind, ctx.directions, start)))
        started = time.monotonic()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=ctx.console) as progress:
            bars = {(d.name, what): progress.add_task(f"{d.name} {what}", total=ctx.transfers)
                    for d in ctx.directions for what in ("sent", "received", "acked")}
            senders = asyncio.gather(*(_send(ctx, d, nodes[d.src_kind]) for d in ctx.directions))
            while True:
                for d in ctx.directions:
                    ours = set(d.sent)
                    progress.update(bars[(d.name, "sent")], completed=len(ours))
                    progress.update(bars[(d.name, "received")], completed=len(ours & set(d.received)))
                    progress.update(bars[(d.name, "acked")], completed=len(ours & set(d.acked)))
                if senders.done():
                    senders.result()  # a failed send fails the phase now
                    if all(_done(d) for d in ctx.directions):
                        break
                if time.monotonic() - started > ctx.timeout_s:
                    break
                await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        for d in ctx.directions:
            d_report = _direction_report(ctx, d)
            ctx.report.setdefault("transfers", {})[d.name] = d_report
        ctx.report.setdefault("transfers", {})["seconds"] = round(elapsed, 2)
        if not senders.done():
            senders.cancel()
            ctx.failures.append(f"sending did not finish within {ctx.timeout_s:g} s")
        for d in ctx.directions:
            r = ctx.report["transfers"][d.name]
            if r["acked"] != ctx.transfers:
                ctx.failures.append(f"{d.name}: {r['acked']} of {ctx.transfers} transfers acknowledged within "
                                    f"{ctx.timeout_s:g} s")
            if d.failed_acks & set(d.sent):
                ctx.failures.append(f"{d.name}: error acknowledgements for {sorted(d.failed_acks & set(d.sent))}")
    finally:
        await cancel_and_wait(*watchers)
        for node in nodes.values():
            await node.close()


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every value reported was observed)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _direction_report(ctx: DemoContext, d: Direction) -> dict[str, Any]:
    ours = set(d.sent)
    latencies = [d.acked[q] - d.sent[q] for q in ours if q in d.acked]
    lat = {f"p{q}": _percentile(latencies, q) for q in (50, 90, 99)}
    lat["max"] = max(latencies) if latencies else None
    return {"sent": len(ours), "received": len(ours & set(d.received)), "acked": len(ours & set(d.acked)),
            "failed_acks": len(d.failed_acks & ours), "sequences": [min(ours), max(ours)] if ours else [],
            "denom": d.denom, "voucher": d.voucher, "amount_each": AMOUNT,
            "latency_s": {k: None if v is None else round(v, 3) for k, v in lat.items()}}


# --- phase: supply ----------------------------------------------------------------------------


async def phase_supply(ctx: DemoContext) -> None:
    """Escrow on the source == voucher supply on the destination; no denom's supply changed."""
    checks: list[dict[str, Any]] = []
    nodes = {k: NodeClient(ctx.address(k)) for k in ("evm", "corda")}

    def check(name: str, got: int, want: int) -> None:
        checks.append({"check": name, "got": got, "want": want, "ok": got == want})
        if got != want:
            ctx.failures.append(f"supply check failed: {name}: got {got}, want {want}")

    try:
        for d in ctx.directions:
            after = await _snapshot(d, nodes[d.src_kind], nodes[d.dst_kind])
            minted = AMOUNT * len(set(d.received) & set(d.sent))
            check(f"{d.name}: escrow of {d.denom} on {d.src_kind} == supply of {d.voucher} on {d.dst_kind}",
                  after["escrow"], after["voucher_supply"])
            check(f"{d.name}: total supply of {d.denom} on {d.src_kind} unchanged", after["supply"],
                  d.before["supply"])
            check(f"{d.name}: sender's {d.denom} down by the amount sent", d.before["sender"] - after["sender"],
                  AMOUNT * len(d.sent))
            check(f"{d.name}: receiver's {d.voucher} up by the amount received",
                  after["receiver"] - d.before["receiver"], minted)
    finally:
        for node in nodes.values():
            await node.close()
    ctx.report["supply"] = checks


# The demo, in order; each phase reads what earlier ones left in the context.
PHASES: list[tuple[str, Phase]] = [
    ("testnet", phase_testnet),
    ("transfers", phase_transfers),
    ("supply", phase_supply),
]
PHASES.append(("dvp", phase_dvp))  # relayer/testnet/demo_dvp.py: trades, failures refunded, conservation
PHASES.append(("paths", phase_paths))  # relayer/testnet/demo_paths.py: trades on every ST chain, per path


# --- report ----------------------------------------------------------------------------------


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}s"


def print_report(ctx: DemoContext, out: Console) -> None:
    tn = ctx.report.get("testnet", {})
    if tn:
        out.print(f"verification mode: [bold]{tn['prover']}[/] — {tn['verification']} "
                  f"(clients {' / '.join(str(c) for c in tn['clients'])})")
    transfers = ctx.report.get("transfers", {})
    table = Table("direction", "sent", "received", "acked", "p50", "p90", "p99", "max",
                  title=f"transfers ({ctx.transfers} each way, {transfers.get('seconds', '-')} s)")
    for name, r in transfers.items():
        if isinstance(r, dict):
            lat = r["latency_s"]
            table.add_row(name, str(r["sent"]), str(r["received"]), str(r["acked"]), _fmt(lat["p50"]),
                          _fmt(lat["p90"]), _fmt(lat["p99"]), _fmt(lat["max"]))
    out.print(table)
    supply = Table("supply check", "got", "want", "ok")
    for c in ctx.report.get("supply", []):
        supply.add_row(c["check"], str(c["got"]), str(c["want"]), "yes" if c["ok"] else "[red]NO[/]")
    out.print(supply)
    if "dvp" in ctx.report:
        print_dvp_report(ctx.report["dvp"], out)
    if "paths" in ctx.report:
        print_paths_report(ctx.report["paths"], out)


async def run(ctx: DemoContext, phases: list[tuple[str, Phase]] | None = None) -> bool:
    """Run the phases in order; a phase that raises ends the run (its reason is a failure)."""
    for name, phase in phases if phases is not None else PHASES:
        try:
            await phase(ctx)
        except Exception as exc:
            ctx.failures.append(f"phase {name}: {type(exc).__name__}: {exc}")
            return False
    return not ctx.failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relayer.testnet.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None,
                        help="testnet directory, fresh or existing (default .testnet, or .testnet-proxy with --prover proxy)")
    parser.add_argument("--prover", choices=sorted(MODES), default="direct",
                        help="direct light clients, or the proxy (LCP-style, SIMULATED enclave) — default direct")
    parser.add_argument("--transfers", type=int, default=20, help="transfers each way (default 20)")
    parser.add_argument("--trades", type=int, default=DEFAULT_TRADES,
                        help=f"DvP trades that settle, plus one of each failure kind (default {DEFAULT_TRADES})")
    parser.add_argument("--st-chains", type=int, default=None,
                        help="EVM ST chains around the Corda SC chain (default 2; 1 with --prover proxy)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for every ack (default 90)")
    parser.add_argument("--down", action="store_true", help="stop the testnet at the end")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    ns = parser.parse_args(argv)
    if ns.transfers < 1:
        parser.error("--transfers must be at least 1")
    if ns.trades < 0:
        parser.error("--trades must not be negative")
    # Progress and messages go to stderr, so --json leaves stdout to the report alone.
    ns.home = ns.home or str(DEFAULT_HOMES[ns.prover])
    ctx = DemoContext(Path(ns.home).resolve(), ns.transfers, Console(stderr=True), timeout_s=ns.timeout,
                      trades=ns.trades, prover=ns.prover,
                      st_chains=ns.st_chains or (1 if ns.prover == "proxy" else 2))
    ok = asyncio.run(run(ctx))
    if ns.down:
        try:
            stopped = testnet.down(ctx.home)
            ctx.console.print(f"testnet stopped: {', '.join(stopped) or 'nothing was running'}")
        except TestnetError as exc:
            ctx.failures.append(f"testnet down: {exc}")
            ok = False
    if ns.json:
        print(json.dumps({"ok": ok, "failures": ctx.failures, **ctx.report}, indent=2, sort_keys=True))
    else:
        print_report(ctx, stdout_console())
    if not ns.down:
        ctx.console.print(f"the testnet is still running; stop it with: {testnet.cli_command()} testnet down "
                          f"--home {ns.home}", soft_wrap=True)
    for reason in ctx.failures:
        ctx.console.print(f"[red]FAILED[/]: {reason}")
    if ok:
        ctx.console.print("[green]all checks passed[/]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
