"""A node's message and mempool limits, over gRPC: each refusal has a clear status code and a
reason, and the node keeps serving.

The oversized-message and batch-limit tests run against real node subprocesses. The mempool
tests run a real node runtime (ledger, SQLite, mempool) behind the real gRPC server in this
process with its block loop paused, so the mempool fills deterministically instead of racing
block production; one block is then produced by hand to show it drains.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chains.corda.cash import CASH, cash_state
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import Message as EvmCall
from chains.evm import make_tx
from chains.evm.chain import SECURITY_TOKEN_ADDRESS
from chains.node.client import NodeClient
from chains.node.config import load_node_config
from chains.node.db import NodeDatabase
from chains.node.kinds import chain_kind
from chains.node.limits import MAX_BATCH_ITEMS, MAX_MESSAGE_BYTES, MAX_TX_BYTES
from chains.node.main import init_home
from chains.node.runtime import NodeRuntime, RuntimeConfig
from chains.node.service import build_server, mark_serving
from kakehashi.corda.v1 import ledger_pb2 as lpb
from kakehashi.node.v1 import node_pb2, node_pb2_grpc
from lightclients.crypto import ed25519_public_key
from relayer.codecs.corda import fresh_salt
from tests.support import live

pytestmark = pytest.mark.slow
EXHAUSTED, INVALID = grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[live.NodeProc]]:
    root: Path = tmp_path_factory.mktemp("limits")
    procs = live.Procs()
    try:
        started = [live.start_node(root, "evm", "evm-limits", "1s", procs),
                   live.start_node(root, "corda", "corda-limits", "200ms", procs)]
        live.wait_heights(*started, height=1)
        yield started
    finally:
        procs.stop_all()


def _stub(node: live.NodeProc) -> node_pb2_grpc.NodeStub:
    channel = grpc.insecure_channel(node.addr, options=[("grpc.max_send_message_length", 64 << 20)])
    return node_pb2_grpc.NodeStub(channel)


def _refusal(call: object, request: object) -> grpc.RpcError:
    try:
        call(request, timeout=30)  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the node accepted the request")


def _serving(node: live.NodeProc) -> None:
    stub = _stub(node)
    assert stub.Status(node_pb2.StatusRequest(), timeout=10).latest_height >= 1
    channel = grpc.insecure_channel(node.addr)
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert node.proc.alive()


def _corda_tx(node: live.NodeProc, payload: int) -> bytes:
    """A correctly signed Corda tx whose one output carries ``payload`` bytes of data."""
    seed = node.key("holder-firm-a")
    party = ed25519_public_key(seed)
    notary = bytes.fromhex(json.loads((node.home / "genesis.json").read_text())["notary_identity"])
    out = cash_state(party, party, 1, notary)
    out.data = out.data + b"\x7a" + _varint(payload) + b"\x00" * payload  # an unknown field 15
    wtx = WireTransaction((), (out,), (lpb.Command(contract=CASH, name="Issue", signers=[party]),), notary,
                          fresh_salt())
    return SignedTransaction(wtx).sign(seed).encode()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _evm_tx(node: live.NodeProc, nonce: int, padding: int = 0) -> bytes:
    genesis = json.loads((node.home / "genesis.json").read_text())
    call = EvmCall(SECURITY_TOKEN_ADDRESS, "transfer", (b"\x01" * 20, b"\x01", b"\x00" * padding))
    return make_tx(node.key("alice"), int(genesis["evm_chain_id"]), nonce, [call]).encode()


def test_a_message_over_4_mib_is_resource_exhausted(nodes: list[live.NodeProc]) -> None:
    for node in nodes:
        exc = _refusal(_stub(node).SubmitTx, node_pb2.SubmitTxRequest(tx=b"\x0a" * (5 << 20)))
        assert exc.code() == EXHAUSTED, exc
        assert "larger than max" in (exc.details() or "")
        _serving(node)


def test_a_transaction_over_1_mib_is_invalid_argument(nodes: list[live.NodeProc]) -> None:
    evm, corda = nodes
    for node, tx in ((evm, _evm_tx(evm, 0, padding=MAX_TX_BYTES)), (corda, _corda_tx(corda, MAX_TX_BYTES))):
        stub = _stub(node)
        exc = _refusal(stub.SubmitTx, node_pb2.SubmitTxRequest(tx=tx))
        assert exc.code() == INVALID, exc
        assert f"transaction is {len(tx)} bytes, more than the node's limit of {MAX_TX_BYTES}" in (exc.details() or "")
        got = stub.SubmitTxs(node_pb2.SubmitTxsRequest(txs=[tx]), timeout=30)
        assert [(o.code, o.reason) for o in got.outcomes] == [
            (INVALID.value[0], f"transaction is {len(tx)} bytes, more than the node's limit of {MAX_TX_BYTES}")]
        _serving(node)
    # just under the limit the same kind of tx is admitted and notarised
    small = _corda_tx(corda, 1000)
    res = _stub(corda).SubmitTxAndWait(node_pb2.SubmitTxAndWaitRequest(tx=small), timeout=30)
    assert res.status == node_pb2.TX_STATUS_COMMITTED, res.reason


def test_batches_over_the_item_limit_are_invalid_argument(nodes: list[live.NodeProc]) -> None:
    over = MAX_BATCH_ITEMS + 1
    for node in nodes:
        stub = _stub(node)
        cases = [
            (stub.SubmitTxs, node_pb2.SubmitTxsRequest(txs=[b"\x01"] * over), f"at most {MAX_BATCH_ITEMS} transactions"),
            (stub.QueryIbcBatch, node_pb2.QueryIbcBatchRequest(paths=["nextClientSequence"] * over),
             f"paths must hold 1..{MAX_BATCH_ITEMS} entries"),
            (stub.QueryAppBatch, node_pb2.QueryAppBatchRequest(queries=[node_pb2.AppQuery(query="chain_info")] * over),
             f"at most {MAX_BATCH_ITEMS} queries"),
            (stub.QueryUnreceivedPackets, node_pb2.QuerySequencesRequest(port_id="transfer", channel_id="channel-0",
                                                                         sequences=range(1, over + 1)),
             f"at most {MAX_BATCH_ITEMS} sequences per call, got {over}"),
            (stub.QueryUnreceivedAcks, node_pb2.QuerySequencesRequest(port_id="transfer", channel_id="channel-0",
                                                                      sequences=range(1, over + 1)),
             f"at most {MAX_BATCH_ITEMS} sequences per call, got {over}"),
        ]
        for call, request, reason in cases:
            exc = _refusal(call, request)
            assert exc.code() == INVALID and reason in (exc.details() or ""), (reason, exc)
        _serving(node)


async def test_the_client_splits_long_sequence_queries(nodes: list[live.NodeProc]) -> None:
    """NodeClient asks 4096 sequences per call, so 10,000 reach the node's own check (here: the
    channel does not exist) instead of its batch limit."""
    async with NodeClient(nodes[1].addr) as client:
        with pytest.raises(Exception, match="channel transfer/channel-0 does not exist"):
            await client.unreceived_packets("transfer", "channel-0", list(range(1, 10_001)))


# --- a full mempool --------------------------------------------------------------------------------


@pytest.fixture(params=["evm", "corda"])
async def paused(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, NodeRuntime, str, Path]]:
    kind = str(request.param)
    home = tmp_path / kind
    init_home(home, kind, f"{kind}-mempool", 4)
    config = load_node_config(home)
    db = NodeDatabase(config.db_path)
    runtime = NodeRuntime(chain_kind(kind).open_app(config, db), db, RuntimeConfig(max_mempool=8, max_block_txs=8))
    runtime.produce_once()
    server, port = build_server(runtime, "127.0.0.1:0")
    await server.start()
    await mark_serving(server)
    try:
        yield kind, runtime, f"127.0.0.1:{port}", home
    finally:
        await server.stop(None)
        db.close()


async def test_a_full_mempool_refuses_with_resource_exhausted_and_keeps_serving(
        paused: tuple[str, NodeRuntime, str, Path]) -> None:
    kind, runtime, addr, home = paused
    node = live.NodeProc(kind, f"{kind}-mempool", home, addr, None)  # type: ignore[arg-type]
    txs = [_evm_tx(node, n) if kind == "evm" else _corda_tx(node, n) for n in range(11)]
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = node_pb2_grpc.NodeStub(channel)
        for tx in txs[:8]:
            await stub.SubmitTx(node_pb2.SubmitTxRequest(tx=tx), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SubmitTx(node_pb2.SubmitTxRequest(tx=txs[8]), timeout=10)
        assert info.value.code() == EXHAUSTED and info.value.details() == "mempool is full (8 transactions)"
        got = await stub.SubmitTxs(node_pb2.SubmitTxsRequest(txs=txs[8:10]), timeout=10)
        assert [(o.code, o.reason) for o in got.outcomes] == [(EXHAUSTED.value[0], "mempool is full (8 transactions)")] * 2
        status = await stub.Status(node_pb2.StatusRequest(), timeout=10)
        assert status.mempool_size == 8
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        block = runtime.produce_once()  # the block loop's next step drains it
        assert len(block.txs) == 8
        assert (await stub.Status(node_pb2.StatusRequest(), timeout=10)).mempool_size == 0
        assert (await stub.SubmitTx(node_pb2.SubmitTxRequest(tx=txs[8]), timeout=10)).tx_hash


# --- the mempool's byte budget and the block's ----------------------------------------------


@pytest.fixture(params=["evm", "corda"])
async def budgeted(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, NodeRuntime, str, Path]]:
    """A paused node whose mempool holds 100 txs but only 6 MiB."""
    kind = str(request.param)
    home = tmp_path / kind
    init_home(home, kind, f"{kind}-bytes", 4)
    config = load_node_config(home)
    db = NodeDatabase(config.db_path)
    runtime = NodeRuntime(chain_kind(kind).open_app(config, db), db,
                          RuntimeConfig(max_mempool=100, max_block_txs=100, max_mempool_bytes=6 * MAX_TX_BYTES))
    runtime.produce_once()
    server, port = build_server(runtime, "127.0.0.1:0")
    await server.start()
    await mark_serving(server)
    try:
        yield kind, runtime, f"127.0.0.1:{port}", home
    finally:
        await server.stop(None)
        db.close()


async def test_the_mempool_byte_budget_refuses_before_decoding_and_blocks_stay_servable(
        budgeted: tuple[str, NodeRuntime, str, Path]) -> None:
    """10,000 x 1 MiB used to fit the count bound; now the bytes run out first, with a reason,
    before the tx is even decoded (no signature check, nothing cached); a block takes at most
    MAX_BLOCK_TX_BYTES of txs, so the block and its results still fit one gRPC answer."""
    kind, runtime, addr, home = budgeted
    node = live.NodeProc(kind, f"{kind}-bytes", home, addr, None)  # type: ignore[arg-type]
    big = 1_000_000
    txs = [_evm_tx(node, n, padding=big) if kind == "evm" else _corda_tx(node, big + n) for n in range(7)]
    assert all(len(t) <= MAX_TX_BYTES for t in txs)
    cached = len(runtime.app._admitted)  # type: ignore[attr-defined]
    async with grpc.aio.insecure_channel(addr, options=[("grpc.max_send_message_length", 8 << 20),
                                                        ("grpc.max_receive_message_length", 32 << 20)]) as channel:
        stub = node_pb2_grpc.NodeStub(channel)
        for tx in txs[:6]:
            await stub.SubmitTx(node_pb2.SubmitTxRequest(tx=tx), timeout=10)
        held = runtime.mempool_bytes()
        assert held == sum(len(t) for t in txs[:6]) and runtime.mempool_size() == 6
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SubmitTx(node_pb2.SubmitTxRequest(tx=txs[6]), timeout=10)
        assert info.value.code() == EXHAUSTED
        assert info.value.details() == (f"mempool is full ({held} of {6 * MAX_TX_BYTES} bytes; "
                                        f"this transaction has {len(txs[6])})")
        # not decoded: garbage of that size gets the same answer, and the admission cache did not grow
        junk = await stub.SubmitTxs(node_pb2.SubmitTxsRequest(txs=[b"\x01" * big] * 3), timeout=10)
        assert {o.code for o in junk.outcomes} == {EXHAUSTED.value[0]}
        assert len(runtime.app._admitted) == cached + 6  # type: ignore[attr-defined]
        # the same bytes again while they wait: the same hash, full or not
        again = await stub.SubmitTx(node_pb2.SubmitTxRequest(tx=txs[0]), timeout=10)
        assert again.tx_hash
        block = runtime.produce_once()  # 2 MiB of txs per block (6 MB in one block was unservable)
        assert len(block.txs) == 2 and runtime.mempool_bytes() == sum(len(t) for t in txs[2:6])
        served = await stub.GetBlock(node_pb2.GetBlockRequest(height=block.height), timeout=10)
        assert len(served.txs) == 2 and len(served.SerializeToString()) < MAX_MESSAGE_BYTES
        stream = stub.StreamBlocks(node_pb2.StreamBlocksRequest(from_height=block.height))
        first = await stream.read()
        assert first.height == block.height and len(first.txs) == 2
        stream.cancel()
        assert (await stub.SubmitTx(node_pb2.SubmitTxRequest(tx=txs[6]), timeout=10)).tx_hash
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
