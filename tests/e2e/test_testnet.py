"""`kakehashi testnet up|status|down` as a user runs it: real node processes, stopped by PID,
data kept between runs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT

EXE = str(ROOT / ".venv" / "bin" / "kakehashi")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120)


def test_up_status_down_and_restart_keeps_data(tmp_path: Path) -> None:
    home = tmp_path / "tn"
    pids: list[int] = []
    try:
        up = run("testnet", "up", "--home", str(home), "--block-period", "200ms", "--json")
        assert up.returncode == 0, up.stderr
        nodes = json.loads(up.stdout)
        assert [n["kind"] for n in nodes] == ["evm", "corda"]
        assert all(n["grpc"] and n["pid"] for n in nodes)
        pids = [n["pid"] for n in nodes]
        again = json.loads(run("testnet", "up", "--home", str(home), "--json").stdout)
        assert [n["pid"] for n in again] == pids  # already running: not started twice
        st = json.loads(run("testnet", "status", "--home", str(home), "--json").stdout)
        assert all(n["height"] is not None and n["height"] >= 1 for n in st)
        heights = [n["height"] for n in st]
        down = run("testnet", "down", "--home", str(home), "--json")
        assert json.loads(down.stdout) == {"stopped": ["evm", "corda"]}
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        assert all(n["pid"] is None for n in json.loads(run("testnet", "status", "--home", str(home), "--json").stdout))
        up2 = json.loads(run("testnet", "up", "--home", str(home), "--json").stdout)
        pids = [n["pid"] for n in up2]
        st2 = json.loads(run("testnet", "status", "--home", str(home), "--json").stdout)
        assert all(n2["height"] >= h for n2, h in zip(st2, heights, strict=True))  # data persisted
    finally:
        run("testnet", "down", "--home", str(home))
        for pid in pids:  # belt and braces: never leave our nodes behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
