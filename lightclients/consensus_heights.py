"""The sorted index of heights at which a client stores consensus states.

Both direct clients need the same two things from it: the stored neighbours of a height
(to detect time going backwards, which is misbehaviour even for a non-adjacent update) and
the list itself (to iterate or prune). The client store has no ordered range scan, so the
index is kept under one metadata key as packed (revision, height) pairs in ascending order.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from lightclients.interface import ClientStore, Height

HEIGHTS_KEY = "meta/heights"
_ENTRY = 16


def stored_heights(store: ClientStore) -> list[Height]:
    raw = store.get(HEIGHTS_KEY) or b""
    return [
        Height(int.from_bytes(raw[i : i + 8], "big"), int.from_bytes(raw[i + 8 : i + _ENTRY], "big"))
        for i in range(0, len(raw) - len(raw) % _ENTRY, _ENTRY)
    ]


def record_height(store: ClientStore, height: Height) -> None:
    """Add ``height`` to the index (idempotent)."""
    heights = stored_heights(store)
    i = bisect.bisect_left(heights, height)
    if i < len(heights) and heights[i] == height:
        return
    heights.insert(i, height)
    store.set(
        HEIGHTS_KEY,
        b"".join(h.revision_number.to_bytes(8, "big") + h.revision_height.to_bytes(8, "big") for h in heights),
    )


def breaks_monotonic_time(
    store: ClientStore, height: Height, timestamp: int, timestamp_at: Callable[[Height], int | None]
) -> bool:
    """True when a consensus state at ``height`` with ``timestamp`` would not sit strictly
    between the timestamps of its stored neighbours (time must increase with height)."""
    heights = stored_heights(store)
    i = bisect.bisect_left(heights, height)
    if i > 0:
        below = timestamp_at(heights[i - 1])
        if below is not None and below >= timestamp:
            return True
    j = i + 1 if i < len(heights) and heights[i] == height else i
    if j < len(heights):
        above = timestamp_at(heights[j])
        if above is not None and above <= timestamp:
            return True
    return False
