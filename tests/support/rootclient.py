"""A TEST-ONLY light client: trusts whatever roots the test hands it, verifies real proofs.

It stands in for the qbft/corda clients in the conformance suite. Headers are not signed (the
test is the oracle for what the other chain committed), but every membership and absence proof
is checked against the root with the real ICS-23 verifier over the other host's real sparse
Merkle tree, so the IBC core cannot pass a test with a wrong path or value.
Encodings are compact sorted JSON: this client never leaves the tests.
"""

from __future__ import annotations

import json
from typing import Any

from lightclients import ics23
from lightclients.corda.client import SmtOpening
from lightclients.interface import (
    CLIENT_STATE_KEY,
    BatchOpening,
    ClientNotActive,
    ClientStore,
    ConsensusStateNotFound,
    Height,
    InvalidClientMessage,
    InvalidProof,
    Status,
    consensus_state_key,
)

CLIENT_TYPE = "testroot"


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidClientMessage(f"{what} is not JSON") from exc
    if not isinstance(doc, dict):
        raise InvalidClientMessage(f"{what} must be an object")
    return doc


def client_state(chain_id: str, latest: Height, trusting_period_ns: int, frozen: bool = False) -> bytes:
    return _dump({"chain_id": chain_id, "latest": str(latest), "frozen": frozen,
                  "trusting_period_ns": trusting_period_ns})


def consensus_state(timestamp: int, root: bytes) -> bytes:
    return _dump({"timestamp": timestamp, "root": root.hex()})


def header(height: Height, timestamp: int, root: bytes) -> bytes:
    return _dump({"height": str(height), "timestamp": timestamp, "root": root.hex()})


class RootClient:
    client_type = CLIENT_TYPE

    def __init__(self, verify_proofs: bool = True) -> None:
        # verify_proofs=False exists for the benchmark only (host cost without proofs).
        self.verify_proofs = verify_proofs

    # --- state helpers ---------------------------------------------------------------------

    def _state(self, store: ClientStore) -> dict[str, Any]:
        raw = store.get(CLIENT_STATE_KEY)
        if raw is None:
            raise ClientNotActive("client state missing")
        return _load(raw, "client state")

    def _consensus(self, store: ClientStore, height: Height) -> dict[str, Any]:
        raw = store.get(consensus_state_key(height))
        if raw is None:
            raise ConsensusStateNotFound(f"no consensus state at {height}")
        return _load(raw, "consensus state")

    @staticmethod
    def _header(message: bytes) -> tuple[Height, int, bytes]:
        doc = _load(message, "header")
        try:
            height = Height.parse(doc["height"])
            timestamp = int(doc["timestamp"])
            root = bytes.fromhex(doc["root"])
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidClientMessage(f"malformed header: {exc}") from exc
        if height.is_zero() or timestamp <= 0 or len(root) != 32:
            raise InvalidClientMessage("header needs a non-zero height, positive time, 32-byte root")
        return height, timestamp, root

    # --- LightClientModule -------------------------------------------------------------------

    def initialize(self, store: ClientStore, client_state: bytes, consensus_state: bytes, now_ns: int) -> None:
        state = _load(client_state, "client state")
        cons = _load(consensus_state, "consensus state")
        try:
            latest = Height.parse(state["latest"])
            period = int(state["trusting_period_ns"])
            root = bytes.fromhex(cons["root"])
            ts = int(cons["timestamp"])
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidClientMessage(f"bad client parameters: {exc}") from exc
        if not state.get("chain_id") or latest.is_zero() or period <= 0 or len(root) != 32 or ts <= 0:
            raise InvalidClientMessage("chain_id, latest height, trusting period, root and time are required")
        if state.get("frozen"):
            raise InvalidClientMessage("a new client cannot start frozen")
        store.set(CLIENT_STATE_KEY, client_state)
        store.set(consensus_state_key(latest), consensus_state)

    def verify_client_message(self, store: ClientStore, message: bytes, now_ns: int) -> None:
        if self.status(store, now_ns) is not Status.ACTIVE:
            raise ClientNotActive("client is not active")
        self._header(message)

    def check_for_misbehaviour(self, store: ClientStore, message: bytes) -> bool:
        height, timestamp, root = self._header(message)
        raw = store.get(consensus_state_key(height))
        if raw is None:
            return False
        cons = _load(raw, "consensus state")
        return bool(cons["root"] != root.hex() or cons["timestamp"] != timestamp)

    def update_state_on_misbehaviour(self, store: ClientStore, message: bytes) -> None:
        state = self._state(store)
        state["frozen"] = True
        store.set(CLIENT_STATE_KEY, _dump(state))

    def update_state(self, store: ClientStore, message: bytes) -> list[Height]:
        height, timestamp, root = self._header(message)
        if store.get(consensus_state_key(height)) is not None:
            return []
        store.set(consensus_state_key(height), consensus_state(timestamp, root))
        state = self._state(store)
        if height > Height.parse(state["latest"]):
            state["latest"] = str(height)
            store.set(CLIENT_STATE_KEY, _dump(state))
        return [height]

    def _root_for_proof(self, store: ClientStore, height: Height, now_ns: int) -> bytes:
        if self.status(store, now_ns) is not Status.ACTIVE:
            raise ClientNotActive("client is not active")
        if height > self.latest_height(store):
            raise InvalidProof(f"proof height {height} is above the latest height")
        return bytes.fromhex(self._consensus(store, height)["root"])

    def verify_membership(self, store: ClientStore, height: Height, proof: bytes, prefix: bytes,
                          path: bytes, value: bytes, now_ns: int) -> None:
        root = self._root_for_proof(store, height, now_ns)
        if not self.verify_proofs:
            return
        try:
            decoded = ics23.decode_commitment_proof(proof)
        except ics23.Ics23Error as exc:
            raise InvalidProof(f"malformed proof: {exc}") from exc
        ok = ics23.verify_membership(ics23.SMT_SPEC, root, decoded, path, value)
        if not ok:
            raise InvalidProof(f"membership proof of {path!r} does not verify")

    def verify_non_membership(self, store: ClientStore, height: Height, proof: bytes, prefix: bytes,
                              path: bytes, now_ns: int) -> None:
        root = self._root_for_proof(store, height, now_ns)
        if not self.verify_proofs:
            return
        try:
            decoded = ics23.decode_commitment_proof(proof)
        except ics23.Ics23Error as exc:
            raise InvalidProof(f"malformed proof: {exc}") from exc
        ok = ics23.verify_non_membership(ics23.SMT_SPEC, root, decoded, path)
        if not ok:
            raise InvalidProof(f"absence proof of {path!r} does not verify")

    def is_batch_proof(self, proof: bytes) -> bool:
        return proof[:1] in (b"\x1a", b"\x22")  # CommitmentProof.batch / .compressed

    def open_batch(self, store: ClientStore, height: Height, prefix: bytes, proof: bytes,
                   now_ns: int) -> BatchOpening:
        root = self._root_for_proof(store, height, now_ns)
        try:
            return SmtOpening(ics23.verify_batch(ics23.SMT_SPEC, root, proof))
        except ics23.Ics23Error as exc:
            raise InvalidProof(f"batch proof does not verify: {exc}") from exc

    def status(self, store: ClientStore, now_ns: int) -> Status:
        state = self._state(store)
        if state.get("frozen"):
            return Status.FROZEN
        latest = Height.parse(state["latest"])
        ts = int(self._consensus(store, latest)["timestamp"])
        if now_ns - ts >= int(state["trusting_period_ns"]):
            return Status.EXPIRED
        return Status.ACTIVE

    def latest_height(self, store: ClientStore) -> Height:
        return Height.parse(self._state(store)["latest"])

    def timestamp_at_height(self, store: ClientStore, height: Height) -> int:
        return int(self._consensus(store, height)["timestamp"])
