"""The Corda chain's half of a relayer chain handle: notarised IBC txs, checkpoint headers, evidence.

Why a fresh random privacy salt per tx: the txid is fixed by the salt, and the node refuses
a txid it has already seen; a resubmission after a FAILED result must be a new tx. Plain
IBC txs consume no states, so there is no input selection to track between txs.

Why DvP acks and timeouts need a look-up first: the host refuses a MsgAcknowledgement /
MsgTimeout for a ``dvp`` packet unless the same tx consumes the packet's DvpLock and its
escrowed Cash through the matching exit (Settle, RefundOnError, RefundOnTimeout). Which
states those are is on the ledger, not in the packet, so :meth:`CordaCodec.prepare_tx` asks
the node (``dvp_lock`` and ``holders``) before :meth:`encode_tx` builds the tx. A message
whose lock is no longer LOCKED (another relayer exited it first) or does not match the
packet is left out of the tx: on chain it could only make the whole tx fail.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError, Message

from chains.corda.cash import brand_key
from chains.corda.dvp import exit_parts
from chains.corda.ibc_host import account_of, ibc_command
from chains.corda.transaction import SALT_LEN, SignedTransaction, WireTransaction
from chains.ibc.apps import dvp
from chains.ibc.errors import InvalidMessage
from chains.ibc.host import paths
from chains.node.client import NodeClient, NodeError
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.corda.client import (
    IBC_PREFIX,
    CordaLightClient,
    decode_consensus_state,
    header_message,
    misbehaviour_message,
    notary_set_key,
)
from lightclients.crypto import ed25519_public_key
from lightclients.interface import (
    ClientError,
    ClientStore,
    Height,
    LightClientModule,
    consensus_state_key,
)
from relayer.codecs.common import (
    DEFAULT_DRIFT_NS,
    DEFAULT_TRUSTING_NS,
    CodecError,
    client_init_at,
    conflicting_header,
    fetch_client_header,
)
from relayer.core.bounded import gather_bounded
from relayer.core.chain import ChainHandle
from relayer.core.packets import keep_messages

KIND = "corda"


def fresh_salt() -> bytes:
    while True:
        salt = os.urandom(SALT_LEN)
        if any(salt):
            return salt


@dataclass
class DvpExits:
    """The ledger half of the dvp acks/timeouts in one tx, built by ``prepare_tx``."""

    msgs: Sequence[Message]
    dropped: set[int] = field(default_factory=set)
    inputs: list[pb.StateRef] = field(default_factory=list)
    outputs: list[pb.TransactionState] = field(default_factory=list)
    commands: list[pb.Command] = field(default_factory=list)
    references: list[pb.StateRef] = field(default_factory=list)


def _dvp_packet(msg: Message) -> tuple[str, chpb.Packet] | None:
    """(exit kind, packet) when ``msg`` ends a dvp packet on its source chain (here)."""
    if isinstance(msg, chpb.MsgAcknowledgement):
        kind = "Settle" if dvp.ack_succeeded(bytes(msg.acknowledgement)) else "RefundOnError"
    elif isinstance(msg, (chpb.MsgTimeout, chpb.MsgTimeoutOnClose)):
        kind = "RefundOnTimeout"
    else:
        return None
    packet = msg.packet
    return (kind, packet) if packet.source_port == dvp.PORT_ID else None


def _ref(doc: object) -> pb.StateRef:
    if not isinstance(doc, dict):
        raise CodecError(f"node answered a state reference as {doc!r}")
    return pb.StateRef(txid=bytes.fromhex(str(doc["txid"])), index=int(doc["index"]))


async def dvp_exits(node: NodeClient, msgs: Sequence[Message], notary: bytes) -> DvpExits | None:
    """Exit parts for every dvp ack/timeout in ``msgs`` (None when there is none).

    The Cash output of an exit pays the payee (Settle) or the payer (refunds), so it carries
    the Admission of the lock's (issuer, brand) as a reference input, once per brand.
    """
    found = [(i, got) for i, m in enumerate(msgs) if (got := _dvp_packet(m)) is not None]
    if not found:
        return None
    exits = DvpExits(msgs)
    admissions: dict[str, pb.StateRef] = {}
    taken: set[tuple[bytes, int]] = set()
    trade_ids: dict[int, str] = {}
    for i, (_kind, packet) in found:
        try:
            trade_ids[i] = dvp.decode_packet_data(bytes(packet.data)).trade_id
        except InvalidMessage:
            exits.dropped.add(i)
    try:
        holders, answers = await asyncio.gather(node.query_app("holders"), gather_bounded(
            node.query_app("dvp_lock", trade_id=t) for t in trade_ids.values()))
        locks: dict[int, Any] = dict(zip(trade_ids, answers, strict=True))
        for i, (kind, packet) in found:
            if i not in locks:
                continue
            got = locks[i]
            if not isinstance(got, dict):
                raise CodecError(f"the node answered dvp_lock with {got!r}")
            if (got.get("status") != "locked" or got.get("channel_id") != packet.source_channel
                    or got.get("sequence") != packet.sequence):
                exits.dropped.add(i)
                continue
            lock_ref, cash_ref = _ref(got.get("lock")), _ref(got.get("cash"))
            if (bytes(lock_ref.txid), lock_ref.index) in taken:  # the same packet twice in one tx
                exits.dropped.add(i)
                continue
            taken.add((bytes(lock_ref.txid), lock_ref.index))
            lock = dvp_pb2.DvpLock.FromString(bytes.fromhex(str(got["lock_state"])))
            coin = brand_key(bytes(lock.cash_issuer), lock.brand)
            if coin not in admissions:
                admitted = holders.get(coin) if isinstance(holders, dict) else None
                if admitted is None:
                    raise CodecError(f"the Corda chain has no Admission for cash issuer "
                                     f"{lock.cash_issuer.hex()[:16]} brand {lock.brand!r}")
                admissions[coin] = _ref(admitted["admission"])
            ins, outs, cmds = exit_parts(kind, lock_ref, lock, cash_ref, len(exits.outputs), notary)
            exits.inputs += ins
            exits.outputs += outs
            for c in cmds:
                if c not in exits.commands:  # one Cash Move serves every exit in the tx
                    exits.commands.append(c)
    except (KeyError, TypeError, ValueError, DecodeError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"the node's dvp_lock / holders answer is malformed: {exc}") from None
    exits.references = list(admissions.values())
    return exits


class CordaCodec:
    kind = KIND
    prefix = IBC_PREFIX

    def __init__(self, seed: bytes, notary: bytes, *, trusting_period_ns: int = DEFAULT_TRUSTING_NS,
                 max_clock_drift_ns: int = DEFAULT_DRIFT_NS) -> None:
        if len(seed) != 32:
            raise CodecError("a Corda relayer key is a 32-byte Ed25519 seed")
        if len(notary) != 32:
            raise CodecError("the notary identity is a 32-byte Ed25519 public key")
        self._seed = seed
        self.public_key = ed25519_public_key(seed)
        self.account = account_of(self.public_key)
        self.notary = notary
        self.trusting_period_ns = trusting_period_ns
        self.max_clock_drift_ns = max_clock_drift_ns

    async def prepare_tx(self, node: NodeClient, msgs: Sequence[Message]) -> DvpExits | None:
        """Look up the DvpLock exits ``encode_tx(msgs)`` must carry (a read: no signer lock)."""
        try:
            return await dvp_exits(node, msgs, self.notary)
        except NodeError as exc:
            raise CodecError(f"cannot look up the DvP locks this tx must exit: {exc}") from None

    def encode_tx(self, msgs: Sequence[Message], prepared: object) -> bytes:
        exits = prepared if isinstance(prepared, DvpExits) and prepared.msgs is msgs else None
        if exits is None and any(_dvp_packet(m) is not None for m in msgs):
            raise CodecError("a dvp ack/timeout needs its DvpLock exit: prepare_tx must run first")
        keep = keep_messages(msgs, exits.dropped if exits is not None else set())
        commands = [ibc_command(m, [self.public_key]) for m in keep]
        inputs: tuple[pb.StateRef, ...] = ()
        outputs: tuple[pb.TransactionState, ...] = ()
        references: tuple[pb.StateRef, ...] = ()
        if exits is not None:
            commands += exits.commands
            inputs, outputs, references = tuple(exits.inputs), tuple(exits.outputs), tuple(exits.references)
        wtx = WireTransaction(inputs, outputs, tuple(commands), self.notary, fresh_salt(), references=references)
        return SignedTransaction(wtx).sign(self._seed).encode()

    def light_client(self) -> LightClientModule:
        return CordaLightClient()

    async def client_init(self, node: NodeClient) -> tuple[str, bytes, bytes]:
        return await client_init_at(node, self.trusting_period_ns, self.max_clock_drift_ns)

    async def _header(self, node: NodeClient, trusted: Height, target: Height) -> lc.Header:
        header = await fetch_client_header(node, target, lc.Header(), "corda")
        header.trusted_height = trusted.revision_height
        return header

    async def complete_view(self, host: ChainHandle, client_id: str, store: ClientStore) -> None:
        """Copy the notary sets the latest trusted consensus state names from the host's client."""
        try:
            latest = self.light_client().latest_height(store)
            raw = store.get(consensus_state_key(latest))
            cons = decode_consensus_state(raw) if raw is not None else None
        except (ClientError, ValueError) as exc:
            raise CodecError(f"relayer view of {client_id} is unreadable: {exc}") from None
        if cons is None:
            return
        for set_hash in {bytes(cons.notary_set_hash), bytes(cons.next_notary_set_hash)}:
            key = notary_set_key(set_hash)
            value = (await host.query(paths.client_prefix(client_id).encode() + key.encode(), prove=False)).value
            if value is not None:
                store.set(key, value)

    async def build_header(self, node: NodeClient, trusted: Height, target: Height) -> bytes:
        return header_message(await self._header(node, trusted, target))

    def header_identity(self, client_message: bytes) -> bytes | None:
        """The checkpoint's bytes: what the notaries sign, so equal bytes name one height's
        state (signatures, trusted height and the attached notary set may differ)."""
        message = lc.ClientMessage()
        try:
            message.ParseFromString(client_message)
        except DecodeError:
            return None
        if message.WhichOneof("message") != "header":
            return None
        return bytes(message.header.checkpoint.SerializeToString(deterministic=True))

    async def build_misbehaviour(self, node: NodeClient, conflicting: bytes, target: Height) -> bytes:
        forged = conflicting_header(lc.ClientMessage(), conflicting, "corda").header
        genuine = await self._header(node, Height(target.revision_number, forged.trusted_height), target)
        return misbehaviour_message(genuine, forged)
