"""The IBC handler contract: embeds the host-independent IBC core (chains/ibc).

Storage layout (yui-ibc-solidity's, which the QBFT light client verifies): the value V the
core writes at ICS-24 path P is committed as the word keccak256(V) in storage slot
keccak256(keccak256(P) || 0^32); deleting P clears the slot, so absence is provable. The
core also needs to read V back, so V itself is kept in the contract's blob trie (see
WorldState.blobs), whose root is part of the contract's storage as well.

The commitment prefix the core advertises is this contract's address, which is what the
counterparty's QBFT client expects as prefix.

The ICS-20 transfer app is installed on the ``transfer`` port with the core's StoreBank, so
balances and the per-channel escrow accounts live in this contract's state and commit with
it. Accounts are "0x" + lowercase hex of the 20-byte address; a MsgTransfer must name the
tx's signer as sender, which is the host's half of ICS-20 authentication.

Given the DvP escrow, the ``dvp`` port is bound next to ``transfer``. Its module moves ST in
the world state rather than the IBC store, so each IBC call hands it the EVM transaction's
CallContext (chains/evm/dvp.py) for as long as the core runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from chains.evm import dvp
from chains.evm.contracts import CALL_COST, WRITE_COST, CallContext, ContractError, Log
from chains.evm.state import WorldState
from chains.ibc.apps import transfer
from chains.ibc.errors import IbcError
from chains.ibc.events import Event
from chains.ibc.handler import IbcHandler
from kakehashi.ibc.v1 import transfer_pb2
from lightclients.crypto import keccak256
from lightclients.interface import Height, LightClientModule
from lightclients.qbft.client import commitment_slot


class ContractIbcStore:
    """IbcStore over the contract's blob trie, mirroring each write as a commitment slot."""

    def __init__(self, state: WorldState, address: bytes) -> None:
        self.state = state
        self.address = address
        self.writes = 0

    def get(self, key: bytes) -> bytes | None:
        return self.state.blobs(self.address).get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        self.state.set_blob(self.address, key, bytes(value))
        self.state.set_storage(self.address, commitment_slot(key), keccak256(bytes(value)))

    def delete(self, key: bytes) -> None:
        self.writes += 1
        self.state.delete_blob(self.address, key)
        self.state.set_storage(self.address, commitment_slot(key), 0)


_TRANSFER_NAME = transfer_pb2.MsgTransfer.DESCRIPTOR.full_name


def account_of(address: bytes) -> str:
    """The bank/ICS-20 account name of an EVM address."""
    return "0x" + address.hex()


class _Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, height: Height, event: Event) -> None:
        self.events.append(event)


class IbcHandlerContract:
    """Runs IBC messages (each arg a serialized google.protobuf.Any) through the core."""

    def __init__(
        self,
        address: bytes,
        state: WorldState,
        clients: Mapping[str, LightClientModule],
        revision: int = 0,
        escrow: dvp.DvpEscrow | None = None,
    ) -> None:
        self.address = address
        self.revision = revision
        self.store = ContractIbcStore(state, address)
        self._sink = _Collect()
        self.handler = IbcHandler(self.store, clients, address, self._sink)
        self.transfer = transfer.install(self.handler)
        self.dvp = dvp.install(self.handler, escrow) if escrow is not None else None

    def install(self, state: WorldState) -> None:
        state.account(self.address).code_hash = keccak256(b"kakehashi.evm.ibc-handler")

    def call(self, ctx: CallContext, method: str, args: tuple[bytes, ...]) -> None:
        ctx.cost += CALL_COST
        if method != "ibc":
            raise ContractError(f"IBC handler has no method {method!r}")
        if not args:
            raise ContractError("an IBC call carries at least one message")
        messages = []
        for i, raw in enumerate(args):
            msg = any_pb2.Any()
            try:
                msg.ParseFromString(raw)
            except DecodeError as exc:
                raise ContractError(f"IBC message {i} is not a protobuf Any: {exc}") from None
            if msg.type_url.rpartition("/")[2] == _TRANSFER_NAME:
                inner = transfer_pb2.MsgTransfer()
                try:
                    inner.ParseFromString(msg.value)
                except DecodeError as exc:
                    raise ContractError(f"IBC message {i}: malformed MsgTransfer: {exc}") from None
                if inner.sender != account_of(ctx.sender):
                    raise ContractError(f"IBC message {i}: MsgTransfer sender must be the tx signer")
            messages.append(msg)
        self._sink.events.clear()
        self.store.writes = 0
        try:
            with self.dvp.bound(ctx) if self.dvp is not None else nullcontext():
                self.handler.execute(messages, Height(self.revision, ctx.height), ctx.time_ns)
        except IbcError as exc:
            raise ContractError(f"IBC: {exc}") from None
        ctx.cost += WRITE_COST * self.store.writes
        for event in self._sink.events:
            ctx.logs.append(Log(self.address, event.type, event.attributes))
        self._sink.events.clear()
