"""The relayer over two real nodes: an EVM node and a Corda node as subprocesses, real gRPC.

The relayer side runs in process: GrpcChainHandles with the EVM and Corda codecs (signing
with demo keys from the node homes), clients of each chain created on the other, a
connection and an ICS-20 channel opened by the relayer's own handshake workers, then the
Supervisor relays transfers both ways, a voucher back home, a height timeout (EVM -> Corda)
and a timestamp timeout (Corda -> EVM), both refunded; finally a checkpoint forged with the
notaries' keys reaches the EVM chain's client and the relayer's misbehaviour watch freezes it.
Every check reads chain state through QueryApp / QueryIbc, never the relayer's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import any_pb2

from chains.corda.ibc_host import account_of, ibc_command
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import IBC_HANDLER_ADDRESS, make_tx
from chains.evm import Message as EvmCall
from chains.ibc.apps import transfer
from chains.ibc.host import paths
from chains.node.client import NodeClient, RetryPolicy
from kakehashi.corda.v1 import lightclient_pb2 as corda_lc
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from kakehashi.node.v1 import node_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as qbft_lc
from lightclients.corda.checkpoint import sign_checkpoint
from lightclients.corda.client import header_message
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key, sha256
from lightclients.interface import Height
from relayer.codecs import CodecError, CordaCodec, EvmCodec, codec_for
from relayer.codecs.corda import fresh_salt
from relayer.core.chain import GrpcChainHandle, TxOutcome
from relayer.core.supervisor import Supervisor
from relayer.core.workers import Services, Settings
from relayer.ops.telemetry import Telemetry
from tests.support.relaying import RecordingPublisher

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent / "kakehashi"
SEC = 1_000_000_000
HOUR = 3600 * SEC
PORT = "transfer"
# Whole-second EVM block times can sit up to a second from the notaries' clocks.
DRIFT_NS = 30 * SEC


@dataclass
class Node:
    home: Path
    proc: subprocess.Popen[bytes]
    addr: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def key(self, name: str) -> bytes:
        return bytes.fromhex((self.home / "keys" / f"{name}.key").read_text().strip())


def start_node(tmp: Path, kind: str, period: str) -> Node:
    home = tmp / kind
    subprocess.run([str(BIN), "node", "init", "--chain", kind, "--home", str(home), "--validators", "4",
                    "--chain-id", f"{kind}-relay", "--block-period", period],
                   check=True, capture_output=True, timeout=60)
    with (home / "node.log").open("ab") as log:
        proc = subprocess.Popen([str(BIN), "node", "start", "--home", str(home), "--grpc", "127.0.0.1:0"],
                                stdout=log, stderr=subprocess.STDOUT)
    node = Node(home, proc, "")
    addr_file = home / "node.addr"
    deadline = time.monotonic() + 30
    while not (addr_file.exists() and addr_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            node.stop()
            raise AssertionError(f"{kind} node did not start:\n{(home / 'node.log').read_text()[-3000:]}")
        time.sleep(0.05)
    node.addr = addr_file.read_text().strip()
    assert node.addr.startswith("127.0.0.1:")
    return node


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    started: list[Node] = []
    try:
        started.append(start_node(tmp_path, "evm", "1s"))
        started.append(start_node(tmp_path, "corda", "200ms"))
        yield started[0], started[1]
    finally:
        for node in started:
            node.stop()


@dataclass
class Chains:
    evm: GrpcChainHandle
    corda: GrpcChainHandle
    evm_node: Node
    corda_node: Node
    evm_chain_id: int
    notary: bytes


@pytest.fixture
async def chains(nodes: tuple[Node, Node]) -> AsyncIterator[Chains]:
    evm_node, corda_node = nodes
    retry = RetryPolicy(attempts=3, timeout_s=15)
    evm_client, corda_client = NodeClient(evm_node.addr, retry=retry), NodeClient(corda_node.addr, retry=retry)
    try:
        for client in (evm_client, corda_client):
            await until("a first sealed block", functools.partial(_height_at_least, client, 2))
        evm_info = await evm_client.query_app("chain_info")
        corda_info = await corda_client.query_app("chain_info")
        evm_codec = codec_for("evm", evm_node.key("carol"), evm_info, max_clock_drift_ns=DRIFT_NS)
        corda_codec = codec_for("corda", corda_node.key("holder-firm-c"), corda_info, max_clock_drift_ns=DRIFT_NS)
        yield Chains(GrpcChainHandle("evm-relay", evm_client, evm_codec),
                     GrpcChainHandle("corda-relay", corda_client, corda_codec),
                     evm_node, corda_node, int(evm_info["evm_chain_id"]), bytes.fromhex(corda_info["notary_identity"]))
    finally:
        await evm_client.close()
        await corda_client.close()


async def _height_at_least(client: NodeClient, height: int) -> bool:
    return int((await client.status()).latest_height) >= height


def attr(out: TxOutcome, event: str, key: str) -> str:
    for e in out.events:
        if e.type == event:
            return e.text(key)
    raise AssertionError(f"no {event}.{key} in {[e.type for e in out.events]} ({out.reason})")


async def committed(chain: GrpcChainHandle, msgs: list[Any]) -> TxOutcome:
    out = await chain.submit(msgs)
    assert out.committed, f"{chain.chain_id}: {[type(m).__name__ for m in msgs]}: {out.reason}"
    return out


async def until(what: str, cond: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        await asyncio.sleep(0.2)


async def create_client(host: GrpcChainHandle, of: GrpcChainHandle) -> str:
    client_type, client_state, consensus_state = await of.client_init()
    out = await committed(host, [client_pb2.MsgCreateClient(client_type=client_type, client_state=client_state,
                                                            consensus_state=consensus_state)])
    return attr(out, "create_client", "client_id")


async def amount(node: NodeClient, query: str, **args: Any) -> int:
    return int((await node.query_app(query, **args))["amount"])


def packed(msg: Any) -> bytes:
    wrapped = any_pb2.Any()
    wrapped.Pack(msg, type_url_prefix="/")
    return wrapped.SerializeToString(deterministic=True)


async def evm_transfer(c: Chains, user: str, msg: transfer_pb2.MsgTransfer) -> node_pb2.TxResult:
    key = c.evm_node.key(user)
    address = "0x" + eth_address(secp256k1_public_key(key)).hex()
    nonce = int((await c.evm.node.query_app("account", address=address))["nonce"])
    tx = make_tx(key, c.evm_chain_id, nonce, [EvmCall(IBC_HANDLER_ADDRESS, "ibc", (packed(msg),))])
    return await c.evm.node.submit_and_wait(tx.encode())


async def corda_transfer(c: Chains, user: str, msg: transfer_pb2.MsgTransfer) -> node_pb2.TxResult:
    seed = c.corda_node.key(user)
    wtx = WireTransaction((), (), (ibc_command(msg, [ed25519_public_key(seed)]),), c.notary, fresh_salt())
    return await c.corda.node.submit_and_wait(SignedTransaction(wtx).sign(seed).encode())


def evm_account(node: Node, name: str) -> str:
    return "0x" + eth_address(secp256k1_public_key(node.key(name))).hex()


def corda_account(node: Node, name: str) -> str:
    return account_of(ed25519_public_key(node.key(name)))


async def test_codecs_build_verifiable_headers_and_evidence(chains: Chains) -> None:
    c = chains
    assert isinstance(c.evm.codec, EvmCodec) and isinstance(c.corda.codec, CordaCodec)
    for handle, parse in ((c.evm, qbft_lc.ClientMessage), (c.corda, corda_lc.ClientMessage)):
        client_type, _, _ = await handle.client_init()
        assert client_type == handle.light_client().client_type
        latest = (await handle.latest()).height
        trusted = Height(latest.revision_number, latest.revision_height - 1)
        message = parse.FromString(await handle.build_header(trusted, latest))
        got = message.header.trusted_height
        assert (got if isinstance(got, int) else got.revision_height) == trusted.revision_height
        evidence = parse.FromString(await handle.build_misbehaviour(await handle.build_header(trusted, latest),
                                                                    latest))
        assert evidence.WhichOneof("message") == "misbehaviour"
        with pytest.raises(CodecError):
            await handle.build_misbehaviour(b"\xff\xff not a header", latest)
    # bad input to the factory is a typed error naming what is wrong
    for kind, secret, info, words in [
        ("evm", bytes(32), {}, "evm_chain_id"),
        ("corda", bytes(32), {"notary_identity": "zz"}, "malformed"),
        ("corda", bytes(5), {"notary_identity": "00" * 32}, "32-byte"),
        ("cosmos", bytes(32), {}, "unknown chain kind"),
    ]:
        with pytest.raises(CodecError, match=words):
            codec_for(kind, secret, info)


async def test_evm_nonce_is_tracked_and_resynced_after_a_failure(chains: Chains) -> None:
    c = chains
    codec = c.evm.codec
    assert isinstance(codec, EvmCodec)
    # a message the IBC handler refuses: included, FAILED, nonce used; the local count holds
    bad = await c.evm.submit([client_pb2.MsgUpdateClient(client_id="10-qbft-99", client_message=b"x")])
    assert not bad.committed and bad.reason
    assert codec.nonce == 1
    first = await create_client(c.evm, c.corda)
    second = await create_client(c.evm, c.corda)
    assert codec.nonce == 3 and first != second
    account = await c.evm.node.query_app("account", address="0x" + codec.address.hex())
    assert account["nonce"] == 3
    # a stale count (another tool used the key): the node refuses, the codec reads the chain again
    codec.nonce = 1
    refused = await c.evm.submit([client_pb2.MsgUpdateClient(client_id="10-qbft-99", client_message=b"x")])
    assert not refused.committed and "nonce" in refused.reason
    assert codec.nonce is None
    await create_client(c.evm, c.corda)
    assert codec.nonce == 4


async def test_transfers_both_ways_and_a_timeout_refund(chains: Chains) -> None:
    await asyncio.wait_for(_relay_both_ways(chains), timeout=80)


async def _relay_both_ways(c: Chains) -> None:
    evm_client = await create_client(c.evm, c.corda)
    corda_client = await create_client(c.corda, c.evm)
    out = await committed(c.evm, [cpb.MsgConnectionOpenInit(client_id=evm_client, counterparty=cpb.Counterparty(
        client_id=corda_client, prefix=cpb.MerklePrefix(key_prefix=c.corda.prefix)))])
    evm_conn = attr(out, "connection_open_init", "connection_id")

    settings = Settings(signer="relayer", clear_interval=10,
                        trusting_period_ns={c.evm.chain_id: 14 * 24 * HOUR, c.corda.chain_id: 14 * 24 * HOUR})
    svc = Services(settings=settings, telemetry=Telemetry(), mqtt=RecordingPublisher())
    sup = Supervisor(c.evm, c.corda, svc, ports=(PORT,))
    await sup.start()
    try:
        async def conn_open() -> bool:
            raw = (await c.evm.query(paths.connection(evm_conn), prove=False)).value
            return raw is not None and cpb.ConnectionEnd.FromString(raw).state == cpb.CONNECTION_STATE_OPEN
        await until("connection open on the EVM chain", conn_open)
        evm_end = cpb.ConnectionEnd.FromString((await c.evm.query(paths.connection(evm_conn), prove=False)).value
                                               or b"")
        corda_conn = evm_end.counterparty.connection_id

        async def corda_conn_open() -> bool:
            raw = (await c.corda.query(paths.connection(corda_conn), prove=False)).value
            return raw is not None and cpb.ConnectionEnd.FromString(raw).state == cpb.CONNECTION_STATE_OPEN
        await until("connection open on the Corda chain", corda_conn_open)

        out = await committed(c.evm, [chpb.MsgChannelOpenInit(port_id=PORT, channel=chpb.Channel(
            state=chpb.STATE_INIT, ordering=chpb.ORDER_UNORDERED, counterparty=chpb.ChannelCounterparty(port_id=PORT),
            connection_hops=[evm_conn], version=transfer.VERSION))])
        evm_chan = attr(out, "channel_open_init", "channel_id")

        async def channel(chain: GrpcChainHandle, chan: str) -> chpb.Channel | None:
            raw = (await chain.query(paths.channel(PORT, chan), prove=False)).value
            return chpb.Channel.FromString(raw) if raw is not None else None

        async def both_open() -> bool:
            mine = await channel(c.evm, evm_chan)
            if mine is None or mine.state != chpb.STATE_OPEN:
                return False
            theirs = await channel(c.corda, mine.counterparty.channel_id)
            return theirs is not None and theirs.state == chpb.STATE_OPEN
        await until("channel open on both chains", both_open)
        mine = await channel(c.evm, evm_chan)
        assert mine is not None
        corda_chan = mine.counterparty.channel_id

        # EVM -> Corda: alice sends 250 stake to firm-a; firm-a gets a voucher, the EVM escrow holds 250
        alice, firm_a = evm_account(c.evm_node, "alice"), corda_account(c.corda_node, "holder-firm-a")
        alice_before = await amount(c.evm.node, "bank_balance", account=alice, denom="stake")
        sent = await evm_transfer(c, "alice", transfer_pb2.MsgTransfer(
            source_port=PORT, source_channel=evm_chan, denom="stake", amount="250", sender=alice, receiver=firm_a,
            timeout_timestamp=time.time_ns() + HOUR))
        assert sent.status == node_pb2.TX_STATUS_COMMITTED, sent.reason
        voucher = f"{PORT}/{corda_chan}/stake"

        async def evm_to_corda_done() -> bool:
            got = await amount(c.corda.node, "bank_balance", account=firm_a, denom=voucher)
            return got == 250 and not await c.evm.packet_commitments(PORT, evm_chan)
        await until("EVM -> Corda transfer received and acked", evm_to_corda_done)
        assert await amount(c.evm.node, "escrow", port_id=PORT, channel_id=evm_chan, denom="stake") == 250
        assert await amount(c.evm.node, "bank_balance", account=alice, denom="stake") == alice_before - 250

        # Corda -> EVM: firm-b sends 400 jpy to bob; bob gets a voucher, the Corda escrow holds 400
        firm_b, bob = corda_account(c.corda_node, "holder-firm-b"), evm_account(c.evm_node, "bob")
        firm_b_before = await amount(c.corda.node, "bank_balance", account=firm_b, denom="jpy")
        sent = await corda_transfer(c, "holder-firm-b", transfer_pb2.MsgTransfer(
            source_port=PORT, source_channel=corda_chan, denom="jpy", amount="400", sender=firm_b, receiver=bob,
            timeout_timestamp=time.time_ns() + HOUR))
        assert sent.status == node_pb2.TX_STATUS_COMMITTED, sent.reason
        jpy_voucher = f"{PORT}/{evm_chan}/jpy"

        async def corda_to_evm_done() -> bool:
            got = await amount(c.evm.node, "bank_balance", account=bob, denom=jpy_voucher)
            return got == 400 and not await c.corda.packet_commitments(PORT, corda_chan)
        await until("Corda -> EVM transfer received and acked", corda_to_evm_done)
        assert await amount(c.corda.node, "escrow", port_id=PORT, channel_id=corda_chan, denom="jpy") == 400
        assert await amount(c.corda.node, "bank_balance", account=firm_b, denom="jpy") == firm_b_before - 400

        # A packet that times out on Corda by height is refunded to alice on the EVM chain
        corda_height = int((await c.corda.node.status()).latest_height)
        sent = await evm_transfer(c, "alice", transfer_pb2.MsgTransfer(
            source_port=PORT, source_channel=evm_chan, denom="stake", amount="70", sender=alice, receiver=firm_a,
            timeout_height=client_pb2.Height(revision_number=0, revision_height=corda_height + 2)))
        assert sent.status == node_pb2.TX_STATUS_COMMITTED, sent.reason
        assert await amount(c.evm.node, "escrow", port_id=PORT, channel_id=evm_chan, denom="stake") == 320

        async def refunded() -> bool:
            return not await c.evm.packet_commitments(PORT, evm_chan)
        await until("timed-out packet refunded", refunded)
        assert await amount(c.evm.node, "escrow", port_id=PORT, channel_id=evm_chan, denom="stake") == 250
        assert await amount(c.evm.node, "bank_balance", account=alice, denom="stake") == alice_before - 250
        assert await amount(c.corda.node, "bank_balance", account=firm_a, denom=voucher) == 250
        assert await c.corda.unreceived_packets(PORT, corda_chan, [2]) == [2]

        # The voucher goes home: firm-a sends 100 of it back to alice; the EVM escrow releases it
        sent = await corda_transfer(c, "holder-firm-a", transfer_pb2.MsgTransfer(
            source_port=PORT, source_channel=corda_chan, denom=voucher, amount="100", sender=firm_a, receiver=alice,
            timeout_timestamp=time.time_ns() + HOUR))
        assert sent.status == node_pb2.TX_STATUS_COMMITTED, sent.reason

        async def voucher_home() -> bool:
            return (await amount(c.evm.node, "escrow", port_id=PORT, channel_id=evm_chan, denom="stake") == 150
                    and not await c.corda.packet_commitments(PORT, corda_chan))
        await until("voucher returned to the EVM chain", voucher_home)
        assert await amount(c.evm.node, "bank_balance", account=alice, denom="stake") == alice_before - 150
        assert await amount(c.corda.node, "bank_balance", account=firm_a, denom=voucher) == 150

        # A packet that times out on the EVM chain by timestamp is refunded to firm-b on Corda
        evm_time = int((await c.evm.node.status()).latest_time_ns)
        sent = await corda_transfer(c, "holder-firm-b", transfer_pb2.MsgTransfer(
            source_port=PORT, source_channel=corda_chan, denom="jpy", amount="30", sender=firm_b, receiver=bob,
            timeout_timestamp=evm_time + 4 * SEC))
        assert sent.status == node_pb2.TX_STATUS_COMMITTED, sent.reason
        assert await amount(c.corda.node, "bank_balance", account=firm_b, denom="jpy") == firm_b_before - 430

        async def refunded_on_corda() -> bool:
            return not await c.corda.packet_commitments(PORT, corda_chan)
        await until("timestamp-timed-out packet refunded on Corda", refunded_on_corda)
        assert await amount(c.corda.node, "bank_balance", account=firm_b, denom="jpy") == firm_b_before - 400
        assert await amount(c.corda.node, "escrow", port_id=PORT, channel_id=corda_chan, denom="jpy") == 400
        assert await amount(c.evm.node, "bank_balance", account=bob, denom=jpy_voucher) == 400

        # what the relayer did, as its metrics and MQTT events saw it; no worker stopped
        assert sup.health()["status"] == "ok", sup.health()
        events = {(chain, event) for chain, _, _, event, _ in svc.mqtt.events}  # type: ignore[union-attr]
        assert {(c.corda.chain_id, "recv"), (c.evm.chain_id, "ack"), (c.evm.chain_id, "recv"),
                (c.corda.chain_id, "ack"), (c.evm.chain_id, "timeout"), (c.corda.chain_id, "timeout")} <= events
        for src, dst in ((c.evm, c.corda), (c.corda, c.evm)):
            confirmed = svc.telemetry.registry.get_sample_value(
                "kakehashi_packets_confirmed_total", {"src_chain": src.chain_id, "dst_chain": dst.chain_id,
                                                      "kind": "recv"})
            assert confirmed is not None and confirmed >= 1
        # one worker per handshake: no step was sent twice (a duplicate would fail on chain)
        failed = [m for m in svc.telemetry.registry.collect() if m.name == "kakehashi_tx_errors"]
        assert not [x for m in failed for x in m.samples if x.name.endswith("_total") and x.value], failed

        # Misbehaviour: the Corda notaries sign a second checkpoint at the latest height and it
        # reaches the EVM chain's client; the relayer's watch proves the conflict, the client freezes
        await _forge_and_catch(c, evm_client, sup, svc)
    finally:
        with contextlib.suppress(Exception):
            await sup.stop()



async def _forge_and_catch(c: Chains, evm_client: str, sup: Supervisor, svc: Services) -> None:
    raw = (await c.evm.query(paths.client_state(evm_client), prove=False)).value
    trusted = corda_lc.ClientState.FromString(raw or b"").latest_height
    target = int((await c.corda.node.status()).latest_height)
    assert target > trusted
    forged = corda_lc.Header.FromString((await c.corda.node.header(target)).client_header)
    forged.checkpoint.ibc_root = sha256(b"a state the Corda chain never had")
    notaries = [c.corda_node.key(f"notary-{i}") for i in range(4)]
    assert {ed25519_public_key(s) for s in notaries} == {bytes(k) for k in forged.notary_set.public_keys}
    del forged.signatures[:]
    forged.signatures.extend(sign_checkpoint(seed, forged.checkpoint) for seed in notaries)
    forged.trusted_height = trusted
    await committed(c.evm, [client_pb2.MsgUpdateClient(client_id=evm_client, client_message=header_message(forged))])

    async def frozen() -> bool:
        value = (await c.evm.query(paths.client_state(evm_client), prove=False)).value
        return corda_lc.ClientState.FromString(value or b"").frozen_height != 0
    await until("EVM chain's client of Corda frozen by the relayer's evidence", frozen)
    caught = svc.telemetry.registry.get_sample_value(
        "kakehashi_misbehaviour_submitted_total", {"chain": c.evm.chain_id, "client_id": evm_client})
    assert caught == 1

    async def degraded() -> bool:
        return bool(sup.health()["status"] == "degraded")
    await until("workers on the frozen client stopped", degraded)
    assert any("frozen" in why.lower() for why in sup.health()["stopped"].values()), sup.health()
