"""IBC as part of the notarised state transition: IBC messages ride in Corda transactions.

Design (how IBC state is held and ordered):
- IBC state is *not* spread over UTXO states. The IBC host store is one sparse Merkle tree
  (chains/store/smt.py) kept by the notary cluster, keyed by ICS-24 path bytes; its root is
  ``ibc_root`` in every checkpoint. A Corda transaction carries IBC messages as commands of
  the ``IBC`` contract (data = a google.protobuf.Any of the message); it may also move
  ordinary states (Cash, locks) in the same transaction, which stays all-or-nothing.
- Ordering: the cluster is the sequencer. IBC commands run in notarisation order against the
  pending height, so two transactions touching the same channel are serialised exactly as
  they are notarised; a later one sees the earlier one's writes. A transaction whose IBC
  messages fail is refused as a whole and consumes nothing.
- Time: IBC messages execute at the pending height with block time = max(median of the
  signing members' clocks, previous checkpoint time + 1, previous execution time), and the
  next checkpoint's timestamp may not be earlier, so a receipt written before a packet's
  timeout is never in a checkpoint whose time could prove the timeout.
- Who may submit: an IBC command must name at least one signer (the relayer or the app
  user), who signs the txid like any other required signer. App messages that move funds
  (ICS-20 MsgTransfer) must name as sender the account of one of that command's signers,
  ``account_of(key)`` = "ed25519:" + hex(public key), so nobody spends another's balance.
  The DvP lock's MsgDvpSend follows the same rule for its sender (the buyer).
- DvP (chains/corda/dvp.py): the ledger half of a dvp packet's life rides in the same tx as
  its IBC half. A MsgDvpSend is refused unless the tx creates the DvpLock of that trade, and
  a MsgAcknowledgement / MsgTimeout / MsgTimeoutOnClose of a packet sent from port "dvp" is
  refused unless the tx consumes the DvpLock of the packet's trade on the packet's channel.
  So the DvP escrow's cash is locked exactly while the packet commitment exists, and no
  relayer can settle the packet on the IBC side while leaving the cash locked (or the other
  way round): the DvpLock contract then checks that the exit matches the ack or timeout.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from chains.corda.cash import DVP
from chains.corda.contracts import ContractError, LedgerTransaction
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.errors import InvalidMessage
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2, transfer_pb2

IBC_CONTRACT = "IBC"
IBC_COMMAND = "Execute"
# Messages that spend an account: their ``sender`` must be the account of a command signer.
_SPENDERS: dict[str, type[transfer_pb2.MsgTransfer] | type[dvp_pb2.MsgDvpSend]] = {
    cls.DESCRIPTOR.full_name: cls for cls in (transfer_pb2.MsgTransfer, dvp_pb2.MsgDvpSend)
}
# Messages that finish a packet on its sending chain.
_PACKET_EXITS: dict[
    str, type[channel_pb2.MsgAcknowledgement] | type[channel_pb2.MsgTimeout] | type[channel_pb2.MsgTimeoutOnClose]
] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (channel_pb2.MsgAcknowledgement, channel_pb2.MsgTimeout, channel_pb2.MsgTimeoutOnClose)
}
_DVP_SEND = dvp_pb2.MsgDvpSend.DESCRIPTOR.full_name


def account_of(public_key: bytes) -> str:
    """The IBC bank / ICS-20 account name of a Corda party's Ed25519 key."""
    return "ed25519:" + public_key.hex()


def ibc_command(message: Message, signers: list[bytes]) -> pb.Command:
    wrapped = any_pb2.Any()
    wrapped.Pack(message)
    return pb.Command(
        contract=IBC_CONTRACT,
        name=IBC_COMMAND,
        data=wrapped.SerializeToString(deterministic=True),
        signers=signers,
    )


def _unpack(c: pb.Command) -> any_pb2.Any:
    msg = any_pb2.Any()
    try:
        msg.ParseFromString(c.data)
    except DecodeError:
        raise ContractError("IBC command data is not a protobuf Any") from None
    cls = _SPENDERS.get(type_name(msg))
    if cls is not None:
        inner = unpack_as(msg, cls)
        if inner.sender not in {account_of(bytes(k)) for k in c.signers}:
            raise ContractError(f"{cls.__name__} sender must be the account of a signer of its command")
    return msg


def type_name(msg: any_pb2.Any) -> str:
    return msg.type_url.rpartition("/")[2]


M = TypeVar("M", bound=Message)


def unpack_as(msg: any_pb2.Any, cls: type[M]) -> M:
    """The Any's payload as ``cls``; malformed bytes are a ContractError, never a DecodeError."""
    inner = cls()
    try:
        inner.ParseFromString(msg.value)
    except DecodeError:
        raise ContractError(f"malformed {cls.__name__}") from None
    return inner


def _packet_exits(messages: list[any_pb2.Any]) -> list[tuple[str, channel_pb2.Packet]]:
    """(message type name, packet) of every ack / timeout / timeout-on-close message."""
    out = []
    for m in messages:
        cls = _PACKET_EXITS.get(type_name(m))
        if cls is not None:
            out.append((cls.__name__, unpack_as(m, cls).packet))
    return out


def _dvp_locks(states: list[pb.TransactionState]) -> list[dvp_pb2.DvpLock]:
    out = []
    for st in states:
        lock = dvp_pb2.DvpLock()
        try:
            lock.ParseFromString(st.data)
        except DecodeError:
            raise ContractError("DvP state data does not decode") from None
        out.append(lock)
    return out


def _check_dvp(ltx: LedgerTransaction, messages: list[any_pb2.Any]) -> None:
    created = {lock.trade_id for lock in _dvp_locks(ltx.outputs_of(DVP))}
    for m in messages:
        if type_name(m) == _DVP_SEND and unpack_as(m, dvp_pb2.MsgDvpSend).terms.trade_id not in created:
            raise ContractError("a MsgDvpSend must ride in the tx that creates its trade's DvpLock")
    consumed = {(lock.trade_id, lock.channel_id, bytes(lock.terms_hash)) for lock in _dvp_locks(ltx.inputs_of(DVP))}
    for kind, packet in _packet_exits(messages):
        if packet.source_port != dvp_app.PORT_ID:
            continue
        try:
            terms = dvp_app.decode_packet_data(bytes(packet.data))
        except InvalidMessage as exc:
            raise ContractError(f"{kind} of a dvp packet: {exc}") from None
        if (terms.trade_id, packet.source_channel, dvp_app.terms_hash(terms)) not in consumed:
            raise ContractError(
                f"{kind} of dvp packet {packet.source_channel}/{packet.sequence} (trade {terms.trade_id!r}) "
                "must consume that trade's DvpLock in the same transaction"
            )


def ibc_messages(commands: list[pb.Command] | tuple[pb.Command, ...]) -> list[any_pb2.Any]:
    return [_unpack(c) for c in commands if c.contract == IBC_CONTRACT]


class IbcHostContract:
    """Ledger-level checks of IBC commands; their effect is executed by the notary cluster."""

    name = IBC_CONTRACT

    def verify(self, ltx: LedgerTransaction) -> None:
        for c in ltx.commands_for(IBC_CONTRACT):
            if c.name != IBC_COMMAND or not c.signers:
                raise ContractError("IBC commands are 'Execute' and name a signer")
        if ltx.inputs_of(IBC_CONTRACT) or ltx.outputs_of(IBC_CONTRACT):
            raise ContractError("IBC state lives in the host store, never in ledger states")
        _check_dvp(ltx, ibc_messages(ltx.commands))
