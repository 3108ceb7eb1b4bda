"""Sparse Merkle tree: its proofs verify under SMT_SPEC and its root depends only on content."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.store.smt import EMPTY_ROOT, MemoryNodeStore, SmtError, SparseMerkleTree
from lightclients.ics23 import (
    SMT_SPEC,
    decode_commitment_proof,
    verify_membership,
    verify_non_membership,
)

keys_st = st.binary(min_size=1, max_size=6)
content_st = st.dictionaries(keys_st, st.binary(min_size=1, max_size=8), min_size=1, max_size=40)


def _sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _tree(content: dict[bytes, bytes]) -> SparseMerkleTree:
    t = SparseMerkleTree()
    for k, v in content.items():
        t.set(k, v)
    t.commit()
    return t


def _flips(data: bytes) -> list[bytes]:
    out = []
    for i in range(len(data)):
        b = bytearray(data)
        b[i] ^= 0x01
        out.append(bytes(b))
    return out


def test_golden_roots_follow_the_written_preimages() -> None:
    assert SparseMerkleTree().root == EMPTY_ROOT == bytes(32)
    one = _tree({b"a": b"1"})
    leaf_a = _sha(b"\x00" + _sha(b"a") + _sha(b"1"))
    assert one.root == leaf_a
    # sha256("a") starts with bit 1, sha256("c") with bit 0: they split at the root
    assert _sha(b"a")[0] >> 7 == 1 and _sha(b"c")[0] >> 7 == 0
    leaf_c = _sha(b"\x00" + _sha(b"c") + _sha(b"3"))
    assert _tree({b"a": b"1", b"c": b"3"}).root == _sha(b"\x01" + leaf_c + leaf_a)


GOLDEN_ROOT = "1fc89c8bdc281a7e79f37a729a6e7ecc09205b6b27c14c71142e0d4c2da12d21"
GOLDEN_PROOF_SHA256 = "55af48c5531e90e4c68440e23a12c130fc223bfc7b7c9e2a12e879ab39e3d0f7"


def test_golden_root_and_proof_encoding_are_stable() -> None:
    """Pins the layout and the proof bytes so a change to either is a visible decision."""
    t = _tree({b"a": b"1", b"c": b"3", b"ports/transfer": b"\x01"})
    assert t.root.hex() == GOLDEN_ROOT
    raw = t.prove_bytes(b"zz")
    assert _sha(raw).hex() == GOLDEN_PROOF_SHA256
    assert verify_non_membership(SMT_SPEC, t.root, raw, b"zz")


def test_shared_prefix_gets_placeholders_and_proofs_verify() -> None:
    # two keys whose hashes share the first 8 bits: the path carries empty siblings
    seen: dict[int, bytes] = {}
    pair = None
    for i in range(10_000):
        k = i.to_bytes(4, "big")
        first = _sha(k)[0]
        if first in seen:
            pair = (seen[first], k)
            break
        seen[first] = k
    assert pair is not None
    t = _tree({pair[0]: b"x", pair[1]: b"y"})
    proof = t.prove(pair[0])
    assert len(proof.exist.path) >= 8
    assert any(bytes(32) in (s.prefix[1:], s.suffix) for s in proof.exist.path)
    assert verify_membership(SMT_SPEC, t.root, proof, pair[0], b"x")
    absent = b"absent"
    assert verify_non_membership(SMT_SPEC, t.root, t.prove(absent), absent)


@settings(max_examples=60, deadline=None)
@given(content_st, st.lists(keys_st, max_size=10))
def test_present_keys_prove_membership_absent_keys_prove_absence(
    content: dict[bytes, bytes], probes: list[bytes]
) -> None:
    t = _tree(content)
    for k, v in content.items():
        raw = t.prove_bytes(k)
        assert decode_commitment_proof(raw).WhichOneof("proof") == "exist"
        assert verify_membership(SMT_SPEC, t.root, raw, k, v)
        assert not verify_non_membership(SMT_SPEC, t.root, raw, k)
        assert t.get(k) == v
    for k in probes:
        if k in content:
            continue
        raw = t.prove_bytes(k)
        assert verify_non_membership(SMT_SPEC, t.root, raw, k)
        assert not verify_membership(SMT_SPEC, t.root, raw, k, b"v")
        assert t.get(k) is None


@settings(max_examples=25, deadline=None)
@given(content_st, keys_st, st.booleans())
def test_any_flipped_byte_breaks_verification(
    content: dict[bytes, bytes], probe: bytes, present: bool
) -> None:
    t = _tree(content)
    if present:
        key = sorted(content)[0]
        value = content[key]
        raw = t.prove_bytes(key)
        assert verify_membership(SMT_SPEC, t.root, raw, key, value)
        assert not any(verify_membership(SMT_SPEC, t.root, bad, key, value) for bad in _flips(raw))
        assert not any(verify_membership(SMT_SPEC, t.root, raw, bad, value) for bad in _flips(key))
        assert not any(verify_membership(SMT_SPEC, t.root, raw, key, bad) for bad in _flips(value))
        assert not any(verify_membership(SMT_SPEC, bad, raw, key, value) for bad in _flips(t.root))
    else:
        if probe in content:
            return
        raw = t.prove_bytes(probe)
        assert verify_non_membership(SMT_SPEC, t.root, raw, probe)
        assert not any(verify_non_membership(SMT_SPEC, t.root, bad, probe) for bad in _flips(raw))
        assert not any(verify_non_membership(SMT_SPEC, bad, raw, probe) for bad in _flips(t.root))
        # another absent key in a different gap cannot reuse the proof
        others = [bad for bad in _flips(probe) if bad not in content]
        assert not any(
            verify_non_membership(SMT_SPEC, t.root, raw, bad)
            for bad in others
            if t.prove_bytes(bad) != raw
        )


@settings(max_examples=40, deadline=None)
@given(content_st, st.randoms(use_true_random=False), st.integers(1, 4))
def test_root_is_independent_of_insertion_order_and_batching(
    content: dict[bytes, bytes], rnd: random.Random, batches: int
) -> None:
    expected = _tree(content).root
    items = list(content.items())
    rnd.shuffle(items)
    t = SparseMerkleTree()
    for i, (k, v) in enumerate(items):
        t.set(k, v)
        if i % batches == 0:
            t.commit()
    assert t.commit() == expected


@settings(max_examples=40, deadline=None)
@given(
    content_st, st.dictionaries(keys_st, st.binary(min_size=1, max_size=8), min_size=1, max_size=10)
)
def test_delete_restores_previous_root(
    content: dict[bytes, bytes], extra: dict[bytes, bytes]
) -> None:
    t = _tree(content)
    before = t.root
    added = {k: v for k, v in extra.items() if k not in content}
    for k, v in added.items():
        t.set(k, v)
    after = t.commit()
    for k in added:
        t.delete(k)
    assert t.commit() == before
    # the later version is still provable through a view
    view = t.at(after)
    for k, v in added.items():
        assert view.get(k) == v
        assert verify_membership(SMT_SPEC, after, view.prove(k), k, v)
        assert verify_non_membership(SMT_SPEC, before, t.prove(k), k)


def test_overwrite_pending_reads_and_views() -> None:
    t = _tree({b"k": b"1", b"j": b"2"})
    first = t.root
    t.set(b"k", b"3")
    assert t.get(b"k") == b"3"
    assert t.root == first  # uncommitted writes do not move the committed root
    assert verify_membership(SMT_SPEC, first, t.prove(b"k"), b"k", b"1")
    t.delete(b"j")
    assert t.get(b"j") is None
    second = t.commit()
    assert verify_membership(SMT_SPEC, second, t.prove(b"k"), b"k", b"3")
    assert verify_non_membership(SMT_SPEC, second, t.prove(b"j"), b"j")
    assert t.at(first).get(b"j") == b"2"
    assert t.commit() == second  # nothing pending, nothing changes
    t.delete(b"never-there")
    assert t.commit() == second
    reopened = SparseMerkleTree(t.store, second)
    assert reopened.get(b"k") == b"3"


def test_log_depth_proofs() -> None:
    t = _tree({i.to_bytes(4, "big"): b"v" for i in range(2000)})
    depths = [len(t.prove(i.to_bytes(4, "big")).exist.path) for i in range(0, 2000, 50)]
    assert max(depths) < 40  # log2(2000) ~ 11; 256 would mean the tree is not compact
    assert sum(depths) / len(depths) < 16


def test_bad_input_is_a_typed_error() -> None:
    t = _tree({b"k": b"v"})
    with pytest.raises(SmtError, match="empty"):
        t.set(b"k", b"")
    with pytest.raises(SmtError, match="empty"):
        t.set(b"", b"v")
    with pytest.raises(SmtError, match="bytes"):
        t.set("k", b"v")  # type: ignore[arg-type]
    with pytest.raises(SmtError, match="bytes"):
        t.get(None)  # type: ignore[arg-type]
    with pytest.raises(SmtError, match="read-only"):
        t.at(t.root).set(b"a", b"b")
    with pytest.raises(SmtError, match="read-only"):
        t.at(t.root).commit()
    with pytest.raises(SmtError, match="32 bytes"):
        t.at(b"short")
    with pytest.raises(SmtError, match="no entry"):
        t.at(b"\x07" * 32)
    with pytest.raises(SmtError, match="empty tree"):
        SparseMerkleTree().prove(b"k")
    assert t.get(b"k") == b"v"  # failed writes changed nothing


def test_corrupt_store_is_detected() -> None:
    store = MemoryNodeStore()
    t = SparseMerkleTree(store)
    t.set(b"a", b"1")
    t.set(b"b", b"2")
    root = t.commit()
    store.put(root, b"\x01" + bytes(64))  # wrong content under the root's hash
    with pytest.raises(SmtError, match="corrupt"):
        SparseMerkleTree(store, root)


class CountingStore(MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, node_hash: bytes, /) -> bytes | None:
        self.reads += 1
        return super().get(node_hash)


def test_head_keeps_latest_values_exactly_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writable tree answers repeated reads without the store, and commits keep it exact."""
    store = CountingStore()
    t = SparseMerkleTree(store)
    for i in range(200):
        t.set(b"k%d" % i, b"v%d" % i)
    t.commit()
    store.reads = 0
    assert t.get(b"k7") == b"v7" and t.get(b"absent") is None
    walked = store.reads
    assert walked > 0
    assert t.get(b"k7") == b"v7" and t.get(b"absent") is None
    assert store.reads == walked  # the second reads came from the head's values
    t.set(b"k7", b"new")
    t.set(b"absent", b"here")
    t.delete(b"k8")
    t.commit()
    store.reads = 0
    assert (t.get(b"k7"), t.get(b"absent"), t.get(b"k8")) == (b"new", b"here", None)
    assert store.reads == 0  # the commit recorded what it wrote
    view = t.at(t.root)
    assert view.get(b"k7") == b"new" and store.reads > 0  # views always walk the tree
    # Random writes, deletes and reads agree with a tree reopened at the same root (no cache).
    monkeypatch.setattr("chains.store.smt.VALUE_CACHE_SIZE", 16)
    rng = random.Random(5)
    for _ in range(30):
        for _ in range(rng.randint(0, 5)):
            k = b"r%d" % rng.randint(0, 40)
            if rng.random() < 0.3:
                t.delete(k)
            else:
                t.set(k, b"x%d" % rng.randint(0, 9))
        if rng.random() < 0.7:
            t.commit()
        fresh = SparseMerkleTree(store, t.root)
        for i in range(41):
            k = b"r%d" % i
            pending = t._pending.get(hashlib.sha256(k).digest())
            expected = pending[1] if pending is not None else fresh.get(k)
            assert t.get(k) == expected
        assert len(t._values) <= 16
