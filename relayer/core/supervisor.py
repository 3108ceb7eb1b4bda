"""The supervisor: finds the IBC objects between two chains and runs one worker per object.

Why scan instead of configure: paths live on chain, so the supervisor reads them there at
start (clients via connections, connections, then channels on both chains) and again when a
block carries a handshake event, and spawns the workers it does not have yet. Workers are
keyed by object, so a rescan never duplicates one. One task per chain follows its block
stream and wakes the workers the block concerns; a stream that breaks is reopened from the
next height with backoff, and every worker is then forced to clear (events may be missed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from chains.ibc import events as ev
from chains.ibc.host import paths
from chains.ibc.host.identifiers import channel_id as make_channel_id
from chains.ibc.host.identifiers import connection_id as make_connection_id
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from relayer.config.schema import Config, PathConfig
from relayer.core.chain import ChainHandle
from relayer.core.tasks import cancel_and_wait
from relayer.core.workers import (
    ChannelHandshakeWorker,
    ClientWorker,
    ConnectionHandshakeWorker,
    End,
    PacketWorker,
    Services,
    Settings,
    Worker,
    channel_end,
    connection_end,
)

log = structlog.get_logger("kakehashi.supervisor")

DEFAULT_PORTS = ("transfer", "dvp")
_HANDSHAKE = (ev.CONNECTION_OPEN_TRY, ev.CONNECTION_OPEN_ACK, ev.CONNECTION_OPEN_CONFIRM,
              ev.CHANNEL_OPEN_INIT, ev.CHANNEL_OPEN_TRY, ev.CHANNEL_OPEN_ACK, ev.CHANNEL_OPEN_CONFIRM,
              ev.CHANNEL_CLOSE)


def settings_from_config(config: Config, signer: str = "relayer") -> Settings:
    """The workers' view of a validated relayer config."""
    mode = config.mode
    return Settings(
        signer=signer,
        max_msg_num={c.id: c.max_msg_num for c in config.chains},
        packet_filter={c.id: c.packet_filter for c in config.chains},
        clear_limit=mode.packets.clear_limit,
        clear_interval=mode.packets.clear_interval,
        clear_on_start=mode.packets.clear_on_start,
        refresh=mode.clients.enabled and mode.clients.refresh,
        misbehaviour=mode.clients.enabled and mode.clients.misbehaviour,
        refresh_rate=float(mode.clients.refresh_rate),
        trusting_period_ns={c.id: int(c.trusting_period_s * 1e9) for c in config.chains},
    )


async def _sequence(chain: ChainHandle, key: bytes) -> int:
    raw = (await chain.query(key, prove=False)).value
    if raw is None:
        return 0
    msg = client_pb2.NextSequence()
    msg.ParseFromString(raw)
    return int(msg.sequence)


class Supervisor:
    def __init__(self, a: ChainHandle, b: ChainHandle, services: Services,
                 ports: tuple[str, ...] = DEFAULT_PORTS, stream_backoff_s: float = 0.05,
                 path: PathConfig | None = None) -> None:
        self.a, self.b = a, b
        self.path = path  # its packet filter says which channels between a and b are ours
        self.services = services
        self.ports = ports
        self.workers: dict[str, Worker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._blocks_seen: dict[str, int] = {}
        self._rescan = asyncio.Event()
        self.stream_backoff_s = stream_backoff_s
        self.reconnects = 0

    def other(self, chain: ChainHandle) -> ChainHandle:
        return self.b if chain is self.a else self.a

    # --- scan ------------------------------------------------------------------------------

    async def _connections(self, chain: ChainHandle) -> dict[str, cpb.ConnectionEnd]:
        found = {}
        for n in range(await _sequence(chain, paths.NEXT_CONNECTION_SEQUENCE)):
            cid = make_connection_id(n)
            end = await connection_end(chain, cid)
            if end is not None:
                found[cid] = end
        return found

    async def _channels(self, chain: ChainHandle) -> list[tuple[str, str, chpb.Channel]]:
        found = []
        for n in range(await _sequence(chain, paths.NEXT_CHANNEL_SEQUENCE)):
            for port in self.ports:
                end = await channel_end(chain, port, make_channel_id(n))
                if end is not None:
                    found.append((port, make_channel_id(n), end))
        return found

    async def scan(self) -> None:
        """Clients -> connections -> channels on both chains; spawn what is missing."""
        conns = {self.a.chain_id: await self._connections(self.a), self.b.chain_id: await self._connections(self.b)}
        # A connection counts when both ends name each other: then its clients are ours.
        links: dict[tuple[str, str], tuple[End, End]] = {}
        for cid, end in conns[self.a.chain_id].items():
            peer = conns[self.b.chain_id].get(end.counterparty.connection_id)
            if peer is None or peer.counterparty.connection_id != cid:
                continue
            ea = End(self.a, end.client_id, cid)
            eb = End(self.b, peer.client_id, end.counterparty.connection_id)
            links[(self.a.chain_id, cid)] = (ea, eb)
            links[(self.b.chain_id, eb.connection_id)] = (eb, ea)
            if self.services.settings.refresh or self.services.settings.misbehaviour:
                self._spawn(ClientWorker(ea, self.b, self.services))
                self._spawn(ClientWorker(eb, self.a, self.services))
        for chain in (self.a, self.b):
            other = self.other(chain)
            for cid, end in conns[chain.chain_id].items():
                peer_worker = f"connection:{other.chain_id}/{end.counterparty.connection_id}"
                if end.counterparty.connection_id and peer_worker in self.workers:
                    continue  # that worker finds this end by itself and drives both ends' steps
                if end.state in (cpb.CONNECTION_STATE_INIT, cpb.CONNECTION_STATE_TRYOPEN):
                    self._spawn(ConnectionHandshakeWorker(
                        End(chain, end.client_id, cid),
                        End(other, end.counterparty.client_id, end.counterparty.connection_id), self.services))
        for chain in (self.a, self.b):
            for port, chan, chan_end in await self._channels(chain):
                link = links.get((chain.chain_id, chan_end.connection_hops[0] if chan_end.connection_hops else ""))
                if link is None:
                    continue
                mine, theirs = link
                if self.path is not None and not self.path.permits(
                        chain.chain_id, port, chan, chan_end.counterparty.port_id, chan_end.counterparty.channel_id):
                    continue  # another daemon's channel (or nobody's)
                here = End(chain, mine.client_id, mine.connection_id, port, chan)
                there = End(theirs.chain, theirs.client_id, theirs.connection_id, chan_end.counterparty.port_id,
                            chan_end.counterparty.channel_id)
                if chan_end.state in (chpb.STATE_OPEN, chpb.STATE_CLOSED) and there.channel:
                    self._spawn(PacketWorker(here, there, self.services))
                # One worker per channel pair: the other end's worker finds this end by itself.
                drives_both = bool(there.channel) and (
                    f"channel:{there.chain.chain_id}/{there.port}/{there.channel}" in self.workers)
                if chan_end.state in (chpb.STATE_INIT, chpb.STATE_TRYOPEN, chpb.STATE_CLOSED) and not drives_both:
                    self._spawn(ChannelHandshakeWorker(here, there, self.services))

    def _spawn(self, worker: Worker) -> None:
        if worker.name in self.workers:
            return
        self.workers[worker.name] = worker
        worker.start()
        log.info("worker spawned", worker=worker.name)

    # --- run -------------------------------------------------------------------------------

    async def start(self, follow: bool = True) -> None:
        """Scan and spawn; ``follow=False`` when a :class:`relayer.core.hub.Hub` feeds this
        supervisor the blocks of chains it shares with other paths (one stream per chain)."""
        if follow:  # under a hub, the hub's probe (every path) answers once all paths started
            self.services.telemetry.set_health(self.health)
        starts = {c.chain_id: (await c.latest()).height.revision_height + 1 for c in (self.a, self.b)}
        await self.scan()
        if follow:
            for chain in (self.a, self.b):
                self._tasks.append(asyncio.create_task(
                    follow_blocks(chain, starts[chain.chain_id], self.on_block, self.on_reconnect,
                                  self.stream_backoff_s), name=f"blocks:{chain.chain_id}"))
        self._tasks.append(asyncio.create_task(self._rescanner(), name="rescan"))

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        for worker in self.workers.values():
            await worker.stop()

    async def _rescanner(self) -> None:
        while True:
            await self._rescan.wait()
            self._rescan.clear()
            try:
                await self.scan()
            except Exception as exc:  # the next handshake event retries
                log.warning("rescan failed", error=f"{type(exc).__name__}: {exc}")

    def on_reconnect(self, chain_id: str) -> None:
        """Events may have been missed: every worker clears from chain state."""
        self.reconnects += 1
        for worker in self.workers.values():
            worker.rescan()

    def on_block(self, chain_id: str, events: Sequence[ev.Event]) -> None:
        seen = self._blocks_seen[chain_id] = self._blocks_seen.get(chain_id, 0) + 1
        interval = self.services.settings.clear_interval
        periodic = interval > 0 and seen % interval == 0
        if any(e.type in _HANDSHAKE for e in events):
            self._rescan.set()
        for worker in self.workers.values():
            hit = worker.relevant(chain_id, events)
            if periodic:
                worker.rescan()  # a full scan of both chains now and then: nothing missed stays missed
            else:
                worker.wake(force=hit)

    # --- status ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        stopped = {n: w.stopped for n, w in self.workers.items() if w.stopped is not None}
        return {"status": "degraded" if stopped else "ok", "workers": len(self.workers), "stopped": stopped}

    def busy(self) -> bool:
        return any(w.dirty and w.running for w in self.workers.values())


async def follow_blocks(chain: ChainHandle, start: int,
                        on_block: Callable[[str, Sequence[ev.Event]], None],
                        on_reconnect: Callable[[str], None], backoff_s: float = 0.05) -> None:
    """Follow ``chain``'s block stream from ``start`` forever; a lost stream is reopened from
    the next height with backoff and reported (events may have been missed meanwhile)."""
    next_height = start
    backoff = backoff_s
    while True:
        try:
            async for blk in chain.blocks(next_height):
                if blk.height.revision_height < next_height:
                    continue
                next_height = blk.height.revision_height + 1
                backoff = backoff_s
                on_block(chain.chain_id, blk.events)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("block stream lost", chain=chain.chain_id, error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 5.0)
        on_reconnect(chain.chain_id)
