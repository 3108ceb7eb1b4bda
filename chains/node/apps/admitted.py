"""The decoded transactions an app keeps between admission (``check_tx``) and their block.

Why a cache and why bounded by bytes: admission decodes a tx and checks its signatures, and
the block that carries it would otherwise do both again; but what is admitted is decided by
remote parties, so the cache must not grow with what they send. It is bounded by entries and
by the raw size of the txs it holds (a decoded tx costs a multiple of that), oldest first out;
a tx evicted before its block is simply decoded again there.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from chains.node.limits import ADMITTED_CACHE_BYTES

V = TypeVar("V")


class AdmittedCache(Generic[V]):
    def __init__(self, max_entries: int, max_bytes: int = ADMITTED_CACHE_BYTES) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.bytes = 0
        self._entries: OrderedDict[bytes, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: bytes, value: V, size: int) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.max_bytes:
            return
        self._entries[key] = (value, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, gone) = self._entries.popitem(last=False)
            self.bytes -= gone

    def get(self, key: bytes) -> V | None:
        hit = self._entries.get(key)
        return None if hit is None else hit[0]

    def pop(self, key: bytes) -> V | None:
        hit = self._entries.pop(key, None)
        if hit is None:
            return None
        self.bytes -= hit[1]
        return hit[0]
