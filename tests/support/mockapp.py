"""A recording IBC app for the conformance tests: its behaviour is driven by the packet data.

Data starting with ``fail`` gets an error ack, ``async`` no ack yet, ``raise`` makes the
callback raise; anything else a success ack. Every received packet also writes a key, so a
test can see that an error ack discards the app's writes but keeps the receipt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chains.ibc.context import Acknowledgement, Context
from chains.ibc.errors import AppError
from kakehashi.ibc.v1 import channel_pb2 as chpb

PORT_ID = "mock"
VERSION = "mock-1"


def app_key(sequence: int) -> bytes:
    return f"mockapp/received/{sequence}".encode()


@dataclass
class MockApp:
    refuse_open: bool = False
    refuse_close: bool = False
    calls: list[tuple[str, int]] = field(default_factory=list)

    def on_chan_open_init(self, ctx: Context, order: int, connection_hops: list[str], port_id: str,
                          channel_id: str, counterparty: chpb.ChannelCounterparty, version: str) -> str:
        if self.refuse_open:
            raise AppError("mock app refuses to open channels")
        self.calls.append(("open_init", 0))
        return version or VERSION

    def on_chan_open_try(self, ctx: Context, order: int, connection_hops: list[str], port_id: str,
                         channel_id: str, counterparty: chpb.ChannelCounterparty,
                         counterparty_version: str) -> str:
        if self.refuse_open:
            raise AppError("mock app refuses to open channels")
        self.calls.append(("open_try", 0))
        return counterparty_version

    def on_chan_open_ack(self, ctx: Context, port_id: str, channel_id: str,
                         counterparty_channel_id: str, counterparty_version: str) -> None:
        if self.refuse_open:
            raise AppError("mock app refuses to open channels")
        self.calls.append(("open_ack", 0))

    def on_chan_open_confirm(self, ctx: Context, port_id: str, channel_id: str) -> None:
        if self.refuse_open:
            raise AppError("mock app refuses to open channels")
        self.calls.append(("open_confirm", 0))

    def on_chan_close_init(self, ctx: Context, port_id: str, channel_id: str) -> None:
        if self.refuse_close:
            raise AppError("mock app refuses to close")
        self.calls.append(("close_init", 0))

    def on_chan_close_confirm(self, ctx: Context, port_id: str, channel_id: str) -> None:
        self.calls.append(("close_confirm", 0))

    def on_recv_packet(self, ctx: Context, packet: chpb.Packet, relayer: str) -> Acknowledgement | None:
        self.calls.append(("recv", packet.sequence))
        ctx.store.set(app_key(packet.sequence), bytes(packet.data))
        data = bytes(packet.data)
        if data.startswith(b"raise"):
            raise RuntimeError("mock app blew up")
        if data.startswith(b"async"):
            return None
        if data.startswith(b"fail"):
            return Acknowledgement(False, b"error:" + data[:16])
        return Acknowledgement(True, b"ok:" + data[:16])

    def on_acknowledgement_packet(self, ctx: Context, packet: chpb.Packet, acknowledgement: bytes,
                                  relayer: str) -> None:
        self.calls.append(("ack", packet.sequence))

    def on_timeout_packet(self, ctx: Context, packet: chpb.Packet, relayer: str) -> None:
        self.calls.append(("timeout", packet.sequence))

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)
