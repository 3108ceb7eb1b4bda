"""An in-process ChainHandle over a test Host, so the relayer runs end to end in unit tests.

It answers from the host's committed blocks exactly as a node would: values and proofs at a
height come from that height's sparse-Merkle root, events from the host's event log, and a
submitted tx is one block. Time is the host's simulated clock. ``break_stream`` makes the
next block stream fail once, to exercise reconnect clearing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from google.protobuf.message import Message

from chains.ibc import queries
from chains.ibc.errors import IbcError
from chains.ibc.events import Event
from lightclients.interface import Height, LightClientModule
from relayer.core.chain import BlockEvents, ChainStatus, PendingTx, QueryResult, TxOutcome
from relayer.core.workers import Services, Settings
from relayer.ops.telemetry import Telemetry
from tests.support import rootclient
from tests.support.host import Host, SmtStore

POLL_S = 0.002


class HostHandle:
    def __init__(self, host: Host, trusting_period_ns: int = 3600 * 10**9) -> None:
        self.host = host
        self.trusting_period_ns = trusting_period_ns
        self._signer = asyncio.Lock()
        self.txs: list[list[Message]] = []
        self.failed: list[str] = []
        self.stream_breaks = 0

    @property
    def chain_id(self) -> str:
        return self.host.chain_id

    @property
    def kind(self) -> str:
        return "testhost"

    @property
    def prefix(self) -> bytes:
        return self.host.prefix

    async def latest(self) -> ChainStatus:
        return ChainStatus(self.host.height, self.host.latest.time_ns)

    async def query(self, path: bytes, height: Height | None = None, prove: bool = True) -> QueryResult:
        block = self.host.blocks[height or self.host.height]
        store = self.host.store
        assert isinstance(store, SmtStore)
        value = store.tree.at(block.root).get(path)
        proof = store.prove(block.root, path) if prove else b""
        return QueryResult(value, proof, block.height)

    async def query_multi(self, paths: Sequence[bytes], height: Height) -> tuple[list[bytes | None], bytes]:
        block = self.host.blocks[height]
        store = self.host.store
        assert isinstance(store, SmtStore)
        view = store.tree.at(block.root)
        return [view.get(p) for p in paths], store.prove_many(block.root, list(paths))

    async def packet_commitments(self, port: str, channel: str) -> list[int]:
        return queries.packet_commitments(self.host.store, port, channel)

    async def unreceived_packets(self, port: str, channel: str, sequences: Sequence[int]) -> list[int]:
        return queries.unreceived_packets(self.host.store, port, channel, sequences)

    async def unreceived_acks(self, port: str, channel: str, sequences: Sequence[int]) -> list[int]:
        return queries.unreceived_acks(self.host.store, port, channel, sequences)

    async def packet_events(self, event_type: str, port: str, channel: str,
                            sequences: Sequence[int]) -> dict[int, Event]:
        wanted = set(sequences)
        out: dict[int, Event] = {}
        for _, event in self.host.events.all():
            p = event.packet() if event.type == event_type else None
            if p is None or p.sequence not in wanted:
                continue
            end = (p.source_port, p.source_channel) if event_type == "send_packet" else (
                p.destination_port, p.destination_channel)
            if end == (port, channel):
                out[p.sequence] = event
        return out

    def light_client(self) -> LightClientModule:
        return rootclient.RootClient()

    async def client_init(self) -> tuple[str, bytes, bytes]:
        return rootclient.CLIENT_TYPE, self.host.client_state(self.trusting_period_ns), self.host.consensus_state()

    async def build_header(self, trusted: Height, target: Height) -> bytes:
        return self.host.header(target)

    async def build_misbehaviour(self, conflicting: bytes, target: Height) -> bytes:
        # The test client's evidence is the genuine header: it conflicts with the forged one.
        return self.host.header(target)

    async def submit(self, msgs: Sequence[Message]) -> TxOutcome:
        async with self._signer:
            self.txs.append(list(msgs))
            try:
                self.host.tx(*msgs)
            except IbcError as exc:
                self.failed.append(str(exc))
                return TxOutcome(False, str(exc), (), self.host.height)
            return TxOutcome(True, "", tuple(self.host.events.at(self.host.height)), self.host.height)

    async def submit_nowait(self, msgs: Sequence[Message]) -> PendingTx:
        """A host tx is its own block: executed now, its outcome ready at once."""
        return PendingTx.settled(await self.submit(msgs))

    def break_stream(self) -> None:
        self.stream_breaks += 1

    async def blocks(self, from_height: int) -> AsyncIterator[BlockEvents]:
        h = from_height
        rev = self.host.height.revision_number
        while True:
            if self.stream_breaks:
                self.stream_breaks -= 1
                raise ConnectionError("test stream broken")
            while self.host.height.revision_height >= h:
                block = self.host.blocks[Height(rev, h)]
                yield BlockEvents(block.height, block.time_ns, tuple(self.host.events.at(block.height)))
                h += 1
            await asyncio.sleep(POLL_S)


def services(**overrides: object) -> Services:
    settings = Settings(trusting_period_ns={"chain-a": 3600 * 10**9, "chain-b": 3600 * 10**9})
    for key, value in overrides.items():
        setattr(settings, key, value)
    return Services(settings=settings, telemetry=Telemetry(), mqtt=RecordingPublisher())


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str, dict[str, object]]] = []

    def publish(self, chain: str, port: str, channel: str, event: str, payload: dict[str, object]) -> None:
        self.events.append((chain, port, channel, event, payload))


async def until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Real-time wait for a condition on chain state (the chains run in simulated time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(POLL_S)
