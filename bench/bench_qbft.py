"""QBFT light client: header verification cost against bare seal recovery, and proof cost.

For n validators a header carries n seals. "bare" is recovering the n signer addresses and
nothing else; "verify" is the whole verify_client_message (protobuf parse, header decode,
commit hash, seal recovery, quorum counting, account proof). The client stops recovering
once a quorum (floor(2n/3) + 1 seals) is reached, so the ratio is also given against bare
recovery of just that many seals ("ratio_vs_quorum"), the irreducible work of any verifier
of this rule. Everything is timed in the same run, so ratios compare across machines.
"""

from __future__ import annotations

from bench.timing import per_call_us
from chains.evm import IBC_HANDLER_ADDRESS, EvmChain
from kakehashi.ibc.v1 import client_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as pb
from lightclients.crypto import eth_address, secp256k1_public_key, secp256k1_recover_address
from lightclients.interface import Height, MemoryClientStore
from lightclients.qbft import QbftClient, encode_header_message

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
PATH = b"commitments/ports/transfer/channels/channel-0/sequences/1"


def _setup(n: int) -> tuple[EvmChain, QbftClient, MemoryClientStore]:
    keys = [(i + 1).to_bytes(32, "big") for i in range(n)]
    addrs = [eth_address(secp256k1_public_key(k)) for k in keys]
    chain = EvmChain(1, addrs, T0, token_issuer=addrs[0])
    for i in range(200):  # some unrelated IBC state so the proofs have realistic depth
        chain.ibc.store.set(b"commitments/filler/%d" % i, b"v%d" % i)
    chain.ibc.store.set(PATH, b"value")
    chain.produce_block([], T0 + NS, keys)
    chain.produce_block([], T0 + 2 * NS, keys)
    header = chain.header(1)
    cs = pb.ClientState(
        chain_id=1,
        ibc_store_address=IBC_HANDLER_ADDRESS,
        latest_height=client_pb2.Height(revision_number=0, revision_height=1),
        trusting_period=3600 * NS,
        max_clock_drift=10 * NS,
    )
    cons = pb.ConsensusState(
        timestamp=header.timestamp * NS,
        storage_root=chain.prove(IBC_HANDLER_ADDRESS, [], 1).storage_root,
        validators=list(header.extra.validators),
    )
    client, store = QbftClient(), MemoryClientStore()
    client.initialize(store, cs.SerializeToString(), cons.SerializeToString(), header.timestamp * NS)
    return chain, client, store


def run(quick: bool) -> dict[str, object]:
    min_seconds = 0.1 if quick else 0.5
    out: dict[str, object] = {}
    for n in (4, 21, 100):
        chain, client, store = _setup(n)
        msg = encode_header_message(chain.light_client_header(2, 1))
        now = (chain.header(2).timestamp + 1) * NS
        sealed = chain.header(2)
        digest = sealed.commit_hash()
        seals = sealed.extra.seals

        quorum = 2 * n // 3 + 1

        def bare(seals: tuple[bytes, ...] = seals, digest: bytes = digest) -> None:
            for seal in seals:
                secp256k1_recover_address(digest, seal)

        def bare_quorum(seals: tuple[bytes, ...] = seals[:quorum], digest: bytes = digest) -> None:
            for seal in seals:
                secp256k1_recover_address(digest, seal)

        def verify(
            msg: bytes = msg, now: int = now, client: QbftClient = client, store: MemoryClientStore = store
        ) -> None:
            client.verify_client_message(store, msg, now)

        bare_us = per_call_us(bare, min_seconds=min_seconds)
        quorum_us = per_call_us(bare_quorum, min_seconds=min_seconds)
        verify_us = per_call_us(verify, min_seconds=min_seconds)
        out[f"validators_{n}"] = {
            "seals": n,
            "quorum": quorum,
            "bare_recovery_all_seals_us": round(bare_us, 1),
            "bare_recovery_quorum_seals_us": round(quorum_us, 1),
            "header_verify_us": round(verify_us, 1),
            "ratio": round(verify_us / bare_us, 3),
            "ratio_vs_quorum": round(verify_us / quorum_us, 3),
            "overhead_vs_quorum_pct": round((verify_us / quorum_us - 1) * 100, 1),
        }
    chain, client, store = _setup(4)
    client.update_state(store, encode_header_message(chain.light_client_header(2, 1)))
    proof = chain.ibc_proof(PATH, 2)
    now = (chain.header(2).timestamp + 1) * NS

    def membership() -> None:
        client.verify_membership(store, Height(0, 2), proof, IBC_HANDLER_ADDRESS, PATH, b"value", now)

    out["storage_proof_verify_us"] = round(per_call_us(membership, min_seconds=min_seconds), 1)
    out["storage_proof_nodes"] = len(pb.StorageProof.FromString(proof).proof)
    return out
