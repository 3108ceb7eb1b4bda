"""One Corda SC chain, two EVM ST chains: `testnet up --st-chains 2` end to end.

One three-chain testnet (real node and relayer processes) serves every test of the module,
in file order: the layout and the one daemon serving both paths; transfers both ways and
DvP trades on both paths at once (the `make run` hub phase, through one router); a trade for
an unknown ST chain (or naming another path's channel) refused with nothing locked; then the
testnet's relayer is replaced by two daemons split by path, which relay concurrently
without touching each other's path, and a SIGKILLed one leaves the other path running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chains.corda.ibc_host import account_of
from chains.node.client import NodeClient
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from relayer.codecs import codec_for
from relayer.config.schema import load_config
from relayer.core.chain import GrpcChainHandle
from relayer.ops.keystore import PASSPHRASE_ENV
from relayer.testnet import network as testnet
from relayer.testnet.demo_context import DemoContext
from relayer.testnet.demo_paths import metrics_by_path, phase_paths
from tests.conftest import ROOT
from tests.support.live import free_port

pytestmark = pytest.mark.slow

EXE = str(ROOT / ".venv" / "bin" / "kakehashi")
P1, P2 = "evm-1:corda-1", "evm-2:corda-1"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=240, env=env)


def first_json(text: str) -> Any:
    """The result document of a failed ``--json`` command (its one-line error follows it)."""
    return json.JSONDecoder().raw_decode(text)[0]


def _key(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().strip().removeprefix("0x"))


class Hub:
    def __init__(self, home: Path, doc: dict[str, Any]) -> None:
        self.home, self.doc = home, doc
        self.addr = {n["chain_id"]: n["address"] for n in doc["nodes"]}
        self.paths = {p["st_chain"]: p for p in doc["paths"]}
        self.rhome = home / "relayer"
        self.config = self.rhome / "relayer.toml"
        self.env = {**os.environ, PASSPHRASE_ENV: (self.rhome / "passphrase").read_text().strip()}

    def home_of(self, chain_id: str) -> Path:
        return self.home / ("evm" if chain_id == "evm-1" else chain_id) if chain_id.startswith("evm") \
            else self.home / "corda"

    def channel(self, st_chain: str, port: str) -> dict[str, str]:
        return next(c for c in self.paths[st_chain]["channels"] if c["a_port"] == port)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    home = tmp_path_factory.mktemp("hub") / "tn"
    out = run("testnet", "up", "--home", str(home), "--st-chains", "2", "--json")
    try:
        assert out.returncode == 0, out.stderr[-3000:]
        yield Hub(home, json.loads(out.stdout))
    finally:
        run("testnet", "down", "--home", str(home))


# --- transfers -----------------------------------------------------------------------------------


async def _send(hub: Hub, st_chain: str, to_corda: bool, amount: int, count: int = 1) -> None:
    """``count`` transfers of ``amount`` on the path's transfer channel: alice -> firm-a (evm to
    corda) or firm-b -> bob (corda to evm), signed with the demo keys."""
    ch = hub.channel(st_chain, "transfer")
    evm_home, corda_home = hub.home_of(st_chain), hub.home / "corda"
    if to_corda:
        src, kind, key, denom, chan = st_chain, "evm", _key(evm_home / "keys" / "alice.key"), "stake", ch["a_channel"]
        receiver = account_of(ed25519_public_key(_key(corda_home / "keys" / "holder-firm-a.key")))
        sender = "0x" + eth_address(secp256k1_public_key(key)).hex()
    else:
        src, kind, key, denom, chan = "corda-1", "corda", _key(corda_home / "keys" / "holder-firm-b.key"), "jpy", \
            ch["b_channel"]
        receiver = "0x" + eth_address(secp256k1_public_key(_key(evm_home / "keys" / "bob.key"))).hex()
        sender = account_of(ed25519_public_key(key))
    async with NodeClient(hub.addr[src]) as node:
        handle = GrpcChainHandle(src, node, codec_for(kind, key, await node.query_app("chain_info")))
        msgs = [transfer_pb2.MsgTransfer(source_port="transfer", source_channel=chan, denom=denom, amount=str(amount),
                                         sender=sender, receiver=receiver, timeout_height=client_pb2.Height(),
                                         timeout_timestamp=time.time_ns() + 3600 * 10**9) for _ in range(count)]
        out = await handle.submit(msgs)
        assert out.committed, out.reason


def _voucher_balance(hub: Hub, st_chain: str, to_corda: bool) -> int:
    ch = hub.channel(st_chain, "transfer")
    if to_corda:
        where = "corda-1"
        account = account_of(ed25519_public_key(_key(hub.home / "corda" / "keys" / "holder-firm-a.key")))
        denom = f"transfer/{ch['b_channel']}/stake"
    else:
        where = st_chain
        account = "0x" + eth_address(secp256k1_public_key(_key(hub.home_of(st_chain) / "keys" / "bob.key"))).hex()
        denom = f"transfer/{ch['a_channel']}/jpy"

    async def ask() -> int:
        async with NodeClient(hub.addr[where]) as node:
            return int((await node.query_app("bank_balance", account=account, denom=denom))["amount"])
    return asyncio.run(ask())


def _wait(cond: Any, what: str, timeout_s: float = 60.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}" + (f"\n{log.read_text()[-3000:]}" if log else ""))
        time.sleep(0.3)


# --- tests ----------------------------------------------------------------------------------------


def test_layout_one_hub_two_spokes_one_daemon_serving_both_paths(hub: Hub) -> None:
    assert [n["chain_id"] for n in hub.doc["nodes"]] == ["evm-1", "corda-1", "evm-2"]
    assert all(n["pid"] and n["height"] for n in hub.doc["nodes"])
    validators = {c: len(json.loads((hub.home_of(c) / "genesis.json").read_text())["validators"])
                  for c in ("evm-1", "evm-2")}
    assert validators == {"evm-1": 4, "evm-2": 7}
    periods = {c: json.loads((hub.home_of(c) / "genesis.json").read_text())["block_period_ms"]
               for c in ("evm-1", "evm-2")}
    assert periods["evm-1"] != periods["evm-2"]
    # one path per spoke, each its own clients and channels on the hub
    assert [p["name"] for p in hub.doc["paths"]] == [P1, P2]
    hub_ends = [(c["b_channel"], hub.paths[s]["connection"]["b_client"]) for s in ("evm-1", "evm-2")
                for c in hub.paths[s]["channels"]]
    assert len({e[0] for e in hub_ends}) == 4 and len({e[1] for e in hub_ends}) == 2
    cfg = load_config(hub.config)
    assert [(p.name, p.a_chain, p.b_chain) for p in cfg.paths] == [(P1, "evm-1", "corda-1"), (P2, "evm-2", "corda-1")]
    health = json.loads(urllib.request.urlopen(hub.doc["relayer"]["health"], timeout=5).read())
    assert set(health["paths"]) == {P1, P2} and health["status"] == "ok"
    assert all(h["workers"] >= 6 for h in health["paths"].values())  # 2 clients + 2 channels x 2 directions
    status = json.loads(run("testnet", "status", "--home", str(hub.home), "--json").stdout)
    assert [p["name"] for p in status["paths"]] == [P1, P2] and len(status["nodes"]) == 3


def test_transfers_and_dvp_on_both_paths_at_once(hub: Hub) -> None:
    before = {(s, d): _voucher_balance(hub, s, d) for s in ("evm-1", "evm-2") for d in (True, False)}

    async def send_all() -> None:
        await asyncio.gather(*(_send(hub, s, d, 7 if s == "evm-1" else 9) for s in ("evm-1", "evm-2")
                               for d in (True, False)))
    asyncio.run(send_all())
    for (s, d), was in before.items():
        want = was + (7 if s == "evm-1" else 9)
        _wait(lambda s=s, d=d, want=want: _voucher_balance(hub, s, d) == want, f"transfer {s} {d}",
              log=hub.rhome / "relayer.log")

    # DvP on both paths from one stream through one router: `make run`'s hub phase, checked
    ctx = DemoContext(hub.home, 1, Console(quiet=True), trades=4)
    ctx.tn = testnet.status(hub.home)
    asyncio.run(phase_paths(ctx))
    report = ctx.report["paths"]
    assert ctx.failures == [], ctx.failures
    assert [(r["path"], r["trades"], r["settled"]) for r in report["per_path"]] == [(P1, 2, 2), (P2, 2, 2)]
    # 5 per ST chain, and per SC brand (default on evm-1, KUSD on evm-2) buyer down and seller up
    assert all(c["ok"] for c in report["checks"]) and len(report["checks"]) == 14
    assert [r["sc_brand"] for r in report["per_path"]] == ["", "KUSD"]
    # the relayer counted each path's messages under its own label
    assert all(r["relayer_confirmed_msgs"] >= 4 for r in report["per_path"]), report["per_path"]
    listed = run("dvp", "list", "-c", str(hub.config), "--json")
    assert listed.returncode == 0, listed.stderr
    chains = {r["trade_id"].rsplit("-", 1)[0].split("-", 2)[2]: r["st_chain"] for r in json.loads(listed.stdout)}
    assert chains == {"evm-1": "evm-1", "evm-2": "evm-2"}


def test_a_trade_for_an_unknown_st_chain_or_another_paths_channel_is_refused_with_nothing_locked(hub: Hub,
                                                                                                tmp_path: Path) -> None:
    made = run("dvp", "example", "--testnet", str(hub.home), "--st-chain", "evm-2", "--trade-id", "T-HUB-X")
    assert made.returncode == 0, made.stderr
    doc = json.loads(made.stdout)
    assert doc["st_chain"] == "evm-2" and doc["channel"] == hub.channel("evm-2", "dvp")["b_channel"]
    keys = ["--key", str(hub.home / "evm-2" / "keys"), "--key", str(hub.home / "corda" / "keys")]
    bad = tmp_path / "unknown.json"
    bad.write_text(json.dumps({**doc, "st_chain": "evm-9"}))
    out = run("dvp", "settle", str(bad), "-c", str(hub.config), *keys, "--json")
    assert out.returncode == 1
    got = first_json(out.stdout)
    assert got["state"] == "rejected" and got["reasons"] == [
        "st_chain: 'evm-9' is not an ST chain of this client (known: evm-1, evm-2)"]
    pre = run("dvp", "precheck", str(bad), "-c", str(hub.config), "--json")
    assert pre.returncode == 1 and first_json(pre.stdout)["reasons"][0].startswith("st_chain: 'evm-9'")
    # evm-2's dvp channel on a trade for evm-1: the pre-check names the mismatch
    crossed = tmp_path / "crossed.json"
    crossed.write_text(json.dumps({**doc, "st_chain": "evm-1"}))
    pre = run("dvp", "precheck", str(crossed), "-c", str(hub.config), "--json")
    assert pre.returncode == 1
    assert any("does not lead to ST chain evm-1" in r for r in first_json(pre.stdout)["reasons"])
    # nothing locked anywhere, and no record of it
    status = run("dvp", "status", "T-HUB-X", "-c", str(hub.config))
    assert status.returncode == 1 and "unknown trade" in status.stderr

    async def legs() -> list[str]:
        found = []
        for chain in ("evm-1", "evm-2"):
            async with NodeClient(hub.addr[chain]) as node:
                found.append(str((await node.query_app("dvp_escrow", trade_id="T-HUB-X")).get("status")))
        async with NodeClient(hub.addr["corda-1"]) as node:
            found.append(str((await node.query_app("dvp_lock", trade_id="T-HUB-X")).get("status")))
        return found
    assert asyncio.run(legs()) == ["none", "none", "none"]


def _daemon(hub: Hub, name: str, path: str) -> tuple[subprocess.Popen[bytes], int]:
    """A relayer daemon on one path, with its own config (the testnet's, another metrics port)."""
    port = free_port()
    text = hub.config.read_text()
    old = load_config(hub.config).telemetry.port
    cfg = hub.rhome / f"relayer-{name}.toml"
    cfg.write_text(text.replace(f"port = {old}\n", f"port = {port}\n", 1))
    log = open(hub.rhome / f"relayer-{name}.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([EXE, "start", "-c", str(cfg), "--path", path], stdout=log, stderr=log, env=hub.env,
                            start_new_session=True)
    log.close()
    return proc, port


def _health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as res:
            doc: dict[str, Any] = json.loads(res.read())
            return doc
    except OSError:
        return None


def _metrics(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_two_daemons_split_by_path_relay_apart_and_a_killed_one_leaves_the_other_path_running(hub: Hub) -> None:
    pid = testnet.relayer_info(hub.home).pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # the testnet's own daemon (both paths) makes way for two
    _wait(lambda: testnet.relayer_info(hub.home).pid is None, "the testnet relayer to stop")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        a, a_port = _daemon(hub, "a", P1)
        b, b_port = _daemon(hub, "b", P2)
        procs += [a, b]
        for port in (a_port, b_port):
            _wait(lambda port=port: (_health(port) or {}).get("workers") is not None, "a daemon to be ready")
        assert set(_health(a_port)["paths"]) == {P1} and set(_health(b_port)["paths"]) == {P2}  # type: ignore[index]

        before = {s: _voucher_balance(hub, s, True) for s in ("evm-1", "evm-2")}

        async def both(count: int) -> None:
            await asyncio.gather(_send(hub, "evm-1", True, 1, count), _send(hub, "evm-2", True, 1, count))
        asyncio.run(both(3))
        for s, log in (("evm-1", "a"), ("evm-2", "b")):
            _wait(lambda s=s: _voucher_balance(hub, s, True) == before[s] + 3, f"3 transfers on {s}",
                  log=hub.rhome / f"relayer-{log}.log")
        # each daemon relayed its own path only, and nothing twice
        for port, mine, theirs in ((a_port, P1, P2), (b_port, P2, P1)):
            url = f"http://127.0.0.1:{port}/metrics"
            _wait(lambda url=url, mine=mine: metrics_by_path(url).get(mine, 0) >= 6, f"{mine}: 3 recv + 3 ack")
            text = _metrics(port)
            assert f'path="{theirs}"' not in text
            assert not any(metrics_by_path(url, "kakehashi_packets_noop_total").values())
            assert not any(metrics_by_path(url, "kakehashi_tx_errors_total").values())

        # SIGKILL the evm-1 daemon: evm-2's path keeps relaying, evm-1's waits
        a.kill()
        a.wait(10)
        before = {s: _voucher_balance(hub, s, True) for s in ("evm-1", "evm-2")}
        asyncio.run(both(2))
        _wait(lambda: _voucher_balance(hub, "evm-2", True) == before["evm-2"] + 2, "evm-2 relayed without evm-1's",
              log=hub.rhome / "relayer-b.log")
        time.sleep(3)  # a few evm blocks: nobody relays evm-1's path
        assert _voucher_balance(hub, "evm-1", True) == before["evm-1"]
        assert (_health(b_port) or {}).get("status") == "ok"
        # restarted, it clears what was sent while it was dead
        a, a_port = _daemon(hub, "a", P1)
        procs.append(a)
        _wait(lambda: _voucher_balance(hub, "evm-1", True) == before["evm-1"] + 2, "evm-1 cleared after restart",
              log=hub.rhome / "relayer-a.log")
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(20)
            if p.poll() is None:
                p.kill()
                p.wait(10)
