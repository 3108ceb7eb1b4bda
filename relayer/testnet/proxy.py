"""The testnet's proxy process (`kakehashi testnet up --prover proxy`): one proxy service beside
the nodes and the relayer, in ``HOME/proxy``, hosting the clients of both chains.

It is started like the nodes (own session, PID file with start time, log in its home) and
keeps its port across restarts (chosen once by ``proxy init``), so a proxy restarted after
a crash is found at the same address by the running relayer and carries on from its sealed
keys without a new registration while they are valid.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from relayer.testnet.procs import TestnetError, kakehashi_argv, read_pid, spawn

PROXY_DIR = "proxy"
# Testnet key lifetime: long enough that a demo never sees a rotation, short enough that a
# testnet left running for days does (the relayer renews a third of the way before expiry).
KEY_EXPIRATION = "1d"


@dataclass(frozen=True)
class ProxyProcInfo:
    home: Path
    pid: int | None
    address: str | None
    code_hash: str | None
    operator: str | None
    authority: str | None
    log: Path


def proxy_home(root: Path) -> Path:
    return Path(root).resolve() / PROXY_DIR


def _public(home: Path) -> dict[str, str]:
    try:
        doc = json.loads((home / "proxy.json").read_text())
        return {k: str(doc[k]) for k in ("code_hash", "operator", "authority", "listen")}
    except (OSError, ValueError, KeyError):
        return {}


def proxy_pid_file(root: Path) -> Path:
    return proxy_home(root) / "proxy.pid"


def proxy_pid(root: Path) -> int | None:
    return read_pid(proxy_pid_file(root), proxy_home(root))


def proxy_info(root: Path) -> ProxyProcInfo | None:
    home = proxy_home(root)
    if not (home / "proxy.toml").exists():
        return None
    pid = proxy_pid(root)
    pub = _public(home)
    address = None
    if pid is not None:
        try:
            address = (home / "proxy.addr").read_text().strip() or None
        except OSError:
            address = None
    return ProxyProcInfo(home, pid, address, pub.get("code_hash"), pub.get("operator"), pub.get("authority"),
                         home / "proxy.log")


def up_proxy(root: Path, wait_s: float, configure: Callable[[Path], None] | None = None) -> tuple[ProxyProcInfo, bool]:
    """Initialise (first time) and start the proxy unless it runs; (info, started now).
    ``configure`` edits the proxy's home before it starts (TLS: relayer/testnet/tls.py)."""
    home = proxy_home(root)
    if not (home / "proxy.toml").exists():
        res = subprocess.run([*kakehashi_argv(), "proxy", "init", "--home", str(home), "--json"], capture_output=True,
                             text=True, timeout=60)
        if res.returncode != 0:
            raise TestnetError(f"proxy: init failed: {res.stderr.strip()}")
    if configure is not None:
        configure(home)
    started = False
    if proxy_pid(root) is None:
        (home / "proxy.addr").unlink(missing_ok=True)
        proc = spawn([*kakehashi_argv(), "proxy", "start", "--home", str(home), "--log-format", "json"],
                      home / "proxy.log", proxy_pid_file(root))
        started = True
        deadline = time.monotonic() + wait_s
        while not (home / "proxy.addr").exists():
            if proc.poll() is not None:
                raise TestnetError(f"proxy exited with status {proc.returncode}; see {home / 'proxy.log'}")
            if time.monotonic() > deadline:
                raise TestnetError(f"proxy did not start serving within {wait_s:.0f}s; see {home / 'proxy.log'}")
            time.sleep(0.05)
    info = proxy_info(root)
    if info is None or info.address is None or info.code_hash is None:
        raise TestnetError(f"proxy is not serving; see {home / 'proxy.log'}")
    return info, started


def chain_section(info: ProxyProcInfo) -> str:
    """The relayer-config lines that put one [[chains]] entry in proxy mode."""
    return f"""prover = "proxy"
[chains.proxy]
addr = "{info.address}"
code_hash = "{info.code_hash}"
authority = "{info.authority}"
operators = ["{info.operator}"]
threshold = 1
key_expiration = "{KEY_EXPIRATION}"
allow_simulated = true  # the testnet's enclave and attestation authority are SIMULATED
"""
