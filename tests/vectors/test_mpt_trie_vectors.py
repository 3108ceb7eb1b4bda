"""ethereum/tests TrieTests: our trie and py-trie must both reach every published root.

Running py-trie on the same inputs keeps the property tests honest: they compare our trie
with py-trie, so py-trie itself is pinned to the reference roots here.
"""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from trie import HexaryTrie

from chains.store.mpt import EMPTY_ROOT, MemoryNodeStore, MerklePatriciaTrie
from lightclients.crypto import keccak256
from lightclients.mpt import verify_proof
from tests.conftest import load_vector

ROOT_FILES = {
    "trietest.json": (False, 5),
    "trietest_secureTrie.json": (True, 3),
    "trieanyorder.json": (False, 7),
    "trieanyorder_secureTrie.json": (True, 7),
    "hex_encoded_securetrie_test.json": (True, 3),
}


def _bytes(text: str | None) -> bytes:
    """Vector convention: '0x…' is hex, anything else is the string's UTF-8 bytes."""
    if text is None:
        return b""
    if text.startswith("0x"):
        return bytes.fromhex(text[2:])
    return text.encode("utf-8")


def _cases(name: str) -> list[tuple[str, list[tuple[bytes, bytes]], bytes, bool]]:
    secure, count = ROOT_FILES[name]
    data: dict[str, Any] = load_vector("ethereum-tests", "TrieTests", name)
    assert len(data) == count
    cases = []
    for case_name, case in data.items():
        pairs = case["in"].items() if isinstance(case["in"], dict) else case["in"]
        ops = [(_bytes(k), _bytes(v)) for k, v in pairs]
        cases.append((case_name, ops, _bytes(case["root"]), secure))
    return cases


@pytest.mark.parametrize("name", sorted(ROOT_FILES))
def test_our_trie_reaches_every_published_root(name: str) -> None:
    for case_name, ops, root, secure in _cases(name):
        store = MemoryNodeStore()
        trie = MerklePatriciaTrie(store, secure=secure)
        for key, value in ops:
            trie.set(key, value)
        assert trie.commit() == root, f"{name}:{case_name}"
        # Committed state reopens from the store alone and proves every final entry.
        final = {k: v for k, v in ops}
        reopened = MerklePatriciaTrie(store, root, secure=secure)
        for key, value in final.items():
            assert reopened.get(key) == (value or None), f"{name}:{case_name}:{key!r}"
            trie_key = keccak256(key) if secure else key
            assert verify_proof(root, trie_key, trie.prove(key)) == (value or None)


@pytest.mark.parametrize("name", sorted(ROOT_FILES))
def test_our_trie_reaches_every_root_committing_after_each_write(name: str) -> None:
    """Same roots when every write is committed at once (the dirty set is one path)."""
    for case_name, ops, root, secure in _cases(name):
        trie = MerklePatriciaTrie(MemoryNodeStore(), secure=secure)
        for key, value in ops:
            trie.set(key, value)
            trie.commit()
        assert trie.root_hash == root, f"{name}:{case_name}"


@pytest.mark.parametrize("name", sorted(ROOT_FILES))
def test_py_trie_reaches_every_published_root(name: str) -> None:
    for case_name, ops, root, secure in _cases(name):
        ref = HexaryTrie({})
        for key, value in ops:
            trie_key = keccak256(key) if secure else key
            if value:
                ref[trie_key] = value
            else:
                ref.delete(trie_key)
        assert ref.root_hash == root, f"{name}:{case_name}"


def test_deleting_everything_returns_to_the_empty_root() -> None:
    for name in ROOT_FILES:
        for _case_name, ops, _root, secure in _cases(name):
            trie = MerklePatriciaTrie(MemoryNodeStore(), secure=secure)
            for key, value in ops:
                trie.set(key, value)
            trie.commit()
            for key, _ in ops:
                trie.delete(key)
            assert trie.commit() == EMPTY_ROOT


def test_proofs_of_vector_tries_verify_with_py_trie() -> None:
    for _case_name, ops, root, _secure in _cases("trieanyorder_secureTrie.json"):
        trie = MerklePatriciaTrie(MemoryNodeStore(), secure=True)
        for key, value in ops:
            trie.set(key, value)
        assert trie.commit() == root
        for key, value in [*ops, (b"absent key", b"")]:
            nodes = [rlp.decode(n) for n in trie.prove(key)]
            assert HexaryTrie.get_from_proof(root, keccak256(key), nodes) == value


def test_neighbour_lookup_vectors() -> None:
    data = load_vector("ethereum-tests", "TrieTests", "trietestnextprev.json")
    assert list(data) == ["basic"]
    trie = MerklePatriciaTrie(MemoryNodeStore())
    for key in data["basic"]["in"]:
        trie.set(key.encode(), key.encode())
    trie.commit()
    for probe, prev, nxt in data["basic"]["tests"]:
        assert trie.prev_key(probe.encode()) == (prev.encode() or None), probe
        assert trie.next_key(probe.encode()) == (nxt.encode() or None), probe
