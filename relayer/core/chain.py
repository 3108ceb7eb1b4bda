"""The one interface the relayer uses per chain, and its gRPC-backed implementation.

Why an interface: the supervisor, workers and planner must not know whether a chain is the
EVM chain, the Corda chain or an in-process test host. Everything they need is here: height
and time, ICS-24 queries with proofs, the stateless-recovery queries, this chain's headers
for the counterparty's client, one-tx submission, and a block stream. What differs per chain
(tx encoding and signing, header building, the light-client module that verifies the chain)
sits behind :class:`ChainCodec`, which the EVM and Corda adapters implement; the generic gRPC
parts are written once in :class:`GrpcChainHandle`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import structlog
from google.protobuf.message import Message

from chains.ibc import events as ev
from chains.ibc.events import Event
from chains.node.client import NodeClient, NodeError
from kakehashi.node.v1 import node_pb2
from lightclients.interface import ClientStore, Height, LightClientModule
from relayer.core.watch import ChainWatch

log = structlog.get_logger("kakehashi.chain")


@dataclass(frozen=True, slots=True)
class ChainStatus:
    height: Height
    time_ns: int


@dataclass(frozen=True, slots=True)
class QueryResult:
    """A value at an ICS-24 path (None when absent) with its (non-)membership proof."""

    value: bytes | None
    proof: bytes
    height: Height


@dataclass(frozen=True, slots=True)
class TxOutcome:
    committed: bool
    reason: str
    events: tuple[Event, ...]
    height: Height | None

    @property
    def noops(self) -> int:
        """Messages another relayer had already delivered: success, counted apart."""
        return sum(1 for e in self.events if e.type == ev.NOOP)


class PendingTx:
    """A tx the node admitted (or refused) whose outcome is still to come.

    Why apart from the outcome: a relayer that waited for each tx's block before building the
    next one put at most one of its txs in each block per chain. Admission orders the tx (its
    nonce is taken); the outcome arrives with its block while the next txs are built.
    """

    def __init__(self, outcome: Awaitable[TxOutcome]) -> None:
        self._outcome = asyncio.ensure_future(outcome)

    async def result(self) -> TxOutcome:
        return await asyncio.shield(self._outcome)

    def done(self) -> bool:
        return self._outcome.done()

    @classmethod
    def settled(cls, outcome: TxOutcome) -> PendingTx:
        fut: asyncio.Future[TxOutcome] = asyncio.get_running_loop().create_future()
        fut.set_result(outcome)
        return cls(fut)


@dataclass(frozen=True, slots=True)
class BlockEvents:
    height: Height
    time_ns: int
    events: tuple[Event, ...]


class ChainHandle(Protocol):
    """Async access to one chain. Implementations serialise use of the signer internally."""

    @property
    def chain_id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def prefix(self) -> bytes:
        """The commitment prefix the counterparty verifies this chain's proofs under."""

    async def latest(self) -> ChainStatus: ...

    async def query(self, path: bytes, height: Height | None = None, prove: bool = True) -> QueryResult:
        """Value and proof at ``path`` committed at ``height`` (None = latest)."""

    async def query_multi(self, paths: Sequence[bytes], height: Height) -> tuple[list[bytes | None], bytes]:
        """Values at ``paths`` at ``height`` and ONE multiproof of all of them (the
        counterparty client opens it once; shared upper nodes are sent and hashed once)."""

    async def packet_commitments(self, port: str, channel: str) -> list[int]: ...

    async def unreceived_packets(self, port: str, channel: str, sequences: Sequence[int]) -> list[int]: ...

    async def unreceived_acks(self, port: str, channel: str, sequences: Sequence[int]) -> list[int]: ...

    async def packet_events(self, event_type: str, port: str, channel: str,
                            sequences: Sequence[int]) -> dict[int, Event]:
        """The latest ``send_packet`` / ``write_acknowledgement`` event per sequence, keyed by
        the sequence, for packets whose source (send) or destination (ack) is port/channel.
        Packet data and acks are not in the state, only their hashes, so they come from events."""

    def light_client(self) -> LightClientModule:
        """The module the counterparty runs to verify THIS chain (the relayer runs it too)."""

    async def client_init(self) -> tuple[str, bytes, bytes]:
        """(client type, client state, consensus state) for a new client of this chain."""

    async def build_header(self, trusted: Height, target: Height) -> bytes:
        """A client message taking the counterparty's client of this chain from trusted to target."""

    async def build_misbehaviour(self, conflicting: bytes, target: Height) -> bytes:
        """Evidence that ``conflicting`` (a header accepted somewhere) contradicts this chain."""

    async def submit(self, msgs: Sequence[Message]) -> TxOutcome:
        """All messages in one tx; waits for the result."""

    async def submit_nowait(self, msgs: Sequence[Message]) -> PendingTx:
        """All messages in one tx, queued for the node in call order; returns once the tx is
        signed and on its way, before its block (``PendingTx.result`` waits for that)."""

    def blocks(self, from_height: int) -> AsyncIterator[BlockEvents]: ...


class ChainCodec(Protocol):
    """The chain-specific half of a handle (implemented by the EVM and Corda adapters)."""

    kind: str
    prefix: bytes

    def encode_tx(self, msgs: Sequence[Message], prepared: object) -> bytes:
        """Sign and encode IBC messages as one native tx (nonce / input selection inside);
        ``prepared`` is what ``prepare_tx`` returned for these messages (None without one)."""

    def light_client(self) -> LightClientModule: ...

    async def client_init(self, node: NodeClient) -> tuple[str, bytes, bytes]: ...

    async def build_header(self, node: NodeClient, trusted: Height, target: Height) -> bytes: ...

    async def build_misbehaviour(self, node: NodeClient, conflicting: bytes, target: Height) -> bytes: ...


@runtime_checkable
class SignerSync(Protocol):
    """Optional codec half for signer state that lives on chain (the EVM account nonce).

    ``before_tx`` runs under the handle's signer lock before ``encode_tx`` (which takes the next
    nonce); it reads the chain only when the local count is unknown. ``after_tx`` gets the
    node's result, or None when the tx was refused or lost, so the codec resyncs next time.
    """

    async def before_tx(self, node: NodeClient) -> None: ...

    def after_tx(self, result: node_pb2.TxResult | None) -> None: ...


@runtime_checkable
class TxPreparer(Protocol):
    """Optional codec half: an async look-up ``encode_tx(msgs)`` needs (Corda: the DvpLock
    states a dvp ack/timeout must consume). Runs before the signer lock is taken (a read, no
    signer state); what it returns is handed to ``encode_tx`` with the same ``msgs``."""

    async def prepare_tx(self, node: NodeClient, msgs: Sequence[Message]) -> object: ...


@runtime_checkable
class ViewCompleter(Protocol):
    """Optional codec half: what a client of this chain keeps beside its client and consensus
    states (Corda: notary sets under ``meta/``), copied from ``host`` into the relayer's own view
    so that view can verify headers exactly as the host's client does."""

    async def complete_view(self, host: ChainHandle, client_id: str, store: ClientStore) -> None: ...


def _height(revision: int, h: int) -> Height:
    return Height(revision, h)


def _events(result: node_pb2.TxResult) -> tuple[Event, ...]:
    return tuple(Event(e.type, tuple((a.key, bytes(a.value)) for a in e.attributes)) for e in result.events)


class GrpcChainHandle:
    """ChainHandle over a node's gRPC service; chain specifics come from the codec.

    Packet data is looked up in an index of send/ack events that the handle fills from the
    node's blocks, so it is rebuilt from the chain after a restart: one block stream from the
    first block the node still serves (a node with ``storage.retain_heights`` has pruned the
    ones before; packets sent there cannot be relayed from it).
    """

    def __init__(self, chain_id: str, node: NodeClient, codec: ChainCodec, *, watch: ChainWatch | None = None) -> None:
        self._chain_id = chain_id
        self.node = node
        self.codec = codec
        self._signer = asyncio.Lock()
        self._revision = 0
        self._status_known = False
        self._index: dict[tuple[str, str, str, int], Event] = {}
        self._indexed_to = 0
        self._indexing = asyncio.Lock()
        self.watch = watch or ChainWatch(node)
        self._inflight = 0
        self._drained = asyncio.Event()
        self._drained.set()

    @property
    def chain_id(self) -> str:
        return self._chain_id

    @property
    def kind(self) -> str:
        return self.codec.kind

    @property
    def prefix(self) -> bytes:
        return self.codec.prefix

    async def latest(self) -> ChainStatus:
        """The head: from this handle's block watch once it follows the chain (no round trip;
        at most a stream delivery behind), else from Status."""
        head = getattr(self.watch, "head", None)
        if self._status_known and head is not None and getattr(self.watch, "following", False):
            return ChainStatus(_height(self._revision, head.height), head.time_ns)
        st = await self.node.status()
        self._revision = int(st.revision_number)
        self._status_known = True
        return ChainStatus(_height(self._revision, int(st.latest_height)), int(st.latest_time_ns))

    async def query(self, path: bytes, height: Height | None = None, prove: bool = True) -> QueryResult:
        res = await self.node.query_ibc(path.decode(), height.revision_height if height else 0, prove)
        return QueryResult(bytes(res.value) if res.found else None, bytes(res.proof),
                           _height(int(res.revision_number), int(res.proof_height)))

    async def query_multi(self, paths: Sequence[bytes], height: Height) -> tuple[list[bytes | None], bytes]:
        res = await self.node.query_ibc_batch([p.decode() for p in paths], height.revision_height,
                                              node_pb2.PROOF_MODE_MULTI)
        return [bytes(e.value) if e.found else None for e in res.entries], bytes(res.multiproof)

    async def packet_commitments(self, port: str, channel: str) -> list[int]:
        return await self.node.packet_commitments(port, channel)

    async def unreceived_packets(self, port: str, channel: str, sequences: Sequence[int]) -> list[int]:
        return await self.node.unreceived_packets(port, channel, list(sequences))

    async def unreceived_acks(self, port: str, channel: str, sequences: Sequence[int]) -> list[int]:
        return await self.node.unreceived_acks(port, channel, list(sequences))

    async def _index_to(self, height: int, earliest: int = 1) -> None:
        """Index every block up to ``height`` through one results-only block stream (a restarted
        relayer reads its whole history this way: one call, not one GetBlock per block)."""
        if self._indexed_to >= height:
            return
        async with self._indexing:
            if self._indexed_to < earliest - 1:
                log.warning("packet data before the node's earliest retained height is not available",
                            chain=self._chain_id, earliest=earliest, indexed_to=self._indexed_to)
                self._indexed_to = earliest - 1
            if self._indexed_to >= height:
                return
            blocks = self.node.stream_blocks(self._indexed_to + 1, results_only=True)
            async with contextlib.aclosing(blocks):
                async for blk in blocks:
                    for result in blk.results:
                        for event in _events(result):
                            self._remember(event)
                    self._indexed_to = max(self._indexed_to, int(blk.height))
                    if blk.height >= height:
                        break

    def _remember(self, event: Event) -> None:
        packet = event.packet()
        if packet is None:
            return
        if event.type == ev.SEND_PACKET:
            key = (event.type, packet.source_port, packet.source_channel, packet.sequence)
        elif event.type == ev.WRITE_ACKNOWLEDGEMENT:
            key = (event.type, packet.destination_port, packet.destination_channel, packet.sequence)
        elif event.type in (ev.ACKNOWLEDGE_PACKET, ev.TIMEOUT_PACKET):
            # the packet's life on this (source) chain is over: its send is never needed again
            self._index.pop((ev.SEND_PACKET, packet.source_port, packet.source_channel, packet.sequence), None)
            return
        else:
            return
        self._index[key] = event

    def forget_acks(self, port: str, channel: str, sequences: Sequence[int]) -> None:
        """Acks written here that reached the packets' source (a worker saw them land there):
        the index keeps only what may still be relayed, so it does not grow with history."""
        for seq in sequences:
            self._index.pop((ev.WRITE_ACKNOWLEDGEMENT, port, channel, seq), None)

    async def packet_events(self, event_type: str, port: str, channel: str,
                            sequences: Sequence[int]) -> dict[int, Event]:
        status = await self.node.status()
        self._revision = int(status.revision_number)
        self._status_known = True
        await self._index_to(int(status.latest_height), max(1, int(status.earliest_height)))
        found = {s: self._index.get((event_type, port, channel, s)) for s in sequences}
        return {s: e for s, e in found.items() if e is not None}

    def light_client(self) -> LightClientModule:
        return self.codec.light_client()

    async def client_init(self) -> tuple[str, bytes, bytes]:
        return await self.codec.client_init(self.node)

    async def build_header(self, trusted: Height, target: Height) -> bytes:
        return await self.codec.build_header(self.node, trusted, target)

    async def build_misbehaviour(self, conflicting: bytes, target: Height) -> bytes:
        return await self.codec.build_misbehaviour(self.node, conflicting, target)

    def header_identity(self, client_message: bytes) -> bytes | None:
        """The bytes that name the block a client message carries (None: not a header), so two
        headers of one block compare equal whatever their trusted height; see the codecs."""
        ident = getattr(self.codec, "header_identity", None)
        return ident(client_message) if ident is not None else None

    async def complete_view(self, host: ChainHandle, client_id: str, store: ClientStore) -> None:
        if isinstance(self.codec, ViewCompleter):
            await self.codec.complete_view(host, client_id, store)

    async def submit(self, msgs: Sequence[Message]) -> TxOutcome:
        return await (await self.submit_nowait(msgs)).result()

    async def submit_nowait(self, msgs: Sequence[Message]) -> PendingTx:
        """Sign under the signer lock (local work only; the nonce is counted locally) and queue
        the tx for the node in lock order; the outcome comes from this handle's block watch.

        A refused or lost tx makes the codec resync its signer state, but only once this
        handle's txs in flight have landed: reading the chain's nonce while some are pending
        would hand their nonces out again."""
        sync = self.codec if isinstance(self.codec, SignerSync) else None
        prepared = await self.codec.prepare_tx(self.node, msgs) if isinstance(self.codec, TxPreparer) else None
        await self.watch.start()
        async with self._signer:
            if sync is not None:
                while self._inflight and getattr(self.codec, "nonce", 0) is None:
                    await self._drained.wait()
                await sync.before_tx(self.node)
            tx = self.codec.encode_tx(msgs, prepared)
            self._inflight += 1
            self._drained.clear()
            admitted = asyncio.ensure_future(self.node.submit(tx))  # queued now, in lock order
        return PendingTx(self._outcome(admitted, sync))

    async def _outcome(self, admitted: Awaitable[bytes], sync: SignerSync | None) -> TxOutcome:
        result: node_pb2.TxResult | None = None
        try:
            try:
                tx_hash = await admitted
            except NodeError as exc:
                return TxOutcome(False, f"not admitted: {exc.details or exc}", (), None)
            result = await self.watch.wait_tx(tx_hash)
        finally:
            self._inflight -= 1
            if sync is not None:
                final = result is not None and result.status in (node_pb2.TX_STATUS_COMMITTED,
                                                                node_pb2.TX_STATUS_FAILED)
                sync.after_tx(result if final else None)
            if not self._inflight:
                self._drained.set()
        committed = result.status == node_pb2.TX_STATUS_COMMITTED
        height = _height(self._revision, int(result.height)) if result.height else None
        reason = result.reason or ("" if committed else f"tx status {node_pb2.TxStatus.Name(result.status)}")
        return TxOutcome(committed, reason, _events(result), height)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.watch.close()

    async def blocks(self, from_height: int) -> AsyncIterator[BlockEvents]:
        if not self._status_known:
            await self.latest()  # heights carry the revision, which only Status reports
        async for blk in self.node.stream_blocks(from_height, results_only=True):
            events = tuple(e for r in blk.results for e in _events(r))
            for event in events:
                self._remember(event)
            yield BlockEvents(_height(self._revision, int(blk.height)), int(blk.time_ns), events)
