"""Proxy mode end to end: real nodes, a real proxy process (SIMULATED enclave), the real
relayer daemon talking to it over gRPC.

- `make run PROVER=proxy` (the demo): transfers both ways and DvP trades (settled, refused by
  the pre-check, refunded on an error ack and on a proven timeout) over 12-proxy clients;
  then the proxy is SIGKILLed and `testnet up` restarts it from its sealed key, with no new
  key and no new registration, and the running relayer keeps relaying through it.
- Key rotation: enclave keys that expire every 12 s while transfers flow; the relayer renews
  them ahead of expiry and every transfer is delivered with no failed transaction.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chains.corda.ibc_host import account_of
from chains.node.client import NodeClient
from kakehashi.proxy.v1 import proxy_pb2 as pb
from lightclients.crypto import ed25519_public_key
from lightclients.proxy.client import enclave_key_key
from tests.conftest import ROOT
from tests.support.live import (
    NodeProc,
    Procs,
    RelayerSetup,
    add_keys,
    block_events,
    client,
    create_path,
    free_port,
    http_get,
    metric,
    start_daemon,
    start_node,
    wait_ready,
    write_config,
)
from tests.support.proxylive import proxy_section, start_proxy, use_proxy

EXE = str(ROOT / ".venv" / "bin" / "kakehashi")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


async def _ibc(addr: str, path: str) -> bytes | None:
    async with NodeClient(addr) as node:
        res = await node.query_ibc(path, prove=False)
        return bytes(res.value) if res.found else None


def _records(addr: str, client_id: str, keys: list[str]) -> dict[str, pb.EnclaveKeyRecord]:
    """The enclave-key records the chain at ``addr`` holds for its proxy client."""
    out = {}
    for k in keys:
        raw = asyncio.run(_ibc(addr, f"clients/{client_id}/{enclave_key_key(bytes.fromhex(k[2:]))}"))
        if raw is not None:
            out[k] = pb.EnclaveKeyRecord.FromString(raw)
    return out


async def _first_registrations(node: NodeProc, client_id: str) -> dict[str, int]:
    """Enclave key -> block time of the first update_client that registered it with ``client_id``."""
    async with client(node) as c:
        events = await block_events(c)
    first: dict[str, int] = {}
    for _, time_ns, e in events:
        if e.type != "update_client" or e.text("client_id") != client_id:
            continue
        msg = pb.ClientMessage.FromString(e.get("header") or b"")
        for reg in msg.registrations:
            key = "0x" + bytes(pb.AttestationReport.FromString(reg.report).enclave_key).hex()
            first.setdefault(key, time_ns)
    return first


async def _latest_time(node: NodeProc) -> int:
    async with client(node) as c:
        return int((await c.status()).latest_time_ns)


def _balance(addr: str, account: str, denom: str) -> int:
    async def ask() -> int:
        async with NodeClient(addr) as node:
            return int((await node.query_app("bank_balance", account=account, denom=denom))["amount"])
    return asyncio.run(ask())


def _wait_balance(addr: str, account: str, denom: str, want: int, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while _balance(addr, account, denom) != want:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


@pytest.mark.slow
def test_dvp_in_proxy_mode_then_the_proxy_restarts_from_its_sealed_key(tmp_path: Path) -> None:
    home = tmp_path / "tn"
    try:
        out = subprocess.run([sys.executable, "-m", "relayer.testnet.demo", "--prover", "proxy", "--transfers", "3",
                              "--trades", "3", "--home", str(home), "--json"],
                             capture_output=True, text=True, timeout=500, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-4000:]
        doc: dict[str, Any] = json.loads(out.stdout)
        assert doc["ok"] and not doc["failures"]
        assert doc["testnet"]["prover"] == "proxy" and "SIMULATED" in doc["testnet"]["verification"]
        a_client, b_client = doc["testnet"]["clients"]
        assert a_client.startswith("12-proxy-") and b_client.startswith("12-proxy-")
        assert {t["kind"]: t["ok"] for t in doc["dvp"]["trades"]} == {
            "ok": True, "insufficient-sc": True, "buyer-delisted": True, "relayer-paused": True}
        counts = doc["dvp"]["counts"]
        assert (counts["settled"], counts["refunded_error"], counts["refunded_timeout"], counts["rejected"]) == \
            (3, 1, 1, 1)
        assert all(c["ok"] for c in doc["dvp"]["conservation"])

        status = json.loads(run("testnet", "status", "--home", str(home), "--json").stdout)
        assert status["prover"] == "proxy"
        proxy, (evm, corda) = status["proxy"], status["nodes"]
        before = json.loads(run("proxy", "info", "--home", proxy["home"], "--json").stdout)
        assert before["simulated"] and "SIMULATED" in before["note"]
        keys = [k["address"] for k in before["enclave_keys"]]
        assert len(keys) == 1
        # the key is registered with both chains' proxy clients (by the first update it signed)
        registered = (_records(evm["address"], a_client, keys), _records(corda["address"], b_client, keys))
        assert set(registered[0]) == set(registered[1]) == set(keys)

        # crash: SIGKILL, no shutdown code runs; `up` restarts the proxy at the same address
        os.kill(proxy["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not _gone(proxy["pid"]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        again = run("testnet", "up", "--home", str(home), "--json")
        assert again.returncode == 0, again.stderr
        doc2 = json.loads(again.stdout)
        assert doc2["proxy"]["pid"] != proxy["pid"] and doc2["proxy"]["address"] == proxy["address"]
        assert doc2["relayer"]["pid"] == status["relayer"]["pid"]  # the relayer kept running
        after = json.loads(run("proxy", "info", "--home", proxy["home"], "--json").stdout)
        assert [k["address"] for k in after["enclave_keys"]] == keys  # unsealed, not regenerated
        assert after["code_hash"] == before["code_hash"]

        # the running relayer relays through the restarted proxy, still signing with that key
        rhome = home / "relayer"
        env = {**os.environ, "KAKEHASHI_KEYSTORE_PASSPHRASE": (rhome / "passphrase").read_text().strip()}
        run("keys", "add", "alice", "--kind", "evm", "--private-key-file", str(home / "evm" / "keys" / "alice.key"),
            "-c", str(rhome / "relayer.toml"), env=env)
        firm_a = account_of(ed25519_public_key(bytes.fromhex((home / "corda" / "keys" / "holder-firm-a.key")
                                                             .read_text().strip())))
        chan = next(c for c in doc2["channels"] if c["a_port"] == "transfer")
        voucher = f"transfer/{chan['b_channel']}/stake"
        start = _balance(corda["address"], firm_a, voucher)
        sent = run("tx", "transfer", "-c", str(rhome / "relayer.toml"), "--src-chain", "evm-1", "--src-channel",
                   chan["a_channel"], "--amount", "7", "--denom", "stake", "--receiver", firm_a,
                   "--timeout-seconds", "3600", "--key", "alice", env=env)
        assert sent.returncode == 0, sent.stderr
        _wait_balance(corda["address"], firm_a, voucher, start + 7, rhome / "relayer.log")
        final = json.loads(run("proxy", "info", "--home", proxy["home"], "--json").stdout)
        assert [k["address"] for k in final["enclave_keys"]] == keys  # no new key, so no new registration
        assert (_records(evm["address"], a_client, keys), _records(corda["address"], b_client, keys)) == registered
    finally:
        run("testnet", "down", "--home", str(home))


@pytest.mark.slow
def test_key_rotation_keeps_relaying_without_a_gap(tmp_path: Path) -> None:
    procs = Procs()
    try:
        evm = start_node(tmp_path, "evm", "evm-rot", "1s", procs)
        corda = start_node(tmp_path, "corda", "corda-rot", "200ms", procs)
        proxy = start_proxy(tmp_path, procs)
        add_keys(tmp_path / "keys", [(evm, "carol"), (corda, "holder-firm-c")])
        port = free_port()
        cfg = write_config(tmp_path / "relayer.toml", [evm, corda], RelayerSetup(
            metrics_port=port, keys={evm.chain_id: f"{evm.chain_id}-carol",
                                     corda.chain_id: f"{corda.chain_id}-holder-firm-c"}))
        # both chains in proxy mode, keys living 12 s and renewed 6 s before they expire
        use_proxy(cfg, proxy_section(proxy, key_expiration="12s", key_renew_before="6s"))
        path = create_path(cfg, evm, corda)
        assert path.a_client.startswith("12-proxy-") and path.b_client.startswith("12-proxy-")
        daemon = start_daemon(procs, cfg)
        wait_ready(daemon, port)

        from tests.support.live import Sender, transfers

        firm_a = corda.account("holder-firm-a")
        voucher = f"transfer/{path.b_channel}/stake"

        async def flow() -> int:
            async with client(evm) as e:
                sender = Sender(evm, "alice", e)
                sent = 0
                started = time.monotonic()
                while time.monotonic() - started < 30:  # two and a half key lifetimes
                    await sender.send(transfers("transfer", path.a_channel, "stake", sender.address, firm_a, [1],
                                                time.time_ns() + 3600 * 10**9))
                    sent += 1
                    await asyncio.sleep(1.0)
                return sent

        sent = asyncio.run(flow())
        _wait_balance(corda.addr, firm_a, voucher, sent, daemon.log, timeout_s=90)

        info = json.loads(run("proxy", "info", "--addr", proxy.addr, "--json").stdout)
        keys = [k["address"] for k in info["enclave_keys"]]
        assert len(keys) >= 4, keys  # a new key about every 6 s
        for node, client_id in ((evm, path.a_client), (corda, path.b_client)):
            records = _records(node.addr, client_id, keys)
            registered = asyncio.run(_first_registrations(node, client_id))
            chained = [k for k in keys if k in registered]
            assert len(chained) >= 3, (node.chain_id, registered)
            # no gap: each new key was registered on chain (by an update it rode in on) before
            # the key it replaces expired, judged by that chain's own block time
            for old, new in itertools.pairwise(chained):
                assert registered[new] < records[old].expires_at, (node.chain_id, old, new)
            latest_time = asyncio.run(_latest_time(node))
            assert records[chained[0]].expires_at < latest_time  # and the first key did expire
        code, text = http_get(port, "/metrics")
        assert code == 200
        assert metric(text, "kakehashi_tx_errors_total") == 0, daemon.tail()
        assert daemon.alive()
    finally:
        procs.stop_all()


@pytest.mark.slow
def test_two_of_three_operators_sign_and_relaying_survives_one_proxy_down(tmp_path: Path) -> None:
    procs = Procs()
    try:
        evm = start_node(tmp_path, "evm", "evm-k", "1s", procs)
        corda = start_node(tmp_path, "corda", "corda-k", "200ms", procs)
        first = start_proxy(tmp_path, procs, "proxy-a")
        proxies = [first, start_proxy(tmp_path, procs, "proxy-b", authority_of=first),
                   start_proxy(tmp_path, procs, "proxy-c", authority_of=first)]
        assert len({p.operator for p in proxies}) == 3 and len({p.authority for p in proxies}) == 1
        add_keys(tmp_path / "keys", [(evm, "carol"), (corda, "holder-firm-c")])
        port = free_port()
        cfg = write_config(tmp_path / "relayer.toml", [evm, corda], RelayerSetup(
            metrics_port=port, keys={evm.chain_id: f"{evm.chain_id}-carol",
                                     corda.chain_id: f"{corda.chain_id}-holder-firm-c"}))
        use_proxy(cfg, proxy_section(proxies, threshold=2))
        path = create_path(cfg, evm, corda)
        daemon = start_daemon(procs, cfg)
        wait_ready(daemon, port)
        from tests.support.live import Sender, transfers

        firm_a = corda.account("holder-firm-a")
        voucher = f"transfer/{path.b_channel}/stake"

        async def send(amount: int) -> None:
            async with client(evm) as e:
                sender = Sender(evm, "alice", e)
                await sender.send(transfers("transfer", path.a_channel, "stake", sender.address, firm_a, [amount],
                                            time.time_ns() + 3600 * 10**9))

        asyncio.run(send(5))
        _wait_balance(corda.addr, firm_a, voucher, 5, daemon.log)
        # every update the Corda chain accepted for its proxy client of the EVM chain carries
        # signatures of all three operators' enclaves (each proxy answered)
        async def signer_counts() -> list[int]:
            async with client(corda) as c:
                events = await block_events(c)
            return [len(pb.ClientMessage.FromString(e.get("header") or b"").update.signatures)
                    for _, _, e in events if e.type == "update_client" and e.text("client_id") == path.b_client]
        assert set(asyncio.run(signer_counts())) == {3}

        proxies[2].proc.kill()  # one operator's proxy gone: 2 of 3 still meet k = 2
        asyncio.run(send(6))
        _wait_balance(corda.addr, firm_a, voucher, 11, daemon.log)
        assert 2 in set(asyncio.run(signer_counts()))
        code, text = http_get(port, "/metrics")
        assert code == 200 and metric(text, "kakehashi_tx_errors_total") == 0, daemon.tail()
    finally:
        procs.stop_all()
