"""The Corda chain's half of a relayer chain handle: notarised IBC txs, checkpoint headers, evidence.

Why a fresh random privacy salt per tx: the txid is fixed by the salt, and the node refuses
a txid it has already seen; a resubmission after a FAILED result must be a new tx. Corda
IBC txs consume no states, so there is no input selection to track between txs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from google.protobuf.message import DecodeError, Message

from chains.corda.ibc_host import account_of, ibc_command
from chains.corda.transaction import SALT_LEN, SignedTransaction, WireTransaction
from chains.ibc import paths
from chains.node.client import NodeClient
from kakehashi.corda.v1 import lightclient_pb2 as lc
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
from relayer.chain import ChainHandle
from relayer.codecs.common import (
    DEFAULT_DRIFT_NS,
    DEFAULT_TRUSTING_NS,
    CodecError,
    client_init_at,
    fetch_client_header,
)

KIND = "corda"


def fresh_salt() -> bytes:
    while True:
        salt = os.urandom(SALT_LEN)
        if any(salt):
            return salt


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

    def encode_tx(self, msgs: Sequence[Message], signer_state: object) -> bytes:
        commands = tuple(ibc_command(m, [self.public_key]) for m in msgs)
        wtx = WireTransaction((), (), commands, self.notary, fresh_salt())
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

    async def build_misbehaviour(self, node: NodeClient, conflicting: bytes, target: Height) -> bytes:
        message = lc.ClientMessage()
        try:
            message.ParseFromString(conflicting)
        except DecodeError as exc:
            raise CodecError(f"conflicting corda header does not decode: {exc}") from None
        if message.WhichOneof("message") != "header":
            raise CodecError("conflicting corda client message is not a header")
        forged = message.header
        genuine = await self._header(node, Height(target.revision_number, forged.trusted_height), target)
        return misbehaviour_message(genuine, forged)
