"""What the conformance suite needs of a host chain, whatever its ledger and light client.

The suite is written once against this surface and run over several host kinds: the
test-only root host (unit tests), the EVM chain (IBC inside signed txs in QBFT-sealed
blocks) and the Corda chain (IBC inside notarised txs sealed into checkpoints). Each kind
makes exactly one block per ``tx``/``send``/``idle`` step, so tests can reason about heights
and block times the same way on all of them. ``root()`` is the commitment the counterparty's
client checks proofs against, so "a failed tx left the store unchanged" is checked on the
real committed root of every kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from chains.ibc import packets
from chains.ibc.apps.bank import StoreBank
from chains.ibc.apps.transfer import TransferApp
from chains.ibc.context import Context
from chains.ibc.errors import TxFailed
from chains.ibc.events import EventLog
from chains.ibc.handler import IbcHandler
from chains.ibc.host.store import IbcStore
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.interface import Height

T = TypeVar("T")


def _app_call_class() -> type[Message]:
    """A test-only message that runs a queued host callable inside a real transaction.

    Apps on a chain (an IBC app sending a packet, writing an async ack) act from within a
    transaction of that chain; on the real hosts the only way in is a signed/notarised tx, so
    the callable rides in one as this message. Built at runtime so no .proto is needed.
    """
    fdp = descriptor_pb2.FileDescriptorProto(name="kakehashi_tests/app_call.proto",
                                             package="kakehashi.tests.v1", syntax="proto3")
    msg = fdp.message_type.add(name="MsgAppCall")
    msg.field.add(name="call_id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    cls: type[Message] = message_factory.GetMessageClass(pool.FindMessageTypeByName("kakehashi.tests.v1.MsgAppCall"))
    return cls


MsgAppCall = _app_call_class()


@dataclass
class Block:
    height: Height
    time_ns: int
    root: bytes


class ChainHost(ABC):
    """Shared bookkeeping; subclasses implement the block-making and client-facing parts."""

    chain_id: str
    prefix: bytes
    block_ns: int
    client_type: str  # the type of the client a counterparty runs to track this host
    height: Height
    now_ns: int
    blocks: dict[Height, Block]
    events: EventLog
    handler: IbcHandler
    store: IbcStore
    transfer: TransferApp

    # --- time ---------------------------------------------------------------------------

    def next_block(self, advance_ns: int | None = None) -> None:
        self.height = self.height.increment()
        self.now_ns += self.block_ns if advance_ns is None else advance_ns

    @property
    def latest(self) -> Block:
        return self.blocks[self.height]

    def root(self) -> bytes:
        return self.latest.root

    # --- apps ---------------------------------------------------------------------------

    def install_app_calls(self) -> None:
        self._calls: dict[int, Callable[[Context], object]] = {}
        self._call_results: dict[int, object] = {}
        self._next_call = 0

        def run(ctx: Context, msg: Any) -> object:
            call_id = int(msg.call_id)
            fn = self._calls.get(call_id)
            if fn is None:
                raise ValueError(f"no queued app call {call_id}")
            result = fn(ctx)
            self._call_results[call_id] = result
            return result

        self.handler.register_message(MsgAppCall, run)

    def app_call(self, fn: Callable[[Context], T]) -> T:
        """Run app code against the core in a new block; its IBC error propagates unwrapped."""
        self._next_call += 1
        call_id = self._next_call
        self._calls[call_id] = fn
        try:
            self.tx(MsgAppCall(call_id=call_id))
        except TxFailed as exc:
            raise exc.cause from None
        finally:
            self._calls.pop(call_id, None)
        result: T = self._call_results.pop(call_id)  # type: ignore[assignment]
        return result

    def send(self, port: str, chan: str, data: bytes, timeout_height: Height | None = None,
             timeout_ns: int = 0) -> chpb.Packet:
        """An app on this chain sends a packet in a new block; returns the committed packet."""
        th = timeout_height or Height(0, 0)
        self.app_call(lambda ctx: packets.send_packet(ctx, port, chan, th, timeout_ns, data))
        packet = self.events.of_type("send_packet")[-1].packet()
        assert packet is not None
        return packet

    def bank(self) -> StoreBank:
        return StoreBank(self.store)

    def spender(self) -> str:
        """The bank account the suite's tx signer may spend from on this host."""
        return "relayer"

    # --- subclass responsibilities --------------------------------------------------------

    @abstractmethod
    def tx(self, *msgs: Message) -> list[object]:
        """Run msgs as one transaction in a new block and return the core's results; on
        failure the block is still made and TxFailed carries the core's typed cause."""

    @abstractmethod
    def idle(self, blocks: int = 1, advance_ns: int | None = None) -> None:
        """Make empty blocks, so heights and time pass with the IBC state unchanged."""

    @abstractmethod
    def prove(self, path: bytes, height: Height | None = None) -> bytes:
        """Proof bytes, in this chain's native format, of ``path`` against the block at ``height``."""

    @abstractmethod
    def prove_many(self, paths: list[bytes], height: Height | None = None) -> bytes:
        """One multiproof, in this chain's native batch format, of every path at ``height``."""

    @abstractmethod
    def header(self, height: Height | None = None, trusted: Height | None = None) -> bytes:
        """The update message the counterparty's client takes for ``height``, built on the
        consensus state it already has at ``trusted``."""

    @abstractmethod
    def conflicting_header(self, height: Height, trusted: Height) -> bytes:
        """A header at ``height`` signed by the real validators/notaries that conflicts with
        the one this host committed (equivocation), as a client update message."""

    @abstractmethod
    def misbehaviour(self, height: Height, trusted: Height) -> bytes:
        """Evidence of that equivocation as a MsgSubmitMisbehaviour payload."""

    @abstractmethod
    def client_state(self, trusting_period_ns: int, max_clock_drift_ns: int) -> bytes:
        """MsgCreateClient client state of a client of this host at its latest height."""

    @abstractmethod
    def consensus_state(self) -> bytes:
        """MsgCreateClient consensus state of this host's latest block."""
