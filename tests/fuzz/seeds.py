"""Genuine inputs for each fuzz target: where every corpus starts.

Built from the real chains in tests/support (deterministic keys, salts and clocks), so the
seeds are the same on every machine and valid against the trusted state the targets use.
``python -m tests.fuzz.seeds`` writes them to ``tests/fuzz/corpus/<target>/seed-*``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from google.protobuf import any_pb2
from google.protobuf.message import Message

from chains.corda.cash import CASH, cash_state
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import IBC_HANDLER_ADDRESS, make_tx
from chains.evm import Message as EvmCall
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.apps.transfer import FungibleTokenPacketData
from chains.ibc.host import paths
from chains.node.config import render_node_config
from kakehashi.corda.v1 import ledger_pb2 as lpb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.node.v1 import node_pb2
from lightclients.crypto import sha256
from tests.fuzz.targets import METHODS, TARGETS, _smt_root, channel_pair, client_pair, join

CORPUS = Path(__file__).resolve().parent / "corpus"
ROOT = Path(__file__).resolve().parents[2]


def _any(msg: Message) -> bytes:
    wrapped = any_pb2.Any()
    wrapped.Pack(msg, type_url_prefix="/")
    return wrapped.SerializeToString(deterministic=True)


def _terms() -> dvp_pb2.Terms:
    return dvp_pb2.Terms(trade_id="T-1", security_token=b"\x01" * 20, st_quantity=5, cash_issuer=b"\x02" * 32,
                         sc_amount=500, seller_evm=b"\x03" * 20, buyer_evm=b"\x04" * 20, seller_corda=b"\x05" * 32,
                         buyer_corda=b"\x06" * 32, deadline_ns=1_800_000_000 * 10**9)


def _grpc_requests() -> list[bytes]:
    by_name: dict[str, Message] = {
        "Status": node_pb2.StatusRequest(),
        "GetHeader": node_pb2.GetHeaderRequest(height=1),
        "GetBlock": node_pb2.GetBlockRequest(height=1),
        "SubmitTx": node_pb2.SubmitTxRequest(tx=b"\xc0"),
        "GetTxResult": node_pb2.GetTxResultRequest(tx_hash=b"\x00" * 32),
        "QueryIbc": node_pb2.QueryIbcRequest(path="nextClientSequence", height=1, prove=True),
        "QueryPacketCommitments": node_pb2.QueryPacketCommitmentsRequest(port_id="transfer", channel_id="channel-0"),
        "QueryUnreceivedPackets": node_pb2.QuerySequencesRequest(port_id="transfer", channel_id="channel-0",
                                                                 sequences=[1, 2]),
        "QueryUnreceivedAcks": node_pb2.QuerySequencesRequest(port_id="transfer", channel_id="channel-0",
                                                              sequences=[1]),
        "QueryApp": node_pb2.QueryAppRequest(query="chain_info", args_json="{}"),
        "SubmitTxs": node_pb2.SubmitTxsRequest(txs=[b"\xc0", b""]),
        "QueryIbcBatch": node_pb2.QueryIbcBatchRequest(paths=["nextClientSequence"], proof_mode=1),
        "QueryAppBatch": node_pb2.QueryAppBatchRequest(queries=[node_pb2.AppQuery(query="chain_info")]),
    }
    out = []
    for i, method in enumerate(METHODS):
        req = by_name.get(method.name)
        if req is not None:
            for kind in (0, 1):
                out.append(bytes([(i << 1) | kind]) + req.SerializeToString(deterministic=True))
    return out


def genuine() -> dict[str, list[bytes]]:
    pair = client_pair()
    evm, corda = pair.a, pair.b
    header = evm.chain.header(evm.height.revision_height)
    seeds: dict[str, list[bytes]] = {
        "rlp_header": [header.encode(), header.without_seals().encode(), evm.chain.header(0).encode()],
        "rlp_extra_data": [header.extra.encode(), header.without_seals().extra.encode()],
    }
    key = sha256(b"fuzz-evm-key")
    seeds["rlp_tx"] = [
        make_tx(key, 1001, 0, [EvmCall(IBC_HANDLER_ADDRESS, "ibc", (b"\x0a\x01x",))]).encode(),
        make_tx(key, 7, 2**63, [EvmCall(b"\x01" * 20, "transfer", (b"\x02" * 20, b"\x05"))]).encode(),
    ]
    seed = sha256(b"fuzz-corda-key")
    from lightclients.crypto import ed25519_public_key

    party = ed25519_public_key(seed)
    wtx = WireTransaction((lpb.StateRef(txid=b"\x07" * 32, index=1),),
                          (cash_state(b"\x08" * 32, party, 100, b"\x09" * 32),),
                          (lpb.Command(contract=CASH, name="Move", signers=[party]),), b"\x09" * 32,
                          sha256(b"salt"), references=(lpb.StateRef(txid=b"\x0a" * 32, index=0),),
                          time_window=lpb.TimeWindow(from_ns=1, until_ns=2**63))
    seeds["corda_tx"] = [SignedTransaction(wtx).sign(seed).encode(), SignedTransaction(wtx).encode()]
    seeds["corda_filtered_tx"] = [wtx.tear_off([(1, 0), (2, 0)]).SerializeToString(deterministic=True),
                                  wtx.tear_off([(4, 0)]).SerializeToString(deterministic=True)]
    from chains.store.smt import SparseMerkleTree

    tree = SparseMerkleTree()
    for i in range(16):
        tree.set(f"commitments/ports/transfer/channels/channel-0/sequences/{i}".encode(), bytes([i]) * 32)
    root = tree.commit()
    assert root == _smt_root()[0]
    seeds["ics23_proof"] = [tree.at(root).prove_bytes(_smt_root()[1]),
                            tree.at(root).prove_bytes(_smt_root()[1] + b"x")]
    seeds["mpt_proof"] = [evm.prove(paths.client_state(pair.client[evm.chain_id])),
                          evm.prove(b"nothing/here")]
    a_trusted = pair.known[evm.chain_id][-1]
    b_trusted = pair.known[corda.chain_id][-1]
    seeds["qbft_client_message"] = [evm.header(evm.height, b_trusted), evm.misbehaviour(evm.height, b_trusted)]
    seeds["corda_checkpoint"] = [corda.header(corda.height, a_trusted), corda.misbehaviour(corda.height, a_trusted)]
    seeds["client_states"] = [join(evm.client_state(3600 * 10**9, 10**10), evm.consensus_state()),
                              join(corda.client_state(3600 * 10**9, 10**10), corda.consensus_state())]
    proofs = []
    for host, other in ((evm, corda), (corda, evm)):
        client_height = pair.known[other.chain_id][-1]
        path = paths.client_type_key(pair.client[host.chain_id])  # unchanged since the client was made
        proofs.append(join(host.prove(path, client_height), path, host.store.get(path) or b""))
    seeds["proof_verification"] = proofs
    multi = []
    for host, other in ((evm, corda), (corda, evm)):
        client_height = pair.known[other.chain_id][-1]
        wanted = [paths.client_type_key(pair.client[host.chain_id]), paths.client_state(pair.client[host.chain_id]),
                  b"receipts/ports/transfer/channels/channel-0/sequences/1"]
        multi.append(join(host.prove_many(wanted, client_height), wanted[0]))
        multi.append(join(host.prove_many(wanted, client_height), wanted[2]))
    seeds["multiproof"] = multi
    seeds["packet_data"] = [dvp_app.encode_packet_data(_terms()), dvp_app.encode_terms(_terms()),
                            FungibleTokenPacketData("stake", 10, "0x" + "11" * 20, "ed25519:" + "22" * 32).encode()]
    chan = channel_pair()
    packet = chan.a.send("transfer", "channel-0", FungibleTokenPacketData(
        "stake", 1, "0x" + "11" * 20, "ed25519:" + "22" * 32).encode(), timeout_ns=chan.b.now_ns + 10**12)
    seeds["ibc_message"] = [_any(chan.recv_msg(packet, chan.b)), _any(chan.update_msg(chan.b)[0])]
    seeds["trade_file"] = [json.dumps({
        "trade_id": "T-1", "st_quantity": 5, "sc_amount": 500, "deadline_s": 120, "timeout_s": 60,
        "seller": {"evm": "0x" + "11" * 20, "corda": "22" * 32},
        "buyer": {"evm": "0x" + "33" * 20, "corda": "44" * 32}, "channel": "channel-1"}).encode()]
    seeds["relayer_config"] = [(ROOT / "config" / "relayer.example.toml").read_bytes()]
    seeds["node_config"] = [render_node_config("evm-1", "evm", "127.0.0.1:0", 1.0).encode(),
                            render_node_config("corda-1", "corda", "127.0.0.1:9090", 0.2).encode()]
    seeds["grpc_handlers"] = _grpc_requests()
    missing = set(TARGETS) - set(seeds)
    assert not missing, f"no seeds for {sorted(missing)}"
    return seeds


def write(corpus: Path = CORPUS) -> int:
    n = 0
    for name, inputs in genuine().items():
        folder = corpus / name
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (folder / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
            n += 1
    return n


if __name__ == "__main__":
    sys.stdout.write(f"wrote {write()} seed inputs under {CORPUS}\n")
