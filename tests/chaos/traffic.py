"""What the soak offers: a file of DvP trades for the feed, and ICS-20 transfers both ways.

Trades: the seller alice delivers 1 ST to bob on the EVM chain against 10 SC paid by firm-b
to firm-a on the Corda chain; most have a long packet timeout, a seeded share a short one,
so a relayer paused past it makes those time out (refund, then the ST is reclaimed after the
deadline). The feed is the real ``kakehashi dvp feed`` process reading the file.

Transfers: signed by demo accounts no other process signs for (no shared EVM nonce), sent at
a steady pace while the faults run, one tx at a time per direction. A node killed with the tx
in its mempool loses it: the driver resubmits the same bytes (the same hash, so it cannot land
twice) until the chain gives a final answer. Each transfer has its own amount, so the final
balances show any double credit.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chains.ibc import events as ev
from chains.node.client import NodeClient, NodeError
from kakehashi.node.v1 import node_pb2
from tests.chaos.net import BUYER, SELLER, TRANSFER_CORDA, TRANSFER_EVM, Net, Node
from tests.support.live import SEC, Sender, transfers, tx_events

QTY, AMOUNT = 1, 10  # ST and SC per trade


@dataclass(frozen=True)
class TradeMix:
    long_timeout_s: int
    short_timeout_s: tuple[int, int]  # drawn in this range for the short share
    short_share: float
    deadline_after_timeout_s: int = 3


def write_trades(net: Net, path: Path, n: int, rng: random.Random, mix: TradeMix, tag: str) -> list[dict[str, Any]]:
    seller_evm, payee = net.evm.evm_address(SELLER[0]), net.corda.corda_party(SELLER[1])
    buyer_evm, payer = net.evm.evm_address(BUYER[0]), net.corda.corda_party(BUYER[1])
    docs = []
    for i in range(n):
        short = rng.random() < mix.short_share
        timeout = rng.randint(*mix.short_timeout_s) if short else mix.long_timeout_s
        docs.append({
            "trade_id": f"{tag}-{i:05d}", "st_quantity": QTY, "sc_amount": AMOUNT,
            "seller": {"evm": "0x" + seller_evm.hex(), "corda": payee.hex()},
            "buyer": {"evm": "0x" + buyer_evm.hex(), "corda": payer.hex()},
            "timeout_s": timeout, "deadline_s": timeout + mix.deadline_after_timeout_s,
        })
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return docs


# --- transfers ------------------------------------------------------------------------------

@dataclass
class Direction:
    """Transfers from ``src`` to ``dst`` on the transfer channel (src end ``channel``)."""

    name: str
    src: Node
    dst: Node
    channel: str
    denom: str
    sender: str  # key name on src
    receiver: str  # account string on dst
    amounts: dict[int, int] = field(default_factory=dict)  # sequence -> amount
    txs: int = 0
    resubmitted: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass
class TransferPlan:
    total: int  # both ways together
    per_tx: int
    rate_per_s: float  # transfers per second per direction
    short_share: float
    short_timeout_s: tuple[int, int]
    long_timeout_s: int


def directions(net: Net) -> list[Direction]:
    """Each side's transfer sender pays the other side's (so each account both sends and receives)."""
    on_evm, on_corda = net.evm.account(TRANSFER_EVM), net.corda.account(TRANSFER_CORDA)
    return [Direction("evm->corda", net.evm, net.corda, net.transfer_evm, "stake", TRANSFER_EVM, on_corda),
            Direction("corda->evm", net.corda, net.evm, net.transfer_corda, "jpy", TRANSFER_CORDA, on_evm)]


def sender_account(d: Direction) -> str:
    return d.src.account(d.sender)


class TransferDriver:
    """Sends the plan's transfers in a thread of its own (its own event loop), at a steady pace."""

    def __init__(self, net: Net, plan: TransferPlan, rng: random.Random) -> None:
        self.net, self.plan = net, plan
        self.dirs = directions(net)
        self.rng = random.Random(rng.getrandbits(64))
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="transfers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by the soak, never swallowed
            self.error = exc
        finally:
            self.done.set()

    async def _run(self) -> None:
        each = self.plan.total // len(self.dirs)
        await asyncio.gather(*(self._direction(d, each, random.Random(self.rng.getrandbits(64))) for d in self.dirs))

    async def _direction(self, d: Direction, n: int, rng: random.Random) -> None:
        src, dst = d.src.client(), d.dst.client()
        try:
            sender = Sender(d.src, d.sender, src)  # type: ignore[arg-type]
            account = sender_account(d)
            started = time.monotonic()
            sent = 0
            while sent < n:
                k = min(self.plan.per_tx, n - sent)
                short = rng.random() < self.plan.short_share
                ttl = rng.randint(*self.plan.short_timeout_s) if short else self.plan.long_timeout_s
                dst_time = await _retry(lambda: dst.status())
                deadline = int(dst_time.latest_time_ns) + ttl * SEC
                amounts = [rng.randint(1, 100) for _ in range(k)]
                msgs = transfers("transfer", d.channel, d.denom, account, d.receiver, amounts, deadline)
                raw = await _retry(lambda msgs=msgs: sender.encode(msgs))  # type: ignore[misc]
                result = await _land(src, raw, d)
                if result is None:
                    sender._nonce = None  # FAILED on chain: resync the nonce and sign again
                    continue
                seqs = [p.sequence for e in tx_events(result) if e.type == ev.SEND_PACKET and (p := e.packet())]
                if len(seqs) != k:
                    raise AssertionError(f"{d.name}: tx carried {k} transfers but sent {len(seqs)} packets")
                d.amounts.update(zip(seqs, amounts, strict=True))
                d.txs += 1
                sent += k
                # steady pace: the n-th transfer leaves at n / rate seconds
                await asyncio.sleep(max(0.0, started + sent / self.plan.rate_per_s - time.monotonic()))
        finally:
            await src.close()
            await dst.close()


async def _retry(fn: Any, attempts: int = 60) -> Any:
    """A read that may meet a node being restarted or stalled: retried for about a minute."""
    for i in range(attempts):
        try:
            return await fn()
        except NodeError:
            if i == attempts - 1:
                raise
            await asyncio.sleep(1.0)


async def _land(node: NodeClient, raw: bytes, d: Direction, limit_s: float = 300) -> node_pb2.TxResult | None:
    """Submit until committed: a tx lost with its node's mempool is resubmitted (same bytes).
    None when the chain recorded it FAILED (the caller signs a new one)."""
    deadline = time.monotonic() + limit_s
    tx_hash = tx_hash_of(d.src.kind, raw)
    submitted = False
    while time.monotonic() < deadline:
        if not submitted:
            try:
                await node.submit(raw)
                submitted = True
            except NodeError as exc:
                if "already committed" in exc.details:
                    submitted = True
                else:
                    await asyncio.sleep(1.0)
                    continue
        try:
            res = await node.tx_result(tx_hash)
        except NodeError:
            await asyncio.sleep(1.0)
            continue
        if res.status == node_pb2.TX_STATUS_COMMITTED:
            return res
        if res.status == node_pb2.TX_STATUS_FAILED:
            d.failed.append(res.reason)
            return None
        if res.status == node_pb2.TX_STATUS_UNKNOWN:  # lost with a restarted node's mempool
            d.resubmitted += 1
            submitted = False
            continue
        await asyncio.sleep(0.3)
    raise AssertionError(f"{d.name}: a transfer tx did not land in {limit_s} s")


def tx_hash_of(kind: str, raw: bytes) -> bytes:
    """The hash a node files the tx under (EVM: keccak of the bytes; Corda: the txid)."""
    if kind == "evm":
        from lightclients.crypto import keccak256
        return keccak256(raw)
    from chains.corda.transaction import SignedTransaction
    return SignedTransaction.decode(raw).txid


def sequences(dirs: Sequence[Direction]) -> dict[str, dict[int, int]]:
    return {d.name: dict(d.amounts) for d in dirs}
