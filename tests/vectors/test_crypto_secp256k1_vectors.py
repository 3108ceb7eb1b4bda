"""secp256k1 ECDSA against Wycheproof, Besu QBFT seals and known Ethereum addresses.

QBFT seals are r‖s‖v with low-s required (EIP-2). Wycheproof's generic secp256k1 files treat
high-s as valid, so for them the expectation is: every invalid signature is rejected, every
valid low-s one is accepted, and every valid high-s one is rejected by our low-s verifier
while its normalised twin (r, n - s) is accepted, which shows the rejection is the policy
and not a broken verifier.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import rlp
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from lightclients.crypto import (
    SECP256K1_N,
    eth_address,
    secp256k1_public_key,
    secp256k1_recover_address,
    secp256k1_verify,
    secp256k1_verify_der,
)
from tests.conftest import load_vector

HALF_N = SECP256K1_N // 2

# Addresses of private keys 1..4 (SOURCES.md 3c; the Besu QBFT header test's seal signers).
KEY_ADDRESSES = {
    1: "7e5f4552091a69125d5dfcb7b8c2659029395bdf",
    2: "2b5ad5c4795c026514f8317c7a215e218dccd6cf",
    3: "6813eb9362372eef6200f3b1dbc3f819671cba69",
    4: "1eff47bc3a10a45d4b230b5d10e37751fe6aa718",
}


def _wycheproof(name: str) -> tuple[dict[str, Any], list[tuple[bytes, dict[str, Any]]]]:
    doc = load_vector("wycheproof", "testvectors_v1", name)
    cases = [
        (bytes.fromhex(group["publicKey"]["uncompressed"]), case)
        for group in doc["testGroups"]
        for case in group["tests"]
    ]
    assert len(cases) == doc["numberOfTests"]
    assert {group["sha"] for group in doc["testGroups"]} == {"SHA-256"}
    return doc, cases


def _digest(case: dict[str, Any]) -> bytes:
    return hashlib.sha256(bytes.fromhex(case["msg"])).digest()


def test_wycheproof_p1363_low_s_policy() -> None:
    _, cases = _wycheproof("ecdsa_secp256k1_sha256_p1363_test.json")
    tally: Counter[str] = Counter()
    for public_key, case in cases:
        sig, digest, tc = bytes.fromhex(case["sig"]), _digest(case), case["tcId"]
        got = secp256k1_verify(public_key, digest, sig)
        if case["result"] == "invalid":
            assert not got, f"tcId {tc}: invalid signature accepted"
            tally["invalid"] += 1
            continue
        assert len(sig) == 64
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        if s <= HALF_N:
            assert got, f"tcId {tc}: valid low-s signature rejected"
            tally["valid low-s"] += 1
        else:
            assert not got, f"tcId {tc}: high-s accepted despite EIP-2"
            twin = r.to_bytes(32, "big") + (SECP256K1_N - s).to_bytes(32, "big")
            assert secp256k1_verify(public_key, digest, twin), f"tcId {tc}: n - s rejected"
            tally["valid high-s"] += 1
    assert tally == {"invalid": 85, "valid low-s": 95, "valid high-s": 72}


def test_wycheproof_der_matches_exactly_without_low_s_and_policy_with_it() -> None:
    _, cases = _wycheproof("ecdsa_secp256k1_sha256_test.json")
    tally: Counter[str] = Counter()
    for public_key, case in cases:
        sig, digest, tc = bytes.fromhex(case["sig"]), _digest(case), case["tcId"]
        lax = secp256k1_verify_der(public_key, digest, sig, require_low_s=False)
        strict = secp256k1_verify_der(public_key, digest, sig, require_low_s=True)
        assert lax == (case["result"] == "valid"), f"tcId {tc} ({case['comment']})"
        if case["result"] == "invalid":
            assert not strict, f"tcId {tc}: invalid signature accepted"
            tally["invalid"] += 1
            continue
        r, s = decode_dss_signature(sig)
        if s <= HALF_N:
            assert strict, f"tcId {tc}: valid low-s signature rejected"
            tally["valid low-s"] += 1
        else:
            assert not strict, f"tcId {tc}: high-s accepted with require_low_s"
            twin = encode_dss_signature(r, SECP256K1_N - s)
            assert secp256k1_verify_der(public_key, digest, twin, require_low_s=True)
            tally["valid high-s"] += 1
    assert tally["invalid"] == 308
    assert tally["valid low-s"] + tally["valid high-s"] == 168
    assert tally["valid low-s"] > 0 and tally["valid high-s"] > 0


def test_wycheproof_bitcoin_matches_exactly() -> None:
    _, cases = _wycheproof("ecdsa_secp256k1_sha256_bitcoin_test.json")
    results: Counter[str] = Counter()
    for public_key, case in cases:
        got = secp256k1_verify_der(
            public_key, _digest(case), bytes.fromhex(case["sig"]), require_low_s=True
        )
        assert got == (case["result"] == "valid"), f"tcId {case['tcId']} ({case['comment']})"
        results[case["result"]] += 1
    assert results == {"valid": 162, "invalid": 301}


def test_ethereum_addresses_of_private_keys_1_to_4() -> None:
    for key, address in KEY_ADDRESSES.items():
        public_key = secp256k1_public_key(key.to_bytes(32, "big"))
        assert eth_address(public_key).hex() == address
        assert eth_address(b"\x04" + public_key).hex() == address


def test_besu_qbft_committed_seals_recover_to_keys_1_to_4() -> None:
    """Real Besu seals: the committed-seal hash is given by the vector, so this is pure ecrecover."""
    doc = load_vector(
        "consensys-qbft-tests", "BftBlockHeaderHashTests", "bft_block_headers_data.json"
    )["hash_of_qbft_block_header"]
    extra = rlp.decode(bytes.fromhex(doc["qbft_block_header"]["extraData"].removeprefix("0x")))
    seals = extra[4]
    seal_hash = bytes.fromhex(doc["committed_seal_hash"].removeprefix("0x"))
    assert len(seals) == 4
    signers = [secp256k1_recover_address(seal_hash, seal).hex() for seal in seals]
    assert signers == list(KEY_ADDRESSES.values())
    other_hash = hashlib.sha256(seal_hash).digest()
    assert all(secp256k1_recover_address(other_hash, s).hex() not in signers for s in seals)
