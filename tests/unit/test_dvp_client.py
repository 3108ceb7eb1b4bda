"""DvpClient bookkeeping against fake nodes: nonces in order, Cash inputs never shared, events once."""

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
from relayer.dvp.client import DvpClient, DvpError
from relayer.dvp.events import DvpEvents
from relayer.dvp.ledgers import Ledgers
from relayer.telemetry import Telemetry

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


class FakeLedgers(Ledgers):
    def __init__(self) -> None:
        super().__init__(FakeEvm(), None, {"evm_chain_id": 7, "security_token": "0x" + "00" * 20,  # type: ignore[arg-type]
                                           "dvp_escrow": "0x" + ESCROW.hex()},
                         {"notary_identity": "00" * 32, "issuer": "11" * 32})
        self.cash: list[dict[str, Any]] = [{"txid": "aa" * 32, "index": 0, "issuer": "11" * 32, "amount": 100}]
        self.escrows: dict[str, dict[str, Any]] = {}
        self.locks: dict[str, dict[str, Any]] = {}

    async def cash_of(self, owner: bytes) -> list[dict[str, Any]]:
        return [dict(r) for r in self.cash]

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
        async with client._cash_inputs(buyer, issuer, 60) as inputs:
            order.append("first:" + bytes(inputs[0][0].txid).hex()[:2])
            await asyncio.sleep(0.05)
            led.cash = [{"txid": "bb" * 32, "index": 2, "issuer": "11" * 32, "amount": 40}]  # its change

    async def second() -> None:
        await asyncio.sleep(0.01)
        async with client._cash_inputs(buyer, issuer, 30) as inputs:
            order.append("second:" + bytes(inputs[0][0].txid).hex()[:2])

    await asyncio.gather(first(), second())
    assert order == ["first:aa", "second:bb"]
    with pytest.raises(DvpError, match="has only 40 SC"):
        async with client._cash_inputs(buyer, issuer, 41):
            pass


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
