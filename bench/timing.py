"""Small timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable


def per_call_us(fn: Callable[[], object], *, min_seconds: float = 0.2, max_calls: int = 1_000_000) -> float:
    """Mean microseconds per call, timing batches until ``min_seconds`` have passed."""
    fn()  # warm up
    calls = 0
    batch = 1
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or calls >= max_calls:
            return elapsed / calls * 1e6
        batch = min(batch * 2, max_calls - calls)
