"""Relayer chain codecs: cost of turning a batch of IBC messages into one signed native tx.

Why it matters: the relayer signs one tx per batch (UpdateClient + up to max_msg_num - 1
packet messages) under the chain's signer lock, so encode time bounds a chain's relay rate
as much as the node does. EVM = RLP + one recoverable secp256k1 signature; Corda = salted
Merkle txid over the component groups + one Ed25519 signature. Ratios are per batch size.
"""

from __future__ import annotations

import functools
from typing import Any

from bench.timing import per_call_us
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.crypto import ed25519_public_key, sha256
from relayer.codecs import CordaCodec, EvmCodec


def _batch(n: int) -> list[chpb.MsgRecvPacket]:
    packet = chpb.Packet(sequence=1, source_port="transfer", source_channel="channel-0",
                         destination_port="transfer", destination_channel="channel-0", data=b"d" * 200)
    return [chpb.MsgRecvPacket(packet=packet, proof_commitment=b"p" * 600, signer="relayer") for _ in range(n)]


def run(quick: bool) -> dict[str, Any]:
    evm = EvmCodec(sha256(b"bench-evm"), 1)
    evm.nonce = 0
    corda = CordaCodec(sha256(b"bench-corda"), ed25519_public_key(sha256(b"bench-notary")))
    seconds = 0.05 if quick else 0.3
    out: dict[str, Any] = {}
    for n in (1, 10) if quick else (1, 10, 30):
        msgs = _batch(n)
        evm_us = per_call_us(functools.partial(evm.encode_tx, msgs, None), min_seconds=seconds)
        corda_us = per_call_us(functools.partial(corda.encode_tx, msgs, None), min_seconds=seconds)
        out[f"batch_{n}"] = {
            "evm_encode_us": round(evm_us, 1),
            "corda_encode_us": round(corda_us, 1),
            "corda_over_evm": round(corda_us / evm_us, 2),
            "evm_us_per_msg": round(evm_us / n, 1),
            "corda_us_per_msg": round(corda_us / n, 1),
        }
    return out
