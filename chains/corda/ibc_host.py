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
"""

from __future__ import annotations

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from chains.corda.contracts import ContractError, LedgerTransaction
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.ibc.v1 import transfer_pb2

IBC_CONTRACT = "IBC"
IBC_COMMAND = "Execute"
_TRANSFER = transfer_pb2.MsgTransfer.DESCRIPTOR.full_name


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
    if msg.type_url.rpartition("/")[2] == _TRANSFER:
        inner = transfer_pb2.MsgTransfer()
        try:
            inner.ParseFromString(msg.value)
        except DecodeError:
            raise ContractError("malformed MsgTransfer") from None
        if inner.sender not in {account_of(bytes(k)) for k in c.signers}:
            raise ContractError("MsgTransfer sender must be the account of a signer of its command")
    return msg


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
        ibc_messages(ltx.commands)
