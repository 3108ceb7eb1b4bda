"""The chain's trie against py-trie (roots, proofs) and its own contracts (history, dirt).

py-trie is pinned to the ethereum/tests roots in tests/vectors/test_mpt_trie_vectors.py,
so agreeing with it at every commit of random histories is agreeing with Ethereum.
"""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from chains.store.kv import MemoryNodeStore
from chains.store.mpt import (
    EMPTY_CODE_HASH,
    EMPTY_ROOT,
    MerklePatriciaTrie,
    MissingNode,
    ReadOnlyTrie,
    TrieError,
    encode_account,
    encode_storage_value,
)
from lightclients.crypto import keccak256
from lightclients.mpt import (
    Account,
    MptProofError,
    verify_account_proof,
    verify_proof,
    verify_storage_proof,
)

SETTINGS = settings(max_examples=150, deadline=None)

# Few distinct nibbles make shared prefixes, extensions and embedded (< 32 byte) nodes common.
_fixed_keys = st.binary(min_size=3, max_size=3).map(lambda b: bytes(x % 3 for x in b))
_any_keys = st.binary(min_size=0, max_size=3).map(lambda b: bytes(x % 3 for x in b))
_values = st.one_of(st.binary(min_size=0, max_size=3), st.binary(min_size=30, max_size=40))
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(0, 15), _values),
        st.tuples(st.just("delete"), st.integers(0, 15), st.just(b"")),
        st.tuples(st.just("commit"), st.just(0), st.just(b"")),
    ),
    max_size=60,
)


def _run(
    keys: list[bytes], ops: list[tuple[str, int, bytes]], *, secure: bool, fixed: bool
) -> None:
    store = MemoryNodeStore()
    ours = MerklePatriciaTrie(store, secure=secure)
    ref = HexaryTrie({})
    model: dict[bytes, bytes] = {}
    history: list[tuple[bytes, dict[bytes, bytes]]] = []

    def trie_key(key: bytes) -> bytes:
        return keccak256(key) if secure else key

    for op, index, value in [*ops, ("commit", 0, b"")]:
        key = keys[index % len(keys)]
        if op == "set":
            ours.set(key, value)
            if value:
                ref[trie_key(key)] = value
                model[key] = value
            else:
                ref.delete(trie_key(key))
                model.pop(key, None)
            assert ours.get(key) == (value or None)
        elif op == "delete":
            ours.delete(key)
            ref.delete(trie_key(key))
            model.pop(key, None)
            assert ours.get(key) is None
        else:
            root = ours.commit()
            assert root == ref.root_hash
            history.append((root, dict(model)))
            for probe in keys:
                proof = ours.prove(probe)
                assert verify_proof(root, trie_key(probe), proof) == model.get(probe)
                if fixed:
                    # py-trie cannot look up a key that ends inside an extension (keys of
                    # mixed length), so it checks proofs only where keys are one length.
                    nodes = [rlp.decode(n) for n in proof]
                    from_proof = HexaryTrie.get_from_proof(root, trie_key(probe), nodes)
                    assert from_proof == model.get(probe, b"")
    # Every committed root stays readable and provable from the store.
    for root, snapshot in history:
        view = ours.at(root)
        for probe in keys:
            assert view.get(probe) == snapshot.get(probe)
            assert verify_proof(root, trie_key(probe), ours.prove(probe, root)) == snapshot.get(
                probe
            )
    assert list(ours.items()) == sorted((trie_key(k), v) for k, v in model.items())


@SETTINGS
@given(keys=st.lists(_fixed_keys, min_size=1, max_size=16), ops=_ops, secure=st.booleans())
def test_matches_py_trie_with_fixed_length_keys(
    keys: list[bytes], ops: list[tuple[str, int, bytes]], secure: bool
) -> None:
    _run(keys, ops, secure=secure, fixed=True)


@SETTINGS
@given(keys=st.lists(_any_keys, min_size=1, max_size=16), ops=_ops)
def test_matches_py_trie_with_keys_that_prefix_each_other(
    keys: list[bytes], ops: list[tuple[str, int, bytes]]
) -> None:
    _run(keys, ops, secure=False, fixed=False)


@SETTINGS
@given(
    keys=st.lists(_fixed_keys, min_size=2, max_size=16, unique=True),
    values=st.lists(_values.filter(bool), min_size=16, max_size=16),
    data=st.data(),
)
def test_forged_proofs_are_rejected(keys: list[bytes], values: list[bytes], data: Any) -> None:
    trie = MerklePatriciaTrie(MemoryNodeStore())
    for key, value in zip(keys, values, strict=False):
        trie.set(key, value)
    root = trie.commit()
    key = data.draw(st.sampled_from(keys))
    proof = trie.prove(key)
    i = data.draw(st.integers(0, len(proof) - 1))
    pos = data.draw(st.integers(0, len(proof[i]) - 1))
    bit = data.draw(st.integers(0, 7))
    forged = bytearray(proof[i])
    forged[pos] ^= 1 << bit
    with pytest.raises(MptProofError):
        verify_proof(root, key, [*proof[:i], bytes(forged), *proof[i + 1 :]])


class CountingStore(MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    def put(self, node_hash: bytes, node: bytes, /) -> None:
        self.puts += 1
        super().put(node_hash, node)


def test_commit_hashes_only_the_changed_path() -> None:
    store = CountingStore()
    trie = MerklePatriciaTrie(store, secure=True)
    for i in range(1000):
        trie.set(i.to_bytes(4, "big"), b"v" * 40)
    trie.commit()
    store.puts = 0
    trie.set((7).to_bytes(4, "big"), b"w" * 40)
    trie.set((7).to_bytes(4, "big"), b"x" * 40)  # rewriting before commit costs nothing extra
    root = trie.commit()
    depth = len(trie.prove((7).to_bytes(4, "big")))
    assert store.puts == depth  # one node per level, written once
    store.puts = 0
    assert trie.commit() == root
    assert store.puts == 0
    assert not trie.dirty


def test_reopening_from_the_store_continues_where_it_left_off() -> None:
    store = MemoryNodeStore()
    trie = MerklePatriciaTrie(store)
    for i in range(200):
        trie.set(b"key-%d" % i, b"value-%d" % i)
    root = trie.commit()
    again = MerklePatriciaTrie(store, root)
    again.set(b"key-5", b"")
    again.set(b"key-new", b"fresh")
    trie.delete(b"key-5")
    trie.set(b"key-new", b"fresh")
    assert again.commit() == trie.commit()
    assert again.get(b"key-5") is None
    assert again.get(b"key-6") == b"value-6"


def test_setting_an_unchanged_value_does_not_dirty_the_trie() -> None:
    store = MemoryNodeStore()
    trie = MerklePatriciaTrie(store)
    trie.set(b"a", b"1")
    trie.set(b"ab", b"2")
    trie.commit()
    reopened = MerklePatriciaTrie(store, trie.root_hash)
    reopened.set(b"ab", b"2")
    reopened.delete(b"zz")
    assert not reopened.dirty


def test_snapshot_and_revert_undo_uncommitted_writes() -> None:
    trie = MerklePatriciaTrie(MemoryNodeStore())
    trie.set(b"a", b"1")
    root = trie.commit()
    snap = trie.snapshot()
    trie.set(b"a", b"2")
    trie.set(b"b", b"3")
    trie.revert(snap)
    assert trie.get(b"a") == b"1"
    assert trie.get(b"b") is None
    assert not trie.dirty
    assert trie.commit() == root
    with pytest.raises(TrieError, match="snapshot"):
        trie.revert(type(snap)("not a node"))


def test_proofs_are_of_committed_state_only() -> None:
    trie = MerklePatriciaTrie(MemoryNodeStore())
    trie.set(b"a", b"1")
    root = trie.commit()
    trie.set(b"a", b"2")
    assert trie.get(b"a") == b"2"
    assert verify_proof(root, b"a", trie.prove(b"a")) == b"1"
    assert trie.prove(b"a", EMPTY_ROOT) == []


def test_views_of_old_roots_are_read_only() -> None:
    trie = MerklePatriciaTrie(MemoryNodeStore())
    trie.set(b"a", b"1")
    view = trie.at(trie.commit())
    for write in (lambda: view.set(b"a", b"2"), lambda: view.delete(b"a"), view.commit):
        with pytest.raises(ReadOnlyTrie):
            write()
    assert view.get(b"a") == b"1"


def test_unknown_roots_and_corrupt_nodes_are_typed_errors() -> None:
    store = MemoryNodeStore()
    with pytest.raises(MissingNode):
        MerklePatriciaTrie(store, b"\x01" * 32)
    trie = MerklePatriciaTrie(store)
    with pytest.raises(MissingNode):
        trie.prove(b"a", b"\x01" * 32)
    bad_root = keccak256(b"\xc3\x01\x02\x03")
    store.put(bad_root, b"\xc3\x01\x02\x03")
    with pytest.raises(TrieError, match="2-item or 17-item"):
        MerklePatriciaTrie(store, bad_root).get(b"a")
    noncanonical = keccak256(b"\x81\x01")
    store.put(noncanonical, b"\x81\x01")
    with pytest.raises(TrieError, match="canonical RLP"):
        MerklePatriciaTrie(store, noncanonical).get(b"a")
    with pytest.raises(TrieError, match="32 bytes"):
        MerklePatriciaTrie(store, b"\x01")
    fat_inline: list[Any] = [b""] * 17
    fat_inline[1] = [b"\x3a", b"x" * 40]
    encoded = rlp.encode(fat_inline)
    store.put(keccak256(encoded), encoded)
    with pytest.raises(TrieError, match="embeds a child"):
        MerklePatriciaTrie(store, keccak256(encoded)).get(b"\x1a")


def test_a_missing_child_node_is_reported() -> None:
    store = MemoryNodeStore()
    trie = MerklePatriciaTrie(store)
    for i in range(50):
        trie.set(keccak256(bytes([i])), b"v" * 40)
    root = trie.commit()
    for node_hash in list(store.nodes):
        if node_hash != root:
            del store.nodes[node_hash]
    with pytest.raises(MissingNode):
        MerklePatriciaTrie(store, root).get(keccak256(b"\x01"))


@pytest.mark.parametrize(("key", "value"), [("k", b"v"), (b"k", "v"), (b"k", None), (1, b"v")])
def test_non_bytes_arguments_are_typed_errors(key: Any, value: Any) -> None:
    trie = MerklePatriciaTrie(MemoryNodeStore())
    with pytest.raises(TrieError, match="must be bytes"):
        trie.set(key, value)


def test_state_helpers_round_trip_through_the_verifier() -> None:
    storage = MerklePatriciaTrie(MemoryNodeStore(), secure=True)
    commitment = b"\x00\x00" + keccak256(b"commitment")[2:]  # a hash with leading zeros
    slots = {
        (1).to_bytes(32, "big"): encode_storage_value(0x38),
        (2).to_bytes(32, "big"): encode_storage_value(commitment),
        (3).to_bytes(32, "big"): encode_storage_value(2**256 - 1),
    }
    for slot, value in slots.items():
        storage.set(slot, value)
    storage.set((4).to_bytes(32, "big"), encode_storage_value(0))  # zero = not stored
    storage_root = storage.commit()
    state = MerklePatriciaTrie(MemoryNodeStore(), secure=True)
    address = b"\xab" * 20
    code_hash = keccak256(b"code")
    state.set(address, encode_account(3, 10**18, storage_root, code_hash))
    state_root = state.commit()
    account = verify_account_proof(state_root, address, state.prove(address))
    assert account == Account(3, 10**18, storage_root, code_hash)
    got = {
        slot: verify_storage_proof(storage_root, slot, storage.prove(slot))
        for slot in [*slots, (4).to_bytes(32, "big")]
    }
    assert got[(1).to_bytes(32, "big")] == b"\x38"
    assert got[(2).to_bytes(32, "big")] == commitment.lstrip(b"\x00")
    assert got[(3).to_bytes(32, "big")] == b"\xff" * 32
    assert got[(4).to_bytes(32, "big")] is None
    assert encode_account(0, 0, EMPTY_ROOT, EMPTY_CODE_HASH) == rlp.encode(
        [0, 0, EMPTY_ROOT, EMPTY_CODE_HASH]
    )


@pytest.mark.parametrize(
    "args",
    [
        (-1, 0, EMPTY_ROOT, EMPTY_CODE_HASH),
        (0, 2**256, EMPTY_ROOT, EMPTY_CODE_HASH),
        (0, 0, b"x", EMPTY_CODE_HASH),
        (0, 0, EMPTY_ROOT, b""),
    ],
)
def test_encode_account_rejects_out_of_range_fields(args: tuple[Any, ...]) -> None:
    with pytest.raises(TrieError):
        encode_account(*args)


@pytest.mark.parametrize("word", [-1, 2**256, b"\x01" * 33, True, "1"])
def test_encode_storage_value_rejects_bad_words(word: Any) -> None:
    with pytest.raises(TrieError):
        encode_storage_value(word)


@SETTINGS
@given(
    keys=st.lists(_any_keys, max_size=20),
    probes=st.lists(_any_keys, min_size=1, max_size=10),
    commit=st.booleans(),
)
def test_neighbour_lookup_matches_a_sorted_scan(
    keys: list[bytes], probes: list[bytes], commit: bool
) -> None:
    store = MemoryNodeStore()
    trie = MerklePatriciaTrie(store)
    for key in keys:
        trie.set(key, b"v" * 33)
    if commit:
        trie = MerklePatriciaTrie(store, trie.commit())  # walk nodes read back from the store
    ordered = sorted(set(keys))
    for probe in [*probes, *keys]:
        assert trie.next_key(probe) == next((k for k in ordered if k > probe), None)
        assert trie.prev_key(probe) == next((k for k in reversed(ordered) if k < probe), None)
