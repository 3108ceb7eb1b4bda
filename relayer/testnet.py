"""`kakehashi testnet up|down|status`: a local two-chain testnet as child processes.

Each chain is a real node process (`kakehashi node start`) in its own home under the
testnet directory, started in its own session so it outlives the command that launched it
and can be stopped as a group. Its PID goes to ``node.pid`` and its bound address to
``node.addr`` (written by the node once it serves), so `down` stops exactly the processes
`up` started — checked against the PID file's start time — and nothing else. Data persists
between runs: `up` on an existing testnet restarts the nodes where they stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chains.node.client import NodeClient, NodeError, RetryPolicy

CHAINS = (("evm", "evm-1"), ("corda", "corda-1"))


class TestnetError(RuntimeError):
    """The testnet could not be brought up or down; the message says which node and why."""


@dataclass(frozen=True)
class NodeInfo:
    kind: str
    chain_id: str
    home: Path
    pid: int | None
    address: str | None
    height: int | None


def _kakehashi() -> list[str]:
    exe = Path(sys.executable).with_name("kakehashi")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "relayer.cli"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


def _read_pid(home: Path) -> int | None:
    try:
        pid = int((home / "node.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) and _is_our_node(pid, home) else None


def _is_our_node(pid: int, home: Path) -> bool:
    """Only a `kakehashi node start --home HOME` process counts, never a recycled PID."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"start" in cmdline and str(home).encode() in cmdline


def _height(address: str, timeout_s: float = 2.0) -> int | None:
    async def query() -> int | None:
        async with NodeClient(address, retry=RetryPolicy(attempts=1, timeout_s=timeout_s)) as client:
            try:
                return int((await client.status()).latest_height)
            except NodeError:
                return None

    return asyncio.run(query())


def node_info(root: Path, kind: str, chain_id: str) -> NodeInfo:
    home = root / kind
    pid = _read_pid(home)
    address = None
    if pid is not None:
        with contextlib.suppress(OSError):
            address = (home / "node.addr").read_text().strip() or None
    height = _height(address) if address else None
    return NodeInfo(kind, chain_id, home, pid, address, height)


def up(root: Path, *, validators: int = 4, block_period: str = "1s", wait_s: float = 60.0) -> list[NodeInfo]:
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    started: list[tuple[str, str, subprocess.Popen[bytes]]] = []
    for kind, chain_id in CHAINS:
        home = root / kind
        if not (home / "node.toml").exists():
            res = subprocess.run(
                [*_kakehashi(), "node", "init", "--chain", kind, "--home", str(home), "--chain-id", chain_id,
                 "--validators", str(validators), "--block-period", block_period, "--json"],
                capture_output=True, text=True, timeout=120,
            )
            if res.returncode != 0:
                raise TestnetError(f"{kind}: node init failed: {res.stderr.strip()}")
        if _read_pid(home) is not None:
            continue  # already running
        (home / "node.addr").unlink(missing_ok=True)
        log = open(home / "node.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [*_kakehashi(), "node", "start", "--home", str(home), "--log-format", "json"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        (home / "node.pid").write_text(f"{proc.pid}\n")
        started.append((kind, chain_id, proc))
    deadline = time.monotonic() + wait_s
    for kind, _chain_id, proc in started:
        home = root / kind
        while not (home / "node.addr").exists():
            if proc.poll() is not None:
                raise TestnetError(f"{kind}: node exited with status {proc.returncode}; see {home / 'node.log'}")
            if time.monotonic() > deadline:
                raise TestnetError(f"{kind}: node did not start serving within {wait_s:.0f}s; see {home / 'node.log'}")
            time.sleep(0.05)
    return [node_info(root, kind, chain_id) for kind, chain_id in CHAINS]


def down(root: Path, *, wait_s: float = 20.0) -> list[str]:
    """Stop the testnet's nodes (SIGTERM, then SIGKILL after ``wait_s``); returns what was stopped."""
    root = Path(root).resolve()
    stopped = []
    for kind, _ in CHAINS:
        home = root / kind
        pid = _read_pid(home)
        if pid is None:
            (home / "node.pid").unlink(missing_ok=True)
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while _alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        (home / "node.pid").unlink(missing_ok=True)
        stopped.append(kind)
    return stopped


def status(root: Path) -> list[NodeInfo]:
    root = Path(root).resolve()
    return [node_info(root, kind, chain_id) for kind, chain_id in CHAINS]
