"""DvpClient bookkeeping against fake nodes: nonces in order, Cash inputs never shared, holds exact,
events once."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from chains.evm import Message as EvmCall
from chains.evm import decode_tx
from chains.node.client import NodeError
from kakehashi.node.v1 import node_pb2
from lightclients.crypto import keccak256
from relayer.dvp.client import DvpClient, DvpError, Holds
from relayer.dvp.events import DvpEvents
from relayer.dvp.ledgers import Ledgers
from relayer.ops.telemetry import Telemetry

KEY = bytes(range(1, 33))
ESCROW = b"\xee" * 20


class FakeEvm:
    """Accepts a tx only at the account's next nonce (as a pending queue would, in order)."""

    def __init__(self) -> None:
        self.nonce = 0
        self.sent: list[int] = []
        self.results: dict[bytes, node_pb2.TxResult] = {}

    async def query_app(self, query: str, height: int = 0, **args: Any) -> Any:
        assert query == "account"
        return {"nonce": self.nonce}

    async def submit(self, tx: bytes) -> bytes:
        decoded = decode_tx(tx)
        if decoded.nonce < self.nonce:
            raise NodeError("SubmitTx", grpc.StatusCode.INVALID_ARGUMENT,
                            f"transaction rejected: nonce {decoded.nonce} already used; next nonce is {self.nonce}")
        assert decoded.nonce == self.nonce, "nonces must arrive in order"
        self.nonce += 1
        self.sent.append(decoded.nonce)
        h = keccak256(tx)
        self.results[h] = node_pb2.TxResult(tx_hash=h, status=node_pb2.TX_STATUS_COMMITTED)
        return h

    async def tx_result(self, tx_hash: bytes) -> node_pb2.TxResult:
        await asyncio.sleep(0.01)
        return self.results[tx_hash]


class FakeWatch:
    """A chain head the test moves by hand; tx results come from the fake node."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.height = 1
        self.moved = asyncio.Event()

    async def wait_tx(self, tx_hash: bytes, timeout_s: float = 60.0) -> node_pb2.TxResult:
        res: node_pb2.TxResult = await self.node.tx_result(tx_hash)
        return res

    async def wait_landed(self, tx: bytes, tx_hash: bytes, timeout_s: float = 60.0) -> node_pb2.TxResult:
        return await self.wait_tx(tx_hash, timeout_s)  # resends are ChainWatch's (test_chain_watch_start.py)

    async def next_block(self, after: int, timeout_s: float | None = None) -> Any:
        while self.height <= after:
            self.moved.clear()
            await self.moved.wait()
        return None

    def advance(self) -> None:
        self.height += 1
        self.moved.set()

    @property
    def head(self) -> Any:
        from relayer.core.watch import Head

        return Head(self.height, 0)


class FakeLedgers(Ledgers):
    def __init__(self) -> None:
        super().__init__(FakeEvm(), None, {"evm_chain_id": 7, "security_token": "0x" + "00" * 20,  # type: ignore[arg-type]
                                           "dvp_escrow": "0x" + ESCROW.hex()},
                         {"notary_identity": "00" * 32, "issuer": "11" * 32})
        self.evm_watch = FakeWatch(self.evm)  # type: ignore[assignment]
        self.corda_watch = FakeWatch(None)  # type: ignore[assignment]
        self.cash: list[dict[str, Any]] = [{"txid": "aa" * 32, "index": 0, "issuer": "11" * 32, "amount": 100}]
        self.escrows: dict[str, dict[str, Any]] = {}
        self.locks: dict[str, dict[str, Any]] = {}

    async def cash_at(self, owner: bytes, max_stale: int = 0) -> tuple[list[dict[str, Any]], int]:
        return [dict(r) for r in self.cash], self.corda_watch.height  # type: ignore[attr-defined]

    async def escrow(self, trade_id: str) -> dict[str, Any]:
        return self.escrows.get(trade_id, {"status": "none"})

    async def lock(self, trade_id: str) -> dict[str, Any]:
        return self.locks.get(trade_id, {"status": "none"})


async def test_one_signers_txs_take_consecutive_nonces_and_resync_once() -> None:
    led = FakeLedgers()
    client = DvpClient(led)
    calls = [EvmCall(ESCROW, "reclaim", (b"T",))]
    results = await asyncio.gather(*(client._evm_tx(KEY, calls) for _ in range(5)))
    assert all(r.status == node_pb2.TX_STATUS_COMMITTED for r in results)
    evm: FakeEvm = led.evm  # type: ignore[assignment]
    assert evm.sent == [0, 1, 2, 3, 4]
    evm.nonce = 9  # another tool used this key meanwhile
    await client._evm_tx(KEY, calls)
    assert evm.sent[-1] == 9


async def test_two_locks_never_share_a_cash_input() -> None:
    led = FakeLedgers()
    client = DvpClient(led)
    buyer, issuer = b"\x22" * 32, b"\x11" * 32
    order: list[str] = []

    async def first() -> None:
        async with client._cash_inputs(buyer, (issuer, ""), 60) as inputs:
            order.append("first:" + bytes(inputs[0][0].txid).hex()[:2])
            await asyncio.sleep(0.05)
            led.cash = [{"txid": "bb" * 32, "index": 2, "issuer": "11" * 32, "amount": 40}]  # its change
            inputs.landed_at = led.corda_watch.height + 1  # type: ignore[attr-defined]
            led.corda_watch.advance()  # type: ignore[attr-defined]

    async def second() -> None:
        await asyncio.sleep(0.01)
        async with client._cash_inputs(buyer, (issuer, ""), 30) as inputs:
            order.append("second:" + bytes(inputs[0][0].txid).hex()[:2])

    await asyncio.gather(first(), second())
    assert order == ["first:aa", "second:bb"]
    with pytest.raises(DvpError, match="has only 40 SC"):
        async with client._cash_inputs(buyer, (issuer, ""), 41):
            pass


async def test_a_stale_view_short_of_cash_is_checked_at_the_head_before_refusing() -> None:
    """An advisory read may be a few blocks old; Cash that arrived since must not be refused
    (nor waited for block after block: waiting for the block after a stale height returns at
    once, which made every short waiter spin)."""
    led = FakeLedgers()
    reads: list[int] = []

    async def cash_at(owner: bytes, max_stale: int = 0) -> tuple[list[dict[str, Any]], int]:
        reads.append(max_stale)
        if max_stale:  # the view of two blocks ago: before the buyer was paid
            return [], led.corda_watch.height - 2  # type: ignore[attr-defined]
        return [dict(r) for r in led.cash], led.corda_watch.height  # type: ignore[attr-defined]

    led.cash_at = cash_at  # type: ignore[method-assign]
    client = DvpClient(led)
    async with client._cash_inputs(b"\x22" * 32, (b"\x11" * 32, ""), 100) as inputs:
        assert bytes(inputs[0][0].txid) == b"\xaa" * 32
    assert reads[0] > 0 and reads[-1] == 0 and len(reads) == 2


async def test_clients_sharing_the_corda_side_wait_for_each_others_change() -> None:
    """Two paths' clients (relayer/dvp/router.py) share one book of the buyer's Cash: a lock in
    flight on one path is change to come for the other, not "only 0 SC" (make run's hub phase
    refused every evm-2 trade while evm-1's locks held the buyer's Cash)."""
    led = FakeLedgers()
    one = DvpClient(led)
    other = DvpClient(led, share_corda_with=one)
    buyer, coin = b"\x22" * 32, (b"\x11" * 32, "")
    got: list[str] = []

    async def first() -> None:
        async with one._cash_inputs(buyer, coin, 60) as inputs:
            await asyncio.sleep(0.05)
            led.cash = [{"txid": "bb" * 32, "index": 2, "issuer": "11" * 32, "amount": 40}]  # its change
            inputs.landed_at = led.corda_watch.height + 1  # type: ignore[attr-defined]
            led.corda_watch.advance()  # type: ignore[attr-defined]

    async def second() -> None:
        await asyncio.sleep(0.01)
        async with other._cash_inputs(buyer, coin, 30) as inputs:
            got.append(bytes(inputs[0][0].txid).hex()[:2])

    await asyncio.wait_for(asyncio.gather(first(), second()), 5)
    assert got == ["bb"]


async def test_status_publishes_each_event_once_for_trades_it_handled() -> None:
    led = FakeLedgers()
    tel = Telemetry()
    client = DvpClient(led, events=DvpEvents(None, tel, None))
    client._locked_s["T-1"] = 0.0  # settled by this client (no record kept)
    led.escrows["T-1"] = {"status": "locked"}
    led.locks["T-1"] = {"status": "locked"}
    assert (await client.status("T-1")).state == "locked"
    led.escrows["T-1"] = {"status": "delivered"}
    led.locks["T-1"] = {"status": "settled"}
    got = await client.status("T-1")
    assert got.final and got.state == "settled" and got.latency_s is not None
    await client.status("T-1")
    assert client.events.seen["T-1"] == ["locked", "delivered", "settled"]
    assert tel.registry.get_sample_value("kakehashi_settlements_total", {"outcome": "settled"}) == 1
    assert tel.registry.get_sample_value("kakehashi_settlement_latency_seconds_count") == 1
    # a trade someone else settled is reported but not announced
    led.escrows["T-2"] = {"status": "delivered"}
    led.locks["T-2"] = {"status": "settled"}
    assert (await client.status("T-2")).state == "settled"
    assert "T-2" not in client.events.seen


def test_holds_count_only_what_the_read_height_does_not_show() -> None:
    holds = Holds(keep=2)
    holds.take("alice", "T1", 5)
    holds.take("alice", "T2", 3)
    assert holds.held("alice", 10) == 8  # nothing landed: both in flight
    holds.landed("alice", "T1", 12, head=12)
    # a balance read at 11 does not show T1's lock yet; one read at 12 or later does
    assert holds.held("alice", 11) == 8
    assert holds.held("alice", 12) == 3
    holds.release("alice", "T2")  # its lock failed: it takes nothing
    assert holds.held("alice", 11) == 5
    # once pruned, a read from before the landing height would count T1 twice: it is stale
    holds.prune("alice", head=15)
    assert holds.held("alice", 11) == 0
    assert not holds.fresh("alice", 11) and holds.fresh("alice", 12)


async def test_two_trades_cannot_both_pass_on_one_free_balance(monkeypatch: pytest.MonkeyPatch) -> None:
    """Balance reads answered at an old height still see every hold taken since."""
    from relayer.dvp.trade import parse_trade, resolve

    led = FakeLedgers()
    client = DvpClient(led)
    seller, buyer = b"\x01" * 20, b"\x22" * 32
    trade = parse_trade({"trade_id": "T-a", "st_quantity": 6, "sc_amount": 1,
                         "seller": {"evm": "0x" + seller.hex(), "corda": "33" * 32},
                         "buyer": {"evm": "0x" + "02" * 20, "corda": buyer.hex()}, "deadline_ns": 10**18})
    rt = resolve(trade, evm_now_ns=0, security_token=b"\x00" * 20, cash_issuer=b"\x11" * 32, channel="channel-0")

    async def st_holding_at(holder: bytes, max_stale: int = 0) -> tuple[int, bool, int]:
        return 10, True, 5  # 10 ST, read at height 5 (before any lock lands)

    async def sc_balance_at(owner: bytes, issuer: bytes, max_stale: int = 0, *, brand: str = "") -> tuple[int, int]:
        return 100, 5

    monkeypatch.setattr(led, "st_holding_at", st_holding_at)
    monkeypatch.setattr(led, "sc_balance_at", sc_balance_at)
    assert client._free_reasons(rt, *await client._read_balances(rt)) == []
    client._st_holds.take(seller, "T-a", 6)
    client._st_holds.landed(seller, "T-a", 7, head=7)  # landed above the read height: still held
    reasons = client._free_reasons(rt, *await client._read_balances(rt))
    assert reasons and "has 4 ST free" in reasons[0]
