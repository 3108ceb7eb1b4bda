"""Forgery attempts against the Merkle-Patricia proof verifier (EIP-1186 account/storage).

The QBFT light client trusts a storage value only through this walk, so each test hands
it a proof an attacker (or a faulty node) could produce and pins the rule that refuses it.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st
from rlp.codec import length_prefix

from chains.store.mpt import (
    MemoryNodeStore,
    MerklePatriciaTrie,
    encode_account,
    encode_storage_value,
)
from lightclients.crypto import keccak256
from lightclients.mpt import (
    EMPTY_CODE_HASH,
    EMPTY_ROOT,
    MptProofError,
    decode_node,
    verify_account_proof,
    verify_proof,
    verify_storage_proof,
)


def _hashed(node: Any) -> tuple[bytes, bytes]:
    encoded = bytes(rlp.encode(node))
    return keccak256(encoded), encoded


def _trie(content: dict[bytes, bytes], *, secure: bool = False) -> MerklePatriciaTrie:
    t = MerklePatriciaTrie(MemoryNodeStore(), secure=secure)
    for k, v in content.items():
        t.set(k, v)
    t.commit()
    return t


def _nested(depth: int) -> bytes:
    """An RLP list nested ``depth`` deep around one byte (built without recursion)."""
    x = b"\x01"
    for _ in range(depth):
        x = bytes(length_prefix(len(x), 0xC0)) + x
    return x


# --- a value at a key it is not stored under --------------------------------------------


def test_hashed_child_under_32_bytes_is_refused() -> None:
    """Ethereum embeds a child under 32 bytes; one listed by hash is not from a real trie."""
    short_leaf = bytes(rlp.encode([b"\x30", b"v"]))  # odd leaf path [0]
    assert len(short_leaf) < 32
    branch: list[bytes] = [b""] * 17
    branch[1] = keccak256(short_leaf)
    root, encoded = _hashed(branch)
    with pytest.raises(MptProofError, match="under 32 bytes"):
        verify_proof(root, b"\x10", [encoded, short_leaf])


def test_leaf_proves_only_its_exact_path() -> None:
    t = _trie({b"\x12\x34": b"value"})
    assert verify_proof(t.root_hash, b"\x12\x34", t.prove(b"\x12\x34")) == b"value"
    for probe in (b"\x12", b"\x12\x34\x56"):  # a prefix of the key, and the key extended
        assert verify_proof(t.root_hash, probe, t.prove(probe)) is None
        assert verify_proof(t.root_hash, probe, t.prove(b"\x12\x34")) is None


def test_extension_is_not_entered_by_a_shorter_key() -> None:
    t = _trie({b"\x12\x34": b"a" * 40, b"\x12\x35": b"b" * 40})
    proof = t.prove(b"\x12")
    assert len(proof) == 1  # the root extension [1,2,3] decides
    assert verify_proof(t.root_hash, b"\x12", proof) is None
    with pytest.raises(MptProofError, match="after the end"):
        verify_proof(t.root_hash, b"\x12", t.prove(b"\x12\x34"))


def test_branch_value_belongs_to_the_branch_key_only() -> None:
    t = _trie({b"\x12": b"short", b"\x12\x34": b"x" * 40, b"\x12\x56": b"y" * 40})
    assert verify_proof(t.root_hash, b"\x12", t.prove(b"\x12")) == b"short"
    assert verify_proof(t.root_hash, b"\x12\x34", t.prove(b"\x12\x34")) == b"x" * 40
    assert verify_proof(t.root_hash, b"\x12\x78", t.prove(b"\x12\x78")) is None


@settings(max_examples=120, deadline=None)
@given(
    st.dictionaries(
        st.binary(min_size=1, max_size=3),
        st.binary(min_size=1, max_size=40),
        min_size=1,
        max_size=12,
    ),
    st.lists(st.binary(min_size=1, max_size=3), max_size=4),
)
def test_no_proof_yields_a_value_the_key_does_not_have(
    content: dict[bytes, bytes], probes: list[bytes]
) -> None:
    """Any real proof, asked about any key: the key's own value, absence, or an error.

    Short keys and values give embedded nodes, branch values and keys that are prefixes of
    other keys, which is where a walk that is off by a nibble would show."""
    t = _trie(content)
    keys = [*content, *probes]
    for proven in keys:
        proof = t.prove(proven)
        assert verify_proof(t.root_hash, proven, proof) == content.get(proven)
        for asked in keys:
            try:
                got = verify_proof(t.root_hash, asked, proof)
            except MptProofError:
                continue
            assert got in (None, content.get(asked)), (proven, asked)


# --- proofs that are not exactly the path ------------------------------------------------


def test_union_of_two_proofs_is_refused() -> None:
    """geth accepts a superset of the path's nodes; here the path must be exactly the proof."""
    t = _trie({bytes([i]) * 2: bytes([i]) * 40 for i in range(1, 40)}, secure=True)
    absent, present = b"\xee\xee", b"\x05\x05"
    union = t.prove(absent) + [n for n in t.prove(present) if n not in t.prove(absent)]
    with pytest.raises(MptProofError, match="after the end"):
        verify_proof(t.root_hash, keccak256(absent), union)
    with pytest.raises(MptProofError, match="after the end"):
        verify_proof(t.root_hash, keccak256(present), t.prove(present) + t.prove(present)[:1])


def test_embedded_node_listed_again_is_refused() -> None:
    t = _trie({b"\x10": b"a", b"\x20": b"b"})
    proof = t.prove(b"\x10")
    assert len(proof) == 1  # both leaves are embedded in the root branch
    embedded = decode_node(proof[0])[1]
    assert isinstance(embedded, list)
    with pytest.raises(MptProofError, match="after the end"):
        verify_proof(t.root_hash, b"\x10", [*proof, bytes(rlp.encode(embedded))])


def test_child_reference_must_be_a_hash_or_an_embedded_list() -> None:
    branch: list[bytes] = [b""] * 17
    branch[1] = b"\x30\x76"  # a short byte string where a list or hash belongs
    root, encoded = _hashed(branch)
    with pytest.raises(MptProofError, match="not a 32-byte hash"):
        verify_proof(root, b"\x10", [encoded])


# --- hex-prefix flags ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        (b"\x60\xab", "flag nibble"),  # flag 6: not a hex-prefix flag at all
        (b"\xa0\xab", "flag nibble"),
        (b"\x2f\xab", "padding nibble"),  # even leaf with a non-zero pad
        (b"\x05\xab", "padding nibble"),  # even extension with a non-zero pad
    ],
)
def test_malformed_hex_prefix_is_refused(hp: bytes, message: str) -> None:
    """Each is a second spelling of the leaf [0x20 0xab] (or an extension) for one path."""
    root, encoded = _hashed([hp, b"v" * 40])
    with pytest.raises(MptProofError, match=message):
        verify_proof(root, b"\xab", [encoded])


def test_extension_flag_never_reads_as_a_leaf() -> None:
    """[0x00‖path, 32 bytes] is an extension to a hash, so its item is never a value."""
    target = b"\x42" * 32
    root, encoded = _hashed([b"\x00\xab", target])
    with pytest.raises(MptProofError, match="incomplete"):
        verify_proof(root, b"\xab", [encoded])
    leaf_root, leaf = _hashed([b"\x20\xab", target])
    assert verify_proof(leaf_root, b"\xab", [leaf]) == target


# --- non-canonical RLP ------------------------------------------------------------------


def _long_form(payload: bytes) -> bytes:
    return b"\xf8" + bytes([len(payload)]) + payload


@pytest.mark.parametrize(
    "encoded",
    [
        _long_form(b"\x82\x20\xab" + b"\x81\x76"),  # long-form list header for 5 bytes
        b"\xc5\x82\x20\xab\x81\x76",  # 0x81 0x76 where the byte 0x76 stands alone
        b"\xc4\x82\x20\xab\x76\x00",  # a byte after the list
        b"\xc5\xb8\x02\x20\xab\x76",  # long-form string header for 2 bytes
    ],
)
def test_non_canonical_rlp_is_refused(encoded: bytes) -> None:
    with pytest.raises(MptProofError, match=r"canonical|one RLP list"):
        verify_proof(keccak256(encoded), b"\xab", [encoded])


# --- account proof vs storage proof -------------------------------------------------------


def _account_and_storage() -> tuple[bytes, bytes, list[bytes], bytes, bytes, list[bytes]]:
    slot = b"\x00" * 31 + b"\x07"
    storage = _trie({slot: encode_storage_value(b"\x99" * 32)}, secure=True)
    address = b"\x11" * 20
    state = _trie(
        {
            address: encode_account(1, 0, storage.root_hash, EMPTY_CODE_HASH),
            b"\x22" * 20: encode_account(3, 4, EMPTY_ROOT, EMPTY_CODE_HASH),
        },
        secure=True,
    )
    return (
        state.root_hash,
        address,
        state.prove(address),
        storage.root_hash,
        slot,
        storage.prove(slot),
    )


def test_account_and_storage_proofs_do_not_stand_in_for_each_other() -> None:
    state_root, address, account_proof, storage_root, slot, storage_proof = _account_and_storage()
    account = verify_account_proof(state_root, address, account_proof)
    assert account is not None and account.storage_root == storage_root
    assert verify_storage_proof(storage_root, slot, storage_proof) == b"\x99" * 32
    with pytest.raises(MptProofError):
        verify_storage_proof(state_root, slot, storage_proof)
    with pytest.raises(MptProofError):
        verify_account_proof(storage_root, address, account_proof)


def test_account_body_in_a_storage_slot_is_not_a_word() -> None:
    slot = b"\x00" * 31 + b"\x07"
    body = encode_account(1, 2, EMPTY_ROOT, EMPTY_CODE_HASH)
    storage = _trie({slot: body}, secure=True)
    with pytest.raises(MptProofError, match="minimal big-endian word"):
        verify_storage_proof(storage.root_hash, slot, storage.prove(slot))


# --- size and depth -----------------------------------------------------------------------


def test_deeply_nested_node_is_a_typed_error() -> None:
    """pyrlp recurses per nesting level: a node nested past the recursion limit must fail
    as an invalid proof, not with RecursionError."""
    depth = sys.getrecursionlimit() * 3
    payload = b"\x20" + _nested(depth)
    node = bytes(length_prefix(len(payload), 0xC0)) + payload
    with pytest.raises(ValueError, match="nested too deeply"):
        decode_node(node)
    with pytest.raises(MptProofError, match="nested too deeply"):
        verify_proof(keccak256(node), b"\x00", [node])


def test_deeply_nested_leaf_values_are_typed_errors() -> None:
    slot = b"\x00" * 32
    deep = _nested(sys.getrecursionlimit() * 3)
    storage = _trie({slot: deep}, secure=True)
    with pytest.raises(MptProofError, match="storage leaf"):
        verify_storage_proof(storage.root_hash, slot, storage.prove(slot))
    address = b"\x11" * 20
    state = _trie({address: deep}, secure=True)
    with pytest.raises(MptProofError, match="account leaf"):
        verify_account_proof(state.root_hash, address, state.prove(address))


def test_wrong_first_node_is_refused_before_it_is_decoded() -> None:
    """A huge junk proof costs one hash: node 0 is checked against the root first."""
    junk = [_nested(sys.getrecursionlimit() * 3)] + [b"\xc0"] * 100_000
    with pytest.raises(MptProofError, match="node 0 does not hash"):
        verify_proof(EMPTY_ROOT[::-1], b"\x00", junk)


def test_trailing_junk_is_counted_not_walked() -> None:
    t = _trie({b"\x01": b"a" * 40, b"\x02": b"b" * 40})
    proof = t.prove(b"\x01")
    with pytest.raises(MptProofError, match="100000 node"):
        verify_proof(t.root_hash, b"\x01", proof + [b"\xc0"] * 100_000)
