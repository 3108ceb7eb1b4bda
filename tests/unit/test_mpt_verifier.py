"""Hand-built malformed and edge-case proofs for the standalone MPT verifier.

Each forged proof here is hash-linked correctly (the root is recomputed for it), so the
only thing that can reject it is the structural rule under test.
"""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.store.mpt import MemoryNodeStore, MerklePatriciaTrie, encode_account
from lightclients.crypto import keccak256
from lightclients.interface import InvalidProof
from lightclients.mpt import (
    EMPTY_CODE_HASH,
    EMPTY_ROOT,
    Account,
    MptProofError,
    decode_hex_prefix,
    decode_node,
    storage_word,
    verify_account_proof,
    verify_proof,
    verify_storage_proof,
)


def _hashed(node: Any) -> tuple[bytes, bytes]:
    encoded = rlp.encode(node)
    return keccak256(encoded), encoded


def test_empty_trie_proves_absence_with_an_empty_proof() -> None:
    assert keccak256(rlp.encode(b"")) == EMPTY_ROOT
    assert verify_proof(EMPTY_ROOT, b"anything", []) is None
    assert verify_proof(EMPTY_ROOT, b"anything", [b"\x80"]) is None
    with pytest.raises(MptProofError, match="empty proof"):
        verify_proof(keccak256(b"x"), b"anything", [])


def test_error_is_an_invalid_proof() -> None:
    assert issubclass(MptProofError, InvalidProof)


def test_short_root_node_is_proven_by_its_own_encoding() -> None:
    # A single small leaf encodes to under 32 bytes; the root is still its keccak.
    root, encoded = _hashed([b"\x20" + b"k", b"v"])
    assert len(encoded) < 32
    assert verify_proof(root, b"k", [encoded]) == b"v"
    assert verify_proof(root, b"j", [encoded]) is None


def test_inline_children_are_followed_without_proof_entries() -> None:
    leaf_a = [b"\x3a", b"A"]  # odd leaf path [0xa]
    leaf_b = [b"\x3b", b"B"]
    branch: list[Any] = [b""] * 17
    branch[1] = leaf_a
    branch[2] = leaf_b
    root, encoded = _hashed(branch)
    assert verify_proof(root, b"\x1a", [encoded]) == b"A"
    assert verify_proof(root, b"\x2b", [encoded]) == b"B"
    assert verify_proof(root, b"\x2c", [encoded]) is None
    assert verify_proof(root, b"\x3b", [encoded]) is None


def test_embedded_node_of_32_bytes_or_more_is_rejected() -> None:
    branch: list[Any] = [b""] * 17
    branch[1] = [b"\x3a", b"x" * 40]
    root, encoded = _hashed(branch)
    with pytest.raises(MptProofError, match="embedded node"):
        verify_proof(root, b"\x1a", [encoded])


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ([b"\x4a", b"v"], "flag nibble"),
        ([b"\x21", b"v"], "padding nibble"),
        ([b"", b"v"], "hex-prefix path is empty"),
        ([[b"\x20"], b"v"], "path is a list"),
        ([b"\x20", b""], "leaf value is empty"),
        ([b"\x00", b"\x11" * 32], "extension node has an empty path"),
        ([b"\x11", b""], "extension node has no child"),
        ([b"\x11", b"\x11" * 5], "not a 32-byte hash"),
        ([b"a", b"b", b"c"], "2-item or 17-item"),
    ],
)
def test_malformed_nodes_are_rejected(node: Any, message: str) -> None:
    root, encoded = _hashed(node)
    with pytest.raises(MptProofError, match=message):
        verify_proof(root, b"\x11", [encoded])


def test_branch_value_must_be_a_byte_string() -> None:
    branch: list[Any] = [b""] * 16 + [[b"x"]]
    root, encoded = _hashed(branch)
    with pytest.raises(MptProofError, match="branch value is a list"):
        verify_proof(root, b"", [encoded])


def test_non_canonical_rlp_node_is_rejected() -> None:
    encoded = b"\xc4\x81\x01\x81\x02"  # 0x81 0x01: a single byte below 0x80 with a prefix
    with pytest.raises(MptProofError, match="canonical RLP"):
        verify_proof(keccak256(encoded), b"\x01", [encoded])


def _two_level_trie() -> tuple[MerklePatriciaTrie, bytes]:
    trie = MerklePatriciaTrie(MemoryNodeStore())
    for i in range(40):
        trie.set(keccak256(bytes([i])), b"value-%d" % i + b"." * 40)
    return trie, trie.commit()


def test_missing_extra_and_reordered_nodes_are_rejected() -> None:
    trie, root = _two_level_trie()
    key = keccak256(bytes([7]))
    proof = trie.prove(key)
    assert len(proof) >= 2
    assert verify_proof(root, key, proof) == b"value-7" + b"." * 40
    with pytest.raises(MptProofError, match="incomplete"):
        verify_proof(root, key, proof[:-1])
    with pytest.raises(MptProofError, match="after the end"):
        verify_proof(root, key, [*proof, proof[-1]])
    with pytest.raises(MptProofError, match="does not hash"):
        verify_proof(root, key, proof[::-1])
    # A valid proof of another key does not prove this one.
    other = trie.prove(keccak256(bytes([8])))
    assert other != proof
    with pytest.raises(MptProofError):
        verify_proof(root, key, other)


@pytest.mark.parametrize(
    ("root", "key", "proof", "message"),
    [
        ("00" * 32, b"k", [], "root must be bytes"),
        (b"\x00" * 31, b"k", [], "root must be 32 bytes"),
        (b"\x00" * 32, 5, [], "key must be bytes"),
        (b"\x00" * 32, b"k", b"\xc0", "sequence"),
        (b"\x00" * 32, b"k", "c0", "sequence"),
        (b"\x00" * 32, b"k", ["c0"], "proof node 0 must be bytes"),
        (b"\x00" * 32, b"k", None, "sequence"),
    ],
)
def test_wrong_argument_types_are_typed_errors(
    root: Any, key: Any, proof: Any, message: str
) -> None:
    with pytest.raises(MptProofError, match=message):
        verify_proof(root, key, proof)


def test_hex_prefix_decoding() -> None:
    assert decode_hex_prefix(b"\x00\x12") == (b"\x01\x02", False)
    assert decode_hex_prefix(b"\x11\x23") == (b"\x01\x02\x03", False)
    assert decode_hex_prefix(b"\x20") == (b"", True)
    assert decode_hex_prefix(b"\x3f") == (b"\x0f", True)


def _state_with(address: bytes, leaf: bytes) -> tuple[bytes, list[bytes]]:
    state = MerklePatriciaTrie(MemoryNodeStore(), secure=True)
    state.set(address, leaf)
    state.set(b"\x22" * 20, encode_account(1, 2, EMPTY_ROOT, EMPTY_CODE_HASH))
    root = state.commit()
    return root, state.prove(address)


def test_account_proof_round_trip_and_absence() -> None:
    address = b"\x11" * 20
    root, proof = _state_with(address, encode_account(5, 10**20, EMPTY_ROOT, EMPTY_CODE_HASH))
    assert verify_account_proof(root, address, proof) == Account(
        5, 10**20, EMPTY_ROOT, EMPTY_CODE_HASH
    )
    state = MerklePatriciaTrie(MemoryNodeStore(), secure=True)
    state.set(address, encode_account(5, 1, EMPTY_ROOT, EMPTY_CODE_HASH))
    root = state.commit()
    assert verify_account_proof(root, b"\x33" * 20, state.prove(b"\x33" * 20)) is None


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        (rlp.encode([b"\x00\x01", 0, EMPTY_ROOT, EMPTY_CODE_HASH]), "leading zero"),
        (rlp.encode([0, 0, EMPTY_ROOT]), "4-item"),
        (rlp.encode([0, 0, EMPTY_ROOT[:31], EMPTY_CODE_HASH]), "storage root"),
        (rlp.encode([0, 0, EMPTY_ROOT, [b"x"]]), "code hash"),
        (rlp.encode([b"\x01" * 33, 0, EMPTY_ROOT, EMPTY_CODE_HASH]), "at most 32 bytes"),
        (b"\x81\x01", "canonical RLP"),
    ],
)
def test_malformed_account_leaves_are_rejected(leaf: bytes, message: str) -> None:
    address = b"\x11" * 20
    root, proof = _state_with(address, leaf)
    with pytest.raises(MptProofError, match=message):
        verify_account_proof(root, address, proof)


def test_account_address_must_be_20_bytes() -> None:
    with pytest.raises(MptProofError, match="20 bytes"):
        verify_account_proof(EMPTY_ROOT, b"\x11" * 19, [])


def test_storage_values_must_be_minimal_words() -> None:
    slot = b"\x00" * 31 + b"\x01"
    for raw, ok in [
        (rlp.encode(b"\x01\x02"), True),
        (rlp.encode(b"\x00\x01"), False),
        (rlp.encode(b"\x01" * 33), False),
        (rlp.encode([b"\x01"]), False),
        (b"\x81\x05", False),
    ]:
        storage = MerklePatriciaTrie(MemoryNodeStore(), secure=True)
        storage.set(slot, raw)
        root = storage.commit()
        if ok:
            assert verify_storage_proof(root, slot, storage.prove(slot)) == b"\x01\x02"
        else:
            with pytest.raises(MptProofError):
                verify_storage_proof(root, slot, storage.prove(slot))
    with pytest.raises(MptProofError, match="32 bytes"):
        verify_storage_proof(EMPTY_ROOT, b"\x01", [])


def test_storage_word_pads_to_the_evm_view() -> None:
    assert storage_word(None) == b"\x00" * 32
    assert storage_word(b"\x38") == b"\x00" * 31 + b"\x38"


_items = st.one_of(
    st.just(b""),
    st.binary(min_size=32, max_size=32),
    st.binary(max_size=60),
    st.lists(st.binary(max_size=8), min_size=2, max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(
    items=st.one_of(
        st.lists(_items, min_size=17, max_size=17), st.lists(_items, min_size=2, max_size=2)
    )
)
def test_decode_node_equals_rlp_decode_on_nodes(items: list[Any]) -> None:
    assert decode_node(rlp.encode(items)) == items


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=80),
    items=st.lists(_items, min_size=17, max_size=17),
    cut=st.integers(0, 600),
)
def test_decode_node_accepts_exactly_what_rlp_accepts(
    data: bytes, items: list[Any], cut: int
) -> None:
    """Random bytes and truncated branches: same verdict as the rlp package, never a crash."""
    encoded = rlp.encode(items)
    for blob in (data, encoded[:cut], encoded[:cut] + data):
        try:
            expected = rlp.decode(blob)
        except rlp.exceptions.DecodingError:
            expected = None
        if not isinstance(expected, list) or len(expected) not in (2, 17):
            with pytest.raises(ValueError):
                decode_node(blob)
        else:
            assert decode_node(blob) == expected
