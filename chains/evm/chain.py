"""The EVM-style chain: executes transactions, commits state and produces QBFT-sealed blocks.

Block production is a deterministic function of (transactions, time, validator keys): the
same inputs give byte-identical blocks, so a node can replay its log after a restart and
tests need no clock. The loop that calls :meth:`EvmChain.produce_block` lives in
chains/node.

A header at height H commits to the state *after* executing block H (no lag, unlike
Tendermint's app hash), so a proof at height H is checked against header H itself.

Validator-set changes go by QBFT-style votes: each block's proposer may vote to add or
drop one address; once more than half of the current validators have voted the same way
the change applies from the next block on. Header H carries the validators that seal H.

Memory does not grow with history when ``retain_blocks`` is set: only the genesis and the
newest blocks stay in ``blocks``; older headers come from the ``headers`` look-up the host
provides (the node reads them from its database). A chain can also resume at a committed
tip from its state root and its small consensus state (:meth:`EvmChain.resume`), which is
how a node restarts without re-executing its history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from chains.evm import rlp_fast
from chains.evm.contracts import (
    CallContext,
    Contract,
    ContractError,
    Log,
    SecurityToken,
    builtin_address,
)
from chains.evm.dvp import DVP_ESCROW_ADDRESS, DvpEscrow
from chains.evm.ibc_contract import IbcHandlerContract
from chains.evm.state import AccountProof, WorldState
from chains.evm.tx import SignedTx, TxError, admit_tx
from chains.store.mpt import EMPTY_ROOT, MemoryNodeStore, MerklePatriciaTrie, NodeStore
from kakehashi.ibc.v1 import client_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as qbft_pb
from lightclients.crypto import eth_address, keccak256, secp256k1_public_key, secp256k1_sign
from lightclients.interface import LightClientModule
from lightclients.qbft.client import commitment_slot, verify_seals
from lightclients.qbft.header import ExtraData, HeaderError, QbftHeader, Vote

IBC_HANDLER_ADDRESS = builtin_address("ibc-handler")
SECURITY_TOKEN_ADDRESS = builtin_address("security-token")

# QBFT's fixed mixHash ("ctical byzantine fault tolerance") and the empty ommers hash.
QBFT_MIX_HASH = bytes.fromhex("63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365")
EMPTY_OMMERS_HASH = keccak256(rlp_fast.encode([]))
GAS_LIMIT = 30_000_000
TX_BASE_COST = 21_000
_NS = 1_000_000_000


class BlockError(ValueError):
    """A block cannot be produced from these inputs (time, seals, vote)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: bytes
    success: bool
    reason: str
    logs: tuple[Log, ...]
    cost: int

    def encode(self) -> bytes:
        """rlp([status, cost, reason, [[address, name, [[key, value], ...]], ...]])."""
        enc, lst = rlp_fast.encode_bytes, rlp_fast.encode_list_payload
        logs = b"".join([
            lst(enc(log.address) + enc(log.name.encode())
                + lst(b"".join([lst(enc(k.encode()) + enc(v)) for k, v in log.attributes])))
            for log in self.logs
        ])
        return lst(rlp_fast.encode_uint(1 if self.success else 0) + rlp_fast.encode_uint(self.cost)
                   + enc(self.reason.encode()) + lst(logs))


@dataclass(frozen=True, slots=True)
class Block:
    header: QbftHeader
    txs: tuple[bytes, ...]
    receipts: tuple[Receipt, ...]
    rejected: tuple[tuple[bytes, str], ...]

    @property
    def number(self) -> int:
        return self.header.number

    @property
    def hash(self) -> bytes:
        return self.header.block_hash()


def seal_header(header: QbftHeader, keys: Sequence[bytes]) -> QbftHeader:
    """Attach one committed seal per key over the header's commit hash."""
    digest = header.without_seals().commit_hash()
    return header.with_seals([secp256k1_sign(k, digest) for k in keys])


def index_root(items: Sequence[bytes]) -> bytes:
    """transactionsRoot / receiptsRoot: trie of rlp(index) -> item.

    Built in a throwaway store: nothing serves tx or receipt proofs, so persisting these
    nodes would only add to every height's database write.
    """
    trie = MerklePatriciaTrie(MemoryNodeStore())
    for i, item in enumerate(items):
        trie.set(rlp_fast.encode_uint(i), item)
    return trie.commit()


ConsensusState = tuple[list[bytes], dict[tuple[bytes, bool], set[bytes]]]


class EvmChain:
    def __init__(
        self,
        chain_id: int,
        validators: Sequence[bytes],
        genesis_time_ns: int,
        *,
        token_issuer: bytes,
        clients: Mapping[str, LightClientModule] | None = None,
        store: NodeStore | None = None,
        revision: int = 0,
        retain_blocks: int | None = None,
        headers: Callable[[int], QbftHeader | None] | None = None,
    ) -> None:
        if not validators or len(set(validators)) != len(validators) or any(len(v) != 20 for v in validators):
            raise ValueError("validators must be distinct 20-byte addresses")
        if retain_blocks is not None and retain_blocks < 2:
            raise ValueError("retain_blocks must keep at least the tip and its parent")
        self.chain_id = chain_id
        self.revision = revision
        self.retain_blocks = retain_blocks
        self._header_source = headers
        self.state = WorldState(store)
        self.validators: list[bytes] = list(validators)
        self._tally: dict[tuple[bytes, bool], set[bytes]] = {}
        self.token = SecurityToken(SECURITY_TOKEN_ADDRESS, token_issuer, escrow=DVP_ESCROW_ADDRESS)
        self.escrow = DvpEscrow(DVP_ESCROW_ADDRESS, self.token, IBC_HANDLER_ADDRESS)
        self.ibc = IbcHandlerContract(IBC_HANDLER_ADDRESS, self.state, clients or {}, revision, self.escrow)
        self.contracts: dict[bytes, Contract] = {
            self.token.address: self.token, self.ibc.address: self.ibc, self.escrow.address: self.escrow,
        }
        self.token.install(self.state)
        self.ibc.install(self.state)
        self.escrow.install(self.state)
        root = self.state.commit()
        genesis = QbftHeader(
            parent_hash=bytes(32),
            ommers_hash=EMPTY_OMMERS_HASH,
            coinbase=bytes(20),
            state_root=root,
            tx_root=EMPTY_ROOT,
            receipts_root=EMPTY_ROOT,
            bloom=bytes(256),
            difficulty=1,
            number=0,
            gas_limit=GAS_LIMIT,
            gas_used=0,
            timestamp=genesis_time_ns // _NS,
            extra=ExtraData(bytes(32), tuple(self.validators), None, 0, ()),
            mix_hash=QBFT_MIX_HASH,
            nonce=bytes(8),
        )
        # Height -> block: the genesis, then every block or (retain_blocks) the newest ones.
        self.blocks: dict[int, Block] = {0: Block(genesis, (), (), ())}
        self._height = 0

    # --- reading ------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self._height

    @property
    def tip(self) -> Block:
        return self.blocks[self._height]

    def header(self, height: int) -> QbftHeader:
        if isinstance(height, bool) or not isinstance(height, int) or not 0 <= height <= self._height:
            raise KeyError(f"no block at height {height}")
        block = self.blocks.get(height)
        if block is not None:
            return block.header
        header = self._header_source(height) if self._header_source is not None else None
        if header is None or header.number != height:
            raise KeyError(f"no block at height {height}")
        return header

    def consensus_state(self) -> ConsensusState:
        """Validators for the next block and the open vote tally (copies)."""
        return list(self.validators), {k: set(v) for k, v in self._tally.items()}

    def _append(self, block: Block) -> None:
        self._height = block.number
        self.blocks[block.number] = block
        if self.retain_blocks is not None:
            old = block.number - self.retain_blocks
            if old > 0:
                self.blocks.pop(old, None)

    def rewind(self, height: int, consensus: ConsensusState) -> None:
        """Drop blocks above ``height`` (not yet committed by the host) and their state."""
        if not 0 <= height <= self._height or height not in self.blocks:
            raise BlockError(f"cannot rewind to height {height}")
        for h in range(height + 1, self._height + 1):
            self.blocks.pop(h, None)
        self._height = height
        self.validators, self._tally = consensus[0], consensus[1]
        self.state.reset(self.blocks[height].header.state_root)

    def resume(self, tip: Block, consensus: ConsensusState) -> None:
        """Continue from a committed ``tip`` whose state root's nodes are in the store.

        The caller vouches for ``tip`` (the node checks it against its database); the genesis
        stays, blocks in between come from the ``headers`` look-up.
        """
        if tip.number < 1:
            raise BlockError("resume needs a tip above the genesis")
        self.state.reset(tip.header.state_root)  # raises MissingNode when the root is not stored
        self.blocks = {0: self.blocks[0], tip.number: tip}
        self._height = tip.number
        self.validators, self._tally = list(consensus[0]), {k: set(v) for k, v in consensus[1].items()}

    def nonce(self, address: bytes) -> int:
        return self.state.account(address).nonce

    def prove(self, address: bytes, slots: Sequence[bytes], height: int) -> AccountProof:
        """EIP-1186 account + storage proofs at any retained height."""
        return self.state.prove(address, list(slots), self.header(height).state_root)

    def ibc_proof(self, path: bytes, height: int) -> bytes:
        """The proof bytes the QBFT client takes for an ICS-24 path at ``height``."""
        slot = commitment_slot(path)
        proof = self.prove(IBC_HANDLER_ADDRESS, [slot], height)
        return qbft_pb.StorageProof(proof=proof.storage_proofs[slot]).SerializeToString(deterministic=True)

    def light_client_header(self, height: int, trusted_height: int) -> qbft_pb.Header:
        """Header{RLP without seals, seals, trusted height, IBC store account proof}."""
        header = self.header(height)
        proof = self.prove(IBC_HANDLER_ADDRESS, [], height)
        return qbft_pb.Header(
            header_rlp=header.without_seals().encode(),
            seals=list(header.extra.seals),
            trusted_height=client_pb2.Height(revision_number=self.revision, revision_height=trusted_height),
            account_proof=proof.account_proof,
        )

    def qbft_client_state(self, height: int, trusting_period_ns: int, max_clock_drift_ns: int) -> bytes:
        """Initial ClientState bytes of a counterparty's QBFT client of this chain."""
        self.header(height)
        return qbft_pb.ClientState(
            chain_id=self.chain_id,
            ibc_store_address=IBC_HANDLER_ADDRESS,
            latest_height=client_pb2.Height(revision_number=self.revision, revision_height=height),
            trusting_period=trusting_period_ns,
            max_clock_drift=max_clock_drift_ns,
        ).SerializeToString(deterministic=True)

    def qbft_consensus_state(self, height: int) -> bytes:
        """ConsensusState bytes at ``height``: header time, IBC store root, validators."""
        header = self.header(height)
        return qbft_pb.ConsensusState(
            timestamp=header.timestamp * _NS,
            storage_root=self.prove(IBC_HANDLER_ADDRESS, [], height).storage_root,
            validators=list(header.extra.validators),
        ).SerializeToString(deterministic=True)

    # --- execution ----------------------------------------------------------------------

    def _admit(self, item: bytes | SignedTx) -> SignedTx:
        stx = item if isinstance(item, SignedTx) else admit_tx(item)
        tx = stx.tx
        if tx.chain_id != self.chain_id:
            raise TxError(f"wrong chain id {tx.chain_id}, this chain is {self.chain_id}")
        expected = self.state.account(stx.sender).nonce
        if tx.nonce < expected:
            raise TxError(f"nonce {tx.nonce} already used (replay); next nonce is {expected}")
        if tx.nonce > expected:
            raise TxError(f"nonce {tx.nonce} is ahead; next nonce is {expected}")
        return stx

    def check_tx(self, raw: bytes) -> str | None:
        """Why a tx would be rejected outright against the current state, or None."""
        try:
            self._admit(raw)
        except TxError as exc:
            return str(exc)
        return None

    def _execute(self, stx: SignedTx, height: int, time_ns: int) -> Receipt:
        self.state.account(stx.sender).nonce += 1
        snap = self.state.snapshot()
        ctx = CallContext(self.state, stx.sender, height, time_ns, cost=TX_BASE_COST)
        for i, msg in enumerate(stx.tx.messages):
            contract = self.contracts.get(msg.to)
            try:
                if contract is None:
                    raise ContractError(f"no contract at {msg.to.hex()}")
                contract.call(ctx, msg.method, msg.args)
            except ValueError as exc:  # ContractError, and bad values caught by the tries
                self.state.revert(snap)
                return Receipt(stx.hash, False, f"message {i}: {exc}", (), ctx.cost)
        return Receipt(stx.hash, True, "", tuple(ctx.logs), ctx.cost)

    def _apply_vote(self, proposer: bytes, vote: Vote) -> None:
        if len(vote.recipient) != 20:
            raise BlockError("vote recipient must be a 20-byte address")
        if vote.add == (vote.recipient in self.validators):
            raise BlockError("vote to add a validator already in the set, or to drop one not in it")
        voters = self._tally.setdefault((vote.recipient, vote.add), set())
        voters.add(proposer)
        if 2 * len(voters) > len(self.validators):
            if vote.add:
                self.validators.append(vote.recipient)
            else:
                self.validators.remove(vote.recipient)
            for key in [k for k in self._tally if k[0] == vote.recipient]:
                del self._tally[key]

    def _run_txs(
        self, txs: Sequence[bytes | SignedTx], number: int, time_ns: int
    ) -> tuple[list[bytes], list[Receipt], list[tuple[bytes, str]]]:
        included: list[bytes] = []
        receipts: list[Receipt] = []
        rejected: list[tuple[bytes, str]] = []
        for item in txs:
            try:
                stx = self._admit(item)
            except TxError as exc:
                if isinstance(item, SignedTx):
                    tx_hash = item.hash
                else:
                    tx_hash = keccak256(bytes(item)) if isinstance(item, bytes | bytearray) else b""
                rejected.append((tx_hash, str(exc)))
                continue
            receipts.append(self._execute(stx, number, time_ns))
            included.append(stx.raw)
        return included, receipts, rejected

    def import_block(self, header: QbftHeader, txs: Sequence[bytes]) -> Block:
        """Re-execute a block sealed elsewhere (a peer, or this node's own log on restart).

        The header must extend the tip, carry the current validators and a quorum of their
        seals, include only admissible txs, and match the re-executed roots exactly;
        otherwise BlockError and the chain is as before.
        """
        parent = self.tip.header
        if header.number != parent.number + 1 or header.parent_hash != parent.block_hash():
            raise BlockError("block does not extend the current tip")
        if header.timestamp <= parent.timestamp:
            raise BlockError("block time does not advance past the parent's")
        if list(header.extra.validators) != self.validators:
            raise BlockError("block does not carry the current validator set")
        if header.coinbase != self.validators[header.number % len(self.validators)]:
            raise BlockError("block coinbase is not the proposer for this height")
        vote = header.extra.vote
        if vote is not None and vote.add == (vote.recipient in self.validators):
            raise BlockError("vote to add a validator already in the set, or to drop one not in it")
        try:
            verify_seals(header.commit_hash(), header.extra.seals, self.validators, self.validators)
        except HeaderError as exc:
            raise BlockError(f"block is not final: {exc}") from None
        time_ns = header.timestamp * _NS
        included, receipts, rejected = self._run_txs(txs, header.number, time_ns)
        state_root = self.state.commit()
        problems = [
            name
            for name, ok in (
                ("a tx is not admissible", not rejected),
                ("stateRoot", state_root == header.state_root),
                ("transactionsRoot", index_root(included) == header.tx_root),
                ("receiptsRoot", index_root([r.encode() for r in receipts]) == header.receipts_root),
                ("gasUsed", sum(r.cost for r in receipts) == header.gas_used),
            )
            if not ok
        ]
        if problems:
            self.state.reset(parent.state_root)
            raise BlockError(f"block does not re-execute to its header: {', '.join(problems)}")
        block = Block(header, tuple(included), tuple(receipts), ())
        self._append(block)
        if vote is not None:
            self._apply_vote(header.coinbase, vote)
        return block

    def produce_block(
        self,
        txs: Sequence[bytes | SignedTx],
        time_ns: int,
        validator_keys: Sequence[bytes],
        *,
        vote: Vote | None = None,
        round_number: int = 0,
    ) -> Block:
        """Execute ``txs``, commit the state and seal the header with ``validator_keys``.

        Inputs are checked before anything changes: the time must move the header's
        second-resolution timestamp forward and the keys must be more than 2/3 of the
        current validators; otherwise BlockError and the chain is as before.
        """
        parent = self.tip.header
        timestamp = time_ns // _NS
        if timestamp <= parent.timestamp:
            raise BlockError(f"block time {timestamp}s does not advance past the parent's {parent.timestamp}s")
        signers = {eth_address(secp256k1_public_key(k)) for k in validator_keys}
        sealing = signers.intersection(self.validators)
        if 3 * len(sealing) <= 2 * len(self.validators):
            raise BlockError(f"{len(sealing)} sealing validators of {len(self.validators)} is not more than 2/3")
        keys = [k for k in validator_keys if eth_address(secp256k1_public_key(k)) in sealing]
        number = parent.number + 1
        proposer = self.validators[number % len(self.validators)]
        if vote is not None and vote.add == (vote.recipient in self.validators):
            raise BlockError("vote to add a validator already in the set, or to drop one not in it")
        # Execution sees the header's whole-second time, so that a re-execution from the
        # header alone (import_block) and the counterparty's view of this block agree.
        included, receipts, rejected = self._run_txs(txs, number, timestamp * _NS)
        state_root = self.state.commit()
        header = QbftHeader(
            parent_hash=parent.block_hash(),
            ommers_hash=EMPTY_OMMERS_HASH,
            coinbase=proposer,
            state_root=state_root,
            tx_root=index_root(included),
            receipts_root=index_root([r.encode() for r in receipts]),
            bloom=bytes(256),
            difficulty=1,
            number=number,
            gas_limit=GAS_LIMIT,
            gas_used=sum(r.cost for r in receipts),
            timestamp=timestamp,
            extra=ExtraData(bytes(32), tuple(self.validators), vote, round_number, ()),
            mix_hash=QBFT_MIX_HASH,
            nonce=bytes(8),
        )
        block = Block(seal_header(header, keys), tuple(included), tuple(receipts), tuple(rejected))
        self._append(block)
        if vote is not None:
            self._apply_vote(proposer, vote)
        return block
