"""The EVM-style ledger (chains/evm) behind the generic node: genesis, keys, restore, queries.

Persistence: every trie node the ledger writes goes through ``db.nodes`` and so lands in the
same SQLite transaction as its height, together with a small snapshot of the ledger's
in-memory consensus state (``evm/snapshot``: the tip's hash and state root, the validators
for the next block and the open vote tally) and the height's changes to the flat index of
latest state (``NodeDatabase`` ``state`` table). So a restart resumes at the last committed
height from the stored state root and that snapshot, in time that does not grow with
history: the tip block must hash to what the database recorded, carry a quorum of seals of
its validators, match its stored tx root and state root, and descend from this genesis;
anything else refuses to start. A database written before snapshots existed is replayed
once (every block re-imported, seals checked, txs re-executed) and then indexed.

Unproved reads at the latest height (balances, nonces, whitelist, escrows, IBC values) come
from the flat index, which each commit updates with exactly what the block changed in the
tries; reads at older heights and every proof walk the tries at that height's root.

Admission: ``check_tx`` decodes the tx and recovers its sender once; block production reuses
that, orders each sender's txs by nonce, and keeps a tx whose nonce is still ahead of the
account's in the mempool for up to ``defer_blocks`` blocks (its predecessor may arrive later
or land in the next block) before recording it FAILED.

Block time: the ledger needs each header's whole-second timestamp to advance, while the
node may produce blocks faster than once a second under load (it wakes as soon as a full
batch is waiting). The app then moves the block time to parent + 1 s, so chain time can run
a few seconds ahead of the wall clock during a burst and falls back once load drops.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import rlp
import structlog
from rlp.exceptions import DecodingError

from chains.evm import rlp_fast
from chains.evm.chain import (
    IBC_HANDLER_ADDRESS,
    SECURITY_TOKEN_ADDRESS,
    Block,
    BlockError,
    ConsensusState,
    EvmChain,
    index_root,
)
from chains.evm.contracts import SecurityToken, mapping_slot
from chains.evm.dvp import DVP_ESCROW_ADDRESS, escrow_slots, read_escrow
from chains.evm.ibc_contract import account_of
from chains.evm.ibc_proofs import ibc_multiproof
from chains.evm.state import BLOB_ROOT_SLOT, account_key, blob_key, slot_key
from chains.evm.tx import SignedTx, TxError, admit_tx
from chains.ibc import queries
from chains.ibc.apps.bank import StoreBank
from chains.ibc.apps.transfer import escrow_account
from chains.ibc.errors import IbcError
from chains.node.app import (
    AppEvent,
    HeaderInfo,
    IbcQueryResult,
    ProducedBlock,
    QueryError,
    TxOutcome,
    TxRejected,
    path_keys,
)
from chains.node.apps.admitted import AdmittedCache
from chains.node.config import NodeConfig
from chains.node.db import DatabaseError, NodeDatabase
from chains.store.mpt import EMPTY_ROOT, MerklePatriciaTrie, MissingNode, NodeStore, TrieError
from kakehashi.node.v1 import node_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as qbft_pb
from lightclients.corda.client import CordaLightClient
from lightclients.crypto import CryptoError, eth_address, keccak256, secp256k1_public_key
from lightclients.interface import LightClientModule
from lightclients.mpt import MptProofError, decode_account, decode_hex_prefix, decode_node
from lightclients.proxy.client import ProxyLightClient
from lightclients.qbft.client import CLIENT_TYPE as QBFT_CLIENT_TYPE
from lightclients.qbft.client import QbftClient, commitment_slot, verify_seals
from lightclients.qbft.header import HeaderError, QbftHeader, decode_header

log = structlog.get_logger("kakehashi.node.evm")

_NS = 1_000_000_000
STATE_ROOT_META = "evm/state_root"
# The genesis block hash block 1 descends from, kept so the check survives block 1's pruning.
GENESIS_META = "evm/genesis_hash"
SNAPSHOT_META = "evm/snapshot"
SNAPSHOT_VERSION = 1
# Blocks (with their txs and receipts) the ledger keeps in memory; older headers are read
# from the database on demand through a small cache.
RETAIN_BLOCKS = 8
HEADER_CACHE = 256
DEFAULT_DEFER_BLOCKS = 20
# Every this many blocks the ledger drops the trie nodes it decoded while executing (they
# are all committed) and continues from the state root: memory then holds a bounded
# working set instead of converging to a copy of the whole state.
STATE_RELOAD_BLOCKS = 16
# Flat-index entry naming the height the index reflects (the other keys start with a/s/b).
FLAT_HEIGHT_KEY = b"h"
# Demo accounts written at init: (name, native balance, ST whitelisted, ST balance, bank balances).
DEMO_ACCOUNTS: tuple[tuple[str, int, bool, int, dict[str, int]], ...] = (
    ("alice", 10**21, True, 1_000_000, {"stake": 1_000_000_000}),
    ("bob", 10**21, True, 500_000, {"stake": 1_000_000_000}),
    ("carol", 10**21, False, 0, {"stake": 1_000_000}),
)


class GenesisError(ValueError):
    """genesis.json or a key file is missing or invalid; the message names the key."""


def evm_chain_id_for(chain_id: str) -> int:
    """Numeric tx chain id derived from the string id (4 bytes, never 0).

    Transactions sign a number (EIP-155 style) while the node and IBC name chains by
    string; deriving one from the other means two homes initialised with different chain
    ids never accept each other's transactions.
    """
    return int.from_bytes(keccak256(b"kakehashi.evm.chain-id:" + chain_id.encode())[:4], "big") or 1


def _write_key(path: Path, key: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")


def _new_key() -> tuple[bytes, bytes]:
    while True:
        key = os.urandom(32)
        try:
            return key, eth_address(secp256k1_public_key(key))
        except CryptoError:  # zero or >= group order: astronomically rare, draw again
            continue


def _read_key(home: Path, rel: Any, where: str) -> bytes:
    if not isinstance(rel, str) or not rel:
        raise GenesisError(f"{where}: expected a key file path")
    path = home / rel
    try:
        key = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise GenesisError(f"{where}: cannot read key file {path}: {exc}") from None
    if len(key) != 32:
        raise GenesisError(f"{where}: {path} does not hold a 32-byte hex private key")
    return key


def _address(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", value):
        raise GenesisError(f"{where}: expected a 0x-prefixed 20-byte hex address, got {value!r}")
    return bytes.fromhex(value[2:])


def _nonneg(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 2**256:
        raise GenesisError(f"{where}: expected a non-negative integer below 2**256, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Allocation:
    name: str
    address: bytes
    balance: int
    st_whitelisted: bool
    st_balance: int
    bank: dict[str, int]


@dataclasses.dataclass(frozen=True)
class EvmGenesis:
    chain_id: str
    evm_chain_id: int
    revision_number: int
    genesis_time_ns: int
    validators: tuple[bytes, ...]
    token_issuer: bytes
    accounts: tuple[Allocation, ...]

    @classmethod
    def from_json(cls, doc: Any) -> EvmGenesis:
        if not isinstance(doc, dict):
            raise GenesisError("genesis: expected a JSON object")
        if doc.get("kind") != "evm":
            raise GenesisError(f"kind: expected 'evm', got {doc.get('kind')!r}")
        chain_id = doc.get("chain_id")
        if not isinstance(chain_id, str) or not chain_id:
            raise GenesisError("chain_id: expected a non-empty string")
        evm_chain_id = _nonneg(doc.get("evm_chain_id"), "evm_chain_id")
        if not 1 <= evm_chain_id < 2**64:
            raise GenesisError("evm_chain_id: must be 1..2**64-1")
        revision = _nonneg(doc.get("revision_number", 0), "revision_number")
        genesis_time_ns = _nonneg(doc.get("genesis_time_ns"), "genesis_time_ns")
        vals = doc.get("validators")
        if not isinstance(vals, list) or not vals:
            raise GenesisError("validators: expected a non-empty list of addresses")
        validators = tuple(_address(v, f"validators[{i}]") for i, v in enumerate(vals))
        if len(set(validators)) != len(validators):
            raise GenesisError("validators: duplicate address")
        issuer = doc.get("token_issuer")
        if not isinstance(issuer, dict):
            raise GenesisError("token_issuer: expected an object with address and key_file")
        accounts = []
        raw_accounts = doc.get("accounts", [])
        if not isinstance(raw_accounts, list):
            raise GenesisError("accounts: expected a list")
        for i, a in enumerate(raw_accounts):
            where = f"accounts[{i}]"
            if not isinstance(a, dict):
                raise GenesisError(f"{where}: expected an object")
            bank = a.get("bank", {})
            if not isinstance(bank, dict) or not all(isinstance(d, str) and d for d in bank):
                raise GenesisError(f"{where}.bank: expected an object of denom -> amount")
            accounts.append(
                Allocation(
                    name=str(a.get("name", "")),
                    address=_address(a.get("address"), f"{where}.address"),
                    balance=_nonneg(a.get("balance", 0), f"{where}.balance"),
                    st_whitelisted=bool(a.get("st_whitelisted", False)),
                    st_balance=_nonneg(a.get("st_balance", 0), f"{where}.st_balance"),
                    bank={d: _nonneg(v, f"{where}.bank.{d}") for d, v in bank.items()},
                )
            )
            if accounts[-1].st_balance and not accounts[-1].st_whitelisted:
                raise GenesisError(f"{where}.st_balance: a holder of the security token must be whitelisted")
        return cls(
            chain_id=chain_id,
            evm_chain_id=evm_chain_id,
            revision_number=revision,
            genesis_time_ns=genesis_time_ns,
            validators=validators,
            token_issuer=_address(issuer.get("address"), "token_issuer.address"),
            accounts=tuple(accounts),
        )


def light_clients() -> dict[str, LightClientModule]:
    """Client types the chain's IBC handler can host: this chain's own kind, Corda, and the
    proxy client (LCP-style, verifying either through a simulated enclave)."""
    qbft: LightClientModule = QbftClient()
    corda: LightClientModule = CordaLightClient()
    proxy: LightClientModule = ProxyLightClient()
    return {QBFT_CLIENT_TYPE: qbft, CordaLightClient.client_type: corda, ProxyLightClient.client_type: proxy}


def build_genesis_chain(
    genesis: EvmGenesis,
    store: NodeStore | None = None,
    *,
    retain_blocks: int | None = None,
    headers: Callable[[int], QbftHeader | None] | None = None,
) -> EvmChain:
    """The chain at height 0 with the genesis allocations folded into the genesis state.

    The ledger's constructor seals an empty genesis; the allocations are written straight
    into its state and the genesis header is re-rooted, so every node built from the same
    genesis.json gets byte-identical genesis and block hashes.
    """
    chain = EvmChain(
        genesis.evm_chain_id,
        list(genesis.validators),
        genesis.genesis_time_ns,
        token_issuer=genesis.token_issuer,
        clients=light_clients(),
        store=store,
        revision=genesis.revision_number,
        retain_blocks=retain_blocks,
        headers=headers,
    )
    if not genesis.accounts:
        return chain
    state, token = chain.state, chain.token
    bank = StoreBank(chain.ibc.store)
    supply = 0
    for acct in genesis.accounts:
        if acct.address == DVP_ESCROW_ADDRESS:
            raise GenesisError("accounts: the DvP escrow holds security tokens only by locks; it has no allocation")
        state.account(acct.address).balance = acct.balance
        if acct.st_whitelisted:
            state.set_storage(token.address, mapping_slot(acct.address, SecurityToken.WHITELIST), 1)
        if acct.st_balance:
            state.set_storage(token.address, mapping_slot(acct.address, SecurityToken.BALANCES), acct.st_balance)
            supply += acct.st_balance
        for denom, amount in sorted(acct.bank.items()):
            if amount:
                bank.mint(account_of(acct.address), denom, amount)
    if supply >= 2**256:
        raise GenesisError("accounts: total security-token supply overflows")
    state.set_storage(token.address, SecurityToken.SUPPLY_SLOT, supply)
    root = state.commit()
    g = chain.blocks[0]
    chain.blocks[0] = Block(dataclasses.replace(g.header, state_root=root), (), (), ())
    return chain


class EvmNodeApp:
    """ChainApp over an :class:`EvmChain` whose trie nodes live in the node database."""

    kind = "evm"

    def __init__(
        self,
        genesis: EvmGenesis,
        validator_keys: Sequence[bytes],
        db: NodeDatabase,
        *,
        defer_blocks: int = DEFAULT_DEFER_BLOCKS,
        admitted_cache: int = 20_000,
    ) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.revision_number = genesis.revision_number
        self.db = db
        self.store: NodeStore = db.nodes
        self.defer_blocks = defer_blocks
        self._commitments = queries.CommitmentIndex()  # fed the latest height's state only
        signers = {eth_address(secp256k1_public_key(k)) for k in validator_keys}
        held = signers.intersection(genesis.validators)
        if 3 * len(held) <= 2 * len(genesis.validators):
            raise GenesisError(
                f"keys: the node holds {len(held)} of {len(genesis.validators)} validator keys; "
                "it needs more than 2/3 to seal blocks"
            )
        self.keys = [k for k in validator_keys if eth_address(secp256k1_public_key(k)) in held]
        self._headers: OrderedDict[int, QbftHeader] = OrderedDict()
        # check_tx results by tx hash, so a tx's signature is recovered once (bounded).
        self._admitted: AdmittedCache[SignedTx] = AdmittedCache(admitted_cache)
        self._deferred_since: dict[bytes, int] = {}  # tx hash -> height it was first left out
        self._pending: tuple[ConsensusState, dict[bytes, int]] | None = None
        self.chain = build_genesis_chain(genesis, self.store, retain_blocks=RETAIN_BLOCKS,
                                         headers=self._stored_header)
        self._committed = 0
        self._flat_ok = True
        self._restore()

    # --- restore ------------------------------------------------------------------------

    def _stored_header(self, height: int) -> QbftHeader | None:
        """A committed header from the database (blocks older than the in-memory window)."""
        hit = self._headers.get(height)
        if hit is not None:
            self._headers.move_to_end(height)
            return hit
        raw = self.db.get_block(height)
        if raw is None:
            return None
        try:
            header = decode_header(node_pb2.Block.FromString(raw).header)
        except (HeaderError, ValueError) as exc:
            raise DatabaseError(f"stored block {height} has an unreadable header: {exc}") from None
        self._headers[height] = header
        if len(self._headers) > HEADER_CACHE:
            self._headers.popitem(last=False)
        return header

    def _snapshot(self, block: Block) -> bytes:
        validators, tally = self.chain.consensus_state()
        votes = [[recipient, 1 if add else 0, sorted(voters)] for (recipient, add), voters in sorted(tally.items())]
        return rlp_fast.encode([SNAPSHOT_VERSION, block.number, block.hash, block.header.state_root,
                                list(validators), votes])

    def _restore(self) -> None:
        latest = self.db.latest_height()
        if latest == 0:
            # Genesis nodes and flat entries stay buffered: block 1 persists them.
            log.info("evm ledger restored", chain_id=self.chain_id, height=0)
            return
        snapshot = self.db.get_meta(SNAPSHOT_META)
        if snapshot is None:
            self._restore_by_replay(latest)
        else:
            self.db.nodes.discard()  # the genesis build's nodes are on disk since height 1
            self._resume(latest, snapshot)
        self._committed = latest
        log.info("evm ledger restored", chain_id=self.chain_id, height=latest,
                 replayed=snapshot is None)

    def _resume(self, latest: int, snapshot: bytes) -> None:
        """Continue at ``latest`` from its snapshot, after cheap integrity checks."""
        try:
            items = rlp.decode(snapshot)
            version, height, block_hash, state_root, validators, votes = items
            if int.from_bytes(version, "big") != SNAPSHOT_VERSION:
                raise ValueError(f"unknown snapshot version {int.from_bytes(version, 'big')}")
            tally = {(bytes(r), add == b"\x01"): {bytes(v) for v in voters} for r, add, voters in votes}
            consensus: ConsensusState = ([bytes(v) for v in validators], tally)
        except (DecodingError, ValueError, TypeError) as exc:
            raise DatabaseError(f"the stored evm snapshot is unreadable: {exc}") from None
        if int.from_bytes(height, "big") != latest:
            raise DatabaseError(f"the evm snapshot is of height {int.from_bytes(height, 'big')}, "
                                f"the last committed block is {latest}")
        raw = self.db.get_block(latest)
        if raw is None:
            raise DatabaseError(f"block {latest} is missing")
        try:
            blk = node_pb2.Block.FromString(raw)
            header = decode_header(blk.header)
        except (HeaderError, ValueError) as exc:
            raise DatabaseError(f"stored block {latest} is unreadable: {exc}") from None
        problems = [
            what for what, ok in (
                ("block hash", blk.hash == header.block_hash() == block_hash == self.db.get_block_hash(latest)),
                ("height", header.number == blk.height == latest),
                ("state root", header.state_root == state_root == self.db.get_meta(STATE_ROOT_META)),
                ("transactions root", index_root(list(blk.txs)) == header.tx_root),
            ) if not ok
        ]
        if problems:
            raise DatabaseError(f"stored block {latest} does not match its snapshot: {', '.join(problems)}")
        try:
            verify_seals(header.commit_hash(), header.extra.seals, header.extra.validators, header.extra.validators)
        except HeaderError as exc:
            raise DatabaseError(f"stored block {latest} is not final: {exc}") from None
        if self.db.get_state(FLAT_HEIGHT_KEY) != latest.to_bytes(8, "big"):
            raise DatabaseError(f"the flat state index is not at the last committed height {latest}")
        genesis = self.chain.header(0).block_hash()
        recorded = self.db.get_meta(GENESIS_META)
        first = self._stored_header(1)
        if recorded is None:  # written before the meta existed: block 1 is still there
            if first is None or first.parent_hash != genesis:
                raise DatabaseError("the database does not descend from this genesis")
            self.db.set_meta(GENESIS_META, genesis)
        elif recorded != genesis or (first is not None and first.parent_hash != genesis):
            raise DatabaseError("the database does not descend from this genesis")
        try:
            self.chain.resume(Block(header, tuple(blk.txs), (), ()), consensus)
        except (MissingNode, TrieError, BlockError) as exc:
            raise DatabaseError(f"state of block {latest} is not in the database: {exc}") from None

    def _restore_by_replay(self, latest: int) -> None:
        """A database without snapshots: re-import every block, then write the index."""
        for height in range(1, latest + 1):
            raw = self.db.get_block(height)
            if raw is None:
                raise DatabaseError(f"block {height} is missing; the evm node keeps every height")
            try:
                blk = node_pb2.Block.FromString(raw)
                header = decode_header(blk.header)
                self.chain.import_block(header, list(blk.txs))
            except (BlockError, HeaderError, ValueError) as exc:
                raise DatabaseError(f"stored block {height} does not replay: {exc}") from None
            # Every node the replay writes (genesis ones included) already landed on disk
            # with its height, so the buffer need not hold the whole history.
            self.db.nodes.discard()
        want = self.db.get_meta(STATE_ROOT_META)
        if want is not None and want != self.chain.header(latest).state_root:
            raise DatabaseError("replayed state root differs from the one recorded at the last commit")
        # Every key written since genesis: the flat index of the latest state, in full.
        changes = self.chain.state.take_changes()
        changes[FLAT_HEIGHT_KEY] = latest.to_bytes(8, "big")
        self.db.write_state(changes, {SNAPSHOT_META: self._snapshot(self.chain.tip)})

    # --- block lifecycle ----------------------------------------------------------------

    def _admit(self, tx: bytes) -> SignedTx:
        try:
            stx = admit_tx(tx)
            if stx.tx.chain_id != self.genesis.evm_chain_id:
                raise TxError(f"wrong chain id {stx.tx.chain_id}, this chain is {self.genesis.evm_chain_id}")
        except TxError as exc:
            raise TxRejected(str(exc)) from None
        return stx

    def check_tx(self, tx: bytes) -> bytes:
        stx = self._admit(tx)
        used = self._account_at(stx.sender, self._committed)[0]
        if stx.tx.nonce < used:
            raise TxRejected(f"nonce {stx.tx.nonce} already used; next nonce is {used}")
        self._admitted.put(stx.hash, stx, len(stx.raw))
        return stx.hash

    def _batch(self, txs: Sequence[bytes]) -> list[SignedTx | bytes]:
        """The batch as admitted txs (recovered once, in check_tx), each sender's by nonce.

        A sender's txs keep the batch positions they arrived in but fill them in nonce
        order, so a later nonce that reached the mempool first does not fail or wait a block.
        """
        out: list[SignedTx | bytes] = []
        admitted: dict[int, SignedTx] = {}
        slots: dict[bytes, list[int]] = {}
        for raw in txs:
            stx = self._admitted.get(keccak256(bytes(raw)))
            if stx is None or stx.raw != bytes(raw):
                try:
                    stx = self._admit(raw)
                except TxRejected:
                    out.append(bytes(raw))  # refused again by the chain, with its reason
                    continue
            slots.setdefault(stx.sender, []).append(len(out))
            admitted[len(out)] = stx
            out.append(stx)
        for positions in slots.values():
            if len(positions) > 1:
                mine = sorted((admitted[i] for i in positions), key=lambda t: t.tx.nonce)
                for i, ordered in zip(positions, mine, strict=True):
                    out[i] = ordered
        return out

    def produce_block(self, txs: Sequence[bytes], time_ns: int) -> ProducedBlock:
        parent = self.chain.header(self._committed)
        time_ns = max(time_ns, (parent.timestamp + 1) * _NS)
        consensus = self.chain.consensus_state()
        batch = self._batch(txs)
        try:
            block = self.chain.produce_block(batch, time_ns, self.keys)
        except BaseException:
            self.chain.rewind(self._committed, consensus)
            raise
        changes = self.chain.state.take_changes()
        changes[FLAT_HEIGHT_KEY] = block.number.to_bytes(8, "big")
        results = [
            TxOutcome(
                r.tx_hash,
                r.success,
                r.reason,
                tuple(AppEvent(e.name, e.attributes) for e in r.logs),
                r.cost,
            )
            for r in block.receipts
        ]
        left_out, deferred, since = self._left_out(batch, block)
        results += left_out
        self._pending = (consensus, since)
        header = block.header
        return ProducedBlock(
            height=header.number,
            time_ns=header.timestamp * _NS,
            hash=block.hash,
            header=header.encode(),
            txs=block.txs,
            results=tuple(results),
            meta={STATE_ROOT_META: header.state_root, SNAPSHOT_META: self._snapshot(block),
                  **({GENESIS_META: header.parent_hash} if header.number == 1 else {})},
            state=changes,
            deferred=tuple(deferred),
        )

    def _left_out(
        self, batch: Sequence[SignedTx | bytes], block: Block
    ) -> tuple[list[TxOutcome], list[bytes], dict[bytes, int]]:
        """Outcomes for batch txs the block left out, and which of them wait for a later block.

        A used-up nonce can never be included: FAILED. A nonce still ahead of the account's
        waits (deferred) while its predecessor may still come, for at most ``defer_blocks``
        blocks; then FAILED too, so its submitter gets an answer and can resubmit the gap.
        """
        rejected = dict(block.rejected)
        if not rejected:
            return [], [], {}
        out: list[TxOutcome] = []
        deferred: list[bytes] = []
        since: dict[bytes, int] = {}
        for item in batch:
            tx_hash = item.hash if isinstance(item, SignedTx) else keccak256(item)
            reason = rejected.pop(tx_hash, None)
            if reason is None:
                continue
            if not isinstance(item, SignedTx):
                out.append(TxOutcome(tx_hash, False, f"not included: {reason}"))
                continue
            nonce_after = self.chain.state.account(item.sender).nonce
            if item.tx.nonce < nonce_after:
                out.append(TxOutcome(tx_hash, False, f"not included: {reason}"))
                continue
            first = self._deferred_since.get(tx_hash, block.number)
            if block.number - first + 1 >= self.defer_blocks:
                out.append(TxOutcome(tx_hash, False, (
                    f"not included: nonce {item.tx.nonce} stayed ahead of the account's next nonce "
                    f"{nonce_after} for {self.defer_blocks} blocks; submit the missing nonces first")))
                continue
            deferred.append(tx_hash)
            since[tx_hash] = first
        return out, deferred, since

    def commit_block(self, block: ProducedBlock) -> None:
        self._committed = block.height
        if self._flat_ok and self.db.get_state(FLAT_HEIGHT_KEY) != block.height.to_bytes(8, "big"):
            # The block was persisted without its ``state`` changes: answer from the tries.
            self._flat_ok = False
            log.error("the flat state index was not persisted with the block; reads walk the tries",
                      height=block.height)
        since = self._pending[1] if self._pending is not None else {}
        self._pending = None
        for r in block.results:
            self._admitted.pop(r.tx_hash)
            self._deferred_since.pop(r.tx_hash, None)
        self._deferred_since.update(since)
        if block.height % STATE_RELOAD_BLOCKS == 0:
            self.chain.state.reset(self.chain.header(block.height).state_root)

    def discard_block(self, block: ProducedBlock) -> None:
        if self._pending is None:
            raise ValueError("no produced block to discard")
        self.chain.rewind(self._committed, self._pending[0])
        self._pending = None

    # --- reads --------------------------------------------------------------------------

    def latest_height(self) -> int:
        return self._committed

    def earliest_height(self) -> int:
        return 1 if self._committed else 0

    def validators(self) -> list[bytes]:
        return list(self.chain.header(self._committed).extra.validators)

    def _check_height(self, height: int) -> int:
        if isinstance(height, bool) or not isinstance(height, int) or not 0 <= height <= self._committed:
            raise QueryError(f"height {height} is not committed (latest is {self._committed})")
        return height

    def header(self, height: int) -> HeaderInfo:
        self._check_height(height)
        h = self.chain.header(height)
        client_header = self.chain.light_client_header(height, 0).SerializeToString(deterministic=True)
        return HeaderInfo(height, h.timestamp * _NS, h.block_hash(), h.encode(), client_header)

    def _flat(self, height: int) -> bool:
        """Whether ``height`` is answered from the flat index (the latest committed height)."""
        return height == self._committed and height > 0 and self._flat_ok

    def _account_at(self, address: bytes, height: int) -> tuple[int, int, bytes]:
        """(nonce, balance, storage root) of ``address`` in the state after block ``height``."""
        if self._flat(height):
            raw = self.db.get_state(account_key(address))
        else:
            root = self.chain.header(height).state_root
            raw = MerklePatriciaTrie(self.store, root, secure=True).get(address)
        if raw is None:
            return 0, 0, EMPTY_ROOT
        body = decode_account(raw)
        return body.nonce, body.balance, body.storage_root

    @staticmethod
    def _word(raw: bytes | None, slot: bytes) -> int:
        if raw is None:
            return 0
        value = rlp.decode(raw)
        if not isinstance(value, bytes):
            raise QueryError(f"storage slot 0x{slot.hex()} is not a word")
        return int.from_bytes(value, "big")

    def _storage_many(self, address: bytes, slots: Sequence[bytes], height: int) -> list[int]:
        if self._flat(height):
            raws = self.db.get_states([slot_key(address, s) for s in slots])
        else:
            storage_root = self._account_at(address, height)[2]
            trie = MerklePatriciaTrie(self.store, storage_root, secure=True)
            raws = [trie.get(s) for s in slots]
        return [self._word(raw, s) for raw, s in zip(raws, slots, strict=True)]

    def _storage_at(self, address: bytes, slot: bytes, height: int) -> int:
        return self._storage_many(address, [slot], height)[0]

    def ibc_store_at(self, height: int) -> _FlatIbcStore | _HistoricIbcStore:
        self._check_height(height)
        if self._flat(height):
            return _FlatIbcStore(self.db.get_state, IBC_HANDLER_ADDRESS)
        blob_root = self._storage_at(IBC_HANDLER_ADDRESS, BLOB_ROOT_SLOT, height)
        trie = MerklePatriciaTrie(self.store, blob_root.to_bytes(32, "big") if blob_root else EMPTY_ROOT)
        return _HistoricIbcStore(trie)

    @staticmethod
    def _key(path: str) -> bytes:
        try:
            key = path.encode()
        except UnicodeEncodeError as exc:
            raise QueryError(f"path is not valid text: {exc}") from None
        if not key:
            raise QueryError("path must not be empty")
        return key

    def query_ibc(self, path: str, height: int, prove: bool) -> IbcQueryResult:
        return self.query_ibc_many([path], height, prove)[0]

    def query_ibc_many(self, paths: Sequence[str], height: int, prove: bool) -> list[IbcQueryResult]:
        """Values (and storage proofs) of several paths at one height from one store view
        and, when proving, one account proof walk shared by every slot."""
        self._check_height(height)
        keys = [self._key(p) for p in paths]
        try:
            view = self.ibc_store_at(height)
            values = [view.get(k) for k in keys]
            if not prove:
                return [IbcQueryResult(v, b"", height) for v in values]
            slots = [commitment_slot(k) for k in keys]
            proof = self.chain.prove(IBC_HANDLER_ADDRESS, slots, height)
            return [
                IbcQueryResult(
                    v,
                    qbft_pb.StorageProof(proof=proof.storage_proofs[s]).SerializeToString(deterministic=True),
                    height,
                )
                for v, s in zip(values, slots, strict=True)
            ]
        except (MptProofError, DecodingError, KeyError, ValueError) as exc:
            if isinstance(exc, QueryError):
                raise
            raise QueryError(f"cannot read {', '.join(map(repr, paths))[:200]} at height {height}: {exc}") from None

    def query_ibc_multi(self, paths: Sequence[str], height: int) -> tuple[list[bytes | None], bytes]:
        self._check_height(height)
        keys = path_keys(paths)
        if not keys or not all(keys):
            raise QueryError("paths must be non-empty")
        try:
            store = self.ibc_store_at(height)
            values = [store.get(key) for key in keys]
            storage_root = self._account_at(IBC_HANDLER_ADDRESS, height)[2]
            proof = ibc_multiproof(self.store, storage_root, keys)
        except (MptProofError, DecodingError, KeyError, ValueError) as exc:
            raise QueryError(f"cannot prove {len(keys)} paths at height {height}: {exc}") from None
        return values, proof

    def _ibc_query(self, height: int, fn: Any) -> list[int]:
        try:
            result: list[int] = fn(self.ibc_store_at(height))
        except IbcError as exc:
            raise QueryError(str(exc)) from None
        return result

    def packet_commitment_sequences(self, port_id: str, channel_id: str, height: int) -> list[int]:
        if height == self.latest_height():
            return self._ibc_query(height, lambda s: self._commitments.commitments(s, port_id, channel_id))
        return self._ibc_query(height, lambda s: queries.packet_commitments(s, port_id, channel_id))

    def unreceived_packets(self, port_id: str, channel_id: str, sequences: Sequence[int], height: int) -> list[int]:
        return self._ibc_query(height, lambda s: queries.unreceived_packets(s, port_id, channel_id, sequences))

    def unreceived_acks(self, port_id: str, channel_id: str, sequences: Sequence[int], height: int) -> list[int]:
        return self._ibc_query(height, lambda s: queries.unreceived_acks(s, port_id, channel_id, sequences))

    def query_app(self, query: str, args: dict[str, Any], height: int) -> Any:
        self._check_height(height)
        handler = _APP_QUERIES.get(query)
        if handler is None:
            raise QueryError(f"unknown query {query!r}; expected one of {sorted(_APP_QUERIES)}")
        try:
            return handler(self, args, height)
        except (IbcError, MptProofError, DecodingError, ValueError) as exc:
            if isinstance(exc, QueryError):
                raise
            raise QueryError(f"{query}: {exc}") from None

    # --- pruning (chains/node/prune.py) ----------------------------------------------------

    def gc_roots(self, height: int) -> list[tuple[bytes, str]]:
        """The state trie's root at ``height``; storage and blob tries hang off its accounts."""
        return [(self.chain.header(height).state_root, "account")]

    def gc_children(self, kind: str, data: bytes) -> list[tuple[bytes, str]]:
        """Hashed children of an MPT node (embedded ones, under 32 bytes, hold no hashes); an
        account leaf adds its storage trie and, for a contract that keeps blobs, the blob trie."""
        items = decode_node(data)
        if len(items) == 17:
            return [(c, kind) for c in items[:16] if isinstance(c, bytes) and len(c) == 32]
        if len(items) != 2 or not isinstance(items[0], bytes):
            return []
        _, leaf = decode_hex_prefix(items[0])
        value = items[1]
        if not leaf:
            return [(value, kind)] if isinstance(value, bytes) and len(value) == 32 else []
        if kind != "account" or not isinstance(value, bytes):
            return []
        storage_root = decode_account(value).storage_root
        if storage_root == EMPTY_ROOT:
            return []
        out = [(storage_root, "storage")]
        blob = self._word(MerklePatriciaTrie(self.store, storage_root, secure=True).get(BLOB_ROOT_SLOT),
                          BLOB_ROOT_SLOT)
        if blob:
            out.append((blob.to_bytes(32, "big"), "blob"))
        return out

    def prune_history(self, below: int, limit: int) -> int:
        """Nothing beyond the generic tables: the EVM ledger keeps no other per-height rows."""
        return 0

    # --- app queries (JSON answers) -----------------------------------------------------

    def _q_chain_info(self, args: dict[str, Any], height: int) -> Any:
        return {
            "chain_id": self.chain_id,
            "evm_chain_id": self.genesis.evm_chain_id,
            "revision_number": self.revision_number,
            "ibc_handler": "0x" + IBC_HANDLER_ADDRESS.hex(),
            "security_token": "0x" + SECURITY_TOKEN_ADDRESS.hex(),
            "dvp_escrow": "0x" + DVP_ESCROW_ADDRESS.hex(),
            "token_issuer": "0x" + self.genesis.token_issuer.hex(),
            "client_type": QBFT_CLIENT_TYPE,
            "validators": ["0x" + v.hex() for v in self.chain.header(height).extra.validators],
        }

    def _q_account(self, args: dict[str, Any], height: int) -> Any:
        addr = _arg_address(args, "address")
        nonce, balance, _ = self._account_at(addr, height)
        return {"address": "0x" + addr.hex(), "nonce": nonce, "balance": balance}

    def _q_security_token(self, args: dict[str, Any], height: int) -> Any:
        holder = _arg_address(args, "holder") if "holder" in args else None
        slots = [SecurityToken.SUPPLY_SLOT]
        if holder is not None:
            slots += [mapping_slot(holder, SecurityToken.BALANCES), mapping_slot(holder, SecurityToken.WHITELIST)]
        words = self._storage_many(SECURITY_TOKEN_ADDRESS, slots, height)
        out: dict[str, Any] = {
            "address": "0x" + SECURITY_TOKEN_ADDRESS.hex(),
            "issuer": "0x" + self.genesis.token_issuer.hex(),
            "total_supply": words[0],
        }
        if holder is not None:
            out["holder"] = "0x" + holder.hex()
            out["balance"] = words[1]
            out["whitelisted"] = words[2] == 1
        return out

    def _q_bank_balance(self, args: dict[str, Any], height: int) -> Any:
        account = _arg_str(args, "account")
        if re.fullmatch(r"0x[0-9a-fA-F]{40}", account):
            account = account.lower()
        denom = _arg_str(args, "denom")
        bank = StoreBank(self.ibc_store_at(height))
        return {"account": account, "denom": denom, "amount": bank.balance(account, denom),
                "supply": bank.supply(denom)}

    def _q_escrow(self, args: dict[str, Any], height: int) -> Any:
        port_id, channel_id = _arg_str(args, "port_id"), _arg_str(args, "channel_id")
        denom = _arg_str(args, "denom")
        account = escrow_account(port_id, channel_id)
        amount = StoreBank(self.ibc_store_at(height)).balance(account, denom)
        return {"account": account, "denom": denom, "amount": amount}

    def _q_dvp_escrow(self, args: dict[str, Any], height: int) -> Any:
        """A trade's ST escrow at ``height``; an unknown trade answers status "none"."""
        trade_id = _arg_str(args, "trade_id")
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", trade_id):
            raise QueryError("argument 'trade_id': expected 1-64 characters of [A-Za-z0-9._-]")
        slots = escrow_slots(trade_id)
        words = dict(zip(slots, self._storage_many(DVP_ESCROW_ADDRESS, slots, height), strict=True))
        return read_escrow(words.__getitem__, trade_id).to_json()

    def _q_client_state(self, args: dict[str, Any], height: int) -> Any:
        """What a counterparty needs to create a qbft client of this chain at ``height``."""
        if height == 0:
            raise QueryError("client_state: the genesis header carries no seals; use a height >= 1")
        trusting = _arg_int(args, "trusting_period_ns", 14 * 24 * 3600 * _NS)
        drift = _arg_int(args, "max_clock_drift_ns", 10 * _NS)
        return {
            "client_type": QBFT_CLIENT_TYPE,
            "height": height,
            "revision_number": self.revision_number,
            "client_state": self.chain.qbft_client_state(height, trusting, drift).hex(),
            "consensus_state": self.chain.qbft_consensus_state(height).hex(),
        }


class _FlatIbcStore:
    """Read-only IbcStore over the flat index: the IBC handler's blob values at the latest height."""

    def __init__(self, read: Callable[[bytes], bytes | None], address: bytes) -> None:
        self._read = read
        self._address = address

    def get(self, key: bytes) -> bytes | None:
        return self._read(blob_key(self._address, key))

    def set(self, key: bytes, value: bytes) -> None:
        raise QueryError("the latest IBC store view is read-only")

    def delete(self, key: bytes) -> None:
        raise QueryError("the latest IBC store view is read-only")


class _HistoricIbcStore:
    """Read-only IbcStore over the IBC handler's blob trie at a committed root."""

    def __init__(self, trie: MerklePatriciaTrie) -> None:
        self._trie = trie

    def get(self, key: bytes) -> bytes | None:
        return self._trie.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        raise QueryError("historic IBC store is read-only")

    def delete(self, key: bytes) -> None:
        raise QueryError("historic IBC store is read-only")


def _arg_str(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise QueryError(f"argument {name!r}: expected a non-empty string")
    return value


def _arg_address(args: dict[str, Any], name: str) -> bytes:
    value = _arg_str(args, name)
    if not re.fullmatch(r"(0x)?[0-9a-fA-F]{40}", value):
        raise QueryError(f"argument {name!r}: expected a 20-byte hex address")
    return bytes.fromhex(value.removeprefix("0x"))


def _arg_int(args: dict[str, Any], name: str, default: int) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise QueryError(f"argument {name!r}: expected a positive integer")
    return value


_APP_QUERIES: dict[str, Any] = {
    "chain_info": EvmNodeApp._q_chain_info,
    "account": EvmNodeApp._q_account,
    "security_token": EvmNodeApp._q_security_token,
    "bank_balance": EvmNodeApp._q_bank_balance,
    "escrow": EvmNodeApp._q_escrow,
    "dvp_escrow": EvmNodeApp._q_dvp_escrow,
    "client_state": EvmNodeApp._q_client_state,
}


class EvmKind:
    name = "evm"

    def init_genesis(self, home: Path, chain_id: str, validators: int, genesis_time_ns: int) -> dict[str, Any]:
        home = Path(home)
        keys_dir = home / "keys"
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        val_addrs, val_files = [], []
        for i in range(validators):
            key, addr = _new_key()
            rel = f"keys/validator-{i}.key"
            _write_key(home / rel, key)
            val_addrs.append("0x" + addr.hex())
            val_files.append(rel)
        issuer_key, issuer = _new_key()
        _write_key(keys_dir / "issuer.key", issuer_key)
        accounts = []
        for name, balance, whitelisted, st_balance, bank in DEMO_ACCOUNTS:
            key, addr = _new_key()
            _write_key(keys_dir / f"{name}.key", key)
            accounts.append({
                "name": name,
                "address": "0x" + addr.hex(),
                "key_file": f"keys/{name}.key",
                "balance": balance,
                "st_whitelisted": whitelisted,
                "st_balance": st_balance,
                "bank": bank,
            })
        doc = {
            "kind": "evm",
            "chain_id": chain_id,
            "evm_chain_id": evm_chain_id_for(chain_id),
            "revision_number": 0,
            "genesis_time_ns": genesis_time_ns,
            "validators": val_addrs,
            "validator_key_files": val_files,
            "token_issuer": {"address": "0x" + issuer.hex(), "key_file": "keys/issuer.key"},
            "accounts": accounts,
        }
        EvmGenesis.from_json(doc)  # what we write must load
        (home / "genesis.json").write_text(json.dumps(doc, indent=2) + "\n")
        return {
            "evm_chain_id": doc["evm_chain_id"],
            "validators": val_addrs,
            "token_issuer": doc["token_issuer"],
            "accounts": {a["name"]: a["address"] for a in accounts},
        }

    def load_genesis(self, home: Path) -> tuple[EvmGenesis, list[bytes]]:
        path = Path(home) / "genesis.json"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise GenesisError(f"genesis: cannot read {path}: {exc}") from None
        genesis = EvmGenesis.from_json(doc)
        files = doc.get("validator_key_files", [])
        if not isinstance(files, list):
            raise GenesisError("validator_key_files: expected a list of paths")
        keys = [_read_key(Path(home), f, f"validator_key_files[{i}]") for i, f in enumerate(files)]
        return genesis, keys

    def open_app(self, config: NodeConfig, db: NodeDatabase) -> EvmNodeApp:
        if config.block_period_s < 1.0:
            log.warning("evm header time has whole-second resolution; with a block period under 1 s "
                        "chain time runs ahead of the wall clock", block_period_s=config.block_period_s)
        genesis, keys = self.load_genesis(config.home)
        if genesis.chain_id != config.chain_id:
            raise GenesisError(f"chain_id: genesis says {genesis.chain_id!r}, node.toml says {config.chain_id!r}")
        return EvmNodeApp(genesis, keys, db)


KIND = EvmKind()
