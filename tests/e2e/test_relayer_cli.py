"""The operator's view: the installed ``kakehashi`` console script against two real nodes.

Everything goes through subprocesses of .venv/bin/kakehashi, as an operator would type it:
config validate, health-check, create connection + channel, tx transfer, query packet
pending, then ``kakehashi start`` relays the packet; its /metrics shows it, SIGTERM stops it
with status 0. Balances are read from the Corda node (QueryApp), never from the relayer.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chains.corda.ibc_host import account_of
from chains.node.client import NodeClient
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent / "kakehashi"
PASSPHRASE = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_node(tmp: Path, kind: str, period: str, procs: list[subprocess.Popen[bytes]]) -> tuple[Path, str]:
    home = tmp / kind
    subprocess.run([str(BIN), "node", "init", "--chain", kind, "--home", str(home), "--validators", "4",
                    "--chain-id", f"{kind}-cli", "--block-period", period], check=True, capture_output=True, timeout=60)
    with (home / "node.log").open("ab") as log:
        procs.append(subprocess.Popen([str(BIN), "node", "start", "--home", str(home), "--grpc", "127.0.0.1:0"],
                                      stdout=log, stderr=subprocess.STDOUT))
    addr_file = home / "node.addr"
    deadline = time.monotonic() + 30
    while not (addr_file.exists() and addr_file.read_text().strip()):
        assert procs[-1].poll() is None and time.monotonic() < deadline, (home / "node.log").read_text()[-3000:]
        time.sleep(0.05)
    return home, addr_file.read_text().strip()


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return int(proc.returncode)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            _stop(proc)


def _env() -> dict[str, str]:
    return {**os.environ, "KAKEHASHI_KEYSTORE_PASSPHRASE": PASSPHRASE}


def kh(*args: str, check: bool = True, timeout: float = 100) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout, env=_env())
    if check:
        assert out.returncode == 0, f"kakehashi {' '.join(args)}: {out.stderr[-2000:]}"
    return out


def kj(*args: str) -> Any:
    return json.loads(kh(*args, "--json").stdout)


def _config(path: Path, evm_addr: str, corda_addr: str, metrics_port: int) -> None:
    path.write_text(f"""
[global]
log_level = "info"
log_format = "json"
keystore = "keys"

[mode.packets]
clear_interval = 5

[telemetry]
enabled = true
host = "127.0.0.1"
port = {metrics_port}

[[chains]]
id = "evm-cli"
kind = "evm"
grpc_addr = "{evm_addr}"
key_name = "carol"
max_clock_drift = "30s"

[[chains]]
id = "corda-cli"
kind = "corda"
grpc_addr = "{corda_addr}"
key_name = "holder-firm-c"
max_clock_drift = "30s"
""")


def _balance(addr: str, account: str, denom: str) -> int:
    async def ask() -> int:
        async with NodeClient(addr) as node:
            return int((await node.query_app("bank_balance", account=account, denom=denom))["amount"])
    return asyncio.run(ask())


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_cli_creates_a_path_sends_and_the_daemon_relays(tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    evm_home, evm_addr = _start_node(tmp_path, "evm", "1s", procs)
    corda_home, corda_addr = _start_node(tmp_path, "corda", "200ms", procs)
    cfg = tmp_path / "relayer.toml"
    metrics_port = _free_port()
    _config(cfg, evm_addr, corda_addr, metrics_port)
    for name, kind, home in (("carol", "evm", evm_home), ("alice", "evm", evm_home),
                             ("holder-firm-c", "corda", corda_home), ("holder-firm-b", "corda", corda_home)):
        kh("keys", "add", name, "--kind", kind, "--private-key-file", str(home / "keys" / f"{name}.key"),
           "-c", str(cfg))

    assert kj("config", "validate", "-c", str(cfg))["chains"] == ["evm-cli", "corda-cli"]
    deadline = time.monotonic() + 20
    while True:
        health = kh("health-check", "-c", str(cfg), "--json", check=False)
        rows = json.loads(health.stdout.splitlines()[0] if health.returncode else health.stdout)
        if health.returncode == 0 and all(r["height"] >= 2 for r in rows):
            break
        assert time.monotonic() < deadline, health.stdout + health.stderr
        time.sleep(0.5)

    conn = kj("create", "connection", "-c", str(cfg), "--a-chain", "evm-cli", "--b-chain", "corda-cli")
    assert conn["a_connection"].startswith("connection-") and conn["b_connection"].startswith("connection-")
    assert kj("query", "connection", "-c", str(cfg), "--chain", "corda-cli",
              "--connection", conn["b_connection"])["state"] == "OPEN"
    chan = kj("create", "channel", "-c", str(cfg), "--a-chain", "evm-cli", "--a-connection", conn["a_connection"],
              "--a-port", "transfer", "--b-port", "transfer")
    queried = kj("query", "channel", "-c", str(cfg), "--chain", "corda-cli", "--port", "transfer",
                 "--channel", chan["b_channel"])
    assert queried["state"] == "OPEN" and queried["counterparty_channel"] == chan["a_channel"]

    firm_a = account_of(ed25519_public_key(bytes.fromhex((corda_home / "keys" / "holder-firm-a.key").read_text()
                                                         .strip())))
    sent = kj("tx", "transfer", "-c", str(cfg), "--src-chain", "evm-cli", "--src-channel", chan["a_channel"],
              "--amount", "125", "--denom", "stake", "--receiver", firm_a, "--timeout-seconds", "3600",
              "--key", "alice")
    pending = kj("query", "packet", "pending", "-c", str(cfg), "--chain", "evm-cli", "--port", "transfer",
                 "--channel", chan["a_channel"])
    assert pending["src"]["unreceived_packets"] == [sent["sequence"]]
    assert pending["dst"]["unreceived_packets"] == []

    with (tmp_path / "relayer.log").open("ab") as log:
        relayer = subprocess.Popen([str(BIN), "start", "-c", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                   env=_env())
    procs.append(relayer)
    voucher = f"transfer/{chan['b_channel']}/stake"
    deadline = time.monotonic() + 40
    while _balance(corda_addr, firm_a, voucher) != 125:
        assert relayer.poll() is None, (tmp_path / "relayer.log").read_text()[-3000:]
        assert time.monotonic() < deadline, (tmp_path / "relayer.log").read_text()[-3000:]
        time.sleep(0.3)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    assert _metric(metrics, "kakehashi_packets_relayed_total", src_chain="evm-cli", dst_chain="corda-cli",
                   kind="recv") >= 1
    assert _stop(relayer) == 0

    # sent while no relayer runs; one `clear packets` pass receives it on the EVM chain and acks it home
    bob = "0x" + eth_address(secp256k1_public_key(bytes.fromhex((evm_home / "keys" / "bob.key").read_text()
                                                                .strip()))).hex()
    back = kj("tx", "transfer", "-c", str(cfg), "--src-chain", "corda-cli", "--src-channel", chan["b_channel"],
              "--amount", "40", "--denom", "jpy", "--receiver", bob, "--timeout-height-offset", "1000",
              "--key", "holder-firm-b")
    pending = kj("query", "packet", "pending", "-c", str(cfg), "--chain", "evm-cli", "--port", "transfer",
                 "--channel", chan["a_channel"])
    assert pending["dst"]["unreceived_packets"] == [back["sequence"]]
    kj("clear", "packets", "-c", str(cfg), "--chain", "evm-cli", "--port", "transfer", "--channel", chan["a_channel"])
    assert _balance(evm_addr, bob, f"transfer/{chan['a_channel']}/jpy") == 40
    pending = kj("query", "packet", "pending", "-c", str(cfg), "--chain", "corda-cli", "--port", "transfer",
                 "--channel", chan["b_channel"])
    assert all(not pending[side][k] for side in ("src", "dst") for k in ("unreceived_packets", "unreceived_acks"))
    client = kj("query", "client", "-c", str(cfg), "--chain", "evm-cli", "--client", conn["a_client"])
    assert client["client_id"] == conn["a_client"] and client["client_state"]
    assert client["client_type"] == "11-corda"  # the EVM chain's client of the Corda chain
    # queries are read-only: they work without the keystore passphrase
    no_pass = {k: v for k, v in _env().items() if k != "KAKEHASHI_KEYSTORE_PASSPHRASE"}
    read_only = subprocess.run([str(BIN), "query", "client", "-c", str(cfg), "--chain", "corda-cli", "--client",
                                conn["b_client"], "--json"], capture_output=True, text=True, timeout=60, env=no_pass,
                               stdin=subprocess.DEVNULL)
    assert read_only.returncode == 0, read_only.stderr
    assert json.loads(read_only.stdout)["client_type"] == "10-qbft"

    # operator mistakes: one line on stderr, exit 1
    wrong = subprocess.run([str(BIN), "clear", "packets", "-c", str(cfg), "--chain", "evm-cli", "--port", "transfer",
                            "--channel", chan["a_channel"]], capture_output=True, text=True, timeout=60,
                           env={**_env(), "KAKEHASHI_KEYSTORE_PASSPHRASE": "not the passphrase"})
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr and len(wrong.stderr.splitlines()) == 1
    missing = kh("tx", "transfer", "-c", str(cfg), "--src-chain", "evm-cli", "--src-channel", chan["a_channel"],
                 "--amount", "1", "--denom", "stake", "--receiver", firm_a, "--timeout-seconds", "60",
                 "--key", "dave", check=False)
    assert missing.returncode == 1 and "dave" in missing.stderr and len(missing.stderr.splitlines()) == 1

    # an unreachable node: health-check and start say which chain, exit 1
    _stop(procs[1])
    health = kh("health-check", "-c", str(cfg), check=False)
    assert health.returncode == 1 and "corda-cli" in health.stderr
    down = kh("start", "-c", str(cfg), check=False)
    assert down.returncode == 1 and "corda-cli" in down.stderr and "unreachable" in down.stderr, down.stderr
    assert len(down.stderr.strip().splitlines()) == 1, down.stderr

    # a bad config: one line on stderr naming the bad key, exit 1
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text().replace('max_clock_drift = "30s"', 'max_clock_drift = "soon"', 1))
    out = kh("start", "-c", str(bad), check=False)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "max_clock_drift" in lines[0], out.stderr


def _evm_address(home: Path, name: str) -> str:
    return "0x" + eth_address(secp256k1_public_key(bytes.fromhex((home / "keys" / f"{name}.key").read_text()
                                                                 .strip()))).hex()


def _corda_account(home: Path, name: str) -> str:
    return account_of(ed25519_public_key(bytes.fromhex((home / "keys" / f"{name}.key").read_text().strip())))


def _escrow(addr: str, channel: str, denom: str) -> int:
    async def ask() -> int:
        async with NodeClient(addr) as node:
            got = await node.query_app("escrow", port_id="transfer", channel_id=channel, denom=denom)
            return int(got["amount"])
    return asyncio.run(ask())


def test_tx_packet_recv_then_packet_ack_relay_one_transfer_with_no_relayer_running(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    evm_home, evm_addr = _start_node(tmp_path, "evm", "1s", procs)
    corda_home, corda_addr = _start_node(tmp_path, "corda", "200ms", procs)
    cfg = tmp_path / "relayer.toml"
    _config(cfg, evm_addr, corda_addr, _free_port())
    for name, kind, home in (("carol", "evm", evm_home), ("alice", "evm", evm_home),
                             ("holder-firm-c", "corda", corda_home)):
        kh("keys", "add", name, "--kind", kind, "--private-key-file", str(home / "keys" / f"{name}.key"),
           "-c", str(cfg))
    deadline = time.monotonic() + 20
    while not all(r["height"] >= 2 for r in kj("health-check", "-c", str(cfg))):  # clients need sealed headers
        assert time.monotonic() < deadline
        time.sleep(0.5)
    conn = kj("create", "connection", "-c", str(cfg), "--a-chain", "evm-cli", "--b-chain", "corda-cli")
    chan = kj("create", "channel", "-c", str(cfg), "--a-chain", "evm-cli", "--a-connection", conn["a_connection"],
              "--a-port", "transfer", "--b-port", "transfer")
    a_chan, b_chan = chan["a_channel"], chan["b_channel"]
    alice, firm_a = _evm_address(evm_home, "alice"), _corda_account(corda_home, "holder-firm-a")
    alice_before = _balance(evm_addr, alice, "stake")

    seqs = [kj("tx", "transfer", "-c", str(cfg), "--src-chain", "evm-cli", "--src-channel", a_chan, "--amount", "30",
               "--denom", "stake", "--receiver", firm_a, "--timeout-seconds", "3600", "--key", "alice")["sequence"]
            for _ in range(2)]
    recv_args = ("-c", str(cfg), "--dst-chain", "corda-cli", "--src-chain", "evm-cli", "--src-port", "transfer",
                 "--src-channel", a_chan)
    # Hermes' convention: for acks, src is where they were written (the receiving chain)
    ack_args = ("-c", str(cfg), "--dst-chain", "evm-cli", "--src-chain", "corda-cli", "--src-port", "transfer",
                "--src-channel", b_chan)

    early = kj("tx", "packet-ack", *ack_args)  # nothing received yet: no ack to carry
    assert early["relayed"] == [] and early["txs"] == []

    recv = kj("tx", "packet-recv", *recv_args)
    assert recv["pending_before"] == seqs and recv["relayed"] == seqs and recv["pending_after"] == []
    assert recv["dst_channel"] == b_chan
    assert [tx["chain"] for tx in recv["txs"]] == ["corda-cli"] and all(tx["committed"] for tx in recv["txs"])
    assert sorted(q for tx in recv["txs"] for q in tx["sequences"].get("recv", [])) == seqs
    assert all(len(bytes.fromhex(tx["tx_hash"])) == 32 for tx in recv["txs"])
    assert _balance(corda_addr, firm_a, f"transfer/{b_chan}/stake") == 60
    pending = kj("query", "packet", "pending", "-c", str(cfg), "--chain", "evm-cli", "--port", "transfer",
                 "--channel", a_chan)
    assert pending["src"]["unreceived_packets"] == [] and pending["src"]["unreceived_acks"] == seqs

    human = kh("tx", "packet-ack", *ack_args).stdout
    assert "relayed 2, still pending 0" in human and "evm-cli" in human and "ack " in human
    pending = kj("query", "packet", "pending", "-c", str(cfg), "--chain", "evm-cli", "--port", "transfer",
                 "--channel", a_chan)
    assert pending["src"] == {**pending["src"], "unreceived_packets": [], "unreceived_acks": []}
    assert _balance(evm_addr, alice, "stake") == alice_before - 60
    assert _escrow(evm_addr, a_chan, "stake") == 60
    again = kj("tx", "packet-recv", *recv_args)
    assert again["relayed"] == [] and again["txs"] == []

    # packet-recv also times out, on the sender, what the receiver can no longer take (as Hermes does)
    late = kj("tx", "transfer", "-c", str(cfg), "--src-chain", "evm-cli", "--src-channel", a_chan, "--amount", "9",
              "--denom", "stake", "--receiver", firm_a, "--timeout-height-offset", "2", "--key", "alice")["sequence"]
    assert _balance(evm_addr, alice, "stake") == alice_before - 69
    deadline = time.monotonic() + 30
    while True:
        expired = kj("tx", "packet-recv", *recv_args)
        if expired["relayed"]:
            break
        assert expired["pending_after"] == [late] and time.monotonic() < deadline  # not provable yet: waits
        time.sleep(0.5)
    assert expired["relayed"] == [late] and expired["pending_after"] == []
    assert [(tx["chain"], tx["sequences"]) for tx in expired["txs"]] == [("evm-cli", {"timeout": [late]})]
    assert _balance(evm_addr, alice, "stake") == alice_before - 60  # refunded
    assert _balance(corda_addr, firm_a, f"transfer/{b_chan}/stake") == 60

    # the channel must exist on --src-chain, and its counterparty on --dst-chain
    wrong = kh("tx", "packet-recv", "-c", str(cfg), "--dst-chain", "corda-cli", "--src-chain", "evm-cli",
               "--src-port", "transfer", "--src-channel", "channel-9", check=False)
    assert wrong.returncode == 1 and "channel-9" in wrong.stderr and len(wrong.stderr.splitlines()) == 1
    same = kh("tx", "packet-ack", "-c", str(cfg), "--dst-chain", "evm-cli", "--src-chain", "evm-cli",
              "--src-port", "transfer", "--src-channel", a_chan, check=False)
    assert same.returncode == 1 and "must differ" in same.stderr
