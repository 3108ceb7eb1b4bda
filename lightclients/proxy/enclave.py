"""The proxy's enclave logic (SIMULATED enclave): hosts the direct light clients and signs
what they verified.

This is the code a real TEE would run; here it runs in an ordinary process (the proxy
service, ``relayer/proxy/service.py``), which is why everything it shows says "simulated".
It is sans-I/O: hosted clients live in ClientStores the caller provides (one per hosted
client), time is an argument, randomness is an injected source, and sealing returns bytes.

What it signs, and why it is safe to let an untrusted host feed it:
- UpdateState: the hosted client verified the header against its consensus state at the
  trusted height; the message names that state's id and the new one's, so the proxy client
  on chain accepts it only as a continuation of a state it already trusts. A host that lies
  about the stored state only changes prev_state_id, which the chain then refuses.
- The enclave has no trusted clock: ``now_ns`` only gates the hosted client's own checks.
  What time decides (trusted state still within its trusting period, header not from the
  future) goes into the message's context and is checked by the chain against its clock.
- VerifyMembership: the hosted client verified the proof at a height it trusts;
  VerifyMembershipBatch: the same for many paths from one direct multiproof.
- Aggregation: a chain of consecutive UpdateStates this enclave signed collapses into one,
  with the strictest context of the chain, so a host chain can follow several verification
  steps (e.g. a validator-set rotation that needs adjacent headers) with one message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kakehashi.proxy.v1 import proxy_pb2 as pb
from lightclients.crypto import CryptoError, eth_address, secp256k1_public_key
from lightclients.interface import (
    CLIENT_STATE_KEY,
    BatchProofModule,
    ClientError,
    ClientStore,
    Height,
    Status,
    consensus_state_key,
)
from lightclients.proxy.attestation import parse_report
from lightclients.proxy.hosted import Hosted, hosted
from lightclients.proxy.messages import (
    EncodingError,
    batch_message,
    decode,
    height,
    height_pb,
    hex_address,
    membership_message,
    message_digest,
    parse_update,
    sign_message,
    signer_of,
    state_id,
    update_message,
    value_hash,
)
from lightclients.proxy.sealing import NONCE_LEN, seal, unseal

CLIENT_TYPE_KEY = "enclave/clientType"

Randomness = Callable[[int], bytes]


class EnclaveError(Exception):
    """The enclave refused a request; the message names the rule."""


class MisbehaviourDetected(EnclaveError):
    """The header proves the counterparty equivocated: the hosted client is now frozen, and
    the caller must keep that store change (it is the one failure that writes)."""


@dataclass(frozen=True, slots=True)
class StateInfo:
    """A hosted client's state at one height, as a proxy client's initial state needs it."""

    client_type: str
    height: Height
    state_id: bytes
    timestamp: int
    trusting_period: int
    max_clock_drift: int


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed proxy message and the registrations of the keys that signed it."""

    message: pb.SignedMessage
    registrations: tuple[pb.EnclaveKeyRegistration, ...]


@dataclass(frozen=True, slots=True)
class _Key:
    secret: bytes
    registration: pb.EnclaveKeyRegistration
    attested_at: int


class Enclave:
    """One enclave instance: its code measurement, its keys, and the hosted clients' logic."""

    simulated = True

    def __init__(self, code_hash: bytes, randomness: Randomness) -> None:
        if len(code_hash) != 32:
            raise ValueError("code hash must be 32 bytes")
        self.code_hash = bytes(code_hash)
        self._random = randomness
        self._keys: dict[bytes, _Key] = {}
        self._unattested: dict[bytes, bytes] = {}

    # --- keys ---------------------------------------------------------------------------

    def new_key(self) -> bytes:
        """Generate a key inside the enclave; returns its address, to be attested next."""
        for _ in range(8):
            secret = self._random(32)
            try:
                address = eth_address(secp256k1_public_key(secret))
            except CryptoError:
                continue  # zero or not below the group order: draw again
            self._unattested[address] = secret
            return address
        raise EnclaveError("the randomness source keeps producing invalid secp256k1 keys")

    def attach(self, address: bytes, registration: pb.EnclaveKeyRegistration) -> None:
        """Accept the attestation of a key made by :meth:`new_key`; only then does it sign."""
        secret = self._unattested.get(bytes(address))
        if secret is None:
            raise EnclaveError(f"no unattested enclave key {hex_address(address)}")
        self._adopt(secret, registration)
        del self._unattested[bytes(address)]

    def _adopt(self, secret: bytes, registration: pb.EnclaveKeyRegistration) -> bytes:
        try:
            report = parse_report(registration)
        except ClientError as exc:
            raise EnclaveError(str(exc)) from None
        address = eth_address(secp256k1_public_key(secret))
        if bytes(report.enclave_key) != address:
            raise EnclaveError(f"the attestation names key {hex_address(report.enclave_key)}, not "
                               f"{hex_address(address)}")
        if bytes(report.code_hash) != self.code_hash:
            raise EnclaveError(f"the attestation is for code {bytes(report.code_hash).hex()}, this enclave runs "
                               f"{self.code_hash.hex()}")
        self._keys[address] = _Key(bytes(secret), registration, int(report.attested_at))
        return address

    def attested_keys(self) -> list[tuple[bytes, int, pb.EnclaveKeyRegistration]]:
        """(address, attestation time, registration) of every attested key, oldest first."""
        return sorted(((a, k.attested_at, k.registration) for a, k in self._keys.items()), key=lambda t: t[1])

    def seal_key(self, address: bytes, platform_secret: bytes) -> bytes:
        key = self._keys.get(bytes(address))
        if key is None:
            raise EnclaveError(f"no attested enclave key {hex_address(address)}")
        return seal(platform_secret, self.code_hash,
                    pb.SealedEnclaveKey(secret=key.secret, registration=key.registration), self._random(NONCE_LEN))

    def unseal_key(self, blob: bytes, platform_secret: bytes) -> bytes:
        """Load a key sealed by this code on this platform; returns its address."""
        sealed = unseal(platform_secret, self.code_hash, blob)
        return self._adopt(bytes(sealed.secret), sealed.registration)

    def _sign(self, message: bytes, signers: Sequence[bytes]) -> Signed:
        sigs: list[bytes] = []
        regs: list[pb.EnclaveKeyRegistration] = []
        for address in signers:
            key = self._keys.get(bytes(address))
            if key is None:
                raise EnclaveError(f"this enclave holds no attested key {hex_address(address)}")
            sigs.append(sign_message(key.secret, message))
            regs.append(key.registration)
        return Signed(pb.SignedMessage(message=message, signatures=sigs), tuple(regs))

    # --- hosted clients -----------------------------------------------------------------

    def _hosted(self, store: ClientStore) -> tuple[Hosted, bytes]:
        raw_type = store.get(CLIENT_TYPE_KEY)
        cs = store.get(CLIENT_STATE_KEY)
        if raw_type is None or cs is None:
            raise EnclaveError("no hosted client here")
        try:
            return hosted(raw_type.decode()), cs
        except ClientError as exc:
            raise EnclaveError(str(exc)) from None

    def _state_id(self, h: Hosted, cs: bytes, store: ClientStore, at: Height) -> bytes:
        cons = store.get(consensus_state_key(at))
        if cons is None:
            raise EnclaveError(f"the hosted client has no consensus state at {at}")
        return state_id(h.client_type, h.params(cs), cons, h.block_id(store, at))

    def client_type(self, store: ClientStore) -> str:
        return self._hosted(store)[0].client_type

    def same_parameters(self, store: ClientStore, client_type: str, client_state: bytes) -> bool:
        """Whether a new client with these inputs would be this hosted client's twin."""
        h, cs = self._hosted(store)
        try:
            return h.client_type == client_type and h.params(cs) == h.params(client_state)
        except ClientError:
            return False

    def status(self, store: ClientStore, now_ns: int) -> Status:
        h, _ = self._hosted(store)
        return h.module.status(store, now_ns)

    def latest_height(self, store: ClientStore) -> Height:
        h, _ = self._hosted(store)
        return h.module.latest_height(store)

    def state(self, store: ClientStore, at: Height | None = None) -> StateInfo:
        """The hosted client's state at ``at`` (default: its latest height)."""
        h, cs = self._hosted(store)
        at = at or h.module.latest_height(store)
        tp, drift = h.periods(cs)
        return StateInfo(h.client_type, at, self._state_id(h, cs, store, at), h.module.timestamp_at_height(store, at),
                         tp, drift)

    def create_client(self, store: ClientStore, client_type: str, client_state: bytes, consensus_state: bytes,
                      now_ns: int) -> StateInfo:
        """Initialise a hosted client in an empty store, trusting the given state as a
        direct client's creator does."""
        try:
            h = hosted(client_type)
            h.module.initialize(store, client_state, consensus_state, now_ns)
        except ClientError as exc:
            raise EnclaveError(f"cannot create a hosted {client_type} client: {exc}") from None
        store.set(CLIENT_TYPE_KEY, client_type.encode())
        return self.state(store)

    def update_client(self, store: ClientStore, message: bytes, now_ns: int, signers: Sequence[bytes]) -> Signed:
        """Verify and apply a header; an UpdateState signed by ``signers`` (unsigned if none)."""
        h, cs = self._hosted(store)
        try:
            trusted, target = h.heights(store, message)
        except ClientError as exc:
            raise EnclaveError(str(exc)) from None
        prev_id = self._state_id(h, cs, store, trusted)
        try:
            h.module.verify_client_message(store, message, now_ns)
            if h.module.check_for_misbehaviour(store, message):
                h.module.update_state_on_misbehaviour(store, message)
                raise MisbehaviourDetected(
                    f"the header at {target} conflicts with what the hosted {h.client_type} client trusts: "
                    "the counterparty equivocated; the hosted client is frozen")
            h.module.update_state(store, message)
        except ClientError as exc:
            raise EnclaveError(f"the hosted {h.client_type} client rejected the header: {exc}") from None
        cs = store.get(CLIENT_STATE_KEY) or cs
        tp, drift = h.periods(cs)
        timestamp = h.module.timestamp_at_height(store, target)
        update = pb.UpdateState(
            prev_height=height_pb(trusted), prev_state_id=prev_id, post_height=height_pb(target),
            post_state_id=self._state_id(h, cs, store, target), timestamp=timestamp,
            context=pb.TrustingPeriodContext(trusting_period=tp, clock_drift=drift,
                                             untrusted_header_timestamp=timestamp,
                                             trusted_state_timestamp=h.module.timestamp_at_height(store, trusted)))
        return self._sign(update_message(update), signers)

    def _membership(self, store: ClientStore, at: Height, prefix: bytes, path: bytes, value: bytes | None,
                    proof: bytes, now_ns: int, signers: Sequence[bytes]) -> Signed:
        if not signers:
            raise EnclaveError("name at least one enclave key to sign the statement")
        h, cs = self._hosted(store)
        try:
            if value is None:
                h.module.verify_non_membership(store, at, proof, prefix, path, now_ns)
            else:
                h.module.verify_membership(store, at, proof, prefix, path, value, now_ns)
        except ClientError as exc:
            raise EnclaveError(f"the hosted {h.client_type} client rejected the proof of {path!r} at {at}: {exc}") \
                from None
        vm = pb.VerifyMembership(prefix=prefix, path=path, value_hash=b"" if value is None else value_hash(value),
                                 height=height_pb(at), state_id=self._state_id(h, cs, store, at))
        return self._sign(membership_message(vm), signers)

    def verify_membership(self, store: ClientStore, at: Height, prefix: bytes, path: bytes, value: bytes,
                          proof: bytes, now_ns: int, signers: Sequence[bytes]) -> Signed:
        return self._membership(store, at, prefix, path, bytes(value), proof, now_ns, signers)

    def verify_non_membership(self, store: ClientStore, at: Height, prefix: bytes, path: bytes, proof: bytes,
                              now_ns: int, signers: Sequence[bytes]) -> Signed:
        return self._membership(store, at, prefix, path, None, proof, now_ns, signers)

    def verify_batch(self, store: ClientStore, at: Height, prefix: bytes, items: Sequence[tuple[bytes, bytes | None]],
                     multiproof: bytes, now_ns: int, signers: Sequence[bytes]) -> Signed:
        """One statement for many (path, value or None for absence) pairs, from the hosted
        client's own multiproof opened once (the direct module's ``open_batch``)."""
        if not signers:
            raise EnclaveError("name at least one enclave key to sign the statement")
        if not items:
            raise EnclaveError("a batch statement needs at least one path")
        h, cs = self._hosted(store)
        wanted: dict[bytes, bytes | None] = {}
        for path, value in items:
            path = bytes(path)
            if path in wanted and wanted[path] != value:
                raise EnclaveError(f"the batch names {path!r} twice with different values")
            wanted[path] = None if value is None else bytes(value)
        module = h.module
        if not isinstance(module, BatchProofModule) or not module.is_batch_proof(multiproof):
            raise EnclaveError(f"the hosted {h.client_type} client takes no multiproof in this form")
        try:
            opening = module.open_batch(store, at, prefix, multiproof, now_ns)
            for path, value in wanted.items():
                if not opening.covers(path):
                    raise EnclaveError(f"the multiproof does not cover {path!r}")
                if value is None:
                    opening.verify_non_membership(path)
                else:
                    opening.verify_membership(path, value)
        except ClientError as exc:
            raise EnclaveError(f"the hosted {h.client_type} client rejected the multiproof at {at}: {exc}") from None
        batch = pb.VerifyMembershipBatch(
            prefix=prefix, height=height_pb(at), state_id=self._state_id(h, cs, store, at),
            entries=[pb.MembershipEntry(path=p, value_hash=b"" if v is None else value_hash(v))
                     for p, v in sorted(wanted.items())])
        return self._sign(batch_message(batch), signers)

    # --- aggregation --------------------------------------------------------------------

    def aggregate(self, updates: Sequence[pb.SignedMessage], signers: Sequence[bytes]) -> Signed:
        """One UpdateState for a chain of consecutive ones, each signed by a key of this enclave.

        The merged context is the strictest of the chain: the earliest trusted-state time
        (expires first) and the latest header time (furthest in the future), under one
        trusting period and drift, so if the chain accepts the merge it would have accepted
        every step.
        """
        if len(updates) < 2:
            raise EnclaveError("aggregation takes at least two updates")
        steps: list[pb.UpdateState] = []
        for i, signed in enumerate(updates):
            digest = message_digest(bytes(signed.message))
            if not any(signer_of(digest, sig) in self._keys for sig in signed.signatures):
                raise EnclaveError(f"update {i} is not signed by a key of this enclave")
            try:
                steps.append(parse_update(bytes(signed.message)))
            except EncodingError as exc:
                raise EnclaveError(f"update {i}: {exc}") from None
        first, last = steps[0], steps[-1]
        for i in range(1, len(steps)):
            a, b = steps[i - 1], steps[i]
            if height(b.prev_height) != height(a.post_height) or b.prev_state_id != a.post_state_id:
                raise EnclaveError(f"update {i} does not continue update {i - 1} (state-id chain broken)")
            if (b.context.trusting_period, b.context.clock_drift) != (a.context.trusting_period,
                                                                       a.context.clock_drift):
                raise EnclaveError(f"update {i} has another trusting period or clock drift than update {i - 1}")
        merged = pb.UpdateState(
            prev_height=first.prev_height, prev_state_id=first.prev_state_id, post_height=last.post_height,
            post_state_id=last.post_state_id, timestamp=last.timestamp,
            context=pb.TrustingPeriodContext(
                trusting_period=first.context.trusting_period, clock_drift=first.context.clock_drift,
                untrusted_header_timestamp=max(s.context.untrusted_header_timestamp for s in steps),
                trusted_state_timestamp=min(s.context.trusted_state_timestamp for s in steps)))
        return self._sign(update_message(merged), signers)


def decode_signed(raw: bytes) -> pb.SignedMessage:
    try:
        return decode(pb.SignedMessage, raw, "signed proxy message")
    except EncodingError as exc:
        raise EnclaveError(str(exc)) from None
