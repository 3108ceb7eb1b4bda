"""Transactions: component groups, the salted-Merkle txid, signatures and tear-offs.

txid preimage (Corda's WireTransaction, with protobuf in place of AMQP and SHA-256 once):
- each component is the deterministic protobuf encoding of its message (StateRef, TransactionState,
  Command, attachment id as raw 32 bytes, Notary, TimeWindow);
- nonce(g, i)  = sha256(privacy_salt || be32(g) || be32(i))
- leaf(g, i)   = sha256(nonce(g, i) || component bytes)
- group root   = Merkle root of the group's leaves (merkle.py), ALL_ONES_HASH for an empty group
- txid         = Merkle root of the 8 group roots, indexed by ComponentGroup.
Corda also has a SIGNERS group (6) so commands and their signers can be torn off apart; here the
signers live inside Command and group 6 is always empty.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from google.protobuf.message import DecodeError

from chains.corda import merkle
from kakehashi.corda.v1 import ledger_pb2 as pb
from lightclients.crypto import ed25519_public_key, ed25519_sign, ed25519_verify, sha256

SALT_LEN = 32


class ComponentGroup(enum.IntEnum):
    INPUTS = 0
    OUTPUTS = 1
    COMMANDS = 2
    ATTACHMENTS = 3
    NOTARY = 4
    TIMEWINDOW = 5
    SIGNERS = 6
    REFERENCES = 7


GROUP_COUNT = len(ComponentGroup)


class TransactionError(ValueError):
    """A transaction, signature or tear-off is malformed or does not verify."""


def _enc(msg: pb.StateRef | pb.TransactionState | pb.Command | pb.Notary | pb.TimeWindow) -> bytes:
    return msg.SerializeToString(deterministic=True)


def nonce(privacy_salt: bytes, group: int, index: int) -> bytes:
    return sha256(privacy_salt + group.to_bytes(4, "big") + index.to_bytes(4, "big"))


def component_hash(component_nonce: bytes, component: bytes) -> bytes:
    return sha256(component_nonce + component)


def state_ref(txid: bytes, index: int) -> pb.StateRef:
    return pb.StateRef(txid=txid, index=index)


def ref_key(ref: pb.StateRef) -> tuple[bytes, int]:
    return (bytes(ref.txid), int(ref.index))


@dataclass(frozen=True)
class WireTransaction:
    """An unsigned transaction. Immutable so its txid can be cached."""

    inputs: tuple[pb.StateRef, ...]
    outputs: tuple[pb.TransactionState, ...]
    commands: tuple[pb.Command, ...]
    notary: bytes
    privacy_salt: bytes
    references: tuple[pb.StateRef, ...] = ()
    attachments: tuple[bytes, ...] = ()
    time_window: pb.TimeWindow | None = None

    def __post_init__(self) -> None:
        if len(self.privacy_salt) != SALT_LEN:
            raise TransactionError("privacy salt must be 32 bytes")
        if self.privacy_salt == bytes(SALT_LEN):
            raise TransactionError("privacy salt must not be all zeros")
        if len(self.notary) != 32:
            raise TransactionError("notary identity must be 32 bytes")
        if any(len(a) != 32 for a in self.attachments):
            raise TransactionError("attachment ids must be 32 bytes")

    def groups(self) -> list[list[bytes]]:
        g: list[list[bytes]] = [[] for _ in range(GROUP_COUNT)]
        g[ComponentGroup.INPUTS] = [_enc(r) for r in self.inputs]
        g[ComponentGroup.OUTPUTS] = [_enc(s) for s in self.outputs]
        g[ComponentGroup.COMMANDS] = [_enc(c) for c in self.commands]
        g[ComponentGroup.ATTACHMENTS] = [bytes(a) for a in self.attachments]
        g[ComponentGroup.NOTARY] = [_enc(pb.Notary(notary=self.notary))]
        if self.time_window is not None:
            g[ComponentGroup.TIMEWINDOW] = [_enc(self.time_window)]
        g[ComponentGroup.REFERENCES] = [_enc(r) for r in self.references]
        return g

    def leaves(self) -> list[list[bytes]]:
        return [
            [component_hash(nonce(self.privacy_salt, gi, ci), comp) for ci, comp in enumerate(group)]
            for gi, group in enumerate(self.groups())
        ]

    @cached_property
    def group_roots(self) -> list[bytes]:
        return [merkle.merkle_root(lv) if lv else merkle.ALL_ONES_HASH for lv in self.leaves()]

    @cached_property
    def txid(self) -> bytes:
        return merkle.merkle_root(self.group_roots)

    def required_signers(self) -> set[bytes]:
        return {bytes(k) for c in self.commands for k in c.signers}

    def tear_off(self, reveal: Iterable[tuple[int, int]]) -> pb.FilteredTransaction:
        """A FilteredTransaction disclosing only the (group, index) components in ``reveal``."""
        wanted: dict[int, list[int]] = {}
        groups = self.groups()
        for g, i in reveal:
            if not (0 <= g < GROUP_COUNT and 0 <= i < len(groups[g])):
                raise TransactionError(f"no component ({g}, {i}) to reveal")
            wanted.setdefault(g, []).append(i)
        leaves = self.leaves()
        ftx = pb.FilteredTransaction(txid=self.txid, group_roots=self.group_roots)
        for g in sorted(wanted):
            idx = sorted(set(wanted[g]))
            gp = ftx.groups.add(group=g, leaf_count=len(groups[g]))
            for i in idx:
                gp.components.add(
                    group=g, index=i, component=groups[g][i], nonce=nonce(self.privacy_salt, g, i)
                )
            for (level, index), h in sorted(merkle.prove(leaves[g], idx).items()):
                gp.siblings.add(level=level, index=index, hash=h)
        return ftx


def verify_filtered(ftx: pb.FilteredTransaction) -> dict[tuple[int, int], bytes]:
    """Check a tear-off against its txid; returns the revealed (group, index) -> component bytes."""
    if len(ftx.txid) != 32 or len(ftx.group_roots) != GROUP_COUNT:
        raise TransactionError(f"filtered transaction needs a 32-byte txid and {GROUP_COUNT} group roots")
    roots = [bytes(r) for r in ftx.group_roots]
    if any(len(r) != 32 for r in roots):
        raise TransactionError("group roots must be 32 bytes")
    if merkle.merkle_root(roots) != ftx.txid:
        raise TransactionError("group roots do not hash to the txid")
    revealed: dict[tuple[int, int], bytes] = {}
    seen_groups: set[int] = set()
    for gp in ftx.groups:
        if gp.group in seen_groups or gp.group >= GROUP_COUNT or not gp.components:
            raise TransactionError("filtered groups must be distinct, known and non-empty")
        seen_groups.add(gp.group)
        leaves: dict[int, bytes] = {}
        for c in gp.components:
            if c.group != gp.group or c.index in leaves or len(c.nonce) != 32:
                raise TransactionError("revealed component is misplaced, repeated or has a bad nonce")
            leaves[c.index] = component_hash(bytes(c.nonce), bytes(c.component))
            revealed[(c.group, c.index)] = bytes(c.component)
        sibs: dict[tuple[int, int], bytes] = {}
        for s in gp.siblings:
            if (s.level, s.index) in sibs:
                raise TransactionError("partial tree names a sibling twice")
            sibs[(s.level, s.index)] = bytes(s.hash)
        try:
            root = merkle.root_from_partial(gp.leaf_count, leaves, sibs)
        except merkle.MerkleError as exc:
            raise TransactionError(f"group {gp.group}: {exc}") from None
        if root != roots[gp.group]:
            raise TransactionError(f"group {gp.group}: revealed components do not match the group root")
    return revealed


def decode_filtered(data: bytes) -> pb.FilteredTransaction:
    msg = pb.FilteredTransaction()
    try:
        msg.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise TransactionError(f"filtered transaction does not decode: {exc}") from None
    return msg


@dataclass
class SignedTransaction:
    """A WireTransaction plus Ed25519 signatures over its txid, keyed by public key.

    Each signature is verified once: the verdict is kept with a copy of the signatures it
    was made for, so node admission, every notary check and the contracts' view of who signed
    share one verification, and any change to ``sigs`` (``sign``, or a test forging one)
    simply makes the next call verify again.
    """

    wtx: WireTransaction
    sigs: dict[bytes, bytes] = field(default_factory=dict)
    _verified: tuple[dict[bytes, bytes], frozenset[bytes]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def txid(self) -> bytes:
        return self.wtx.txid

    def sign(self, seed: bytes) -> SignedTransaction:
        self.sigs[ed25519_public_key(seed)] = ed25519_sign(seed, self.txid)
        return self

    def valid_signers(self) -> set[bytes]:
        cached = self._verified
        if cached is None or cached[0] != self.sigs:
            txid = self.txid
            cached = (dict(self.sigs), frozenset(k for k, s in self.sigs.items() if ed25519_verify(k, txid, s)))
            self._verified = cached
        return set(cached[1])

    def encode(self) -> bytes:
        w = self.wtx
        msg = pb.SignedTransaction(
            tx=pb.WireTransaction(
                inputs=w.inputs, outputs=w.outputs, commands=w.commands, notary=w.notary,
                privacy_salt=w.privacy_salt, references=w.references, attachments=w.attachments,
                time_window=w.time_window,
            ),
            signatures=[pb.PartySignature(public_key=k, signature=v) for k, v in sorted(self.sigs.items())],
        )
        return msg.SerializeToString(deterministic=True)

    @classmethod
    def decode(cls, data: bytes) -> SignedTransaction:
        """Parse a submitted transaction; malformed bytes raise TransactionError."""
        if not isinstance(data, (bytes, bytearray)):
            raise TransactionError("a signed transaction must be bytes")
        msg = pb.SignedTransaction()
        try:
            msg.ParseFromString(bytes(data))
        except DecodeError as exc:
            raise TransactionError(f"signed transaction does not decode: {exc}") from None
        t = msg.tx
        wtx = WireTransaction(
            inputs=tuple(t.inputs), outputs=tuple(t.outputs), commands=tuple(t.commands),
            notary=bytes(t.notary), privacy_salt=bytes(t.privacy_salt), references=tuple(t.references),
            attachments=tuple(bytes(a) for a in t.attachments),
            time_window=t.time_window if t.HasField("time_window") else None,
        )
        sigs: dict[bytes, bytes] = {}
        for sig in msg.signatures:
            if bytes(sig.public_key) in sigs:
                raise TransactionError("a party signed twice")
            sigs[bytes(sig.public_key)] = bytes(sig.signature)
        return cls(wtx, sigs)

    def check_signatures(self) -> None:
        """Every signature present must verify and every required signer must have signed."""
        valid = self.valid_signers()
        bad = [k.hex()[:16] for k in self.sigs if k not in valid]
        if bad:
            raise TransactionError(f"invalid signature by {', '.join(bad)}")
        missing = self.wtx.required_signers() - set(self.sigs)
        if missing:
            raise TransactionError(f"missing required signature(s): {', '.join(sorted(k.hex()[:16] for k in missing))}")

