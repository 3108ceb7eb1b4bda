"""The ICS-02 rules every light-client module here applies to its own stored state.

Each module (qbft, corda, proxy) keeps one client state and a consensus state per stored
height in its client store, each in its own protobuf encoding, and reads them by the same
rules: what its status is (frozen, or expired once the latest consensus state is a trusting
period old), that only an active client takes updates and proofs, which consensus state a
proof at a height is checked against, that every stored consensus state's height is indexed,
and how a new consensus state's time is compared with its stored neighbours'. Those rules are
security rules, so they stand here once instead of in copies that could drift apart; a
module supplies only how its encodings are read.

The rejections (exception class and text) are the ones the modules raised before they
shared this code: callers and the adversarial suite assert them exactly. So where a module's
check differs in order or in wording it keeps its own code: Corda checks the commitment
prefix before the proof height and words a missing consensus state its own way, and qbft
words ``timestamp_at_height``'s miss its own way; Corda's uninitialised client has its own
text too (``_NOT_INITIALISED``).
"""

from __future__ import annotations

import abc
from typing import Generic, Protocol, TypeVar

from lightclients.consensus_heights import breaks_monotonic_time, record_height
from lightclients.interface import (
    CLIENT_STATE_KEY,
    ClientError,
    ClientNotActive,
    ClientStore,
    ConsensusStateNotFound,
    Height,
    InvalidProof,
    Status,
    consensus_state_key,
)


class _TrustingPeriod(Protocol):
    """What the shared rules read off a client state (ns)."""

    @property
    def trusting_period(self) -> int: ...


class _Timestamped(Protocol):
    """What the shared rules read off a consensus state (Unix ns)."""

    @property
    def timestamp(self) -> int: ...


CS = TypeVar("CS", bound=_TrustingPeriod)
CONS = TypeVar("CONS", bound=_Timestamped)


class StoredStateClient(abc.ABC, Generic[CS, CONS]):
    """Status, the active gate, the proof-height gate and time monotonicity, over a
    module's own client state ``CS`` and consensus state ``CONS``."""

    # --- what each module supplies ------------------------------------------------------

    @abc.abstractmethod
    def _decode_client_state(self, raw: bytes) -> CS:
        """A stored client state's bytes, decoded as the module decodes them."""

    @abc.abstractmethod
    def _decode_consensus_state(self, raw: bytes) -> CONS:
        """A stored consensus state's bytes, decoded as the module decodes them."""

    @abc.abstractmethod
    def _is_frozen(self, cs: CS) -> bool:
        """Whether the client state says frozen (each encoding marks it its own way)."""

    @abc.abstractmethod
    def _latest(self, cs: CS) -> Height:
        """The client state's latest height."""

    # how a module words a read of a client that was never initialised (asserted exactly)
    _NOT_INITIALISED = "client state is not initialised"

    # --- the shared rules ---------------------------------------------------------------

    def _client_state(self, store: ClientStore) -> CS:
        """The stored client state; ClientError when the client is not initialised."""
        raw = store.get(CLIENT_STATE_KEY)
        if raw is None:
            raise ClientError(self._NOT_INITIALISED)
        return self._decode_client_state(raw)

    def _consensus(self, store: ClientStore, height: Height) -> CONS | None:
        raw = store.get(consensus_state_key(height))
        return None if raw is None else self._decode_consensus_state(raw)

    def _store_consensus(self, store: ClientStore, height: Height, consensus_state: bytes) -> None:
        """Store an encoded consensus state at ``height`` and index the height with it: the
        monotonic-time check finds a height's neighbours through that index, so it must
        list every height that holds a consensus state."""
        store.set(consensus_state_key(height), consensus_state)
        record_height(store, height)

    def status(self, store: ClientStore, now_ns: int) -> Status:
        raw = store.get(CLIENT_STATE_KEY)
        if raw is None:
            return Status.UNKNOWN
        cs = self._decode_client_state(raw)
        if self._is_frozen(cs):
            return Status.FROZEN
        latest = self._consensus(store, self._latest(cs))
        if latest is None:
            return Status.UNKNOWN
        if latest.timestamp + cs.trusting_period <= now_ns:
            return Status.EXPIRED
        return Status.ACTIVE

    def latest_height(self, store: ClientStore) -> Height:
        return self._latest(self._client_state(store))

    def _require_active(self, store: ClientStore, now_ns: int) -> CS:
        status = self.status(store, now_ns)
        if status is not Status.ACTIVE:
            raise ClientNotActive(f"client is {status.value}")
        return self._client_state(store)

    def _proof_consensus(self, store: ClientStore, height: Height, now_ns: int) -> tuple[CS, CONS]:
        """The client state and the consensus state a proof at ``height`` is checked
        against: the client must be active, ``height`` at most its latest height, and a
        consensus state stored at exactly ``height``."""
        cs = self._require_active(store, now_ns)
        if height > self._latest(cs):
            raise InvalidProof(f"proof height {height} is above the latest height")
        cons = self._consensus(store, height)
        if cons is None:
            raise ConsensusStateNotFound(f"no consensus state at proof height {height}")
        return cs, cons

    def _breaks_monotonic_time(self, store: ClientStore, height: Height, timestamp: int) -> bool:
        """True when a consensus state at ``height`` with ``timestamp`` would not sit
        strictly between the times of its stored neighbours (misbehaviour)."""

        def timestamp_at(h: Height) -> int | None:
            cons = self._consensus(store, h)
            return None if cons is None else int(cons.timestamp)

        return breaks_monotonic_time(store, height, timestamp, timestamp_at)
