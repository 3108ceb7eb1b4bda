"""The EVM and Corda chain codecs offline: what their txs decode to on the chain side, nonce
tracking, headers with the trusted height set, evidence, the relayer's view and bad input.
(tests/e2e/test_relayer_two_nodes.py runs the same codecs against real nodes.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2

from chains.corda.ibc_host import IBC_COMMAND, IBC_CONTRACT, ibc_messages
from chains.corda.transaction import SignedTransaction
from chains.evm import IBC_HANDLER_ADDRESS, decode_tx
from chains.ibc.host import paths
from chains.node.client import NodeError
from kakehashi.corda.v1 import lightclient_pb2 as corda_lc
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from kakehashi.node.v1 import node_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as qbft_lc
from lightclients.corda.client import CordaLightClient, encode, header_message, notary_set_key
from lightclients.crypto import ed25519_public_key, sha256
from lightclients.interface import CLIENT_STATE_KEY, Height, MemoryClientStore, consensus_state_key
from lightclients.qbft.client import QbftClient, encode_header_message
from relayer.codecs import CodecError, CordaCodec, EvmCodec, codec_for
from relayer.core.chain import GrpcChainHandle, QueryResult, SignerSync, ViewCompleter
from tests.support.fakewatch import ResultWatch

EVM_KEY = sha256(b"relayer-evm-key")
CORDA_SEED = sha256(b"relayer-corda-seed")
NOTARY = ed25519_public_key(sha256(b"notary"))
MSGS = [client_pb2.MsgUpdateClient(client_id="11-corda-0", client_message=b"h"),
        chpb.MsgRecvPacket(signer="relayer", proof_commitment=b"p")]


class FakeNode:
    def __init__(self, client_header: bytes = b"", nonce: int = 0, latest: int = 9) -> None:
        self.client_header = client_header
        self.nonce = nonce
        self.latest = latest
        self.app_queries: list[tuple[str, dict[str, Any]]] = []

    async def query_app(self, query: str, height: int = 0, **args: Any) -> Any:
        self.app_queries.append((query, dict(args, height=height)))
        if query == "account":
            return {"address": args["address"], "nonce": self.nonce, "balance": 0}
        return {"client_type": "10-qbft", "client_state": "aa", "consensus_state": "bb"}

    async def status(self) -> node_pb2.StatusResponse:
        return node_pb2.StatusResponse(latest_height=self.latest)

    async def header(self, height: int = 0) -> node_pb2.HeaderResponse:
        return node_pb2.HeaderResponse(height=height, client_header=self.client_header)


def unpacked(raw: bytes) -> any_pb2.Any:
    out = any_pb2.Any()
    out.ParseFromString(raw)
    return out


async def test_evm_tx_is_one_signed_handler_call_with_every_message_and_the_tracked_nonce() -> None:
    codec = EvmCodec(EVM_KEY, 77)
    assert isinstance(codec, SignerSync)
    with pytest.raises(CodecError, match="nonce is unknown"):
        codec.encode_tx(MSGS, None)
    node = FakeNode(nonce=5)
    await codec.before_tx(node)  # type: ignore[arg-type]
    tx = decode_tx(codec.encode_tx(MSGS, None))
    assert (tx.chain_id, tx.nonce, tx.sender()) == (77, 5, codec.address)
    assert [(m.to, m.method, len(m.args)) for m in tx.messages] == [(IBC_HANDLER_ADDRESS, "ibc", len(MSGS))]
    for arg, msg in zip(tx.messages[0].args, MSGS, strict=True):
        wrapped = unpacked(arg)
        assert wrapped.type_url == "/" + msg.DESCRIPTOR.full_name
        assert wrapped.value == msg.SerializeToString(deterministic=True)
    # counted locally when signed, so a second tx in flight gets the next nonce, no round trip
    assert decode_tx(codec.encode_tx(MSGS, None)).nonce == 6
    # included (committed, or failed in execution): the count holds; not included: read again
    for included in (node_pb2.TxResult(status=node_pb2.TX_STATUS_COMMITTED),
                     node_pb2.TxResult(status=node_pb2.TX_STATUS_FAILED, reason="execution: boom")):
        codec.after_tx(included)
        await codec.before_tx(node)  # type: ignore[arg-type]
        assert codec.nonce == 7 and len(node.app_queries) == 1
    for result in (node_pb2.TxResult(status=node_pb2.TX_STATUS_FAILED, reason="not included: nonce used"),
                   node_pb2.TxResult(status=node_pb2.TX_STATUS_UNKNOWN), None):
        codec.nonce = 7
        codec.after_tx(result)
        assert codec.nonce is None
    node.nonce = 8
    await codec.before_tx(node)  # type: ignore[arg-type]
    assert codec.nonce == 8 and node.app_queries[-1][1]["address"] == "0x" + codec.address.hex()


def test_corda_tx_is_one_notarisable_tx_of_ibc_commands_with_a_fresh_salt() -> None:
    codec = CordaCodec(CORDA_SEED, NOTARY)
    assert not isinstance(codec, SignerSync)
    raw = codec.encode_tx(MSGS, None)
    stx = SignedTransaction.decode(raw)
    assert stx.valid_signers() == {codec.public_key} and stx.wtx.notary == NOTARY
    assert not stx.wtx.inputs and not stx.wtx.outputs
    assert [(c.contract, c.name, list(c.signers)) for c in stx.wtx.commands] == [
        (IBC_CONTRACT, IBC_COMMAND, [codec.public_key])] * 2
    assert [a.value for a in ibc_messages(stx.wtx.commands)] == [m.SerializeToString(deterministic=True)
                                                                  for m in MSGS]
    again = SignedTransaction.decode(codec.encode_tx(MSGS, None))
    assert again.wtx.privacy_salt != stx.wtx.privacy_salt and again.txid != stx.txid


async def test_headers_carry_the_trusted_height_and_evidence_pairs_genuine_with_forged() -> None:
    qbft_header = qbft_lc.Header(header_rlp=b"rlp", seals=[b"s" * 65])
    evm = EvmCodec(EVM_KEY, 1)
    node = FakeNode(qbft_header.SerializeToString())
    msg = qbft_lc.ClientMessage.FromString(await evm.build_header(node, Height(0, 3), Height(0, 7)))  # type: ignore[arg-type]
    assert msg.header.header_rlp == b"rlp" and msg.header.trusted_height.revision_height == 3
    forged = qbft_lc.Header(header_rlp=b"forged", trusted_height=client_pb2.Height(revision_height=4))
    ev = qbft_lc.ClientMessage.FromString(
        await evm.build_misbehaviour(node, encode_header_message(forged), Height(0, 7)))  # type: ignore[arg-type]
    assert ev.misbehaviour.header_1.header_rlp == b"rlp" and ev.misbehaviour.header_2 == forged
    assert ev.misbehaviour.header_1.trusted_height.revision_height == 4

    corda_header = corda_lc.Header(checkpoint=corda_lc.Checkpoint(height=7))
    corda = CordaCodec(CORDA_SEED, NOTARY)
    cnode = FakeNode(encode(corda_header))
    cmsg = corda_lc.ClientMessage.FromString(await corda.build_header(cnode, Height(0, 2), Height(0, 7)))  # type: ignore[arg-type]
    assert cmsg.header.trusted_height == 2 and cmsg.header.checkpoint.height == 7
    cforged = corda_lc.Header(checkpoint=corda_lc.Checkpoint(height=7, chain_id="x"), trusted_height=5)
    cev = corda_lc.ClientMessage.FromString(
        await corda.build_misbehaviour(cnode, header_message(cforged), Height(0, 7)))  # type: ignore[arg-type]
    assert cev.misbehaviour.header_2 == cforged and cev.misbehaviour.header_1.trusted_height == 5

    # garbage from a node or as "conflicting" is a CodecError, never a decode exception
    for codec in (evm, corda):
        bad_node = FakeNode(b"\xff\xff\xff")
        with pytest.raises(CodecError, match="undecodable"):
            await codec.build_header(bad_node, Height(0, 1), Height(0, 2))  # type: ignore[arg-type]
        with pytest.raises(CodecError, match="does not decode"):
            await codec.build_misbehaviour(node, b"\xff\xff\xff", Height(0, 2))  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="not a header"):
        await evm.build_misbehaviour(node, ev.SerializeToString(), Height(0, 7))  # type: ignore[arg-type]


async def test_client_init_asks_the_node_at_its_latest_height() -> None:
    node = FakeNode(latest=12)
    codec = EvmCodec(EVM_KEY, 1, trusting_period_ns=5, max_clock_drift_ns=2)
    assert await codec.client_init(node) == ("10-qbft", b"\xaa", b"\xbb")  # type: ignore[arg-type]
    assert node.app_queries[-1] == ("client_state", {"height": 12, "trusting_period_ns": 5, "max_clock_drift_ns": 2})
    with pytest.raises(CodecError, match="no sealed block"):
        await codec.client_init(FakeNode(latest=0))  # type: ignore[arg-type]


class FakeHost:
    def __init__(self, values: dict[bytes, bytes]) -> None:
        self.values = values
        self.asked: list[bytes] = []

    async def query(self, path: bytes, height: Height | None = None, prove: bool = True) -> QueryResult:
        self.asked.append(path)
        return QueryResult(self.values.get(path), b"", Height(0, 1))


async def test_corda_view_gets_the_notary_sets_its_consensus_state_names() -> None:
    codec = CordaCodec(CORDA_SEED, NOTARY)
    assert isinstance(codec, ViewCompleter) and not isinstance(EvmCodec(EVM_KEY, 1), ViewCompleter)
    cur, nxt = sha256(b"set-1"), sha256(b"set-2")
    store = MemoryClientStore()
    store.set(CLIENT_STATE_KEY, encode(corda_lc.ClientState(chain_id="c", latest_height=4)))
    store.set(consensus_state_key(Height(0, 4)), encode(corda_lc.ConsensusState(
        timestamp=1, ibc_root=bytes(32), notary_set_hash=cur, next_notary_set_hash=nxt)))
    prefix = paths.client_prefix("11-corda-0").encode()
    host = FakeHost({prefix + notary_set_key(cur).encode(): b"set-one"})
    await codec.complete_view(host, "11-corda-0", store)  # type: ignore[arg-type]
    assert store.get(notary_set_key(cur)) == b"set-one" and store.get(notary_set_key(nxt)) is None
    assert sorted(host.asked) == sorted(prefix + notary_set_key(h).encode() for h in (cur, nxt))
    with pytest.raises(CodecError, match="unreadable"):
        await codec.complete_view(host, "11-corda-0", MemoryClientStore())  # type: ignore[arg-type]


def test_factory_builds_by_kind_and_names_what_is_wrong() -> None:
    evm = codec_for("evm", EVM_KEY, {"evm_chain_id": 9})
    corda = codec_for("corda", CORDA_SEED, {"notary_identity": NOTARY.hex()})
    assert isinstance(evm, EvmCodec) and evm.evm_chain_id == 9 and evm.prefix == IBC_HANDLER_ADDRESS
    assert isinstance(corda, CordaCodec) and corda.notary == NOTARY and corda.prefix == b"ibc"
    assert isinstance(evm.light_client(), QbftClient) and isinstance(corda.light_client(), CordaLightClient)
    bad: Sequence[tuple[str, bytes, dict[str, object], str]] = [
        ("evm", EVM_KEY, {}, "lacks 'evm_chain_id'"),
        ("evm", EVM_KEY, {"evm_chain_id": "9"}, "must be an integer"),
        ("evm", bytes(31), {"evm_chain_id": 9}, "32-byte secp256k1"),
        ("corda", CORDA_SEED, {"notary_identity": "zz"}, "malformed"),
        ("corda", CORDA_SEED, {"notary_identity": "00"}, "notary identity"),
        ("corda", b"short", {"notary_identity": NOTARY.hex()}, "32-byte Ed25519 seed"),
        ("cosmos", EVM_KEY, {}, "unknown chain kind"),
    ]
    for kind, secret, info, words in bad:
        with pytest.raises(CodecError, match=words):
            codec_for(kind, secret, info)


async def test_the_handle_resyncs_the_codec_when_a_submission_is_refused() -> None:
    class RefusingNode(FakeNode):
        async def submit(self, tx: bytes) -> bytes:
            raise NodeError("SubmitTxs", grpc.StatusCode.INVALID_ARGUMENT, "nonce already used")

    codec = EvmCodec(EVM_KEY, 1)
    node = RefusingNode(nonce=3)
    handle = GrpcChainHandle("evm-1", node, codec, watch=ResultWatch(node))  # type: ignore[arg-type]
    out = await handle.submit(MSGS)
    assert not out.committed and "nonce already used" in out.reason
    assert codec.nonce is None
