"""Forgery attempts against the ICS-23 verifier under SMT_SPEC and the tree that feeds it.

Each test builds a proof an attacker could hand the Corda light client and pins the rule
that turns it down; most forgeries here pass the hash chain to the real root, so only
that rule stands between the attacker and a false membership or absence claim.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.store.smt import MemoryNodeStore, SmtError, SparseMerkleTree
from kakehashi.ics23.v1 import proofs_pb2 as pb
from lightclients import ics23
from lightclients.ics23 import SMT_SPEC, Ics23Error, verify_membership, verify_non_membership
from tests.conftest import load_vector

SPEC = SMT_SPEC


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _tree(content: dict[bytes, bytes]) -> SparseMerkleTree:
    t = SparseMerkleTree()
    for k, v in content.items():
        t.set(k, v)
    t.commit()
    return t


def _exist(t: SparseMerkleTree, key: bytes) -> pb.ExistenceProof:
    proof = t.prove(key)
    assert proof.WhichOneof("proof") == "exist"
    return proof.exist


def _nonexist(
    key: bytes, left: pb.ExistenceProof | None, right: pb.ExistenceProof | None
) -> pb.CommitmentProof:
    ne = pb.NonExistenceProof(key=_sha(key))
    if left is not None:
        ne.left.CopyFrom(left)
    if right is not None:
        ne.right.CopyFrom(right)
    return pb.CommitmentProof(nonexist=ne)


def _by_hash(keys: list[bytes]) -> list[bytes]:
    """Keys in tree order (the order of their sha256), which is what neighbours follow."""
    return sorted(keys, key=_sha)


KEYS = [f"commitments/ports/transfer/channels/channel-0/sequences/{i}".encode() for i in range(40)]
CONTENT = {k: b"c" + k[-2:] for k in KEYS}


@pytest.fixture(scope="module")
def tree() -> SparseMerkleTree:
    return _tree(CONTENT)


# --- membership of something that is not in the tree ------------------------------------


def test_hashed_key_cannot_pose_as_a_key(tree: SparseMerkleTree) -> None:
    """prehash_key NO_HASH would read sha256(K) as a raw key whose leaf is K's real leaf."""
    key = KEYS[3]
    real = _exist(tree, key)
    forged = pb.ExistenceProof()
    forged.CopyFrom(real)
    forged.key = _sha(key)
    forged.leaf.prehash_key = pb.NO_HASH
    assert ics23.calculate_existence_root(forged) == tree.root  # the hash chain holds
    assert not verify_membership(
        SPEC, tree.root, pb.CommitmentProof(exist=forged), _sha(key), real.value
    )
    with pytest.raises(Ics23Error, match="prehash_key"):
        ics23.check_against_spec(forged, SPEC)


def test_hashed_value_cannot_pose_as_a_value(tree: SparseMerkleTree) -> None:
    key = KEYS[4]
    real = _exist(tree, key)
    forged = pb.ExistenceProof()
    forged.CopyFrom(real)
    forged.value = _sha(real.value)
    forged.leaf.prehash_value = pb.NO_HASH
    assert ics23.calculate_existence_root(forged) == tree.root
    assert not verify_membership(
        SPEC, tree.root, pb.CommitmentProof(exist=forged), key, forged.value
    )


def test_real_proof_does_not_vouch_for_another_key_or_value(tree: SparseMerkleTree) -> None:
    """The proof's own key and value fields hash to the root; the question's must equal them."""
    key, other = KEYS[5], KEYS[6]
    raw = tree.prove_bytes(key)
    assert verify_membership(SPEC, tree.root, raw, key, CONTENT[key])
    assert not verify_membership(SPEC, tree.root, raw, key, CONTENT[other])
    assert not verify_membership(SPEC, tree.root, raw, other, CONTENT[key])


def test_inner_node_cannot_pose_as_a_leaf(tree: SparseMerkleTree) -> None:
    """A leaf op with the inner prefix turns inner(L, R) into a 'leaf' for key L, value R.

    Under SMT_SPEC the prehash rules stop it too, so the prefix rule is pinned under the
    same layout with raw keys, where it is the only thing in the way.
    """
    raw_spec = pb.ProofSpec()
    raw_spec.CopyFrom(SPEC)
    raw_spec.leaf_spec.prehash_key = pb.NO_HASH
    raw_spec.leaf_spec.prehash_value = pb.NO_HASH
    raw_spec.prehash_key_before_comparison = False
    root_node = tree.store.get(tree.root)
    assert root_node is not None and root_node[:1] == b"\x01"
    left, right = root_node[1:33], root_node[33:]
    leaf = pb.LeafOp(hash=pb.SHA256, prefix=b"\x01", length=pb.NO_PREFIX)
    forged = pb.ExistenceProof(key=left, value=right, leaf=leaf)
    assert ics23.calculate_existence_root(forged) == tree.root
    for spec in (raw_spec, SPEC):
        assert not verify_membership(spec, tree.root, pb.CommitmentProof(exist=forged), left, right)
    with pytest.raises(Ics23Error, match="leaf prefix"):
        ics23.check_leaf(leaf, raw_spec)


def test_leaf_cannot_pose_as_an_inner_node() -> None:
    """Second preimage: a stored key K = 0x00‖sha256(k)‖sha256(v) makes sha256(K) the leaf of
    (k, v), so 'inner op with the leaf prefix' over leaf(k, v) climbs into K's real path."""
    k, v = b"never-written", b"forged-value"
    key_k = b"\x00" + _sha(k) + _sha(v)
    value_k = b"a value chosen by whoever wrote K"
    t = _tree({**dict(list(CONTENT.items())[:6]), key_k: value_k})
    assert t.get(k) is None
    real = _exist(t, key_k)
    assert verify_membership(SPEC, t.root, pb.CommitmentProof(exist=real), key_k, value_k)
    step = pb.InnerOp(hash=pb.SHA256, prefix=b"\x00", suffix=_sha(value_k))
    forged = pb.ExistenceProof(key=k, value=v, leaf=real.leaf, path=[step, *real.path])
    assert ics23.calculate_existence_root(forged) == t.root  # the forgery hashes to the root
    assert not verify_membership(SPEC, t.root, pb.CommitmentProof(exist=forged), k, v)
    with pytest.raises(Ics23Error, match="starts with the leaf prefix"):
        ics23.check_against_spec(forged, SPEC)


def test_tendermint_length_prefixes_cannot_be_dropped() -> None:
    """With NO_PREFIX instead of VAR_PROTO, key len(k)‖k‖0x20 gets k's leaf (length ambiguity)."""
    d = load_vector("cosmos-ics23", "tendermint", "exist_middle.json")
    proof = ics23.decode_commitment_proof(bytes.fromhex(d["proof"]))
    root = bytes.fromhex(d["root"])
    real = proof.exist
    spec = ics23.TENDERMINT_SPEC
    assert verify_membership(spec, root, proof, real.key, real.value)
    forged = pb.ExistenceProof()
    forged.CopyFrom(real)
    forged.key = ics23.do_length(pb.VAR_PROTO, real.key) + b"\x20"
    forged.leaf.length = pb.NO_PREFIX
    assert ics23.calculate_existence_root(forged) == root
    assert not verify_membership(
        spec, root, pb.CommitmentProof(exist=forged), forged.key, real.value
    )


@pytest.mark.parametrize(
    ("tree_name", "spec_name"), [("tendermint", "TENDERMINT_SPEC"), ("iavl", "IAVL_SPEC")]
)
def test_foreign_shaped_proofs_fail_under_smt_spec(tree_name: str, spec_name: str) -> None:
    """IAVL / Tendermint proofs are valid for their own spec and root, never under SMT_SPEC."""
    d = load_vector("cosmos-ics23", tree_name, "exist_middle.json")
    raw, root = bytes.fromhex(d["proof"]), bytes.fromhex(d["root"])
    key, value = bytes.fromhex(d["key"]), bytes.fromhex(d["value"])
    assert verify_membership(getattr(ics23, spec_name), root, raw, key, value)
    assert not verify_membership(SPEC, root, raw, key, value)


def test_smt_proof_fails_under_tendermint_spec(tree: SparseMerkleTree) -> None:
    key = KEYS[0]
    raw = tree.prove_bytes(key)
    assert verify_membership(SPEC, tree.root, raw, key, CONTENT[key])
    assert not verify_membership(ics23.TENDERMINT_SPEC, tree.root, raw, key, CONTENT[key])


# --- non-membership of something that is in the tree ------------------------------------


def _around(t: SparseMerkleTree, key: bytes) -> tuple[bytes | None, bytes | None]:
    order = _by_hash(list(CONTENT))
    i = order.index(key)
    return (order[i - 1] if i else None), (order[i + 1] if i + 1 < len(order) else None)


def _middle_key() -> bytes:
    return _by_hash(KEYS)[len(KEYS) // 2]


def test_neighbours_that_skip_the_key_are_not_adjacent(tree: SparseMerkleTree) -> None:
    key = _middle_key()
    pred, succ = _around(tree, key)
    assert pred is not None and succ is not None
    proof = _nonexist(key, _exist(tree, pred), _exist(tree, succ))
    assert not verify_non_membership(SPEC, tree.root, proof, key)
    with pytest.raises(Ics23Error, match="not adjacent"):
        ics23.verify_non_existence(proof.nonexist, SPEC, tree.root, key)


def test_key_itself_cannot_be_its_own_left_neighbour(tree: SparseMerkleTree) -> None:
    key = _middle_key()
    _, succ = _around(tree, key)
    assert succ is not None
    proof = _nonexist(key, _exist(tree, key), _exist(tree, succ))  # adjacent, but key == left
    assert not verify_non_membership(SPEC, tree.root, proof, key)


def test_key_itself_cannot_be_its_own_right_neighbour(tree: SparseMerkleTree) -> None:
    key = _middle_key()
    pred, _ = _around(tree, key)
    assert pred is not None
    proof = _nonexist(key, _exist(tree, pred), _exist(tree, key))
    assert not verify_non_membership(SPEC, tree.root, proof, key)


def test_lone_left_neighbour_must_be_the_last_leaf(tree: SparseMerkleTree) -> None:
    """The largest key, 'proven absent' by its predecessor alone (right-most check, and
    the empty-child comparison that right-most placeholder steps rely on)."""
    key = _by_hash(KEYS)[-1]
    pred, succ = _around(tree, key)
    assert succ is None and pred is not None
    proof = _nonexist(key, _exist(tree, pred), None)
    assert not verify_non_membership(SPEC, tree.root, proof, key)
    with pytest.raises(Ics23Error, match="not right-most"):
        ics23.verify_non_existence(proof.nonexist, SPEC, tree.root, key)


def test_lone_right_neighbour_must_be_the_first_leaf(tree: SparseMerkleTree) -> None:
    key = _by_hash(KEYS)[0]
    pred, succ = _around(tree, key)
    assert pred is None and succ is not None
    proof = _nonexist(key, None, _exist(tree, succ))
    assert not verify_non_membership(SPEC, tree.root, proof, key)
    with pytest.raises(Ics23Error, match="not left-most"):
        ics23.verify_non_existence(proof.nonexist, SPEC, tree.root, key)


def test_neighbours_are_ordered_by_hashed_key_not_raw_key(tree: SparseMerkleTree) -> None:
    """Adjacent leaves A, B bracket a present key K in raw byte order but not in hash order;
    comparing raw keys would accept their gap as K's absence."""
    order = _by_hash(KEYS)
    for a, b in itertools.pairwise(order):
        lo, hi = min(a, b), max(a, b)
        inside = [k for k in KEYS if lo < k < hi and k not in (a, b)]
        if a < b and inside:
            key = inside[0]
            break
    else:  # pragma: no cover - the fixed key set has such a pair
        raise AssertionError("no raw-order bracket in the key set")
    assert not _sha(a) < _sha(key) < _sha(b)
    proof = _nonexist(key, _exist(tree, a), _exist(tree, b))
    proof.nonexist.key = key  # the raw key is an accepted name too
    assert ics23.is_left_neighbor(
        SPEC.inner_spec, proof.nonexist.left.path, proof.nonexist.right.path
    )
    assert not verify_non_membership(SPEC, tree.root, proof, key)


def test_absence_proof_names_the_key_it_is_for(tree: SparseMerkleTree) -> None:
    """A real gap proof for X is not accepted for another absent Y in the same gap."""
    x = b"absent-0"
    raw = tree.prove(x)
    assert verify_non_membership(SPEC, tree.root, raw, x)
    lo, hi = raw.nonexist.left.key, raw.nonexist.right.key
    y = next(
        c
        for c in (f"absent-{i}".encode() for i in range(1, 100_000))
        if _sha(lo) < _sha(c) < _sha(hi)
    )
    assert verify_non_membership(SPEC, tree.root, tree.prove(y), y)
    assert not verify_non_membership(SPEC, tree.root, raw, y)


def test_old_absence_proof_does_not_replay_against_a_newer_root() -> None:
    t = _tree(dict(list(CONTENT.items())[:10]))
    late = b"receipts/ports/dvp/channels/channel-0/sequences/7"
    stale = t.prove(late)
    old_root = t.root
    t.set(late, b"\x01")
    t.commit()
    assert verify_non_membership(SPEC, old_root, stale, late)
    assert not verify_non_membership(SPEC, t.root, stale, late)


def test_identical_neighbours_are_rejected(tree: SparseMerkleTree) -> None:
    key = _middle_key()
    same = _exist(tree, key)
    proof = _nonexist(key, same, same)
    assert not verify_non_membership(SPEC, tree.root, proof, key)
    assert not ics23.is_left_neighbor(SPEC.inner_spec, same.path, same.path)


def test_neighbour_orientation_is_checked_at_the_split() -> None:
    """In a root that orders its leaves wrongly (no honest tree commits one), the smaller
    key sits right of the larger: the split must show left neighbour left, right right."""
    a, b = sorted((b"alpha", b"beta"), key=_sha)
    leaf = pb.LeafOp(hash=pb.SHA256, prehash_key=pb.SHA256, prehash_value=pb.SHA256, prefix=b"\x00")
    la, lb = (ics23.apply_leaf(leaf, k, b"v") for k in (a, b))
    root = _sha(b"\x01" + lb + la)
    pa = pb.ExistenceProof(
        key=a, value=b"v", leaf=leaf, path=[pb.InnerOp(hash=pb.SHA256, prefix=b"\x01" + lb)]
    )
    pb_ = pb.ExistenceProof(
        key=b, value=b"v", leaf=leaf, path=[pb.InnerOp(hash=pb.SHA256, prefix=b"\x01", suffix=la)]
    )
    assert verify_membership(SPEC, root, pb.CommitmentProof(exist=pa), a, b"v")
    assert verify_membership(SPEC, root, pb.CommitmentProof(exist=pb_), b, b"v")
    target = next(
        c for c in (i.to_bytes(4, "big") for i in range(100_000)) if _sha(a) < _sha(c) < _sha(b)
    )
    assert not verify_non_membership(SPEC, root, _nonexist(target, pa, pb_), target)


@settings(max_examples=40, deadline=None)
@given(
    st.sets(st.binary(min_size=1, max_size=6), min_size=2, max_size=14),
    st.binary(min_size=1, max_size=6),
)
def test_only_the_true_neighbours_prove_a_gap(keys: set[bytes], probe: bytes) -> None:
    """Every pair of real existence proofs as neighbours: present keys are never proven
    absent, and an absent key only by the pair that is adjacent around it."""
    t = _tree({k: b"v" + k for k in keys})
    proofs = {k: _exist(t, k) for k in keys}
    order = _by_hash(list(keys))
    for target in [*list(keys)[:3], probe]:
        present = target in keys
        th = _sha(target)
        below = [k for k in order if _sha(k) < th]
        above = [k for k in order if _sha(k) > th]
        truth = (below[-1] if below else None, above[0] if above else None)
        for left, right in itertools.product([None, *order], repeat=2):
            if left is None and right is None:
                continue
            proof = _nonexist(
                target,
                None if left is None else proofs[left],
                None if right is None else proofs[right],
            )
            ok = verify_non_membership(SPEC, t.root, proof, target)
            assert ok == (not present and (left, right) == truth), (left, right)


def test_tree_refuses_a_store_that_swapped_a_raw_value_or_key() -> None:
    """Nodes are checked against their hash on read; raw keys and values must be too, or a
    corrupt store changes what the chain reads (and proves) under an unchanged root."""
    store = MemoryNodeStore()
    t = SparseMerkleTree(store)
    t.set(b"commitments/1", b"one")
    t.set(b"commitments/2", b"two")
    root = t.commit()
    store.put(_sha(b"one"), b"ONE")
    view = SparseMerkleTree(store, root)
    with pytest.raises(SmtError, match="corrupt"):
        view.get(b"commitments/1")
    with pytest.raises(SmtError, match="corrupt"):
        view.prove(b"commitments/1")
    store.put(_sha(b"commitments/2"), b"commitments/9")
    with pytest.raises(SmtError, match="corrupt"):
        view.prove(b"commitments/2")
    assert view.get(b"commitments/2") == b"two"  # the leaf, not the raw key, decides a read


# --- size and depth ---------------------------------------------------------------------


def test_path_deeper_than_max_depth_is_refused_before_hashing(tree: SparseMerkleTree) -> None:
    real = _exist(tree, KEYS[0])
    deep = pb.ExistenceProof()
    deep.CopyFrom(real)
    step = pb.InnerOp(hash=pb.SHA256, prefix=b"\x01", suffix=bytes(32))
    deep.path.extend([step] * 20_000)
    raw = pb.CommitmentProof(exist=deep).SerializeToString(deterministic=True)
    with pytest.raises(Ics23Error, match="max_depth"):
        ics23.check_against_spec(deep, SPEC)
    assert not verify_membership(SPEC, tree.root, raw, KEYS[0], real.value)


def test_huge_inner_prefix_is_refused_before_hashing(tree: SparseMerkleTree) -> None:
    real = _exist(tree, KEYS[0])
    fat = pb.ExistenceProof()
    fat.CopyFrom(real)
    fat.path[0].prefix = b"\x01" + bytes(4_000_000)
    with pytest.raises(Ics23Error, match="too long"):
        ics23.check_against_spec(fat, SPEC)
    assert not verify_membership(
        SPEC, tree.root, pb.CommitmentProof(exist=fat), KEYS[0], real.value
    )


# --- encoding ---------------------------------------------------------------------------


def _overlong_first_length(raw: bytes) -> bytes:
    """The same message with its first field's length written as a 2-byte varint."""
    assert raw[1] < 0x80
    return raw[:1] + bytes([raw[1] | 0x80, 0x00]) + raw[2:]


def test_one_proof_has_one_byte_encoding(tree: SparseMerkleTree) -> None:
    key = KEYS[1]
    msg = tree.prove(key)
    raw = msg.SerializeToString(deterministic=True)
    inner = msg.exist.SerializeToString(deterministic=True)
    assert verify_membership(SPEC, tree.root, raw, key, CONTENT[key])
    # overlong varint for the key's length inside the exist proof
    reencoded_inner = _overlong_first_length(inner)
    outer = b"\x0a" + ics23.do_length(pb.VAR_PROTO, reencoded_inner)
    assert pb.CommitmentProof.FromString(outer) == msg  # protobuf reads both the same
    assert not verify_membership(SPEC, tree.root, outer, key, CONTENT[key])
    # fields in another order
    fields = pb.ExistenceProof(value=msg.exist.value).SerializeToString() + pb.ExistenceProof(
        key=msg.exist.key, leaf=msg.exist.leaf, path=msg.exist.path
    ).SerializeToString(deterministic=True)
    reordered = b"\x0a" + ics23.do_length(pb.VAR_PROTO, fields)
    assert pb.CommitmentProof.FromString(reordered) == msg
    assert not verify_membership(SPEC, tree.root, reordered, key, CONTENT[key])
