"""`kakehashi testnet up|status|down` as a user runs it: real node and relayer processes,
stopped by PID, data kept between runs; the testnet's own relayer delivers a transfer, and
one sent while it was down is cleared when the next `up` restarts it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from chains.corda.ibc_host import account_of
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.host import paths
from chains.node.client import NodeClient
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.crypto import ed25519_public_key
from relayer.config.schema import load_config
from relayer.ops.keystore import identity_of
from relayer.testnet import network as testnet
from tests.conftest import ROOT

EXE = str(ROOT / ".venv" / "bin" / "kakehashi")


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=180, env=env, cwd=cwd)


def up(home: Path) -> dict[str, Any]:
    out = run("testnet", "up", "--home", str(home), "--json")
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def _balance(addr: str, account: str, denom: str) -> int:
    async def ask() -> int:
        async with NodeClient(addr) as node:
            return int((await node.query_app("bank_balance", account=account, denom=denom))["amount"])
    return asyncio.run(ask())


def _wait_balance(addr: str, account: str, denom: str, want: int, log: Path) -> None:
    deadline = time.monotonic() + 45
    while _balance(addr, account, denom) != want:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


def test_generated_relayer_config_validates_with_and_without_mqtt(tmp_path: Path) -> None:
    addresses = {"evm": "127.0.0.1:4001", "corda": "127.0.0.1:4002"}
    path = tmp_path / "relayer.toml"
    path.write_text(testnet.render_config(addresses, 4003, None))
    cfg = load_config(path)
    assert [(c.id, c.kind, c.grpc_addr, c.key_name) for c in cfg.chains] == [
        ("evm-1", "evm", "127.0.0.1:4001", "relayer-evm"), ("corda-1", "corda", "127.0.0.1:4002", "relayer-corda")]
    assert (cfg.telemetry.enabled, cfg.telemetry.host, cfg.telemetry.port) == (True, "127.0.0.1", 4003)
    assert not cfg.mqtt.enabled and cfg.keystore == tmp_path / "keys"
    path.write_text(testnet.render_config(addresses, 4003, "broker.local:1884"))
    cfg = load_config(path)
    assert (cfg.mqtt.enabled, cfg.mqtt.host, cfg.mqtt.port) == (True, "broker.local", 1884)


def test_a_later_up_keeps_the_telemetry_port_and_the_mqtt_broker(tmp_path: Path) -> None:
    nodes = [testnet.NodeInfo("evm", "evm-1", tmp_path / "evm", 1, "127.0.0.1:4001", 1),
             testnet.NodeInfo("corda", "corda-1", tmp_path / "corda", 2, "127.0.0.1:4002", 1)]
    (tmp_path / "relayer").mkdir()
    first = testnet._write_config(tmp_path, nodes, "127.0.0.1:1999")
    assert first.mqtt.enabled and first.mqtt.port == 1999 and first.telemetry.port > 0
    moved = [testnet.NodeInfo("evm", "evm-1", tmp_path / "evm", 1, "127.0.0.1:5001", 1), nodes[1]]
    second = testnet._write_config(tmp_path, moved, None)
    assert second.chains[0].grpc_addr == "127.0.0.1:5001"  # the nodes' new ports
    assert second.telemetry.port == first.telemetry.port and second.mqtt == first.mqtt


def _assert_open(nodes: list[dict[str, Any]], chan: dict[str, str]) -> None:
    async def ends() -> list[chpb.Channel]:
        out = []
        for node, side in ((nodes[0], "a"), (nodes[1], "b")):
            async with NodeClient(node["address"]) as client:
                res = await client.query_ibc(paths.channel(chan[f"{side}_port"], chan[f"{side}_channel"]).decode(),
                                             prove=False)
                assert res.found, (side, chan)
                out.append(chpb.Channel.FromString(bytes(res.value)))
        return out
    a, b = asyncio.run(ends())
    for end, other in ((a, "b"), (b, "a")):
        assert end.state == chpb.STATE_OPEN and end.ordering == chpb.ORDER_UNORDERED
        assert end.version == dvp_app.VERSION
        assert (end.counterparty.port_id, end.counterparty.channel_id) == (chan[f"{other}_port"],
                                                                            chan[f"{other}_channel"])


def test_every_channel_spec_is_distinct_and_transfer_comes_first() -> None:
    assert testnet.CHANNELS[0] == testnet.ChannelSpec("transfer", "transfer", "unordered", "ics20-1")
    assert testnet.ChannelSpec("dvp", "dvp", "unordered", dvp_app.VERSION) in testnet.CHANNELS
    assert len({(c.a_port, c.b_port) for c in testnet.CHANNELS}) == len(testnet.CHANNELS)
    assert all(c.order in ("unordered", "ordered") for c in testnet.CHANNELS)


@pytest.mark.slow
def test_up_relays_down_stops_all_and_up_again_resumes_and_clears(tmp_path: Path) -> None:
    home = tmp_path / "tn"
    pids: list[int] = []
    try:
        first = up(home)
        nodes, relayer = first["nodes"], first["relayer"]
        assert [n["kind"] for n in nodes] == ["evm", "corda"]
        assert all(n["address"] and n["pid"] for n in nodes)
        assert relayer["pid"] and relayer["healthy"] is True
        pids = [n["pid"] for n in nodes] + [relayer["pid"]]
        chan, dvp_chan = first["channels"]
        assert chan["a_port"] == chan["b_port"] == "transfer" and chan["order"] == "unordered"
        assert (dvp_chan["a_port"], dvp_chan["b_port"], dvp_chan["order"], dvp_chan["version"]) == \
            ("dvp", "dvp", "unordered", dvp_app.VERSION)
        assert dvp_chan["a_channel"] != chan["a_channel"] and dvp_chan["b_channel"] != chan["b_channel"]
        assert first["connection"]["a_connection"].startswith("connection-")
        assert first["created"] == ["connection connection-0", "channel transfer/channel-0", "channel dvp/channel-1"]
        # both ends of the dvp channel are OPEN on the chains themselves (not only in `up`'s answer)
        _assert_open(nodes, dvp_chan)

        # PID files hold the PID alone (`kill $(cat relayer.pid)` works); start times sit beside them
        assert [(home / k / "node.pid").read_text() for k in ("evm", "corda")] == [f"{n['pid']}\n" for n in nodes]
        assert (home / "relayer" / "relayer.pid").read_text() == f"{relayer['pid']}\n"
        assert (home / "relayer" / "relayer.pid.start").read_text().strip().isdigit()
        # README's query, typed without -c where the testnet is .testnet: its config is found
        (tmp_path / ".testnet").symlink_to(home)
        pending = run("query", "packet", "pending", "--chain", "evm-1", "--port", "transfer", "--channel",
                      chan["a_channel"], "--json", cwd=tmp_path)
        assert pending.returncode == 0 and "using the testnet's config" in pending.stderr, pending

        # the relayer's home: a config that validates, a 0600 passphrase, fresh relayer keys
        rhome = home / "relayer"
        cfg = load_config(rhome / "relayer.toml")
        assert [c.key_name for c in cfg.chains] == ["relayer-evm", "relayer-corda"]
        assert cfg.telemetry.enabled and cfg.telemetry.host == "127.0.0.1" and not cfg.mqtt.enabled
        assert stat.S_IMODE((rhome / "passphrase").stat().st_mode) == 0o600
        env = {**os.environ, "KAKEHASHI_KEYSTORE_PASSPHRASE": (rhome / "passphrase").read_text().strip()}
        assert json.loads(run("config", "validate", "-c", str(rhome / "relayer.toml"), "--json").stdout)["valid"]
        keys = json.loads(run("keys", "list", "-c", str(rhome / "relayer.toml"), "--json", env=env).stdout)
        assert {k["name"] for k in keys} == {"relayer-evm", "relayer-corda"}
        demo = {identity_of("secp256k1", bytes.fromhex((home / "evm" / "keys" / f"{n}.key").read_text().strip()
                                                       .removeprefix("0x"))).hex() for n in ("alice", "bob", "carol")}
        assert len(demo) == 3 and not any(k["identity"] in demo for k in keys)
        metrics = urllib.request.urlopen(relayer["metrics"], timeout=5).read().decode()
        assert "kakehashi_workers" in metrics

        again = up(home)  # everything already running: nothing started twice, nothing re-created
        assert [n["pid"] for n in again["nodes"]] + [again["relayer"]["pid"]] == pids
        assert again["channels"] == first["channels"] and again["connection"] == first["connection"]
        assert again["created"] == []

        # the testnet's relayer delivers a transfer (sent with a demo key imported for the test)
        run("keys", "add", "alice", "--kind", "evm", "--private-key-file", str(home / "evm" / "keys" / "alice.key"),
            "-c", str(rhome / "relayer.toml"), env=env)
        firm_a = account_of(ed25519_public_key(bytes.fromhex((home / "corda" / "keys" / "holder-firm-a.key")
                                                             .read_text().strip())))
        voucher = f"transfer/{chan['b_channel']}/stake"
        corda = nodes[1]["address"]

        def send(amount: int) -> None:
            out = run("tx", "transfer", "-c", str(rhome / "relayer.toml"), "--src-chain", "evm-1", "--src-channel",
                      chan["a_channel"], "--amount", str(amount), "--denom", "stake", "--receiver", firm_a,
                      "--timeout-seconds", "3600", "--key", "alice", env=env)
            assert out.returncode == 0, out.stderr

        send(11)
        _wait_balance(corda, firm_a, voucher, 11, rhome / "relayer.log")

        st = json.loads(run("testnet", "status", "--home", str(home), "--json").stdout)
        assert st["relayer"]["pid"] == relayer["pid"] and st["channels"] == first["channels"]
        assert all(n["height"] is not None and n["height"] >= 2 for n in st["nodes"])
        heights = [n["height"] for n in st["nodes"]]

        # sent while no relayer runs: the next `up` restarts the relayer and it clears the packet
        os.kill(relayer["pid"], 15)
        deadline = time.monotonic() + 20
        while not _gone(relayer["pid"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        send(4)
        down = run("testnet", "down", "--home", str(home), "--json")
        assert json.loads(down.stdout) == {"stopped": ["evm", "corda"]}  # the relayer was already gone
        for pid in pids:
            assert _gone(pid)
        st = json.loads(run("testnet", "status", "--home", str(home), "--json").stdout)
        assert all(n["pid"] is None for n in st["nodes"]) and st["relayer"]["pid"] is None
        shown = run("testnet", "status", "--home", str(home)).stdout
        assert shown.count("not running") == 3, shown  # both nodes and the relayer
        assert not (home / "relayer" / "relayer.pid").exists() and not (home / "evm" / "node.pid.start").exists()

        second = up(home)
        pids = [n["pid"] for n in second["nodes"]] + [second["relayer"]["pid"]]
        assert second["channels"] == first["channels"] and second["connection"] == first["connection"]
        assert second["relayer"]["pid"] != relayer["pid"] and second["created"] == []
        _wait_balance(second["nodes"][1]["address"], firm_a, voucher, 15, rhome / "relayer.log")
        st2 = json.loads(run("testnet", "status", "--home", str(home), "--json").stdout)
        assert all(n2["height"] >= h for n2, h in zip(st2["nodes"], heights, strict=True))  # data persisted

        stopped = json.loads(run("testnet", "down", "--home", str(home), "--json").stdout)
        assert stopped == {"stopped": ["relayer", "evm", "corda"]}
        for pid in pids:
            assert _gone(pid)
    finally:
        run("testnet", "down", "--home", str(home))
        for pid in pids:  # belt and braces: never leave our processes behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
