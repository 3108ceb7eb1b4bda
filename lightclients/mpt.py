"""Ethereum Merkle-Patricia proof verification (EIP-1186 account and storage proofs).

The QBFT light client checks an IBC commitment by walking an account proof from a header's
state root and then a storage proof from that account's storage root. That walk runs for
every packet, so it is written here against the node format directly instead of through
py-trie, whose verifier rebuilds a trie object per proof and costs several times more.

Rules the walk enforces (each failure is a :class:`MptProofError` naming the rule):
- ``proof`` lists the hashed nodes on the key's path, root first, each exactly once; a node
  of 32 bytes or more must hash (keccak256) to the reference its parent holds, and a child
  under 32 bytes is embedded in its parent and is not listed (the Ethereum rule);
- every node is canonical RLP of a 2-item (leaf / extension, hex-prefix path) or 17-item
  (branch) list; an embedded node must really encode to fewer than 32 bytes, a child
  reference is empty, an embedded list or a 32-byte hash, and nothing else;
- the walk must use every listed node: trailing nodes mean the proof is not the path of
  this key, and a proof that stops at a hash reference is incomplete;
- absence is proven, not assumed: the key is absent only when the path reaches an empty
  branch slot, a leaf with another path, an extension that diverges, or the empty trie.

A multiproof (:func:`verify_multiproof`) proves several keys at once with every node on
their paths listed once; each node is hashed and decoded once however many paths cross it,
and the same node rules apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import rlp
from rlp.codec import consume_length_prefix
from rlp.exceptions import DecodingError

from lightclients.crypto import keccak256
from lightclients.interface import InvalidProof

# keccak256(rlp(b"")): the root of a trie with nothing in it.
EMPTY_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
# keccak256(b""): the code hash of an account without code.
EMPTY_CODE_HASH = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")

# bytes.translate tables between a byte string's hex digits and one nibble (0..15) per byte.
_HEX_TO_NIBBLE = bytes((int(chr(c), 16) if chr(c) in "0123456789abcdef" else 0) for c in range(256))

_Node = bytes | list["_Node"]


class MptProofError(InvalidProof):
    """A Merkle-Patricia proof is malformed, does not link to the root, or is incomplete."""


@dataclass(frozen=True)
class Account:
    """The four fields of an Ethereum state-trie leaf, in their RLP order."""

    nonce: int
    balance: int
    storage_root: bytes
    code_hash: bytes


def key_nibbles(key: bytes) -> bytes:
    """The trie path of ``key``: one byte per nibble, high nibble first."""
    return key.hex().encode("ascii").translate(_HEX_TO_NIBBLE)


def decode_hex_prefix(encoded: bytes) -> tuple[bytes, bool]:
    """Split a hex-prefix path into (nibbles, is_leaf); raises ValueError when malformed."""
    if not encoded:
        raise ValueError("hex-prefix path is empty")
    flag = encoded[0] >> 4
    if flag > 3:
        raise ValueError(f"hex-prefix flag nibble {flag} is not 0..3")
    nibbles = key_nibbles(encoded)
    if flag & 1:
        path = nibbles[1:]
    else:
        if nibbles[1] != 0:
            raise ValueError("hex-prefix padding nibble of an even path is not zero")
        path = nibbles[2:]
    return path, flag >= 2


def _need_bytes(name: str, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise MptProofError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


def decode_node(encoded: bytes) -> list[_Node]:
    """Split a trie node into its items; raises ValueError unless it is canonical RLP.

    rlp.decode would also build the raw encoding of every item, which triples the cost of
    a 17-item branch; walking the items with the package's own (canonical-checking)
    length-prefix reader gives the same result for the price of the walk.
    """
    try:
        _, kind, length, pos = consume_length_prefix(encoded, 0)
        if kind is not list or pos + length != len(encoded):
            raise ValueError("node is not exactly one RLP list")
        items: list[_Node] = []
        end = len(encoded)
        while pos < end:
            # Fast path for the two items that fill branch nodes: an empty slot (0x80) and
            # a 32-byte hash (0xa0 + 32 bytes); both are canonical by construction.
            first = encoded[pos]
            if first == 0x80:
                items.append(b"")
                pos += 1
                continue
            if first == 0xA0 and pos + 33 <= end:
                items.append(encoded[pos + 1 : pos + 33])
                pos += 33
                continue
            _, kind, length, start = consume_length_prefix(encoded, pos)
            after = start + length
            if after > end:
                raise ValueError("an item runs past the end of the node")
            if kind is bytes:
                items.append(encoded[start:after])
            else:
                items.append(rlp.decode(encoded[pos:after]))
            pos = after
    except (DecodingError, IndexError) as exc:
        raise ValueError(f"not canonical RLP: {exc}") from None
    except RecursionError:
        # pyrlp decodes nested lists recursively; an item nested a thousand deep must be a
        # clear rejection, not an exception escaping the verifier.
        raise ValueError("not a trie node: RLP lists nested too deeply") from None
    if len(items) not in (2, 17):
        raise ValueError("node is not a 2-item or 17-item RLP list")
    return items


def _decode_node(encoded: bytes, where: str) -> list[_Node]:
    try:
        return decode_node(encoded)
    except ValueError as exc:
        raise MptProofError(f"{where}: {exc}") from None


def verify_proof(root: bytes, key: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The value stored under ``key`` in the trie with ``root``, or None if it is absent.

    ``key`` is used as given: for a secure trie (Ethereum state and storage) the caller
    hashes it first.
    """
    root = _need_bytes("root", root)
    key = _need_bytes("key", key)
    if len(root) != 32:
        raise MptProofError(f"root must be 32 bytes, got {len(root)}")
    if isinstance(proof, bytes | bytearray | str) or not isinstance(proof, Sequence):
        raise MptProofError("proof must be a sequence of RLP-encoded nodes")
    if not proof:
        if root == EMPTY_ROOT:
            return None
        raise MptProofError("empty proof for a non-empty trie root")
    path = key_nibbles(key)
    pos = 0  # nibbles of ``path`` consumed
    used = 0  # proof entries consumed
    expected_hash = root
    while True:
        # ``expected_hash`` names the next node; it must be the next entry of the proof.
        if used == len(proof):
            raise MptProofError(f"proof is incomplete: node {expected_hash.hex()} is missing")
        encoded = _need_bytes(f"proof node {used}", proof[used])
        if keccak256(encoded) != expected_hash:
            raise MptProofError(
                f"proof node {used} does not hash to the reference its parent holds"
            )
        if used and len(encoded) < 32:
            # The parent would have embedded it: a hashed node under 32 bytes is not part of
            # any trie this verifier's chain can build (only the root is hashed when short).
            raise MptProofError(f"proof node {used} is under 32 bytes and must be embedded")
        used += 1
        if used == 1 and encoded == b"\x80":
            node: _Node = b""  # the empty trie, proven by its one-byte encoding
        else:
            node = _decode_node(encoded, f"proof node {used - 1}")
        child, value, pos = _follow(node, path, pos)
        if child is None:
            return _finish(proof, used, value)
        expected_hash = child


def _follow(node: _Node, path: bytes, pos: int) -> tuple[bytes | None, bytes | None, int]:
    """Walk ``node`` and the nodes embedded in it along ``path`` from nibble ``pos``.

    Returns (None, value or None, pos) when the key's fate is decided inside this node, or
    (child hash, None, pos) when the walk continues at a hashed child. Shared by the single
    and the multi-key verifier so both apply exactly the same node rules.
    """
    while True:
        if node == b"":
            return None, None, pos
        assert isinstance(node, list)
        if len(node) == 17:
            if pos == len(path):
                value = node[16]
                if not isinstance(value, bytes):
                    raise MptProofError("branch value is a list, not a byte string")
                return None, value or None, pos
            child = node[path[pos]]
            pos += 1
        else:
            hp, second = node
            if not isinstance(hp, bytes):
                raise MptProofError("leaf or extension path is a list, not a byte string")
            try:
                segment, is_leaf = decode_hex_prefix(hp)
            except ValueError as exc:
                raise MptProofError(str(exc)) from None
            if is_leaf:
                if not isinstance(second, bytes) or not second:
                    raise MptProofError("leaf value is empty or a list")
                found = path[pos:] == segment
                return None, second if found else None, pos
            if not segment:
                raise MptProofError("extension node has an empty path")
            if path[pos : pos + len(segment)] != segment:
                return None, None, pos
            pos += len(segment)
            child = second
            if child == b"":
                raise MptProofError("extension node has no child")
        if isinstance(child, list):
            if len(rlp.encode(child)) >= 32:
                raise MptProofError(
                    "embedded node encodes to 32 bytes or more; it must be hashed"
                )
            if len(child) not in (2, 17):
                raise MptProofError("embedded node is not a 2-item or 17-item list")
            node = child
            continue
        if child == b"":
            return None, None, pos
        if len(child) != 32:
            raise MptProofError(f"child reference is {len(child)} bytes, not a 32-byte hash")
        return child, None, pos


def verify_multiproof(
    root: bytes, keys: Sequence[bytes], nodes: Sequence[bytes]
) -> list[bytes | None]:
    """The values under ``keys`` (None when absent) in the trie with ``root``, from one
    multiproof: the distinct hashed nodes on the keys' paths, each listed once.

    The walk takes the keys in the given order, each from the root; a node seen before is
    reused (it was hashed and decoded once), and a node not seen yet must be the next
    entry of ``nodes``. So the list must be exactly the union of the paths in first-use
    order: a node out of place fails its hash check, a repeated or unused node is left
    over at the end, and every rule of :func:`verify_proof` applies to each node.
    """
    root = _need_bytes("root", root)
    if len(root) != 32:
        raise MptProofError(f"root must be 32 bytes, got {len(root)}")
    for name, seq in (("keys", keys), ("nodes", nodes)):
        if isinstance(seq, bytes | bytearray | str) or not isinstance(seq, Sequence):
            raise MptProofError(f"multiproof {name} must be a sequence of byte strings")
    if not keys:
        raise MptProofError("multiproof covers no key")
    paths = [key_nibbles(_need_bytes("key", k)) for k in keys]
    if root == EMPTY_ROOT:
        if nodes:
            raise MptProofError("the empty trie has no nodes, but the multiproof lists some")
        return [None] * len(keys)
    seen: dict[bytes, _Node] = {}
    used = 0
    out: list[bytes | None] = []
    for path in paths:
        pos = 0
        expected_hash = root
        while True:
            node = seen.get(expected_hash)
            if node is None:
                if used == len(nodes):
                    raise MptProofError(
                        f"multiproof is incomplete: node {expected_hash.hex()} is missing"
                    )
                encoded = _need_bytes(f"multiproof node {used}", nodes[used])
                if keccak256(encoded) != expected_hash:
                    raise MptProofError(
                        f"multiproof node {used} is not the node the walk needs next "
                        "(wrong node, wrong order, or a node the path does not reach)"
                    )
                if expected_hash != root and len(encoded) < 32:
                    raise MptProofError(
                        f"multiproof node {used} is under 32 bytes and must be embedded"
                    )
                node = _decode_node(encoded, f"multiproof node {used}")
                seen[expected_hash] = node
                used += 1
            child, value, pos = _follow(node, path, pos)
            if child is None:
                out.append(value)
                break
            expected_hash = child
    if used != len(nodes):
        raise MptProofError(
            f"multiproof has {len(nodes) - used} node(s) that no key's path uses "
            "(extra or repeated nodes)"
        )
    return out


def _finish(proof: Sequence[bytes], used: int, value: bytes | None) -> bytes | None:
    if used != len(proof):
        raise MptProofError(
            f"proof has {len(proof) - used} node(s) after the end of the key's path"
        )
    return value


def _decode_uint(name: str, raw: _Node) -> int:
    if not isinstance(raw, bytes) or len(raw) > 32:
        raise MptProofError(f"account {name} is not a byte string of at most 32 bytes")
    if raw[:1] == b"\x00":
        raise MptProofError(f"account {name} has a leading zero byte (non-canonical integer)")
    return int.from_bytes(raw, "big")


def decode_account(encoded: bytes) -> Account:
    """Parse an RLP account body [nonce, balance, storageRoot, codeHash] strictly."""
    try:
        fields = rlp.decode(encoded)
    except (DecodingError, RecursionError) as exc:
        raise MptProofError(f"account leaf is not canonical RLP: {exc}") from None
    if not isinstance(fields, list) or len(fields) != 4:
        raise MptProofError("account leaf is not a 4-item list")
    nonce = _decode_uint("nonce", fields[0])
    balance = _decode_uint("balance", fields[1])
    storage_root, code_hash = fields[2], fields[3]
    if not isinstance(storage_root, bytes) or len(storage_root) != 32:
        raise MptProofError("account storage root is not 32 bytes")
    if not isinstance(code_hash, bytes) or len(code_hash) != 32:
        raise MptProofError("account code hash is not 32 bytes")
    return Account(nonce, balance, storage_root, code_hash)


def verify_account_proof(
    state_root: bytes, address: bytes, proof: Sequence[bytes]
) -> Account | None:
    """The account at ``address`` under ``state_root`` (secure trie), or None if absent."""
    address = _need_bytes("address", address)
    if len(address) != 20:
        raise MptProofError(f"address must be 20 bytes, got {len(address)}")
    leaf = verify_proof(state_root, keccak256(address), proof)
    return None if leaf is None else decode_account(leaf)


def verify_storage_proof(storage_root: bytes, slot: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The value in storage ``slot`` (32 bytes) under ``storage_root``, or None if absent.

    The trie holds rlp(value) with the value as a minimal big-endian integer (zero is never
    stored), so the result is that integer's bytes: 1..32 bytes without a leading zero.
    """
    slot = _need_bytes("slot", slot)
    if len(slot) != 32:
        raise MptProofError(f"storage slot must be 32 bytes, got {len(slot)}")
    return _storage_value(verify_proof(storage_root, keccak256(slot), proof))


def _storage_value(leaf: bytes | None) -> bytes | None:
    if leaf is None:
        return None
    try:
        value = rlp.decode(leaf)
    except (DecodingError, RecursionError) as exc:
        raise MptProofError(f"storage leaf is not canonical RLP: {exc}") from None
    if not isinstance(value, bytes) or not 1 <= len(value) <= 32 or value[0] == 0:
        raise MptProofError("storage value is not a minimal big-endian word of 1..32 bytes")
    return value


def verify_storage_multiproof(
    storage_root: bytes, slots: Sequence[bytes], nodes: Sequence[bytes]
) -> dict[bytes, bytes | None]:
    """The values of several storage ``slots`` (strictly ascending, 32 bytes each) under
    ``storage_root`` from one multiproof, as :func:`verify_storage_proof` gives each.

    Ascending slots give a multiproof one encoding: the slot order fixes the node order.
    """
    if isinstance(slots, bytes | bytearray | str) or not isinstance(slots, Sequence):
        raise MptProofError("multiproof slots must be a sequence of 32-byte slots")
    checked = [_need_bytes("slot", s) for s in slots]
    for slot in checked:
        if len(slot) != 32:
            raise MptProofError(f"storage slot must be 32 bytes, got {len(slot)}")
    for a, b in pairwise(checked):
        if a >= b:
            raise MptProofError("multiproof slots must be strictly ascending (sorted, no repeats)")
    leaves = verify_multiproof(storage_root, [keccak256(s) for s in checked], nodes)
    return {slot: _storage_value(leaf) for slot, leaf in zip(checked, leaves, strict=True)}


def storage_word(value: bytes | None) -> bytes:
    """A storage proof result as the EVM sees the slot: 32 bytes, zero when absent."""
    return (value or b"").rjust(32, b"\x00")
