"""ICS-05 ports and ICS-26 routing: which application module answers for a port.

Callbacks receive the transaction's :class:`Context` so an app writes through the same
overlay as the core; whatever a callback raises aborts the message (and so the transaction),
except ``on_recv_packet``, whose failures the core turns into an error acknowledgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chains.ibc.context import Context
from chains.ibc.errors import IdentifierExists, NoRoute
from chains.ibc.identifiers import validate_port_id
from kakehashi.ibc.v1 import channel_pb2


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """An app's answer to a packet: ``data`` is committed as-is (its hash is stored)."""

    success: bool
    data: bytes


class IBCModule(Protocol):
    def on_chan_open_init(
        self,
        ctx: Context,
        order: int,
        connection_hops: list[str],
        port_id: str,
        channel_id: str,
        counterparty: channel_pb2.ChannelCounterparty,
        version: str,
    ) -> str:
        """Return the version to store (an empty proposal may be replaced by the app's default)."""

    def on_chan_open_try(
        self,
        ctx: Context,
        order: int,
        connection_hops: list[str],
        port_id: str,
        channel_id: str,
        counterparty: channel_pb2.ChannelCounterparty,
        counterparty_version: str,
    ) -> str:
        """Return the version this end agrees to."""

    def on_chan_open_ack(
        self, ctx: Context, port_id: str, channel_id: str, counterparty_channel_id: str,
        counterparty_version: str,
    ) -> None: ...

    def on_chan_open_confirm(self, ctx: Context, port_id: str, channel_id: str) -> None: ...

    def on_chan_close_init(self, ctx: Context, port_id: str, channel_id: str) -> None: ...

    def on_chan_close_confirm(self, ctx: Context, port_id: str, channel_id: str) -> None: ...

    def on_recv_packet(
        self, ctx: Context, packet: channel_pb2.Packet, relayer: str
    ) -> Acknowledgement | None:
        """Return the ack now, or None to acknowledge later (asynchronous ack)."""

    def on_acknowledgement_packet(
        self, ctx: Context, packet: channel_pb2.Packet, acknowledgement: bytes, relayer: str
    ) -> None: ...

    def on_timeout_packet(self, ctx: Context, packet: channel_pb2.Packet, relayer: str) -> None: ...


class Router:
    """Port bindings. A port is bound once; rebinding would let a second app steal packets."""

    def __init__(self) -> None:
        self._ports: dict[str, IBCModule] = {}

    def bind_port(self, port_id: str, module: IBCModule) -> None:
        validate_port_id(port_id)
        if port_id in self._ports:
            raise IdentifierExists(f"port {port_id!r} is already bound")
        self._ports[port_id] = module

    def route(self, port_id: str) -> IBCModule:
        module = self._ports.get(port_id)
        if module is None:
            raise NoRoute(f"no module is bound to port {port_id!r}")
        return module

    def ports(self) -> list[str]:
        return sorted(self._ports)
