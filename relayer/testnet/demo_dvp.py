"""`make run`'s DvP phase: demo trades settled atomically, three designed to fail, then a proof.

Why the phase settles through :class:`relayer.dvp.DvpClient` and judges through the nodes:
the client is what an operator runs, so the demo exercises it as is, while every number in
the report (each trade's final state on both chains, balances, supply, escrow) is read back
from the two nodes afterwards. A trade counts as settled only when the EVM escrow says
``delivered`` and the Corda lock says ``settled``; nothing is taken from the relayer.

Why trades go one at a time through the client but several at once: RTGS settles each trade
gross, on its own lock and its own packet (no netting); running a few concurrently (bounded)
is how a feed behaves and keeps the phase short. The buyer's single genesis Cash state makes
the Corda locks queue behind each other's change, as they would for a real buyer.

The failures are built to fail for the reason named, and each must end refunded:

* insufficient SC: the pre-check lists the reasons and nothing is locked on either chain;
* buyer de-whitelisted: the EVM lock itself refuses a non-whitelisted buyer, so the buyer is
  whitelisted for the lock and de-whitelisted (by the token issuer) before the Corda lock
  sends the packet; the EVM recv then writes an error ack, the Corda lock exits
  RefundOnError, and the ST stays escrowed until the deadline, when the seller reclaims it;
* relayer paused past the timeout: the testnet's own relayer (the PID `testnet up`
  recorded, nothing else) gets SIGSTOP before the locks and SIGCONT once the EVM clock has
  passed the packet timeout; it must then prove the timeout (RefundOnTimeout), and the
  seller reclaims the ST after the deadline.

The conservation proof compares snapshots taken before and after the phase: ST supply equals
the sum over every genesis holder, the issuer and the escrow; SC per issuer likewise over
every holder, the issuer and the escrow owner; the escrows moved by exactly what this run
still has locked (zero at the end); and each party moved by exactly what the settled trades
say. Any mismatch is a failure, so `make run` exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from chains.evm import Message as EvmCall
from chains.evm import make_tx
from chains.node.client import NodeError
from kakehashi.node.v1 import node_pb2
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from relayer.core.tasks import cancel_and_wait
from relayer.dvp import (
    DvpClient,
    DvpError,
    LedgerError,
    Ledgers,
    Settlement,
    TradeRecord,
    parse_trade,
)
from relayer.testnet import network as testnet
from relayer.testnet.demo_context import DemoContext

CONCURRENCY = 4
PRICE = 100  # SC per ST
OK_DEADLINE_S = 60
# The relayer holds back a packet that would time out within its margin (10 s) of landing,
# so the failure trades' timeouts leave more than that after both locks.
DELISTED_DEADLINE_S = 24
PAUSED_TIMEOUT_S, PAUSED_DEADLINE_S = 14, 16
FOLLOW_S = 60.0
POLL_S = 0.3

# kind -> (EVM escrow status, Corda lock status, client state) every trade of that kind must end in
EXPECTED: dict[str, tuple[str, str, str]] = {
    "ok": ("delivered", "settled", "settled"),
    "insufficient-sc": ("none", "none", "rejected"),
    "buyer-delisted": ("reclaimed", "refunded_error", "reclaimed"),
    "relayer-paused": ("reclaimed", "refunded_timeout", "reclaimed"),
}
FAILURE_TITLES = {
    "insufficient-sc": "(a) insufficient SC",
    "buyer-delisted": "(b) buyer de-whitelisted",
    "relayer-paused": "(c) relayer paused past the timeout",
}


@dataclass
class DemoTrade:
    """One demo trade and what was observed of it."""

    trade_id: str
    kind: str
    st_quantity: int
    sc_amount: int
    buyer: str  # EVM demo account name
    doc: dict[str, Any]
    state: str = "pending"
    evm_status: str = "none"
    corda_status: str = "none"
    latency_s: float | None = None
    reasons: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    @property
    def expected(self) -> tuple[str, str, str]:
        return EXPECTED[self.kind]

    @property
    def ok(self) -> bool:
        return (self.evm_status, self.corda_status, self.state) == self.expected

    def to_json(self) -> dict[str, Any]:
        evm, corda, state = self.expected
        return {"trade_id": self.trade_id, "kind": self.kind, "st_quantity": self.st_quantity,
                "sc_amount": self.sc_amount, "buyer_evm": self.buyer, "state": self.state,
                "evm_status": self.evm_status, "corda_status": self.corda_status,
                "expected": {"evm_status": evm, "corda_status": corda, "state": state}, "ok": self.ok,
                "latency_s": None if self.latency_s is None else round(self.latency_s, 3),
                "reasons": self.reasons, "steps": self.steps}


@dataclass
class Accounts:
    """The demo accounts' keys, from the node homes' keys/ directories."""

    evm_home: Path
    corda_home: Path

    def evm_key(self, name: str) -> bytes:
        return _read_key(self.evm_home / "keys" / f"{name}.key")

    def corda_seed(self, name: str) -> bytes:
        return _read_key(self.corda_home / "keys" / f"holder-{name}.key")

    def evm_address(self, name: str) -> bytes:
        return eth_address(secp256k1_public_key(self.evm_key(name)))

    def corda_party(self, name: str) -> bytes:
        return ed25519_public_key(self.corda_seed(name))


def _read_key(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().strip().removeprefix("0x"))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (every value reported was observed)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def plan_trades(acc: Accounts, n_ok: int, run_tag: str) -> list[DemoTrade]:
    """``n_ok`` trades alice -> bob that settle, then one trade of each failure kind.

    The run tag keeps trade ids unique on a testnet that already ran the demo (a trade id is
    usable once per chain)."""
    out: list[DemoTrade] = []

    def add(kind: str, qty: int, amount: int, buyer: str, **times: int) -> None:
        tid = f"demo-{run_tag}-{len(out) + 1:02d}"
        doc = {"trade_id": tid, "st_quantity": qty, "sc_amount": amount,
               "seller": {"evm": "0x" + acc.evm_address("alice").hex(), "corda": acc.corda_party("firm-a").hex()},
               "buyer": {"evm": "0x" + acc.evm_address(buyer).hex(), "corda": acc.corda_party("firm-b").hex()},
               **times}
        out.append(DemoTrade(tid, kind, qty, amount, buyer, doc))

    for i in range(n_ok):
        qty = 10 + i
        add("ok", qty, qty * PRICE, "bob", deadline_s=OK_DEADLINE_S)
    # far more SC than the buyer holds (genesis gives each firm 10**6)
    add("insufficient-sc", 50, 10**12, "bob", deadline_s=OK_DEADLINE_S)
    add("buyer-delisted", 7, 7 * PRICE, "carol", deadline_s=DELISTED_DEADLINE_S)
    add("relayer-paused", 5, 5 * PRICE, "bob", deadline_s=PAUSED_DEADLINE_S, timeout_s=PAUSED_TIMEOUT_S)
    return out


# --- snapshots for the conservation proof -------------------------------------------------------


@dataclass
class Snapshot:
    st_supply: int
    st_by_holder: dict[str, int]  # genesis accounts, issuer (hex address) -> ST
    st_escrow: int
    sc_by_owner: dict[str, dict[str, int]]  # owner hex -> issuer hex -> SC
    sc_escrow: dict[str, int]  # issuer hex -> SC held by the escrow owner


async def snapshot(led: Ledgers, acc: Accounts) -> Snapshot:
    egen = json.loads((acc.evm_home / "genesis.json").read_text())
    holders = [a["address"].lower() for a in egen["accounts"]] + [egen["token_issuer"]["address"].lower()]
    st = {h: (await led.st_holding(bytes.fromhex(h[2:])))[0] for h in dict.fromkeys(holders)}
    cgen = json.loads((acc.corda_home / "genesis.json").read_text())
    owners = [str(h) for h in cgen["holders"].values()] + [led.cash_issuer.hex()]
    sc = {}
    for owner in dict.fromkeys(owners):
        got = await led.corda.query_app("balances", owner=owner)
        sc[owner] = {k: int(v) for k, v in got["by_issuer"].items()}
    escrow_owner = str(led.corda_info["dvp_escrow_owner"])
    got = await led.corda.query_app("balances", owner=escrow_owner)
    return Snapshot(await led.st_supply(), st, (await led.st_holding(led.escrow_address))[0], sc,
                    {k: int(v) for k, v in got["by_issuer"].items()})


def _sc_totals(s: Snapshot) -> dict[str, int]:
    out: Counter[str] = Counter(s.sc_escrow)
    for by_issuer in s.sc_by_owner.values():
        out.update(by_issuer)
    return dict(out)


def conservation(before: Snapshot, after: Snapshot, trades: list[DemoTrade], acc: Accounts,
                 issuer: str, genesis_sc: int) -> list[dict[str, Any]]:
    """Every check of the proof as {check, got, want, ok}."""
    checks: list[dict[str, Any]] = []

    def check(name: str, got: int, want: int) -> None:
        checks.append({"check": name, "got": got, "want": want, "ok": got == want})

    check("EVM: ST total supply unchanged", after.st_supply, before.st_supply)
    check("EVM: ST supply == sum over holders + escrow", sum(after.st_by_holder.values()) + after.st_escrow,
          after.st_supply)
    locked_st = sum(t.st_quantity for t in trades if t.evm_status == "locked")
    check("EVM: ST escrow moved by what this run still has locked", after.st_escrow - before.st_escrow, locked_st)
    check("EVM: ST escrow balance at the end", after.st_escrow, before.st_escrow + locked_st)
    for issuer_hex, total in sorted(_sc_totals(after).items()):
        check(f"Corda: SC of issuer {issuer_hex[:12]}.. over holders + escrow unchanged", total,
              _sc_totals(before).get(issuer_hex, 0))
    check("Corda: SC of the demo issuer over holders + escrow == genesis issue", _sc_totals(after).get(issuer, 0),
          genesis_sc)
    locked_sc = sum(t.sc_amount for t in trades if t.corda_status == "locked")
    check("Corda: SC escrow moved by what this run still has locked",
          after.sc_escrow.get(issuer, 0) - before.sc_escrow.get(issuer, 0), locked_sc)
    settled = [t for t in trades if t.corda_status == "settled"]

    def st_delta(name: str) -> int:
        h = "0x" + acc.evm_address(name).hex()
        return after.st_by_holder.get(h, 0) - before.st_by_holder.get(h, 0)

    def sc_delta(name: str) -> int:
        h = acc.corda_party(name).hex()
        return after.sc_by_owner.get(h, {}).get(issuer, 0) - before.sc_by_owner.get(h, {}).get(issuer, 0)

    sold = sum(t.st_quantity for t in settled)
    paid = sum(t.sc_amount for t in settled)
    # every demo trade is alice's and firm-b's: what is still locked has left them too
    check("EVM: seller alice's ST down by the settled quantity (+ still locked)", -st_delta("alice"),
          sold + locked_st)
    for buyer in ("bob", "carol"):
        check(f"EVM: buyer {buyer}'s ST up by their settled quantity", st_delta(buyer),
              sum(t.st_quantity for t in settled if t.buyer == buyer))
    check("Corda: buyer firm-b's SC down by the settled amount (+ still locked)", -sc_delta("firm-b"),
          paid + locked_sc)
    check("Corda: seller firm-a's SC up by the settled amount", sc_delta("firm-a"), paid)
    return checks


# --- EVM helper: the token issuer's whitelist call ----------------------------------------------


async def whitelist(led: Ledgers, issuer_key: bytes, holder: bytes, allowed: bool) -> None:
    """The ST issuer (re)lists or delists ``holder``; only used to build failure (b)."""
    sender = "0x" + eth_address(secp256k1_public_key(issuer_key)).hex()
    nonce = int((await led.evm.query_app("account", address=sender))["nonce"])
    call = EvmCall(led.security_token, "whitelist", (holder, b"\x01" if allowed else b""))
    res = await led.submit_and_wait(True, make_tx(issuer_key, led.evm_chain_id, nonce, [call]).encode())
    if res.status != node_pb2.TX_STATUS_COMMITTED:
        raise DvpError(f"whitelist(0x{holder.hex()}, {allowed}) failed: {res.reason}")


# --- the phase -----------------------------------------------------------------------------------


@dataclass
class DvpRun:
    ctx: DemoContext
    client: DvpClient
    acc: Accounts
    trades: list[DemoTrade]
    events: list[str] = field(default_factory=list)  # what happened, for the console

    @property
    def led(self) -> Ledgers:
        return self.client.ledgers

    def say(self, trade: DemoTrade, text: str) -> None:
        trade.steps.append(text)
        self.events.append(f"{trade.trade_id} ({FAILURE_TITLES.get(trade.kind, trade.kind)}): {text}")

    def apply(self, trade: DemoTrade, got: Settlement) -> None:
        trade.state = got.state
        trade.evm_status = str(got.evm.get("status", trade.evm_status))
        trade.corda_status = str(got.corda.get("status", trade.corda_status))
        if got.reasons:
            trade.reasons = list(got.reasons)


async def _settle_ok(run: DvpRun, trade: DemoTrade, sem: asyncio.Semaphore) -> None:
    async with sem:
        started = time.monotonic()
        try:
            got = await run.client.settle(parse_trade(trade.doc), run.acc.evm_key("alice"),
                                          run.acc.corda_seed("firm-b"), wait_s=FOLLOW_S)
        except (DvpError, LedgerError, NodeError) as exc:
            trade.steps.append(f"error: {type(exc).__name__}: {exc}")
            return
        run.apply(trade, got)
        # lock -> both legs final, as the client's record timed it (its clock starts at the EVM lock)
        trade.latency_s = got.latency_s if got.latency_s is not None else time.monotonic() - started
        if got.error:
            trade.steps.append(got.error)


async def _insufficient(run: DvpRun, trade: DemoTrade) -> None:
    got = await run.client.settle(parse_trade(trade.doc), run.acc.evm_key("alice"), run.acc.corda_seed("firm-b"))
    run.apply(trade, got)
    run.say(trade, f"pre-check refused ({len(got.reasons)} reason(s)); nothing locked")
    for reason in got.reasons:
        run.events.append(f"    reason: {reason}")


async def _delisted(run: DvpRun, trade: DemoTrade) -> None:
    """Lock the ST with the buyer listed, delist the buyer, then send the packet."""
    led, acc = run.led, run.acc
    issuer, carol = acc.evm_key("issuer"), acc.evm_address(trade.buyer)
    await whitelist(led, issuer, carol, True)
    rt = await run.client.resolve(parse_trade(trade.doc))
    reasons = await run.client.precheck(rt)
    if reasons:
        raise DvpError(f"{trade.trade_id}: pre-check failed with the buyer listed: {reasons}")
    started = time.monotonic()
    run.client.begin(rt)  # locked by hand here, not through settle()
    try:
        evm = await run.client.lock_evm(rt, acc.evm_key("alice"))
        if evm.status != node_pb2.TX_STATUS_COMMITTED:
            raise DvpError(f"{trade.trade_id}: EVM lock failed: {evm.reason}")
        run.say(trade, f"ST locked with {trade.buyer} whitelisted")
    finally:
        await whitelist(led, issuer, carol, False)  # carol is not whitelisted in genesis: back to that
    run.say(trade, f"token issuer de-whitelisted {trade.buyer}; now the Corda lock sends the packet")
    corda = await run.client.lock_corda(rt, acc.corda_seed("firm-b"))
    if corda.status != node_pb2.TX_STATUS_COMMITTED:
        raise DvpError(f"{trade.trade_id}: Corda lock failed: {corda.reason}")
    got = await run.client.follow(trade.trade_id, FOLLOW_S)
    run.apply(trade, got)
    run.say(trade, f"EVM recv wrote an error ack -> Corda {got.corda.get('status')}; "
            f"ST escrow {got.evm.get('status')} until the deadline")
    trade.latency_s = time.monotonic() - started
    if got.evm.get("status") == "locked":
        try:
            await run.client.reclaim(trade.trade_id, acc.evm_key("alice"))
            run.say(trade, "a reclaim before the deadline was NOT refused")
        except DvpError as exc:
            run.say(trade, f"reclaim before the deadline refused: {exc}")


async def _reclaim(run: DvpRun, trade: DemoTrade) -> None:
    if trade.evm_status != "locked":
        return
    got = await run.client.reclaim(trade.trade_id, run.acc.evm_key("alice"), wait=True, wait_s=FOLLOW_S)
    run.apply(trade, got)
    run.say(trade, "deadline passed on the EVM clock: the seller reclaimed the ST")


async def _paused(run: DvpRun, trade: DemoTrade) -> None:
    """Stop the testnet's relayer across the packet timeout, then let it prove the timeout."""
    led = run.led
    pid = testnet.relayer_info(run.ctx.home).pid  # verified against the PID file's start time and cmdline
    if pid is None:
        raise DvpError("the testnet's relayer is not running; cannot pause it")
    started = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        run.say(trade, f"relayer pid {pid} paused (SIGSTOP)")
        got = await run.client.settle(parse_trade(trade.doc), run.acc.evm_key("alice"), run.acc.corda_seed("firm-b"),
                                      follow=False)
        run.apply(trade, got)
        if got.state != "locked":
            raise DvpError(f"{trade.trade_id}: expected both legs locked, got {got.state}: {got.error or got.reasons}")
        timeout_ns = int(got.corda["timeout_timestamp"])
        run.say(trade, "both legs locked; waiting for the EVM clock to pass the packet timeout")
        limit = time.monotonic() + FOLLOW_S
        while await led.evm_time_ns() <= timeout_ns:
            if time.monotonic() > limit:
                raise DvpError(f"{trade.trade_id}: the EVM clock did not pass the timeout")
            await asyncio.sleep(POLL_S)
        escrow = await led.escrow(trade.trade_id)
        run.say(trade, f"EVM time passed the timeout with the ST escrow {escrow.get('status')} (never received)")
    finally:
        os.kill(pid, signal.SIGCONT)
    run.say(trade, f"relayer pid {pid} resumed (SIGCONT)")
    got = await run.client.follow(trade.trade_id, FOLLOW_S)
    run.apply(trade, got)
    run.say(trade, f"relayer proved the timeout -> Corda {got.corda.get('status')}")
    trade.latency_s = time.monotonic() - started


async def _watch(run: DvpRun, progress: Progress, bars: dict[str, TaskID], oks: list[DemoTrade]) -> None:
    """Poll both chains for the batch's stages (locked, delivered, settled) for the bars."""
    seen: dict[str, tuple[str, str]] = {}
    while True:
        for t in oks:
            if seen.get(t.trade_id, ("", ""))[1] in ("settled", "refunded_error", "refunded_timeout"):
                continue
            with contextlib.suppress(Exception):  # a missed poll only delays a bar
                seen[t.trade_id] = (str((await run.led.escrow(t.trade_id)).get("status")),
                                    str((await run.led.lock(t.trade_id)).get("status")))
        vals = list(seen.values())
        progress.update(bars["locked"], completed=sum(1 for e, c in vals if e != "none" and c != "none"))
        progress.update(bars["delivered"], completed=sum(1 for e, _ in vals if e == "delivered"))
        progress.update(bars["settled"], completed=sum(1 for _, c in vals if c == "settled"))
        await asyncio.sleep(POLL_S)


async def _stage(coro: Any, progress: Progress, task: TaskID, trade: DemoTrade) -> None:
    """Run one failure scenario; an error ends that trade (reported, and failing the demo through
    its unexpected final state) rather than the whole phase, so the report still shows the rest."""
    progress.update(task, description=f"{FAILURE_TITLES[trade.kind]}: running")
    try:
        await coro
    except (DvpError, LedgerError, NodeError, OSError) as exc:
        trade.steps.append(f"error: {type(exc).__name__}: {exc}")
    finally:
        progress.update(task, completed=1, description=f"{FAILURE_TITLES[trade.kind]}: {trade.state}")


async def phase_dvp(ctx: DemoContext) -> None:
    """The DvP batch and the failures, then the per-trade report and the conservation proof."""
    tn = ctx.testnet
    chan = tn.channel("dvp")
    homes: dict[str, Path] = {}
    for n in tn.nodes:  # the first path's chains (evm-1 and the hub) when there are several
        homes.setdefault(n.kind, n.home)
    acc = Accounts(homes["evm"], homes["corda"])
    n_ok = ctx.trades
    trades = plan_trades(acc, n_ok, secrets.token_hex(3))  # fresh ids on a reused testnet
    oks = [t for t in trades if t.kind == "ok"]
    fails = {t.kind: t for t in trades if t.kind != "ok"}
    # the record `kakehashi dvp list -c HOME/relayer/relayer.toml` reads (dvp.sqlite beside the config)
    record = TradeRecord(ctx.home / "relayer" / "dvp.sqlite")
    started = time.monotonic()
    try:
        async with await Ledgers.connect(ctx.address("evm"), ctx.address("corda"), chan["b_channel"]) as led:
            client = DvpClient(led, record=record.scoped(st_chain=tn.chain_ids[0]))
            run = DvpRun(ctx, client, acc, trades)
            issuer = led.cash_issuer.hex()
            genesis_sc = sum(int(v) for v in json.loads((acc.corda_home / "genesis.json").read_text())["cash"].values())
            before = await snapshot(led, acc)
            a_chain, b_chain = tn.chain_ids
            ctx.console.print(f"DvP: {n_ok} trades alice -> bob (ST on {a_chain}, SC on {b_chain}) on "
                              f"dvp/{chan['a_channel']} ({a_chain}) <-> dvp/{chan['b_channel']} ({b_chain}), "
                              f"{CONCURRENCY} at a time, "
                              f"plus {len(fails)} designed to fail")
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=ctx.console) as progress:
                bars = {name: progress.add_task(text, total=max(n_ok, 1) if n_ok else 0) for name, text in
                        (("locked", "DvP both legs locked"), ("delivered", "DvP ST delivered (evm)"),
                         ("settled", "DvP SC settled (corda)"))}
                fail_bars = {k: progress.add_task(f"{FAILURE_TITLES[k]}: waiting", total=1) for k in fails}
                watcher = asyncio.create_task(_watch(run, progress, bars, oks))
                try:
                    sem = asyncio.Semaphore(CONCURRENCY)
                    # (b) needs the relayer running, so it runs beside the batch; (c) stops the
                    # relayer, so it runs alone; the reclaims wait for their deadlines last.
                    await asyncio.gather(
                        *(_settle_ok(run, t, sem) for t in oks),
                        _stage(_delisted(run, fails["buyer-delisted"]), progress, fail_bars["buyer-delisted"],
                               fails["buyer-delisted"]))
                    await _stage(_insufficient(run, fails["insufficient-sc"]), progress,
                                 fail_bars["insufficient-sc"], fails["insufficient-sc"])
                    await _stage(_paused(run, fails["relayer-paused"]), progress, fail_bars["relayer-paused"],
                                 fails["relayer-paused"])
                    await asyncio.gather(*(_stage(_reclaim(run, fails[k]), progress, fail_bars[k], fails[k])
                                           for k in ("buyer-delisted", "relayer-paused")))
                    await asyncio.sleep(POLL_S * 2)  # the batch's bars end where the chains say
                finally:
                    await cancel_and_wait(watcher)
            for line in run.events:
                ctx.console.print(line)
            # the report's states are read from the chains now, after everything ended
            for t in trades:
                run.apply(t, await client.status(t.trade_id))
            after = await snapshot(led, acc)
            checks = conservation(before, after, trades, acc, issuer, genesis_sc)
    finally:
        record.close()
    latencies = [t.latency_s for t in oks if t.latency_s is not None and t.ok]
    counts = Counter(t.state for t in trades)
    exits = Counter(t.corda_status for t in trades)
    ctx.report["dvp"] = {
        "channel": chan, "seconds": round(time.monotonic() - started, 2), "concurrency": CONCURRENCY,
        "trades": [t.to_json() for t in trades],
        "counts": {"total": len(trades), "ok_planned": n_ok, "settled": counts["settled"],
                   "rejected": counts["rejected"], "reclaimed": counts["reclaimed"],
                   "refunded_error": exits["refunded_error"], "refunded_timeout": exits["refunded_timeout"],
                   "as_expected": sum(1 for t in trades if t.ok)},
        "latency_s": {"n": len(latencies), **{f"p{q}": _round(percentile(latencies, q)) for q in (50, 99)},
                      "max": _round(max(latencies) if latencies else None)},
        "conservation": checks,
    }
    for t in trades:
        if not t.ok:
            evm, corda, state = t.expected
            ctx.failures.append(f"dvp {t.trade_id} ({t.kind}): ended {t.state} (evm {t.evm_status}, corda "
                                f"{t.corda_status}); expected {state} (evm {evm}, corda {corda})"
                                + (f"; {'; '.join(t.reasons or t.steps[-1:])}" if t.reasons or t.steps else ""))
    for c in checks:
        if not c["ok"]:
            ctx.failures.append(f"dvp conservation check failed: {c['check']}: got {c['got']}, want {c['want']}")


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}s"


def print_report(report: dict[str, Any], out: Console) -> None:
    """The DvP part of `make run`'s report (from ``ctx.report["dvp"]``)."""
    counts, lat = report["counts"], report["latency_s"]
    table = Table("trade", "kind", "ST", "SC", "evm", "corda", "state", "latency", "ok",
                  title=f"DvP trades ({report['seconds']} s): {counts['total']} trades: {counts['settled']} settled, "
                        f"{counts['rejected']} rejected by the pre-check, {counts['refunded_error']} SC refunded on "
                        f"error and {counts['refunded_timeout']} on timeout (ST reclaimed by the seller in "
                        f"{counts['reclaimed']} of those); settlement latency p50 "
                        f"{fmt(lat['p50'])} p99 {fmt(lat['p99'])} (n={lat['n']})")
    for t in report["trades"]:
        table.add_row(t["trade_id"], t["kind"], str(t["st_quantity"]), str(t["sc_amount"]), t["evm_status"],
                      t["corda_status"], t["state"], fmt(t["latency_s"]), "yes" if t["ok"] else "[red]NO[/]")
    out.print(table)
    proof = Table("DvP conservation check", "got", "want", "ok")
    for c in report["conservation"]:
        proof.add_row(c["check"], str(c["got"]), str(c["want"]), "yes" if c["ok"] else "[red]NO[/]")
    out.print(proof)


__all__ = ["EXPECTED", "DemoTrade", "percentile", "phase_dvp", "plan_trades", "print_report"]
