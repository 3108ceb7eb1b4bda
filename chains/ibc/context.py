"""What a host hands the IBC core for one transaction, and the overlay nesting it needs.

A :class:`Context` is built per transaction by :class:`chains.ibc.handler.IbcHandler`; its
store is a write buffer over the host store and its events are emitted only when the whole
transaction succeeds. :meth:`Context.child` gives an app callback its own buffer so that an
error acknowledgement can drop what the app wrote.

``openings`` is the transaction's proof context: multiproofs opened by earlier messages of
the same transaction, keyed by (client id, proof height, prefix), so that later messages
can carry an empty proof (chains/ibc/clients.py). It lives and dies with the Context, so
nothing verified in one transaction is trusted in another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chains.ibc.errors import InvalidMessage
from chains.ibc.events import Event
from chains.ibc.store import Overlay
from kakehashi.ibc.v1 import client_pb2
from lightclients.interface import BatchOpening, Height, LightClientModule

if TYPE_CHECKING:
    from chains.ibc.routing import Router


@dataclass
class Context:
    store: Overlay
    height: Height
    now_ns: int
    prefix: bytes
    clients: Mapping[str, LightClientModule]
    router: Router
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
