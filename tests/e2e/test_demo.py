"""`make run`'s demo (python -m relayer.testnet.demo): end to end on a fresh testnet, and its phase runner."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from relayer.testnet import demo, demo_dvp
from tests.conftest import ROOT


def _ctx(tmp_path: Path) -> demo.DemoContext:
    return demo.DemoContext(tmp_path, 1, Console(quiet=True))


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [demo._percentile(values, q) for q in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert demo._percentile([3.0], 99) == 3.0
    assert demo._percentile([], 50) is None


def test_a_failing_phase_stops_the_run_and_says_why(tmp_path: Path) -> None:
    seen: list[str] = []

    async def first(ctx: demo.DemoContext) -> None:
        seen.append("first")
        ctx.report["first"] = {"ok": True}

    async def broken(ctx: demo.DemoContext) -> None:
        raise RuntimeError("the chain is on fire")

    async def never(ctx: demo.DemoContext) -> None:
        seen.append("never")

    ctx = _ctx(tmp_path)
    assert asyncio.run(demo.run(ctx, [("first", first), ("broken", broken), ("never", never)])) is False
    assert seen == ["first"] and ctx.report == {"first": {"ok": True}}
    assert ctx.failures == ["phase broken: RuntimeError: the chain is on fire"]

    async def failed_check(ctx: demo.DemoContext) -> None:
        ctx.failures.append("supply check failed")

    ctx = _ctx(tmp_path)
    assert asyncio.run(demo.run(ctx, [("first", first), ("check", failed_check)])) is False
    assert asyncio.run(demo.run(_ctx(tmp_path), [("first", first)])) is True


def _accounts(tmp_path: Path) -> demo_dvp.Accounts:
    """Demo key files as the node homes hold them (hex secrets), for the pure DvP helpers."""
    for home, names in ((tmp_path / "evm", ("alice", "bob", "carol")),
                        (tmp_path / "corda", ("holder-firm-a", "holder-firm-b"))):
        (home / "keys").mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names, start=1):
            (home / "keys" / f"{name}.key").write_text(f"{i + 10 * (home.name == 'corda'):064x}\n")
    return demo_dvp.Accounts(tmp_path / "evm", tmp_path / "corda")


def test_dvp_plan_has_the_batch_then_one_trade_per_failure_kind(tmp_path: Path) -> None:
    acc = _accounts(tmp_path)
    trades = demo_dvp.plan_trades(acc, 3, "t1")
    assert [t.kind for t in trades] == ["ok"] * 3 + ["insufficient-sc", "buyer-delisted", "relayer-paused"]
    assert len({t.trade_id for t in trades}) == 6 and all(t.trade_id.startswith("demo-t1-") for t in trades)
    assert {t.buyer for t in trades} == {"bob", "carol"} and trades[4].buyer == "carol"
    assert trades[3].sc_amount > 10**6  # more than any firm's genesis cash
    paused = trades[5].doc
    assert paused["timeout_s"] < paused["deadline_s"] and "timeout_s" not in trades[4].doc
    assert all(t.doc["seller"]["evm"] == "0x" + acc.evm_address("alice").hex() for t in trades)
    assert [t.kind for t in demo_dvp.plan_trades(acc, 0, "t2")] == ["insufficient-sc", "buyer-delisted",
                                                                    "relayer-paused"]


def test_dvp_conservation_proof_catches_a_leak_and_a_stuck_escrow(tmp_path: Path) -> None:
    acc = _accounts(tmp_path)
    alice, bob, carol = ("0x" + acc.evm_address(n).hex() for n in ("alice", "bob", "carol"))
    firm_a, firm_b = (acc.corda_party(n).hex() for n in ("firm-a", "firm-b"))
    issuer = "ab" * 32
    trades = demo_dvp.plan_trades(acc, 1, "t")
    ok, _, delisted, _ = trades
    ok.evm_status, ok.corda_status = "delivered", "settled"

    def snap(st: dict[str, int], st_escrow: int, sc: dict[str, int], sc_escrow: int) -> demo_dvp.Snapshot:
        return demo_dvp.Snapshot(sum(st.values()) + st_escrow, st, st_escrow,
                                 {o: {issuer: v} for o, v in sc.items()}, {issuer: sc_escrow})

    before = snap({alice: 1000, bob: 500, carol: 0}, 0, {firm_a: 100_000, firm_b: 100_000}, 0)
    q, a = ok.st_quantity, ok.sc_amount
    after = snap({alice: 1000 - q, bob: 500 + q, carol: 0}, 0, {firm_a: 100_000 + a, firm_b: 100_000 - a}, 0)
    checks = demo_dvp.conservation(before, after, trades, acc, issuer, 200_000)
    assert checks and all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]

    # the seller paid twice: supply unchanged, but a party moved by more than the trades say
    leak = snap({alice: 1000 - 2 * q, bob: 500 + 2 * q, carol: 0}, 0, {firm_a: 100_000 + a, firm_b: 100_000 - a}, 0)
    bad = {c["check"] for c in demo_dvp.conservation(before, leak, trades, acc, issuer, 200_000) if not c["ok"]}
    assert bad == {"EVM: seller alice's ST down by the settled quantity (+ still locked)",
                   "EVM: buyer bob's ST up by their settled quantity"}
    # ST left in escrow although no trade of this run is still locked; SC minted from nowhere
    stuck = snap({alice: 1000 - q - 7, bob: 500 + q, carol: 0}, 7, {firm_a: 100_000 + a, firm_b: 100_001 - a}, 0)
    bad = {c["check"] for c in demo_dvp.conservation(before, stuck, trades, acc, issuer, 200_000) if not c["ok"]}
    assert "EVM: ST escrow moved by what this run still has locked" in bad
    assert any(c.startswith("Corda: SC of issuer") for c in bad)
    assert "Corda: buyer firm-b's SC down by the settled amount (+ still locked)" in bad
    # ... unless a trade of this run is in fact still locked there
    delisted.evm_status = "locked"
    held = snap({alice: 1000 - q - 7, bob: 500 + q, carol: 0}, 7, {firm_a: 100_000 + a, firm_b: 100_000 - a}, 0)
    assert all(c["ok"] for c in demo_dvp.conservation(before, held, trades, acc, issuer, 200_000))


@pytest.mark.slow
def test_demo_end_to_end_on_a_fresh_testnet(tmp_path: Path) -> None:
    home = tmp_path / "tn"
    out = subprocess.run([sys.executable, "-m", "relayer.testnet.demo", "--transfers", "3", "--trades", "3", "--st-chains", "1", "--home",
                          str(home), "--down", "--json"], capture_output=True, text=True, timeout=400, cwd=ROOT)
    try:
        assert out.returncode == 0, out.stderr[-4000:]
        report = json.loads(out.stdout)
        assert report["ok"] is True and report["failures"] == []
        for direction, denom in (("evm -> corda", "stake"), ("corda -> evm", "jpy")):
            r = report["transfers"][direction]
            assert (r["sent"], r["received"], r["acked"], r["failed_acks"]) == (3, 3, 3, 0), r
            assert r["denom"] == denom and r["voucher"] == f"transfer/channel-0/{denom}"
            lat = r["latency_s"]
            assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        checks = report["supply"]
        assert len(checks) == 8 and all(c["ok"] and c["got"] == c["want"] for c in checks)
        escrows = [c for c in checks if "escrow" in c["check"]]
        assert [c["got"] for c in escrows] == [3 * demo.AMOUNT, 3 * demo.AMOUNT]  # a fresh testnet
        _check_dvp_report(report["dvp"])
        assert "testnet stopped: relayer, evm, corda" in out.stderr
        st = subprocess.run([str(ROOT / ".venv" / "bin" / "kakehashi"), "testnet", "status", "--home", str(home),
                             "--json"], capture_output=True, text=True, timeout=60)
        doc = json.loads(st.stdout)
        assert all(n["pid"] is None for n in doc["nodes"]) and doc["relayer"]["pid"] is None
        # every demo trade, the hand-locked failures included, is in the record `dvp list -c` reads
        listed = subprocess.run([str(ROOT / ".venv" / "bin" / "kakehashi"), "dvp", "list", "-c",
                                 str(home / "relayer" / "relayer.toml"), "--json"],
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        rows = {r["trade_id"]: r["state"] for r in json.loads(listed.stdout)}
        assert rows == {t["trade_id"]: t["state"] for t in report["dvp"]["trades"]}, rows
    finally:
        subprocess.run([str(ROOT / ".venv" / "bin" / "kakehashi"), "testnet", "down", "--home", str(home)],
                       capture_output=True, timeout=60)


def _check_dvp_report(dvp: dict[str, Any]) -> None:
    """Three trades settled and each failure kind refunded, as read back from both chains."""
    trades = {t["kind"]: t for t in dvp["trades"] if t["kind"] != "ok"}
    oks = [t for t in dvp["trades"] if t["kind"] == "ok"]
    assert len(oks) == 3 and all((t["evm_status"], t["corda_status"], t["state"]) == ("delivered", "settled", "settled")
                                 for t in oks), oks
    assert (trades["insufficient-sc"]["evm_status"], trades["insufficient-sc"]["corda_status"],
            trades["insufficient-sc"]["state"]) == ("none", "none", "rejected")
    assert any("SC" in r and "free" in r for r in trades["insufficient-sc"]["reasons"])
    assert (trades["buyer-delisted"]["evm_status"], trades["buyer-delisted"]["corda_status"]) == \
        ("reclaimed", "refunded_error")
    assert any("refused" in s for s in trades["buyer-delisted"]["steps"])  # no reclaim before the deadline
    assert (trades["relayer-paused"]["evm_status"], trades["relayer-paused"]["corda_status"]) == \
        ("reclaimed", "refunded_timeout")
    assert all(t["ok"] for t in dvp["trades"])
    assert dvp["counts"] == {"total": 6, "ok_planned": 3, "settled": 3, "rejected": 1, "reclaimed": 2,
                             "refunded_error": 1, "refunded_timeout": 1, "as_expected": 6}
    lat = dvp["latency_s"]
    assert lat["n"] == 3 and 0 < lat["p50"] <= lat["p99"] == lat["max"]
    sent = sum(t["st_quantity"] for t in oks)
    paid = sum(t["sc_amount"] for t in oks)
    checks = {c["check"]: c for c in dvp["conservation"]}
    assert all(c["ok"] and c["got"] == c["want"] for c in checks.values())
    assert checks["EVM: ST escrow balance at the end"]["got"] == 0  # a fresh testnet: nothing left locked
    assert checks["EVM: ST total supply unchanged"]["got"] == 1_500_000
    assert checks["Corda: SC of the demo issuer over holders + escrow == genesis issue"]["got"] == 3_000_000
    assert checks["EVM: seller alice's ST down by the settled quantity (+ still locked)"]["got"] == sent == 10 + 11 + 12
    assert checks["Corda: seller firm-a's SC up by the settled amount"]["got"] == paid == sent * demo_dvp.PRICE
