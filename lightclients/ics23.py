"""ICS-23 commitment-proof verification (cosmos/ics23 semantics, our own implementation).

The Corda light client proves IBC membership and non-membership against the checkpoint's
``ibc_root`` with these proofs, so every rule here is a soundness rule: a proof that passes
must pin one key/value (or one gap between neighbours) under one root.

Rules chosen beyond the reference implementation (all make verification stricter):
- A proof given as bytes must be the canonical (deterministic) protobuf encoding of what it
  decodes to; otherwise unknown fields or re-ordered fields would let one proof have many
  byte encodings, and flipping a byte could leave verification unchanged.
- ``NonExistenceProof.key`` must equal the queried key, or its comparison form (the prehashed
  key) when the spec compares prehashed keys; the reference ignores the field.
- ``verify_membership`` / ``verify_non_membership`` take single proofs only; a batch or
  compressed batch proof is opened with :func:`verify_batch`, which verifies every entry once
  and then answers lookups (see "batches" below for its rules).
Everything wrong with a proof raises :class:`Ics23Error` in the low-level functions and
makes ``verify_membership`` / ``verify_non_membership`` return False.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import NamedTuple, Protocol, cast

from google.protobuf.message import DecodeError

from kakehashi.ics23.v1 import proofs_pb2 as pb
from lightclients.crypto import keccak256, sha256

CommitmentProof = pb.CommitmentProof
ExistenceProof = pb.ExistenceProof
NonExistenceProof = pb.NonExistenceProof
LeafOp = pb.LeafOp
InnerOp = pb.InnerOp
ProofSpec = pb.ProofSpec
InnerSpec = pb.InnerSpec
BatchProof = pb.BatchProof
CompressedBatchProof = pb.CompressedBatchProof

# Go's verifier falls back to this depth when a spec leaves max_depth unset.
DEFAULT_MAX_DEPTH = 128


class InnerLike(Protocol):
    """An inner step as the checks read it: a protobuf InnerOp or a batch's plain tuple."""

    @property
    def hash(self) -> int: ...

    @property
    def prefix(self) -> bytes: ...

    @property
    def suffix(self) -> bytes: ...


class Ics23Error(ValueError):
    """A proof, op or spec that cannot be applied or does not match its spec."""


def _hashlib(name: str) -> Callable[[bytes], bytes]:
    def digest(data: bytes) -> bytes:
        try:
            return hashlib.new(name, data).digest()
        except ValueError as exc:  # OpenSSL builds may lack ripemd160 / sha512_256
            raise Ics23Error(f"hash {name} is not available in this Python build") from exc

    return digest


def _bitcoin(data: bytes) -> bytes:
    return _hashlib("ripemd160")(sha256(data))


_HASHES: dict[int, Callable[[bytes], bytes]] = {
    pb.SHA256: sha256,
    pb.SHA512: lambda d: hashlib.sha512(d).digest(),
    pb.KECCAK256: keccak256,
    pb.RIPEMD160: _hashlib("ripemd160"),
    pb.BITCOIN: _bitcoin,
    pb.SHA512_256: _hashlib("sha512_256"),
    pb.BLAKE2B_512: lambda d: hashlib.blake2b(d, digest_size=64).digest(),
    pb.BLAKE2S_256: lambda d: hashlib.blake2s(d, digest_size=32).digest(),
}


def do_hash(op: int, data: bytes) -> bytes:
    """Hash with an ICS-23 HashOp; NO_HASH is an error here because a tree step must hash."""
    fn = _HASHES.get(op)
    if fn is None:
        if op == pb.BLAKE3:
            raise Ics23Error("hash op BLAKE3 is not supported (no blake3 library installed)")
        raise Ics23Error(f"unsupported hash op {op}")
    return fn(bytes(data))


def _hash_or_noop(op: int, data: bytes) -> bytes:
    return bytes(data) if op == pb.NO_HASH else do_hash(op, data)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def do_length(op: int, data: bytes) -> bytes:
    """Prefix ``data`` with its length as a LengthOp says, so leaf fields cannot run together."""
    n = len(data)
    if op == pb.NO_PREFIX:
        return data
    if op == pb.VAR_PROTO:
        return _varint(n) + data
    if op == pb.REQUIRE_32_BYTES or op == pb.REQUIRE_64_BYTES:
        want = 32 if op == pb.REQUIRE_32_BYTES else 64
        if n != want:
            raise Ics23Error(f"length op requires {want} bytes, got {n}")
        return data
    fixed_formats: dict[int, str] = {
        pb.FIXED32_BIG: ">I",
        pb.FIXED32_LITTLE: "<I",
        pb.FIXED64_BIG: ">Q",
        pb.FIXED64_LITTLE: "<Q",
    }
    fixed = fixed_formats.get(op)
    if fixed is None:
        # VAR_RLP is declared by the spec but has no agreed encoding in any implementation.
        raise Ics23Error(f"unsupported length op {op}")
    if n >= 1 << (8 * struct.calcsize(fixed)):
        raise Ics23Error(f"data too long for length op {op}")
    return struct.pack(fixed, n) + data


def apply_leaf(op: LeafOp, key: bytes, value: bytes) -> bytes:
    """Hash of the leaf holding key/value; empty keys or values cannot be leaves."""
    if not key:
        raise Ics23Error("leaf op needs a non-empty key")
    if not value:
        raise Ics23Error("leaf op needs a non-empty value")
    pkey = do_length(op.length, _hash_or_noop(op.prehash_key, key))
    pvalue = do_length(op.length, _hash_or_noop(op.prehash_value, value))
    return do_hash(op.hash, op.prefix + pkey + pvalue)


def apply_inner(op: InnerOp, child: bytes | None) -> bytes:
    """Hash of the parent node given the child's hash; the siblings sit in prefix/suffix."""
    if not child:
        raise Ics23Error("inner op needs a non-empty child hash")
    return do_hash(op.hash, op.prefix + child + op.suffix)


def calculate_existence_root(proof: ExistenceProof, spec: ProofSpec | None = None) -> bytes:
    """Root implied by an existence proof; with a spec, oversized intermediate hashes fail."""
    if not proof.HasField("leaf"):
        raise Ics23Error("existence proof needs a leaf op")
    node = apply_leaf(proof.leaf, proof.key, proof.value)
    child_size = spec.inner_spec.child_size if spec is not None else 0
    for step in proof.path:
        node = apply_inner(step, node)
        if child_size >= 32 and len(node) > child_size:
            raise Ics23Error(f"inner hash of {len(node)} bytes exceeds child_size {child_size}")
    return node


def calculate_root(proof: CommitmentProof) -> bytes:
    """Root of the first existence proof inside; callers must still verify the rest."""
    kind = proof.WhichOneof("proof")
    if kind == "exist":
        return calculate_existence_root(proof.exist)
    if kind == "nonexist":
        ne = proof.nonexist
        if ne.HasField("left"):
            return calculate_existence_root(ne.left)
        if ne.HasField("right"):
            return calculate_existence_root(ne.right)
        raise Ics23Error("non-existence proof has neither a left nor a right neighbour")
    raise Ics23Error("commitment proof holds no exist or nonexist proof (a batch has no single root)")


# --- spec checks ------------------------------------------------------------------------


def _is_iavl(spec: ProofSpec) -> bool:
    # Same loose equality the reference uses: the IAVL-only prefix checks apply to any spec
    # shaped like IAVL_SPEC.
    a, b = spec, IAVL_SPEC
    if a.HasField("leaf_spec") != b.HasField("leaf_spec"):
        return False
    la, lb = a.leaf_spec, b.leaf_spec
    if (la.hash, la.prehash_key, la.prehash_value, la.length) != (
        lb.hash,
        lb.prehash_key,
        lb.prehash_value,
        lb.length,
    ):
        return False
    if a.HasField("inner_spec") != b.HasField("inner_spec"):
        return False
    ia, ib = a.inner_spec, b.inner_spec
    return (
        ia.hash,
        ia.min_prefix_length,
        ia.max_prefix_length,
        ia.child_size,
        len(ia.child_order),
    ) == (
        ib.hash,
        ib.min_prefix_length,
        ib.max_prefix_length,
        ib.child_size,
        len(ib.child_order),
    )


def _read_signed_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise Ics23Error("truncated varint in IAVL prefix")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
        if shift >= 70:
            raise Ics23Error("varint overflow in IAVL prefix")
    if result >= 1 << 64:
        raise Ics23Error("varint overflow in IAVL prefix")
    return (result >> 1) ^ -(result & 1), pos  # zig-zag


def _check_iavl_prefix(prefix: bytes, hash_op: int, layer: int) -> None:
    """IAVL nodes start with zig-zag varints height, size, version; layer 0 is the leaf."""
    pos = 0
    values = []
    for _ in range(3):
        v, pos = _read_signed_varint(prefix, pos)
        if v < 0 or v >= 1 << 63:
            raise Ics23Error("negative or oversized value in IAVL prefix")
        values.append(v)
    if values[0] < layer:
        raise Ics23Error(f"IAVL height {values[0]} below layer {layer}")
    rest = len(prefix) - pos
    if layer == 0:
        if rest != 0:
            raise Ics23Error("IAVL leaf prefix has trailing bytes")
    else:
        # Either just the child's length byte, or length byte + left sibling + length byte.
        if rest not in (1, 34):
            raise Ics23Error("IAVL inner prefix has the wrong shape")
        if hash_op != pb.SHA256:
            raise Ics23Error("IAVL inner op must use SHA256")


def check_leaf(op: LeafOp, spec: ProofSpec) -> None:
    """The leaf op must be exactly the spec's leaf format (prefix may be extended)."""
    if not spec.HasField("leaf_spec"):
        raise Ics23Error("spec has no leaf spec")
    if _is_iavl(spec):
        _check_iavl_prefix(op.prefix, op.hash, 0)
    ls = spec.leaf_spec
    for name in ("hash", "prehash_key", "prehash_value", "length"):
        if getattr(op, name) != getattr(ls, name):
            raise Ics23Error(
                f"leaf {name} {getattr(op, name)} does not match spec {getattr(ls, name)}"
            )
    if not op.prefix.startswith(ls.prefix):
        raise Ics23Error(f"leaf prefix does not start with {ls.prefix.hex()}")


def check_inner(op: InnerLike, spec: ProofSpec, layer: int) -> None:
    """An inner op must hash like the spec and have room for exactly its siblings."""
    if not spec.HasField("inner_spec") or not spec.HasField("leaf_spec"):
        raise Ics23Error("spec needs both a leaf spec and an inner spec")
    inner = spec.inner_spec
    if op.hash != inner.hash:
        raise Ics23Error(f"inner hash op {op.hash} does not match spec {inner.hash}")
    if _is_iavl(spec):
        _check_iavl_prefix(op.prefix, op.hash, layer)
    # An inner node that could be read as a leaf would let a leaf pose as a subtree.
    if op.prefix.startswith(spec.leaf_spec.prefix):
        raise Ics23Error("inner prefix starts with the leaf prefix")
    if len(op.prefix) < inner.min_prefix_length:
        raise Ics23Error(f"inner prefix too short ({len(op.prefix)})")
    max_left = (len(inner.child_order) - 1) * inner.child_size
    if len(op.prefix) > inner.max_prefix_length + max_left:
        raise Ics23Error(f"inner prefix too long ({len(op.prefix)})")
    if inner.child_size <= 0:
        raise Ics23Error("spec child_size must be positive")
    if len(op.suffix) % inner.child_size:
        raise Ics23Error("inner suffix is not a whole number of children")


def check_against_spec(proof: ExistenceProof, spec: ProofSpec) -> None:
    """Raise unless the proof's leaf and every step has the shape the spec allows."""
    if not proof.HasField("leaf"):
        raise Ics23Error("existence proof needs a leaf op")
    check_leaf(proof.leaf, spec)
    depth = len(proof.path)
    if spec.min_depth > 0 and depth < spec.min_depth:
        raise Ics23Error(f"proof depth {depth} below min_depth {spec.min_depth}")
    max_depth = spec.max_depth or DEFAULT_MAX_DEPTH
    if depth > max_depth:
        raise Ics23Error(f"proof depth {depth} above max_depth {max_depth}")
    for layer, step in enumerate(proof.path, start=1):
        check_inner(step, spec, layer)


def verify_existence(
    proof: ExistenceProof, spec: ProofSpec, root: bytes, key: bytes, value: bytes
) -> None:
    """Raise unless ``proof`` proves key -> value under ``root`` in the spec's format."""
    check_against_spec(proof, spec)
    if proof.key != key:
        raise Ics23Error("proof key does not match the key")
    if proof.value != value:
        raise Ics23Error("proof value does not match the value")
    if calculate_existence_root(proof, spec) != root:
        raise Ics23Error("calculated root does not match the root")


# --- neighbour rules --------------------------------------------------------------------


def _position(order: Sequence[int], branch: int) -> int:
    if branch < 0 or branch >= len(order):
        raise Ics23Error(f"invalid branch {branch}")
    for i, item in enumerate(order):
        if item == branch:
            return i
    raise Ics23Error(f"branch {branch} not in child order")


def _padding(spec: InnerSpec, branch: int) -> tuple[int, int, int]:
    idx = _position(spec.child_order, branch)
    prefix = idx * spec.child_size
    suffix = (len(spec.child_order) - 1 - idx) * spec.child_size
    return prefix + spec.min_prefix_length, prefix + spec.max_prefix_length, suffix


def _has_padding(op: InnerLike, padding: tuple[int, int, int]) -> bool:
    lo, hi, suffix = padding
    return lo <= len(op.prefix) <= hi and len(op.suffix) == suffix


def order_from_padding(spec: InnerSpec, op: InnerLike) -> int:
    """Which child slot the proven node occupies, read off the prefix/suffix lengths."""
    for branch in range(len(spec.child_order)):
        if _has_padding(op, _padding(spec, branch)):
            return branch
    raise Ics23Error("inner op fits no child slot of the spec")


def left_branches_are_empty(spec: InnerSpec, op: InnerLike) -> bool:
    """True when every sibling left of the node is the empty child (a placeholder step)."""
    try:
        idx = order_from_padding(spec, op)
    except Ics23Error:
        return False
    if idx == 0 or not spec.empty_child:
        return False
    start = len(op.prefix) - idx * spec.child_size
    if start < 0:
        return False
    for i in range(idx):
        at = start + _position(spec.child_order, i) * spec.child_size
        if op.prefix[at : at + spec.child_size] != spec.empty_child:
            return False
    return True


def right_branches_are_empty(spec: InnerSpec, op: InnerLike) -> bool:
    """True when every sibling right of the node is the empty child."""
    try:
        idx = order_from_padding(spec, op)
    except Ics23Error:
        return False
    count = len(spec.child_order) - 1 - idx
    if count == 0 or not spec.empty_child or len(op.suffix) != count * spec.child_size:
        return False
    for i in range(count):
        at = _position(spec.child_order, i) * spec.child_size
        if op.suffix[at : at + spec.child_size] != spec.empty_child:
            return False
    return True


def is_left_most(spec: InnerSpec, path: Sequence[InnerLike]) -> bool:
    """No key can sit left of this path: every step is leftmost or has only empty left siblings."""
    padding = _padding(spec, 0)
    return all(_has_padding(s, padding) or left_branches_are_empty(spec, s) for s in path)


def is_right_most(spec: InnerSpec, path: Sequence[InnerLike]) -> bool:
    padding = _padding(spec, len(spec.child_order) - 1)
    return all(_has_padding(s, padding) or right_branches_are_empty(spec, s) for s in path)


def is_left_neighbor(spec: InnerSpec, left: Sequence[InnerLike], right: Sequence[InnerLike]) -> bool:
    """True when no leaf can sit between the two paths (they split at adjacent slots)."""
    li, ri = len(left) - 1, len(right) - 1
    while (
        li >= 0
        and ri >= 0
        and left[li].prefix == right[ri].prefix
        and left[li].suffix == right[ri].suffix
    ):
        li -= 1
        ri -= 1
    if li < 0 or ri < 0:
        return False
    try:
        if order_from_padding(spec, right[ri]) != order_from_padding(spec, left[li]) + 1:
            return False
    except Ics23Error:
        return False
    return is_right_most(spec, left[:li]) and is_left_most(spec, right[:ri])


def key_for_comparison(spec: ProofSpec, key: bytes) -> bytes:
    """Keys are ordered after the leaf prehash when the tree is laid out by hashed keys."""
    if not spec.prehash_key_before_comparison:
        return key
    return _hash_or_noop(spec.leaf_spec.prehash_key, key)


def verify_non_existence(
    proof: NonExistenceProof, spec: ProofSpec, root: bytes, key: bytes
) -> None:
    """Raise unless the neighbours are proven under root, bracket key, and are adjacent."""
    cmp_key = key_for_comparison(spec, key)
    if proof.key not in (key, cmp_key):
        raise Ics23Error("non-existence proof is for another key")
    has_left, has_right = proof.HasField("left"), proof.HasField("right")
    if not has_left and not has_right:
        raise Ics23Error("non-existence proof has neither a left nor a right neighbour")
    if has_left:
        verify_existence(proof.left, spec, root, proof.left.key, proof.left.value)
        if cmp_key <= key_for_comparison(spec, proof.left.key):
            raise Ics23Error("key is not right of the left neighbour")
    if has_right:
        verify_existence(proof.right, spec, root, proof.right.key, proof.right.value)
        if cmp_key >= key_for_comparison(spec, proof.right.key):
            raise Ics23Error("key is not left of the right neighbour")
    inner = spec.inner_spec
    if not has_left:
        if not is_left_most(inner, proof.right.path):
            raise Ics23Error("left neighbour missing but the right one is not left-most")
    elif not has_right:
        if not is_right_most(inner, proof.left.path):
            raise Ics23Error("right neighbour missing but the left one is not right-most")
    elif not is_left_neighbor(inner, proof.left.path, proof.right.path):
        raise Ics23Error("left and right proofs are not adjacent")


# --- entry points -----------------------------------------------------------------------


def decode_commitment_proof(data: bytes) -> CommitmentProof:
    """Parse a canonical CommitmentProof (exist, nonexist, batch or compressed batch)."""
    if not isinstance(data, (bytes, bytearray)):
        raise Ics23Error(f"proof must be bytes, got {type(data).__name__}")
    msg = CommitmentProof()
    try:
        msg.ParseFromString(bytes(data))
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise Ics23Error(f"malformed commitment proof: {exc}") from exc
    if msg.WhichOneof("proof") is None:
        raise Ics23Error("commitment proof holds no proof (none of exist, nonexist, batch, compressed)")
    # Unknown fields survive re-serialization, so drop them before comparing.
    msg.DiscardUnknownFields()
    if msg.SerializeToString(deterministic=True) != bytes(data):
        raise Ics23Error(
            "commitment proof is not canonically encoded (unknown, repeated or reordered fields)"
        )
    return msg


def _as_proof(proof: CommitmentProof | bytes) -> CommitmentProof:
    if isinstance(proof, CommitmentProof):
        return proof
    return decode_commitment_proof(proof)


def _args_ok(*values: object) -> bool:
    return all(isinstance(v, (bytes, bytearray)) for v in values)


def verify_membership(
    spec: ProofSpec, root: bytes, proof: CommitmentProof | bytes, key: bytes, value: bytes
) -> bool:
    """True iff ``proof`` (message or encoded bytes) proves key -> value under root."""
    if not isinstance(spec, ProofSpec) or not _args_ok(root, key, value):
        return False
    try:
        msg = _as_proof(proof)
        if msg.WhichOneof("proof") != "exist":
            return False
        verify_existence(msg.exist, spec, bytes(root), bytes(key), bytes(value))
    except Ics23Error:
        return False
    return True


def verify_non_membership(
    spec: ProofSpec, root: bytes, proof: CommitmentProof | bytes, key: bytes
) -> bool:
    """True iff ``proof`` proves that no leaf for key exists under root."""
    if not isinstance(spec, ProofSpec) or not _args_ok(root, key):
        return False
    try:
        msg = _as_proof(proof)
        if msg.WhichOneof("proof") != "nonexist":
            return False
        verify_non_existence(msg.nonexist, spec, bytes(root), bytes(key))
    except Ics23Error:
        return False
    return True


# --- batches ------------------------------------------------------------------------------
#
# A batch (CommitmentProof.batch) or compressed batch (CommitmentProof.compressed) proves
# several keys under one root. ``verify_batch`` checks every entry once and returns a
# :class:`VerifiedBatch` that answers membership / non-membership by lookup. Rules beyond
# the reference implementation, so that one batch has one encoding and carries nothing
# unverified:
# - the canonical-bytes rule of single proofs (checked by decode_commitment_proof);
# - at least one entry; entries strictly ascending by the key they carry (ExistenceProof.key,
#   NonExistenceProof.key), so no key appears twice;
# - compressed: every path index names an entry of lookup_inners; the table lists each
#   distinct inner step once, in the order the entries first use it (entries in order;
#   a non-existence entry's left path before its right), and holds no unused step;
# - a non-existence entry's neighbours are verified and adjacent when the batch is opened;
#   the key it proves absent is checked against them at lookup (the key must equal the
#   entry's key or its prehash, as for single proofs).
# Hashing is memoised by preimage: an inner step hashes prefix || child || suffix, and the
# verifier keeps one table per batch from that input to its digest, so an input met on
# several entries' paths is hashed once. In a binary tree the input of a node is the same
# (0x01 || left || right in the SMT) whichever child's path reaches it, so every node on the
# union of the entries' paths is hashed exactly once; leaves are distinct and hashed once
# each. Spec checks are memoised the same way, per distinct step (and layer for IAVL).


# An inner step as (hash op, prefix, suffix): a plain tuple is built and hashed in C, which
# matters when a batch holds thousands of steps.
_Op = tuple[int, bytes, bytes]


class _Inner(NamedTuple):
    """A step with the attribute names the neighbour rules read (non-existence entries)."""

    hash: int
    prefix: bytes
    suffix: bytes


def _named(path: Sequence[_Op]) -> list[_Inner]:
    return [_Inner(*op) for op in path]


@dataclass(frozen=True, slots=True)
class BatchExist:
    """One existence entry of a batch: its steps as (hash op, prefix, suffix), leaf first."""

    key: bytes
    value: bytes
    leaf: LeafOp
    path: list[_Op]


@dataclass(frozen=True, slots=True)
class BatchAbsent:
    """One non-existence entry: the key it proves absent and its neighbours."""

    key: bytes
    left: BatchExist | None
    right: BatchExist | None


def _inner(op: InnerOp) -> _Op:
    return (int(op.hash), bytes(op.prefix), bytes(op.suffix))


def _plain_exist(p: ExistenceProof) -> BatchExist:
    if not p.HasField("leaf"):
        raise Ics23Error("existence proof needs a leaf op")
    return BatchExist(bytes(p.key), bytes(p.value), p.leaf, [_inner(op) for op in p.path])


def _plain_entries(batch: BatchProof) -> list[BatchExist | BatchAbsent]:
    out: list[BatchExist | BatchAbsent] = []
    for i, entry in enumerate(batch.entries):
        kind = entry.WhichOneof("proof")
        if kind == "exist":
            out.append(_plain_exist(entry.exist))
        elif kind == "nonexist":
            ne = entry.nonexist
            out.append(BatchAbsent(
                bytes(ne.key),
                _plain_exist(ne.left) if ne.HasField("left") else None,
                _plain_exist(ne.right) if ne.HasField("right") else None,
            ))
        else:
            raise Ics23Error(f"batch entry {i} holds no exist or nonexist proof")
    return out


class _Lookup:
    """Resolves a compressed path's indexes and checks the table's canonical order."""

    def __init__(self, table: Sequence[InnerOp]) -> None:
        self.table = [_inner(op) for op in table]
        if len(set(self.table)) != len(self.table):
            raise Ics23Error("compressed batch lists one inner step twice in lookup_inners")
        self.first_unused = 0

    def path(self, indexes: Sequence[int]) -> list[_Op]:
        idx = list(indexes)
        if idx and (min(idx) < 0 or max(idx) >= len(self.table)):
            raise Ics23Error("a compressed path index is outside lookup_inners")
        for i in idx:
            if i >= self.first_unused:
                if i > self.first_unused:
                    raise Ics23Error("lookup_inners is not in the order the entries first use it")
                self.first_unused += 1
        table = self.table
        return [table[i] for i in idx]

    def exist(self, p: pb.CompressedExistenceProof) -> BatchExist:
        if not p.HasField("leaf"):
            raise Ics23Error("existence proof needs a leaf op")
        return BatchExist(bytes(p.key), bytes(p.value), p.leaf, self.path(p.path))

    def finish(self) -> None:
        if self.first_unused != len(self.table):
            raise Ics23Error(
                f"lookup_inners has {len(self.table) - self.first_unused} step(s) no entry uses"
            )


def _compressed_entries(batch: CompressedBatchProof) -> list[BatchExist | BatchAbsent]:
    lookup = _Lookup(batch.lookup_inners)
    out: list[BatchExist | BatchAbsent] = []
    for i, entry in enumerate(batch.entries):
        kind = entry.WhichOneof("proof")
        if kind == "exist":
            out.append(lookup.exist(entry.exist))
        elif kind == "nonexist":
            ne = entry.nonexist
            left = lookup.exist(ne.left) if ne.HasField("left") else None
            right = lookup.exist(ne.right) if ne.HasField("right") else None
            out.append(BatchAbsent(bytes(ne.key), left, right))
        else:
            raise Ics23Error(f"compressed batch entry {i} holds no exist or nonexist proof")
    lookup.finish()
    return out


class _BatchChecker:
    """Verifies a batch's entries under one root with shared hashing and spec checks."""

    def __init__(self, spec: ProofSpec, root: bytes) -> None:
        if not spec.HasField("inner_spec") or not spec.HasField("leaf_spec"):
            raise Ics23Error("spec needs both a leaf spec and an inner spec")
        self.spec = spec
        self.root = root
        self.iavl = _is_iavl(spec)
        self.max_depth = spec.max_depth or DEFAULT_MAX_DEPTH
        inner = spec.inner_spec
        self.child_size = inner.child_size
        if self.child_size <= 0:
            raise Ics23Error("spec child_size must be positive")
        self.inner_hash = int(inner.hash)
        self.leaf_prefix = bytes(spec.leaf_spec.prefix)
        self.min_prefix = inner.min_prefix_length
        self.max_prefix = inner.max_prefix_length + (len(inner.child_order) - 1) * inner.child_size
        self.digest = _fast_hash(self.inner_hash)
        self.digests: dict[bytes, bytes] = {}
        self.inner_ok: set[tuple[object, ...]] = set()
        self.leaf_ok: set[tuple[int, int, int, int, bytes]] = set()
        self.inner_hashes = 0  # inner steps actually hashed: the memo's effect, for tests

    def _check_new_inner(self, op: _Op) -> None:
        """``check_inner``'s rules for a non-IAVL spec, with the spec read once per batch."""
        hash_op, prefix, suffix = op
        if hash_op != self.inner_hash:
            raise Ics23Error(f"inner hash op {hash_op} does not match spec {self.inner_hash}")
        if prefix.startswith(self.leaf_prefix):
            raise Ics23Error("inner prefix starts with the leaf prefix")
        if len(prefix) < self.min_prefix:
            raise Ics23Error(f"inner prefix too short ({len(prefix)})")
        if len(prefix) > self.max_prefix:
            raise Ics23Error(f"inner prefix too long ({len(prefix)})")
        if len(suffix) % self.child_size:
            raise Ics23Error("inner suffix is not a whole number of children")

    def _check_shape(self, e: BatchExist) -> None:
        leaf = e.leaf
        leaf_key = (int(leaf.hash), int(leaf.prehash_key), int(leaf.prehash_value), int(leaf.length),
                    bytes(leaf.prefix))
        if leaf_key not in self.leaf_ok:
            check_leaf(leaf, self.spec)
            self.leaf_ok.add(leaf_key)
        depth = len(e.path)
        if self.spec.min_depth > 0 and depth < self.spec.min_depth:
            raise Ics23Error(f"proof depth {depth} below min_depth {self.spec.min_depth}")
        if depth > self.max_depth:
            raise Ics23Error(f"proof depth {depth} above max_depth {self.max_depth}")
        ok = self.inner_ok
        if self.iavl:  # IAVL prefixes are checked per layer
            for layer, op in enumerate(e.path, start=1):
                if (op, layer) not in ok:
                    check_inner(_Inner(*op), self.spec, layer)
                    ok.add((op, layer))
            return
        for op in e.path:  # each distinct step is checked once per batch
            if op not in ok:
                self._check_new_inner(op)
                ok.add(op)

    def existence(self, e: BatchExist) -> None:
        self._check_shape(e)
        node = apply_leaf(e.leaf, e.key, e.value)
        digests, digest, child_size = self.digests, self.digest, self.child_size
        for _, prefix, suffix in e.path:
            # Every step passed check_inner, so all use the spec's inner hash: the preimage
            # alone names the digest.
            pre = prefix + node + suffix
            got = digests.get(pre)
            if got is None:
                got = digests[pre] = digest(pre)
                self.inner_hashes += 1
            node = got
            if child_size >= 32 and len(node) > child_size:
                raise Ics23Error(f"inner hash of {len(node)} bytes exceeds child_size {child_size}")
        if node != self.root:
            raise Ics23Error(f"entry for key {e.key.hex()} does not lead to the root")

    def absence(self, a: BatchAbsent) -> tuple[bytes | None, bytes | None]:
        """Verify the neighbours and their adjacency; their comparison keys bound the gap."""
        if a.left is None and a.right is None:
            raise Ics23Error("non-existence proof has neither a left nor a right neighbour")
        inner = self.spec.inner_spec
        left_key = right_key = None
        if a.left is not None:
            self.existence(a.left)
            left_key = key_for_comparison(self.spec, a.left.key)
        if a.right is not None:
            self.existence(a.right)
            right_key = key_for_comparison(self.spec, a.right.key)
        if a.left is None:
            assert a.right is not None
            if not is_left_most(inner, _named(a.right.path)):
                raise Ics23Error("left neighbour missing but the right one is not left-most")
        elif a.right is None:
            if not is_right_most(inner, _named(a.left.path)):
                raise Ics23Error("right neighbour missing but the left one is not right-most")
        else:
            assert left_key is not None and right_key is not None
            if left_key >= right_key:
                raise Ics23Error("non-existence neighbours are not in key order")
            if not is_left_neighbor(inner, _named(a.left.path), _named(a.right.path)):
                raise Ics23Error("left and right proofs are not adjacent")
        return left_key, right_key


def _fast_hash(op: int) -> Callable[[bytes], bytes]:
    """The digest function of a hash op, without do_hash's per-call checks (the batch path
    has checked every step's op against the spec before hashing)."""
    if op == pb.SHA256:
        return lambda data: hashlib.sha256(data).digest()
    return lambda data: do_hash(op, data)


class VerifiedBatch:
    """What a verified batch proves under its root; answers lookups without hashing."""

    __slots__ = ("_absent", "_present", "_spec", "entries", "inner_hashes")

    def __init__(
        self,
        spec: ProofSpec,
        present: dict[bytes, bytes],
        absent: dict[bytes, tuple[bytes | None, bytes | None]],
        inner_hashes: int,
    ) -> None:
        self._spec = spec
        self._present = present
        self._absent = absent
        self.entries = len(present) + len(absent)
        self.inner_hashes = inner_hashes

    def _gap(self, key: bytes) -> tuple[bytes, tuple[bytes | None, bytes | None]] | None:
        cmp_key = key_for_comparison(self._spec, key)
        gap = self._absent.get(key)
        if gap is None:
            gap = self._absent.get(cmp_key)
        return None if gap is None else (cmp_key, gap)

    def covers(self, key: bytes) -> bool:
        """True when the batch holds an entry for ``key`` (present or absent)."""
        return key in self._present or self._gap(key) is not None

    def check_membership(self, key: bytes, value: bytes) -> None:
        proven = self._present.get(bytes(key))
        if proven is None:
            if self._gap(bytes(key)) is not None:
                raise Ics23Error("the batch proves this key absent")
            raise Ics23Error("the batch holds no entry for this key")
        if proven != bytes(value):
            raise Ics23Error("the batch proves another value for this key")

    def check_non_membership(self, key: bytes) -> None:
        found = self._gap(bytes(key))
        if found is None:
            if bytes(key) in self._present:
                raise Ics23Error("the batch proves this key present")
            raise Ics23Error("the batch holds no entry for this key")
        cmp_key, (left, right) = found
        if left is not None and cmp_key <= left:
            raise Ics23Error("key is not right of the left neighbour")
        if right is not None and cmp_key >= right:
            raise Ics23Error("key is not left of the right neighbour")


def verify_batch(spec: ProofSpec, root: bytes, proof: CommitmentProof | bytes) -> VerifiedBatch:
    """Verify every entry of a batch or compressed batch proof under ``root``, once."""
    if not isinstance(spec, ProofSpec):
        raise Ics23Error("spec must be a ProofSpec")
    if not isinstance(root, (bytes, bytearray)):
        raise Ics23Error("root must be bytes")
    msg = _as_proof(proof)
    kind = msg.WhichOneof("proof")
    if kind == "batch":
        entries = _plain_entries(msg.batch)
    elif kind == "compressed":
        entries = _compressed_entries(msg.compressed)
    else:
        raise Ics23Error(f"a {kind} proof is not a batch")
    if not entries:
        raise Ics23Error("batch proof has no entries")
    keys = [e.key for e in entries]
    for a, b in pairwise(keys):
        if a >= b:
            raise Ics23Error("batch entries must be strictly ascending by key (sorted, no repeats)")
    checker = _BatchChecker(spec, bytes(root))
    present: dict[bytes, bytes] = {}
    absent: dict[bytes, tuple[bytes | None, bytes | None]] = {}
    for e in entries:
        if isinstance(e, BatchExist):
            checker.existence(e)
            present[e.key] = e.value
        else:
            absent[e.key] = checker.absence(e)
    return VerifiedBatch(spec, present, absent, checker.inner_hashes)


def compressed_batch(entries: Sequence[BatchExist | BatchAbsent]) -> CommitmentProof:
    """The canonical compressed batch of ``entries`` (sorted by their keys, no repeats): each
    distinct inner step once in ``lookup_inners``, in the order the entries first use it
    (what verify_batch accepts)."""
    table: dict[_Op, int] = {}

    def exist(e: BatchExist) -> pb.CompressedExistenceProof:
        idx = []
        for op in e.path:
            i = table.get(op)
            if i is None:
                i = table[op] = len(table)
            idx.append(i)
        return pb.CompressedExistenceProof(key=e.key, value=e.value, leaf=e.leaf, path=idx)

    out = []
    for entry in entries:
        if isinstance(entry, BatchExist):
            out.append(pb.CompressedBatchEntry(exist=exist(entry)))
        else:
            ne = pb.CompressedNonExistenceProof(key=entry.key)
            if entry.left is not None:
                ne.left.CopyFrom(exist(entry.left))
            if entry.right is not None:
                ne.right.CopyFrom(exist(entry.right))
            out.append(pb.CompressedBatchEntry(nonexist=ne))
    inners = [InnerOp(hash=cast(pb.HashOp, h), prefix=prefix, suffix=suffix) for h, prefix, suffix in table]
    return CommitmentProof(compressed=CompressedBatchProof(entries=out, lookup_inners=inners))


def compress_batch(batch: BatchProof) -> CompressedBatchProof:
    """The canonical compressed form of a batch (see ``compressed_batch``)."""
    return compressed_batch(_plain_entries(batch)).compressed


# --- public specs -----------------------------------------------------------------------

IAVL_SPEC = ProofSpec(
    leaf_spec=LeafOp(
        prefix=b"\x00",
        prehash_key=pb.NO_HASH,
        hash=pb.SHA256,
        prehash_value=pb.SHA256,
        length=pb.VAR_PROTO,
    ),
    inner_spec=InnerSpec(
        child_order=[0, 1], min_prefix_length=4, max_prefix_length=12, child_size=33, hash=pb.SHA256
    ),
)

TENDERMINT_SPEC = ProofSpec(
    leaf_spec=LeafOp(
        prefix=b"\x00",
        prehash_key=pb.NO_HASH,
        hash=pb.SHA256,
        prehash_value=pb.SHA256,
        length=pb.VAR_PROTO,
    ),
    inner_spec=InnerSpec(
        child_order=[0, 1], min_prefix_length=1, max_prefix_length=1, child_size=32, hash=pb.SHA256
    ),
)

# The layout of celestiaorg/smt and of chains/store/smt.py (the Corda chain's IBC store).
SMT_SPEC = ProofSpec(
    leaf_spec=LeafOp(
        hash=pb.SHA256,
        prehash_key=pb.SHA256,
        prehash_value=pb.SHA256,
        length=pb.NO_PREFIX,
        prefix=b"\x00",
    ),
    inner_spec=InnerSpec(
        child_order=[0, 1],
        child_size=32,
        min_prefix_length=1,
        max_prefix_length=1,
        empty_child=bytes(32),
        hash=pb.SHA256,
    ),
    max_depth=256,
    prehash_key_before_comparison=True,
)
