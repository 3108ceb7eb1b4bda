"""Atomic DvP end to end: two real nodes, the real ``kakehashi start`` daemon, the settlement client.

One EVM node and one Corda node run as subprocesses for the whole module; a connection and
an unordered ``dvp`` channel are created with the operator's ``kakehashi create`` commands.
Each test settles trades through the Python API or the ``kakehashi dvp`` CLI while relayer
daemons run (or are killed by PID), and every outcome is read back from the two chains
(``dvp_escrow``, ``dvp_lock``, balances), never from the relayer. After every test the ST
(total supply = sum of balances, escrow included) and the SC (per issuer, escrow included)
are conserved, and the escrows hold exactly what the trades still locked say they hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from chains.corda.cash import CASH, cash_state
from chains.corda.dvp import exit_parts
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import Message as EvmCall
from chains.evm import make_tx
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.host import paths
from chains.node.client import NodeClient, RetryPolicy
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.node.v1 import node_pb2
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from relayer.codecs import codec_for
from relayer.codecs.corda import fresh_salt
from relayer.core import packets as planner
from relayer.core.chain import GrpcChainHandle, TxOutcome
from relayer.core.workers import update_for
from relayer.dvp import DvpClient, DvpError, KeyRing, Ledgers, TradeRecord, api, parse_trade
from relayer.dvp.feed import run_feed
from relayer.dvp.trade import SEC_NS, resolve

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent / "kakehashi"
PASSPHRASE = "correct horse battery"
ENV = {**os.environ, "KAKEHASHI_KEYSTORE_PASSPHRASE": PASSPHRASE}


# --- processes -------------------------------------------------------------------------------


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen([str(BIN), *args], stdout=fh, stderr=subprocess.STDOUT, env=ENV)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def kh(*args: str, check: bool = True, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout, env=ENV)
    if check:
        assert out.returncode == 0, f"kakehashi {' '.join(args)}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out


def kj(*args: str) -> Any:
    return json.loads(kh(*args, "--json").stdout)


@dataclass
class Net:
    root: Path
    evm_home: Path
    corda_home: Path
    evm_addr: str
    corda_addr: str
    cfg: Path
    cfg2: Path
    channel: str = ""
    evm_channel: str = ""
    evm_client: str = ""
    corda_client: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    trade_ids: list[str] = field(default_factory=list)
    relayers: int = 0

    def key(self, home: Path, name: str) -> bytes:
        return bytes.fromhex((home / "keys" / f"{name}.key").read_text().strip())

    def evm_address(self, name: str) -> bytes:
        return eth_address(secp256k1_public_key(self.key(self.evm_home, name)))

    def corda_party(self, name: str) -> bytes:
        return ed25519_public_key(self.key(self.corda_home, f"holder-{name}"))

    def relayer(self, cfg: Path | None = None) -> subprocess.Popen[bytes]:
        self.relayers += 1
        proc = _spawn(["start", "-c", str(cfg or self.cfg)], self.root / f"relayer-{self.relayers}.log")
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join((self.root / f"relayer-{i}.log").read_text()[-2500:] for i in range(1, self.relayers + 1))


def _node(root: Path, kind: str, period: str, procs: list[subprocess.Popen[bytes]]) -> tuple[Path, str]:
    home = root / kind
    kh("node", "init", "--chain", kind, "--home", str(home), "--validators", "4", "--chain-id", f"{kind}-dvp",
       "--block-period", period)
    procs.append(_spawn(["node", "start", "--home", str(home), "--grpc", "127.0.0.1:0"], home / "node.log"))
    addr = home / "node.addr"
    deadline = time.monotonic() + 40
    while not (addr.exists() and addr.read_text().strip()):
        assert procs[-1].poll() is None and time.monotonic() < deadline, (home / "node.log").read_text()[-3000:]
        time.sleep(0.05)
    return home, addr.read_text().strip()


def _config(path: Path, net_evm: str, net_corda: str, evm_key: str, corda_key: str) -> Path:
    path.write_text(f"""
[global]
log_level = "info"
log_format = "json"
keystore = "keys"

[mode.packets]
clear_interval = 3

[telemetry]
enabled = false

[[chains]]
id = "evm-dvp"
kind = "evm"
grpc_addr = "{net_evm}"
key_name = "{evm_key}"
max_clock_drift = "30s"

[[chains]]
id = "corda-dvp"
kind = "corda"
grpc_addr = "{net_corda}"
key_name = "{corda_key}"
max_clock_drift = "30s"
""")
    return path


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("dvp")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        evm_home, evm_addr = _node(root, "evm", "1s", procs)
        corda_home, corda_addr = _node(root, "corda", "200ms", procs)
        n = Net(root, evm_home, corda_home, evm_addr, corda_addr, _config(root / "relayer.toml", evm_addr, corda_addr,
                "carol", "holder-firm-c"), _config(root / "relayer2.toml", evm_addr, corda_addr, "issuer-evm",
                                                   "issuer-corda"), procs=procs)
        for name, kind, path in (("carol", "evm", evm_home / "keys" / "carol.key"),
                                 ("holder-firm-c", "corda", corda_home / "keys" / "holder-firm-c.key"),
                                 ("issuer-evm", "evm", evm_home / "keys" / "issuer.key"),
                                 ("issuer-corda", "corda", corda_home / "keys" / "issuer.key")):
            kh("keys", "add", name, "--kind", kind, "--private-key-file", str(path), "-c", str(n.cfg))
        deadline = time.monotonic() + 30
        while True:
            health = kh("health-check", "-c", str(n.cfg), "--json", check=False)
            if health.returncode == 0 and all(r["height"] >= 2 for r in json.loads(health.stdout)):
                break
            assert time.monotonic() < deadline, health.stdout + health.stderr
            time.sleep(0.5)
        conn = kj("create", "connection", "-c", str(n.cfg), "--a-chain", "evm-dvp", "--b-chain", "corda-dvp")
        chan = kj("create", "channel", "-c", str(n.cfg), "--a-chain", "evm-dvp", "--a-connection",
                  conn["a_connection"], "--a-port", "dvp", "--b-port", "dvp", "--channel-version", dvp_app.VERSION)
        n.evm_channel, n.channel = chan["a_channel"], chan["b_channel"]
        n.evm_client, n.corda_client = conn["a_client"], conn["b_client"]
        yield n
    finally:
        for proc in reversed(procs):
            _stop(proc)


# --- chain-side helpers ----------------------------------------------------------------------


@pytest.fixture
async def client(net: Net, tmp_path: Path) -> AsyncIterator[DvpClient]:
    ledgers = await Ledgers.connect(net.evm_addr, net.corda_addr, net.channel)
    record = TradeRecord(tmp_path / "dvp.sqlite")
    try:
        yield DvpClient(ledgers, record=record)
        await conservation(net, ledgers)
    finally:
        record.close()
        await ledgers.close()
        for proc in net.procs[2:]:
            _stop(proc)
        del net.procs[2:]


async def until(what: str, cond: Callable[[], Awaitable[bool]], net: Net, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}\n{net.logs()}")
        await asyncio.sleep(0.25)


@contextlib.asynccontextmanager
async def handles(net: Net, led: Ledgers) -> AsyncIterator[tuple[GrpcChainHandle, GrpcChainHandle]]:
    """Relayer-side chain handles driven by hand (a late, a replaying or a forging relayer)."""
    evm = GrpcChainHandle("evm-dvp", NodeClient(net.evm_addr, retry=RetryPolicy(attempts=3)),
                          codec_for("evm", net.key(net.evm_home, "carol"), led.evm_info,
                                    max_clock_drift_ns=30 * SEC_NS))
    corda = GrpcChainHandle("corda-dvp", NodeClient(net.corda_addr, retry=RetryPolicy(attempts=3)),
                            codec_for("corda", net.key(net.corda_home, "holder-firm-c"), led.corda_info,
                                      max_clock_drift_ns=30 * SEC_NS))
    try:
        yield evm, corda
    finally:
        await evm.node.close()
        await corda.node.close()


async def relay_recv(net: Net, evm: GrpcChainHandle, corda: GrpcChainHandle, seq: int,
                     data: bytes | None = None) -> tuple[TxOutcome, chpb.Packet]:
    """MsgRecvPacket for the dvp packet ``seq`` with a real commitment proof (and, if given,
    packet data other than what was committed)."""
    height = (await corda.latest()).height
    packet = (await corda.packet_events("send_packet", "dvp", net.channel, [seq]))[seq].packet()
    assert packet is not None
    proof = await corda.query(paths.packet_commitment("dvp", net.channel, seq), height)
    assert proof.value is not None
    sent = chpb.Packet()
    sent.CopyFrom(packet)
    if data is not None:
        sent.data = data
    update = await update_for(corda, evm, net.evm_client, height)
    return await evm.submit([update, planner.recv_msg(sent, proof.proof, height, "relayer")]), packet


def trade_doc(net: Net, trade_id: str, *, qty: int = 10, amount: int = 1000, deadline_s: int = 120,
              timeout_s: int | None = None, seller: str = "alice", buyer: str = "bob", payee: str = "firm-a",
              payer: str = "firm-b", sc_brand: str | None = None) -> dict[str, Any]:
    net.trade_ids.append(trade_id)
    doc: dict[str, Any] = {
        "trade_id": trade_id, "st_quantity": qty, "sc_amount": amount,
        "seller": {"evm": "0x" + net.evm_address(seller).hex(), "corda": net.corda_party(payee).hex()},
        "buyer": {"evm": "0x" + net.evm_address(buyer).hex(), "corda": net.corda_party(payer).hex()},
        "deadline_s": deadline_s,
    }
    if timeout_s is not None:
        doc["timeout_s"] = timeout_s
    if sc_brand is not None:
        doc["sc_brand"] = sc_brand
    return doc


def keys_for(net: Net, seller: str = "alice", payer: str = "firm-b") -> tuple[bytes, bytes]:
    return net.key(net.evm_home, seller), net.key(net.corda_home, f"holder-{payer}")


async def holdings(led: Ledgers, net: Net) -> dict[str, int]:
    out = {}
    for name in ("alice", "bob", "carol"):
        out[f"st:{name}"] = (await led.st_holding(net.evm_address(name)))[0]
    for name in ("firm-a", "firm-b", "firm-c"):
        out[f"sc:{name}"] = await led.sc_balance(net.corda_party(name), led.cash_issuer)
        for brand, issuer in led.brands.items():
            if brand:  # the default brand is sc:NAME above
                out[f"sc.{brand}:{name}"] = await led.sc_balance(net.corda_party(name), issuer, brand)
    return out


async def conservation(net: Net, led: Ledgers) -> None:
    """ST: supply == sum of every balance (escrow included); SC: per issuer, escrow included; the
    escrows hold exactly the trades still locked."""
    genesis = json.loads((net.evm_home / "genesis.json").read_text())
    accounts = [bytes.fromhex(a["address"][2:]) for a in genesis["accounts"]]
    accounts.append(bytes.fromhex(genesis["token_issuer"]["address"][2:]))
    st_total = sum(a["st_balance"] for a in genesis["accounts"])
    supply = await led.st_supply()
    balances = [(await led.st_holding(a))[0] for a in accounts]
    escrow_st = (await led.st_holding(led.escrow_address))[0]
    assert supply == st_total == sum(balances) + escrow_st, (supply, st_total, balances, escrow_st)

    cgen = json.loads((net.corda_home / "genesis.json").read_text())
    issued = {cgen.get("brand", ""): sum(cgen["cash"].values()),
              **{b["name"]: sum(b["cash"].values()) for b in cgen.get("brands", [])}}
    escrow_owner = bytes.fromhex(led.corda_info["dvp_escrow_owner"])
    escrow_sc: dict[str, int] = {}
    for brand, issuer in led.brands.items():  # each SC brand on its own
        owners = [bytes.fromhex(h) for h in cgen["holders"].values()] + [issuer]
        sc = [await led.sc_balance(o, issuer, brand) for o in owners]
        escrow_sc[brand] = await led.sc_balance(escrow_owner, issuer, brand)
        assert issued[brand] == sum(sc) + escrow_sc[brand], (brand, issued, sc, escrow_sc)

    locked_st, locked_sc = 0, dict.fromkeys(escrow_sc, 0)
    for tid in net.trade_ids:
        escrow, lock = await led.escrow(tid), await led.lock(tid)
        if escrow["status"] == "locked":
            locked_st += int(escrow["quantity"])
        if lock["status"] == "locked":
            locked_sc[str(lock["brand"])] += int(lock["amount"])
    assert (escrow_st, escrow_sc) == (locked_st, locked_sc)


async def final_on_both(led: Ledgers, trade_id: str) -> tuple[str, str]:
    return (await led.escrow(trade_id))["status"], (await led.lock(trade_id))["status"]


# --- tests -----------------------------------------------------------------------------------


async def test_happy_path_through_the_cli(net: Net, client: DvpClient, tmp_path: Path) -> None:
    led = client.ledgers
    before = await holdings(led, net)
    net.relayer()
    trade = tmp_path / "trade.json"
    trade.write_text(json.dumps(trade_doc(net, "T-happy", qty=25, amount=2500)))
    db = str(tmp_path / "cli.sqlite")
    common = ["-c", str(net.cfg), "--channel", net.channel, "--db", db]
    assert kj("dvp", "precheck", str(trade), *common) == {"trade_id": "T-happy", "ok": True, "reasons": []}
    shown = kh("dvp", "settle", str(trade), *common, "--key", str(net.evm_home / "keys"),
               "--key", str(net.corda_home / "keys"))  # human output: a table, progress on stderr
    assert "settled" in shown.stdout and "T-happy: settled" in shown.stderr, shown
    assert await final_on_both(led, "T-happy") == ("delivered", "settled")
    after = await holdings(led, net)
    assert after["st:alice"] == before["st:alice"] - 25 and after["st:bob"] == before["st:bob"] + 25
    assert after["sc:firm-b"] == before["sc:firm-b"] - 2500 and after["sc:firm-a"] == before["sc:firm-a"] + 2500
    assert (await api.status("T-happy", evm=net.evm_addr, corda=net.corda_addr)).state == "settled"
    status = kj("dvp", "status", "T-happy", *common)
    assert status["state"] == "settled" and status["corda"]["exit_txid"]
    listed = kj("dvp", "list", *common)
    assert [(r["trade_id"], r["state"]) for r in listed] == [("T-happy", "settled")]
    assert listed[0]["events"] == ["locked", "delivered", "settled"]
    # the same trade again: it says what became of it (settled, exit 0), nothing moves
    again = kh("dvp", "settle", str(trade), *common, "--key", str(net.evm_home / "keys"), "--key",
               str(net.corda_home / "keys"), "--json")
    got = json.loads(again.stdout)
    assert got["state"] == "settled" and got["corda"]["exit_txid"] == status["corda"]["exit_txid"], again
    assert got["reasons"] == [f"trade_id: T-happy is already settled by Corda tx {status['corda']['exit_txid'][:16]}.. "
                              f"(EVM escrow delivered)"], got
    # the same trade id for other terms: pre-check names it, exit 1, nothing moves
    reuse = tmp_path / "reuse.json"
    reuse.write_text(json.dumps(trade_doc(net, "T-happy", qty=26, amount=2500)))
    other = kh("dvp", "settle", str(reuse), *common, "--key", str(net.evm_home / "keys"), "--key",
               str(net.corda_home / "keys"), "--json", check=False)
    got, _ = json.JSONDecoder().raw_decode(other.stdout)
    assert other.returncode == 1 and got["state"] == "rejected", other
    assert [r.split(":")[0] for r in got["reasons"]] == ["trade_id", "trade_id"], got
    assert "T-happy is rejected" in other.stderr and len(other.stderr.splitlines()) == 1
    assert await holdings(led, net) == after
    assert [(r["trade_id"], r["state"]) for r in kj("dvp", "list", *common)] == [("T-happy", "settled")]


async def test_error_ack_refunds_buyer_and_st_waits_for_reclaim(net: Net, client: DvpClient) -> None:
    led = client.ledgers
    before = await holdings(led, net)
    seller, buyer = keys_for(net)
    now = await led.evm_time_ns()
    doc = trade_doc(net, "T-mismatch", qty=7, amount=700, deadline_s=25)
    evm_side = resolve(parse_trade(doc), evm_now_ns=now, security_token=led.security_token,
                       cash_issuer=led.cash_issuer, channel=net.channel)
    corda_terms = dvp_pb2.Terms()
    corda_terms.CopyFrom(evm_side.terms)
    corda_terms.st_quantity = 8  # the buyer's packet asks for more than the seller escrowed
    corda_side = type(evm_side)(corda_terms, evm_side.timeout_ns, evm_side.channel)
    assert (await client.lock_evm(evm_side, seller)).status == node_pb2.TX_STATUS_COMMITTED
    assert (await client.lock_corda(corda_side, buyer)).status == node_pb2.TX_STATUS_COMMITTED
    net.relayer()

    async def refunded() -> bool:
        return bool((await led.lock("T-mismatch"))["status"] == "refunded_error")

    await until("the error ack refunds the buyer", refunded, net)
    assert (await led.escrow("T-mismatch"))["status"] == "locked"
    mid = await holdings(led, net)
    assert mid["sc:firm-b"] == before["sc:firm-b"] and mid["sc:firm-a"] == before["sc:firm-a"]
    assert mid["st:alice"] == before["st:alice"] - 7 and mid["st:bob"] == before["st:bob"]
    # the escrow stays locked until the deadline; reclaim before it is refused
    with pytest.raises(DvpError, match="deadline"):
        await client.reclaim("T-mismatch", seller)
    got = await client.reclaim("T-mismatch", net.key(net.evm_home, "bob"), wait=True, wait_s=60)
    assert got.state == "reclaimed"
    assert await final_on_both(led, "T-mismatch") == ("reclaimed", "refunded_error")
    assert await holdings(led, net) == before


async def evm_call(net: Net, led: Ledgers, signer: str, to: bytes, method: str, *args: bytes) -> node_pb2.TxResult:
    """One EVM tx outside the settlement client (its own checks would stop the bad ones first)."""
    key = net.key(net.evm_home, signer)
    address = "0x" + eth_address(secp256k1_public_key(key)).hex()
    nonce = int((await led.evm.query_app("account", address=address))["nonce"])
    return await led.submit_and_wait(True, make_tx(key, led.evm_chain_id, nonce, [EvmCall(to, method, args)]).encode())


async def test_buyer_delisted_after_lock_gets_an_error_ack(net: Net, client: DvpClient) -> None:
    led = client.ledgers
    carol = net.evm_address("carol")
    token = led.security_token
    assert (await evm_call(net, led, "issuer", token, "whitelist", carol, b"\x01")).status == \
        node_pb2.TX_STATUS_COMMITTED
    try:
        before = await holdings(led, net)
        seller, buyer = keys_for(net)
        got = await client.settle(parse_trade(trade_doc(net, "T-delisted", qty=6, amount=600, buyer="carol",
                                                        deadline_s=20)), seller, buyer, follow=False)
        assert got.state == "locked", got
    finally:
        assert (await evm_call(net, led, "issuer", token, "whitelist", carol, b"\x00")).status == \
            node_pb2.TX_STATUS_COMMITTED
    net.relayer()
    got = await client.follow("T-delisted", 60)
    assert got.state == "refunded-error", (got, net.logs())
    assert await final_on_both(led, "T-delisted") == ("locked", "refunded_error")
    assert (await holdings(led, net))["sc:firm-b"] == before["sc:firm-b"]
    # the chain itself refuses a reclaim before the deadline (the client would not even send it)
    early = await evm_call(net, led, "alice", led.escrow_address, "reclaim", b"T-delisted")
    assert early.status == node_pb2.TX_STATUS_FAILED and "deadline" in early.reason, early.reason
    assert (await led.escrow("T-delisted"))["status"] == "locked"
    got = await client.reclaim("T-delisted", net.key(net.evm_home, "carol"), wait=True, wait_s=60)
    assert got.state == "reclaimed"
    assert await holdings(led, net) == before
    row = client.record.get("T-delisted") if client.record else None
    assert row is not None and row.published == ["locked", "refunded-error", "reclaimed"]


async def test_timeout_refunds_buyer_seller_reclaims_and_late_recv_is_rejected(net: Net, client: DvpClient) -> None:
    led = client.ledgers
    before = await holdings(led, net)
    seller, buyer = keys_for(net)
    doc = trade_doc(net, "T-timeout", qty=5, amount=500, deadline_s=14, timeout_s=10)
    got = await client.settle(parse_trade(doc), seller, buyer, follow=False)
    assert got.state == "locked", got
    lock = await led.lock("T-timeout")
    timeout_ns = int(lock["timeout_timestamp"])

    async def past_timeout() -> bool:
        return await led.evm_time_ns() > timeout_ns + 2 * SEC_NS

    await until("the EVM clock passes the packet timeout", past_timeout, net)
    # A relayer that shows up late tries to deliver anyway: the EVM core refuses the recv.
    async with handles(net, led) as (evm, corda):
        late, _ = await relay_recv(net, evm, corda, int(lock["sequence"]))
    assert not late.committed and "timed out" in late.reason, late.reason
    assert (await led.escrow("T-timeout"))["status"] == "locked"
    net.relayer()

    async def timed_out() -> bool:
        return bool((await led.lock("T-timeout"))["status"] == "refunded_timeout")

    await until("the relayer proves the timeout on Corda", timed_out, net)
    after_refund = await holdings(led, net)
    assert after_refund["sc:firm-b"] == before["sc:firm-b"] and after_refund["st:bob"] == before["st:bob"]
    # the seller's back office reclaims through the CLI, which waits for the deadline
    out = kj("dvp", "reclaim", "T-timeout", "--wait", "-c", str(net.cfg), "--db", str(net.root / "reclaim.sqlite"),
             "--key", str(net.evm_home / "keys" / "alice.key"))
    assert out["state"] == "reclaimed", out
    assert (await client.status("T-timeout")).state == "reclaimed"
    assert await final_on_both(led, "T-timeout") == ("reclaimed", "refunded_timeout")
    assert await holdings(led, net) == before
    row = client.record.get("T-timeout") if client.record else None
    assert row is not None and row.published == ["locked", "refunded-timeout", "reclaimed"]


async def test_relayer_killed_after_each_step_then_restarted(net: Net, client: DvpClient) -> None:
    led = client.ledgers
    seller, buyer = keys_for(net)

    async def status(tid: str) -> tuple[str, str]:
        return await final_on_both(led, tid)

    # after lock: both legs locked while no relayer runs; one is started and killed at once
    got = await client.settle(parse_trade(trade_doc(net, "T-kill-lock", qty=3, amount=300)), seller, buyer,
                              follow=False)
    assert got.state == "locked"
    first = net.relayer()
    await asyncio.sleep(0.5)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert await status("T-kill-lock") in (("locked", "locked"), ("delivered", "locked"), ("delivered", "settled"))
    # after recv: killed as soon as the EVM delivered, before (or while) the ack goes back
    second = net.relayer()
    got = await client.settle(parse_trade(trade_doc(net, "T-kill-recv", qty=3, amount=300)), seller, buyer,
                              follow=False)

    async def delivered() -> bool:
        return bool((await led.escrow("T-kill-recv"))["status"] == "delivered")

    await until("the recv of T-kill-recv", delivered, net)
    os.kill(second.pid, signal.SIGKILL)
    second.wait(timeout=10)
    # after ack: a relayer settles a third trade fully, then is killed
    third = net.relayer()
    got = await client.settle(parse_trade(trade_doc(net, "T-kill-ack", qty=3, amount=300)), seller, buyer,
                              wait_s=60)
    assert got.state == "settled", got
    os.kill(third.pid, signal.SIGKILL)
    third.wait(timeout=10)
    # restarted: every trade ends settled, exactly once on both chains
    net.relayer()
    for tid in ("T-kill-lock", "T-kill-recv", "T-kill-ack"):
        got = await client.follow(tid, 60)
        assert got.state == "settled", (tid, got, net.logs())
        assert await status(tid) == ("delivered", "settled")


async def test_two_relayers_race_and_every_trade_settles_once(net: Net, client: DvpClient) -> None:
    led = client.ledgers
    before = await holdings(led, net)
    net.relayer(net.cfg)
    net.relayer(net.cfg2)
    seller, buyer = keys_for(net)
    trades = [parse_trade(trade_doc(net, f"T-two-{i}", qty=2, amount=200)) for i in range(4)]
    results = await asyncio.gather(*(client.settle(t, seller, buyer, wait_s=90) for t in trades))
    assert [r.state for r in results] == ["settled"] * 4, [r.to_json() for r in results]
    after = await holdings(led, net)
    assert after["st:bob"] == before["st:bob"] + 8 and after["sc:firm-a"] == before["sc:firm-a"] + 800


async def test_precheck_failures_lock_nothing(net: Net, client: DvpClient, tmp_path: Path) -> None:
    led = client.ledgers
    before = await holdings(led, net)
    seller, buyer = keys_for(net)
    cases = {
        "T-bad-buyer": (trade_doc(net, "T-bad-buyer", buyer="carol"), "buyer.evm"),
        "T-poor-buyer": (trade_doc(net, "T-poor-buyer", amount=10**9), "buyer.corda"),
        "T-no-st": (trade_doc(net, "T-no-st", seller="carol", buyer="bob"), "seller.evm"),
    }
    for tid, (doc, field_name) in cases.items():
        s_key = net.key(net.evm_home, "carol") if tid == "T-no-st" else seller
        got = await client.settle(parse_trade(doc), s_key, buyer)
        assert got.state == "rejected" and any(r.startswith(field_name) for r in got.reasons), got
        assert await final_on_both(led, tid) == ("none", "none")
    # a timeout after the deadline (only comparable once resolved) and a channel that does not exist
    bad = trade_doc(net, "T-bad-times", deadline_s=3)
    bad["timeout_ns"] = await led.evm_time_ns() + 60 * SEC_NS
    reasons = await client.precheck(parse_trade({**bad, "channel": "channel-99"}))
    assert {r.split(":")[0] for r in reasons} == {"channel", "deadline", "timeout"}, reasons
    # a deadline beyond the clients' trusting period (14 days): they would expire unless refreshed
    far = await client.precheck(parse_trade(trade_doc(net, "T-far", deadline_s=15 * 86400)))
    assert len(far) == 2 and all(r.startswith("client:") and "expires" in r for r in far), far
    assert await api.precheck(parse_trade(trade_doc(net, "T-near")), evm=net.evm_addr, corda=net.corda_addr,
                              channel=net.channel) == []
    # the CLI: exit 1, every reason listed, nothing locked
    trade = tmp_path / "bad.json"
    trade.write_text(json.dumps(trade_doc(net, "T-cli-bad", buyer="carol", amount=10**9)))
    out = kh("dvp", "precheck", str(trade), "-c", str(net.cfg), "--channel", net.channel, "--json", check=False)
    doc, _ = json.JSONDecoder().raw_decode(out.stdout)  # then the CLI's own {"ok": false, ...} line
    assert out.returncode == 1 and not doc["ok"]
    assert {r.split(":")[0] for r in doc["reasons"]} >= {"buyer.evm", "buyer.corda"}
    assert await final_on_both(led, "T-cli-bad") == ("none", "none")
    # a trade id neither chain nor the record knows, and a config path that does not exist
    unknown = kh("dvp", "status", "T-never-seen", "-c", str(net.cfg), "--db", str(tmp_path / "none.sqlite"),
                 check=False)
    assert unknown.returncode == 1 and "unknown trade" in unknown.stderr and len(unknown.stderr.splitlines()) == 1
    nocfg = kh("dvp", "precheck", str(trade), "-c", str(tmp_path / "missing.toml"), check=False)
    assert nocfg.returncode == 1 and "cannot read config file" in nocfg.stderr, nocfg.stderr
    # a feed file with a trade that fails pre-check and a line that is no trade: reported, not fatal
    feed = tmp_path / "trades.jsonl"
    feed.write_text(json.dumps(trade_doc(net, "T-file-bad", buyer="carol")) + "\n{\"trade_id\": 5}\n")
    report = kj("dvp", "feed", "--file", str(feed), "-c", str(net.cfg), "--channel", net.channel, "--db",
                str(tmp_path / "feed.sqlite"), "--key", str(net.evm_home / "keys"), "--key", str(net.corda_home / "keys"))
    assert report["received"] == 2 and report["outcomes"] == {"rejected": 1, "invalid": 1}, report
    assert await final_on_both(led, "T-file-bad") == ("none", "none")
    assert await holdings(led, net) == before


async def test_a_trade_in_the_second_brand_moves_that_brand_only(net: Net, client: DvpClient, tmp_path: Path) -> None:
    """KUSD (its own issuer, admitting firm-a and firm-b) settles in KUSD; the default brand
    does not move; ``dvp watch --once`` shows the record's trades by brand."""
    led = client.ledgers
    assert set(led.brands) == {"", "KUSD"} and led.brands["KUSD"] != led.cash_issuer
    before = await holdings(led, net)
    net.relayer()
    seller, buyer = keys_for(net)
    got = await client.settle(parse_trade(trade_doc(net, "T-kusd", qty=3, amount=700, sc_brand="KUSD")), seller, buyer)
    assert got.state == "settled", got
    lock = await led.lock("T-kusd")
    assert lock["brand"] == "KUSD" and lock["cash_issuer"] == led.brands["KUSD"].hex()
    after = await holdings(led, net)
    moved = {k: after[k] - before[k] for k in before if after[k] != before[k]}
    assert moved == {"st:alice": -3, "st:bob": 3, "sc.KUSD:firm-b": -700, "sc.KUSD:firm-a": 700}, moved
    # the board over this client's real record: the KUSD trade, settled, under its brand
    shown = kh("dvp", "watch", "--once", "--db", str(tmp_path / "dvp.sqlite"))
    line = next(ln for ln in shown.stdout.splitlines() if "T-kusd" in ln)
    assert "settled" in line and "KUSD" in line and net.channel in line, shown.stdout
    assert "trades by path and SC brand" in shown.stdout


async def test_a_trade_of_an_unknown_brand_or_an_unadmitted_buyer_locks_nothing(net: Net, client: DvpClient) -> None:
    led = client.ledgers
    before = await holdings(led, net)
    seller, _ = keys_for(net)
    cases = {
        "T-brand-none": (trade_doc(net, "T-brand-none", sc_brand="NOPE"), "firm-b",
                         "sc_brand: 'NOPE' is not an SC brand of the Corda chain (it issues '', 'KUSD')"),
        "T-brand-firm-c": (trade_doc(net, "T-brand-firm-c", sc_brand="KUSD", payer="firm-c"), "firm-c",
                           "buyer.corda: {buyer} is not admitted to hold SC brand 'KUSD'"),
        "T-brand-issuer": ({**trade_doc(net, "T-brand-issuer", sc_brand="KUSD"),
                            "cash_issuer": led.cash_issuer.hex()}, "firm-b",
                           f"cash_issuer: {led.cash_issuer.hex()[:16]}.. does not issue SC brand 'KUSD'"),
    }
    for tid, (doc, payer, reason) in cases.items():
        buyer_key = net.key(net.corda_home, f"holder-{payer}")
        expected = reason.format(buyer=net.corda_party(payer).hex()[:16] + "..")
        assert any(r.startswith(expected) for r in await client.precheck(parse_trade(doc))), (tid, expected)
        got = await client.settle(parse_trade(doc), seller, buyer_key)
        assert got.state == "rejected" and any(r.startswith(expected) for r in got.reasons), got
        assert await final_on_both(led, tid) == ("none", "none")
    assert await holdings(led, net) == before


async def test_feed_over_mqtt_settles_each_trade(net: Net, client: DvpClient, mosquitto: Any,
                                                 tmp_path: Path) -> None:
    led = client.ledgers
    net.relayer()
    docs = [trade_doc(net, "T-feed-1", qty=4, amount=400), trade_doc(net, "T-feed-2", buyer="carol"),
            trade_doc(net, "T-feed-3", qty=6, amount=600)]
    events: list[tuple[str, dict[str, Any]]] = []
    feed = None
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="dvp-test") as mq:
        await mq.subscribe("kakehashi/dvp/#", qos=1)
        feed = subprocess.Popen(
            [str(BIN), "dvp", "feed", "--mqtt", "pts/trades", "--broker", f"{mosquitto.host}:{mosquitto.port}",
             "--count", "3", "--concurrency", "2", "--json", "-c", str(net.cfg), "--channel", net.channel,
             "--db", str(tmp_path / "feed.sqlite"), "--key", str(net.evm_home / "keys"),
             "--key", str(net.corda_home / "keys")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        assert feed.stderr is not None
        ready = await asyncio.wait_for(asyncio.to_thread(feed.stderr.readline), 60)
        assert b"subscribed to pts/trades" in ready, ready  # only then does the PTS publish
        for doc in docs:
            await mq.publish("pts/trades", json.dumps(doc).encode(), qos=1)

        async def collect() -> None:
            async for msg in mq.messages:
                assert isinstance(msg.payload, bytes)
                events.append((str(msg.topic), json.loads(msg.payload)))
                if sum(1 for t, _ in events if t.endswith("/settled")) == 2:
                    return

        await asyncio.wait_for(collect(), 120)
    out, err = feed.communicate(timeout=120)
    assert feed.returncode == 0, err.decode()[-3000:]
    report = json.loads(out)
    assert report["received"] == 3 and report["outcomes"] == {"settled": 2, "rejected": 1}, report
    topics = [t for t, _ in events]
    for tid in ("T-feed-1", "T-feed-3"):
        assert [t for t in topics if f"/{tid}/" in t] == [f"kakehashi/dvp/{tid}/{e}" for e in
                                                          ("locked", "delivered", "settled")]
        assert await final_on_both(led, tid) == ("delivered", "settled")
    assert not any("/T-feed-2/" in t for t in topics)
    assert await final_on_both(led, "T-feed-2") == ("none", "none")
    assert all(body["trade_id"] in ("T-feed-1", "T-feed-3") for _, body in events)


async def test_forging_or_replaying_relayer_moves_nothing(net: Net, client: DvpClient) -> None:
    led = client.ledgers
    seller, buyer = keys_for(net)
    before = await holdings(led, net)
    ok = await client.settle(parse_trade(trade_doc(net, "T-replay", qty=4, amount=400)), seller, buyer,
                             follow=False)
    now = await led.evm_time_ns()
    bad_doc = trade_doc(net, "T-forge", qty=7, amount=700, deadline_s=120)
    evm_side = resolve(parse_trade(bad_doc), evm_now_ns=now, security_token=led.security_token,
                       cash_issuer=led.cash_issuer, channel=net.channel)
    asked = dvp_pb2.Terms()
    asked.CopyFrom(evm_side.terms)
    asked.st_quantity = 9  # the buyer's packet does not match the seller's escrow: an error ack is due
    assert ok.state == "locked"
    assert (await client.lock_evm(evm_side, seller)).status == node_pb2.TX_STATUS_COMMITTED
    assert (await client.lock_corda(type(evm_side)(asked, evm_side.timeout_ns, net.channel), buyer)).status == \
        node_pb2.TX_STATUS_COMMITTED
    replay_seq = int((await led.lock("T-replay"))["sequence"])
    forge_seq = int((await led.lock("T-forge"))["sequence"])
    async with handles(net, led) as (evm, corda):
        # forged recv: the committed packet asks for 9 ST; data claiming 7 (the escrow's terms) is refused
        forged, _ = await relay_recv(net, evm, corda, forge_seq, data=dvp_app.encode_packet_data(evm_side.terms))
        assert not forged.committed and "ProofFailed" in forged.reason, forged.reason
        assert (await led.escrow("T-forge"))["status"] == "locked"
        # the honest recv writes an error ack; a success ack in its place cannot settle the lock
        honest, packet = await relay_recv(net, evm, corda, forge_seq)
        assert honest.committed and (await led.escrow("T-forge"))["status"] == "locked"
        height = (await evm.latest()).height
        proof = await evm.query(paths.packet_ack("dvp", net.evm_channel, forge_seq), height)
        assert proof.value is not None
        update = await update_for(evm, corda, net.corda_client, height)
        fake = await corda.submit([update, planner.ack_msg(packet, dvp_app.SUCCESS_ACK, proof.proof, height, "r")])
        assert not fake.committed and "ProofFailed" in fake.reason, fake.reason
        assert (await led.lock("T-forge"))["status"] == "locked"
        # replay: a recv delivered once is a no-op the second time
        first, _ = await relay_recv(net, evm, corda, replay_seq)
        assert first.committed and (await led.escrow("T-replay"))["status"] == "delivered"
        mid = await holdings(led, net)
        again, _ = await relay_recv(net, evm, corda, replay_seq)
        assert again.committed and again.noops == 1, again
        assert await holdings(led, net) == mid
    assert mid["st:bob"] == before["st:bob"] + 4 and mid["sc:firm-a"] == before["sc:firm-a"]
    net.relayer()  # an honest relayer finishes both
    assert (await client.follow("T-replay", 60)).state == "settled"
    assert (await client.follow("T-forge", 60)).state == "refunded-error"
    after = await holdings(led, net)
    assert after["st:bob"] == before["st:bob"] + 4 and after["sc:firm-a"] == before["sc:firm-a"] + 400
    assert after["sc:firm-b"] == before["sc:firm-b"] - 400 and after["st:alice"] == before["st:alice"] - 11


async def test_escrowed_cash_moves_only_through_an_exit(net: Net, client: DvpClient) -> None:
    led = client.ledgers
    seller, buyer = keys_for(net)
    got = await client.settle(parse_trade(trade_doc(net, "T-encumbered", qty=3, amount=333)), seller, buyer,
                              follow=False)
    assert got.state == "locked"
    lock = await led.lock("T-encumbered")
    lock_ref = pb.StateRef(txid=bytes.fromhex(lock["lock"]["txid"]), index=lock["lock"]["index"])
    cash_ref = pb.StateRef(txid=bytes.fromhex(lock["cash"]["txid"]), index=lock["cash"]["index"])
    dvp_lock = dvp_pb2.DvpLock.FromString(bytes.fromhex(lock["lock_state"]))
    admission, _ = await led.admission(led.cash_issuer)
    assert admission is not None
    adm_ref = pb.StateRef(txid=bytes.fromhex(admission["txid"]), index=admission["index"])
    payer = net.corda_party("firm-b")
    back = cash_state(led.cash_issuer, payer, 333, led.notary)
    move = pb.Command(contract=CASH, name="Move", signers=[payer])
    attempts = {
        # the buyer takes its cash back with a plain Cash move (lock consumed too)
        "move both": WireTransaction((cash_ref, lock_ref), (back,), (move,), led.notary, fresh_salt(),
                                     references=(adm_ref,)),
        # only the escrowed cash, leaving the lock behind
        "move cash": WireTransaction((cash_ref,), (back,), (move,), led.notary, fresh_salt(), references=(adm_ref,)),
    }
    for kind in ("Settle", "RefundOnError", "RefundOnTimeout"):  # an exit with no ack or timeout proving it
        ins, outs, cmds = exit_parts(kind, lock_ref, dvp_lock, cash_ref, 0, led.notary)
        attempts[kind] = WireTransaction(tuple(ins), tuple(outs), tuple(cmds), led.notary, fresh_salt(),
                                         references=(adm_ref,))
    why = {"move both": "only under a DvP command", "move cash": "encumbered",
           **dict.fromkeys(("Settle", "RefundOnError", "RefundOnTimeout"), "exactly one ack or timeout")}
    escrow_owner = bytes.fromhex(led.corda_info["dvp_escrow_owner"])
    held = await led.sc_balance(escrow_owner, led.cash_issuer)
    for what, wtx in attempts.items():
        result = await led.submit_and_wait(False, SignedTransaction(wtx).sign(buyer).encode())
        assert result.status == node_pb2.TX_STATUS_FAILED, (what, result)
        assert why[what] in result.reason, (what, result.reason)
        assert (await led.lock("T-encumbered"))["status"] == "locked", what
    assert await led.sc_balance(escrow_owner, led.cash_issuer) == held
    net.relayer()
    assert (await client.follow("T-encumbered", 60)).state == "settled"


async def test_a_burst_of_trades_settles_concurrently(net: Net, client: DvpClient) -> None:
    """Twenty trades through the feed at concurrency 10, two sellers and two buyers: the client
    pipelines each seller's nonces and waits for each buyer's change; every trade settles once."""
    led = client.ledgers
    before = await holdings(led, net)
    net.relayer()
    docs = []
    for i in range(20):
        if i % 2:
            docs.append(trade_doc(net, f"T-burst-{i}", qty=1, amount=10, seller="bob", buyer="alice", payer="firm-c"))
        else:
            docs.append(trade_doc(net, f"T-burst-{i}", qty=2, amount=20))
    docs.insert(3, docs[0])  # the PTS sends one trade twice: it settles once

    async def source() -> AsyncIterator[bytes]:
        for doc in docs:
            yield json.dumps(doc).encode()

    ring = KeyRing()
    ring.add_dir(net.evm_home / "keys")
    ring.add_dir(net.corda_home / "keys")
    started = time.monotonic()
    report = (await run_feed(client, source(), ring, concurrency=10, wait_s=120)).to_json()
    elapsed = time.monotonic() - started
    assert report["outcomes"] == {"settled": 20, "rejected": 1}, report
    after = await holdings(led, net)
    assert after["st:alice"] == before["st:alice"] - 20 + 10 and after["st:bob"] == before["st:bob"] + 20 - 10
    assert after["sc:firm-a"] == before["sc:firm-a"] + 300
    print(f"\nburst: 20 trades in {elapsed:.1f} s ({20 / elapsed:.2f} trades/s), "
          f"latency p50 {report['latency_p50_s']:.2f} s, p99 {report['latency_p99_s']:.2f} s")
