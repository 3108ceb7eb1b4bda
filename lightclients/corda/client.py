"""The ``corda`` light-client module: tracks notary-signed checkpoints of the Corda chain.

Rules (DESIGN.md, "Light clients"), and the choices made where it is silent:
- A header is accepted only if strictly more than 2/3 of the header's own notary set signed
  the checkpoint hash (each key once) AND the trusted side agrees:
  * adjacent update (height = trusted + 1): the header's set must be the one the trusted
    checkpoint committed in ``next_notary_set_hash`` - the previous quorum committed it, so
    rotation happens only when committed;
  * skipping update: strictly more than 1/3 of the notary set at the trusted height also
    signed, so at least one honest notary vouches for the jump.
- Time: the header's timestamp must be before now + max_clock_drift, the trusted state must
  be within its trusting period, and timestamps must strictly increase with height against
  every stored neighbour; a header breaking monotonicity is misbehaviour, not just invalid.
- Two valid checkpoints at one height (or one conflicting with a stored consensus state) are
  misbehaviour and freeze the client; frozen_height is then set to 1 (any non-zero value
  means frozen, as in ibc-go's FrozenHeight{0, 1}).
- Notary sets are stored under ``meta/notarySets/{hash}`` so skipping updates can count
  trusted signers without the header re-sending the trusted set.
- Proofs: ICS-23 SMT proofs against ``ibc_root``; the chain's prefix must be ``b"ibc"`` and
  the SMT key is the ICS-24 path bytes alone (the prefix names the store, it is not hashed in).
  A batch or compressed batch CommitmentProof is a multiproof: ``open_batch`` verifies all
  its entries once (shared inner steps hashed once) and answers each path by lookup.
- One header check per height: the hash of each stored checkpoint is kept under
  ``meta/checkpointHash/{height}``. A header carrying exactly that checkpoint adds nothing and
  is accepted without checking signatures; a different checkpoint at a stored height is fully
  verified and is misbehaviour, even when it commits the same consensus state.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from kakehashi.corda.v1 import lightclient_pb2 as lc
from lightclients import ics23
from lightclients.corda.checkpoint import (
    CheckpointError,
    checkpoint_hash,
    count_signers,
    notary_set,
    notary_set_hash,
    quorum,
    trust_quorum,
)
from lightclients.interface import (
    CLIENT_STATE_KEY,
    BatchOpening,
    ClientStore,
    ConsensusStateNotFound,
    Height,
    InvalidClientMessage,
    InvalidProof,
)
from lightclients.stored_state import StoredStateClient

CLIENT_TYPE = "11-corda"  # ibc-go style "NN-name", so client ids ("11-corda-0") meet ICS-24's 9-char minimum
IBC_PREFIX = b"ibc"
FROZEN_HEIGHT = 1
_HASH_LEN = 32


def notary_set_key(set_hash: bytes) -> str:
    return f"meta/notarySets/{set_hash.hex()}"


def checkpoint_hash_key(height: Height) -> str:
    return f"meta/checkpointHash/{height}"


# A canonical CommitmentProof is its one oneof field: tag 0x1a is batch (3), 0x22 compressed (4).
_BATCH_TAGS = frozenset((0x1A, 0x22))


class SmtOpening:
    """A verified ICS-23 batch over the Corda IBC store: lookups by ICS-24 path."""

    __slots__ = ("_batch",)

    def __init__(self, batch: ics23.VerifiedBatch) -> None:
        self._batch = batch

    def covers(self, path: bytes) -> bool:
        return isinstance(path, (bytes, bytearray)) and bool(path) and self._batch.covers(bytes(path))

    def verify_membership(self, path: bytes, value: bytes) -> None:
        if not isinstance(path, (bytes, bytearray)) or not isinstance(value, (bytes, bytearray)):
            raise InvalidProof("path and value must be bytes")
        try:
            self._batch.check_membership(bytes(path), bytes(value))
        except ics23.Ics23Error as exc:
            raise InvalidProof(f"membership of {bytes(path)!r} in the batch: {exc}") from None

    def verify_non_membership(self, path: bytes) -> None:
        if not isinstance(path, (bytes, bytearray)):
            raise InvalidProof("path must be bytes")
        try:
            self._batch.check_non_membership(bytes(path))
        except ics23.Ics23Error as exc:
            raise InvalidProof(f"absence of {bytes(path)!r} in the batch: {exc}") from None


def _decode(cls: type[lc.ClientState] | type[lc.ConsensusState] | type[lc.ClientMessage], data: object) -> object:
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidClientMessage(f"{cls.__name__} must be bytes")
    msg = cls()
    try:
        msg.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise InvalidClientMessage(f"{cls.__name__} does not decode: {exc}") from None
    if msg.SerializeToString(deterministic=True) != bytes(data):
        raise InvalidClientMessage(f"{cls.__name__} is not canonically encoded")
    return msg


def decode_client_state(data: object) -> lc.ClientState:
    msg = _decode(lc.ClientState, data)
    assert isinstance(msg, lc.ClientState)
    return msg


def decode_consensus_state(data: object) -> lc.ConsensusState:
    msg = _decode(lc.ConsensusState, data)
    assert isinstance(msg, lc.ConsensusState)
    return msg


def decode_client_message(data: object) -> lc.ClientMessage:
    msg = _decode(lc.ClientMessage, data)
    assert isinstance(msg, lc.ClientMessage)
    if msg.WhichOneof("message") is None:
        raise InvalidClientMessage("client message holds neither a header nor misbehaviour")
    return msg


def encode(msg: lc.ClientState | lc.ConsensusState | lc.ClientMessage | lc.Header) -> bytes:
    return msg.SerializeToString(deterministic=True)


def header_message(header: lc.Header) -> bytes:
    return encode(lc.ClientMessage(header=header))


def misbehaviour_message(header_1: lc.Header, header_2: lc.Header) -> bytes:
    return encode(lc.ClientMessage(misbehaviour=lc.Misbehaviour(header_1=header_1, header_2=header_2)))


def consensus_state_from_checkpoint(checkpoint: lc.Checkpoint) -> lc.ConsensusState:
    return lc.ConsensusState(
        timestamp=checkpoint.timestamp,
        ibc_root=checkpoint.ibc_root,
        notary_set_hash=checkpoint.notary_set_hash,
        next_notary_set_hash=checkpoint.next_notary_set_hash,
    )


def initial_states(
    checkpoint: lc.Checkpoint, notary_keys: list[bytes], trusting_period: int, max_clock_drift: int
) -> tuple[bytes, bytes]:
    """(client_state, consensus_state) bytes for MsgCreateClient from a checkpoint the creator trusts."""
    cs = lc.ClientState(
        chain_id=checkpoint.chain_id,
        notary_keys=notary_keys,
        threshold=quorum(len(notary_keys)),
        latest_height=checkpoint.height,
        trusting_period=trusting_period,
        max_clock_drift=max_clock_drift,
    )
    return encode(cs), encode(consensus_state_from_checkpoint(checkpoint))


class CordaLightClient(StoredStateClient[lc.ClientState, lc.ConsensusState]):
    """Stateless ICS-02 module; all state is in the ClientStore passed to each call."""

    client_type = CLIENT_TYPE

    # --- stored state (the rules over it: StoredStateClient) ---------------------------

    def _decode_client_state(self, raw: bytes) -> lc.ClientState:
        return decode_client_state(raw)

    def _decode_consensus_state(self, raw: bytes) -> lc.ConsensusState:
        return decode_consensus_state(raw)

    _NOT_INITIALISED = "client is not initialised"

    def _is_frozen(self, cs: lc.ClientState) -> bool:
        return cs.frozen_height != 0

    def _latest(self, cs: lc.ClientState) -> Height:
        return self._height(cs, cs.latest_height)

    def _height(self, cs: lc.ClientState, h: int) -> Height:
        return Height(cs.revision_number, h)

    def _notary_keys(self, store: ClientStore, set_hash: bytes) -> list[bytes]:
        raw = store.get(notary_set_key(set_hash))
        if raw is None:
            raise InvalidClientMessage("the trusted notary set is not known to this client")
        return [bytes(k) for k in lc.NotarySet.FromString(raw).public_keys]

    # --- lifecycle ----------------------------------------------------------------------

    def initialize(self, store: ClientStore, client_state: bytes, consensus_state: bytes, now_ns: int) -> None:
        cs = decode_client_state(client_state)
        cons = decode_consensus_state(consensus_state)
        try:
            keys = [bytes(k) for k in cs.notary_keys]
            set_hash = notary_set_hash(keys)
        except CheckpointError as exc:
            raise InvalidClientMessage(f"client state: {exc}") from None
        if not cs.chain_id:
            raise InvalidClientMessage("client state: chain_id is empty")
        if cs.threshold != quorum(len(keys)):
            raise InvalidClientMessage(
                f"client state: threshold must be {quorum(len(keys))} (>2/3 of {len(keys)}), got {cs.threshold}"
            )
        if cs.latest_height == 0 or cs.frozen_height != 0:
            raise InvalidClientMessage("client state: latest_height must be > 0 and the client not frozen")
        if cs.trusting_period == 0:
            raise InvalidClientMessage("client state: trusting_period must be > 0")
        if cons.notary_set_hash != set_hash:
            raise InvalidClientMessage("consensus state: notary_set_hash does not match the client's notary keys")
        if len(cons.ibc_root) != _HASH_LEN or len(cons.next_notary_set_hash) != _HASH_LEN:
            raise InvalidClientMessage("consensus state: ibc_root and next_notary_set_hash must be 32 bytes")
        if cons.timestamp == 0 or cons.timestamp + cs.trusting_period <= now_ns:
            raise InvalidClientMessage("consensus state is outside the trusting period")
        height = self._latest(cs)
        store.set(CLIENT_STATE_KEY, encode(cs))
        self._store_consensus(store, height, encode(cons))
        store.set(notary_set_key(set_hash), notary_set(keys).SerializeToString(deterministic=True))

    def timestamp_at_height(self, store: ClientStore, height: Height) -> int:
        cons = self._consensus(store, height)
        if cons is None:
            raise ConsensusStateNotFound(f"no consensus state at {height}")
        return int(cons.timestamp)

    # --- headers ------------------------------------------------------------------------

    def _verify_header(self, store: ClientStore, cs: lc.ClientState, header: lc.Header, now_ns: int) -> None:
        cp = header.checkpoint
        if not header.HasField("checkpoint"):
            raise InvalidClientMessage("header has no checkpoint")
        if cp.chain_id != cs.chain_id:
            raise InvalidClientMessage(f"checkpoint is for chain {cp.chain_id!r}, client tracks {cs.chain_id!r}")
        if any(len(b) != _HASH_LEN for b in (cp.ibc_root, cp.notary_set_hash, cp.next_notary_set_hash)):
            raise InvalidClientMessage("checkpoint roots and notary set hashes must be 32 bytes")
        if cp.height <= header.trusted_height:
            raise InvalidClientMessage("header height must be above its trusted height")
        trusted = self._consensus(store, self._height(cs, header.trusted_height))
        if trusted is None:
            raise InvalidClientMessage(f"no consensus state at trusted height {header.trusted_height}")
        if trusted.timestamp + cs.trusting_period <= now_ns:
            raise InvalidClientMessage("trusted consensus state is outside the trusting period")
        if cp.timestamp >= now_ns + cs.max_clock_drift:
            raise InvalidClientMessage("checkpoint timestamp is too far in the future (max_clock_drift)")
        if cp.timestamp <= trusted.timestamp:
            raise InvalidClientMessage("checkpoint time does not increase past the trusted consensus state")
        try:
            keys = [bytes(k) for k in header.notary_set.public_keys]
            set_hash = notary_set_hash(keys)
        except CheckpointError as exc:
            raise InvalidClientMessage(f"header notary set: {exc}") from None
        if set_hash != cp.notary_set_hash:
            raise InvalidClientMessage("header notary set does not hash to the checkpoint's notary_set_hash")
        digest = checkpoint_hash(cp)
        signed = count_signers(digest, header.signatures, keys)
        if signed < quorum(len(keys)):
            raise InvalidClientMessage(
                f"only {signed} of {len(keys)} notaries signed; more than 2/3 ({quorum(len(keys))}) required"
            )
        if cp.height == header.trusted_height + 1:
            if set_hash != trusted.next_notary_set_hash:
                raise InvalidClientMessage("notary set rotation was not committed by the previous checkpoint")
        else:
            trusted_keys = self._notary_keys(store, bytes(trusted.notary_set_hash))
            vouch = count_signers(digest, header.signatures, trusted_keys)
            if vouch < trust_quorum(len(trusted_keys)):
                raise InvalidClientMessage(
                    f"only {vouch} of {len(trusted_keys)} trusted notaries signed; more than 1/3 required"
                )

    def verify_client_message(self, store: ClientStore, message: bytes, now_ns: int) -> None:
        cs = self._require_active(store, now_ns)
        msg = decode_client_message(message)
        if msg.WhichOneof("message") == "header":
            if self._already_stored(store, cs, msg.header):
                return  # verified when it was stored; the signatures cannot add anything
            self._verify_header(store, cs, msg.header, now_ns)
            return
        mb = msg.misbehaviour
        h1, h2 = mb.header_1, mb.header_2
        if h1.checkpoint.height != h2.checkpoint.height:
            raise InvalidClientMessage("misbehaviour headers must be at the same height")
        if checkpoint_hash(h1.checkpoint) == checkpoint_hash(h2.checkpoint):
            raise InvalidClientMessage("misbehaviour headers carry the same checkpoint")
        self._verify_header(store, cs, h1, now_ns)
        self._verify_header(store, cs, h2, now_ns)

    def _already_stored(self, store: ClientStore, cs: lc.ClientState, header: lc.Header) -> bool:
        """True when the header carries exactly the checkpoint stored at its height."""
        if not header.HasField("checkpoint"):
            return False
        stored = store.get(checkpoint_hash_key(self._height(cs, header.checkpoint.height)))
        return stored is not None and stored == checkpoint_hash(header.checkpoint)

    def check_for_misbehaviour(self, store: ClientStore, message: bytes) -> bool:
        cs = self._client_state(store)
        msg = decode_client_message(message)
        if msg.WhichOneof("message") == "misbehaviour":
            return True
        cp = msg.header.checkpoint
        height = self._height(cs, cp.height)
        existing = self._consensus(store, height)
        if existing is not None and existing != consensus_state_from_checkpoint(cp):
            return True
        stored_hash = store.get(checkpoint_hash_key(height))
        if stored_hash is not None and stored_hash != checkpoint_hash(cp):
            return True  # two checkpoints signed at one height, whatever state they commit
        return self._breaks_monotonic_time(store, height, cp.timestamp)

    def update_state_on_misbehaviour(self, store: ClientStore, message: bytes) -> None:
        cs = self._client_state(store)
        decode_client_message(message)
        cs.frozen_height = FROZEN_HEIGHT
        store.set(CLIENT_STATE_KEY, encode(cs))

    def update_state(self, store: ClientStore, message: bytes) -> list[Height]:
        cs = self._client_state(store)
        msg = decode_client_message(message)
        if msg.WhichOneof("message") != "header":
            raise InvalidClientMessage("update_state takes a header")
        header = msg.header
        cp = header.checkpoint
        height = self._height(cs, cp.height)
        cons = consensus_state_from_checkpoint(cp)
        existing = self._consensus(store, height)
        if existing is not None:
            if existing == cons:
                return []
            raise InvalidClientMessage("a different consensus state is stored at this height (misbehaviour)")
        keys = [bytes(k) for k in header.notary_set.public_keys]
        self._store_consensus(store, height, encode(cons))
        store.set(checkpoint_hash_key(height), checkpoint_hash(cp))
        store.set(notary_set_key(bytes(cp.notary_set_hash)), notary_set(keys).SerializeToString(deterministic=True))
        if cp.height > cs.latest_height:
            cs.latest_height = cp.height
            del cs.notary_keys[:]
            cs.notary_keys.extend(keys)
            cs.threshold = quorum(len(keys))
            store.set(CLIENT_STATE_KEY, encode(cs))
        return [height]

    # --- proofs -------------------------------------------------------------------------

    def _root_for_proof(self, store: ClientStore, height: Height, prefix: bytes, now_ns: int) -> bytes:
        # Not StoredStateClient._proof_consensus: the prefix is checked before the height
        # here, and a missing consensus state has its own text; both are observable.
        cs = self._require_active(store, now_ns)
        if prefix != IBC_PREFIX:
            raise InvalidProof(f"prefix must be {IBC_PREFIX!r}, got {prefix!r}")
        if height > self._latest(cs):
            raise InvalidProof(f"proof height {height} is above the latest height")
        cons = self._consensus(store, height)
        if cons is None:
            raise ConsensusStateNotFound(f"no consensus state at {height}")
        return bytes(cons.ibc_root)

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
        root = self._root_for_proof(store, height, prefix, now_ns)
        if not ics23.verify_membership(ics23.SMT_SPEC, root, proof, path, value):
            raise InvalidProof(f"membership proof for {path!r} does not verify at {height}")

    def verify_non_membership(
        self,
        store: ClientStore,
        height: Height,
        proof: bytes,
        prefix: bytes,
        path: bytes,
        now_ns: int,
    ) -> None:
        root = self._root_for_proof(store, height, prefix, now_ns)
        if not ics23.verify_non_membership(ics23.SMT_SPEC, root, proof, path):
            raise InvalidProof(f"non-membership proof for {path!r} does not verify at {height}")

    # --- multiproofs --------------------------------------------------------------------

    def is_batch_proof(self, proof: bytes) -> bool:
        return isinstance(proof, (bytes, bytearray)) and proof[:1] != b"" and proof[0] in _BATCH_TAGS

    def open_batch(
        self, store: ClientStore, height: Height, prefix: bytes, proof: bytes, now_ns: int
    ) -> BatchOpening:
        root = self._root_for_proof(store, height, prefix, now_ns)
        try:
            verified = ics23.verify_batch(ics23.SMT_SPEC, root, proof)
        except ics23.Ics23Error as exc:
            raise InvalidProof(f"batch proof does not verify at {height}: {exc}") from None
        return SmtOpening(verified)
