"""The shared consensus-height index and its monotonic-time rule."""

from __future__ import annotations

from lightclients.consensus_heights import breaks_monotonic_time, record_height, stored_heights
from lightclients.interface import Height, MemoryClientStore


def test_index_is_sorted_and_idempotent() -> None:
    store = MemoryClientStore()
    for h in (Height(1, 5), Height(0, 9), Height(1, 2), Height(1, 5)):
        record_height(store, h)
    assert stored_heights(store) == [Height(0, 9), Height(1, 2), Height(1, 5)]


def test_time_must_increase_with_height_against_both_neighbours() -> None:
    store = MemoryClientStore()
    times = {Height(1, 10): 100, Height(1, 20): 200}
    for h in times:
        record_height(store, h)
    at = times.get
    assert not breaks_monotonic_time(store, Height(1, 15), 150, at)
    assert breaks_monotonic_time(store, Height(1, 15), 100, at)  # not after the one below
    assert breaks_monotonic_time(store, Height(1, 15), 200, at)  # not before the one above
    assert breaks_monotonic_time(store, Height(1, 30), 199, at)
    assert not breaks_monotonic_time(store, Height(1, 5), 99, at)
    assert not breaks_monotonic_time(store, Height(1, 20), 200, at)  # a height is not its own neighbour
