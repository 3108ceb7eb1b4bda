"""MPT multiproofs: prove_many and verify_multiproof agree with the single-key proofs, list
each node once, hash each node once, and refuse every deviation from the one encoding."""

from __future__ import annotations

import sys

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st
from rlp.codec import length_prefix

import lightclients.mpt as mpt
from chains.store.mpt import MemoryNodeStore, MerklePatriciaTrie, encode_storage_value
from lightclients.crypto import keccak256
from lightclients.mpt import (
    EMPTY_ROOT,
    MptProofError,
    verify_multiproof,
    verify_proof,
    verify_storage_multiproof,
    verify_storage_proof,
)


def _slot(i: int) -> bytes:
    return keccak256(b"slot" + i.to_bytes(4, "big"))


def _storage(n: int) -> MerklePatriciaTrie:
    t = MerklePatriciaTrie(MemoryNodeStore(), secure=True)
    for i in range(n):
        t.set(_slot(i), encode_storage_value(keccak256(i.to_bytes(4, "big"))))
    t.commit()
    return t


TRIE = _storage(400)
PRESENT = sorted(_slot(i) for i in range(0, 400, 37))
ABSENT = sorted(_slot(i) for i in range(1000, 1006))
SLOTS = sorted(PRESENT + ABSENT)


def test_round_trip_matches_single_proofs_and_lists_each_node_once() -> None:
    nodes = TRIE.prove_many(SLOTS)
    got = verify_storage_multiproof(TRIE.root_hash, SLOTS, nodes)
    for slot in SLOTS:
        assert got[slot] == verify_storage_proof(TRIE.root_hash, slot, TRIE.prove(slot))
    assert all(got[s] is not None for s in PRESENT) and all(got[s] is None for s in ABSENT)
    assert len(set(nodes)) == len(nodes)
    union = {node for slot in SLOTS for node in TRIE.prove(slot)}
    assert set(nodes) == union
    assert len(nodes) < sum(len(TRIE.prove(s)) for s in SLOTS)  # the root alone is shared


def test_each_node_is_hashed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = TRIE.prove_many(SLOTS)
    calls: list[int] = []
    real = mpt.keccak256

    def counting(data: bytes) -> bytes:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(mpt, "keccak256", counting)
    verify_storage_multiproof(TRIE.root_hash, SLOTS, nodes)
    # one hash per listed node, plus each slot hashed into its trie key
    assert len(calls) == len(nodes) + len(SLOTS)


def test_single_key_multiproof_equals_the_single_proof() -> None:
    slot = PRESENT[3]
    assert TRIE.prove_many([slot]) == TRIE.prove(slot)


def test_empty_trie() -> None:
    empty = MerklePatriciaTrie(MemoryNodeStore(), secure=True)
    assert empty.prove_many(SLOTS) == []
    assert verify_storage_multiproof(EMPTY_ROOT, SLOTS, []) == dict.fromkeys(SLOTS)
    with pytest.raises(MptProofError, match="empty trie"):
        verify_multiproof(EMPTY_ROOT, [b"\x00" * 32], [b"\x80"])


def _refused(nodes: list[bytes], match: str, slots: list[bytes] | None = None) -> None:
    with pytest.raises(MptProofError, match=match):
        verify_storage_multiproof(TRIE.root_hash, SLOTS if slots is None else slots, nodes)


def test_extra_node_is_refused() -> None:
    nodes = TRIE.prove_many(SLOTS)
    stranger = TRIE.prove(_slot(399))[-1]
    assert stranger not in nodes
    _refused([*nodes, stranger], "no key's path uses")
    _refused([*nodes, nodes[5]], "no key's path uses")  # a repeated node


def test_missing_or_reordered_node_is_refused() -> None:
    nodes = TRIE.prove_many(SLOTS)
    _refused(nodes[:-1], "incomplete")
    _refused(nodes[:4] + nodes[5:], "not the node the walk needs next")
    swapped = list(nodes)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    _refused(swapped, "not the node the walk needs next")


def test_wrong_value_is_refused() -> None:
    nodes = TRIE.prove_many(SLOTS)
    last = bytearray(nodes[-1])
    last[-1] ^= 1
    _refused([*nodes[:-1], bytes(last)], "not the node the walk needs next")


def test_key_order_and_coverage() -> None:
    nodes = TRIE.prove_many(SLOTS)
    _refused(nodes, "strictly ascending", slots=list(reversed(SLOTS)))
    _refused(nodes, "strictly ascending", slots=[SLOTS[0], *SLOTS])
    # Fewer slots than the nodes were made for: the other slots' nodes are extra.
    _refused(nodes, "no key's path uses", slots=SLOTS[:-1])
    # A slot the nodes do not reach: its path needs a node that is not there.
    with pytest.raises(MptProofError):
        verify_storage_multiproof(TRIE.root_hash, sorted([*SLOTS, _slot(5)]), nodes)
    _refused(nodes, "32 bytes", slots=[b"\x01" * 31])
    with pytest.raises(MptProofError, match="covers no key"):
        verify_multiproof(TRIE.root_hash, [], nodes)


def _nested(depth: int) -> bytes:
    x = b"\x01"
    for _ in range(depth):
        x = bytes(length_prefix(len(x), 0xC0)) + x
    return x


def test_deeply_nested_node_is_a_typed_error() -> None:
    payload = b"\x20" + _nested(sys.getrecursionlimit() * 3)
    node = bytes(length_prefix(len(payload), 0xC0)) + payload
    with pytest.raises(MptProofError, match="nested too deeply"):
        verify_multiproof(keccak256(node), [b"\x00"], [node])


def test_hashed_node_under_32_bytes_must_be_embedded() -> None:
    leaf = rlp.encode([b"\x31", b"a"])  # key nibbles 0,1 -> branch slot 0, then leaf path "1"
    assert len(leaf) < 32
    branch = rlp.encode([keccak256(leaf)] + [b""] * 15 + [b""])
    with pytest.raises(MptProofError, match="under 32 bytes"):
        verify_multiproof(keccak256(branch), [b"\x01"], [branch, leaf])


def test_non_bytes_and_non_sequences_are_typed_errors() -> None:
    nodes = TRIE.prove_many(SLOTS)
    with pytest.raises(MptProofError):
        verify_multiproof(TRIE.root_hash, b"abc", nodes)  # type: ignore[arg-type]
    with pytest.raises(MptProofError):
        verify_multiproof(TRIE.root_hash, [keccak256(SLOTS[0])], "nodes")  # type: ignore[arg-type]
    with pytest.raises(MptProofError):
        verify_multiproof(TRIE.root_hash, [keccak256(SLOTS[0])], [nodes[0], 7])  # type: ignore[list-item]


@settings(max_examples=40, deadline=None)
@given(
    content=st.dictionaries(st.binary(min_size=1, max_size=4), st.binary(min_size=1, max_size=40), max_size=40),
    probe=st.lists(st.binary(min_size=1, max_size=4), min_size=1, max_size=12, unique=True),
)
def test_multiproof_agrees_with_single_proofs(content: dict[bytes, bytes], probe: list[bytes]) -> None:
    t = MerklePatriciaTrie(MemoryNodeStore())
    for k, v in content.items():
        t.set(k, v)
    t.commit()
    keys = sorted(set(probe) | set(list(content)[:3]))
    got = verify_multiproof(t.root_hash, keys, t.prove_many(keys))
    assert got == [verify_proof(t.root_hash, k, t.prove(k)) for k in keys]
