"""The faults the soak injects, drawn from one seeded RNG, and what each one did.

Every fault is made by signalling a PID the soak started (never a process found by name) and
ends with the service back: a killed process restarted on the same address, a paused one
continued, the broker restarted. Faults run one after another, at instants drawn from the
seed; the first round holds one fault of every kind (in a seeded order) so even a short run
covers them all, later ones are drawn by weight.

- ``kill-relayer``: SIGKILL the relayer (txs in flight, a pass half done), restart it.
- ``kill-evm`` / ``kill-corda``: SIGKILL a node while it has work: once its mempool holds a
  block's worth of txs (or after a short wait), at a random instant within a block period, so
  kills land during block production and during the height's SQLite commit; restart it on the
  same port. Outcome: the height it came back at is at least the last height seen committed.
- ``second-relayer``: a second relayer (its own keys) on the same path for a while, so both
  race for the same packets; then SIGKILL or SIGTERM it.
- ``pause-relayer``: SIGSTOP the relayer longer than the short packet timeouts, then SIGCONT.
- ``drop-broker``: stop the MQTT broker for a while, start it again.
- ``stall-evm`` / ``stall-corda``: SIGSTOP a node (its gRPC stops answering, its blocks stop)
  for a few seconds, then SIGCONT.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chains.node.client import NodeClient, RetryPolicy
from tests.chaos.net import Child, Net, Node

KINDS = ("kill-relayer", "kill-evm", "kill-corda", "second-relayer", "pause-relayer", "drop-broker",
         "stall-evm", "stall-corda")
WEIGHTS = {"kill-relayer": 3, "kill-evm": 2, "kill-corda": 2, "second-relayer": 2, "pause-relayer": 1,
           "drop-broker": 1, "stall-evm": 1, "stall-corda": 1}


@dataclass(frozen=True)
class FaultTimes:
    gap_s: tuple[float, float]  # wait before each fault
    relayer_down_s: tuple[float, float]
    node_down_s: tuple[float, float]
    second_for_s: tuple[float, float]
    pause_s: tuple[float, float]  # longer than the short packet timeouts
    broker_down_s: tuple[float, float]
    stall_s: tuple[float, float]


@dataclass
class Fault:
    index: int
    kind: str
    at_s: float = 0.0  # since the traffic started
    took_s: float = 0.0
    ok: bool = True
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "at_s": round(self.at_s, 2), "took_s": round(self.took_s, 2),
                "ok": self.ok, "error": self.error, **self.detail}


class Schedule:
    """Draws fault kinds and durations from ``rng`` (one stream: a seed replays the run)."""

    def __init__(self, rng: random.Random, times: FaultTimes) -> None:
        self.rng = rng
        self.times = times
        self._first = list(KINDS)
        rng.shuffle(self._first)
        self.drawn = 0

    def next_kind(self) -> str:
        self.drawn += 1
        if self._first:
            return self._first.pop(0)
        kinds = list(WEIGHTS)
        return self.rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]

    def gap(self) -> float:
        return self.rng.uniform(*self.times.gap_s)

    def span(self, which: tuple[float, float]) -> float:
        return self.rng.uniform(*which)


def _status(node: Node) -> tuple[int, int] | None:
    """(latest height, mempool size), or None when the node does not answer within 2 s."""
    async def ask() -> tuple[int, int]:
        async with NodeClient(node.addr, retry=RetryPolicy(attempts=1, timeout_s=2)) as c:
            st = await c.status()
            return int(st.latest_height), int(st.mempool_size)
    try:
        return asyncio.run(ask())
    except Exception:
        return None


class Injector:
    """Runs one fault at a time against the soak's network and records its outcome."""

    def __init__(self, net: Net, schedule: Schedule, busy_mempool: int) -> None:
        self.net = net
        self.s = schedule
        self.busy_mempool = busy_mempool
        self.faults: list[Fault] = []

    def run(self, kind: str, at_s: float) -> Fault:
        fault = Fault(len(self.faults) + 1, kind, at_s)
        started = time.monotonic()
        action: dict[str, Callable[[Fault], None]] = {
            "kill-relayer": self._kill_relayer, "kill-evm": lambda f: self._kill_node(f, self.net.evm),
            "kill-corda": lambda f: self._kill_node(f, self.net.corda), "second-relayer": self._second_relayer,
            "pause-relayer": self._pause_relayer, "drop-broker": self._drop_broker,
            "stall-evm": lambda f: self._stall(f, self.net.evm), "stall-corda": lambda f: self._stall(f, self.net.corda),
        }
        try:
            action[kind](fault)
        except Exception as exc:  # recorded and the service brought back; the verdict decides
            fault.ok, fault.error = False, f"{type(exc).__name__}: {exc}"[:500]
            self._heal()
        fault.took_s = time.monotonic() - started
        self.faults.append(fault)
        return fault

    def _heal(self) -> None:
        """Whatever a failed fault left: every service running and not paused."""
        for child in (self.net.evm.child, self.net.corda.child, self.net.broker, self.net.relayer.child):
            if child.paused:
                child.resume()
        for node in (self.net.evm, self.net.corda):
            if not node.child.alive():
                node.restart()
        if not self.net.broker.alive():
            self.net.broker.start()
        if not self.net.relayer.child.alive():
            self.net.relayer.child.start()
        if self.net.second.child.alive():
            self.net.second.child.stop()

    @staticmethod
    def _restart(child: Child, down_s: float) -> float:
        time.sleep(down_s)
        t = time.monotonic()
        child.start()
        return round(time.monotonic() - t, 2)

    def _kill_relayer(self, f: Fault) -> None:
        r = self.net.relayer.child
        r.kill()
        f.detail["signal"] = "SIGKILL"
        f.detail["restart_s"] = self._restart(r, self.s.span(self.s.times.relayer_down_s))

    def _kill_node(self, f: Fault, node: Node) -> None:
        # wait (a little) for a block's worth of work, then kill within one block period
        waited = 0.0
        before = _status(node)
        while before is not None and before[1] < self.busy_mempool and waited < 3.0:
            time.sleep(0.1)
            waited += 0.1
            before = _status(node)
        if before is None:
            raise RuntimeError(f"{node.chain_id} did not answer before the kill")
        period = 1.0 if node.kind == "evm" else 0.2
        time.sleep(self.s.rng.uniform(0, period))
        node.child.kill()
        f.detail.update({"signal": "SIGKILL", "height_before": before[0], "mempool_at_kill": before[1]})
        f.detail["restart_s"] = self._restart(node.child, self.s.span(self.s.times.node_down_s))
        after = _status(node)
        if after is None:
            raise RuntimeError(f"{node.chain_id} restarted but does not answer")
        f.detail["height_after"] = after[0]
        if after[0] < before[0]:  # a committed height was lost
            f.ok = False
            f.error = f"restarted at height {after[0]} below the committed {before[0]}"

    def _second_relayer(self, f: Fault) -> None:
        second = self.net.second.child
        second.start()
        time.sleep(self.s.span(self.s.times.second_for_s))
        how = self.s.rng.choice(("SIGKILL", "SIGTERM"))
        if how == "SIGKILL":
            second.kill()
        else:
            code = second.stop()
            if code != 0:
                f.ok, f.error = False, f"the second relayer exited with {code} on SIGTERM"
        f.detail["stopped_by"] = how

    def _pause_relayer(self, f: Fault) -> None:
        r = self.net.relayer.child
        r.pause()
        f.detail["paused_s"] = round(self.s.span(self.s.times.pause_s), 1)
        time.sleep(f.detail["paused_s"])
        r.resume()

    def _drop_broker(self, f: Fault) -> None:
        b = self.net.broker
        code = b.stop()
        f.detail["stopped_with"] = code
        f.detail["restart_s"] = self._restart(b, self.s.span(self.s.times.broker_down_s))

    def _stall(self, f: Fault, node: Node) -> None:
        node.child.pause()
        f.detail["stalled_s"] = round(self.s.span(self.s.times.stall_s), 1)
        time.sleep(f.detail["stalled_s"])
        node.child.resume()
