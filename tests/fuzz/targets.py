"""Fuzz targets: every decoder that reads bytes from outside, one function per target.

A target takes arbitrary bytes and returns normally when the code under test answered with
its own typed refusal (or accepted the input); any other exception escaping, a hang or a
RecursionError is a defect. The same functions run under hypothesis in ``make test``
(tests/fuzz/test_decoders.py) and under atheris, coverage-guided, in ``make fuzz``
(tests/fuzz/run.py), so both exercise exactly the same contract.

Where a decoder is a verifier (light clients, ICS-23, MPT), the target runs it against real
trusted state built once from the real chains, so a mutated genuine input reaches the deep
checks rather than stopping at the first length test.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from chains.corda.transaction import (
    SignedTransaction,
    TransactionError,
    decode_filtered,
    verify_filtered,
)
from chains.evm.tx import TxError, decode_tx
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.apps.transfer import FungibleTokenPacketData
from chains.ibc.errors import IbcError, TxFailed
from chains.ibc.host import paths
from chains.ibc.host.store import ClientStoreView, Overlay
from chains.node.config import NodeConfigError, node_config_from_toml
from kakehashi.node.v1 import node_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as qpb
from lightclients import ics23
from lightclients.corda.client import CordaLightClient
from lightclients.crypto import keccak256
from lightclients.interface import ClientError, MemoryClientStore
from lightclients.mpt import MptProofError, verify_account_proof, verify_storage_proof
from lightclients.qbft.client import QbftClient
from lightclients.qbft.header import HeaderError, decode_extra_data, decode_header
from relayer.config.schema import config_from_toml
from relayer.config.tables import ConfigError
from relayer.dvp.trade import TradeError, trade_from_json

Target = Callable[[bytes], None]
TARGETS: dict[str, Target] = {}


def target(name: str) -> Callable[[Target], Target]:
    def register(fn: Target) -> Target:
        TARGETS[name] = fn
        return fn

    return register


def _split(data: bytes, parts: int) -> list[bytes]:
    """``parts`` byte strings from one input: each but the last after a 2-byte length, so a
    fuzzer can grow or shrink each part independently (``join`` builds such inputs)."""
    out, pos = [], 0
    for _ in range(parts - 1):
        n = int.from_bytes(data[pos:pos + 2], "big")
        out.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    out.append(data[pos:])
    return out


def join(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts[:-1]) + parts[-1]


# --- EVM chain encodings (RLP) ------------------------------------------------------------------


@target("rlp_header")
def rlp_header(data: bytes) -> None:
    try:
        header = decode_header(data)
    except HeaderError:
        return
    # One encoding per header: the commit hash is over the bytes, the block hash over the
    # re-encoding, so a second encoding of one header would split them.
    assert header.encode() == data, "a header decoded from a non-canonical encoding"
    header.commit_hash()
    header.block_hash()


@target("rlp_extra_data")
def rlp_extra_data(data: bytes) -> None:
    try:
        extra = decode_extra_data(data)
    except HeaderError:
        return
    assert extra.encode() == data, "extraData decoded from a non-canonical encoding"


@target("rlp_tx")
def rlp_tx(data: bytes) -> None:
    try:
        tx = decode_tx(data)
    except TxError:
        return
    assert tx.encode() == data, "a tx decoded from a non-canonical encoding"
    with contextlib.suppress(TxError):
        tx.sender()


# --- Corda transactions ---------------------------------------------------------------------------


@target("corda_tx")
def corda_tx(data: bytes) -> None:
    try:
        stx = SignedTransaction.decode(data)
        stx.check_signatures()
    except TransactionError:
        return
    stx.wtx.tear_off([])


@target("corda_filtered_tx")
def corda_filtered_tx(data: bytes) -> None:
    try:
        verify_filtered(decode_filtered(data))
    except TransactionError:
        return


# --- proofs -----------------------------------------------------------------------------------------


@cache
def _smt_root() -> tuple[bytes, bytes, bytes]:
    """A real SMT root with one key present (its proof is a useful seed) and its value."""
    from chains.store.smt import SparseMerkleTree

    tree = SparseMerkleTree()
    for i in range(16):
        tree.set(f"commitments/ports/transfer/channels/channel-0/sequences/{i}".encode(), bytes([i]) * 32)
    root = tree.commit()
    key = b"commitments/ports/transfer/channels/channel-0/sequences/3"
    return root, key, bytes([3]) * 32


@target("ics23_proof")
def ics23_proof(data: bytes) -> None:
    root, key, value = _smt_root()
    with contextlib.suppress(ics23.Ics23Error):
        ics23.decode_commitment_proof(data)
    assert isinstance(ics23.verify_membership(ics23.SMT_SPEC, root, data, key, value), bool)
    assert isinstance(ics23.verify_non_membership(ics23.SMT_SPEC, root, data, key + b"x"), bool)


@target("mpt_proof")
def mpt_proof(data: bytes) -> None:
    proof = qpb.StorageProof()
    try:
        proof.ParseFromString(data)
    except DecodeError:
        return
    nodes = list(proof.proof)
    root = keccak256(nodes[0]) if nodes else bytes(32)
    with contextlib.suppress(MptProofError):
        verify_storage_proof(root, keccak256(b"slot"), nodes)
    with contextlib.suppress(MptProofError):
        verify_account_proof(root, b"\x11" * 20, nodes)


# --- light clients (headers, checkpoints, misbehaviour, initial states) ------------------------------


@cache
def client_pair() -> Any:
    """The real EVM (a) and Corda (b) hosts with clients of each other, one block past them."""
    from tests.support.pair import make_pair

    pair = make_pair("evm-corda")
    pair.create_clients()
    pair.update(pair.a)  # each client now trusts a height whose IBC store holds something
    pair.update(pair.b)
    pair.a.idle()
    pair.b.idle()
    return pair


@cache
def _clients() -> dict[str, tuple[Any, Any, int]]:
    """(module, client store, now) of a real qbft client of the EVM chain and a real corda client
    of the Corda chain, as the hosts in tests/support built them."""
    pair = client_pair()
    out = {}
    for host, module in ((pair.b, QbftClient()), (pair.a, CordaLightClient())):
        cid = pair.client[host.chain_id]
        out[module.client_type] = (module, (host.store, paths.client_prefix(cid)), host.now_ns)
    return out


def _client_message(client_type: str, data: bytes) -> None:
    module, (store, prefix), now = _clients()[client_type]
    view = ClientStoreView(Overlay(store), prefix)  # writes go to a throwaway overlay
    try:
        module.verify_client_message(view, data, now)
    except ClientError:
        return
    try:
        if module.check_for_misbehaviour(view, data):
            module.update_state_on_misbehaviour(view, data)
        else:
            module.update_state(view, data)
    except ClientError:
        pass


@target("qbft_client_message")
def qbft_client_message(data: bytes) -> None:
    _client_message(QbftClient.client_type, data)


@target("corda_checkpoint")
def corda_checkpoint(data: bytes) -> None:
    _client_message(CordaLightClient.client_type, data)


@target("client_states")
def client_states(data: bytes) -> None:
    cs, cons = _split(data, 2)
    for module in (QbftClient(), CordaLightClient()):
        store = MemoryClientStore()
        try:
            module.initialize(store, cs, cons, 1_700_000_000 * 10**9)
        except ClientError:
            continue
        module.status(store, 1_700_000_000 * 10**9)
        module.latest_height(store)


@target("proof_verification")
def proof_verification(data: bytes) -> None:
    """A (proof, path, value) at the client's latest height, through each real client and each
    chain's prefix."""
    from chains.evm import IBC_HANDLER_ADDRESS

    proof, path, value = _split(data, 3)
    for module, (store, prefix), now in _clients().values():
        view = ClientStoreView(store, prefix)
        height = module.latest_height(view)
        for pre in (b"ibc", IBC_HANDLER_ADDRESS):
            with contextlib.suppress(ClientError):
                module.verify_membership(view, height, proof, pre, path, value, now)
            with contextlib.suppress(ClientError):
                module.verify_non_membership(view, height, proof, pre, path, now)


@target("multiproof")
def multiproof(data: bytes) -> None:
    """A multiproof (ICS-23 batch / MPT multiproof) opened by each real client, then asked
    about a path: what a relayer's first message of a tx carries for the ones after it."""
    from chains.evm import IBC_HANDLER_ADDRESS

    proof, path = _split(data, 2)
    for module, (store, prefix), now in _clients().values():
        if not module.is_batch_proof(proof):
            continue
        view = ClientStoreView(store, prefix)
        height = module.latest_height(view)
        for pre in (b"ibc", IBC_HANDLER_ADDRESS):
            try:
                opening = module.open_batch(view, height, pre, proof, now)
            except ClientError:
                continue
            if opening.covers(path):
                with contextlib.suppress(ClientError):
                    opening.verify_membership(path, b"v")
                with contextlib.suppress(ClientError):
                    opening.verify_non_membership(path)


# --- packet data and IBC messages ------------------------------------------------------------------


@target("packet_data")
def packet_data(data: bytes) -> None:
    with contextlib.suppress(IbcError):
        dvp_app.decode_packet_data(data)
    with contextlib.suppress(IbcError):
        dvp_app.decode_terms(data)
    with contextlib.suppress(IbcError):
        FungibleTokenPacketData.decode(data)


@cache
def channel_pair() -> Any:
    """The real hosts with an open transfer channel; b (Corda) runs the fuzzed messages."""
    from tests.support.pair import make_pair

    pair = make_pair("evm-corda")
    pair.open_channel("transfer")
    return pair


@target("ibc_message")
def ibc_message(data: bytes) -> None:
    """An IBC message (a google.protobuf.Any) run by a real host's handler on an open channel."""
    host = channel_pair().b
    msg = any_pb2.Any()
    try:
        msg.ParseFromString(data)
    except DecodeError:
        return
    kept = host.handler.store
    host.handler.store = Overlay(kept)  # whatever succeeds is written to a throwaway overlay
    try:
        with contextlib.suppress(TxFailed):
            host.handler.execute([msg], host.height.increment(), host.now_ns + 10**9)
    finally:
        host.handler.store = kept


# --- operator inputs: trade files and configs --------------------------------------------------------


@target("trade_file")
def trade_file(data: bytes) -> None:
    """A trade file or feed message as ``kakehashi dvp`` reads it."""
    with contextlib.suppress(TradeError):
        trade_from_json(data)


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # the loaders report this as a config error too
        return None


@target("relayer_config")
def relayer_config(data: bytes) -> None:
    text = _text(data)
    if text is not None:
        with contextlib.suppress(ConfigError):
            config_from_toml(text, Path("/nonexistent"))


@target("node_config")
def node_config(data: bytes) -> None:
    text = _text(data)
    if text is not None:
        with contextlib.suppress(NodeConfigError):
            node_config_from_toml(text, Path("/nonexistent"))


# --- the gRPC handlers, in process -------------------------------------------------------------------

# Calls that wait (for a block or a stream) are fuzzed over real gRPC only, with deadlines.
WAITING = {"SubmitTxAndWait", "StreamBlocks"}
CLEAN = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code


class _Context:
    """What a handler uses of a grpc.aio servicer context: abort, which raises as grpc's does."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Aborted(code, details)


@cache
def _services() -> tuple[asyncio.AbstractEventLoop, list[Any]]:
    """A real node runtime per chain kind (app, SQLite, mempool) behind NodeService, in process.

    The block loop is not started: each handler call runs against committed state, as it would
    between two blocks, and the mempool can be driven to full.
    """
    from chains.node.config import load_node_config
    from chains.node.db import NodeDatabase
    from chains.node.kinds import chain_kind
    from chains.node.main import init_home
    from chains.node.runtime import NodeRuntime, RuntimeConfig
    from chains.node.service import NodeService

    root = Path(tempfile.mkdtemp(prefix="kakehashi-fuzz-"))
    loop = asyncio.new_event_loop()
    services = []
    for kind in ("evm", "corda"):
        home = root / kind
        init_home(home, kind, f"{kind}-fuzz", 4)
        config = load_node_config(home)
        db = NodeDatabase(config.db_path)
        app = chain_kind(kind).open_app(config, db)
        runtime = NodeRuntime(app, db, RuntimeConfig(max_mempool=64, max_block_txs=64))
        runtime.produce_once()
        services.append(NodeService(runtime))
    return loop, services


METHODS = [m for m in node_pb2.DESCRIPTOR.services_by_name["Node"].methods if m.name not in WAITING]


@target("grpc_handlers")
def grpc_handlers(data: bytes) -> None:
    """Byte 0 picks the node kind and method; the rest is the raw request as it comes off the wire."""
    from google.protobuf import message_factory

    from chains.node.service import _parse

    if not data:
        return
    loop, services = _services()
    service = services[data[0] & 1]
    method = METHODS[(data[0] >> 1) % len(METHODS)]
    req_cls = message_factory.GetMessageClass(method.input_type)

    async def call() -> None:
        ctx = _Context()
        request = await _parse(req_cls, data[1:], ctx)
        await getattr(service, method.name)(request, ctx)

    try:
        loop.run_until_complete(call())
    except Aborted as exc:
        assert exc.code in CLEAN, f"{method.name} aborted with {exc}"


__all__ = ["CLEAN", "TARGETS", "channel_pair", "client_pair", "join"]
