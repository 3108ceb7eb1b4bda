"""The light-client interface (ICS-02 shaped) that every client in this project implements.

A light-client *module* is stateless: one instance per client type, and all of a client's
state lives in a :class:`ClientStore`, the host's key space under ``clients/{client_id}/``.
That is what lets the same module run inside a chain's IBC handler (store = the host's
provable store), inside the relayer (store = memory, to pre-check and to watch for
misbehaviour) and inside the proxy enclave, with identical results.

Conventions every module follows:
- Keys in the client store are ICS-24 suffixes: ``clientState`` and
  ``consensusStates/{revision}-{height}``; a module may add its own metadata keys under
  ``meta/``.
- Client states, consensus states and client messages cross this interface as the
  module's own deterministic protobuf encodings (bytes). The IBC core never looks inside.
- Time is an argument (``now_ns``, Unix nanoseconds, the host's block time), never read
  from a clock, so expiry and drift are testable in simulated time.
- Failures raise a subclass of :class:`ClientError` whose message names the rule that
  failed. A failed call leaves the store untouched (modules validate before they write).
- A module may also take multiproofs (:class:`BatchProofModule`): several paths proven at
  one height by one proof whose shared nodes are hashed once. ``open_batch`` verifies it
  against the consensus state once and returns a :class:`BatchOpening` that answers each
  path by lookup. The opening holds no store reference: status (frozen, expired) is the
  caller's to re-check before each use, as the IBC core does.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, order=True, slots=True)
class Height:
    """IBC height: compared by revision number first, then height within the revision."""

    revision_number: int
    revision_height: int

    def __post_init__(self) -> None:
        if not (0 <= self.revision_number < 2**64 and 0 <= self.revision_height < 2**64):
            raise ValueError(f"height out of uint64 range: {self.revision_number}-{self.revision_height}")

    @classmethod
    def zero(cls) -> Height:
        return cls(0, 0)

    def is_zero(self) -> bool:
        return self.revision_number == 0 and self.revision_height == 0

    def increment(self) -> Height:
        return Height(self.revision_number, self.revision_height + 1)

    def __str__(self) -> str:
        return f"{self.revision_number}-{self.revision_height}"

    @classmethod
    def parse(cls, text: str) -> Height:
        rev, sep, h = text.partition("-")
        if not sep or not rev.isdigit() or not h.isdigit():
            raise ValueError(f"height must look like '<revision>-<height>', got {text!r}")
        return cls(int(rev), int(h))


class Status(enum.Enum):
    ACTIVE = "Active"
    FROZEN = "Frozen"
    EXPIRED = "Expired"
    UNKNOWN = "Unknown"


class ClientError(Exception):
    """A client message or proof was rejected; the message names the failed rule."""


class InvalidClientMessage(ClientError):
    """A header or misbehaviour failed verification."""


class InvalidProof(ClientError):
    """A membership or non-membership proof does not verify."""


class ClientNotActive(ClientError):
    """The client is frozen or expired and refuses updates and proofs."""


class ConsensusStateNotFound(ClientError):
    """No consensus state is stored at exactly the requested height."""


class ClientStore(Protocol):
    """A client's own key space inside the host store."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryClientStore:
    """A dict-backed client store, for clients run off-chain (relayer, proxy) and tests."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def set(self, key: str, value: bytes) -> None:
        self.data[key] = bytes(value)

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[str, bytes]]:
        return iter(sorted(self.data.items()))


CLIENT_STATE_KEY = "clientState"


def consensus_state_key(height: Height) -> str:
    return f"consensusStates/{height}"


@runtime_checkable
class LightClientModule(Protocol):
    """ICS-02 light-client module. See the module docstring for the conventions."""

    client_type: str

    def initialize(
        self, store: ClientStore, client_state: bytes, consensus_state: bytes, now_ns: int
    ) -> None:
        """Validate and store the initial client and consensus state."""

    def verify_client_message(self, store: ClientStore, message: bytes, now_ns: int) -> None:
        """Raise InvalidClientMessage unless the header or misbehaviour is valid."""

    def check_for_misbehaviour(self, store: ClientStore, message: bytes) -> bool:
        """True when a verified message proves misbehaviour (conflict or time going back)."""

    def update_state_on_misbehaviour(self, store: ClientStore, message: bytes) -> None:
        """Freeze the client."""

    def update_state(self, store: ClientStore, message: bytes) -> list[Height]:
        """Store the new consensus state; return the heights updated ([] for a duplicate)."""

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
        """Raise InvalidProof unless ``value`` is committed at ``prefix``/``path`` at ``height``."""

    def verify_non_membership(
        self,
        store: ClientStore,
        height: Height,
        proof: bytes,
        prefix: bytes,
        path: bytes,
        now_ns: int,
    ) -> None:
        """Raise InvalidProof unless nothing is committed at ``prefix``/``path`` at ``height``."""

    def status(self, store: ClientStore, now_ns: int) -> Status: ...

    def latest_height(self, store: ClientStore) -> Height: ...

    def timestamp_at_height(self, store: ClientStore, height: Height) -> int:
        """Unix-ns timestamp of the consensus state at exactly ``height``."""


class BatchOpening(Protocol):
    """A multiproof verified once against the consensus state at one height and prefix.

    Lookups raise :class:`InvalidProof` exactly where the module's single-proof
    ``verify_membership`` / ``verify_non_membership`` would for the same path and value,
    plus when the path is not one the multiproof covers.
    """

    def covers(self, path: bytes) -> bool:
        """True when the multiproof proves something (presence or absence) about ``path``."""

    def verify_membership(self, path: bytes, value: bytes) -> None: ...

    def verify_non_membership(self, path: bytes) -> None: ...


@runtime_checkable
class BatchProofModule(Protocol):
    """A light-client module whose proof encoding has a multiproof form."""

    def is_batch_proof(self, proof: bytes) -> bool:
        """Whether ``proof`` is in the module's multiproof form rather than its single form.

        A look at the encoding only (nothing is verified); a proof that claims to be a
        multiproof but is malformed is rejected by ``open_batch``.
        """

    def open_batch(
        self, store: ClientStore, height: Height, prefix: bytes, proof: bytes, now_ns: int
    ) -> BatchOpening:
        """Verify a multiproof against the consensus state at exactly ``height``.

        The same status, height and prefix checks as ``verify_membership`` run first and
        raise the same errors; a multiproof that does not verify raises InvalidProof.
        """
