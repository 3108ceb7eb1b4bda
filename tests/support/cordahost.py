"""The Corda chain as a conformance host: IBC messages run as IBC commands of notarised txs.

Every step is one checkpoint: the tx (if any) is notarised by the cluster and the cluster
then seals the height, so height/time bookkeeping matches the other hosts. A tx whose IBC
messages fail is refused by the notaries and consumes nothing; the checkpoint is still made,
as a block is on the other hosts. ``root()`` is the checkpoint's ``ibc_root``, which the
counterparty's 11-corda client proves against. The notaries flatten IBC errors into their
refusal; the host keeps the typed error the core raised so tests assert on it uniformly.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import any_pb2
from google.protobuf.message import Message as PbMessage

from chains.corda.ibc_host import (
    IBC_COMMAND,
    IBC_CONTRACT,
    IbcHostContract,
    account_of,
    ibc_command,
)
from chains.corda.notary import NotaryCluster, NotaryError, SignedCheckpoint
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.ibc.apps import transfer
from chains.ibc.errors import InvalidMessage, TxFailed
from chains.ibc.events import EventLog
from chains.ibc.handler import IbcHandler
from chains.store.smt import SparseMerkleTree
from kakehashi.corda.v1 import ledger_pb2
from kakehashi.corda.v1 import lightclient_pb2 as lc
from lightclients.corda.checkpoint import quorum, sign_checkpoint
from lightclients.corda.client import (
    IBC_PREFIX,
    CordaLightClient,
    consensus_state_from_checkpoint,
    encode,
    header_message,
    misbehaviour_message,
)
from lightclients.crypto import ed25519_public_key, sha256
from lightclients.interface import Height
from lightclients.proxy.client import ProxyLightClient
from lightclients.qbft import QbftClient
from tests.support.basehost import Block, ChainHost

SECOND = 1_000_000_000
SIGNER_SEED = sha256(b"conformance-relayer")
SIGNER = ed25519_public_key(SIGNER_SEED)


def command(msg: PbMessage) -> ledger_pb2.Command:
    if isinstance(msg, any_pb2.Any):
        return ledger_pb2.Command(contract=IBC_CONTRACT, name=IBC_COMMAND,
                                  data=msg.SerializeToString(deterministic=True), signers=[SIGNER])
    return ibc_command(msg, [SIGNER])


class CordaHost(ChainHost):
    client_type = CordaLightClient.client_type

    def __init__(self, chain_id: str, start_ns: int, block_ns: int = 3 * SECOND, revision: int = 1,
                 key_label: str = "") -> None:
        self.chain_id = chain_id
        self.block_ns = block_ns
        self.prefix = IBC_PREFIX
        self.tree = SparseMerkleTree()
        self.store = self.tree
        self.events = EventLog()
        self.handler = IbcHandler(self.tree, {QbftClient.client_type: QbftClient(),
                                               CordaLightClient.client_type: CordaLightClient(),
                                               ProxyLightClient.client_type: ProxyLightClient()},
                                  self.prefix, self.events)
        self.transfer = transfer.install(self.handler)
        self.seeds = [sha256(f"{key_label or chain_id}-notary-{i}".encode()) for i in range(4)]
        self.cluster = NotaryCluster(chain_id, sha256(f"{chain_id}-notary".encode()), list(self.seeds),
                                     {IBC_CONTRACT: IbcHostContract()}, ibc_store=self.tree, ibc=self.handler,
                                     revision_number=revision)
        self.blocks = {}
        self._salt = 0
        self._watch_core()
        self.install_app_calls()
        self.height = Height(revision, 0)
        self.now_ns = start_ns - block_ns
        self.idle()

    def _watch_core(self) -> None:
        """Keep the core's typed failure of the tx being notarised."""
        execute = self.handler.execute
        self._failure: TxFailed | None = None

        def watched(messages: Any, height: Height, now_ns: int) -> Any:
            try:
                return execute(messages, height, now_ns)
            except TxFailed as exc:
                self._failure = exc
                raise

        self.handler.execute = watched  # type: ignore[method-assign]

    def _checkpoint(self) -> None:
        signed = self.cluster.checkpoint(self.now_ns)
        cp = signed.checkpoint
        assert cp.height == self.height.revision_height, "host and chain heights diverged"
        self.blocks[self.height] = Block(self.height, cp.timestamp, bytes(cp.ibc_root))

    def tx(self, *msgs: PbMessage) -> list[object]:
        self.next_block()
        self._salt += 1
        wtx = WireTransaction(inputs=(), outputs=(), notary=self.cluster.identity,
                              privacy_salt=sha256(self._salt.to_bytes(8, "big")),
                              commands=tuple(command(m) for m in msgs))
        stx = SignedTransaction(wtx).sign(SIGNER_SEED)
        self._failure = None
        failure: TxFailed | None = None
        results: list[object] = []
        try:
            results = list(self.cluster.notarise(stx, [self.now_ns] * len(self.seeds)).ibc_results)
        except NotaryError as exc:
            failure = self._failure or TxFailed(0, InvalidMessage(str(exc)))
        self._checkpoint()
        if failure is not None:
            raise failure
        return results

    def idle(self, blocks: int = 1, advance_ns: int | None = None) -> None:
        for _ in range(blocks):
            self.next_block(advance_ns)
            self._checkpoint()

    def _signed(self, height: Height) -> SignedCheckpoint:
        signed = self.cluster.signed_checkpoint(height.revision_height)
        assert signed is not None, f"no checkpoint at {height}"
        return signed

    def prove(self, path: bytes, height: Height | None = None) -> bytes:
        root = self._signed(height or self.height).checkpoint.ibc_root
        proof: bytes = self.tree.at(root).prove_bytes(path)
        return proof

    def prove_many(self, paths: list[bytes], height: Height | None = None) -> bytes:
        root = self._signed(height or self.height).checkpoint.ibc_root
        proof: bytes = self.tree.at(root).prove_many_bytes(paths)
        return proof

    def _header(self, height: Height, trusted: Height) -> lc.Header:
        return self._signed(height).header(trusted.revision_height)

    def header(self, height: Height | None = None, trusted: Height | None = None) -> bytes:
        h = height or self.height
        return header_message(self._header(h, trusted or Height(h.revision_number, 1)))

    def _forged(self, height: Height, trusted: Height) -> lc.Header:
        # The same notaries sign a second checkpoint at this height over other txs and
        # another IBC state: equivocation, which no honest cluster produces.
        real = self._signed(height)
        cp = lc.Checkpoint()
        cp.CopyFrom(real.checkpoint)
        cp.tx_root = b"\x66" * 32
        cp.ibc_root = b"\x66" * 32
        sigs = [sign_checkpoint(seed, cp) for seed in self.seeds]
        return SignedCheckpoint(cp, sigs, list(real.notary_set)).header(trusted.revision_height)

    def conflicting_header(self, height: Height, trusted: Height) -> bytes:
        return header_message(self._forged(height, trusted))

    def misbehaviour(self, height: Height, trusted: Height) -> bytes:
        return misbehaviour_message(self._header(height, trusted), self._forged(height, trusted))

    def client_state(self, trusting_period_ns: int, max_clock_drift_ns: int) -> bytes:
        cp = self._signed(self.height).checkpoint
        return encode(lc.ClientState(chain_id=self.chain_id, notary_keys=list(self.cluster.members),
                                     threshold=quorum(len(self.cluster.members)), latest_height=cp.height,
                                     trusting_period=trusting_period_ns, max_clock_drift=max_clock_drift_ns,
                                     revision_number=self.height.revision_number))

    def consensus_state(self) -> bytes:
        return encode(consensus_state_from_checkpoint(self._signed(self.height).checkpoint))

    def spender(self) -> str:
        # A MsgTransfer may only spend the account of a signer of its command.
        return account_of(SIGNER)
