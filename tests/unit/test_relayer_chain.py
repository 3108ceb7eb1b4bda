"""GrpcChainHandle's generic half, against a recording stand-in for NodeClient and a codec."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from google.protobuf.message import Message

from chains.ibc.events import Event
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.node.v1 import node_pb2
from lightclients.crypto import sha256
from lightclients.interface import Height, LightClientModule
from relayer.core.chain import GrpcChainHandle
from tests.support import rootclient
from tests.support.fakewatch import ResultWatch


def packet_event(type_: str, seq: int) -> node_pb2.Event:
    packet = chpb.Packet(sequence=seq, source_port="transfer", source_channel="channel-0",
                         destination_port="transfer", destination_channel="channel-3", data=b"d")
    ev = Event.make(type_, packet=packet.SerializeToString(deterministic=True), ack=b"ok")
    return node_pb2.Event(type=ev.type, attributes=[node_pb2.Attribute(key=k, value=v) for k, v in ev.attributes])


class FakeNode:
    address = "fake:1"

    def __init__(self) -> None:
        self.blocks = {
            1: node_pb2.Block(height=1, time_ns=10, results=[node_pb2.TxResult(events=[packet_event("send_packet", 1)])]),
            2: node_pb2.Block(height=2, time_ns=20, results=[node_pb2.TxResult(events=[
                packet_event("send_packet", 2), packet_event("write_acknowledgement", 7)])]),
        }
        self.submitted: list[bytes] = []
        self.txs: dict[bytes, bytes] = {}
        self.queries: list[tuple[str, int, bool]] = []

    async def status(self) -> node_pb2.StatusResponse:
        return node_pb2.StatusResponse(chain_id="evm-1", latest_height=max(self.blocks), latest_time_ns=20,
                                       revision_number=3)

    async def block(self, height: int = 0, results_only: bool = False) -> node_pb2.Block:
        return self.blocks[height]

    async def query_ibc(self, path: str, height: int = 0, prove: bool = True) -> node_pb2.QueryIbcResponse:
        self.queries.append((path, height, prove))
        if path.startswith("commitments/"):
            return node_pb2.QueryIbcResponse(value=b"v", found=True, proof=b"p", proof_height=height or 2,
                                             revision_number=3)
        return node_pb2.QueryIbcResponse(found=False, proof=b"absent", proof_height=height or 2, revision_number=3)

    async def submit(self, tx: bytes) -> bytes:
        self.submitted.append(tx)
        h = sha256(tx)
        self.txs[h] = tx
        return h

    def outcome_of(self, tx_hash: bytes) -> node_pb2.TxResult:
        tx = self.txs[tx_hash]
        if tx.startswith(b"bad"):
            return node_pb2.TxResult(status=node_pb2.TX_STATUS_FAILED, reason="nope", height=3)
        return node_pb2.TxResult(status=node_pb2.TX_STATUS_COMMITTED, height=3, events=[
            node_pb2.Event(type="noop", attributes=[node_pb2.Attribute(key="sequence", value=b"1")])])

    async def stream_blocks(self, from_height: int, results_only: bool = False) -> AsyncIterator[node_pb2.Block]:
        for h in sorted(self.blocks):
            if h >= from_height:
                yield self.blocks[h]


class FakeCodec:
    kind = "evm"
    prefix = b"ibc"

    def encode_tx(self, msgs: Sequence[Message], signer_state: object) -> bytes:
        return b"".join(m.SerializeToString(deterministic=True) for m in msgs) or b"bad"

    def light_client(self) -> LightClientModule:
        return rootclient.RootClient()

    async def client_init(self, node: Any) -> tuple[str, bytes, bytes]:
        return "testroot", b"cs", b"cons"

    async def build_header(self, node: Any, trusted: Height, target: Height) -> bytes:
        return f"{trusted}->{target}".encode()

    async def build_misbehaviour(self, node: Any, conflicting: bytes, target: Height) -> bytes:
        return conflicting + b"|" + str(target).encode()


def handle(held: bool = False) -> tuple[GrpcChainHandle, FakeNode]:
    node = FakeNode()
    watch = ResultWatch(node, held=held)
    return GrpcChainHandle("evm-1", node, FakeCodec(), watch=watch), node  # type: ignore[arg-type]


async def test_status_and_queries_carry_the_revision() -> None:
    h, node = handle()
    st = await h.latest()
    assert st.height == Height(3, 2) and st.time_ns == 20
    got = await h.query(b"commitments/ports/transfer/channels/channel-0/sequences/1", Height(3, 2))
    assert got.value == b"v" and got.proof == b"p" and got.height == Height(3, 2)
    absent = await h.query(b"receipts/x", prove=True)
    assert absent.value is None and absent.proof == b"absent"
    assert node.queries[-1] == ("receipts/x", 0, True)
    assert h.kind == "evm" and h.prefix == b"ibc" and h.chain_id == "evm-1"


async def test_packet_data_comes_from_the_chains_blocks() -> None:
    h, _ = handle()
    sends = await h.packet_events("send_packet", "transfer", "channel-0", [1, 2, 5])
    assert sorted(sends) == [1, 2]
    assert sends[2].packet() is not None
    acks = await h.packet_events("write_acknowledgement", "transfer", "channel-3", [7])
    assert acks[7].get("ack") == b"ok"
    assert await h.packet_events("send_packet", "transfer", "channel-9", [1]) == {}


async def test_submit_maps_results() -> None:
    h, node = handle()
    msg = chpb.MsgRecvPacket(signer="r")
    outs = await asyncio.gather(*(h.submit([msg]) for _ in range(5)))
    assert all(o.committed and o.noops == 1 and o.height == Height(0, 3) for o in outs)
    assert len(node.submitted) == 5
    bad = await h.submit([])
    assert not bad.committed and bad.reason == "nope"


async def test_txs_are_queued_in_call_order_and_in_flight_together() -> None:
    """Pipelining: the next tx is signed and sent while earlier ones still wait for their block."""
    h, node = handle(held=True)
    pending = []
    for seq in range(1, 6):
        pending.append(await h.submit_nowait([chpb.MsgRecvPacket(packet=chpb.Packet(sequence=seq), signer="r")]))
    await asyncio.sleep(0.01)
    assert [chpb.MsgRecvPacket.FromString(tx).packet.sequence for tx in node.submitted] == [1, 2, 3, 4, 5]
    assert not any(p.done() for p in pending)  # none has its block yet, all five were sent
    h.watch.release.set()  # type: ignore[attr-defined]
    outs = [await p.result() for p in pending]
    assert all(o.committed for o in outs)


async def test_block_stream_yields_ibc_events_and_feeds_the_index() -> None:
    h, _ = handle()
    seen = [b async for b in h.blocks(2)]
    assert [b.height for b in seen] == [Height(3, 2)]
    assert [e.type for e in seen[0].events] == ["send_packet", "write_acknowledgement"]


async def test_codec_parts_are_delegated() -> None:
    h, _ = handle()
    assert await h.build_header(Height(3, 1), Height(3, 2)) == b"3-1->3-2"
    assert await h.build_misbehaviour(b"forged", Height(3, 2)) == b"forged|3-2"
    assert await h.client_init() == ("testroot", b"cs", b"cons")
    assert h.light_client().client_type == "testroot"


async def test_the_event_index_forgets_finished_packets() -> None:
    """Sends leave the index when the packet is acked or timed out here, acks when a worker saw
    them reach the source: it holds what may still be relayed, not the chain's history."""
    h, _ = handle()
    assert await h.packet_events("send_packet", "transfer", "channel-0", [1, 2])
    h._remember(Event.decode(Event.make("acknowledge_packet", packet=chpb.Packet(
        sequence=1, source_port="transfer", source_channel="channel-0").SerializeToString()).encode()))
    assert sorted(await h.packet_events("send_packet", "transfer", "channel-0", [1, 2])) == [2]
    h.forget_acks("transfer", "channel-3", [7])
    assert await h.packet_events("write_acknowledgement", "transfer", "channel-3", [7]) == {}
