"""Process CPU (and, while counting, crypto calls) charged to named steps, exclusively.

Why exclusive: the steps of a trade's life nest across process boundaries that this bench
runs in one process. The relayer's ack builder asks the Corda node for each lock in the
middle of building its tx, and the node's block loop calls the app's ``produce_block`` in
the middle of persisting a block; each inner step is charged to itself and taken out of the
step around it, so the rows add up to the whole without counting anything twice.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench.crypto_floor import CryptoCounter, Tally


@dataclass
class _Frame:
    name: str
    cpu0: float
    wall0: float
    tally0: Tally | None
    child_cpu: float = 0.0
    child_wall: float = 0.0
    child_tally: Tally = field(default_factory=Tally)


class Meter:
    def __init__(self, counter: CryptoCounter) -> None:
        self.counter = counter
        self.enabled = False
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.wall: defaultdict[str, float] = defaultdict(float)
        self.tally: defaultdict[str, Tally] = defaultdict(Tally)
        self._stack: list[_Frame] = []

    def reset(self) -> None:
        self.cpu.clear()
        self.wall.clear()
        self.tally.clear()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        counting = self.counter.active
        frame = _Frame(name, time.process_time(), time.perf_counter(),
                       self.counter.tally.copy() if counting else None)
        self._stack.append(frame)
        try:
            yield
        finally:
            cpu = time.process_time() - frame.cpu0
            wall = time.perf_counter() - frame.wall0
            self._stack.pop()
            self.cpu[name] += cpu - frame.child_cpu
            self.wall[name] += wall - frame.child_wall
            inner = self.counter.tally - frame.tally0 if frame.tally0 is not None else Tally()
            if counting:
                self.tally[name] = self.tally[name] + (inner - frame.child_tally)
            if self._stack:
                parent = self._stack[-1]
                parent.child_cpu += cpu
                parent.child_wall += wall
                if counting:
                    parent.child_tally = parent.child_tally + inner
