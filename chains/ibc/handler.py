"""The entry point a host embeds: runs a transaction of IBC messages atomically.

A host calls :meth:`IbcHandler.execute` with its current height and block time for each
transaction. Messages run in order against one write buffer; only when all succeed is the
buffer flushed to the host store and the events handed to the host's sink. Any failure
raises :class:`TxFailed` naming the message index, and the host store is untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from chains.ibc import channels, clients, connections, packets
from chains.ibc.context import Context, IBCModule
from chains.ibc.errors import IbcError, InvalidMessage, TxFailed
from chains.ibc.events import Event, EventSink
from chains.ibc.host.store import IbcStore, Overlay
from chains.ibc.routing import Router
from kakehashi.ibc.v1 import channel_pb2, client_pb2, connection_pb2
from lightclients.interface import Height, LightClientModule

MsgHandler = Callable[[Context, Any], object]
T = TypeVar("T")

CORE_MESSAGES: dict[type[Message], MsgHandler] = {
    client_pb2.MsgCreateClient: clients.create_client,
    client_pb2.MsgUpdateClient: clients.update_client,
    client_pb2.MsgSubmitMisbehaviour: clients.submit_misbehaviour,
    connection_pb2.MsgConnectionOpenInit: connections.open_init,
    connection_pb2.MsgConnectionOpenTry: connections.open_try,
    connection_pb2.MsgConnectionOpenAck: connections.open_ack,
    connection_pb2.MsgConnectionOpenConfirm: connections.open_confirm,
    channel_pb2.MsgChannelOpenInit: channels.open_init,
    channel_pb2.MsgChannelOpenTry: channels.open_try,
    channel_pb2.MsgChannelOpenAck: channels.open_ack,
    channel_pb2.MsgChannelOpenConfirm: channels.open_confirm,
    channel_pb2.MsgChannelCloseInit: channels.close_init,
    channel_pb2.MsgChannelCloseConfirm: channels.close_confirm,
    channel_pb2.MsgRecvPacket: packets.recv_packet,
    channel_pb2.MsgAcknowledgement: packets.acknowledge_packet,
    channel_pb2.MsgTimeout: packets.timeout_packet,
    channel_pb2.MsgTimeoutOnClose: packets.timeout_on_close,
}


class IbcHandler:
    """The IBC module of one host chain."""

    def __init__(
        self,
        store: IbcStore,
        clients: Mapping[str, LightClientModule],
        prefix: bytes,
        sink: EventSink,
    ) -> None:
        if not prefix:
            raise ValueError("the commitment prefix must not be empty")
        self.store = store
        self.clients = dict(clients)
        self.prefix = bytes(prefix)
        self.sink = sink
        self.router = Router()
        self._handlers: dict[type[Message], MsgHandler] = dict(CORE_MESSAGES)
        self._by_name: dict[str, type[Message]] = {
            cls.DESCRIPTOR.full_name: cls for cls in self._handlers
        }

    def bind_port(self, port_id: str, module: IBCModule) -> None:
        self.router.bind_port(port_id, module)

    def register_message(self, cls: type[Message], handler: MsgHandler) -> None:
        """Let an app (e.g. transfer's MsgTransfer) run its own messages inside IBC txs."""
        if cls in self._handlers:
            raise ValueError(f"{cls.DESCRIPTOR.full_name} already has a handler")
        self._handlers[cls] = handler
        self._by_name[cls.DESCRIPTOR.full_name] = cls

    def decode(self, msg: Message) -> Message:
        """Unpack a google.protobuf.Any into the registered message type it names."""
        if not isinstance(msg, any_pb2.Any):
            return msg
        name = msg.type_url.rpartition("/")[2]
        cls = self._by_name.get(name)
        if cls is None:
            raise InvalidMessage(f"unknown message type {msg.type_url!r}")
        inner = cls()
        try:
            inner.ParseFromString(msg.value)
        except DecodeError as exc:
            raise InvalidMessage(f"malformed {name}: {exc}") from exc
        return inner

    def context(self, height: Height, now_ns: int) -> Context:
        return Context(Overlay(self.store), height, now_ns, self.prefix, self.clients, self.router)

    def execute(
        self, messages: Sequence[Message], height: Height, now_ns: int
    ) -> tuple[list[object], list[Event]]:
        """Run the messages all-or-nothing; return each handler's result and the events."""
        ctx = self.context(height, now_ns)
        results: list[object] = []
        for index, raw in enumerate(messages):
            try:
                msg = self.decode(raw)
                handler = self._handlers.get(type(msg))
                if handler is None:
                    raise InvalidMessage(f"no handler for message type {type(msg).__name__}")
                results.append(handler(ctx, msg))
            except IbcError as exc:
                raise TxFailed(index, exc) from exc
            except (ValueError, TypeError, OverflowError, LookupError, DecodeError) as exc:
                # Protobuf field access and Height construction raise these on impossible
                # values; they are bad input like any other and must not escape untyped.
                raise TxFailed(index, InvalidMessage(f"{type(exc).__name__}: {exc}")) from exc
        self._commit(ctx)
        return results, list(ctx.events)

    def call(self, fn: Callable[[Context], T], height: Height, now_ns: int) -> T:
        """Run host code that drives the core directly (an app sending a packet from a
        contract call) with the same all-or-nothing guarantee as a message."""
        ctx = self.context(height, now_ns)
        try:
            result = fn(ctx)
        except (ValueError, TypeError, OverflowError, LookupError, DecodeError) as exc:
            raise InvalidMessage(f"{type(exc).__name__}: {exc}") from exc
        self._commit(ctx)
        return result

    def _commit(self, ctx: Context) -> None:
        ctx.store.flush()
        for event in ctx.events:
            self.sink.emit(ctx.height, event)
