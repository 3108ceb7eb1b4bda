"""The store seam between the IBC core and its host, and the write buffers behind atomicity.

A host hands the core any :class:`IbcStore` (its provable store over ICS-24 paths). The
core never writes to it directly: a transaction runs against an :class:`Overlay` that is
flushed only when every message succeeded, and an app's packet callback runs in a nested
overlay so that an error acknowledgement can drop the app's writes but keep the receipt.
"""

from __future__ import annotations

from typing import Protocol

from google.protobuf.message import DecodeError

from chains.ibc.errors import InvalidMessage
from kakehashi.ibc.v1 import client_pb2


class IbcStore(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def set(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


class MemoryStore:
    """A dict store for hosts without a provable store (unit tests, relayer simulations)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.data[bytes(key)] = bytes(value)

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)


class Overlay:
    """Buffers writes over a parent store; ``flush`` applies them in key order.

    Key order keeps the parent's write sequence independent of message order, which matters
    for hosts whose store is sensitive to insertion order (it should not be, but it is cheap).
    """

    def __init__(self, parent: IbcStore) -> None:
        self.parent = parent
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.parent.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.writes[bytes(key)] = bytes(value)

    def delete(self, key: bytes) -> None:
        self.writes[bytes(key)] = None

    def flush(self) -> None:
        for key in sorted(self.writes):
            value = self.writes[key]
            if value is None:
                self.parent.delete(key)
            else:
                self.parent.set(key, value)
        self.writes.clear()


class ClientStoreView:
    """The ``clients/{id}/`` key space of a host store, as a light-client module sees it."""

    def __init__(self, store: IbcStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    def get(self, key: str) -> bytes | None:
        return self.store.get((self.prefix + key).encode())

    def set(self, key: str, value: bytes) -> None:
        self.store.set((self.prefix + key).encode(), value)

    def delete(self, key: str) -> None:
        self.store.delete((self.prefix + key).encode())


def get_sequence(store: IbcStore, key: bytes, default: int = 0) -> int:
    raw = store.get(key)
    if raw is None:
        return default
    msg = client_pb2.NextSequence()
    try:
        msg.ParseFromString(raw)
    except DecodeError as exc:  # only a corrupt host store gets here
        raise InvalidMessage(f"stored sequence at {key.decode()} is not a NextSequence") from exc
    return int(msg.sequence)


def encode_sequence(value: int) -> bytes:
    return client_pb2.NextSequence(sequence=value).SerializeToString(deterministic=True)


def set_sequence(store: IbcStore, key: bytes, value: int) -> None:
    store.set(key, encode_sequence(value))
