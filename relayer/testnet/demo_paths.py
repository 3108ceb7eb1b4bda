"""`make run`'s hub phase: trades on every ST chain at once, settled through one router.

Why a phase of its own after the single-path DvP phase: that phase pauses the relayer (its
timeout trade), which would stall every path, and its conservation proof counts the buyer's
SC over its own trades only. Here one :class:`relayer.dvp.router.DvpRouter` (what `kakehashi
dvp feed` uses) takes trades for all ST chains in one stream and settles them concurrently;
the buyer (firm-b) pays for trades on every path from one Corda balance, so the shared Cash
book is exercised too. Every number is read back from the nodes: each path's ST moved
between its own seller and buyer, the SC moved once per settled trade, and no escrow kept
anything. The relayer's per-path metrics (``kakehashi_packets_confirmed_total{path=...}``)
are shown beside them.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from chains.node.client import NodeError
from relayer.dvp import DvpError, LedgerError, TradeRecord, parse_trade
from relayer.dvp.router import DvpRouter, Route
from relayer.testnet import network as testnet
from relayer.testnet.demo_context import DemoContext
from relayer.testnet.demo_dvp import PRICE, Accounts, percentile

CONCURRENCY = 8  # trades in flight across all paths
DEADLINE_S = 60
FOLLOW_S = 60.0


@dataclass
class PathRun:
    route: Route
    acc: Accounts
    trades: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    last_final: float = 0.0

    @property
    def settled(self) -> int:
        """What the progress bar counts: a refused or refunded trade finishes but never fills it."""
        return sum(1 for s in self.states.values() if s == "settled")

# The testnet's second SC brand (chains/node/apps/corda.py issues it, firm-a and firm-b admitted).
SECOND_BRAND = "KUSD"


def metrics_by_path(url: str | None, name: str = "kakehashi_packets_confirmed_total") -> dict[str, float]:
    """A relayer counter summed per ``path`` label, from its /metrics ({} if unreachable)."""
    if not url:
        return {}
    try:
        with urllib.request.urlopen(url, timeout=3) as res:
            text = res.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") and 'path="' in line:
            path = line.split('path="', 1)[1].split('"', 1)[0]
            out[path] = out.get(path, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def _settle(router: DvpRouter, run: PathRun, doc: dict[str, Any], sem: asyncio.Semaphore) -> None:
    async with sem:
        try:
            got = await router.settle(parse_trade(doc), run.acc.evm_key("alice"), run.acc.corda_seed("firm-b"),
                                      wait_s=FOLLOW_S)
        except (DvpError, LedgerError, NodeError) as exc:
            run.errors.append(f"{doc['trade_id']}: {type(exc).__name__}: {exc}")
            return
        run.states[doc["trade_id"]] = got.state
        if got.state == "settled" and got.latency_s is not None:
            run.latencies.append(got.latency_s)
            run.last_final = time.monotonic()
        elif got.state != "settled":
            run.errors.append(f"{doc['trade_id']}: {got.state} {got.error or '; '.join(got.reasons)}")


def plan(ctx: DemoContext, per_path: int, tag: str) -> list[PathRun]:
    """``per_path`` trades alice -> bob on every ST chain, all paid by firm-b to firm-a: in the
    default SC brand on the first path and every other one, in the second brand (KUSD, its own
    issuer and admission) on the others, so one run shows both brands settling side by side."""
    tn = ctx.testnet
    corda_home = tn.home_of(testnet.HUB)
    runs: list[PathRun] = []
    for k, p in enumerate(tn.paths):
        node = next(n for n in tn.nodes if n.chain_id == p["st_chain"])
        if node.address is None:
            raise RuntimeError(f"the {p['st_chain']} node has no address")
        run = PathRun(Route(p["st_chain"], p["name"], node.address), Accounts(node.home, corda_home))
        for i in range(per_path):
            qty = 3 + i
            run.trades.append({
                "trade_id": f"hub-{tag}-{p['st_chain']}-{i + 1:02d}", "st_chain": p["st_chain"],
                "st_quantity": qty, "sc_amount": qty * PRICE, "deadline_s": DEADLINE_S,
                "seller": {"evm": "0x" + run.acc.evm_address("alice").hex(),
                           "corda": run.acc.corda_party("firm-a").hex()},
                "buyer": {"evm": "0x" + run.acc.evm_address("bob").hex(),
                          "corda": run.acc.corda_party("firm-b").hex()},
                **({"sc_brand": SECOND_BRAND} if k % 2 else {})})
        runs.append(run)
    return runs


async def _balances(router: DvpRouter, runs: list[PathRun]) -> dict[str, int]:
    hub = next(iter(router.clients.values())).ledgers
    out: dict[str, int] = {}
    for brand, issuer in hub.brands.items():
        for name in ("firm-a", "firm-b"):
            out[f"{name}/{brand}"] = await hub.sc_balance(runs[0].acc.corda_party(name), issuer, brand)
    for r in runs:
        led = router.clients[r.route.st_chain].ledgers
        for name in ("alice", "bob"):
            out[f"{r.route.st_chain}/{name}"] = (await led.st_holding(r.acc.evm_address(name)))[0]
        out[f"{r.route.st_chain}/escrow"] = (await led.st_holding(led.escrow_address))[0]
        out[f"{r.route.st_chain}/supply"] = await led.st_supply()
    return out


async def phase_paths(ctx: DemoContext) -> None:
    tn = ctx.testnet
    if len(tn.paths) < 2:
        ctx.report["paths"] = {"skipped": "the testnet has one ST chain (testnet up --st-chains 2 adds one)"}
        return
    corda_addr = next(n.address for n in tn.nodes if n.chain_id == testnet.HUB)
    if corda_addr is None:
        raise RuntimeError("the corda node has no address")
    per_path = max(2, ctx.trades // 2)
    runs = plan(ctx, per_path, secrets.token_hex(3))
    record = TradeRecord(ctx.home / "relayer" / "dvp.sqlite")  # `dvp list` shows them with their ST chain
    metrics_before = metrics_by_path(tn.relayer.metrics)
    started = time.monotonic()
    try:
        async with await DvpRouter.connect([r.route for r in runs], corda_addr, record=record) as router:
            before = await _balances(router, runs)
            ctx.console.print(f"hub: {per_path} trades on each of {len(runs)} ST chains "
                              f"({', '.join(r.route.st_chain for r in runs)}) in one stream through one router, "
                              f"{CONCURRENCY} in flight, all paid by firm-b "
                              f"(default SC brand on {runs[0].route.st_chain}, {SECOND_BRAND} on the next)")
            sem = asyncio.Semaphore(CONCURRENCY)
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=ctx.console) as progress:
                bars = {r.route.st_chain: progress.add_task(f"path {r.route.path} settled", total=per_path)
                        for r in runs}
                for r in runs:
                    r.started = time.monotonic()
                # interleaved, as one feed of trades for every ST chain delivers them
                order = [(r, r.trades[i]) for i in range(per_path) for r in runs]
                tasks = asyncio.gather(*(_settle(router, r, doc, sem) for r, doc in order))
                while not tasks.done():
                    for r in runs:
                        progress.update(bars[r.route.st_chain], completed=r.settled)
                    await asyncio.sleep(0.2)
                await tasks
                for r in runs:
                    progress.update(bars[r.route.st_chain], completed=r.settled)
            after = await _balances(router, runs)
    finally:
        record.close()
    elapsed = time.monotonic() - started
    metrics_after = metrics_by_path(tn.relayer.metrics)
    checks: list[dict[str, Any]] = []

    def check(name: str, got: int, want: int) -> None:
        checks.append({"check": name, "got": got, "want": want, "ok": got == want})
        if got != want:
            ctx.failures.append(f"hub check failed: {name}: got {got}, want {want}")

    paid: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for r in runs:
        st = r.route.st_chain
        settled = [d for d in r.trades if r.states.get(d["trade_id"]) == "settled"]
        sold = sum(d["st_quantity"] for d in settled)
        for d in settled:
            brand = d.get("sc_brand", "")
            paid[brand] = paid.get(brand, 0) + d["sc_amount"]
        check(f"{st}: every trade settled", len(settled), len(r.trades))
        check(f"{st}: seller alice's ST down by the settled quantity", before[f"{st}/alice"] - after[f"{st}/alice"],
              sold)
        check(f"{st}: buyer bob's ST up by the settled quantity", after[f"{st}/bob"] - before[f"{st}/bob"], sold)
        check(f"{st}: nothing left in the ST escrow", after[f"{st}/escrow"], before[f"{st}/escrow"])
        check(f"{st}: ST supply unchanged", after[f"{st}/supply"], before[f"{st}/supply"])
        span = (r.last_final - r.started) if r.last_final else None
        rows.append({"path": r.route.path, "st_chain": st, "sc_brand": r.trades[0].get("sc_brand", "") if r.trades else "",
                     "trades": len(r.trades), "settled": len(settled),
                     "latency_p50_s": _r(percentile(r.latencies, 50)),
                     "latency_p99_s": _r(percentile(r.latencies, 99)),
                     "settled_per_s": _r(len(settled) / span) if span else None,
                     "relayer_confirmed_msgs": metrics_after.get(r.route.path, 0.0)
                     - metrics_before.get(r.route.path, 0.0),
                     "errors": r.errors})
        for e in r.errors:
            ctx.failures.append(f"hub {st}: {e}")
    for brand in sorted({k.split("/", 1)[1] for k in before if k.startswith("firm-b/")}):
        label = brand or "default brand"
        want = paid.get(brand, 0)
        check(f"corda: buyer firm-b's SC ({label}) down by the settled amounts in it",
              before[f"firm-b/{brand}"] - after[f"firm-b/{brand}"], want)
        check(f"corda: seller firm-a's SC ({label}) up by the settled amounts in it",
              after[f"firm-a/{brand}"] - before[f"firm-a/{brand}"], want)
    total = sum(row["settled"] for row in rows)
    ctx.report["paths"] = {"seconds": round(elapsed, 2), "concurrency": CONCURRENCY, "per_path": rows,
                           "total": {"trades": sum(row["trades"] for row in rows), "settled": total,
                                     "settled_per_s": _r(total / elapsed) if elapsed else None},
                           "checks": checks}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _fmt(v: float | None, unit: str = "s") -> str:
    return "-" if v is None else f"{v:.2f}{unit}"


def print_report(report: dict[str, Any], out: Console) -> None:
    """The hub part of `make run`'s report (``ctx.report["paths"]``)."""
    if "skipped" in report:
        out.print(f"hub phase skipped: {report['skipped']}")
        return
    table = Table("path", "ST chain", "SC brand", "trades", "settled", "p50", "p99", "settled/s", "relayer msgs confirmed",
                  title=f"DvP per path ({report['seconds']} s, one router, {report['concurrency']} in flight)")
    for row in report["per_path"]:
        table.add_row(row["path"], row["st_chain"], row.get("sc_brand") or "default", str(row["trades"]), str(row["settled"]),
                      _fmt(row["latency_p50_s"]), _fmt(row["latency_p99_s"]), _fmt(row["settled_per_s"], ""),
                      f"{row['relayer_confirmed_msgs']:g}")
    t = report["total"]
    table.add_row("[bold]total[/]", "", "", str(t["trades"]), str(t["settled"]), "", "", _fmt(t["settled_per_s"], ""), "")
    out.print(table)
    proof = Table("hub check", "got", "want", "ok")
    for c in report["checks"]:
        proof.add_row(c["check"], str(c["got"]), str(c["want"]), "yes" if c["ok"] else "[red]NO[/]")
    out.print(proof)


__all__ = ["metrics_by_path", "phase_paths", "plan", "print_report"]
