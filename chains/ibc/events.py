"""Events the IBC core emits, with a deterministic encoding, and a by-height log.

Relayers reconstruct packets from events alone, so packet events carry the whole encoded
Packet (and the ack where there is one) rather than a digest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import DecodeError

from kakehashi.ibc.v1 import channel_pb2, client_pb2
from lightclients.interface import Height

CREATE_CLIENT = "create_client"
UPDATE_CLIENT = "update_client"
CLIENT_MISBEHAVIOUR = "client_misbehaviour"
CONNECTION_OPEN_INIT = "connection_open_init"
CONNECTION_OPEN_TRY = "connection_open_try"
CONNECTION_OPEN_ACK = "connection_open_ack"
CONNECTION_OPEN_CONFIRM = "connection_open_confirm"
CHANNEL_OPEN_INIT = "channel_open_init"
CHANNEL_OPEN_TRY = "channel_open_try"
CHANNEL_OPEN_ACK = "channel_open_ack"
CHANNEL_OPEN_CONFIRM = "channel_open_confirm"
CHANNEL_CLOSE = "channel_close"
SEND_PACKET = "send_packet"
RECV_PACKET = "recv_packet"
WRITE_ACKNOWLEDGEMENT = "write_acknowledgement"
ACKNOWLEDGE_PACKET = "acknowledge_packet"
TIMEOUT_PACKET = "timeout_packet"
NOOP = "noop"


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    attributes: tuple[tuple[str, bytes], ...]

    @classmethod
    def make(cls, type_: str, **attrs: str | bytes) -> Event:
        items = tuple(
            (k, v.encode() if isinstance(v, str) else bytes(v)) for k, v in sorted(attrs.items())
        )
        return cls(type_, items)

    def get(self, key: str) -> bytes | None:
        for k, v in self.attributes:
            if k == key:
                return v
        return None

    def text(self, key: str) -> str:
        value = self.get(key)
        return "" if value is None else value.decode()

    def packet(self) -> channel_pb2.Packet | None:
        raw = self.get("packet")
        if raw is None:
            return None
        packet = channel_pb2.Packet()
        try:
            packet.ParseFromString(raw)
        except DecodeError:
            return None  # events come from nodes: a malformed one names no packet
        return packet

    def encode(self) -> bytes:
        msg = client_pb2.Event(
            type=self.type,
            attributes=[client_pb2.EventAttribute(key=k, value=v) for k, v in self.attributes],
        )
        return msg.SerializeToString(deterministic=True)

    @classmethod
    def decode(cls, data: bytes) -> Event:
        msg = client_pb2.Event()
        msg.ParseFromString(data)
        return cls(msg.type, tuple((a.key, bytes(a.value)) for a in msg.attributes))


class EventSink(Protocol):
    def emit(self, height: Height, event: Event) -> None: ...


class EventLog:
    """Keeps every emitted event by host height, which is what relayers query."""

    def __init__(self) -> None:
        self.by_height: dict[Height, list[Event]] = {}

    def emit(self, height: Height, event: Event) -> None:
        self.by_height.setdefault(height, []).append(event)

    def at(self, height: Height) -> list[Event]:
        return list(self.by_height.get(height, []))

    def all(self) -> Iterator[tuple[Height, Event]]:
        for height in sorted(self.by_height):
            for event in self.by_height[height]:
                yield height, event

    def of_type(self, type_: str) -> list[Event]:
        return [e for _, e in self.all() if e.type == type_]
