"""The EVM chain as a conformance host: IBC messages run in signed txs in QBFT-sealed blocks.

Every step is one sealed block. A failed IBC tx is still included (a failed receipt, the
signer's nonce consumed), so ``root()`` is the IBC handler contract's storage root -- the
root the counterparty's 10-qbft client proves against, committed in the block's stateRoot --
rather than the stateRoot itself, which moves with the nonce even when IBC state does not.
The contract flattens IBC errors into the receipt's reason string; the host keeps the typed
error the core raised so tests can assert on it as on every other host.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from google.protobuf import any_pb2
from google.protobuf.message import Message as PbMessage

from chains.evm import IBC_HANDLER_ADDRESS, EvmChain, Message, make_tx, seal_header
from chains.evm.ibc_contract import account_of
from chains.evm.ibc_proofs import ibc_multiproof
from chains.ibc.errors import InvalidMessage, TxFailed
from chains.ibc.events import Event, EventLog
from kakehashi.qbft.v1 import lightclient_pb2 as qpb
from lightclients.corda.client import CordaLightClient
from lightclients.crypto import eth_address, secp256k1_public_key, sha256
from lightclients.interface import Height
from lightclients.proxy.client import ProxyLightClient
from lightclients.qbft import QbftClient
from lightclients.qbft.client import encode_header_message, encode_misbehaviour_message
from tests.support.basehost import Block, ChainHost

SECOND = 1_000_000_000
SIGNER_KEY = b"\x42" * 32
SIGNER = eth_address(secp256k1_public_key(SIGNER_KEY))


def pack(msg: PbMessage) -> bytes:
    if isinstance(msg, any_pb2.Any):
        return msg.SerializeToString(deterministic=True)
    packed = any_pb2.Any()
    packed.Pack(msg, type_url_prefix="/")
    return packed.SerializeToString(deterministic=True)


class EvmHost(ChainHost):
    client_type = QbftClient.client_type

    def __init__(self, chain_id: str, numeric_id: int, start_ns: int, block_ns: int = 5 * SECOND,
                 revision: int = 1, key_label: str = "") -> None:
        self.chain_id = chain_id
        self.block_ns = block_ns
        # Each chain has its own validators, so one chain's headers never pass as another's.
        label = key_label or f"evm-{numeric_id}"
        self.keys = [sha256(f"{label}-validator-{i}".encode()) for i in range(4)]
        validators = [eth_address(secp256k1_public_key(k)) for k in self.keys]
        self.chain = EvmChain(numeric_id, validators, start_ns, token_issuer=SIGNER, revision=revision,
                              clients={QbftClient.client_type: QbftClient(),
                                       CordaLightClient.client_type: CordaLightClient(),
                                       ProxyLightClient.client_type: ProxyLightClient()})
        self.prefix = IBC_HANDLER_ADDRESS
        self.handler = self.chain.ibc.handler
        self.store = self.chain.ibc.store
        self.transfer = self.chain.ibc.transfer
        self.events = EventLog()
        self.blocks = {}
        self._watch_core()
        self.install_app_calls()
        self.height = Height(revision, 0)
        self.now_ns = start_ns
        self._commit()
        self.idle()

    def _watch_core(self) -> None:
        """Keep the core's typed failure and results of the tx being executed."""
        execute = self.handler.execute
        self._failure: TxFailed | None = None
        self._results: list[object] = []

        def watched(messages: Any, height: Height, now_ns: int) -> Any:
            try:
                out = execute(messages, height, now_ns)
            except TxFailed as exc:
                self._failure = exc
                raise
            self._results = out[0]
            return out

        self.handler.execute = watched  # type: ignore[method-assign]

    def _commit(self) -> None:
        h = self.height.revision_height
        header = self.chain.header(h)
        assert header.number == h, "host and chain heights diverged"
        root = self.chain.prove(IBC_HANDLER_ADDRESS, [], h).storage_root
        self.blocks[self.height] = Block(self.height, header.timestamp * SECOND, root)

    def tx(self, *msgs: PbMessage) -> list[object]:
        self.next_block()
        call = Message(IBC_HANDLER_ADDRESS, "ibc", tuple(pack(m) for m in msgs))
        raw = make_tx(SIGNER_KEY, self.chain.chain_id, self.chain.nonce(SIGNER), [call]).encode()
        self._failure, self._results = None, []
        block = self.chain.produce_block([raw], self.now_ns, self.keys)
        (receipt,) = block.receipts
        for log in receipt.logs:
            self.events.emit(self.height, Event(log.name, tuple(log.attributes)))
        self._commit()
        if not receipt.success:
            raise self._failure or TxFailed(0, InvalidMessage(receipt.reason))
        return list(self._results)

    def idle(self, blocks: int = 1, advance_ns: int | None = None) -> None:
        for _ in range(blocks):
            self.next_block(advance_ns)
            self.chain.produce_block([], self.now_ns, self.keys)
            self._commit()

    def prove(self, path: bytes, height: Height | None = None) -> bytes:
        return self.chain.ibc_proof(path, (height or self.height).revision_height)

    def prove_many(self, paths: list[bytes], height: Height | None = None) -> bytes:
        h = (height or self.height).revision_height
        root = self.chain.prove(IBC_HANDLER_ADDRESS, [], h).storage_root
        return ibc_multiproof(self.chain.state.store, root, paths)

    def _header(self, height: Height, trusted: Height) -> qpb.Header:
        return self.chain.light_client_header(height.revision_height, trusted.revision_height)

    def header(self, height: Height | None = None, trusted: Height | None = None) -> bytes:
        h = height or self.height
        return encode_header_message(self._header(h, trusted or Height(h.revision_number, 1)))

    def _forged(self, height: Height, trusted: Height) -> qpb.Header:
        # Same state (so the IBC account proof still holds), different vanity: a second
        # block at this height sealed by the same validators, i.e. equivocation.
        real = self.chain.header(height.revision_height).without_seals()
        forged = replace(real, extra=replace(real.extra, vanity=b"\x66" * 32))
        sealed = seal_header(forged, self.keys)
        genuine = self._header(height, trusted)
        return qpb.Header(header_rlp=forged.encode(), seals=list(sealed.extra.seals),
                          trusted_height=genuine.trusted_height, account_proof=list(genuine.account_proof))

    def conflicting_header(self, height: Height, trusted: Height) -> bytes:
        return encode_header_message(self._forged(height, trusted))

    def misbehaviour(self, height: Height, trusted: Height) -> bytes:
        return encode_misbehaviour_message(self._header(height, trusted), self._forged(height, trusted))

    def client_state(self, trusting_period_ns: int, max_clock_drift_ns: int) -> bytes:
        return self.chain.qbft_client_state(self.height.revision_height, trusting_period_ns, max_clock_drift_ns)

    def consensus_state(self) -> bytes:
        return self.chain.qbft_consensus_state(self.height.revision_height)

    def spender(self) -> str:
        # The contract only lets a MsgTransfer spend the tx signer's own account.
        return account_of(SIGNER)
