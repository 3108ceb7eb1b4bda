"""The on-chain proxy light client (client type ``12-proxy``), LCP-style.

Instead of verifying the counterparty's headers and proofs itself, this client verifies
statements an enclave made after running the direct light client off-chain: an UpdateState
("post_state_id at post_height follows from prev_state_id at prev_height") or a
VerifyMembership ("this value is at this path in state state_id"). Its cost is a few
signature recoveries per update or proof whatever the counterparty's validator count or
proof format. What it trusts instead is the enclave (SIMULATED in this project, see
``attestation.py``) and k of its n operators.

Rules (DESIGN.md "Proxy mode"), and the choices made where it is silent:
- Keys: an enclave key counts only once registered through an attestation report signed by
  the pinned authority, for the pinned code hash, co-signed by its operator, who must be one
  of the client's operators. A key expires ``key_expiration`` after its attestation time,
  judged by the host's block time. Registrations ride in the update message itself
  (``ClientMessage.registrations``), so a new key is usable from the update that brings it.
- Signatures: a message needs signatures by active keys of at least ``operators_threshold``
  distinct operators. A signature that counts for nothing (unregistered, expired, not an
  operator's, malformed) does not void the others: during a key rotation an enclave signs
  with its old and its new key, and whichever the host already trusts counts. A message
  whose valid signatures fall short is rejected with the reason for each one that did not
  count. At most 2n signatures are looked at (two keys per operator), so the cost is bounded.
- Updates: an update naming exactly the state already stored at its height is a no-op that
  checks no signature (the relayer leads each tx with the same update). Otherwise
  prev_state_id must equal the state id stored at prev_height (the chain of state
  ids is what ties the enclave's hosted client to this client's history); the context's
  trusting period must be the client's, its trusted-state time must be the stored one's and
  its header time the update's, and the host checks it against its own clock.
- Status and expiry: the client expires when its latest consensus state is older than the
  trusting period, as the hosted client would; frozen is a flag. Misbehaviour: an update
  that chains from a stored state but names a different state id at a height already stored,
  or breaks time monotonicity, freezes the client (an honest enclave only signs that when the
  counterparty chain itself equivocated).
- Proofs: height at most the latest, a consensus state stored at exactly that height, and
  the signed VerifyMembership must name this prefix, path, value hash, height and the stored
  state id. A non-membership proof carries an empty value hash.
- Multiproofs (the core's batch contract): the proxy's multiproof form is a signed
  VerifyMembershipBatch, one statement over a transaction's paths (strictly ascending), so a
  transaction of N proofs costs the signatures of one. ``open_batch`` runs the same checks
  as a single proof, once; lookups then compare value hashes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import TypeVar

from google.protobuf.message import DecodeError

from kakehashi.proxy.v1 import proxy_pb2 as pb
from lightclients.interface import (
    CLIENT_STATE_KEY,
    ClientError,
    ClientStore,
    ConsensusStateNotFound,
    Height,
    InvalidClientMessage,
    InvalidProof,
)
from lightclients.proxy.attestation import KeyRecord, parse_report, record_of, verify_registration
from lightclients.proxy.messages import (
    ADDRESS_LEN,
    HASH_LEN,
    EncodingError,
    decode,
    encode,
    height,
    height_pb,
    hex_address,
    message_digest,
    parse_batch,
    parse_membership,
    parse_update,
    signer_of,
    value_hash,
)
from lightclients.proxy.messages import height as _height
from lightclients.stored_state import StoredStateClient

CLIENT_TYPE = "12-proxy"  # ibc-go style "NN-name" (ours, not ICS-registered); ids "12-proxy-0" meet ICS-24


def enclave_key_key(address: bytes) -> str:
    return f"meta/enclaveKeys/{bytes(address).hex()}"


def decode_client_state(data: object) -> pb.ClientState:
    try:
        return decode(pb.ClientState, data, "proxy client state")
    except EncodingError as exc:
        raise InvalidClientMessage(str(exc)) from None


def decode_consensus_state(data: object) -> pb.ConsensusState:
    try:
        return decode(pb.ConsensusState, data, "proxy consensus state")
    except EncodingError as exc:
        raise InvalidClientMessage(str(exc)) from None


def decode_client_message(data: object) -> pb.ClientMessage:
    try:
        msg = decode(pb.ClientMessage, data, "proxy client message")
    except EncodingError as exc:
        raise InvalidClientMessage(str(exc)) from None
    if not msg.HasField("update"):
        raise InvalidClientMessage("proxy client message carries no signed update")
    return msg


def _update_of(msg: pb.ClientMessage) -> pb.UpdateState:
    try:
        return parse_update(msg.update.message)
    except EncodingError as exc:
        raise InvalidClientMessage(str(exc)) from None


# The two statements a proof carries: one path (a single proof) or several (a multiproof).
_Statement = TypeVar("_Statement", pb.VerifyMembership, pb.VerifyMembershipBatch)


class ProxyLightClient(StoredStateClient[pb.ClientState, pb.ConsensusState]):
    """Stateless ICS-02 module; all state lives in the ClientStore passed to each call."""

    client_type = CLIENT_TYPE

    # --- stored state (the rules over it: StoredStateClient) ---------------------------

    def _decode_client_state(self, raw: bytes) -> pb.ClientState:
        return decode_client_state(raw)

    def _decode_consensus_state(self, raw: bytes) -> pb.ConsensusState:
        return decode_consensus_state(raw)

    def _is_frozen(self, cs: pb.ClientState) -> bool:
        return cs.frozen

    def _latest(self, cs: pb.ClientState) -> Height:
        return height(cs.latest_height)

    def _record(self, store: ClientStore, address: bytes) -> KeyRecord | None:
        raw = store.get(enclave_key_key(address))
        if raw is None:
            return None
        rec = decode(pb.EnclaveKeyRecord, raw, "enclave key record")
        return KeyRecord(bytes(rec.operator), int(rec.expires_at))

    # --- lifecycle ----------------------------------------------------------------------

    def initialize(self, store: ClientStore, client_state: bytes, consensus_state: bytes, now_ns: int) -> None:
        cs = decode_client_state(client_state)
        cons = decode_consensus_state(consensus_state)
        if len(cs.code_hash) != HASH_LEN:
            raise InvalidClientMessage("client state: code_hash must be 32 bytes")
        if len(cs.authority) != ADDRESS_LEN:
            raise InvalidClientMessage("client state: authority must be a 20-byte address")
        if cs.key_expiration == 0:
            raise InvalidClientMessage("client state: key_expiration must be positive")
        operators = [bytes(o) for o in cs.operators]
        if not operators or any(len(o) != ADDRESS_LEN for o in operators):
            raise InvalidClientMessage("client state: operators must be a non-empty list of 20-byte addresses")
        if any(a >= b for a, b in itertools.pairwise(operators)):
            raise InvalidClientMessage("client state: operators must be strictly ascending (sorted, no duplicate)")
        if not 1 <= cs.operators_threshold <= len(operators):
            raise InvalidClientMessage(
                f"client state: operators_threshold must be 1..{len(operators)}, got {cs.operators_threshold}")
        if cs.trusting_period == 0:
            raise InvalidClientMessage("client state: trusting_period must be positive")
        if height(cs.latest_height).is_zero() or cs.frozen:
            raise InvalidClientMessage("client state: latest_height must be non-zero and the client not frozen")
        if len(cons.state_id) != HASH_LEN:
            raise InvalidClientMessage("consensus state: state_id must be 32 bytes")
        if cons.timestamp == 0 or cons.timestamp + cs.trusting_period <= now_ns:
            raise InvalidClientMessage("consensus state is outside the trusting period")
        latest = height(cs.latest_height)
        store.set(CLIENT_STATE_KEY, encode(cs))
        self._store_consensus(store, latest, encode(cons))

    def timestamp_at_height(self, store: ClientStore, at: Height) -> int:
        cons = self._consensus(store, at)
        if cons is None:
            raise ConsensusStateNotFound(f"no consensus state at {at}")
        return int(cons.timestamp)

    # --- signatures ---------------------------------------------------------------------

    def _check_signatures(self, store: ClientStore, cs: pb.ClientState, message: bytes, signatures: list[bytes],
                          now_ns: int, extra: Mapping[bytes, KeyRecord], error: type[ClientError]) -> None:
        """Raise ``error`` unless active keys of >= k distinct operators signed ``message``."""
        operators = {bytes(o) for o in cs.operators}
        limit = 2 * len(operators)
        if not signatures:
            raise error("the message carries no enclave signature")
        if len(signatures) > limit:
            raise error(f"the message carries {len(signatures)} signatures; at most {limit} (two per operator)")
        digest = message_digest(message)
        counted: set[bytes] = set()
        why: list[str] = []
        for i, sig in enumerate(signatures):
            signer = signer_of(digest, sig)
            if signer is None:
                why.append(f"signature {i} is malformed")
                continue
            rec = extra.get(signer) or self._record(store, signer)
            if rec is None:
                why.append(f"signature {i} is by {hex_address(signer)}, which is not a registered enclave key")
            elif rec.expires_at <= now_ns:
                why.append(f"signature {i} is by enclave key {hex_address(signer)}, expired at {rec.expires_at} "
                           f"(host time {now_ns})")
            elif rec.operator not in operators:
                why.append(f"signature {i} is by a key of {hex_address(rec.operator)}, not one of the operators")
            else:
                counted.add(rec.operator)
        if len(counted) < cs.operators_threshold:
            detail = "; ".join(why) if why else "each operator counts once"
            raise error(f"signed by active keys of {len(counted)} operator(s); {cs.operators_threshold} of "
                        f"{len(operators)} required ({detail})")

    # --- updates ------------------------------------------------------------------------

    def _registrations(self, store: ClientStore, cs: pb.ClientState, msg: pb.ClientMessage) -> dict[bytes, KeyRecord]:
        out: dict[bytes, KeyRecord] = {}
        for reg in msg.registrations:
            key, rec = verify_registration(cs, reg, lambda k: self._record(store, k))
            out[key] = rec
        return out

    def verify_client_message(self, store: ClientStore, message: bytes, now_ns: int) -> None:
        cs = self._require_active(store, now_ns)
        msg = decode_client_message(message)
        extra = self._registrations(store, cs, msg)
        up = _update_of(msg)
        prev, post = height(up.prev_height), height(up.post_height)
        existing = self._consensus(store, post)
        if existing is not None and (bytes(existing.state_id), existing.timestamp) == (bytes(up.post_state_id),
                                                                                       up.timestamp):
            return  # the very state already stored: a no-op, nothing to check (registrations were)
        if prev.is_zero():
            raise InvalidClientMessage("an update must name the state it follows (prev_height is zero)")
        if post <= prev:
            raise InvalidClientMessage(f"post height {post} is not above prev height {prev}")
        if post.revision_number != height(cs.latest_height).revision_number:
            raise InvalidClientMessage(f"post height {post} is not in the client's revision")
        trusted = self._consensus(store, prev)
        if trusted is None:
            raise InvalidClientMessage(f"no consensus state at prev height {prev}")
        if bytes(up.prev_state_id) != bytes(trusted.state_id):
            raise InvalidClientMessage(
                f"prev_state_id {bytes(up.prev_state_id).hex()} does not match the state id stored at {prev} "
                f"({bytes(trusted.state_id).hex()}): the state-id chain is broken")
        if len(up.post_state_id) != HASH_LEN:
            raise InvalidClientMessage("post_state_id must be 32 bytes")
        if up.timestamp == 0:
            raise InvalidClientMessage("the update carries no timestamp")
        ctx = up.context
        if not up.HasField("context"):
            raise InvalidClientMessage("the update carries no trusting-period context")
        if ctx.trusting_period != cs.trusting_period:
            raise InvalidClientMessage(
                f"the enclave's trusting period {ctx.trusting_period} is not the client's {cs.trusting_period}")
        if ctx.trusted_state_timestamp != trusted.timestamp:
            raise InvalidClientMessage("the context's trusted-state time is not the stored consensus time")
        if ctx.untrusted_header_timestamp != up.timestamp:
            raise InvalidClientMessage("the context's header time is not the update's timestamp")
        if now_ns >= ctx.trusted_state_timestamp + ctx.trusting_period:
            raise InvalidClientMessage("the trusted state is outside the trusting period at host time")
        if ctx.untrusted_header_timestamp >= now_ns + ctx.clock_drift:
            raise InvalidClientMessage("the header time is beyond the allowed clock drift at host time")
        self._check_signatures(store, cs, bytes(msg.update.message), list(msg.update.signatures), now_ns, extra,
                               InvalidClientMessage)

    def check_for_misbehaviour(self, store: ClientStore, message: bytes) -> bool:
        msg = decode_client_message(message)
        up = _update_of(msg)
        post = height(up.post_height)
        existing = self._consensus(store, post)
        if existing is not None:
            return bytes(existing.state_id) != bytes(up.post_state_id) or existing.timestamp != up.timestamp
        return self._breaks_monotonic_time(store, post, int(up.timestamp))

    def update_state_on_misbehaviour(self, store: ClientStore, message: bytes) -> None:
        cs = self._client_state(store)
        cs.frozen = True
        store.set(CLIENT_STATE_KEY, encode(cs))

    def update_state(self, store: ClientStore, message: bytes) -> list[Height]:
        msg = decode_client_message(message)
        up = _update_of(msg)
        cs = self._client_state(store)
        for reg in msg.registrations:
            # verified by verify_client_message; the record is re-derived without the host clock
            report = parse_report(reg)
            key, rec = bytes(report.enclave_key), record_of(cs, report)
            known = self._record(store, key)
            if known is None or known.expires_at < rec.expires_at:
                store.set(enclave_key_key(key), encode(rec.to_pb()))
        post = height(up.post_height)
        cons = pb.ConsensusState(state_id=bytes(up.post_state_id), timestamp=up.timestamp)
        existing = self._consensus(store, post)
        if existing is not None:
            if existing == cons:
                return []
            raise InvalidClientMessage("a different consensus state is stored at this height (misbehaviour)")
        self._store_consensus(store, post, encode(cons))
        if post > height(cs.latest_height):
            cs.latest_height.CopyFrom(height_pb(post))
            store.set(CLIENT_STATE_KEY, encode(cs))
        return [post]

    # --- proofs -------------------------------------------------------------------------

    def _statement(self, store: ClientStore, at: Height, proof: bytes, prefix: bytes, now_ns: int, what: str,
                   parse: Callable[[bytes], _Statement]
                   ) -> tuple[pb.ClientState, pb.ConsensusState, pb.SignedMessage, _Statement]:
        """The signed statement ``proof`` carries, once the proof-height rules hold and the
        statement names ``prefix``; the rest of it (and its signatures) is the caller's to check."""
        cs, cons = self._proof_consensus(store, at, now_ns)
        try:
            signed = decode(pb.SignedMessage, proof, what)
            statement = parse(signed.message)
        except EncodingError as exc:
            raise InvalidProof(str(exc)) from None
        if bytes(statement.prefix) != bytes(prefix):
            raise InvalidProof(f"the enclave proved prefix {bytes(statement.prefix)!r}, not {bytes(prefix)!r}")
        return cs, cons, signed, statement

    def _verify(self, store: ClientStore, at: Height, proof: bytes, prefix: bytes, path: bytes, want: bytes,
                now_ns: int) -> None:
        cs, cons, signed, vm = self._statement(store, at, proof, prefix, now_ns, "proxy proof", parse_membership)
        if bytes(vm.path) != bytes(path):
            raise InvalidProof(f"the enclave proved path {bytes(vm.path)!r}, not {bytes(path)!r}")
        if height(vm.height) != at:
            raise InvalidProof(f"the enclave proved height {height(vm.height)}, not {at}")
        if bytes(vm.value_hash) != want:
            what = "absence" if not want else "this value"
            raise InvalidProof(f"the enclave's statement about {bytes(path)!r} is not {what}")
        if bytes(vm.state_id) != bytes(cons.state_id):
            raise InvalidProof(f"the enclave proved against state {bytes(vm.state_id).hex()}, not the one stored at {at}")
        self._check_signatures(store, cs, bytes(signed.message), list(signed.signatures), now_ns, {}, InvalidProof)

    def verify_membership(self, store: ClientStore, height: Height, proof: bytes, prefix: bytes, path: bytes,
                          value: bytes, now_ns: int) -> None:
        if not isinstance(value, bytes | bytearray):
            raise InvalidProof("value must be bytes")
        self._verify(store, height, proof, prefix, path, value_hash(bytes(value)), now_ns)

    def verify_non_membership(self, store: ClientStore, height: Height, proof: bytes, prefix: bytes, path: bytes,
                              now_ns: int) -> None:
        self._verify(store, height, proof, prefix, path, b"", now_ns)

    # --- multiproofs ----------------------------------------------------------------------

    def is_batch_proof(self, proof: bytes) -> bool:
        """A signed VerifyMembershipBatch: the ProxyMessage's first byte is field 3's tag."""
        signed = pb.SignedMessage()
        try:
            signed.ParseFromString(bytes(proof))
        except (DecodeError, TypeError):
            return False
        return signed.message[:1] == b"\x1a"

    def open_batch(self, store: ClientStore, height: Height, prefix: bytes, proof: bytes,
                   now_ns: int) -> ProxyBatchOpening:
        cs, cons, signed, batch = self._statement(store, height, proof, prefix, now_ns, "proxy multiproof",
                                                  parse_batch)
        if _height(batch.height) != height:
            raise InvalidProof(f"the enclave proved height {_height(batch.height)}, not {height}")
        if bytes(batch.state_id) != bytes(cons.state_id):
            raise InvalidProof(f"the enclave proved against state {bytes(batch.state_id).hex()}, not the one stored "
                               f"at {height}")
        paths = [bytes(e.path) for e in batch.entries]
        if not paths:
            raise InvalidProof("the enclave's batch statement has no entry")
        if any(a >= b for a, b in itertools.pairwise(paths)):
            raise InvalidProof("the batch statement's paths are not strictly ascending")
        self._check_signatures(store, cs, bytes(signed.message), list(signed.signatures), now_ns, {}, InvalidProof)
        return ProxyBatchOpening({bytes(e.path): bytes(e.value_hash) for e in batch.entries})


class ProxyBatchOpening:
    """A signed batch statement, checked once; lookups compare value hashes."""

    def __init__(self, entries: dict[bytes, bytes]) -> None:
        self.entries = entries

    def covers(self, path: bytes) -> bool:
        return bytes(path) in self.entries

    def _entry(self, path: bytes) -> bytes:
        got = self.entries.get(bytes(path))
        if got is None:
            raise InvalidProof(f"the enclave's batch statement does not cover {bytes(path)!r}")
        return got

    def verify_membership(self, path: bytes, value: bytes) -> None:
        if not isinstance(value, bytes | bytearray):
            raise InvalidProof("value must be bytes")
        got = self._entry(path)
        if not got or got != value_hash(bytes(value)):
            raise InvalidProof(f"the enclave's statement about {bytes(path)!r} is not this value")

    def verify_non_membership(self, path: bytes) -> None:
        if self._entry(path):
            raise InvalidProof(f"the enclave's statement about {bytes(path)!r} is not absence")

