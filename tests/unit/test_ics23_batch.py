"""ICS-23 batch and compressed batch proofs: made by the SMT, opened by verify_batch.

A batch is verified once; each distinct inner-step input is hashed once; every part of the
encoding has one accepted form; lookups answer exactly what single proofs would."""

from __future__ import annotations

import pytest

from chains.store.smt import SparseMerkleTree
from kakehashi.ics23.v1 import proofs_pb2 as pb
from lightclients import ics23
from lightclients.ics23 import SMT_SPEC, Ics23Error, verify_batch
from tests.conftest import load_vector


def _key(i: int) -> bytes:
    return f"commitments/ports/transfer/channels/channel-0/sequences/{i}".encode()


def _value(i: int) -> bytes:
    return i.to_bytes(4, "big") * 8


def _tree(n: int) -> SparseMerkleTree:
    t = SparseMerkleTree()
    for i in range(n):
        t.set(_key(i), _value(i))
    t.commit()
    return t


TREE = _tree(500)
ROOT = TREE.root
PRESENT = [_key(i) for i in range(0, 500, 41)]
ABSENT = [_key(i) for i in range(1000, 1005)]
KEYS = PRESENT + ABSENT


def _compressed() -> pb.CommitmentProof:
    return TREE.prove_many(KEYS)


def _plain() -> pb.CommitmentProof:
    """The same batch with every path written out (BatchProof), from the single proofs."""
    entries = {}
    for k in KEYS:
        single = TREE.prove(k)
        if single.HasField("exist"):
            entries[single.exist.key] = pb.BatchEntry(exist=single.exist)
        else:
            entries[single.nonexist.key] = pb.BatchEntry(nonexist=single.nonexist)
    return pb.CommitmentProof(batch=pb.BatchProof(entries=[entries[k] for k in sorted(entries)]))


def _bytes(proof: pb.CommitmentProof) -> bytes:
    return proof.SerializeToString(deterministic=True)


@pytest.mark.parametrize("form", ["compressed", "plain"])
def test_round_trip_answers_like_single_proofs(form: str) -> None:
    proof = _compressed() if form == "compressed" else _plain()
    assert proof.WhichOneof("proof") == ("compressed" if form == "compressed" else "batch")
    vb = verify_batch(SMT_SPEC, ROOT, _bytes(proof))
    assert vb.entries == len(KEYS)
    for i in range(0, 500, 41):
        assert vb.covers(_key(i))
        vb.check_membership(_key(i), _value(i))
        with pytest.raises(Ics23Error, match="another value"):
            vb.check_membership(_key(i), _value(i + 1))
        with pytest.raises(Ics23Error, match="present"):
            vb.check_non_membership(_key(i))
    for k in ABSENT:
        vb.check_non_membership(k)
        with pytest.raises(Ics23Error, match="absent"):
            vb.check_membership(k, b"x")
    for k in (_key(1), _key(2000)):
        assert not vb.covers(k)
        with pytest.raises(Ics23Error, match="no entry"):
            vb.check_membership(k, _value(1))
        with pytest.raises(Ics23Error, match="no entry"):
            vb.check_non_membership(k)


def test_compressed_is_smaller_and_each_inner_input_is_hashed_once() -> None:
    compressed, plain = _compressed(), _plain()
    # The tree's batch prover and compressing its single proofs give the same bytes.
    assert _bytes(compressed) == _bytes(pb.CommitmentProof(compressed=ics23.compress_batch(plain.batch)))
    assert len(_bytes(compressed)) < len(_bytes(plain))
    vb = verify_batch(SMT_SPEC, ROOT, compressed)
    # Independently: the distinct inner-step inputs over every path of every entry.
    inputs: set[bytes] = set()
    steps = 0
    for entry in plain.batch.entries:
        exists = [entry.exist] if entry.HasField("exist") else [
            e for e in (entry.nonexist.left, entry.nonexist.right) if e.key
        ]
        for e in exists:
            node = ics23.apply_leaf(e.leaf, e.key, e.value)
            for op in e.path:
                pre = op.prefix + node + op.suffix
                inputs.add(pre)
                node = ics23.do_hash(op.hash, pre)
                steps += 1
    assert vb.inner_hashes == len(inputs)
    assert vb.inner_hashes < steps / 2


def test_public_single_vectors_verify_as_one_entry_batches() -> None:
    """Wire compatibility: cosmos/ics23 SMT proofs wrapped as a batch and compressed."""
    for name in ("exist_middle.json", "nonexist_middle.json"):
        d = load_vector("cosmos-ics23", "smt", name)
        single = ics23.decode_commitment_proof(bytes.fromhex(d["proof"]))
        key, value, root = (bytes.fromhex(d[f]) for f in ("key", "value", "root"))
        entry = pb.BatchEntry(exist=single.exist) if single.HasField("exist") else pb.BatchEntry(
            nonexist=single.nonexist)
        batch = pb.BatchProof(entries=[entry])
        for proof in (pb.CommitmentProof(batch=batch),
                      pb.CommitmentProof(compressed=ics23.compress_batch(batch))):
            vb = verify_batch(SMT_SPEC, root, _bytes(proof))
            if value:
                vb.check_membership(key, value)
            else:
                vb.check_non_membership(key)


def test_single_verifiers_refuse_batches() -> None:
    raw = _bytes(_compressed())
    assert not ics23.verify_membership(SMT_SPEC, ROOT, raw, _key(0), _value(0))
    assert not ics23.verify_non_membership(SMT_SPEC, ROOT, raw, ABSENT[0])
    with pytest.raises(Ics23Error, match="not a batch"):
        verify_batch(SMT_SPEC, ROOT, TREE.prove_bytes(_key(0)))


def _refused(proof: pb.CommitmentProof | bytes, match: str, root: bytes = ROOT) -> None:
    with pytest.raises(Ics23Error, match=match):
        verify_batch(SMT_SPEC, root, proof if isinstance(proof, bytes) else _bytes(proof))


def test_wrong_root_and_tampered_value() -> None:
    _refused(_compressed(), "does not lead to the root", root=bytes(32))
    proof = _compressed()
    for entry in proof.compressed.entries:
        if entry.HasField("exist"):
            entry.exist.value = b"forged"
            break
    _refused(proof, "does not lead to the root")


def test_missing_and_extra_inner_steps() -> None:
    proof = _compressed()
    first = next(e for e in proof.compressed.entries if e.HasField("exist"))
    del first.exist.path[0]  # a step dropped: the root no longer follows
    with pytest.raises(Ics23Error):
        verify_batch(SMT_SPEC, ROOT, _bytes(proof))
    proof = _compressed()
    proof.compressed.lookup_inners.add(hash=pb.SHA256, prefix=b"\x01", suffix=b"\x07" * 32)
    _refused(proof, "no entry uses")
    proof = _compressed()
    proof.compressed.lookup_inners.append(proof.compressed.lookup_inners[0])
    _refused(proof, "twice")
    proof = _compressed()
    first = next(e for e in proof.compressed.entries if e.HasField("exist"))
    first.exist.path[0] = len(proof.compressed.lookup_inners)
    _refused(proof, "outside lookup_inners")
    first.exist.path[0] = -1
    _refused(proof, "outside lookup_inners")


def test_lookup_table_must_be_in_first_use_order() -> None:
    proof = _compressed()
    table = proof.compressed.lookup_inners
    a, b = pb.InnerOp(), pb.InnerOp()
    a.CopyFrom(table[0])
    b.CopyFrom(table[1])
    table[0].CopyFrom(b)
    table[1].CopyFrom(a)
    for entry in proof.compressed.entries:
        for e in ([entry.exist] if entry.HasField("exist") else [entry.nonexist.left, entry.nonexist.right]):
            e.path[:] = [{0: 1, 1: 0}.get(i, i) for i in e.path]
    _refused(proof, "first use")


def test_entries_sorted_without_repeats_and_not_empty() -> None:
    proof = _plain()
    entries = list(proof.batch.entries)
    del proof.batch.entries[:]
    proof.batch.entries.extend(reversed(entries))
    _refused(proof, "strictly ascending")
    proof = _plain()
    proof.batch.entries.append(proof.batch.entries[-1])
    _refused(proof, "strictly ascending")
    _refused(pb.CommitmentProof(batch=pb.BatchProof()), "no entries")
    _refused(pb.CommitmentProof(batch=pb.BatchProof(entries=[pb.BatchEntry()])), "holds no exist")


def test_non_canonical_bytes_are_refused() -> None:
    raw = _bytes(_compressed())
    _refused(raw + b"\x2a\x00", "canonical")  # unknown field 5
    proof = _compressed()
    entry = next(e for e in proof.compressed.entries if e.HasField("exist"))
    # The same entry with its packed path written unpacked: same message, other bytes.
    packed = entry.exist.SerializeToString(deterministic=True)
    unpacked = pb.CompressedExistenceProof(key=entry.exist.key, value=entry.exist.value, leaf=entry.exist.leaf)
    loose = unpacked.SerializeToString(deterministic=True) + b"".join(
        b"\x20" + bytes([i]) for i in entry.exist.path)
    assert pb.CompressedExistenceProof.FromString(loose) == entry.exist and loose != packed
    assert _rewrap(proof, packed, packed) == raw  # the rewrap itself changes nothing else
    _refused(_rewrap(proof, packed, loose), "canonical")


def _rewrap(proof: pb.CommitmentProof, old: bytes, new: bytes) -> bytes:
    """The proof's bytes with one nested message's encoding swapped (lengths re-written)."""
    comp = proof.compressed
    out = b""
    for entry in comp.entries:
        inner = entry.SerializeToString(deterministic=True)
        if entry.HasField("exist") and entry.exist.SerializeToString(deterministic=True) == old:
            inner = b"\x0a" + _varint(len(new)) + new
        out += b"\x0a" + _varint(len(inner)) + inner
    for op in comp.lookup_inners:
        body = op.SerializeToString(deterministic=True)
        out += b"\x12" + _varint(len(body)) + body
    return b"\x22" + _varint(len(out)) + out


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def test_non_existence_entries_need_adjacent_neighbours_and_a_key_in_the_gap() -> None:
    gap_key = ABSENT[0]
    single = TREE.prove(gap_key).nonexist
    far = TREE.prove(_key(7)).exist  # a present key, almost surely not the right neighbour
    assert far.key != single.right.key
    forged = pb.NonExistenceProof(key=single.key, left=single.left, right=far)
    if forged.left.key and ics23.key_for_comparison(SMT_SPEC, far.key) <= ics23.key_for_comparison(
            SMT_SPEC, forged.left.key):
        forged = pb.NonExistenceProof(key=single.key, left=far, right=single.right)
    batch = pb.BatchProof(entries=[pb.BatchEntry(nonexist=forged)])
    with pytest.raises(Ics23Error, match=r"adjacent|order"):
        verify_batch(SMT_SPEC, ROOT, pb.CommitmentProof(batch=batch))
    # A genuine gap entry answers only for the key it names, and only inside its gap.
    vb = verify_batch(SMT_SPEC, ROOT, pb.CommitmentProof(batch=pb.BatchProof(entries=[
        pb.BatchEntry(nonexist=single)])))
    vb.check_non_membership(gap_key)
    with pytest.raises(Ics23Error, match="no entry"):
        vb.check_non_membership(ABSENT[1])


def test_depth_beyond_the_spec_is_refused() -> None:
    proof = _plain()
    entry = next(e for e in proof.batch.entries if e.HasField("exist"))
    step = entry.exist.path[-1]
    entry.exist.path.extend([step] * 300)
    _refused(proof, "max_depth")
