"""ICS-23 verifier: bad input is a typed error or False, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kakehashi.ics23.v1 import proofs_pb2 as pb
from lightclients import ics23
from lightclients.ics23 import Ics23Error
from tests.conftest import load_vector


def _vector(tree: str, name: str) -> tuple[bytes, bytes, bytes, bytes]:
    d = load_vector("cosmos-ics23", tree, name)
    return (
        bytes.fromhex(d["proof"]),
        bytes.fromhex(d["key"]),
        bytes.fromhex(d["value"]),
        bytes.fromhex(d["root"]),
    )


def test_batch_proofs_are_not_single_proofs_and_empty_batches_fail_clearly() -> None:
    # field 3 (batch) and field 4 (compressed), each an empty length-delimited message
    with pytest.raises(Ics23Error, match="holds no proof"):
        ics23.decode_commitment_proof(b"")
    for raw in (b"\x1a\x00", b"\x22\x00", b""):
        assert not ics23.verify_membership(ics23.SMT_SPEC, bytes(32), raw, b"k", b"v")
        assert not ics23.verify_non_membership(ics23.SMT_SPEC, bytes(32), raw, b"k")
    for raw in (b"\x1a\x00", b"\x22\x00"):
        with pytest.raises(Ics23Error, match="no entries"):
            ics23.verify_batch(ics23.SMT_SPEC, bytes(32), raw)


def test_garbage_and_non_bytes_proofs_raise_ics23_error() -> None:
    for raw in (b"\xff\xff\xff", b"\x0a\x05ab", b"\x08"):
        with pytest.raises(Ics23Error):
            ics23.decode_commitment_proof(raw)
    with pytest.raises(Ics23Error, match="bytes"):
        ics23.decode_commitment_proof("0a00")  # type: ignore[arg-type]


def test_non_canonical_encoding_is_rejected() -> None:
    proof, key, value, root = _vector("smt", "exist_left.json")
    assert ics23.verify_membership(ics23.SMT_SPEC, root, proof, key, value)
    padded = proof + b"\x2a\x00"  # an unknown field 5 appended
    with pytest.raises(Ics23Error, match="canonical"):
        ics23.decode_commitment_proof(padded)
    assert not ics23.verify_membership(ics23.SMT_SPEC, root, padded, key, value)
    # the same field twice: protobuf keeps the last one, so the bytes are not canonical
    msg = ics23.decode_commitment_proof(proof)
    doubled = proof + pb.CommitmentProof(exist=msg.exist).SerializeToString(deterministic=True)
    with pytest.raises(Ics23Error, match="canonical"):
        ics23.decode_commitment_proof(doubled)


def test_wrong_argument_types_give_false() -> None:
    proof, key, value, root = _vector("iavl", "exist_middle.json")
    spec = ics23.IAVL_SPEC
    assert ics23.verify_membership(spec, root, proof, key, value)
    mutable = [bytearray(root), bytearray(proof), bytearray(key), bytearray(value)]
    assert ics23.verify_membership(spec, *mutable)  # type: ignore[arg-type]
    assert not ics23.verify_membership(spec, root.hex(), proof, key, value)  # type: ignore[arg-type]
    assert not ics23.verify_membership(spec, root, proof, None, value)  # type: ignore[arg-type]
    assert not ics23.verify_membership(None, root, proof, key, value)  # type: ignore[arg-type]
    assert not ics23.verify_non_membership(spec, root, 12, key)  # type: ignore[arg-type]


def test_proof_kind_must_match_the_question() -> None:
    proof, key, _, root = _vector("tendermint", "nonexist_middle.json")
    spec = ics23.TENDERMINT_SPEC
    assert ics23.verify_non_membership(spec, root, proof, key)
    msg = ics23.decode_commitment_proof(proof)
    left = msg.nonexist.left
    # a neighbour's existence proof proves its own key, not the absent one
    as_exist = pb.CommitmentProof(exist=left)
    assert ics23.verify_membership(spec, root, as_exist, left.key, left.value)
    assert not ics23.verify_non_membership(spec, root, as_exist, key)


def test_non_existence_with_no_neighbour_or_wrong_key_fails() -> None:
    proof, key, _, root = _vector("smt", "nonexist_middle.json")
    spec = ics23.SMT_SPEC
    msg = ics23.decode_commitment_proof(proof)
    empty = pb.CommitmentProof(nonexist=pb.NonExistenceProof(key=msg.nonexist.key))
    assert not ics23.verify_non_membership(spec, root, empty, key)
    with pytest.raises(Ics23Error, match="neither"):
        ics23.verify_non_existence(empty.nonexist, spec, root, key)
    wrong = pb.CommitmentProof()
    wrong.CopyFrom(msg)
    wrong.nonexist.key = b"other"
    assert not ics23.verify_non_membership(spec, root, wrong, key)
    # the raw key is accepted as well as its comparison form
    raw = pb.CommitmentProof()
    raw.CopyFrom(msg)
    raw.nonexist.key = key
    assert ics23.verify_non_membership(spec, root, raw, key)
    # dropping one neighbour leaves a gap that the remaining one cannot close
    only_left = pb.CommitmentProof()
    only_left.CopyFrom(msg)
    only_left.nonexist.ClearField("right")
    assert not ics23.verify_non_membership(spec, root, only_left, key)
    # swapping neighbours breaks the ordering
    swapped = pb.CommitmentProof()
    swapped.CopyFrom(msg)
    swapped.nonexist.left.CopyFrom(msg.nonexist.right)
    swapped.nonexist.right.CopyFrom(msg.nonexist.left)
    assert not ics23.verify_non_membership(spec, root, swapped, key)


def test_identical_or_exhausted_paths_are_not_neighbours() -> None:
    spec = ics23.SMT_SPEC.inner_spec
    step = pb.InnerOp(hash=pb.SHA256, prefix=b"\x01", suffix=bytes(32))
    assert not ics23.is_left_neighbor(spec, [step], [step])
    assert not ics23.is_left_neighbor(spec, [], [step])
    assert ics23.is_left_most(spec, [])
    assert ics23.is_right_most(spec, [])


def test_hash_ops_and_errors() -> None:
    with pytest.raises(Ics23Error, match="BLAKE3"):
        ics23.do_hash(pb.BLAKE3, b"x")
    with pytest.raises(Ics23Error, match="unsupported"):
        ics23.do_hash(pb.NO_HASH, b"x")
    with pytest.raises(Ics23Error, match="unsupported"):
        ics23.do_hash(99, b"x")
    assert len(ics23.do_hash(pb.KECCAK256, b"")) == 32
    assert ics23.do_hash(pb.KECCAK256, b"").hex().startswith("c5d2460186f7")


def test_length_ops() -> None:
    data = b"\xaa" * 3
    assert ics23.do_length(pb.NO_PREFIX, data) == data
    assert ics23.do_length(pb.VAR_PROTO, b"\x01" * 300)[:2] == b"\xac\x02"
    assert ics23.do_length(pb.FIXED32_BIG, data) == b"\x00\x00\x00\x03" + data
    assert ics23.do_length(pb.FIXED32_LITTLE, data) == b"\x03\x00\x00\x00" + data
    assert ics23.do_length(pb.FIXED64_BIG, data) == bytes(7) + b"\x03" + data
    assert ics23.do_length(pb.FIXED64_LITTLE, data) == b"\x03" + bytes(7) + data
    assert ics23.do_length(pb.REQUIRE_32_BYTES, bytes(32)) == bytes(32)
    assert ics23.do_length(pb.REQUIRE_64_BYTES, bytes(64)) == bytes(64)
    for op, bad in ((pb.REQUIRE_32_BYTES, bytes(31)), (pb.REQUIRE_64_BYTES, bytes(32))):
        with pytest.raises(Ics23Error, match="requires"):
            ics23.do_length(op, bad)
    unsupported: list[int] = [pb.VAR_RLP, 42]
    for code in unsupported:
        with pytest.raises(Ics23Error, match="unsupported"):
            ics23.do_length(code, data)


def test_iavl_prefix_rules() -> None:
    spec = ics23.IAVL_SPEC
    good_leaf = pb.LeafOp(
        hash=pb.SHA256, prehash_value=pb.SHA256, length=pb.VAR_PROTO, prefix=b"\x00\x02\x02"
    )
    ics23.check_leaf(good_leaf, spec)
    for prefix in (b"\x00\x02", b"\x00\x02\x02\x00", b"\x00\x02\x01", b"\x00\x02\xff"):
        bad = pb.LeafOp()
        bad.CopyFrom(good_leaf)
        bad.prefix = prefix
        with pytest.raises(Ics23Error):
            ics23.check_leaf(bad, spec)
    inner = pb.InnerOp(hash=pb.SHA256, prefix=b"\x02\x04\x02\x20", suffix=b"\x20" + bytes(32))
    ics23.check_inner(inner, spec, 1)
    with pytest.raises(Ics23Error, match="height"):
        ics23.check_inner(inner, spec, 2)
    inner.prefix = b"\x02\x04\x02\x20\x20"
    with pytest.raises(Ics23Error, match="shape"):
        ics23.check_inner(inner, spec, 1)


def test_inner_prefix_and_suffix_limits() -> None:
    spec = ics23.SMT_SPEC
    ics23.check_inner(pb.InnerOp(hash=pb.SHA256, prefix=b"\x01" + bytes(32)), spec, 1)
    for op in (
        pb.InnerOp(hash=pb.SHA256, prefix=b"", suffix=bytes(32)),  # too short
        pb.InnerOp(hash=pb.SHA256, prefix=b"\x01" + bytes(33)),  # too long
        pb.InnerOp(hash=pb.SHA256, prefix=b"\x01", suffix=bytes(31)),  # partial child
        pb.InnerOp(hash=pb.SHA256, prefix=b"\x00", suffix=bytes(32)),  # looks like a leaf
        pb.InnerOp(hash=pb.SHA512, prefix=b"\x01", suffix=bytes(32)),  # wrong hash
    ):
        with pytest.raises(Ics23Error):
            ics23.check_inner(op, spec, 1)
    with pytest.raises(Ics23Error, match="child_size"):
        ics23.check_inner(
            pb.InnerOp(hash=pb.SHA256, prefix=b"\x01"),
            pb.ProofSpec(
                leaf_spec=pb.LeafOp(prefix=b"\x00"),
                inner_spec=pb.InnerSpec(
                    hash=pb.SHA256, min_prefix_length=1, max_prefix_length=1, child_order=[0, 1]
                ),
            ),
            1,
        )


def test_oversized_intermediate_hash_is_rejected_under_a_spec() -> None:
    proof = pb.ExistenceProof(
        key=b"k",
        value=b"v",
        leaf=pb.LeafOp(hash=pb.SHA256, prefix=b"\x00"),
        path=[pb.InnerOp(hash=pb.SHA512, prefix=b"\x01")],
    )
    assert len(ics23.calculate_existence_root(proof)) == 64
    with pytest.raises(Ics23Error, match="child_size"):
        ics23.calculate_existence_root(proof, ics23.TENDERMINT_SPEC)


@settings(max_examples=150, deadline=None)
@given(
    st.binary(max_size=300),
    st.binary(min_size=1, max_size=40),
    st.binary(max_size=40),
    st.binary(max_size=40),
)
def test_random_bytes_never_raise(proof: bytes, key: bytes, value: bytes, root: bytes) -> None:
    for spec in (ics23.SMT_SPEC, ics23.IAVL_SPEC, ics23.TENDERMINT_SPEC):
        assert ics23.verify_membership(spec, root, proof, key, value) in (False, True)
        assert not ics23.verify_non_membership(spec, root, proof, key)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_vector_messages_never_raise(data: st.DataObject) -> None:
    tree, spec = data.draw(st.sampled_from([("smt", ics23.SMT_SPEC), ("iavl", ics23.IAVL_SPEC)]))
    name = data.draw(st.sampled_from(["exist_middle.json", "nonexist_middle.json"]))
    proof, key, value, root = _vector(tree, name)
    raw = bytearray(proof)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if bytes(raw) == proof:
        return
    ok = (
        ics23.verify_membership(spec, root, bytes(raw), key, value)
        if value
        else ics23.verify_non_membership(spec, root, bytes(raw), key)
    )
    assert ok is False


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["smt", "iavl", "tendermint"]),
    st.sampled_from(["exist_left.json", "nonexist_middle.json", "nonexist_right.json"]),
    st.integers(-5, 40),
    st.lists(st.integers(-1, 3), max_size=4),
    st.integers(-3, 40),
    st.integers(-3, 40),
    st.binary(max_size=33),
    st.integers(0, 12),
    st.integers(-2, 300),
)
def test_malformed_specs_never_raise(
    tree: str,
    name: str,
    child_size: int,
    child_order: list[int],
    min_prefix: int,
    max_prefix: int,
    empty_child: bytes,
    prehash_key: int,
    max_depth: int,
) -> None:
    proof, key, value, root = _vector(tree, name)
    spec = pb.ProofSpec()
    spec.CopyFrom(
        {"smt": ics23.SMT_SPEC, "iavl": ics23.IAVL_SPEC, "tendermint": ics23.TENDERMINT_SPEC}[tree]
    )
    spec.inner_spec.child_size = child_size
    del spec.inner_spec.child_order[:]
    spec.inner_spec.child_order.extend(child_order)
    spec.inner_spec.min_prefix_length = min_prefix
    spec.inner_spec.max_prefix_length = max_prefix
    spec.inner_spec.empty_child = empty_child
    spec.leaf_spec.prehash_key = prehash_key  # type: ignore[assignment]
    spec.max_depth = max_depth
    if value:
        assert ics23.verify_membership(spec, root, proof, key, value) in (False, True)
    else:
        assert ics23.verify_non_membership(spec, root, proof, key) in (False, True)
