"""A real test chain whose counterparty tracks it through the proxy client (LCP-style).

``ProxiedHost`` wraps a real host (EVM or Corda) and changes only what its counterparty's
client sees: headers become enclave-signed UpdateStates, proofs become enclave-signed
VerifyMembership statements, client creation yields a ``12-proxy`` client state. Behind it
runs the real (SIMULATED) enclave logic of ``lightclients/proxy`` with a hosted direct
client fed from the inner host's real headers and proofs, n operators each holding an
enclave key attested by the simulated authority. Everything else (txs, blocks, stores,
events) is the inner host's, so the conformance suite runs over it unchanged.

Two things only a test needs: ``conflicting_header`` makes a second enclave state that was
fed the inner host's equivocating header before the genuine one (what an honest enclave
signs when the chain itself forked), and the knobs (``signing``, ``operators``) let the unit
tests produce messages signed by any subset of keys.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from kakehashi.proxy.v1 import proxy_pb2 as pb
from lightclients.consensus_heights import stored_heights
from lightclients.crypto import eth_address, secp256k1_public_key, sha256
from lightclients.interface import Height, MemoryClientStore, consensus_state_key
from lightclients.proxy.attestation import SimulatedAuthority, operator_sign, registration
from lightclients.proxy.client import CLIENT_TYPE
from lightclients.proxy.enclave import Enclave, EnclaveError, Signed
from lightclients.proxy.messages import encode, height_pb
from tests.support.basehost import ChainHost

CODE_HASH = sha256(b"kakehashi test enclave bundle")
AUTHORITY_SECRET = sha256(b"kakehashi test attestation authority")
KEY_EXPIRATION_NS = 10 * 24 * 3600 * 10**9


def seeded(label: str) -> Callable[[int], bytes]:
    """A deterministic randomness source (sans-I/O code never draws unseeded randomness)."""
    counter = [0]

    def draw(n: int) -> bytes:
        out = b""
        while len(out) < n:
            counter[0] += 1
            out += hashlib.sha256(f"{label}/{counter[0]}".encode()).digest()
        return out[:n]

    return draw


class Operator:
    """One operator of the k-of-n set: its key and its enclave (each runs its own)."""

    def __init__(self, label: str, code_hash: bytes = CODE_HASH) -> None:
        self.secret = sha256(f"operator/{label}".encode())
        self.address = eth_address(secp256k1_public_key(self.secret))
        self.enclave = Enclave(code_hash, seeded(f"enclave/{label}"))
        self.elc = MemoryClientStore()
        self.snapshots: list[MemoryClientStore] = []  # the hosted client before each update

    def update(self, message: bytes, now_ns: int, keys: Sequence[bytes]) -> Signed:
        self.snapshots.append(copy.deepcopy(self.elc))
        return self.enclave.update_client(self.elc, message, now_ns, keys)

    def new_key(self, authority: SimulatedAuthority, attested_at: int) -> bytes:
        """A fresh enclave key of this operator's enclave, attested at ``attested_at``."""
        address = self.enclave.new_key()
        report, sig = authority.attest(self.enclave.code_hash, address, self.address, attested_at)
        self.enclave.attach(address, registration(report, sig, operator_sign(self.secret, report)))
        return address


class ProxiedHost:
    """The inner host, seen by its counterparty through a proxy client (see module doc)."""

    client_type = CLIENT_TYPE

    def __init__(self, inner: ChainHost, operators: int = 1, threshold: int = 1,
                 key_expiration_ns: int = KEY_EXPIRATION_NS) -> None:
        self.inner = inner
        self.authority = SimulatedAuthority(AUTHORITY_SECRET)
        ops = [Operator(f"{inner.chain_id}/{i}") for i in range(operators)]
        self.operators = sorted(ops, key=lambda o: o.address)
        self.threshold = threshold
        self.key_expiration_ns = key_expiration_ns
        self.keys: dict[bytes, bytes] = {}  # operator address -> its current signing key
        for op in self.operators:
            self.keys[op.address] = op.new_key(self.authority, inner.now_ns)
        self.signing: Sequence[Operator] | None = None  # None = every operator signs
        self.allow_simulated = True
        self._created = False
        self.trusting_period_ns = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    # --- the enclave side -----------------------------------------------------------------

    def _signers(self) -> list[Operator]:
        return list(self.operators if self.signing is None else self.signing)

    def _sign_all(self, run: Callable[[Operator, list[bytes]], Signed]) -> Signed:
        """Run one request on every signing operator's enclave; the messages must agree."""
        outs = [run(op, [self.keys[op.address]]) for op in self._signers()]
        message = outs[0].message.message
        assert all(o.message.message == message for o in outs), "enclaves disagree on the message"
        sigs = [s for o in outs for s in o.message.signatures]
        regs = tuple(r for o in outs for r in o.registrations)
        return Signed(pb.SignedMessage(message=message, signatures=sigs), regs)

    def _ensure(self, op: Operator, at: Height) -> None:
        """Have op's hosted client trust ``at`` (an unsigned update from the best height below)."""
        if op.elc.get(consensus_state_key(at)) is not None:
            return
        below = [h for h in stored_heights(op.elc) if h < at]
        if not below:
            return
        op.update(self.inner.header(at, max(below)), self.inner.now_ns, [])

    def _create(self, trusting_period_ns: int, max_clock_drift_ns: int) -> None:
        cs = self.inner.client_state(trusting_period_ns, max_clock_drift_ns)
        cons = self.inner.consensus_state()
        for op in self.operators:
            op.elc = MemoryClientStore()
            op.enclave.create_client(op.elc, self.inner.client_type, cs, cons, self.inner.now_ns)
        self._created = True

    def client_state(self, trusting_period_ns: int, max_clock_drift_ns: int) -> bytes:
        if trusting_period_ns and not self._created:
            self._create(trusting_period_ns, max_clock_drift_ns)
        if self._created:
            for op in self.operators:
                self._ensure(op, self.inner.height)
        latest = self.inner.height
        return encode(pb.ClientState(
            code_hash=CODE_HASH, authority=self.authority.address, allow_simulated=self.allow_simulated,
            key_expiration=self.key_expiration_ns, operators=[op.address for op in self.operators],
            operators_threshold=self.threshold, trusting_period=trusting_period_ns, latest_height=height_pb(latest),
            proxied_client_type=self.inner.client_type))

    def consensus_state(self) -> bytes:
        op = self.operators[0]
        self._ensure(op, self.inner.height)
        info = op.enclave.state(op.elc, self.inner.height)
        return encode(pb.ConsensusState(state_id=info.state_id, timestamp=info.timestamp))

    def signed_update(self, height: Height | None = None, trusted: Height | None = None) -> Signed:
        h = height or self.inner.height
        t = trusted or Height(h.revision_number, 1)
        direct = self.inner.header(h, t)
        return self._sign_all(lambda op, keys: op.update(direct, self.inner.now_ns, keys))

    @staticmethod
    def client_message(signed: Signed) -> bytes:
        return encode(pb.ClientMessage(update=signed.message, registrations=list(signed.registrations)))

    def header(self, height: Height | None = None, trusted: Height | None = None) -> bytes:
        try:
            return self.client_message(self.signed_update(height, trusted))
        except EnclaveError:
            # An enclave that refuses the header (it does not follow from what the hosted client
            # trusts) leaves the relayer nothing valid: the counterparty gets the raw header,
            # which a proxy client refuses as it must.
            return self.inner.header(height, trusted)

    def _forked(self, height: Height, trusted: Height) -> Signed:
        """What an honest enclave signs when fed the inner host's equivocating header first."""
        forged = self.inner.conflicting_header(height, trusted)

        def run(op: Operator, keys: list[bytes]) -> Signed:
            # the hosted client as it was before it first learned ``height``
            before = [s for s in op.snapshots if height not in stored_heights(s) and trusted in stored_heights(s)]
            fork = copy.deepcopy(before[-1])
            return op.enclave.update_client(fork, forged, self.inner.now_ns, keys)

        return self._sign_all(run)

    def conflicting_header(self, height: Height, trusted: Height) -> bytes:
        return self.client_message(self._forked(height, trusted))

    def misbehaviour(self, height: Height, trusted: Height) -> bytes:
        return self.client_message(self._forked(height, trusted))

    def signed_proof(self, path: bytes, height: Height | None = None) -> Signed:
        h = height or self.inner.height
        direct = self.inner.prove(path, h)
        value = self.inner.store.get(path)

        def run(op: Operator, keys: list[bytes]) -> Signed:
            self._ensure(op, h)
            if value is None:
                return op.enclave.verify_non_membership(op.elc, h, self.inner.prefix, path, direct,
                                                        self.inner.now_ns, keys)
            return op.enclave.verify_membership(op.elc, h, self.inner.prefix, path, value, direct,
                                                self.inner.now_ns, keys)

        return self._sign_all(run)

    def prove_many(self, paths: list[bytes], height: Height | None = None) -> bytes:
        """The proxy's multiproof form: one enclave statement over the inner host's multiproof."""
        h = height or self.inner.height
        direct = self.inner.prove_many(paths, h)
        items = [(p, self.inner.store.get(p)) for p in paths]

        def run(op: Operator, keys: list[bytes]) -> Signed:
            self._ensure(op, h)
            return op.enclave.verify_batch(op.elc, h, self.inner.prefix, items, direct, self.inner.now_ns, keys)

        try:
            return encode(self._sign_all(run).message)
        except EnclaveError:
            return direct  # as in prove(): the counterparty must refuse it

    def prove(self, path: bytes, height: Height | None = None) -> bytes:
        try:
            return encode(self.signed_proof(path, height).message)
        except EnclaveError:
            # The enclave refuses to vouch for what the chain does not show (a value changed
            # since that height, a height it cannot reach): the counterparty then gets the
            # raw direct proof, which a proxy client refuses as it must.
            return self.inner.prove(path, height)
