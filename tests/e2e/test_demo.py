"""`make run`'s demo (python -m relayer.demo): end to end on a fresh testnet, and its phase runner."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from relayer import demo
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


@pytest.mark.slow
def test_demo_end_to_end_on_a_fresh_testnet(tmp_path: Path) -> None:
    home = tmp_path / "tn"
    out = subprocess.run([sys.executable, "-m", "relayer.demo", "--transfers", "3", "--home", str(home), "--down",
                          "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
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
        assert "testnet stopped: relayer, evm, corda" in out.stderr
        st = subprocess.run([str(ROOT / ".venv" / "bin" / "kakehashi"), "testnet", "status", "--home", str(home),
                             "--json"], capture_output=True, text=True, timeout=60)
        doc = json.loads(st.stdout)
        assert all(n["pid"] is None for n in doc["nodes"]) and doc["relayer"]["pid"] is None
    finally:
        subprocess.run([str(ROOT / ".venv" / "bin" / "kakehashi"), "testnet", "down", "--home", str(home)],
                       capture_output=True, timeout=60)
