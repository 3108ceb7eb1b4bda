"""The settlement client: pre-check, both locks, then follow the packet to a final state.

Why the order seller-then-buyer: the EVM recv checks the escrow, so the ST must be locked
before the packet can arrive; the Corda lock (which sends the packet) is submitted only
after the EVM lock committed. A failed Corda lock leaves the ST escrowed until the deadline,
when :meth:`DvpClient.reclaim` returns it; nothing else can move it.

Why follow by reading the chains: the relayer is untrusted. A trade's state is derived from
the EVM escrow (``dvp_escrow``) and the Corda lock (``dvp_lock``) (:func:`derive_state`), so a
client restarted at any point, or a second client, reaches the same answer. They are re-read
when a block of either chain carries an event of the trade (both block streams are followed),
with a slow poll as a safety net, never on a fixed fast timer per trade.

Concurrency (the feed settles many trades at once) without a network round trip under a
lock: an EVM signer's nonce is counted locally (read from the chain once, re-read after a
nonce refusal) and its txs travel in submission order; a buyer's Cash inputs are chosen from
the Cash the chain shows at its head minus the inputs of this client's locks still in flight;
a party's free ST / SC is the balance at a height minus what this client's locks in flight take
that the chain does not show yet at that height (:class:`Holds`). Every check-and-reserve runs
without an await between reading the answer and reserving, so two trades can never both pass on
the same free balance or pick the same input, and unrelated trades never wait for each other.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from chains.corda.dvp import lock_transaction
from chains.evm import Message as EvmCall
from chains.evm import make_tx
from chains.ibc import events as ev
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.errors import InvalidMessage
from chains.node.client import NodeClient, NodeError
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.node.v1 import node_pb2
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from lightclients.interface import Status
from relayer.dvp.events import DvpEvents
from relayer.dvp.ledgers import ADVISORY_STALE_BLOCKS, EXACT_STALE_BLOCKS, LedgerError, Ledgers
from relayer.dvp.record import TradeRecord, TradeRow
from relayer.dvp.trade import SEC_NS, ResolvedTrade, Trade, TradeError, resolve

# Follow re-reads a trade when a block carries one of its events; this is the safety net.
POLL_S = 5.0
DEFAULT_FOLLOW_SLACK_S = 60.0
# A lock must leave this long before the deadline for the lock, recv and ack blocks.
MIN_LEAD_S = 5
# events that name a trade: the EVM escrow's, and the Corda chain's dvp packet life
EVM_TRADE_EVENTS = ("dvp_locked", "dvp_delivered", "dvp_reclaimed")
CORDA_PACKET_EVENTS = (ev.SEND_PACKET, ev.ACKNOWLEDGE_PACKET, ev.TIMEOUT_PACKET)
FINAL_STATES = ("settled", "refunded-error", "refunded-timeout", "reclaimed")


class DvpError(RuntimeError):
    """A settlement step failed; the message says which and what was (not) locked."""


@dataclass
class Settlement:
    """What a settle / status call found on the chains."""

    trade_id: str
    state: str
    reasons: list[str] = field(default_factory=list)
    evm: dict[str, Any] = field(default_factory=dict)
    corda: dict[str, Any] = field(default_factory=dict)
    latency_s: float | None = None
    error: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_json(self) -> dict[str, Any]:
        return {"trade_id": self.trade_id, "state": self.state, "final": self.final, "reasons": self.reasons,
                "evm": self.evm, "corda": self.corda, "latency_s": self.latency_s, "error": self.error}


def derive_state(evm: str, corda: str) -> str:
    """The trade's state from the EVM escrow status and the Corda lock status.

    none / evm-locked / corda-locked (one leg only) / locked / delivered, then the Corda exit
    decides: settled, refunded-error, refunded-timeout; a refund whose ST the seller took
    back is reclaimed.
    """
    if corda == "settled":
        return "settled"
    if corda in ("refunded_error", "refunded_timeout"):
        return "reclaimed" if evm == "reclaimed" else corda.replace("_", "-")
    if corda == "locked":
        return {"delivered": "delivered", "locked": "locked"}.get(evm, "corda-locked")
    return {"locked": "evm-locked", "reclaimed": "reclaimed", "delivered": "delivered"}.get(evm, "none")


def _events_for(evm: str, corda: str) -> list[str]:
    out = []
    if corda != "none" and evm != "none":
        out.append("locked")
    if evm == "delivered":
        out.append("delivered")
    if corda == "settled":
        out.append("settled")
    elif corda == "refunded_error":
        out.append("refunded-error")
    elif corda == "refunded_timeout":
        out.append("refunded-timeout")
    if evm == "reclaimed":
        out.append("reclaimed")
    return out


class _EvmAccount:
    """Nonces of one EVM signer, counted locally and handed out in order."""

    def __init__(self) -> None:
        self.read = asyncio.Lock()  # only the one-time read of the chain's nonce
        self.nonce: int | None = None


class Holds:
    """What this client's locks in flight take from a balance the chain does not show yet.

    A hold is taken when a trade passes its balance check, marked ``landed(height)`` when its
    lock commits (from that height on the chain's balance shows it) and dropped if the lock
    fails. The free amount at a read height is the chain balance there minus the holds that had
    not landed by then, which is exact whatever height the read was answered at. Holds landed at
    or below the chain head minus ``keep`` are pruned; a read older than the pruned heights
    (``floor``) is stale and must be made again. Sums are kept per landing height, so a check
    costs O(recent heights), not O(trades in flight).
    """

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._trades: dict[Hashable, dict[str, tuple[int, int | None]]] = defaultdict(dict)
        self._unlanded: dict[Hashable, int] = defaultdict(int)
        self._landed: dict[Hashable, dict[int, int]] = defaultdict(dict)
        self._landed_ids: dict[Hashable, dict[int, set[str]]] = defaultdict(dict)
        self.floor: dict[Hashable, int] = defaultdict(int)

    def held(self, key: Hashable, height: int) -> int:
        return self._unlanded[key] + sum(v for at, v in self._landed[key].items() if at > height)

    def fresh(self, key: Hashable, height: int) -> bool:
        return height >= self.floor[key]

    def take(self, key: Hashable, trade_id: str, amount: int) -> None:
        self.release(key, trade_id)
        self._trades[key][trade_id] = (amount, None)
        self._unlanded[key] += amount

    def landed(self, key: Hashable, trade_id: str, height: int, head: int) -> None:
        entry = self._trades[key].get(trade_id)
        if entry is not None and entry[1] is None:
            amount = entry[0]
            self._unlanded[key] -= amount
            self._landed[key][height] = self._landed[key].get(height, 0) + amount
            self._landed_ids[key].setdefault(height, set()).add(trade_id)
            self._trades[key][trade_id] = (amount, height)
        self.prune(key, head)

    def release(self, key: Hashable, trade_id: str) -> None:
        entry = self._trades[key].pop(trade_id, None)
        if entry is None:
            return
        amount, at = entry
        if at is None:
            self._unlanded[key] -= amount
        else:
            self._landed[key][at] -= amount
            self._landed_ids[key][at].discard(trade_id)

    def prune(self, key: Hashable, head: int) -> None:
        limit = head - self.keep
        for at in [h for h in self._landed[key] if h <= limit]:
            del self._landed[key][at]
            for tid in self._landed_ids[key].pop(at, set()):
                self._trades[key].pop(tid, None)
            self.floor[key] = max(self.floor[key], at)


class _Picked(list[tuple[pb.StateRef, pb.Cash]]):
    """Cash inputs chosen for one lock; ``landed_at`` is the height the lock committed at."""

    landed_at: int | None = None


class DvpClient:
    """Settles trades between the two chains ``ledgers`` reads; see the module docstring."""

    def __init__(self, ledgers: Ledgers, *, record: TradeRecord | None = None, events: DvpEvents | None = None,
                 poll_s: float = POLL_S, share_corda_with: DvpClient | None = None) -> None:
        self.ledgers = ledgers
        self.record = record
        self.events = events or DvpEvents(record=record)
        if self.events.record is None:
            self.events.record = record
        self.poll_s = poll_s
        self._accounts: dict[bytes, _EvmAccount] = defaultdict(_EvmAccount)
        self._st_holds = Holds()  # key: seller EVM address
        self._sc_holds = Holds()  # key: (buyer Corda key, cash issuer, SC brand)
        # Cash inputs of locks in flight: buyer -> state ref -> Corda height its lock landed at (None: not yet)
        self._inputs: dict[bytes, dict[tuple[str, int], int | None]] = defaultdict(dict)
        self._cash_views: dict[tuple[bytes, bytes, str], tuple[int, list[dict[str, Any]]]] = {}
        self._spent: dict[bytes, dict[int, list[tuple[str, int]]]] = defaultdict(dict)  # by landing height
        self._inputs_floor: dict[bytes, int] = defaultdict(int)
        # Per buyer: locks holding inputs whose block is not known yet, and the highest block a
        # lock of this client landed in. Together they say in O(1) whether change is still to
        # come (a scan of every reservation per waiter per block was quadratic in concurrency).
        self._locks_unlanded: dict[bytes, int] = defaultdict(int)
        self._last_landed: dict[bytes, int] = defaultdict(int)
        self._changed: dict[str, asyncio.Event] = {}
        self._watching = False
        # Corda channel end -> EVM channel end; an open channel's counterparty never changes.
        self._evm_channel: dict[str, str] = {}
        self._inflight_ids: set[str] = set()
        self._locked_s: dict[str, float] = {}
        self._final_s: dict[str, float] = {}
        if share_corda_with is not None:
            # Several ST chains settle against one SC chain (relayer/dvp/router.py): a buyer's SC
            # holds, reserved Cash inputs and the trade ids in flight are one set for all paths.
            o = share_corda_with
            self._sc_holds, self._inputs, self._cash_views = o._sc_holds, o._inputs, o._cash_views
            self._spent, self._inputs_floor, self._inflight_ids = o._spent, o._inputs_floor, o._inflight_ids
            self._locks_unlanded, self._last_landed = o._locks_unlanded, o._last_landed

    # --- resolution and pre-check ----------------------------------------------------------

    async def resolve(self, trade: Trade | ResolvedTrade) -> ResolvedTrade:
        if isinstance(trade, ResolvedTrade):
            return trade
        led = self.ledgers
        return resolve(trade, evm_now_ns=await led.evm_time_ns(), security_token=led.security_token,
                       cash_issuer=led.cash_issuer, channel=led.channel, brands=led.brands,
                       default_brand=led.default_brand)

    async def precheck(self, trade: Trade | ResolvedTrade) -> list[str]:
        """Every reason the trade would fail now, read from both chains; [] = go."""
        try:
            resolved = await self.resolve(trade)
        except TradeError as exc:
            return [str(exc)]
        return await self._precheck(resolved)

    async def _precheck(self, rt: ResolvedTrade) -> list[str]:
        static, balances = await asyncio.gather(self._static_reasons(rt), self._balance_reasons(rt))
        return _ordered(static + balances)

    async def _static_reasons(self, rt: ResolvedTrade) -> list[str]:
        """Everything but the free balances: times, trade id, whitelist, admission, channel, clients
        (their queries run concurrently; none depends on what other trades of this client hold)."""
        led, t = self.ledgers, rt.terms
        reasons: list[str] = []
        now = await led.evm_time_ns()
        if t.deadline_ns < now + MIN_LEAD_S * SEC_NS:
            reasons.append(f"deadline: {t.deadline_ns} is less than {MIN_LEAD_S} s after the EVM chain's time {now}")
        if rt.timeout_ns > t.deadline_ns:
            reasons.append(f"timeout: the packet timeout {rt.timeout_ns} is later than the deadline {t.deadline_ns}")
        if rt.timeout_ns <= now:
            reasons.append(f"timeout: {rt.timeout_ns} has already passed on the EVM chain ({now})")
        if bytes(t.security_token) != led.security_token:
            reasons.append(f"security_token: 0x{t.security_token.hex()} is not the EVM chain's security token "
                           f"0x{led.security_token.hex()}")
        issuer, brand = bytes(t.cash_issuer), t.sc_brand
        brands = led.brands
        if brand not in brands:
            reasons.append(f"sc_brand: {brand!r} is not an SC brand of the Corda chain "
                           f"(it issues {', '.join(repr(b) for b in sorted(brands))})")
        elif brands[brand] != issuer:
            reasons.append(f"cash_issuer: {issuer.hex()[:16]}.. does not issue SC brand {brand!r} "
                           f"(its issuer is {brands[brand].hex()[:16]}..)")
        escrow, lock, seller_st, buyer_st, (admission, admitted), path = await asyncio.gather(
            led.escrow(t.trade_id), led.lock(t.trade_id), led.st_holding_at(bytes(t.seller_evm), ADVISORY_STALE_BLOCKS),
            led.st_holding_at(bytes(t.buyer_evm), ADVISORY_STALE_BLOCKS),
            led.admission(issuer, ADVISORY_STALE_BLOCKS, brand=brand), self._path_reasons(rt, now))
        if escrow.get("status") != "none":
            reasons.append(f"trade_id: {t.trade_id} is already used on the EVM chain (escrow {escrow.get('status')})")
        if lock.get("status") != "none":
            reasons.append(f"trade_id: {t.trade_id} is already used on the Corda chain (lock {lock.get('status')})")
        if t.trade_id in self._inflight_ids:
            reasons.append(f"trade_id: {t.trade_id} is being settled by this client right now")
        if not seller_st[1]:
            reasons.append(f"seller.evm: 0x{t.seller_evm.hex()} is not whitelisted for the security token")
        if not buyer_st[1]:
            reasons.append(f"buyer.evm: 0x{t.buyer_evm.hex()} is not whitelisted for the security token")
        if admission is None:
            reasons.append(f"cash_issuer: {issuer.hex()[:16]}.. has no Admission for SC brand {brand!r} "
                           "on the Corda chain")
        else:
            for role, key in (("buyer", bytes(t.buyer_corda)), ("seller", bytes(t.seller_corda))):
                if key not in admitted:
                    reasons.append(f"{role}.corda: {key.hex()[:16]}.. is not admitted to hold SC brand {brand!r} "
                                   f"of issuer {issuer.hex()[:16]}..")
        path_reasons: list[str] = path
        return reasons + path_reasons

    async def _balance_reasons(self, rt: ResolvedTrade) -> list[str]:
        """Free ST and SC: the chain balance less what this client's trades in flight take."""
        balances = await self._read_balances(rt)
        return self._free_reasons(rt, *balances)

    async def _read_balances(self, rt: ResolvedTrade) -> tuple[int, int, int, int]:
        """(seller ST, its EVM height, buyer SC, its Corda height), fresh against the holds."""
        led, t = self.ledgers, rt.terms
        seller, sc_key = bytes(t.seller_evm), _sc_key(t)
        while True:
            (st, _, st_h), (sc, sc_h) = await asyncio.gather(
                led.st_holding_at(seller, EXACT_STALE_BLOCKS),
                led.sc_balance_at(bytes(t.buyer_corda), bytes(t.cash_issuer), EXACT_STALE_BLOCKS, brand=t.sc_brand))
            if self._st_holds.fresh(seller, st_h) and self._sc_holds.fresh(sc_key, sc_h):
                return st, st_h, sc, sc_h

    def _free_reasons(self, rt: ResolvedTrade, st: int, st_h: int, sc: int, sc_h: int) -> list[str]:
        t = rt.terms
        seller, issuer = bytes(t.seller_evm), bytes(t.cash_issuer)
        reasons = []
        st_free = st - self._st_holds.held(seller, st_h)
        if st_free < t.st_quantity:
            reasons.append(f"seller.evm: 0x{t.seller_evm.hex()} has {st_free} ST free, the trade needs {t.st_quantity}")
        sc_free = sc - self._sc_holds.held(_sc_key(t), sc_h)
        if sc_free < t.sc_amount:
            reasons.append(f"buyer.corda: {t.buyer_corda.hex()[:16]}.. has {sc_free} SC of brand {t.sc_brand!r} "
                           f"of issuer {issuer.hex()[:16]}.. free, the trade needs {t.sc_amount}")
        return reasons

    async def _path_reasons(self, rt: ResolvedTrade, now: int) -> list[str]:
        led = self.ledgers
        view = await led.channel_view(rt.channel)
        if view is None:
            return [f"channel: dvp/{rt.channel} does not exist on the Corda chain"]
        out = []
        if view.corda_state != chpb.STATE_OPEN:
            out.append(f"channel: dvp/{rt.channel} is not OPEN on the Corda chain")
        if view.evm_state != chpb.STATE_OPEN:
            out.append(f"channel: the EVM end dvp/{view.evm_channel or '?'} is not OPEN")
        if view.ordering != chpb.ORDER_UNORDERED or view.version != dvp_app.VERSION:
            out.append(f"channel: dvp/{rt.channel} is not an unordered {dvp_app.VERSION} channel")
        for on_evm, client_id, where in ((False, view.corda_client, "Corda chain's client of the EVM chain"),
                                         (True, view.evm_client, "EVM chain's client of the Corda chain")):
            if not client_id:
                out.append(f"client: the {where} is unknown (no connection)")
                continue
            at_now, at_deadline = await led.client_status(on_evm, client_id, [now, int(rt.terms.deadline_ns)])
            if at_now is not Status.ACTIVE:
                out.append(f"client: the {where} ({client_id}) is {at_now.value}")
            elif at_deadline is not Status.ACTIVE:
                out.append(f"client: the {where} ({client_id}) expires before the deadline unless refreshed")
        return out

    # --- locks -----------------------------------------------------------------------------

    async def _evm_tx(self, key: bytes, calls: list[EvmCall]) -> node_pb2.TxResult:
        """One EVM tx signed by ``key``: the next local nonce, submitted in nonce order (no
        await between taking the nonce and queueing the submission), its result from the block
        stream. A nonce refusal (another tool used this key) re-reads the nonce and retries once."""
        node = self.ledgers.evm
        sender = eth_address(secp256k1_public_key(key))
        acct = self._accounts[sender]
        for attempt in (1, 2):
            if acct.nonce is None:
                async with acct.read:
                    if acct.nonce is None:
                        acct.nonce = int((await node.query_app("account", address="0x" + sender.hex()))["nonce"])
            nonce = acct.nonce
            acct.nonce = nonce + 1
            tx = make_tx(key, self.ledgers.evm_chain_id, nonce, calls).encode()
            try:
                tx_hash = await node.submit(tx)
                break
            except NodeError as exc:
                acct.nonce = None
                if attempt == 2 or "nonce" not in exc.details:
                    raise
        result = await self.ledgers.evm_watch.wait_landed(tx, tx_hash)
        if result.status != node_pb2.TX_STATUS_COMMITTED and result.status != node_pb2.TX_STATUS_FAILED:
            acct.nonce = None  # dropped or unknown: only the chain knows which nonces are used
        return result

    async def lock_evm(self, rt: ResolvedTrade, seller_key: bytes) -> node_pb2.TxResult:
        """The seller's ST lock (no pre-check: tests use it to build mismatched trades).

        The lock names the EVM end of the trade's dvp channel, so only packets arriving there
        (from the Corda chain the channel leads to) can deliver the ST.
        """
        evm_channel = self._evm_channel.get(rt.channel)
        if evm_channel is None:
            view = await self.ledgers.channel_view(rt.channel)
            if view is None or not view.evm_channel:
                raise DvpError(f"channel: dvp/{rt.channel} has no EVM end; open the dvp channel first")
            evm_channel = self._evm_channel[rt.channel] = view.evm_channel
        calls = [EvmCall(self.ledgers.escrow_address, "lock",
                         (dvp_app.encode_terms(rt.terms), evm_channel.encode()))]
        return await self._evm_tx(seller_key, calls)

    @contextlib.asynccontextmanager
    async def _cash_inputs(self, buyer: bytes, coin: tuple[bytes, str], amount: int) -> AsyncIterator[_Picked]:
        """Cash states of ``buyer`` of ``coin`` (issuer, brand) covering ``amount``, reserved until the lock using them
        lands (the caller reports it through the yielded list's ``landed`` marker) or fails.

        Chosen from the Cash the chain shows at its head, minus inputs of this client's locks
        in flight; with too little free Cash while locks are in flight, it waits for the next
        block (their change)."""
        reserved = self._inputs[buyer]
        stale = EXACT_STALE_BLOCKS
        while True:
            rows, height = await self.ledgers.cash_at(buyer, stale)
            if height < self._inputs_floor[buyer]:
                stale = 0  # older than inputs already forgotten as spent: read again at the head
                continue
            free = self._free_cash(buyer, coin, rows, height)
            chosen, total = [], 0
            while free and total < amount:
                r = free.pop()  # largest first
                chosen.append(r)
                total += int(r["amount"])
            if total >= amount:
                break
            free.extend(reversed(chosen))  # not enough: put them back
            if stale:
                # A view a few blocks old said too little: ask the head before waiting. (Waiting
                # for "the block after" a stale height returns at once, which spun every waiter.)
                stale = 0
                continue
            if not self._locks_unlanded[buyer] and self._last_landed[buyer] <= height:
                raise DvpError(f"buyer {buyer.hex()[:16]}.. has only {total} SC of this issuer and brand; "
                               f"needs {amount}")
            await self.ledgers.corda_watch.next_block(height)  # a lock in flight returns change when it lands
        keys = [(r["txid"], int(r["index"])) for r in chosen]
        for k in keys:
            reserved[k] = None
        self._locks_unlanded[buyer] += 1
        picked = _Picked((pb.StateRef(txid=bytes.fromhex(r["txid"]), index=int(r["index"])),
                          pb.Cash(issuer=coin[0], owner=buyer, amount=int(r["amount"]), brand=coin[1]))
                         for r in chosen)
        try:
            yield picked
        finally:
            self._locks_unlanded[buyer] -= 1
            if picked.landed_at is not None:
                self._last_landed[buyer] = max(self._last_landed[buyer], picked.landed_at)
            spent = self._spent[buyer]
            view = self._cash_views.get((buyer, *coin))
            if picked.landed_at is None and view is not None:  # the lock failed: free again
                for r in chosen:
                    bisect.insort(view[1], r, key=lambda x: int(x["amount"]))
            for k in keys:
                if picked.landed_at is None:
                    reserved.pop(k, None)
                else:
                    reserved[k] = picked.landed_at
                    spent.setdefault(picked.landed_at, []).append(k)
            head = self.ledgers.corda_watch.head
            if head is not None:  # spent inputs a read at the head can no longer show unspent
                for at in [h for h in spent if h <= head.height - 8]:
                    for k in spent.pop(at):
                        reserved.pop(k, None)
                    self._inputs_floor[buyer] = max(self._inputs_floor[buyer], at)

    def _free_cash(self, buyer: bytes, coin: tuple[bytes, str], rows: list[dict[str, Any]],
                   height: int) -> list[dict[str, Any]]:
        """The buyer's Cash of ``coin`` (issuer, brand) not reserved by a lock in flight, smallest
        first (so the largest pops first), built once per Corda height and consumed as inputs are taken."""
        view = self._cash_views.get((buyer, *coin))
        if view is not None and view[0] >= height:
            return view[1]
        reserved = self._inputs[buyer]
        issuer_hex, brand = coin[0].hex(), coin[1]
        free = sorted((r for r in rows if r["issuer"] == issuer_hex and r.get("brand", "") == brand
                       and (r["txid"], int(r["index"])) not in reserved),
                      key=lambda r: int(r["amount"]))
        self._cash_views[(buyer, *coin)] = (height, free)
        return free

    async def lock_corda(self, rt: ResolvedTrade, buyer_seed: bytes) -> node_pb2.TxResult:
        """The buyer's SC lock, which also sends the DvP packet."""
        led, t = self.ledgers, rt.terms
        admission, _ = await led.admission(bytes(t.cash_issuer), brand=t.sc_brand)
        if admission is None:
            raise DvpError(f"the cash issuer has no Admission for SC brand {t.sc_brand!r} on the Corda chain")
        admission_ref = pb.StateRef(txid=bytes.fromhex(admission["txid"]), index=int(admission["index"]))
        async with self._cash_inputs(bytes(t.buyer_corda), (bytes(t.cash_issuer), t.sc_brand),
                                     int(t.sc_amount)) as inputs:
            stx = lock_transaction(t, rt.channel, rt.timeout_ns, buyer_seed, list(inputs), admission_ref,
                                   led.notary, _salt())
            raw = stx.encode()
            tx_hash = await led.corda.submit(raw)
            result = await led.corda_watch.wait_landed(raw, tx_hash)
            if result.status == node_pb2.TX_STATUS_COMMITTED:
                inputs.landed_at = int(result.height)
            return result

    # --- settle ----------------------------------------------------------------------------

    def _check_keys(self, t: dvp_pb2.Terms, seller_key: bytes, buyer_seed: bytes) -> None:
        if eth_address(secp256k1_public_key(seller_key)) != bytes(t.seller_evm):
            raise DvpError(f"the seller key is not the key of seller.evm 0x{t.seller_evm.hex()}")
        if ed25519_public_key(buyer_seed) != bytes(t.buyer_corda):
            raise DvpError(f"the buyer key is not the key of buyer.corda {t.buyer_corda.hex()}")

    async def settle(self, trade: Trade | ResolvedTrade, seller_key: bytes, buyer_seed: bytes, *,
                     follow: bool = True, wait_s: float | None = None,
                     progress: Callable[[Settlement], None] | None = None) -> Settlement:
        """Pre-check, lock both legs, then (``follow``) poll both chains until the Corda lock
        exits or ``wait_s`` runs out (default: until the packet timeout plus a minute);
        ``progress`` sees every state the trade passes through."""
        try:
            rt = await self.resolve(trade)
        except TradeError as exc:
            return Settlement(getattr(trade, "trade_id", "?"), "rejected", reasons=[str(exc)])
        t = rt.terms
        self._check_keys(t, seller_key, buyer_seed)
        seller, sc_key = bytes(t.seller_evm), _sc_key(t)
        static, balances = await asyncio.gather(self._static_reasons(rt), self._read_balances(rt))
        # Judge and reserve the free balances with no await in between: atomic in this loop.
        reasons = static + self._free_reasons(rt, *balances)
        if t.trade_id in self._inflight_ids:
            reasons.append(f"trade_id: {t.trade_id} is being settled by this client right now")
        reasons = _ordered(reasons)
        if reasons:
            # A trade id this client already handled keeps its row: the refusal is of the retry.
            if self.record is not None and self.record.get(t.trade_id) is None:
                self.record.create(t.trade_id, "rejected", terms=t, timeout_ns=rt.timeout_ns, channel=rt.channel,
                                   error="; ".join(reasons))
            return Settlement(t.trade_id, "rejected", reasons=reasons)
        self._st_holds.take(seller, t.trade_id, t.st_quantity)
        self._sc_holds.take(sc_key, t.trade_id, t.sc_amount)
        self._inflight_ids.add(t.trade_id)
        self._watch_trades()
        st_landed = sc_landed = False
        try:
            self.begin(rt)
            try:
                evm = await self.lock_evm(rt, seller_key)
            except NodeError as exc:
                return self._lock_failed(t.trade_id, f"EVM lock not accepted: {exc.details or exc}; nothing locked")
            if evm.status != node_pb2.TX_STATUS_COMMITTED:
                return self._lock_failed(t.trade_id, f"EVM lock failed: {evm.reason}; nothing locked")
            # From this height on the chain's balance shows the escrowed ST.
            self._st_holds.landed(seller, t.trade_id, int(evm.height), int(evm.height))
            st_landed = True
            if self.record is not None:
                self.record.update(t.trade_id, evm_lock_tx=bytes(evm.tx_hash).hex(), evm_status="locked",
                                   state="evm-locked")
            try:
                corda = await self.lock_corda(rt, buyer_seed)
                failed = None if corda.status == node_pb2.TX_STATUS_COMMITTED else corda.reason
            except (NodeError, DvpError, ValueError) as exc:  # ValueError: the lock builder refused
                corda, failed = None, str(exc)
            if failed is not None:
                return self._lock_failed(t.trade_id, f"Corda lock failed: {failed}; the ST stays escrowed "
                                         f"until the deadline, then `dvp reclaim {t.trade_id}` returns it")
            if corda is not None:
                self._sc_holds.landed(sc_key, t.trade_id, int(corda.height), int(corda.height))
                sc_landed = True
                if self.record is not None:
                    self.record.update(t.trade_id, corda_lock_tx=bytes(corda.tx_hash).hex(), corda_status="locked",
                                       state="locked")
        finally:
            # A hold whose lock did not land takes nothing: the chain enforces the balance anyway.
            if not st_landed:
                self._st_holds.release(seller, t.trade_id)
            if not sc_landed:
                self._sc_holds.release(sc_key, t.trade_id)
            self._inflight_ids.discard(t.trade_id)
        if not follow:
            return await self.status(t.trade_id)
        if wait_s is None:
            wait_s = max(0.0, (rt.timeout_ns - await self.ledgers.evm_time_ns()) / SEC_NS) + DEFAULT_FOLLOW_SLACK_S
        return await self.follow(t.trade_id, wait_s, progress)

    def begin(self, rt: ResolvedTrade) -> None:
        """Start the trade's clock and its record row, just before its first lock (``settle``
        does this; a caller locking by hand calls it so status, latency and events follow)."""
        started = self._locked_s[rt.trade_id] = time.time()
        if self.record is not None:
            self.record.create(rt.trade_id, "locking", terms=rt.terms, timeout_ns=rt.timeout_ns, channel=rt.channel,
                               locked_s=started, error=None)

    def _lock_failed(self, trade_id: str, error: str) -> Settlement:
        if self.record is not None:
            self.record.update(trade_id, state="lock-failed", error=error)
        return Settlement(trade_id, "lock-failed", error=error)

    # --- following -------------------------------------------------------------------------

    async def follow(self, trade_id: str, wait_s: float,
                     progress: Callable[[Settlement], None] | None = None) -> Settlement:
        """Read both chains whenever a block carries an event of the trade (at least every
        ``poll_s``) until it is final or ``wait_s`` passes; publishes events."""
        self._watch_trades()
        deadline = time.monotonic() + wait_s
        changed = self._changed.setdefault(trade_id, asyncio.Event())
        last = None
        try:
            while True:
                changed.clear()  # before reading: an event from here on forces another read
                got = await self.status(trade_id)
                if progress is not None and got.state != last:
                    progress(got)
                    last = got.state
                left = deadline - time.monotonic()
                if got.final or got.state in ("none", "lock-failed") or left <= 0:
                    return got
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(self.poll_s, left))
        finally:
            self._changed.pop(trade_id, None)

    def _watch_trades(self) -> None:
        """Subscribe once to both block streams: a block naming a followed trade wakes it."""
        if self._watching:
            return
        self._watching = True
        self.ledgers.evm_watch.subscribe(self._on_evm_block)
        self.ledgers.corda_watch.subscribe(self._on_corda_block)

    def _wake(self, trade_id: str) -> None:
        flag = self._changed.get(trade_id)
        if flag is not None:
            flag.set()

    def _on_evm_block(self, blk: node_pb2.Block) -> None:
        for r in blk.results:
            for e in r.events:
                if e.type in EVM_TRADE_EVENTS:
                    for a in e.attributes:
                        if a.key == "trade_id":
                            self._wake(bytes(a.value).decode(errors="replace"))

    def _on_corda_block(self, blk: node_pb2.Block) -> None:
        for r in blk.results:
            for e in r.events:
                if e.type not in CORDA_PACKET_EVENTS:
                    continue
                packet = ev.Event(e.type, tuple((a.key, bytes(a.value)) for a in e.attributes)).packet()
                if packet is None or packet.source_port != dvp_app.PORT_ID:
                    continue
                try:
                    self._wake(dvp_app.decode_packet_data(bytes(packet.data)).trade_id)
                except InvalidMessage:
                    continue

    async def status(self, trade_id: str) -> Settlement:
        """The trade as both chains see it now; updates this client's record and events."""
        escrow, lock = await asyncio.gather(self.ledgers.escrow(trade_id), self.ledgers.lock(trade_id))
        evm_s, corda_s = str(escrow.get("status", "none")), str(lock.get("status", "none"))
        state = derive_state(evm_s, corda_s)
        row = self.record.get(trade_id) if self.record is not None else None
        if row is not None and state in ("none", "evm-locked") and row.state in ("rejected", "lock-failed"):
            state = row.state
        # Times and events belong to trades this client handled: in its record, or (without a
        # record) settled by this object.
        locked_s = row.locked_s if row is not None else self._locked_s.get(trade_id)
        final_s = row.final_s if row is not None else self._final_s.get(trade_id)
        if final_s is None and state in FINAL_STATES and (row is not None or trade_id in self._locked_s):
            final_s = self._final_s[trade_id] = time.time()
        latency = None if locked_s is None else (final_s or time.time()) - locked_s
        result = Settlement(trade_id, state, evm=escrow, corda=lock, latency_s=latency,
                            error=row.error if row is not None else None)
        if row is not None and self.record is not None:
            seen = {"state": state, "evm_status": evm_s, "corda_status": corda_s, "sequence": lock.get("sequence"),
                    "corda_exit_tx": lock.get("exit_txid"), "final_s": final_s}
            if any(getattr(row, k) != v for k, v in seen.items()):  # polls write only what changed
                self.record.update(trade_id, **seen)
        if row is not None or trade_id in self._locked_s:
            for event in _events_for(evm_s, corda_s):
                self.events.emit(trade_id, event, _payload(escrow, lock, state), latency)
        return result

    async def existing(self, trade: Trade) -> Settlement | None:
        """The trade as the chains already hold it, or None when its id is unused there.

        Why: settling a trade again (a retried command, a second operator) must say what became
        of it, not that the pre-check "rejected" it. Only a leg naming the trade's own parties
        and amounts counts as this trade; an id reused for other terms is left to the pre-check,
        which refuses it.
        """
        escrow, lock = await asyncio.gather(self.ledgers.escrow(trade.trade_id), self.ledgers.lock(trade.trade_id))
        evm_s, corda_s = str(escrow.get("status", "none")), str(lock.get("status", "none"))
        if evm_s == "none" and corda_s == "none":
            return None
        same_evm = evm_s == "none" or (
            int(escrow.get("quantity", -1)) == trade.st_quantity
            and str(escrow.get("seller", "")).removeprefix("0x") == trade.seller.evm.hex()
            and str(escrow.get("buyer", "")).removeprefix("0x") == trade.buyer.evm.hex())
        same_corda = corda_s == "none" or (
            int(lock.get("amount", -1)) == trade.sc_amount
            and str(lock.get("payer", "")) == trade.buyer.corda.hex()
            and str(lock.get("payee", "")) == trade.seller.corda.hex())
        if not (same_evm and same_corda):
            return None
        got = await self.status(trade.trade_id)
        if got.state == "settled":
            how = f"by Corda tx {str(lock.get('exit_txid', ''))[:16]}.. (EVM escrow {evm_s})"
        else:
            how = f"on the chains (EVM escrow {evm_s}, Corda lock {corda_s})"
        got.reasons = [f"trade_id: {trade.trade_id} is already {got.state} {how}"]
        return got

    def list(self) -> list[TradeRow]:
        return self.record.all() if self.record is not None else []

    # --- reclaim ---------------------------------------------------------------------------

    async def reclaim(self, trade_id: str, key: bytes, *, wait: bool = False, wait_s: float = 600.0) -> Settlement:
        """Return a still-locked ST escrow to its seller once the EVM clock reaches the deadline
        (``wait``: sleep until then). Anyone may sign; the ST always goes to the seller."""
        escrow = await self.ledgers.escrow(trade_id)
        if escrow.get("status") != "locked":
            raise DvpError(f"trade {trade_id}: the EVM escrow is {escrow.get('status')}, not locked")
        deadline_ns = int(escrow["deadline_ns"])
        limit = time.monotonic() + wait_s
        while (now := await self.ledgers.evm_time_ns()) < deadline_ns:
            if not wait or time.monotonic() > limit:
                raise DvpError(f"trade {trade_id}: the deadline is {(deadline_ns - now) / SEC_NS:.1f} s away on the "
                               "EVM chain's clock; reclaim is possible only after it")
            await asyncio.sleep(min(1.0, (deadline_ns - now) / SEC_NS))
        # The next block's time is at least the latest one's, so the deadline holds for it too.
        result = await self._evm_tx(key, [EvmCall(self.ledgers.escrow_address, "reclaim", (trade_id.encode(),))])
        if result.status != node_pb2.TX_STATUS_COMMITTED:
            raise DvpError(f"trade {trade_id}: reclaim failed: {result.reason}")
        got = await self.status(trade_id)
        self.events.emit(trade_id, "reclaimed", _payload(got.evm, got.corda, got.state))  # once, whoever handled it
        return got


def _sc_key(t: dvp_pb2.Terms) -> tuple[bytes, bytes, str]:
    """What an SC hold is counted against: the buyer's balance of one (issuer, brand)."""
    return bytes(t.buyer_corda), bytes(t.cash_issuer), t.sc_brand


def _ordered(reasons: list[str]) -> list[str]:
    """Reasons grouped by field, without repeats, so a report reads the same every time."""
    return sorted(dict.fromkeys(reasons), key=lambda r: r.split(":", 1)[0])


def _payload(escrow: dict[str, Any], lock: dict[str, Any], state: str) -> dict[str, Any]:
    return {"state": state, "evm_status": escrow.get("status"), "corda_status": lock.get("status"),
            "sequence": lock.get("sequence"), "channel": lock.get("channel_id"),
            "st_quantity": escrow.get("quantity"), "sc_amount": lock.get("amount"), "sc_brand": lock.get("brand"),
            "exit_txid": lock.get("exit_txid")}


def _salt() -> bytes:
    while True:
        salt = os.urandom(32)
        if any(salt):
            return salt


async def _wait_result(node: NodeClient, tx_hash: bytes, timeout_s: float = 60.0) -> node_pb2.TxResult:
    limit = time.monotonic() + timeout_s
    while True:
        result = await node.tx_result(tx_hash)
        if result.status in (node_pb2.TX_STATUS_COMMITTED, node_pb2.TX_STATUS_FAILED):
            return result
        if time.monotonic() > limit:
            raise DvpError(f"tx {tx_hash.hex()[:16]} has no result after {timeout_s:g} s")
        await asyncio.sleep(0.1)


__all__ = ["DvpClient", "DvpError", "LedgerError", "Settlement", "derive_state"]
