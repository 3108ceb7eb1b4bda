"""The EVM chain's half of a relayer chain handle: txs, headers and evidence for a qbft client.

Why the codec owns the nonce: the handle serialises signing, so the next nonce is known
locally and several txs can be in flight at once, each with its own. It is read from the
node once at start and again after a tx that was not included (refused, lost, left out),
because then the local count is unreliable (a tx included but failed still used its nonce;
one that never reached the chain did not), and only the chain's committed account nonce says
which; the handle waits for its txs in flight to land before that read.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from chains.evm import IBC_HANDLER_ADDRESS, make_tx
from chains.evm import Message as EvmCall
from chains.node.client import NodeClient
from kakehashi.ibc.v1 import client_pb2
from kakehashi.node.v1 import node_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as qbft_pb
from lightclients.crypto import eth_address, secp256k1_public_key
from lightclients.interface import Height, LightClientModule
from lightclients.qbft.client import QbftClient, encode_header_message, encode_misbehaviour_message
from relayer.codecs.common import (
    DEFAULT_DRIFT_NS,
    DEFAULT_TRUSTING_NS,
    CodecError,
    client_init_at,
    conflicting_header,
    fetch_client_header,
)

KIND = "evm"


def pack(msg: Message) -> bytes:
    """One IBC message as the IBC handler's call argument (a deterministic protobuf Any)."""
    wrapped = any_pb2.Any()
    wrapped.Pack(msg, type_url_prefix="/")
    return wrapped.SerializeToString(deterministic=True)


class EvmCodec:
    kind = KIND
    prefix = IBC_HANDLER_ADDRESS

    def __init__(self, private_key: bytes, evm_chain_id: int, *, trusting_period_ns: int = DEFAULT_TRUSTING_NS,
                 max_clock_drift_ns: int = DEFAULT_DRIFT_NS) -> None:
        if len(private_key) != 32:
            raise CodecError("an EVM relayer key is a 32-byte secp256k1 secret")
        self._key = private_key
        self.address = eth_address(secp256k1_public_key(private_key))
        self.evm_chain_id = evm_chain_id
        self.trusting_period_ns = trusting_period_ns
        self.max_clock_drift_ns = max_clock_drift_ns
        self.nonce: int | None = None  # None = read it from the chain before the next tx

    async def before_tx(self, node: NodeClient) -> None:
        if self.nonce is None:
            account = await node.query_app("account", address="0x" + self.address.hex())
            self.nonce = int(account["nonce"])

    def after_tx(self, result: node_pb2.TxResult | None) -> None:
        """An included tx (committed, or failed in execution) used the nonce ``encode_tx``
        counted; anything else (refused, dropped, left out) leaves the count unreliable."""
        included = result is not None and (
            result.status == node_pb2.TX_STATUS_COMMITTED
            or (result.status == node_pb2.TX_STATUS_FAILED and not result.reason.startswith("not included")))
        if not included:
            self.nonce = None

    def encode_tx(self, msgs: Sequence[Message], prepared: object) -> bytes:
        """Sign with the next local nonce and count it (txs in flight each hold their own)."""
        if self.nonce is None:
            raise CodecError("the EVM nonce is unknown: before_tx must run first")
        # One handler call carrying every message: the core runs them in order in one overlay
        # (all-or-nothing, as the tx is), and the tx's 64-call cap does not bound the batch.
        calls = [EvmCall(IBC_HANDLER_ADDRESS, "ibc", tuple(pack(m) for m in msgs))]
        tx = make_tx(self._key, self.evm_chain_id, self.nonce, calls).encode()
        self.nonce += 1
        return tx

    def light_client(self) -> LightClientModule:
        return QbftClient()

    async def client_init(self, node: NodeClient) -> tuple[str, bytes, bytes]:
        return await client_init_at(node, self.trusting_period_ns, self.max_clock_drift_ns)

    async def _header(self, node: NodeClient, trusted: Height, target: Height) -> qbft_pb.Header:
        header = await fetch_client_header(node, target, qbft_pb.Header(), "qbft")
        header.trusted_height.CopyFrom(client_pb2.Height(revision_number=trusted.revision_number,
                                                         revision_height=trusted.revision_height))
        return header

    async def build_header(self, node: NodeClient, trusted: Height, target: Height) -> bytes:
        return encode_header_message(await self._header(node, trusted, target))

    def header_identity(self, client_message: bytes) -> bytes | None:
        """The header RLP without seals: exactly what the seals sign, so equal bytes name one
        block (rounds, seals, trusted height and the account proof of that block may differ)."""
        message = qbft_pb.ClientMessage()
        try:
            message.ParseFromString(client_message)
        except DecodeError:
            return None
        return bytes(message.header.header_rlp) if message.WhichOneof("message") == "header" else None

    async def build_misbehaviour(self, node: NodeClient, conflicting: bytes, target: Height) -> bytes:
        forged = conflicting_header(qbft_pb.ClientMessage(), conflicting, "qbft").header
        trusted = Height(forged.trusted_height.revision_number, forged.trusted_height.revision_height)
        genuine = await self._header(node, trusted, target)
        return encode_misbehaviour_message(genuine, forged)
