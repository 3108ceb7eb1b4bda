"""Settlement-client logic that needs no chain: state derivation, events, keys, the feed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from relayer.dvp.client import Settlement, _events_for, derive_state
from relayer.dvp.events import DvpEvents, DvpPublisher, dvp_topic
from relayer.dvp.feed import lines_of, run_feed
from relayer.dvp.keys import KeyMaterialError, KeyRing
from relayer.dvp.record import TradeRecord
from relayer.dvp.trade import Trade
from relayer.ops.keystore import Keystore
from relayer.ops.telemetry import Telemetry


@pytest.mark.parametrize(("evm", "corda", "state", "events"), [
    ("none", "none", "none", []),
    ("locked", "none", "evm-locked", []),
    ("none", "locked", "corda-locked", []),
    ("locked", "locked", "locked", ["locked"]),
    ("delivered", "locked", "delivered", ["locked", "delivered"]),
    ("delivered", "settled", "settled", ["locked", "delivered", "settled"]),
    ("locked", "refunded_error", "refunded-error", ["locked", "refunded-error"]),
    ("reclaimed", "refunded_error", "reclaimed", ["locked", "refunded-error", "reclaimed"]),
    ("locked", "refunded_timeout", "refunded-timeout", ["locked", "refunded-timeout"]),
    ("reclaimed", "refunded_timeout", "reclaimed", ["locked", "refunded-timeout", "reclaimed"]),
    ("reclaimed", "none", "reclaimed", ["reclaimed"]),
])
def test_state_and_events_follow_both_chains(evm: str, corda: str, state: str, events: list[str]) -> None:
    assert derive_state(evm, corda) == state
    assert _events_for(evm, corda) == events
    assert Settlement("T", state).final == (state in ("settled", "refunded-error", "refunded-timeout", "reclaimed"))


def _metric(tel: Telemetry, name: str, **labels: str) -> float:
    value = tel.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_events_go_out_once_per_trade_with_metrics(tmp_path: Path) -> None:
    record = TradeRecord(tmp_path / "dvp.sqlite")
    pub = DvpPublisher("127.0.0.1", 1, prefix="kh")  # never started: events stay queued
    tel = Telemetry()
    events = DvpEvents(pub, tel, record)
    try:
        record.create("T-1", "locking")
        assert events.emit("T-1", "locked", {"state": "locked"})
        assert not events.emit("T-1", "locked", {"state": "locked"})
        assert events.emit("T-1", "settled", {"state": "settled"}, latency_s=2.5)
        assert events.emit("T-2", "refunded-timeout", {}, latency_s=1.0)  # not in the record: memory only
        assert not events.emit("T-2", "refunded-timeout", {})
        with pytest.raises(ValueError, match="unknown DvP event"):
            events.emit("T-1", "paid", {})
        queued = list(pub._queue)
        assert [t for t, _ in queued] == ["kh/dvp/T-1/locked", "kh/dvp/T-1/settled", "kh/dvp/T-2/refunded-timeout"]
        body = json.loads(queued[1][1])
        assert body["event"] == "settled" and body["trade_id"] == "T-1" and body["state"] == "settled"
        assert _metric(tel, "kakehashi_settlements_total", outcome="settled") == 1
        assert _metric(tel, "kakehashi_settlements_total", outcome="refunded-timeout") == 1
        assert _metric(tel, "kakehashi_settlement_latency_seconds_count") == 2
        assert _metric(tel, "kakehashi_settlement_latency_seconds_sum") == pytest.approx(3.5)
        row = record.get("T-1")
        assert row is not None and row.published == ["locked", "settled"]
    finally:
        record.close()
    with pytest.raises(ValueError, match="topic level"):
        dvp_topic("kh", "a/b", "locked")


def test_keyring_finds_keys_by_the_identity_a_trade_names(tmp_path: Path) -> None:
    evm_key, corda_seed = bytes(range(1, 33)), bytes(range(2, 34))
    (tmp_path / "alice.key").write_text(evm_key.hex() + "\n")
    (tmp_path / "holder-firm-a.key").write_text("0x" + corda_seed.hex())
    (tmp_path / "notes.txt").write_text("not a key")
    ring = KeyRing()
    ring.add_spec(str(tmp_path))
    assert ring.evm(eth_address(secp256k1_public_key(evm_key))) == evm_key
    assert ring.corda(ed25519_public_key(corda_seed)) == corda_seed
    assert ring.any_evm() in (evm_key, corda_seed)
    with pytest.raises(KeyMaterialError, match="no key for EVM account 0x0000"):
        ring.evm(bytes(20))
    with pytest.raises(KeyMaterialError, match="no key for Corda party"):
        ring.corda(bytes(32))
    (tmp_path / "short.key").write_text("abcd")
    with pytest.raises(KeyMaterialError, match="32-byte"):
        ring.add_file(tmp_path / "short.key")
    with pytest.raises(KeyMaterialError, match="no keystore"):
        ring.add_spec("keystore:alice")
    with pytest.raises(KeyMaterialError, match="expected hex"):
        (tmp_path / "nothex.key").write_text("zz")
        ring.add_file(tmp_path / "nothex.key")
    with pytest.raises(KeyMaterialError, match="no EVM key"):
        KeyRing().any_evm()
    store = Keystore(tmp_path / "ks", scrypt_n=2**4)
    store.add("seller", "secp256k1", "passphrase!", evm_key)
    ring = KeyRing()
    ring.add_spec("keystore:seller", store, "passphrase!")
    assert ring.evm(eth_address(secp256k1_public_key(evm_key))) == evm_key
    with pytest.raises(KeyMaterialError, match="passphrase"):
        ring.add_spec("keystore:seller", store, "wrong passphrase")


class StubClient:
    """Settles instantly or after a pause; tracks how many settlements run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.seen: list[str] = []

    async def settle(self, trade: Trade, seller: bytes, buyer: bytes, *, wait_s: float | None = None) -> Settlement:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.seen.append(trade.trade_id)
        await asyncio.sleep(0.02)
        self.running -= 1
        state = "rejected" if trade.st_quantity > 100 else "settled"
        return Settlement(trade.trade_id, state, reasons=["seller.evm: short"] if state == "rejected" else [],
                          latency_s=0.5)


async def test_the_feed_settles_each_trade_with_bounded_concurrency(tmp_path: Path) -> None:
    seller, buyer = bytes(range(1, 33)), bytes(range(2, 34))
    ring = KeyRing()
    ring.add(seller)
    ring.add(buyer)

    def trade(i: int, qty: int = 5) -> dict[str, Any]:
        return {"trade_id": f"F-{i}", "st_quantity": qty, "sc_amount": 10,
                "seller": {"evm": "0x" + eth_address(secp256k1_public_key(seller)).hex(), "corda": "aa" * 32},
                "buyer": {"evm": "0x" + "22" * 20, "corda": ed25519_public_key(buyer).hex()}, "deadline_s": 60}

    lines = [json.dumps(trade(i)) for i in range(7)] + [json.dumps(trade(7, qty=1000)), "{oops", "",
                                                        json.dumps({**trade(8), "buyer_name": "x"}),
                                                        json.dumps({**trade(9), "seller": {"evm": "0x" + "33" * 20,
                                                                                           "corda": "aa" * 32}})]
    path = tmp_path / "trades.jsonl"
    path.write_text("\n".join(lines) + "\n")
    stub = StubClient()
    done: list[str] = []
    report = await run_feed(stub, lines_of(path), ring, concurrency=3,  # type: ignore[arg-type]
                            on_result=lambda s: done.append(s.state))
    doc = report.to_json()
    assert doc["received"] == 11 and doc["invalid"] == 3
    assert doc["outcomes"] == {"settled": 7, "rejected": 1, "invalid": 3}
    assert 1 < stub.peak <= 3
    assert sorted(stub.seen) == sorted([f"F-{i}" for i in range(8)])
    assert doc["latency_p50_s"] == 0.5 and len(done) == 8
    with pytest.raises(ValueError, match="concurrency"):
        await run_feed(stub, _empty(), ring, concurrency=0)  # type: ignore[arg-type]


async def _empty() -> AsyncIterator[bytes]:
    if False:
        yield b""


async def test_a_stopped_feed_takes_no_more_trades_and_finishes_those_in_flight() -> None:
    seller, buyer = bytes(range(1, 33)), bytes(range(2, 34))
    ring = KeyRing()
    ring.add(seller)
    ring.add(buyer)
    stop = asyncio.Event()
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 1
            if sent == 4:
                stop.set()
                await asyncio.sleep(3600)  # a quiet broker: the stop must not wait for it
            yield json.dumps({
                "trade_id": f"S-{sent}", "st_quantity": 1, "sc_amount": 1, "deadline_s": 60,
                "seller": {"evm": "0x" + eth_address(secp256k1_public_key(seller)).hex(), "corda": "aa" * 32},
                "buyer": {"evm": "0x" + "22" * 20, "corda": ed25519_public_key(buyer).hex()}}).encode()

    stub = StubClient()
    report = await asyncio.wait_for(run_feed(stub, endless(), ring, concurrency=2, stop=stop), 5)  # type: ignore[arg-type]
    assert report.received == 3 and report.outcomes == {"settled": 3}
    assert stub.running == 0
