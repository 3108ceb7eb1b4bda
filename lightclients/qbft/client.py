"""The QBFT light client (client type ``qbft``): trusts EVM-chain headers by their seals.

Trust rule (DESIGN.md "Light clients"): a header is accepted when the distinct signers of its
committed seals are strictly more than 1/3 of the validators of the trusted consensus state
AND strictly more than 2/3 of the header's own validators. The first half is what lets the
client skip heights and follow validator rotation safely (at least one honest trusted
validator vouches for the new set); the second is QBFT finality itself. Counting is over
distinct addresses, and the comparison is ``3 * signed > n`` / ``3 * signed > 2 * n`` in
integers, so yui-ibc-solidity's floor-based ``>= n/3`` weakness cannot creep back in.

Proofs: the IBC handler contract keeps value V at ICS-24 path P in storage slot
keccak256(keccak256(P) || 0^32) as the word keccak256(V) (yui-ibc-solidity layout). A
consensus state stores that contract's storage root, taken from the header's EIP-1186
account proof, so a membership proof is just a storage proof under it. The commitment
prefix is the contract address itself: a proof is refused for any other prefix.

Misbehaviour: two headers at one height with different block hashes (Besu's round-free
hash, so the same block sealed in two rounds is not a conflict), or time not increasing
with height. Evidence comes either as a Misbehaviour message or as a header that conflicts
with what the client already stores.

One header check per height: the client keeps the commit hash (keccak of ``header_rlp``,
all the seals sign) of every header it stored, under ``meta/commitHash/{hash}``. A header
with the same signed bytes commits to exactly the stored consensus state and adds nothing,
so ``verify_client_message`` accepts it without recovering a seal or walking the account
proof, and ``update_state`` reports it as a duplicate. Any other header at a stored height
(another round of the same block included) is fully verified, and is misbehaviour evidence
when it is another block.

Multiproofs: ``StorageProof.multiproof`` proves several slots at one height with each trie
node listed once (lightclients/mpt.py ``verify_storage_multiproof``); ``open_batch``
verifies it once and answers each path by lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from kakehashi.ibc.v1 import client_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as pb
from lightclients.crypto import CryptoError, keccak256, secp256k1_recover_address
from lightclients.interface import (
    CLIENT_STATE_KEY,
    BatchOpening,
    ClientStore,
    ConsensusStateNotFound,
    Height,
    InvalidClientMessage,
    InvalidProof,
)
from lightclients.mpt import (
    MptProofError,
    verify_account_proof,
    verify_storage_multiproof,
    verify_storage_proof,
)
from lightclients.qbft.header import HeaderError, QbftHeader, decode_header
from lightclients.stored_state import StoredStateClient

CLIENT_TYPE = "10-qbft"  # ibc-go style "NN-name", so client ids ("10-qbft-0") meet ICS-24's 9-char minimum
_NS = 1_000_000_000
_SLOT0 = bytes(32)
_FROZEN = Height(0, 1)


def commitment_slot(path: bytes) -> bytes:
    """Storage slot of ICS-24 path ``path`` in the IBC handler contract."""
    return keccak256(keccak256(path) + _SLOT0)


def _commit_hash_key(commit_hash: bytes) -> str:
    """Index of the headers this client verified and stored, by the hash their seals sign."""
    return f"meta/commitHash/{commit_hash.hex()}"


def _block_hash_key(height: Height) -> str:
    return f"meta/blockHash/{height}"


def _height(msg: client_pb2.Height) -> Height:
    return Height(msg.revision_number, msg.revision_height)


def _to_pb(height: Height) -> client_pb2.Height:
    return client_pb2.Height(
        revision_number=height.revision_number, revision_height=height.revision_height
    )


def _ser(msg: pb.ClientState | pb.ConsensusState | pb.ClientMessage) -> bytes:
    return msg.SerializeToString(deterministic=True)


@dataclass(frozen=True, slots=True)
class VerifiedHeader:
    """What a header proves once its seals and account proof check out."""

    height: Height
    header: QbftHeader
    consensus: pb.ConsensusState

    @property
    def block_hash(self) -> bytes:
        # Computed on demand: it costs a header re-encode and only misbehaviour checks and
        # update_state need it, not the hot verification path.
        return self.header.block_hash()


def verify_seals(
    commit_hash: bytes,
    seals: Sequence[bytes],
    trusted_validators: Sequence[bytes],
    validators: Sequence[bytes],
) -> set[bytes]:
    """Signers, once they are > 1/3 of the trusted and > 2/3 of the header's own set.

    Raises HeaderError naming the rule that failed. A signer outside a set counts for
    nothing in it, and a validator who sealed twice counts once. Recovery stops as soon as
    both thresholds are met: seals beyond a quorum cannot change the outcome, and each
    recovery is the dominant cost of an update.
    """
    own, trusted = set(validators), set(trusted_validators)
    need_own, need_trusted = 2 * len(own), len(trusted)
    signers: set[bytes] = set()
    own_signed = trusted_signed = 0
    for i, seal in enumerate(seals):
        try:
            signer = secp256k1_recover_address(commit_hash, seal)
        except CryptoError as exc:
            raise HeaderError(f"committed seal {i} is invalid: {exc}") from None
        if signer in signers:
            continue
        signers.add(signer)
        own_signed += signer in own
        trusted_signed += signer in trusted
        if 3 * own_signed > need_own and 3 * trusted_signed > need_trusted:
            return signers
    if 3 * own_signed <= need_own:
        raise HeaderError(
            f"only {own_signed} of the header's {len(own)} validators sealed it (need > 2/3)"
        )
    raise HeaderError(
        f"only {trusted_signed} of the {len(trusted)} trusted validators "
        "sealed the header (need > 1/3)"
    )


def encode_storage_multiproof(slots: Sequence[bytes], nodes: Sequence[bytes]) -> bytes:
    """Proof bytes of several slots: ``slots`` strictly ascending, ``nodes`` as
    ``MerklePatriciaTrie.prove_many`` gives them for those slots in that order."""
    proof = pb.StorageProof(multiproof=pb.StorageMultiproof(slots=list(slots), nodes=list(nodes)))
    return proof.SerializeToString(deterministic=True)


# A canonical StorageProof starts with its lowest present field: 0x0a (field 1, the single
# proof's nodes) or 0x12 (field 2, a multiproof).
_MULTIPROOF_TAG = 0x12


def _decode_storage_proof(proof: object) -> pb.StorageProof:
    if not isinstance(proof, bytes | bytearray):
        raise InvalidProof("proof must be bytes")
    parsed = pb.StorageProof()
    try:
        parsed.ParseFromString(bytes(proof))
    except DecodeError as exc:
        raise InvalidProof(f"proof is not a qbft StorageProof: {exc}") from None
    return parsed


class StorageOpening:
    """A verified storage multiproof: slot -> committed word (None when proven absent)."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[bytes, bytes | None]) -> None:
        self._values = values

    def _lookup(self, path: bytes) -> bytes | None:
        if not isinstance(path, bytes | bytearray) or not path:
            raise InvalidProof("path must be non-empty bytes")
        slot = commitment_slot(bytes(path))
        if slot not in self._values:
            raise InvalidProof(f"the multiproof does not cover {bytes(path)!r}")
        return self._values[slot]

    def covers(self, path: bytes) -> bool:
        return (
            isinstance(path, bytes | bytearray)
            and bool(path)
            and commitment_slot(bytes(path)) in self._values
        )

    def verify_membership(self, path: bytes, value: bytes) -> None:
        if not isinstance(value, bytes | bytearray):
            raise InvalidProof("value must be bytes")
        _check_committed(self._lookup(path), path, value)

    def verify_non_membership(self, path: bytes) -> None:
        if self._lookup(path) is not None:
            raise InvalidProof(f"a value is committed at {bytes(path)!r}")


def _check_committed(got: bytes | None, path: bytes, value: bytes) -> None:
    if got is None:
        raise InvalidProof(f"nothing is committed at {bytes(path)!r}")
    if got.rjust(32, b"\x00") != keccak256(bytes(value)):
        raise InvalidProof(f"the commitment at {bytes(path)!r} is not keccak256 of the value")


def encode_header_message(header: pb.Header) -> bytes:
    return _ser(pb.ClientMessage(header=header))


def encode_misbehaviour_message(header_1: pb.Header, header_2: pb.Header) -> bytes:
    return _ser(pb.ClientMessage(misbehaviour=pb.Misbehaviour(header_1=header_1, header_2=header_2)))


def _parse_message(message: bytes) -> pb.ClientMessage:
    if not isinstance(message, bytes | bytearray):
        raise InvalidClientMessage("client message must be bytes")
    msg = pb.ClientMessage()
    try:
        msg.ParseFromString(bytes(message))
    except DecodeError as exc:
        raise InvalidClientMessage(f"client message is not a qbft ClientMessage: {exc}") from None
    if msg.WhichOneof("message") is None:
        raise InvalidClientMessage("client message carries neither a header nor misbehaviour")
    return msg


class QbftClient(StoredStateClient[pb.ClientState, pb.ConsensusState]):
    """ICS-02 module for QBFT chains; stateless, all state lives in the ClientStore."""

    client_type = CLIENT_TYPE

    # --- stored state (the rules over it: StoredStateClient) ---------------------------

    def _decode_client_state(self, raw: bytes) -> pb.ClientState:
        cs = pb.ClientState()
        cs.ParseFromString(raw)
        return cs

    def _decode_consensus_state(self, raw: bytes) -> pb.ConsensusState:
        cons = pb.ConsensusState()
        cons.ParseFromString(raw)
        return cons

    def _is_frozen(self, cs: pb.ClientState) -> bool:
        return cs.HasField("frozen_height") and not _height(cs.frozen_height).is_zero()

    def _latest(self, cs: pb.ClientState) -> Height:
        return _height(cs.latest_height)

    # --- ICS-02 -------------------------------------------------------------------------

    def initialize(
        self, store: ClientStore, client_state: bytes, consensus_state: bytes, now_ns: int
    ) -> None:
        cs, cons = pb.ClientState(), pb.ConsensusState()
        try:
            cs.ParseFromString(bytes(client_state))
            cons.ParseFromString(bytes(consensus_state))
        except (DecodeError, TypeError) as exc:
            raise InvalidClientMessage(f"initial state is not qbft protobuf: {exc}") from None
        if len(cs.ibc_store_address) != 20:
            raise InvalidClientMessage("ibc_store_address must be 20 bytes")
        if cs.latest_height.revision_height == 0:
            raise InvalidClientMessage("latest_height must be non-zero")
        if cs.trusting_period == 0:
            raise InvalidClientMessage("trusting_period must be positive")
        if self._is_frozen(cs):
            raise InvalidClientMessage("a new client cannot be frozen")
        if len(cons.storage_root) != 32:
            raise InvalidClientMessage("consensus storage_root must be 32 bytes")
        if not cons.validators or any(len(v) != 20 for v in cons.validators):
            raise InvalidClientMessage("consensus validators must be a non-empty list of 20-byte addresses")
        if len(set(cons.validators)) != len(cons.validators):
            raise InvalidClientMessage("consensus validators contain a duplicate")
        if cons.timestamp == 0:
            raise InvalidClientMessage("consensus timestamp must be non-zero")
        if cons.timestamp + cs.trusting_period <= now_ns:
            raise InvalidClientMessage("initial consensus state is already outside the trusting period")
        height = _height(cs.latest_height)
        store.set(CLIENT_STATE_KEY, _ser(cs))
        self._store_consensus(store, height, _ser(cons))

    def timestamp_at_height(self, store: ClientStore, height: Height) -> int:
        cons = self._consensus(store, height)
        if cons is None:
            raise ConsensusStateNotFound(f"no consensus state at height {height}")
        return int(cons.timestamp)

    # --- header verification ------------------------------------------------------------

    def verify_header(
        self, store: ClientStore, cs: pb.ClientState, header: pb.Header, now_ns: int
    ) -> VerifiedHeader:
        """Check one header against the trusted state; raises InvalidClientMessage."""
        try:
            decoded = decode_header(header.header_rlp)
        except HeaderError as exc:
            raise InvalidClientMessage(f"header: {exc}") from None
        if decoded.extra.seals:
            raise InvalidClientMessage("header RLP must have an empty seal list; seals travel separately")
        revision = cs.latest_height.revision_number
        trusted_height = _height(header.trusted_height)
        if trusted_height.revision_number != revision:
            raise InvalidClientMessage(f"trusted height {trusted_height} is not in revision {revision}")
        height = Height(revision, decoded.number)
        if height <= trusted_height:
            raise InvalidClientMessage(f"header height {height} is not above trusted height {trusted_height}")
        trusted = self._consensus(store, trusted_height)
        if trusted is None:
            raise InvalidClientMessage(f"no consensus state at trusted height {trusted_height}")
        if trusted.timestamp + cs.trusting_period <= now_ns:
            raise InvalidClientMessage("trusted consensus state is outside the trusting period")
        time_ns = decoded.timestamp * _NS
        if time_ns <= trusted.timestamp:
            raise InvalidClientMessage("header time is not after the trusted consensus time")
        if time_ns >= now_ns + cs.max_clock_drift:
            raise InvalidClientMessage("header time is beyond the maximum clock drift")
        validators = decoded.extra.validators
        if not validators or len(set(validators)) != len(validators):
            raise InvalidClientMessage("header validator set is empty or has a duplicate")
        try:
            # header_rlp has an empty seal list (checked above), so it is the commit-hash
            # preimage itself and needs no re-encoding.
            verify_seals(keccak256(header.header_rlp), list(header.seals), trusted.validators, validators)
        except HeaderError as exc:
            raise InvalidClientMessage(str(exc)) from None
        try:
            account = verify_account_proof(
                decoded.state_root, cs.ibc_store_address, list(header.account_proof)
            )
        except MptProofError as exc:
            raise InvalidClientMessage(f"account proof: {exc}") from None
        if account is None:
            raise InvalidClientMessage("account proof shows no IBC store contract at ibc_store_address")
        consensus = pb.ConsensusState(
            timestamp=time_ns, storage_root=account.storage_root, validators=list(validators)
        )
        return VerifiedHeader(height, decoded, consensus)

    def verify_client_message(self, store: ClientStore, message: bytes, now_ns: int) -> None:
        msg = _parse_message(message)
        cs = self._require_active(store, now_ns)
        if msg.WhichOneof("message") == "header":
            if self._already_stored(store, msg.header):
                return  # verified when it was stored; the seals cannot add anything
            self.verify_header(store, cs, msg.header, now_ns)
            return
        first = self.verify_header(store, cs, msg.misbehaviour.header_1, now_ns)
        second = self.verify_header(store, cs, msg.misbehaviour.header_2, now_ns)
        if not self._conflict(first, second):
            raise InvalidClientMessage("misbehaviour headers do not conflict")

    @staticmethod
    def _conflict(a: VerifiedHeader, b: VerifiedHeader) -> bool:
        if a.height == b.height:
            return a.block_hash != b.block_hash
        lo, hi = (a, b) if a.height < b.height else (b, a)
        return hi.consensus.timestamp <= lo.consensus.timestamp

    def _verified_unchecked(self, store: ClientStore, header: pb.Header) -> VerifiedHeader:
        """Re-derive a header already checked by verify_client_message (no time checks)."""
        cs = self._client_state(store)
        decoded = decode_header(header.header_rlp)
        account = verify_account_proof(decoded.state_root, cs.ibc_store_address, list(header.account_proof))
        if account is None:
            raise InvalidClientMessage("account proof shows no IBC store contract")
        consensus = pb.ConsensusState(
            timestamp=decoded.timestamp * _NS,
            storage_root=account.storage_root,
            validators=list(decoded.extra.validators),
        )
        height = Height(cs.latest_height.revision_number, decoded.number)
        return VerifiedHeader(height, decoded, consensus)

    def _already_stored(self, store: ClientStore, header: pb.Header) -> bool:
        """True when ``header_rlp`` (every field the seals sign) is that of a header this
        client verified and stored: it commits to exactly the stored consensus state, so
        neither its seals nor its account proof can add anything. One keccak, one read."""
        return store.get(_commit_hash_key(keccak256(header.header_rlp))) is not None

    def check_for_misbehaviour(self, store: ClientStore, message: bytes) -> bool:
        msg = _parse_message(message)
        if msg.WhichOneof("message") == "misbehaviour":
            return True
        if self._already_stored(store, msg.header):
            return False
        try:
            new = self._verified_unchecked(store, msg.header)
        except (HeaderError, MptProofError, InvalidClientMessage):
            return False
        stored_hash = store.get(_block_hash_key(new.height))
        if stored_hash is not None:
            return stored_hash != new.block_hash
        return self._breaks_monotonic_time(store, new.height, new.consensus.timestamp)

    def update_state_on_misbehaviour(self, store: ClientStore, message: bytes) -> None:
        cs = self._client_state(store)
        cs.frozen_height.CopyFrom(_to_pb(_FROZEN))
        store.set(CLIENT_STATE_KEY, _ser(cs))

    def update_state(self, store: ClientStore, message: bytes) -> list[Height]:
        msg = _parse_message(message)
        if msg.WhichOneof("message") != "header":
            raise InvalidClientMessage("update_state takes a header")
        if self._already_stored(store, msg.header):
            return []
        new = self._verified_unchecked(store, msg.header)
        if store.get(_block_hash_key(new.height)) == new.block_hash:
            return []
        cs = self._client_state(store)
        self._store_consensus(store, new.height, _ser(new.consensus))
        store.set(_block_hash_key(new.height), new.block_hash)
        store.set(_commit_hash_key(keccak256(msg.header.header_rlp)), new.block_hash)
        if new.height > _height(cs.latest_height):
            cs.latest_height.CopyFrom(_to_pb(new.height))
            store.set(CLIENT_STATE_KEY, _ser(cs))
        return [new.height]

    # --- proofs -------------------------------------------------------------------------

    def _storage_root(
        self, store: ClientStore, height: Height, prefix: bytes, now_ns: int
    ) -> bytes:
        """The IBC storage root a proof at ``height`` must lead to, after the status,
        height and prefix rules every proof obeys."""
        cs, cons = self._proof_consensus(store, height, now_ns)
        if bytes(prefix) != cs.ibc_store_address:
            raise InvalidProof("commitment prefix is not this client's IBC store address")
        return bytes(cons.storage_root)

    def _storage_value(
        self,
        store: ClientStore,
        height: Height,
        proof: bytes,
        prefix: bytes,
        path: bytes,
        now_ns: int,
    ) -> bytes | None:
        storage_root = self._storage_root(store, height, prefix, now_ns)
        if not isinstance(path, bytes | bytearray) or not path:
            raise InvalidProof("path must be non-empty bytes")
        parsed = _decode_storage_proof(proof)
        if parsed.HasField("multiproof"):
            raise InvalidProof("a multiproof is opened with open_batch, not used as a single proof")
        return verify_storage_proof(storage_root, commitment_slot(bytes(path)), list(parsed.proof))

    def verify_membership(
        self,
        store: ClientStore,
        height: Height,
        proof: bytes,
        prefix: bytes,
        path: bytes,
        value: bytes,
        now_ns: int,
    ) -> None:
        if not isinstance(value, bytes | bytearray):
            raise InvalidProof("value must be bytes")
        _check_committed(self._storage_value(store, height, proof, prefix, path, now_ns), path, value)

    def verify_non_membership(
        self,
        store: ClientStore,
        height: Height,
        proof: bytes,
        prefix: bytes,
        path: bytes,
        now_ns: int,
    ) -> None:
        if self._storage_value(store, height, proof, prefix, path, now_ns) is not None:
            raise InvalidProof(f"a value is committed at {bytes(path)!r}")

    # --- multiproofs --------------------------------------------------------------------

    def is_batch_proof(self, proof: bytes) -> bool:
        return isinstance(proof, bytes | bytearray) and proof[:1] == bytes([_MULTIPROOF_TAG])

    def open_batch(
        self, store: ClientStore, height: Height, prefix: bytes, proof: bytes, now_ns: int
    ) -> BatchOpening:
        storage_root = self._storage_root(store, height, prefix, now_ns)
        parsed = _decode_storage_proof(proof)
        if not parsed.HasField("multiproof") or parsed.proof:
            raise InvalidProof("a multiproof holds StorageProof.multiproof and no single proof nodes")
        parsed.DiscardUnknownFields()  # they would survive re-serialisation otherwise
        if parsed.SerializeToString(deterministic=True) != bytes(proof):
            raise InvalidProof("multiproof is not canonically encoded (unknown, repeated or reordered fields)")
        multi = parsed.multiproof
        values = verify_storage_multiproof(storage_root, list(multi.slots), list(multi.nodes))
        return StorageOpening(values)
