"""Relayer workers: one per object (client, connection/channel handshake, packet direction).

Every worker runs *passes*: query both chains, decide with the sans-I/O planner, submit. A
pass never trusts memory from an earlier one, so a pass after a crash, a reconnect or a
competing relayer's tx reaches the same result. Workers are woken by the supervisor when a
block carries something relevant (or every ``clear_interval`` blocks) and stay "dirty"
while work remains (e.g. packets waiting to time out), so quiet paths cost nothing.

A worker whose light client is frozen or expired cannot make progress by itself: it stops,
and says why in its ``stopped`` field, the log, the ``kakehashi_workers`` gauge and health.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from google.protobuf.message import DecodeError, Message

from chains.ibc import events as ev
from chains.ibc.context import to_proto
from chains.ibc.events import Event
from chains.ibc.host import paths
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from lightclients.interface import (
    CLIENT_STATE_KEY,
    ClientError,
    Height,
    LightClientModule,
    MemoryClientStore,
    Status,
    consensus_state_key,
)
from relayer.config.schema import PacketFilter
from relayer.core import packets as planner
from relayer.core.bounded import gather_bounded
from relayer.core.chain import ChainHandle, PendingTx, QueryResult, TxOutcome
from relayer.core.tasks import cancel_and_wait
from relayer.ops.telemetry import Telemetry

log = structlog.get_logger("kakehashi.workers")


class EventPublisher(Protocol):
    """What workers need of the MQTT publisher (relayer.ops.mqtt.MqttPublisher fits)."""

    def publish(self, chain: str, port: str, channel: str, event: str, payload: dict[str, object]) -> None: ...


class WorkerStopped(Exception):
    """The worker cannot continue (frozen/expired client); the message says why."""


@dataclass
class Settings:
    """Per-relayer knobs the workers read (from relayer.config.schema in the daemon)."""

    signer: str = "relayer"
    max_msg_num: dict[str, int] = field(default_factory=dict)  # by chain id
    packet_filter: dict[str, PacketFilter] = field(default_factory=dict)  # by chain id
    clear_limit: int = 50
    clear_interval: int = 100
    clear_on_start: bool = True
    refresh: bool = True
    misbehaviour: bool = True
    refresh_rate: float = 1 / 3
    trusting_period_ns: dict[str, int] = field(default_factory=dict)  # of clients OF chain id
    time_margin_ns: int = 10 * 10**9
    multiproof: bool = True  # prove a tx's packets with one multiproof (QueryIbcBatch MULTI)

    def max_msgs(self, chain_id: str) -> int:
        return self.max_msg_num.get(chain_id, 30)


class ClientHeights:
    """The heights a host's client of a counterparty will hold once this relayer's queued txs run.

    Why: txs are pipelined (the next is built before the previous one's block), and two workers
    feed each client (recv of one direction, acks of the other). A tx whose proofs sit at a
    height an earlier queued tx installs needs no update of its own, and the update it does
    need must not race another worker's. Deciding the proof height and queueing the tx happen
    under ``lock`` (a few local reads; outcomes are awaited outside it), so the chain runs the
    txs in the order the heights were promised.
    """

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.pending: Counter[Height] = Counter()

    def promise(self, height: Height) -> None:
        self.pending[height] += 1

    def settle(self, height: Height) -> None:
        self.pending[height] -= 1
        if self.pending[height] <= 0:
            del self.pending[height]


@dataclass
class Services:
    settings: Settings
    telemetry: Telemetry
    mqtt: EventPublisher | None = None
    heights: dict[tuple[str, str], ClientHeights] = field(default_factory=dict)

    def client_heights(self, chain_id: str, client_id: str) -> ClientHeights:
        return self.heights.setdefault((chain_id, client_id), ClientHeights())


@dataclass(frozen=True)
class End:
    """One side of a path: a chain, its client of the other chain, and optionally a channel."""

    chain: ChainHandle
    client_id: str
    connection_id: str = ""
    port: str = ""
    channel: str = ""


async def _parse(chain: ChainHandle, path: bytes, cls: type[Message], height: Height | None = None) -> Message | None:
    res = await chain.query(path, height, prove=False)
    if res.value is None:
        return None
    msg = cls()
    try:
        msg.ParseFromString(res.value)
    except DecodeError:
        return None
    return msg


async def channel_end(chain: ChainHandle, port: str, channel: str) -> chpb.Channel | None:
    got = await _parse(chain, paths.channel(port, channel), chpb.Channel)
    return got if isinstance(got, chpb.Channel) else None


async def connection_end(chain: ChainHandle, connection_id: str) -> cpb.ConnectionEnd | None:
    got = await _parse(chain, paths.connection(connection_id), cpb.ConnectionEnd)
    return got if isinstance(got, cpb.ConnectionEnd) else None


async def next_sequence_recv(chain: ChainHandle, port: str, channel: str, height: Height | None = None) -> int:
    got = await _parse(chain, paths.next_sequence_recv(port, channel), client_pb2.NextSequence, height)
    return int(got.sequence) if isinstance(got, client_pb2.NextSequence) else 0


async def mirror_client(host: ChainHandle, client_id: str, module: LightClientModule) -> MemoryClientStore:
    """A copy of the client's state on ``host`` (client state + latest consensus state), so the
    relayer can ask the module itself for the latest height, its time and the status."""
    store = MemoryClientStore()
    raw = (await host.query(paths.client_state(client_id), prove=False)).value
    if raw is None:
        raise WorkerStopped(f"client {client_id} does not exist on {host.chain_id}")
    store.set(CLIENT_STATE_KEY, raw)
    try:
        latest = module.latest_height(store)
    except (ClientError, ValueError, KeyError) as exc:
        raise WorkerStopped(f"client {client_id} on {host.chain_id} is unreadable: {exc}") from exc
    cons = (await host.query(paths.consensus_state(client_id, latest), prove=False)).value
    if cons is not None:
        store.set(consensus_state_key(latest), cons)
    return store


async def client_status(host: ChainHandle, client_id: str, module: LightClientModule) -> tuple[Status, Height, int]:
    """(status at the host's current time, latest height, latest consensus timestamp)."""
    store = await mirror_client(host, client_id, module)
    now = (await host.latest()).time_ns
    try:
        latest = module.latest_height(store)
        return module.status(store, now), latest, module.timestamp_at_height(store, latest)
    except (ClientError, ValueError, KeyError):
        return Status.UNKNOWN, Height.zero(), 0


async def require_active(host: ChainHandle, client_id: str, module: LightClientModule) -> Height:
    status, latest, _ = await client_status(host, client_id, module)
    if status is not Status.ACTIVE:
        raise WorkerStopped(f"client {client_id} on {host.chain_id} is {status.value}")
    return latest


async def update_for(src: ChainHandle, dst: ChainHandle, dst_client: str,
                     target: Height) -> client_pb2.MsgUpdateClient:
    """The UpdateClient that lets dst verify proofs of src at ``target``."""
    trusted = await require_active(dst, dst_client, src.light_client())
    header = await src.build_header(trusted, target)
    return planner.update_msg(dst_client, header)


class StaleProofHeight(Exception):
    """dst's client already moved past the proof height and holds no consensus state there."""


async def update_if_needed(src: ChainHandle, dst: ChainHandle, dst_client: str,
                           target: Height) -> client_pb2.MsgUpdateClient | None:
    """Like :func:`update_for`, for a client that other workers update concurrently.

    Two workers feed the same client (recv of one direction, acks of the other), so by the
    time one builds its update the client may already be at or past ``target``: a header
    from there to ``target`` is refused on chain and would fail the whole tx. If dst already
    has a consensus state at ``target`` no update is needed (None); if the client is past it
    without one, the proofs are stale and the pass is retried with a fresh height.
    """
    trusted = await require_active(dst, dst_client, src.light_client())
    if trusted >= target:
        if (await dst.query(paths.consensus_state(dst_client, target), prove=False)).value is not None:
            return None
        raise StaleProofHeight(f"client {dst_client} on {dst.chain_id} is at {trusted}, past proof height {target}")
    return planner.update_msg(dst_client, await src.build_header(trusted, target))


async def plan_proof_height(src: ChainHandle, dst: ChainHandle, dst_client: str,
                            heights: ClientHeights) -> tuple[Height, client_pb2.MsgUpdateClient | None]:
    """(proof height, the UpdateClient the tx must lead with or None) for a tx to ``dst``
    queued now; call with ``heights.lock`` held until the tx is queued.

    The height is src's latest unless dst's client already holds, or an earlier queued tx of
    this relayer installs, one at least as new: then no update is needed. A promised height
    whose tx fails makes the txs relying on it fail too; their packets are relayed again."""
    trusted = await require_active(dst, dst_client, src.light_client())
    target = (await src.latest()).height
    best = max([trusted, *heights.pending])
    if best >= target:
        return best, None
    return target, planner.update_msg(dst_client, await src.build_header(trusted, target))


class Worker(abc.ABC):
    kind = "worker"

    def __init__(self, name: str, services: Services) -> None:
        self.name = name
        self.services = services
        self.dirty = services.settings.clear_on_start
        self.stopped: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0

    def wake(self, force: bool = False) -> None:
        if force:
            self.dirty = True
        self._wake.set()

    def rescan(self) -> None:
        """Events may have been missed: the next pass reads everything from the chains."""
        self.wake(force=True)

    def start(self) -> None:
        self.services.telemetry.workers.labels(type=self.kind).inc()
        self._task = asyncio.create_task(self._run(), name=self.name)
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
            if self.stopped is None:
                self.services.telemetry.workers.labels(type=self.kind).dec()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.dirty:
                continue
            try:
                self.dirty = await self.step()
                self.passes += 1
            except WorkerStopped as exc:
                self.stopped = str(exc)
                self.services.telemetry.workers.labels(type=self.kind).dec()
                log.warning("worker stopped", worker=self.name, reason=self.stopped)
                return
            except Exception as exc:  # a failed pass is retried on the next wake-up
                log.warning("worker pass failed", worker=self.name, error=f"{type(exc).__name__}: {exc}")
                self.dirty = True

    @abc.abstractmethod
    async def step(self) -> bool:
        """One pass; returns True while work remains."""

    def relevant(self, chain_id: str, events: Sequence[Event]) -> bool:
        return False


@dataclass(frozen=True)
class TxGroup:
    """The packet messages of one tx and their packets, in the same order."""

    msgs: Sequence[Message]
    pkts: Sequence[chpb.Packet]


MessageMaker = Callable[[chpb.Packet, bytes], Message]


class PacketWorker(Worker):
    """Packets sent on ``src``'s channel: recv on dst, ack back to src, timeouts on src."""

    kind = "packet"

    def __init__(self, src: End, dst: End, services: Services) -> None:
        super().__init__(f"packet:{src.chain.chain_id}/{src.port}/{src.channel}->{dst.chain.chain_id}", services)
        self.src, self.dst = src, dst
        # (kind, sequence) of messages in txs queued but not yet in a block: a pass leaves them
        # out, so pipelined passes never send a packet twice (memory only: a restart derives
        # everything from the chains again)
        self.inflight: set[tuple[str, int]] = set()
        self._outcomes: set[asyncio.Task[None]] = set()
        # The pending set, followed from block events between full scans of both chains (at
        # start, after a stream reconnect, every ``clear_interval`` blocks): sequences still
        # committed on src, and those of them known received on dst. A pass then asks the
        # chains only about what is new, not about every live sequence. A missed event costs
        # a delay until the next scan, never a wrong message: proofs are read fresh.
        self.live: set[int] = set()
        self.received: set[int] = set()
        self.need_scan = True

    def rescan(self) -> None:
        self.need_scan = True
        self.wake(force=True)

    def _learn(self, kind: str, pkts: Sequence[chpb.Packet]) -> None:
        """Our committed tx's effect on the pending set: received packets (recv, or a noop recv:
        someone else delivered it) and finished ones (ack / timeout, done or already done)."""
        done = {p.sequence for p in pkts}
        if kind == "recv":
            self.received |= done
        else:
            self._finished(done)

    def _finished(self, seqs: set[int]) -> None:
        """Packets acked or timed out on src: out of the pending set and the dst's ack index."""
        self.live -= seqs
        self.received -= seqs
        forget = getattr(self.dst.chain, "forget_acks", None)
        if forget is not None and seqs:
            forget(self.dst.port, self.dst.channel, sorted(seqs))

    def relevant(self, chain_id: str, events: Sequence[Event]) -> bool:
        """Whether the block concerns this path; follows the pending set from its events, and
        counts and announces every SendPacket (a block may carry many, so the scan does not
        stop at the first match)."""
        hit = False
        for e in events:
            p = e.packet()
            if p is not None and chain_id == self.src.chain.chain_id and (
                    p.source_port, p.source_channel) == (self.src.port, self.src.channel):
                if e.type == ev.SEND_PACKET:
                    self.live.add(p.sequence)
                    self.services.telemetry.send_packet_events.labels(
                        chain=chain_id, port=self.src.port, channel=self.src.channel).inc()
                    self._publish(chain_id, self.src.port, self.src.channel, "send", p)
                elif e.type in (ev.ACKNOWLEDGE_PACKET, ev.TIMEOUT_PACKET):
                    self._finished({p.sequence})
                hit = True
            elif chain_id == self.dst.chain.chain_id:
                here = ((p.destination_port, p.destination_channel) if p is not None
                        else (e.text("port_id"), e.text("channel_id")) if e.type == ev.CHANNEL_CLOSE else None)
                if here == (self.dst.port, self.dst.channel):
                    hit = True
                    if p is not None and e.type in (ev.RECV_PACKET, ev.WRITE_ACKNOWLEDGEMENT):
                        self.received.add(p.sequence)
        return hit

    def _publish(self, chain: str, port: str, channel: str, event: str, packet: chpb.Packet, **extra: object) -> None:
        if self.services.mqtt is not None:
            self.services.mqtt.publish(chain, port, channel, event, {
                "sequence": packet.sequence, "source_chain": self.src.chain.chain_id,
                "destination_chain": self.dst.chain.chain_id, **extra})

    async def step(self) -> bool:
        src, dst, s = self.src, self.dst, self.services.settings
        tel = self.services.telemetry
        # Both clients must be usable, or nothing on this path can be proven.
        await require_active(dst.chain, dst.client_id, src.chain.light_client())
        await require_active(src.chain, src.client_id, dst.chain.light_client())
        # What queued txs already carry is left to them (it comes back if their tx fails), so
        # it neither goes twice nor takes a place under clear_limit.
        busy_out = {q for k, q in self.inflight if k != "ack"}
        busy_back = {q for k, q in self.inflight if k == "ack"}
        if self.need_scan:
            self.need_scan = False
            scanned = await src.chain.packet_commitments(src.port, src.channel)
            not_there = set(await dst.chain.unreceived_packets(dst.port, dst.channel, scanned)) if scanned else set()
            self.live, self.received = set(scanned), {q for q in scanned if q not in not_there}
        else:
            # only sequences not yet known received (and not in flight) are asked about
            ask = sorted(q for q in self.live if q not in self.received and q not in busy_out)
            not_there = set(await dst.chain.unreceived_packets(dst.port, dst.channel, ask)) if ask else set()
            self.received |= {q for q in ask if q not in not_there}
        committed = sorted(self.live)
        labels = {"chain": src.chain.chain_id, "port": src.port, "channel": src.channel}
        tel.backlog_size.labels(**labels).set(len(committed))
        tel.backlog_oldest_sequence.labels(**labels).set(committed[0] if committed else 0)
        if not committed:
            return False
        ch = await channel_end(dst.chain, dst.port, dst.channel)
        if ch is None:
            return True
        d_status = await dst.chain.latest()
        nsr = await next_sequence_recv(dst.chain, dst.port, dst.channel, d_status.height)
        received = [q for q in committed if q in self.received and q not in busy_back]
        todo = [q for q in committed if q not in self.received and q not in busy_out]
        sends = await src.chain.packet_events(ev.SEND_PACKET, src.port, src.channel, todo)
        view = planner.DestinationView(d_status.height, d_status.time_ns, ch.state, ch.ordering, nsr,
                                       s.time_margin_ns)
        flt = s.packet_filter.get(src.chain.chain_id)
        plan = planner.plan_packets([p for e in sends.values() if (p := e.packet()) is not None],
                                    todo, view, flt, s.clear_limit)
        acks_raw = await dst.chain.packet_events(ev.WRITE_ACKNOWLEDGEMENT, dst.port, dst.channel, received)
        acks = {q: (p, e.get("ack") or b"") for q, e in acks_raw.items() if (p := e.packet()) is not None}
        ack_plan = planner.plan_acks(acks, received, flt, s.clear_limit)
        # The recv tx goes to dst and the ack/timeout tx to src: two signers, two chains, so they
        # are built together; neither waits for its block (the pass ends once they are queued).
        legs = []
        if plan.recv:
            legs.append(self._relay_recv(plan.recv))
        if ack_plan or plan.timeout or plan.timeout_on_close:
            legs.append(self._relay_back(d_status.height, ack_plan, plan, ch.ordering))
        errors = [r for r in await asyncio.gather(*legs, return_exceptions=True) if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        return bool(plan.pending() or ack_plan)

    async def _proven(self, chain: ChainHandle, kind: str, items: Sequence[tuple[chpb.Packet, bytes]],
                      height: Height, make: MessageMaker, first_room: int) -> list[TxGroup]:
        """Packet messages proven on ``chain`` at ``height``, grouped one group per tx (the
        first group leaves room for an update); items whose proven value is gone are dropped.

        A group of two or more is proven by ONE multiproof (QueryIbcBatch MULTI) carried by its
        first message, the others carrying an empty proof the receiving core checks against
        that opening; a lone message carries an ordinary proof (cheaper at batch size 1)."""
        cap = self.services.settings.max_msgs(self._dest_of(chain).chain_id)
        sizes, left, room = [], len(items), first_room
        while left > 0:
            take = min(left, room)
            sizes.append(take)
            left -= take
            room = cap
        groups: list[list[tuple[chpb.Packet, bytes]]] = []
        at = 0
        for n in sizes:
            groups.append(list(items[at:at + n]))
            at += n

        async def one(group: list[tuple[chpb.Packet, bytes]]) -> TxGroup:
            keys = [path for _, path in group]
            if len(group) >= 2 and self.services.settings.multiproof:
                values, multi = await chain.query_multi(keys, height)
                kept = [p for (p, _), v in zip(group, values, strict=True) if v is not None]
                return TxGroup([make(p, multi if i == 0 else b"") for i, p in enumerate(kept)], kept)
            proofs = await query_all(chain, keys, height)
            kept_proofs = [(p, r.proof) for (p, _), r in zip(group, proofs, strict=True) if r.value is not None]
            return TxGroup([make(p, proof) for p, proof in kept_proofs], [p for p, _ in kept_proofs])

        return list(await asyncio.gather(*(one(g) for g in groups)))

    def _dest_of(self, proving: ChainHandle) -> ChainHandle:
        """Where messages proven on ``proving`` go (its max_msg_num bounds their txs)."""
        return self.dst.chain if proving is self.src.chain else self.src.chain

    async def _queue(self, chain: ChainHandle, kind: str, update: Message | None, groups: Sequence[TxGroup],
                     other: str, port: str, channel: str, heights: ClientHeights, height: Height) -> None:
        """Queue one tx per group to ``chain`` (call with ``heights.lock`` held), ``update``
        leading the first; their outcomes are followed in the background, and a failure wakes
        the worker to try again."""
        tel = self.services.telemetry
        txs = [g for g in groups if g.msgs]
        if not txs:
            return
        for i, group in enumerate(txs):
            lead = i == 0 and update is not None
            tx = ([update] if lead and update is not None else []) + list(group.msgs)
            keys = {(kind, p.sequence) for p in group.pkts}
            n = len(group.pkts)
            self.inflight |= keys
            if lead:
                heights.promise(height)
            tel.packets_relayed.labels(src_chain=other, dst_chain=chain.chain_id, kind=kind).inc(n)
            try:
                pending = await chain.submit_nowait(tx)
            except BaseException:
                self.inflight -= keys
                if lead:
                    heights.settle(height)
                raise
            task = asyncio.create_task(self._follow_tx(
                chain, kind, pending, group.pkts, keys, other, port, channel, (heights, height) if lead else None, n))
            self._outcomes.add(task)
            task.add_done_callback(self._outcomes.discard)

    async def _follow_tx(self, chain: ChainHandle, kind: str, pending: PendingTx, pkts: Sequence[chpb.Packet],
                         keys: set[tuple[str, int]], other: str, port: str, channel: str,
                         promised: tuple[ClientHeights, Height] | None, n: int) -> None:
        tel = self.services.telemetry
        started = time.monotonic()
        try:
            out = await pending.result()
        except Exception as exc:  # a lost outcome is a failed tx: its packets go again next pass
            out = TxOutcome(False, f"{type(exc).__name__}: {exc}", (), None)
        finally:
            self.inflight -= keys
            if promised is not None:
                promised[0].settle(promised[1])
        tel.tx_latency_confirmed.labels(chain=chain.chain_id).observe(time.monotonic() - started)
        if out.committed:
            # what our own tx did is known now: a one-shot run follows no block stream
            self._learn(kind, pkts)
            noop = {int(e.text("sequence")) for e in out.events if e.type == ev.NOOP and e.get("sequence")}
            noops = sum(1 for p in pkts if p.sequence in noop)
            tel.packets_noop.labels(dst_chain=chain.chain_id, kind=kind).inc(noops)
            tel.packets_confirmed.labels(src_chain=other, dst_chain=chain.chain_id, kind=kind).inc(n - noops)
            for p in pkts:
                if p.sequence not in noop:
                    self._publish(chain.chain_id, port, channel, kind, p, height=str(out.height) if out.height else "")
            self.wake(force=True)  # what landed may have made more work (a recv's ack to carry back)
        else:
            tel.tx_errors.labels(chain=chain.chain_id, kind=kind).inc()
            log.warning("tx failed", worker=self.name, chain=chain.chain_id, kind=kind, reason=out.reason)
            self.wake(force=True)

    async def settle(self) -> None:
        """Wait until every queued tx of this worker has its outcome (tools and tests)."""
        while self._outcomes:
            await asyncio.gather(*list(self._outcomes), return_exceptions=True)

    async def _relay_recv(self, pkts: Sequence[chpb.Packet]) -> None:
        src, dst, signer = self.src, self.dst, self.services.settings.signer
        heights = self.services.client_heights(dst.chain.chain_id, dst.client_id)
        cap = self.services.settings.max_msgs(dst.chain.chain_id)
        async with heights.lock:
            height, update = await plan_proof_height(src.chain, dst.chain, dst.client_id, heights)
            items = [(p, paths.packet_commitment(p.source_port, p.source_channel, p.sequence)) for p in pkts]
            groups = await self._proven(src.chain, "recv", items, height,
                                        lambda p, proof: planner.recv_msg(p, proof, height, signer),
                                        cap - (update is not None))
            await self._queue(dst.chain, "recv", update, groups, src.chain.chain_id, dst.port, dst.channel,
                              heights, height)

    async def _relay_back(self, height: Height, acks: Sequence[tuple[chpb.Packet, bytes]],
                          plan: planner.PacketPlan, ordering: int) -> None:
        src, dst, signer = self.src, self.dst, self.services.settings.signer
        ordered = ordering == chpb.ORDER_ORDERED
        heights = self.services.client_heights(src.chain.chain_id, src.client_id)
        async with heights.lock:
            # Proofs at the newest height src's client holds or will hold (at least the pass's:
            # a packet timed out there is still unreceivable, and still timed out, later).
            proof_height, update = await plan_proof_height(dst.chain, src.chain, src.client_id, heights)
            cap = self.services.settings.max_msgs(src.chain.chain_id)
            ack_of = {p.sequence: ack for p, ack in acks}
            ack_groups = await self._proven(
                dst.chain, "ack", [(p, paths.packet_ack(p.destination_port, p.destination_channel, p.sequence))
                                   for p, _ in acks], proof_height,
                lambda p, proof: planner.ack_msg(p, ack_of[p.sequence], proof, proof_height, signer),
                cap - (update is not None))
            if any(g.msgs for g in ack_groups):
                await self._queue(src.chain, "ack", update, ack_groups, dst.chain.chain_id, src.port, src.channel,
                                  heights, proof_height)
                update = None  # the first queued tx carries it; the rest run after it
            groups: list[tuple[str, list[Message], list[chpb.Packet]]] = []
            nsr = await next_sequence_recv(dst.chain, dst.port, dst.channel, proof_height)
            for kind, pkts in (("timeout", plan.timeout), ("timeout_on_close", plan.timeout_on_close)):
                msgs: list[Message] = []
                done: list[chpb.Packet] = []
                if ordered:
                    absent = [await dst.chain.query(paths.next_sequence_recv(dst.port, dst.channel), proof_height)
                              ] * len(pkts)
                else:
                    absent = await query_all(dst.chain, [paths.packet_receipt(dst.port, dst.channel, p.sequence)
                                                         for p in pkts], proof_height)
                close = (await dst.chain.query(paths.channel(dst.port, dst.channel), proof_height)
                         if kind == "timeout_on_close" and pkts else None)
                for p, res in zip(pkts, absent, strict=True):
                    if not ordered and res.value is not None:
                        continue  # received after all: its ack will come
                    if kind == "timeout":
                        msgs.append(planner.timeout_msg(p, res.proof, nsr, proof_height, signer))
                    else:
                        assert close is not None
                        msgs.append(planner.timeout_on_close_msg(p, res.proof, close.proof, nsr, proof_height, signer))
                    done.append(p)
                groups.append((kind, msgs, done))
            for kind, msgs, done in groups:
                if msgs:
                    # timeouts (rare) keep one ordinary proof per message
                    per_tx = [TxGroup(msgs[i:i + cap], done[i:i + cap]) for i in range(0, len(msgs), cap)]
                    await self._queue(src.chain, kind, update, per_tx, dst.chain.chain_id, src.port, src.channel,
                                      heights, proof_height)
                    update = None


async def query_all(chain: ChainHandle, keys: Sequence[bytes], height: Height) -> list[QueryResult]:
    """Proofs for one batch at one height, fetched concurrently (in order)."""
    return await gather_bounded(chain.query(k, height) for k in keys)


class ClientWorker(Worker):
    """Keeps ``host``'s client of ``src`` fresh and watches every header it accepts."""

    kind = "client"

    def __init__(self, host: End, src: ChainHandle, services: Services) -> None:
        super().__init__(f"client:{host.chain.chain_id}/{host.client_id}", services)
        self.host, self.src = host, src
        self.module = src.light_client()
        self.own: MemoryClientStore | None = None
        self._headers: list[tuple[bytes, list[Height]]] = []
        self.evidence_submitted = 0
        self.headers_matched = 0  # accepted headers equal to the source's block: compared only
        self.headers_verified = 0  # fully re-verified (different, or the own view was aging)
        self.dirty = True  # the own view and the refresh clock start now, whatever clear_on_start says

    def relevant(self, chain_id: str, events: Sequence[Event]) -> bool:
        """Every host block: its time may make a refresh due, and it may carry headers."""
        if chain_id != self.host.chain.chain_id:
            return False
        for e in events:
            if e.type == ev.UPDATE_CLIENT and e.text("client_id") == self.host.client_id:
                header = e.get("header") or b""
                heights = [Height.parse(h) for h in e.text("consensus_heights").split(",") if h]
                self._headers.append((header, heights))
        return True

    async def step(self) -> bool:
        host, s = self.host, self.services.settings
        tel = self.services.telemetry
        status, latest, ts = await client_status(host.chain, host.client_id, self.module)
        labels = {"chain": host.chain.chain_id, "client_id": host.client_id}
        tel.client_height.labels(**labels).set(latest.revision_height)
        now = (await host.chain.latest()).time_ns
        period = s.trusting_period_ns.get(self.src.chain_id, 0)
        if period:
            tel.client_seconds_to_expiry.labels(**labels).set(max(0, ts + period - now) / 1e9)
        if status is not Status.ACTIVE:
            raise WorkerStopped(f"client {host.client_id} on {host.chain.chain_id} is {status.value}")
        if self.own is None:
            # The relayer's own view starts from what the host trusts now; from here on it
            # only ever learns consensus states from the source chain itself.
            self.own = await mirror_client(host.chain, host.client_id, self.module)
            complete = getattr(self.src, "complete_view", None)
            if complete is not None:
                await complete(host.chain, host.client_id, self.own)
        if s.misbehaviour:
            await self._watch(now)
        if s.refresh and period and now - ts >= int(period * s.refresh_rate):
            target = (await self.src.latest()).height
            update = await update_if_needed(self.src, host.chain, host.client_id, target)
            if update is None:
                return True  # already at the source's newest block (another relayer?): next block
            out = await host.chain.submit([update])
            if out.committed:
                tel.client_updates.labels(**labels).inc()
                log.info("client refreshed", worker=self.name, height=str(target))
            else:
                tel.tx_errors.labels(chain=host.chain.chain_id, kind="update_client").inc()
                return True
        return False

    async def _watch(self, now: int) -> None:
        """Check each header the host accepted against what the source chain really committed.

        A header naming the very block the source node serves at that height (same signed block
        bytes) cannot be misbehaviour, and the host's client already verified it: it costs one
        comparison, not a second signature check. The own view is still advanced from a
        verified genuine header once it ages past a third of the trusting period, so it can
        always check the next conflicting header."""
        own = self.own
        assert own is not None
        src_height = (await self.src.latest()).height
        identity = getattr(self.src, "header_identity", None)
        period = self.services.settings.trusting_period_ns.get(self.src.chain_id, 0)
        later: list[tuple[bytes, list[Height]]] = []
        while self._headers:
            header, heights = self._headers.pop(0)
            if any(h > src_height for h in heights):
                later.append((header, heights))  # the source has not produced it (yet): check then
                continue
            for h in heights:
                genuine = await self.src.build_header(self.module.latest_height(own), h)
                if identity is not None and period and (seen := identity(header)) is not None \
                        and seen == identity(genuine) and not self._own_view_aging(own, now, period):
                    self.headers_matched += 1
                    continue
                try:
                    self.module.verify_client_message(own, genuine, now)
                    if own.get(consensus_state_key(h)) is None:
                        self.module.update_state(own, genuine)
                    conflict = self.module.check_for_misbehaviour(own, header)
                except ClientError as exc:
                    log.warning("header check failed", worker=self.name, height=str(h), error=str(exc))
                    continue
                self.headers_verified += 1
                if conflict:
                    await self._submit_evidence(header, h)
        self._headers.extend(later)

    def _own_view_aging(self, own: MemoryClientStore, now: int, period: int) -> bool:
        try:
            latest = self.module.latest_height(own)
            return now - self.module.timestamp_at_height(own, latest) >= period // 3
        except ClientError:
            return True

    async def _submit_evidence(self, header: bytes, height: Height) -> None:
        evidence = await self.src.build_misbehaviour(header, height)
        msg = client_pb2.MsgSubmitMisbehaviour(client_id=self.host.client_id, misbehaviour=evidence)
        out = await self.host.chain.submit([msg])
        log.warning("misbehaviour detected", worker=self.name, height=str(height), submitted=out.committed,
                    reason=out.reason)
        if out.committed:
            self.evidence_submitted += 1
            self.services.telemetry.misbehaviour_submitted.labels(
                chain=self.host.chain.chain_id, client_id=self.host.client_id).inc()


class HandshakeWorker(Worker):
    """A connection or channel handshake: each step proves the source end and sends the next
    message to the other chain.

    Why a shared base: both handshakes prove at the source's latest height, let the receiving
    client catch up to it in the same tx, and count and log a refused step the same way; what
    differs is only which step is next and which message it is.
    """

    step_prefix = ""  # of the tx_errors ``kind`` label: conn_try, chan_ack, ...

    async def _prove(self, src: End, dst: End,
                     path: bytes) -> tuple[bytes, client_pb2.Height, client_pb2.MsgUpdateClient | None]:
        """(proof of ``path`` at src's latest height, that height, the UpdateClient dst's client
        needs first or None)."""
        height = (await src.chain.latest()).height
        res = await src.chain.query(path, height)
        update = await update_if_needed(src.chain, dst.chain, dst.client_id, height)
        return res.proof, to_proto(height), update

    async def _submit_step(self, kind: str, dst: End, msg: Message,
                           update: client_pb2.MsgUpdateClient | None) -> TxOutcome | None:
        """Send one step (behind ``update`` when there is one); None when it was not committed."""
        out = await dst.chain.submit([msg] if update is None else [update, msg])
        if not out.committed:
            self.services.telemetry.tx_errors.labels(chain=dst.chain.chain_id,
                                                     kind=f"{self.step_prefix}_{kind}").inc()
            log.warning("handshake step failed", worker=self.name, step=kind, reason=out.reason)
            return None
        return out


class ChannelHandshakeWorker(HandshakeWorker):
    """Finishes a channel handshake from whatever step both ends are in (and close-confirm)."""

    kind = "channel"
    step_prefix = "chan"

    def __init__(self, a: End, b: End, services: Services) -> None:
        super().__init__(f"channel:{a.chain.chain_id}/{a.port}/{a.channel}", services)
        self.a, self.b = a, b

    def relevant(self, chain_id: str, events: Sequence[Event]) -> bool:
        return any(e.type.startswith("channel_") for e in events)

    async def _find_peer(self) -> str:
        """The counterparty's channel that answered ours with a Try, if there is one."""
        raw = (await self.b.chain.query(paths.NEXT_CHANNEL_SEQUENCE, prove=False)).value
        count = client_pb2.NextSequence.FromString(raw).sequence if raw is not None else 0
        for n in range(count):
            cid = f"channel-{n}"
            end = await channel_end(self.b.chain, self.b.port, cid)
            if end is not None and (end.counterparty.port_id, end.counterparty.channel_id) == (
                    self.a.port, self.a.channel) and list(end.connection_hops) == [self.b.connection_id]:
                return cid
        return ""

    async def step(self) -> bool:
        a_end = await channel_end(self.a.chain, self.a.port, self.a.channel)
        if a_end is None:
            raise WorkerStopped(f"channel {self.a.port}/{self.a.channel} vanished")
        b_id = self.b.channel or a_end.counterparty.channel_id or await self._find_peer()
        if b_id and not self.b.channel:
            self.b = End(self.b.chain, self.b.client_id, self.b.connection_id, self.b.port, b_id)
        b_end = await channel_end(self.b.chain, self.b.port, b_id) if b_id else None
        step, src, dst = self._next(a_end, b_end)
        if step is None or src is None or dst is None:
            return False
        return await self._send(step, src, dst)

    def _next(self, a: chpb.Channel, b: chpb.Channel | None) -> tuple[str | None, End | None, End | None]:
        """Which step is next, as (message kind, proving end, receiving end)."""
        A, B = chpb, self
        if b is None:
            return ("try", B.a, B.b) if a.state == A.STATE_INIT else (None, None, None)
        if a.state == A.STATE_INIT and b.state == A.STATE_TRYOPEN:
            return "ack", B.b, B.a
        if a.state == A.STATE_TRYOPEN and b.state == A.STATE_INIT:
            return "ack", B.a, B.b
        if a.state == A.STATE_OPEN and b.state == A.STATE_TRYOPEN:
            return "confirm", B.a, B.b
        if a.state == A.STATE_TRYOPEN and b.state == A.STATE_OPEN:
            return "confirm", B.b, B.a
        if a.state == A.STATE_CLOSED and b.state == A.STATE_OPEN:
            return "close", B.a, B.b
        if a.state == A.STATE_OPEN and b.state == A.STATE_CLOSED:
            return "close", B.b, B.a
        return None, None, None

    async def _send(self, kind: str, src: End, dst: End) -> bool:
        s_end = await channel_end(src.chain, src.port, src.channel)
        if s_end is None:
            return True
        proof, ph, update = await self._prove(src, dst, paths.channel(src.port, src.channel))
        msg: Message
        if kind == "try":
            msg = chpb.MsgChannelOpenTry(
                port_id=dst.port, channel=chpb.Channel(
                    state=chpb.STATE_TRYOPEN, ordering=s_end.ordering,
                    counterparty=chpb.ChannelCounterparty(port_id=src.port, channel_id=src.channel),
                    connection_hops=[dst.connection_id], version=""),
                counterparty_version=s_end.version, proof_init=proof, proof_height=ph)
        elif kind == "ack":
            msg = chpb.MsgChannelOpenAck(port_id=dst.port, channel_id=dst.channel,
                                         counterparty_channel_id=src.channel, counterparty_version=s_end.version,
                                         proof_try=proof, proof_height=ph)
        elif kind == "confirm":
            msg = chpb.MsgChannelOpenConfirm(port_id=dst.port, channel_id=dst.channel, proof_ack=proof,
                                             proof_height=ph)
        else:
            msg = chpb.MsgChannelCloseConfirm(port_id=dst.port, channel_id=dst.channel, proof_init=proof,
                                              proof_height=ph)
        out = await self._submit_step(kind, dst, msg, update)
        if out is None:
            return True
        if kind == "try" and not self.b.channel:
            opened = [e.text("channel_id") for e in out.events if e.type == ev.CHANNEL_OPEN_TRY]
            if opened:
                self.b = End(self.b.chain, self.b.client_id, self.b.connection_id, self.b.port, opened[0])
        log.info("handshake step done", worker=self.name, step=kind)
        return kind != "confirm" and kind != "close"


class ConnectionHandshakeWorker(HandshakeWorker):
    """Finishes a connection handshake from whatever step the two ends are in.

    ``a`` is the end the supervisor found unfinished; ``b`` names the counterparty chain and
    client, and its connection id once one exists (read from chain state on every pass).
    """

    kind = "connection"
    step_prefix = "conn"

    def __init__(self, a: End, b: End, services: Services) -> None:
        super().__init__(f"connection:{a.chain.chain_id}/{a.connection_id}", services)
        self.a, self.b = a, b

    def relevant(self, chain_id: str, events: Sequence[Event]) -> bool:
        return any(e.type.startswith("connection_") for e in events)

    async def _find_peer(self) -> str:
        """The counterparty's connection that answered ours with a Try, if there is one."""
        n = 0
        while True:
            cid = f"connection-{n}"
            end = await connection_end(self.b.chain, cid)
            if end is None:
                return ""
            if end.counterparty.connection_id == self.a.connection_id and end.client_id == self.b.client_id:
                return cid
            n += 1

    async def step(self) -> bool:
        a_end = await connection_end(self.a.chain, self.a.connection_id)
        if a_end is None:
            raise WorkerStopped(f"connection {self.a.connection_id} vanished")
        b_id = a_end.counterparty.connection_id or self.b.connection_id or await self._find_peer()
        if b_id and b_id != self.b.connection_id:
            self.b = End(self.b.chain, self.b.client_id, b_id)
        b_end = await connection_end(self.b.chain, b_id) if b_id else None
        if b_end is None:
            if a_end.state == cpb.CONNECTION_STATE_INIT:
                return await self._send("try", self.a, self.b, a_end)
            return False
        a_state, b_state = a_end.state, b_end.state
        steps = {
            (cpb.CONNECTION_STATE_INIT, cpb.CONNECTION_STATE_TRYOPEN): ("ack", self.b, self.a, b_end),
            (cpb.CONNECTION_STATE_TRYOPEN, cpb.CONNECTION_STATE_INIT): ("ack", self.a, self.b, a_end),
            (cpb.CONNECTION_STATE_OPEN, cpb.CONNECTION_STATE_TRYOPEN): ("confirm", self.a, self.b, a_end),
            (cpb.CONNECTION_STATE_TRYOPEN, cpb.CONNECTION_STATE_OPEN): ("confirm", self.b, self.a, b_end),
        }
        step = steps.get((a_state, b_state))
        if step is None:
            return False
        return await self._send(*step)

    async def _send(self, kind: str, src: End, dst: End, src_end: cpb.ConnectionEnd) -> bool:
        proof, ph, update = await self._prove(src, dst, paths.connection(src.connection_id))
        msg: Message
        if kind == "try":
            msg = cpb.MsgConnectionOpenTry(
                client_id=dst.client_id,
                counterparty=cpb.Counterparty(client_id=src.client_id, connection_id=src.connection_id,
                                              prefix=cpb.MerklePrefix(key_prefix=src.chain.prefix)),
                counterparty_versions=list(src_end.versions), delay_period=src_end.delay_period,
                proof_init=proof, proof_height=ph)
        elif kind == "ack":
            msg = cpb.MsgConnectionOpenAck(connection_id=dst.connection_id,
                                           counterparty_connection_id=src.connection_id,
                                           version=src_end.versions[0], proof_try=proof, proof_height=ph)
        else:
            msg = cpb.MsgConnectionOpenConfirm(connection_id=dst.connection_id, proof_ack=proof,
                                               proof_height=ph)
        if await self._submit_step(kind, dst, msg, update) is None:
            return True
        log.info("handshake step done", worker=self.name, step=kind)
        return kind != "confirm"
