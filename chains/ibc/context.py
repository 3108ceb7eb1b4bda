"""What a host hands the IBC core for one transaction, and the overlay nesting it needs.

A :class:`Context` is built per transaction by :class:`chains.ibc.handler.IbcHandler`; its
store is a write buffer over the host store and its events are emitted only when the whole
transaction succeeds. :meth:`Context.child` gives an app callback its own buffer so that an
error acknowledgement can drop what the app wrote.

``openings`` is the transaction's proof context: multiproofs opened by earlier messages of
the same transaction, keyed by (client id, proof height, prefix), so that later messages
can carry an empty proof (chains/ibc/clients.py). It lives and dies with the Context, so
nothing verified in one transaction is trusted in another.

The app interface (:class:`IBCModule`, :class:`Acknowledgement`) is defined here because every
callback receives a Context; a Context reaches apps through :class:`PortRouter`, which
:class:`chains.ibc.routing.Router` implements. Callbacks write through the same overlay as
the core; whatever a callback raises aborts the message (and so the transaction), except
``on_recv_packet``, whose failures the core turns into an error acknowledgement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from chains.ibc.errors import InvalidMessage
from chains.ibc.events import Event
from chains.ibc.host.store import Overlay
from kakehashi.ibc.v1 import channel_pb2, client_pb2
from lightclients.interface import BatchOpening, Height, LightClientModule


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


class PortRouter(Protocol):
    """Which app answers for a port (ICS-26); raises NoRoute for an unbound port."""

    def route(self, port_id: str) -> IBCModule: ...


@dataclass
class Context:
    store: Overlay
    height: Height
    now_ns: int
    prefix: bytes
    clients: Mapping[str, LightClientModule]
    router: PortRouter
    events: list[Event] = field(default_factory=list)
    openings: dict[tuple[str, Height, bytes], list[BatchOpening]] = field(default_factory=dict)

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def child(self) -> Context:
        return Context(
            Overlay(self.store), self.height, self.now_ns, self.prefix, self.clients, self.router,
            openings=self.openings,
        )

    def absorb(self, child: Context) -> None:
        """Keep what a child context wrote and emitted."""
        child.store.flush()
        self.events.extend(child.events)


def height_of(msg: client_pb2.Height) -> Height:
    return Height(int(msg.revision_number), int(msg.revision_height))


def to_proto(height: Height) -> client_pb2.Height:
    return client_pb2.Height(
        revision_number=height.revision_number, revision_height=height.revision_height
    )


def proof_height_of(msg: client_pb2.Height, present: bool) -> Height:
    """A proof height must be given and non-zero: no chain commits anything at 0-0."""
    if not present:
        raise InvalidMessage("proof_height is missing")
    height = height_of(msg)
    if height.is_zero():
        raise InvalidMessage("proof_height must not be zero")
    return height
