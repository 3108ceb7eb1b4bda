"""The chaos soak: DvP trades and transfers under seeded faults, judged from the chains.

    python -m tests.chaos.soak                     # the full size (`make soak`)
    python -m tests.chaos.soak --small --seed 7    # the size `make test` runs
    python -m tests.chaos.soak --seed S            # replays run S's fault schedule and traffic mix

What runs (loopback only): an EVM and a Corda node, mosquitto, the relayer daemon (and, as a
fault, a second one), the ``kakehashi dvp feed`` process settling a file of trades, and this
process sending ICS-20 transfers both ways and injecting faults (tests/chaos/faults.py). The
seed decides the traffic mix (which trades and transfers get short timeouts, the amounts)
and the faults (kinds, instants, durations); wall-clock timing of the processes still varies,
so a replay injects the same faults into the same traffic, not into the same packets.

At the end, with every service back and the traffic drained (tests/chaos/verdict.py): every
trade in exactly one final state on both chains (a refund's escrowed ST is reclaimed after its
deadline, and that is checked too), no packet received, acknowledged or timed out twice (counted
from every block's events), ST and SC supply conserved to the unit and the parties moved by
exactly the settled trades, each transfer received once or refunded once with the balances to
match, every settlement event delivered to the back office's MQTT subscription at least once
(duplicates recognised by topic), and no process left behind. The run prints its seed, a table
of the faults injected and what happened, and writes the whole report as JSON; it exits 1 when
any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chains.corda.cash import CASH, cash_state
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.node.client import RetryPolicy
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.node.v1 import node_pb2
from relayer.codecs.corda import fresh_salt
from relayer.dvp import Ledgers
from relayer.ops.logs import configure_logging
from tests.chaos import verdict as V
from tests.chaos.faults import KINDS, FaultTimes, Injector, Schedule
from tests.chaos.net import BUYER, Child, Net, PeakWatch, build, feed_argv
from tests.chaos.subscriber import Recorder
from tests.chaos.traffic import TradeMix, TransferDriver, TransferPlan, write_trades


@dataclass(frozen=True)
class SoakSize:
    trades: int
    transfers: int  # both directions together
    min_faults: int
    feed_concurrency: int
    transfer_rate_per_s: float  # per direction
    transfer_per_tx: int
    mix: TradeMix
    transfer_short_timeout_s: tuple[int, int]
    transfer_long_timeout_s: int
    transfer_short_share: float
    times: FaultTimes
    max_inject_s: float  # stop starting faults after this long, even below min_faults
    drain_s: float


FULL = SoakSize(
    trades=10_000, transfers=10_000, min_faults=60, feed_concurrency=48, transfer_rate_per_s=8.0,
    transfer_per_tx=16,
    mix=TradeMix(long_timeout_s=300, short_timeout_s=(20, 35), short_share=0.1),
    transfer_short_timeout_s=(20, 35), transfer_long_timeout_s=3600, transfer_short_share=0.1,
    times=FaultTimes(gap_s=(2.0, 8.0), relayer_down_s=(0.0, 5.0), node_down_s=(0.0, 3.0), second_for_s=(5.0, 25.0),
                     pause_s=(40.0, 55.0), broker_down_s=(1.0, 8.0), stall_s=(1.0, 6.0)),
    max_inject_s=3600.0, drain_s=900.0)

SMALL = SoakSize(
    trades=300, transfers=300, min_faults=8, feed_concurrency=64, transfer_rate_per_s=5.0, transfer_per_tx=10,
    mix=TradeMix(long_timeout_s=45, short_timeout_s=(15, 18), short_share=0.15),
    transfer_short_timeout_s=(15, 18), transfer_long_timeout_s=600, transfer_short_share=0.1,
    times=FaultTimes(gap_s=(0.5, 2.0), relayer_down_s=(0.0, 1.0), node_down_s=(0.0, 1.0), second_for_s=(2.0, 4.0),
                     pause_s=(20.0, 22.0), broker_down_s=(0.5, 2.0), stall_s=(1.0, 2.0)),
    max_inject_s=120.0, drain_s=150.0)


@dataclass
class Report:
    seed: int
    size: dict[str, Any]
    root: str
    phases_s: dict[str, float] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    trades: dict[str, Any] = field(default_factory=dict)
    transfers: dict[str, Any] = field(default_factory=dict)
    packets: dict[str, Any] = field(default_factory=dict)
    mqtt: dict[str, Any] = field(default_factory=dict)
    processes: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


async def split_cash(led: Ledgers, seed: bytes, owner: bytes, pieces: int) -> None:
    """The buyer's Cash as ``pieces`` states, so concurrent locks do not wait for each other's change."""
    issuer = led.cash_issuer
    rows = [r for r in await led.cash_of(owner) if r["issuer"] == issuer.hex()]
    total = sum(int(r["amount"]) for r in rows)
    admission, _ = await led.admission(issuer)
    assert admission is not None
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


def _connect(net: Net) -> Any:
    return Ledgers.connect(net.evm.addr, net.corda.addr, net.dvp_corda, retry=RetryPolicy(attempts=8, timeout_s=30))


def run(size: SoakSize, seed: int, root: Path, log: Any = print) -> Report:
    rng = random.Random(seed)
    report = Report(seed, {k: v for k, v in asdict(size).items()}, str(root))
    t = time.monotonic()
    log(f"soak seed {seed}: {size.trades} trades, {size.transfers} transfers, >= {size.min_faults} faults; in {root}")
    net = build(root)
    feed: Child | None = None
    recorder: Recorder | None = None
    driver: TransferDriver | None = None
    watch = PeakWatch(lambda: net.children() + ([feed] if feed is not None else []))
    watch.__enter__()
    try:
        recorder = Recorder("127.0.0.1", net.mqtt_port)
        recorder.start()
        net.relayer.child.start()
        trades_file, db = root / "trades.jsonl", root / "dvp.sqlite"
        docs = write_trades(net, trades_file, size.trades, rng, size.mix, f"s{seed % 100000}")
        trade_ids = [d["trade_id"] for d in docs]

        async def prepare() -> dict[str, int]:
            async with await _connect(net) as led:
                payer = net.corda.key(f"holder-{BUYER[1]}")
                from lightclients.crypto import ed25519_public_key
                await split_cash(led, payer, ed25519_public_key(payer), size.feed_concurrency)
                return await V.parties(net, led)
        before = asyncio.run(prepare())
        plan = TransferPlan(size.transfers, size.transfer_per_tx, size.transfer_rate_per_s, size.transfer_short_share,
                            size.transfer_short_timeout_s, size.transfer_long_timeout_s)
        driver = TransferDriver(net, plan, rng)
        bank_before = {d.name: asyncio.run(V.bank_balances(d, _other_end(net, d.channel))) for d in driver.dirs}
        report.phases_s["setup"] = round(time.monotonic() - t, 1)
        log(f"setup done in {report.phases_s['setup']} s; traffic and faults start")

        t = time.monotonic()
        feed = Child("feed", feed_argv(net, trades_file, db, size.feed_concurrency, size.drain_s + 600),
                     root / "feed.log", stdout=root / "feed.json")
        feed.start()
        driver.start()
        injector = Injector(net, Schedule(rng, size.times), busy_mempool=20)
        started = time.monotonic()
        while True:
            gap = injector.s.gap()
            time.sleep(gap)
            traffic_done = driver.done.is_set() and not feed.alive()
            enough = len(injector.faults) >= size.min_faults
            if (traffic_done and enough) or time.monotonic() - started > size.max_inject_s:
                break
            kind = injector.s.next_kind()
            f = injector.run(kind, time.monotonic() - started)
            log(f"  fault {f.index:3d} {f.kind:15s} at {f.at_s:7.1f} s: "
                f"{'ok' if f.ok else 'FAILED ' + str(f.error)} {f.detail}")
        report.faults = [f.to_json() for f in injector.faults]
        report.phases_s["traffic_and_faults"] = round(time.monotonic() - t, 1)

        t = time.monotonic()
        injector._heal()
        driver.join(size.drain_s)
        if driver.error is not None:
            report.problems.append(f"transfer driver: {type(driver.error).__name__}: {driver.error}")
        _wait_feed(feed, size.drain_s)
        report.trades["feed"] = _feed_report(root / "feed.json")
        report.phases_s["drain"] = round(time.monotonic() - t, 1)

        t = time.monotonic()

        async def finish() -> None:
            async with await _connect(net) as led:
                states = await _settled_states(led, trade_ids, size.drain_s)
                errors = await V.reclaim_all(net, led, db, states)
                if errors:
                    report.problems.append(f"reclaims refused ({len(errors)}): {dict(list(errors.items())[:5])}")
                states = await V.trade_states(led, trade_ids)
                outcomes = {tid: V.FINAL.get(st, f"NOT FINAL {st}") for tid, st in states.items()}
                counts = Counter(outcomes.values())
                report.trades.update({"offered": len(trade_ids), "outcomes": dict(counts),
                                      "reclaimed_at_end": sum(1 for o in outcomes.values()
                                                              if o in ("refunded-timeout", "refunded-error",
                                                                       "corda-lock-failed"))})
                not_final = [f"{t}: {o}" for t, o in outcomes.items() if o.startswith("NOT FINAL")]
                if not_final:
                    report.problems.append(f"trades not in a final state ({len(not_final)}): {not_final[:10]}")
                report.problems.extend(await V.conservation(net, led, counts, before))
                evm_ev, corda_ev = await asyncio.gather(V.scan(net.evm), V.scan(net.corda))
                report.packets["blocks_scanned"] = {"evm": evm_ev.blocks, "corda": corda_ev.blocks}
                report.problems.extend(V.dvp_packets(outcomes, evm_ev, corda_ev, net))
                assert driver is not None
                for d in driver.dirs:
                    dst_channel = _other_end(net, d.channel)
                    src_ev, dst_ev = (evm_ev, corda_ev) if d.src.kind == "evm" else (corda_ev, evm_ev)
                    counts_d, crossed, probs = V.transfer_verdict(d, src_ev, dst_ev, dst_channel)
                    now = await V.bank_balances(d, dst_channel)
                    was = bank_before[d.name]
                    want = {"sender": was["sender"] - crossed, "escrow": was["escrow"] + crossed,
                            "receiver": was["receiver"] + crossed, "voucher_supply": was["voucher_supply"] + crossed}
                    if now != want:
                        probs.append(f"{d.name} balances {now} != {want} (crossed {crossed})")
                    report.transfers[d.name] = {"sent": len(d.amounts), **counts_d, "amount_crossed": crossed,
                                                "txs": d.txs, "resubmitted_after_node_loss": d.resubmitted,
                                                "failed_txs": len(d.failed)}
                    report.problems.extend(probs)
                for kind in ("recv_packet", "acknowledge_packet", "timeout_packet", "write_acknowledgement"):
                    dup = {**V.duplicates(evm_ev, kind), **V.duplicates(corda_ev, kind)}
                    report.packets[f"{kind}_more_than_once"] = len(dup)
                    if dup:
                        report.problems.append(f"{kind} more than once: {dict(list(dup.items())[:10])}")
                assert recorder is not None
                recorder.settle(quiet_s=2.0, limit_s=60.0)
                stats, probs = V.mqtt_verdict(outcomes, recorder.by_key())
                report.mqtt = {**stats, "subscriber_connects": recorder.connects}
                report.problems.extend(probs)
        asyncio.run(finish())
        report.phases_s["verdict"] = round(time.monotonic() - t, 1)
    except BaseException as exc:
        report.problems.append(f"the soak itself failed: {type(exc).__name__}: {exc}")
        raise
    finally:
        watch.__exit__()
        if driver is not None:
            driver.join(5)
        if recorder is not None:
            recorder.close()
        children = net.children() + ([feed] if feed is not None else [])
        for c in children:
            c.stop()
        pids = [p for c in children for p in c.pids]
        left = V.process_check(pids, root)
        report.processes = {"started": len(pids), "left_behind": left,
                            "peak_rss_mib": {c.name: round(c.peak_rss_kib() / 1024, 1) for c in children}}
        if left:
            report.problems.append(f"processes left behind: {left}")
    return report


def _other_end(net: Net, channel: str) -> str:
    return net.transfer_corda if channel == net.transfer_evm else net.transfer_evm


def _wait_feed(feed: Child, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while feed.alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    if feed.alive():
        feed.stop()


def _feed_report(path: Path) -> dict[str, Any]:
    try:
        doc, _ = json.JSONDecoder().raw_decode(path.read_text())
    except (OSError, ValueError) as exc:
        return {"error": f"no feed report: {exc}"}
    return {"received": doc.get("received"), "outcomes": doc.get("outcomes"),
            "latency_p50_s": doc.get("latency_p50_s"), "latency_p99_s": doc.get("latency_p99_s"),
            "elapsed_s": doc.get("elapsed_s"),
            "errors": sorted({str(r.get("error"))[:160] for r in doc.get("trades", []) if r.get("error")})[:10]}


async def _settled_states(led: Ledgers, trade_ids: list[str], limit_s: float) -> dict[str, tuple[str, str]]:
    """Trade states once none is still moving (each final or waiting only for its reclaim)."""
    deadline = time.monotonic() + limit_s
    while True:
        states = await V.trade_states(led, trade_ids)
        moving = [t for t, st in states.items() if st not in V.FINAL and st not in V.RECLAIMABLE]
        if not moving or time.monotonic() > deadline:
            return states
        await asyncio.sleep(2.0)


def table(report: Report) -> str:
    by_kind: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    for f in report.faults:
        by_kind.setdefault(f["kind"], []).append(f)
    lines = [f"seed {report.seed}: {len(report.faults)} faults injected", "",
             f"| {'fault':16} | {'count':>5} | {'ok':>4} | outcome |", f"|{'-' * 18}|{'-' * 7}|{'-' * 6}|---------|"]
    for kind, fs in by_kind.items():
        if not fs:
            continue
        lines.append(f"| {kind:16} | {len(fs):5} | {sum(f['ok'] for f in fs):4} | {_outcome(kind, fs)} |")
    lines += ["", f"trades: {report.trades.get('outcomes')}", f"transfers: {report.transfers}",
              f"packets: {report.packets}", f"mqtt: {report.mqtt}",
              f"processes: started {report.processes.get('started')}, left behind {report.processes.get('left_behind')}",
              f"peak RSS (MiB, highest of any run): {report.processes.get('peak_rss_mib')}",
              f"phases (s): {report.phases_s}",
              "PASS" if report.passed else "FAIL:\n  " + "\n  ".join(report.problems)]
    return "\n".join(lines)


def _outcome(kind: str, fs: list[dict[str, Any]]) -> str:
    def span(key: str) -> str:
        vals = [f[key] for f in fs if key in f]
        return f"{min(vals):g}-{max(vals):g}" if vals else "-"
    if kind.startswith("kill-") and kind != "kill-relayer":
        lost = sum(1 for f in fs if f.get("height_after", 0) < f.get("height_before", 0))
        return (f"mempool at kill {span('mempool_at_kill')} txs; back in {span('restart_s')} s; "
                f"committed heights lost: {lost}")
    if kind == "kill-relayer":
        return f"restarted and ready in {span('restart_s')} s"
    if kind == "second-relayer":
        return "stopped by " + ", ".join(sorted(Counter(f.get("stopped_by") for f in fs)))
    if kind == "pause-relayer":
        return f"SIGSTOP for {span('paused_s')} s"
    if kind == "drop-broker":
        return f"back in {span('restart_s')} s"
    return f"SIGSTOP for {span('stalled_s')} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.chaos.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, help="replay this run (default: a fresh seed, printed)")
    ap.add_argument("--small", action="store_true", help="the size `make test` runs")
    ap.add_argument("--trades", type=int)
    ap.add_argument("--transfers", type=int)
    ap.add_argument("--faults", type=int, help="at least this many faults")
    ap.add_argument("--json", default=None, help="write the report here (default: soak-SEED.json in the run's dir)")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory (logs, databases)")
    ns = ap.parse_args(argv)
    configure_logging("warning", "console")  # the in-process reclaims would log every event

    def interrupted(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through run()'s cleanup: every child stopped by PID

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    size = SMALL if ns.small else FULL
    over = {k: v for k, v in (("trades", ns.trades), ("transfers", ns.transfers), ("min_faults", ns.faults))
            if v is not None}
    if over:
        size = SoakSize(**{**asdict(size), **over, "mix": size.mix, "times": size.times})
    seed = ns.seed if ns.seed is not None else int.from_bytes(os.urandom(4), "big")
    root = Path(tempfile.mkdtemp(prefix=f"soak-{seed}-"))
    report = run(size, seed, root)
    out = Path(ns.json) if ns.json else root / f"soak-{seed}.json"
    out.write_text(json.dumps(V.to_json_safe(asdict(report)), indent=2) + "\n")
    print(table(report))
    print(f"report: {out}")
    if not ns.keep and report.passed and not ns.json:
        print(f"(run directory kept for the report: {root})")
    elif not ns.keep and report.passed:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
