"""The per-trade budget's parts: crypto counted wherever it is called, steps charged exclusively,
and a quick run whose table adds up, prices the crypto a settlement cannot skip and renders."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from bench import bench_budget, report
from bench.crypto_floor import (
    ED_KEY,
    ED_SIGN,
    ED_VERIFY,
    KECCAK,
    SECP_KEY,
    SECP_RECOVER,
    SECP_SIGN,
    SHA256,
    CryptoCounter,
    Tally,
    describe,
    floor_us,
    measure_bare,
)
from bench.meter import Meter
from chains.corda import merkle
from kakehashi.ics23.v1 import proofs_pb2
from lightclients import crypto, ics23


def test_counter_sees_every_call_site_and_restores_the_libraries() -> None:
    counter = CryptoCounter()
    sha = hashlib.sha256
    key, seed = crypto.keccak256(b"k"), crypto.sha256(b"s")
    with counter.counting() as tally:
        crypto.sha256(b"x" * 100)  # 2 blocks
        merkle.sha256(b"y")  # type: ignore[attr-defined]  # bound by name in another module
        ics23._fast_hash(proofs_pb2.SHA256)(b"z")  # hashlib called directly
        crypto.keccak256(b"w" * 136)  # 2 blocks
        digest = crypto.keccak256(b"m")
        sig = crypto.secp256k1_sign(key, digest)
        crypto.secp256k1_recover_address(digest, sig)  # + the address keccak
        esig = crypto.ed25519_sign(seed, b"msg")
        assert crypto.ed25519_verify(crypto.ed25519_public_key(seed), b"msg", esig)
    assert tally.calls[SHA256] == 3 and tally.units[SHA256] == 4
    assert tally.calls[KECCAK] == 3 and tally.units[KECCAK] == 4
    assert tally.calls[SECP_SIGN] == 1 and tally.calls[SECP_RECOVER] == 1
    assert tally.calls[SECP_KEY] == 1  # crypto.secp256k1_sign builds a key object per call
    assert tally.calls[ED_SIGN] == 1 and tally.calls[ED_VERIFY] == 1 and tally.units[ED_VERIFY] == 3
    assert tally.calls[ED_KEY] == 2  # ed25519_sign and ed25519_public_key each derive the key
    assert hashlib.sha256 is sha
    crypto.sha256(b"after")
    assert tally.calls[SHA256] == 3


def test_floor_prices_counts_by_size_and_leaves_key_derivation_out() -> None:
    costs = measure_bare(0.002)
    one = Tally()
    one.calls[KECCAK], one.units[KECCAK] = 1, 1
    big = Tally()
    big.calls[KECCAK], big.units[KECCAK] = 1, 30
    assert floor_us(big, costs) > floor_us(one, costs) > 0
    keys = Tally()
    keys.calls[SECP_KEY] = keys.calls[ED_KEY] = 5
    assert floor_us(keys, costs) == 0
    assert describe({SECP_RECOVER: 1, KECCAK: 31, SECP_KEY: 1}) == "1 secp recover + 31 keccak"
    assert describe({SECP_SIGN: 4 / 250}) == "0.016 secp sign"


def test_meter_charges_nested_steps_exclusively() -> None:
    counter = CryptoCounter()
    meter = Meter(counter)
    meter.enabled = True

    def spin(seconds: float) -> None:
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    with counter.counting(), meter.step("outer"):
        spin(0.02)
        crypto.sha256(b"outer")
        with meter.step("inner"):
            spin(0.04)
            crypto.keccak256(b"inner")
    assert 0.015 < meter.cpu["outer"] < 0.035
    assert 0.035 < meter.cpu["inner"] < 0.06
    assert +meter.tally["outer"].calls == {SHA256: 1}
    assert +meter.tally["inner"].calls == {KECCAK: 1}


@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    return bench_budget.run(quick=True)


def test_quick_budget_settles_and_adds_up(quick: dict[str, Any]) -> None:
    s = bench_budget.QUICK
    assert quick["settled_total"] == (s.history + s.timed + 1) * s.trades
    steps = quick["steps"]
    assert len({r["step"] for r in steps}) == len(steps) == len(bench_budget._rows(s))
    assert all(r["measured_us"] > 0 for r in steps)
    total = quick["total"]
    assert total["measured_us"] == pytest.approx(sum(r["measured_us"] for r in steps), abs=0.5)
    assert total["floor_us"] == pytest.approx(sum(r["floor_us"] for r in steps), abs=0.5)
    assert sum(quick["by_process_us"].values()) == pytest.approx(total["measured_us"], abs=1)


def test_quick_budget_floor_holds_what_a_settlement_cannot_skip(quick: dict[str, Any]) -> None:
    """Whatever the nodes are refactored into, the rows of each leg must together count the
    signatures that leg needs: the seller's recovered once, the buyer's made and checked,
    each block's seals / checkpoint signed, the proofs hashed."""
    def calls(*names: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in quick["steps"]:
            if any(r["step"].startswith(n) for n in names):
                for k, v in r["calls_per_trade"].items():
                    out[k] = out.get(k, 0.0) + v
        return out

    assert calls("client signs the EVM")[SECP_SIGN] == pytest.approx(1)
    assert calls("EVM admits the lock", "EVM executes the lock")[SECP_RECOVER] >= 1
    assert calls("client signs the Corda")[ED_SIGN] == pytest.approx(1)
    assert calls("Corda admits the lock", "Corda notarises")[ED_VERIFY] >= 1
    assert calls("Corda notarises")[ED_SIGN] > 0  # the notaries sign the lock tx
    assert calls("EVM per-block")[SECP_SIGN] > 0 and calls("Corda per-block")[ED_SIGN] > 0
    assert calls("EVM executes the recv")[SHA256] > 1  # the Corda multiproof and the packet commitment
    assert calls("Corda executes the acks")[KECCAK] > 1  # the EVM MPT multiproof
    for r in quick["steps"]:
        if r["floor_us"] > 0:
            assert r["overhead"] == pytest.approx(r["measured_us"] / r["floor_us"], rel=0.1, abs=0.1)


def test_report_renders_the_budget_table(quick: dict[str, Any], tmp_path: Path) -> None:
    doc = {"benchmark": "budget", "quick": True, "seconds": 1.0,
           "machine": {"cpus": 2, "python": "3"}, "results": quick}
    (tmp_path / "budget.json").write_text(json.dumps(doc))
    text = report.part_budget(tmp_path)
    assert "**total per trade**" in text
    assert text.count("\n|") == len(quick["steps"]) + 3  # header, separator, steps, total
