"""Several paths in one daemon: a supervisor per path, one block stream per chain.

Why a hub and not one supervisor per path each following its own streams: in the hub
topology every path shares the Corda chain, so N supervisors would open N streams of the
same blocks. The hub follows each chain once and hands every block to the supervisors of the
paths that include it. Each path keeps its own workers, metrics view (``path`` label) and
MQTT topics, so a path that stalls (a frozen client, a dead node) stops only its workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chains.ibc import events as ev
from relayer.config.schema import PathConfig
from relayer.core.chain import ChainHandle
from relayer.core.supervisor import DEFAULT_PORTS, Supervisor, follow_blocks
from relayer.core.tasks import cancel_and_wait
from relayer.core.workers import Services


class Hub:
    def __init__(self, handles: Mapping[str, ChainHandle], paths: Sequence[PathConfig],
                 services: Callable[[PathConfig], Services], ports: tuple[str, ...] = DEFAULT_PORTS,
                 stream_backoff_s: float = 0.05) -> None:
        self.handles = handles
        self.supervisors: dict[str, Supervisor] = {
            p.name: Supervisor(handles[p.a_chain], handles[p.b_chain], services(p), ports=ports,
                               stream_backoff_s=stream_backoff_s, path=p)
            for p in paths}
        self._by_chain: dict[str, list[Supervisor]] = {}
        for p in paths:
            sup = self.supervisors[p.name]
            for cid in (p.a_chain, p.b_chain):
                self._by_chain.setdefault(cid, []).append(sup)
        self.stream_backoff_s = stream_backoff_s
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def workers(self) -> dict[str, Any]:
        return {f"{name}/{w}": worker for name, sup in self.supervisors.items() for w, worker in sup.workers.items()}

    async def start(self) -> None:
        starts = {cid: (await self.handles[cid].latest()).height.revision_height + 1 for cid in self._by_chain}
        for sup in self.supervisors.values():
            await sup.start(follow=False)
        for sup in self.supervisors.values():  # one registry: the hub's probe covers every path
            sup.services.telemetry.set_health(self.health)
        for cid, start in starts.items():
            self._tasks.append(asyncio.create_task(
                follow_blocks(self.handles[cid], start, self._on_block, self._on_reconnect, self.stream_backoff_s),
                name=f"blocks:{cid}"))

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        for sup in self.supervisors.values():
            await sup.stop()

    def _on_block(self, chain_id: str, events: Sequence[ev.Event]) -> None:
        for sup in self._by_chain.get(chain_id, ()):
            sup.on_block(chain_id, events)

    def _on_reconnect(self, chain_id: str) -> None:
        for sup in self._by_chain.get(chain_id, ()):
            sup.on_reconnect(chain_id)

    def health(self) -> dict[str, Any]:
        paths = {name: sup.health() for name, sup in self.supervisors.items()}
        degraded = any(h["status"] != "ok" for h in paths.values())
        return {"status": "degraded" if degraded else "ok", "workers": sum(h["workers"] for h in paths.values()),
                "paths": paths}

    def busy(self) -> bool:
        return any(sup.busy() for sup in self.supervisors.values())
