"""The soak's verdict, read from the two chains (and the back office's MQTT record).

Nothing here trusts a relayer's or the feed's memory: trade states are the EVM escrow and the
Corda lock as the nodes answer them, packets are counted from every block's events, balances
are read at the end and compared with genesis and with what the events say moved.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chains.ibc import events as ev
from chains.ibc.apps import dvp as dvp_app
from chains.node.client import NodeClient
from relayer.dvp import DvpClient, DvpEvents, DvpPublisher, Ledgers, TradeRecord
from relayer.dvp.client import DvpError
from tests.chaos.net import BUYER, SELLER, Net, Node
from tests.chaos.traffic import AMOUNT, QTY, Direction, sender_account
from tests.support.live import tx_events

# (EVM escrow status, Corda lock status) -> final outcome. Anything else is not final.
FINAL = {
    ("delivered", "settled"): "settled",
    ("reclaimed", "refunded_timeout"): "refunded-timeout",
    ("reclaimed", "refunded_error"): "refunded-error",
    ("reclaimed", "none"): "corda-lock-failed",  # the ST came back; no SC was ever locked
    ("none", "none"): "nothing-locked",  # refused or lost before the EVM lock landed
}
# What must be reclaimed (after its deadline) to become final.
RECLAIMABLE = {("locked", "refunded_timeout"), ("locked", "refunded_error"), ("locked", "none")}
# Settlement events a back office must have received, by outcome.
EXPECTED_EVENTS = {
    "settled": {"locked", "delivered", "settled"},
    "refunded-timeout": {"locked", "refunded-timeout", "reclaimed"},
    "refunded-error": {"locked", "refunded-error", "reclaimed"},
    "corda-lock-failed": {"reclaimed"},
    "nothing-locked": set(),
}


@dataclass
class ChainEvents:
    """Per packet key, how many times each event appeared in the chain's committed blocks."""

    counts: dict[str, Counter[tuple[str, str, int]]] = field(default_factory=dict)
    blocks: int = 0

    def count(self, kind: str, port: str, channel: str, seq: int) -> int:
        return self.counts.get(kind, Counter())[(port, channel, seq)]


async def scan(node: Node) -> ChainEvents:
    """Every recv / write_ack / ack / timeout / send event of every block, from height 1."""
    out = ChainEvents()
    async with NodeClient(node.addr) as c:
        latest = int((await c.status()).latest_height)
        async for blk in c.stream_blocks(1, results_only=True):
            out.blocks += 1
            for r in blk.results:
                for e in tx_events(r):
                    p = e.packet()
                    if p is None:
                        continue
                    if e.type in (ev.RECV_PACKET, ev.WRITE_ACKNOWLEDGEMENT):
                        key = (p.destination_port, p.destination_channel, p.sequence)
                    elif e.type in (ev.SEND_PACKET, ev.ACKNOWLEDGE_PACKET, ev.TIMEOUT_PACKET):
                        key = (p.source_port, p.source_channel, p.sequence)
                    else:
                        continue
                    out.counts.setdefault(e.type, Counter())[key] += 1
            if blk.height >= latest:
                break
    return out


def duplicates(events: ChainEvents, kind: str) -> dict[str, int]:
    return {f"{p}/{c}/{s}": n for (p, c, s), n in events.counts.get(kind, Counter()).items() if n > 1}


# --- DvP ----------------------------------------------------------------------------------

async def trade_states(led: Ledgers, trade_ids: list[str]) -> dict[str, tuple[str, str]]:
    async def one(tid: str) -> tuple[str, str]:
        escrow, lock = await asyncio.gather(led.escrow(tid), led.lock(tid))
        return str(escrow["status"]), str(lock["status"])
    out: dict[str, tuple[str, str]] = {}
    for i in range(0, len(trade_ids), 500):
        chunk = trade_ids[i:i + 500]
        for tid, st in zip(chunk, await asyncio.gather(*(one(t) for t in chunk)), strict=True):
            out[tid] = st
    return out


async def reclaim_all(net: Net, led: Ledgers, db: Path, states: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Reclaim every escrow left locked by a refund or a failed Corda lock, once its deadline
    passed on the EVM chain; publish the ``reclaimed`` events through the feed's record."""
    todo = sorted(t for t, st in states.items() if st in RECLAIMABLE)
    if not todo:
        return {}
    record = TradeRecord(db)
    publisher = DvpPublisher("127.0.0.1", net.mqtt_port, client_id=f"soak-reclaim-{os.getpid()}")
    publisher.start()
    client = DvpClient(led, record=record, events=DvpEvents(publisher, record=record))
    key = net.evm.key(SELLER[0])
    errors: dict[str, str] = {}

    async def one(tid: str) -> None:
        try:
            await client.reclaim(tid, key, wait=True, wait_s=900)
        except DvpError as exc:
            errors[tid] = str(exc)
    try:
        await asyncio.gather(*(one(t) for t in todo))
        await publisher.drain(30.0)
    finally:
        await publisher.stop()
        record.close()
    return errors


async def conservation(net: Net, led: Ledgers, outcomes: Counter[str], before: dict[str, int]) -> list[str]:
    """ST and SC supply conserved to the unit, escrows empty, parties moved by exactly the
    settled trades; returns the problems found (none = pass)."""
    problems: list[str] = []
    genesis = json.loads((net.evm.home / "genesis.json").read_text())
    accounts = [bytes.fromhex(a["address"][2:]) for a in genesis["accounts"]]
    accounts.append(bytes.fromhex(genesis["token_issuer"]["address"][2:]))
    st_total = sum(a["st_balance"] for a in genesis["accounts"])
    supply = await led.st_supply()
    balances = [(await led.st_holding(a))[0] for a in accounts]
    escrow_st = (await led.st_holding(led.escrow_address))[0]
    if not supply == st_total == sum(balances) + escrow_st:
        problems.append(f"ST: supply {supply}, genesis {st_total}, holders {sum(balances)} + escrow {escrow_st}")
    cgen = json.loads((net.corda.home / "genesis.json").read_text())
    sc_total = sum(cgen["cash"].values())
    issuer = led.cash_issuer
    owners = [bytes.fromhex(h) for h in cgen["holders"].values()] + [issuer]
    escrow_owner = bytes.fromhex(str(led.corda_info["dvp_escrow_owner"]))
    sc = [await led.sc_balance(o, issuer) for o in owners]
    escrow_sc = await led.sc_balance(escrow_owner, issuer)
    if sc_total != sum(sc) + escrow_sc:
        problems.append(f"SC: issued {sc_total}, holders {sum(sc)} + escrow {escrow_sc}")
    if escrow_st or escrow_sc:
        problems.append(f"escrows not empty at the end: ST {escrow_st}, SC {escrow_sc}")
    now = await parties(net, led)
    settled = outcomes["settled"]
    want = {"st_seller": before["st_seller"] - settled * QTY, "st_buyer": before["st_buyer"] + settled * QTY,
            "sc_payer": before["sc_payer"] - settled * AMOUNT, "sc_payee": before["sc_payee"] + settled * AMOUNT}
    if now != want:
        problems.append(f"parties moved other than the {settled} settled trades: {now} != {want}")
    return problems


async def parties(net: Net, led: Ledgers) -> dict[str, int]:
    return {"st_seller": (await led.st_holding(net.evm.evm_address(SELLER[0])))[0],
            "st_buyer": (await led.st_holding(net.evm.evm_address(BUYER[0])))[0],
            "sc_payer": await led.sc_balance(net.corda.corda_party(BUYER[1]), led.cash_issuer),
            "sc_payee": await led.sc_balance(net.corda.corda_party(SELLER[1]), led.cash_issuer)}


def dvp_packets(outcomes: dict[str, str], evm_events: ChainEvents, corda_events: ChainEvents,
                net: Net) -> list[str]:
    """The dvp channel: no packet received (or acknowledged, or timed out) twice, and never both
    received and timed out."""
    problems = []
    for name, chain, kind in (("EVM recv", evm_events, ev.RECV_PACKET), ("Corda ack", corda_events,
                                                                          ev.ACKNOWLEDGE_PACKET),
                              ("Corda timeout", corda_events, ev.TIMEOUT_PACKET)):
        dup = {k: n for k, n in duplicates(chain, kind).items() if k.startswith(dvp_app.PORT_ID + "/")}
        if dup:
            problems.append(f"dvp {name} more than once: {dict(list(dup.items())[:10])}")
    sent = corda_events.counts.get(ev.SEND_PACKET, Counter())
    for (port, chan, seq) in sent:
        if port != dvp_app.PORT_ID or chan != net.dvp_corda:
            continue
        recv = evm_events.count(ev.RECV_PACKET, port, net.dvp_evm, seq)
        timeout = corda_events.count(ev.TIMEOUT_PACKET, port, chan, seq)
        if recv and timeout:
            problems.append(f"dvp packet {seq} was both received and timed out")
    return problems


# --- transfers ----------------------------------------------------------------------------

def transfer_verdict(d: Direction, src_events: ChainEvents, dst_events: ChainEvents,
                     dst_channel: str) -> tuple[dict[str, int], int, list[str]]:
    """Each sequence received exactly once and acknowledged once, or timed out once and never
    received; returns (counts, amount that crossed, problems)."""
    problems: list[str] = []
    counts = Counter[str]()
    crossed = 0
    for seq, amount in d.amounts.items():
        recv = dst_events.count(ev.RECV_PACKET, "transfer", dst_channel, seq)
        ack = src_events.count(ev.ACKNOWLEDGE_PACKET, "transfer", d.channel, seq)
        timeout = src_events.count(ev.TIMEOUT_PACKET, "transfer", d.channel, seq)
        if recv == 1 and ack == 1 and timeout == 0:
            counts["received"] += 1
            crossed += amount
        elif recv == 0 and ack == 0 and timeout == 1:
            counts["timed_out"] += 1
        else:
            counts["bad"] += 1
            if len(problems) < 10:
                problems.append(f"{d.name} seq {seq}: recv {recv}, ack {ack}, timeout {timeout}")
    return dict(counts), crossed, problems


async def bank_balances(d: Direction, dst_channel: str) -> dict[str, int]:
    voucher = f"transfer/{dst_channel}/{d.denom}"
    async with NodeClient(d.src.addr) as s, NodeClient(d.dst.addr) as t:
        return {
            "sender": int((await s.query_app("bank_balance", account=sender_account(d), denom=d.denom))["amount"]),
            "escrow": int((await s.query_app("escrow", port_id="transfer", channel_id=d.channel,
                                             denom=d.denom))["amount"]),
            "receiver": int((await t.query_app("bank_balance", account=d.receiver, denom=voucher))["amount"]),
            "voucher_supply": int((await t.query_app("bank_balance", account=d.receiver, denom=voucher))["supply"]),
        }


def process_check(pids: list[int], root: Path) -> list[str]:
    """Every PID we started is gone, and no process anywhere still names the soak's directory."""
    left = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            left.append(f"pid {pid} still running")
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(root) in cmd:
            left.append(f"pid {entry.name} names the soak directory: {cmd[:200]}")
    return left


def mqtt_verdict(outcomes: dict[str, str], got: Counter[tuple[str, str]]) -> tuple[dict[str, int], list[str]]:
    """Every expected settlement event received at least once; duplicates counted (their key,
    the topic, makes them recognisable)."""
    missing = []
    expected = 0
    for tid, outcome in outcomes.items():
        for event in EXPECTED_EVENTS.get(outcome, set()):
            expected += 1
            if got[(tid, event)] == 0:
                missing.append(f"{tid}/{event}")
    ours = set(outcomes)
    received = sum(n for (tid, _), n in got.items() if tid in ours)
    distinct = sum(1 for (tid, _) in got if tid in ours)
    stats = {"expected": expected, "received": received, "distinct": distinct,
             "duplicates": received - distinct, "missing": len(missing)}
    return stats, [f"settlement events never delivered ({len(missing)}): {missing[:10]}"] if missing else []


def to_json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
