"""cosmos/ics23 public vectors: the 18 tree proofs and the 7 unit tables (SOURCES.md section 1)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf.json_format import ParseDict

from lightclients import ics23
from lightclients.ics23 import Ics23Error
from tests.conftest import load_vector

SPECS = {"smt": ics23.SMT_SPEC, "iavl": ics23.IAVL_SPEC, "tendermint": ics23.TENDERMINT_SPEC}
TREE_FILES = [
    (tree, f"{kind}_{where}.json")
    for tree in SPECS
    for kind in ("exist", "nonexist")
    for where in ("left", "middle", "right")
]


def _tree_case(tree: str, name: str) -> tuple[bytes, bytes, bytes, bytes]:
    d = load_vector("cosmos-ics23", tree, name)
    return tuple(bytes.fromhex(d[f]) for f in ("proof", "key", "value", "root"))  # type: ignore[return-value]


def _verify(tree: str, proof: bytes, key: bytes, value: bytes, root: bytes) -> bool:
    spec = SPECS[tree]
    if value:
        return ics23.verify_membership(spec, root, proof, key, value)
    return ics23.verify_non_membership(spec, root, proof, key)


@pytest.mark.parametrize(("tree", "name"), TREE_FILES)
def test_tree_vector_verifies_and_recomputes_root(tree: str, name: str) -> None:
    proof, key, value, root = _tree_case(tree, name)
    msg = ics23.decode_commitment_proof(proof)
    assert msg.WhichOneof("proof") == ("exist" if value else "nonexist")
    assert ics23.calculate_root(msg) == root
    if not value:
        for side in ("left", "right"):
            if msg.nonexist.HasField(side):
                assert ics23.calculate_existence_root(getattr(msg.nonexist, side)) == root
    assert _verify(tree, proof, key, value, root)
    # the proof must not also prove the opposite statement
    if value:
        assert not ics23.verify_non_membership(SPECS[tree], root, proof, key)
    else:
        assert not ics23.verify_membership(SPECS[tree], root, proof, key, b"anything")


@pytest.mark.parametrize(("tree", "name"), TREE_FILES)
def test_tree_vector_every_flipped_proof_byte_fails(tree: str, name: str) -> None:
    proof, key, value, root = _tree_case(tree, name)
    for i in range(len(proof)):
        for mask in (0x01, 0x80):
            bad = bytearray(proof)
            bad[i] ^= mask
            assert not _verify(tree, bytes(bad), key, value, root), (i, mask)


@pytest.mark.parametrize(("tree", "name"), TREE_FILES)
def test_tree_vector_flipped_key_value_root_fail(tree: str, name: str) -> None:
    proof, key, value, root = _tree_case(tree, name)
    for field in ("key", "value", "root"):
        original = {"key": key, "value": value, "root": root}[field]
        if not original:
            continue
        for i in range(len(original)):
            bad = bytearray(original)
            bad[i] ^= 0x01
            args = {"key": key, "value": value, "root": root, field: bytes(bad)}
            assert not _verify(tree, proof, args["key"], args["value"], args["root"]), (field, i)
    assert not _verify(tree, proof, key + b"\x00", value, root)
    assert not _verify(tree, proof, key, value, root[:-1])
    if value:
        assert not _verify(tree, proof, key, value + b"\x00", root)
        assert not ics23.verify_membership(SPECS[tree], root, proof, key, b"")


def test_tree_vectors_fail_under_the_other_specs() -> None:
    for tree, name in TREE_FILES:
        proof, key, value, root = _tree_case(tree, name)
        for other, spec in SPECS.items():
            if other == tree:
                continue
            ok = (
                ics23.verify_membership(spec, root, proof, key, value)
                if value
                else ics23.verify_non_membership(spec, root, proof, key)
            )
            assert not ok, (tree, name, other)


# --- unit tables ------------------------------------------------------------------------


def _b64(v: Any) -> bytes:
    return base64.b64decode(v) if v else b""


def _accepts(check: Callable[..., None], *args: Any) -> bool:
    try:
        check(*args)
    except Ics23Error:
        return False
    return True


def _table(name: str) -> Any:
    return load_vector("cosmos-ics23", "unit", name)


def test_do_hash_table() -> None:
    table = _table("TestDoHashData.json")
    assert len(table) == 7
    for name, case in table.items():
        fields = {k.lower(): v for k, v in case.items()}  # Go's JSON decoder ignores case
        got = ics23.do_hash(fields["hashop"], fields["preimage"].encode())
        assert got.hex() == fields["expectedhash"], name


def test_leaf_op_table() -> None:
    table = _table("TestLeafOpData.json")
    assert len(table) == 11
    for name, case in table.items():
        op = ParseDict(case["Op"], ics23.LeafOp())
        key, value = _b64(case["Key"]), _b64(case["Value"])
        if case["IsErr"]:
            with pytest.raises(Ics23Error):
                ics23.apply_leaf(op, key, value)
        else:
            assert ics23.apply_leaf(op, key, value) == _b64(case["Expected"]), name


def test_inner_op_table() -> None:
    table = _table("TestInnerOpData.json")
    assert len(table) == 4
    for name, case in table.items():
        op = ParseDict(case["Op"], ics23.InnerOp())
        child = None if case["Child"] is None else _b64(case["Child"])
        if case["IsErr"]:
            with pytest.raises(Ics23Error):
                ics23.apply_inner(op, child)
        else:
            assert ics23.apply_inner(op, child) == _b64(case["Expected"]), name


def test_existence_proof_table() -> None:
    table = _table("TestExistenceProofData.json")
    assert len(table) == 6
    for name, case in table.items():
        proof = ParseDict(case["Proof"], ics23.ExistenceProof())
        if case["IsErr"]:
            with pytest.raises(Ics23Error):
                ics23.calculate_existence_root(proof)
        else:
            assert ics23.calculate_existence_root(proof) == _b64(case["Expected"]), name


def test_check_leaf_table() -> None:
    table = _table("TestCheckLeafData.json")
    assert len(table) == 10
    for name, case in table.items():
        leaf = ParseDict(case["Leaf"], ics23.LeafOp())
        spec = ics23.ProofSpec(leaf_spec=ParseDict(case["Spec"], ics23.LeafOp()))
        assert _accepts(ics23.check_leaf, leaf, spec) == (not case["IsErr"]), name


def test_check_against_spec_table() -> None:
    table = _table("TestCheckAgainstSpecData.json")
    assert len(table) == 11
    for name, case in table.items():
        proof = ParseDict(case["Proof"], ics23.ExistenceProof())
        spec = ParseDict(case["Spec"], ics23.ProofSpec())
        assert _accepts(ics23.check_against_spec, proof, spec) == (not case["Err"]), name


def test_empty_branch_table() -> None:
    table = _table("TestEmptyBranchData.json")
    assert len(table) == 8
    for i, case in enumerate(table):
        op = ParseDict(case["Op"], ics23.InnerOp())
        spec = ParseDict(case["Spec"], ics23.ProofSpec())
        ics23.check_inner(op, spec, 1)
        assert ics23.left_branches_are_empty(spec.inner_spec, op) == case["IsLeft"], i
        assert ics23.right_branches_are_empty(spec.inner_spec, op) == case["IsRight"], i
