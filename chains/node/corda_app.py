"""The Corda-style ledger behind the generic node: genesis, block = one notary checkpoint.

Why the node holds every notary key: this is the reference setup the relayer and the tests
run against, so one process plays the whole notary cluster. A submitted transaction is
notarised at production with every member's clock reading the block time, then the height
is sealed as one signed checkpoint; a transaction the cluster refuses is kept in the block
with its reason (it consumed nothing) so its submitter gets a definite answer.

Restart (crash safety) is by deterministic replay: the UTXO ledger (notarised transactions,
consumed refs, checkpoints) lives in memory in :class:`chains.corda.notary.NotaryCluster`,
which has no persistent form, so on open the committed blocks are re-notarised in order at
their block times. Notarisation and checkpoint signing are deterministic (Ed25519), so the
replay reproduces every checkpoint bit for bit; each replayed checkpoint hash is checked
against the stored block hash and a mismatch refuses to open. The IBC host SMT's nodes go
through ``db.nodes`` and so land atomically with their height; replay re-derives the same
nodes, so the replay's buffered copies are dropped instead of being written again.

DvP (chains/corda/dvp.py): the DvpLock contract is installed and the ``dvp`` port bound next to
``transfer``. The ``dvp_lock`` query finds a trade's lock through an index trade id -> lock
ref that is filled as transactions are notarised (live and on replay, through one path, so it
is rebuilt with the ledger) and reads the rest from the ledger at the asked height: a lock is
"locked" until consumed, and the consuming transaction's DvP exit command names how it ended.
A Lock tx is notarised only if its MsgDvpSend ran, and the module refuses a used trade id, so
a trade id names at most one lock on this chain.

Ledger queries (``balances``, ``cash_states``, ``holders``) read :class:`UnconsumedIndex`,
which the same notarise path keeps (so replay rebuilds it too): a query costs the states of
the one (contract, owner) it asks about, not the whole history. See the class for why it
answers historical heights exactly as a full scan of the ledger would.

Genesis (height 1) is produced by the node itself on first open from genesis.json: the
issuer's Admission list naming the demo holders (securities firms) and one Issue of Cash to
each, plus ICS-20 bank balances minted into the IBC store before the first checkpoint.
"""

from __future__ import annotations

import heapq
import json
import os
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from chains.corda.cash import (
    ADMISSION,
    CASH,
    AdmissionContract,
    CashContract,
    admission_state,
    cash_state,
)
from chains.corda.contracts import Contract
from chains.corda.dvp import (
    DVP,
    DVP_ESCROW_OWNER,
    STATUS_OF_EXIT,
    DvpContract,
    exit_kind,
    lock_of,
    trade_sequence,
)
from chains.corda.dvp import install as install_dvp
from chains.corda.ibc_host import IBC_CONTRACT, IbcHostContract, account_of
from chains.corda.notary import NotaryCluster, NotaryError, SignedCheckpoint
from chains.corda.transaction import SignedTransaction, TransactionError, WireTransaction, ref_key
from chains.ibc import queries
from chains.ibc.apps import transfer
from chains.ibc.apps.bank import StoreBank, validate_account, validate_denom
from chains.ibc.errors import IbcError
from chains.ibc.events import Event
from chains.ibc.handler import IbcHandler
from chains.node.app import (
    AppEvent,
    HeaderInfo,
    IbcQueryResult,
    ProducedBlock,
    QueryError,
    TxOutcome,
    TxRejected,
)
from chains.node.config import NodeConfig
from chains.node.db import DatabaseError, NodeDatabase
from chains.node.runtime import block_to_proto
from chains.store.smt import SmtError, SparseMerkleTree
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.node.v1 import node_pb2
from lightclients.corda.checkpoint import checkpoint_hash, quorum
from lightclients.corda.client import CordaLightClient, consensus_state_from_checkpoint, encode
from lightclients.crypto import ed25519_public_key, sha256
from lightclients.interface import Height
from lightclients.proxy.client import ProxyLightClient
from lightclients.qbft import QbftClient

KIND_NAME = "corda"
IBC_PREFIX = b"ibc"
BANK_DENOM = "jpy"
DEMO_HOLDERS = ("firm-a", "firm-b", "firm-c")
DEMO_CASH = 1_000_000
DEMO_BANK = 1_000_000
CONTRACTS: dict[str, Contract] = {
    CASH: CashContract(),
    ADMISSION: AdmissionContract(),
    IBC_CONTRACT: IbcHostContract(),
    DVP: DvpContract(),
}
MAX_QUERY_ROWS = 1000
META_CHECKPOINT = "corda.latest_checkpoint"


class GenesisError(ValueError):
    """genesis.json or a key file is missing or malformed; the message names the field."""


# --- genesis -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time_ns: int
    notary_seeds: tuple[bytes, ...]
    service_seed: bytes
    issuer_seed: bytes
    holder_seeds: tuple[tuple[str, bytes], ...]
    cash: tuple[tuple[str, int], ...]
    bank: tuple[tuple[str, str, int], ...]  # (account, denom, amount)

    @property
    def identity(self) -> bytes:
        return ed25519_public_key(self.service_seed)

    @property
    def issuer(self) -> bytes:
        return ed25519_public_key(self.issuer_seed)

    def holder(self, name: str) -> bytes:
        for n, seed in self.holder_seeds:
            if n == name:
                return ed25519_public_key(seed)
        raise GenesisError(f"cash: holder {name!r} is not a genesis holder")

    def transactions(self) -> list[SignedTransaction]:
        """The height-1 transactions; salts derive from the chain id so they are reproducible."""
        holders = [ed25519_public_key(s) for _, s in self.holder_seeds]
        admit = WireTransaction(
            inputs=(),
            outputs=(admission_state(self.issuer, holders, self.identity),),
            commands=(pb.Command(contract=ADMISSION, name="Admit", signers=[self.issuer]),),
            notary=self.identity,
            privacy_salt=sha256(f"{self.chain_id}/genesis/admission".encode()),
        )
        out = [SignedTransaction(admit).sign(self.issuer_seed)]
        if self.cash:
            issue = WireTransaction(
                inputs=(),
                outputs=tuple(cash_state(self.issuer, self.holder(n), a, self.identity) for n, a in self.cash),
                commands=(pb.Command(contract=CASH, name="Issue", signers=[self.issuer]),),
                notary=self.identity,
                privacy_salt=sha256(f"{self.chain_id}/genesis/issue".encode()),
                references=(pb.StateRef(txid=admit.txid, index=0),),
            )
            out.append(SignedTransaction(issue).sign(self.issuer_seed))
        return out


def _write_key(path: Path, seed: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")


def _read_key(path: Path) -> bytes:
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise GenesisError(f"key file {path}: {exc}") from None
    if len(seed) != 32:
        raise GenesisError(f"key file {path}: expected a 32-byte hex Ed25519 seed")
    return seed


def _field(doc: dict[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise GenesisError(f"genesis.json {name}: expected {kind.__name__}, got {value!r}")
    return value


def load_genesis(home: Path) -> Genesis:
    """Read genesis.json and the keys it names; public keys in the file must match the keys."""
    try:
        doc = json.loads((home / "genesis.json").read_text())
    except (OSError, ValueError) as exc:
        raise GenesisError(f"genesis.json: {exc}") from None
    if not isinstance(doc, dict):
        raise GenesisError("genesis.json: expected a JSON object")
    keys = home / "keys"
    notaries = _field(doc, "notaries", list)
    seeds = tuple(_read_key(keys / f"notary-{i}.key") for i in range(len(notaries)))
    if [ed25519_public_key(s).hex() for s in seeds] != notaries:
        raise GenesisError("genesis.json notaries: do not match keys/notary-*.key")
    service = _read_key(keys / "notary-service.key")
    if ed25519_public_key(service).hex() != _field(doc, "notary_identity", str):
        raise GenesisError("genesis.json notary_identity: does not match keys/notary-service.key")
    issuer = _read_key(keys / "issuer.key")
    if ed25519_public_key(issuer).hex() != _field(doc, "issuer", str):
        raise GenesisError("genesis.json issuer: does not match keys/issuer.key")
    holders = []
    for name, pub in _field(doc, "holders", dict).items():
        seed = _read_key(keys / f"holder-{name}.key")
        if ed25519_public_key(seed).hex() != pub:
            raise GenesisError(f"genesis.json holders.{name}: does not match keys/holder-{name}.key")
        holders.append((str(name), seed))
    cash = []
    for name, amount in _field(doc, "cash", dict).items():
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount < 2**64:
            raise GenesisError(f"genesis.json cash.{name}: expected a positive uint64")
        cash.append((str(name), amount))
    bank = []
    for entry in _field(doc, "bank", list):
        if not (isinstance(entry, dict) and isinstance(entry.get("account"), str)
                and isinstance(entry.get("denom"), str) and isinstance(entry.get("amount"), int)
                and entry["amount"] > 0):
            raise GenesisError(f"genesis.json bank: bad entry {entry!r}")
        try:
            validate_account(entry["account"])
            validate_denom(entry["denom"])
        except (IbcError, ValueError) as exc:
            raise GenesisError(f"genesis.json bank: {exc}") from None
        bank.append((entry["account"], entry["denom"], int(entry["amount"])))
    g = Genesis(
        chain_id=_field(doc, "chain_id", str),
        genesis_time_ns=_field(doc, "genesis_time_ns", int),
        notary_seeds=seeds,
        service_seed=service,
        issuer_seed=issuer,
        holder_seeds=tuple(holders),
        cash=tuple(cash),
        bank=tuple(bank),
    )
    for name, _ in g.cash:
        g.holder(name)
    return g


class CordaKind:
    name = KIND_NAME

    def init_genesis(self, home: Path, chain_id: str, validators: int, genesis_time_ns: int) -> dict[str, Any]:
        keys = home / "keys"
        keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        notary_seeds = [os.urandom(32) for _ in range(validators)]
        for i, seed in enumerate(notary_seeds):
            _write_key(keys / f"notary-{i}.key", seed)
        service = os.urandom(32)
        _write_key(keys / "notary-service.key", service)
        issuer = os.urandom(32)
        _write_key(keys / "issuer.key", issuer)
        holders: dict[str, str] = {}
        for name in DEMO_HOLDERS:
            seed = os.urandom(32)
            _write_key(keys / f"holder-{name}.key", seed)
            holders[name] = ed25519_public_key(seed).hex()
        doc = {
            "chain_id": chain_id,
            "kind": KIND_NAME,
            "genesis_time_ns": genesis_time_ns,
            "notary_identity": ed25519_public_key(service).hex(),
            "notaries": [ed25519_public_key(s).hex() for s in notary_seeds],
            "issuer": ed25519_public_key(issuer).hex(),
            "holders": holders,
            "cash": {name: DEMO_CASH for name in DEMO_HOLDERS},
            "bank": [
                {"account": account_of(bytes.fromhex(pub)), "denom": BANK_DENOM, "amount": DEMO_BANK}
                for pub in holders.values()
            ],
        }
        (home / "genesis.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        load_genesis(home)  # what we wrote must load
        return {
            "chain_id": chain_id,
            "notaries": len(notary_seeds),
            "notary_identity": doc["notary_identity"],
            "issuer": doc["issuer"],
            "holders": holders,
        }

    def open_app(self, config: NodeConfig, db: NodeDatabase) -> CordaApp:
        genesis = load_genesis(config.home)
        if genesis.chain_id != config.chain_id:
            raise GenesisError(
                f"genesis.json chain_id: {genesis.chain_id!r} differs from node.toml's {config.chain_id!r}"
            )
        return CordaApp(genesis, db)


KIND = CordaKind()


# --- the unconsumed-state index -----------------------------------------------------------

StateKey = tuple[str, bytes]
"""(contract, owner): the owner is the Cash owner for Cash states and b"" for every other
contract (and for Cash whose data does not decode, which no owner query can ask for)."""


@dataclass(frozen=True)
class IndexedState:
    """One ledger output as the index keeps it.

    ``order`` is (notarisation sequence of the creating tx, output index): the order in which
    a scan of the ledger (transactions in notarisation order, outputs by index) meets the
    state, so answers keep the order callers have always seen.
    """

    order: tuple[int, int]
    txid: bytes
    index: int
    state: pb.TransactionState
    created: int  # height of the creating transaction
    cash: pb.Cash | None  # decoded once at notarisation for Cash states


def _order(row: IndexedState) -> tuple[int, int]:
    return row.order


def state_key(state: pb.TransactionState) -> tuple[StateKey, pb.Cash | None]:
    """Where an output is filed; the Cash contract already refused any Cash that does not decode."""
    if state.contract != CASH:
        return (state.contract, b""), None
    try:
        cash = pb.Cash.FromString(state.data)
    except DecodeError:
        return (CASH, b""), None
    return (CASH, bytes(cash.owner)), cash


class UnconsumedIndex:
    """Unconsumed states by (contract, owner) at every committed height, kept as txs are notarised.

    Why two parts: the states unconsumed at height h are those created at or before h that are
    either still live or were consumed after h. ``live`` holds the first kind per key in
    creation order, so a prefix of it (created <= h) is the live part of the answer; ``spent``
    holds, per key, every consumed state in consumption order with its consumption height, so
    a binary search finds those consumed after h. At the latest height that tail is only what
    the pending block consumed; at an older height it is what the key lost since. Either way a
    query visits the states of its own key only: unrelated history costs nothing.

    ``visited`` counts the states a query looked at (the cost measure tests and the bench use).
    Updates touch only dicts and lists and cannot fail, so the index never lags the ledger.
    """

    def __init__(self) -> None:
        self._live: dict[StateKey, dict[tuple[bytes, int], IndexedState]] = {}
        self._key_of: dict[tuple[bytes, int], StateKey] = {}
        self._spent: dict[StateKey, list[IndexedState]] = {}
        self._spent_at: dict[StateKey, list[int]] = {}
        self._seq = 0
        self.visited = 0

    def add(self, txid: bytes, inputs: Iterable[pb.StateRef], outputs: Sequence[pb.TransactionState],
            height: int) -> None:
        """Record a notarised tx at ``height``; heights must not decrease across calls."""
        for ref in inputs:
            ref_id = ref_key(ref)
            key = self._key_of.pop(ref_id, None)
            if key is None:
                continue  # not an output on this ledger: the notary refuses such a tx before this
            row = self._live[key].pop(ref_id)
            self._spent.setdefault(key, []).append(row)
            self._spent_at.setdefault(key, []).append(height)
        for i, state in enumerate(outputs):
            key, cash = state_key(state)
            self._live.setdefault(key, {})[(txid, i)] = IndexedState((self._seq, i), txid, i, state, height, cash)
            self._key_of[(txid, i)] = key
        self._seq += 1

    def unconsumed(self, key: StateKey, height: int, limit: int | None = None) -> list[IndexedState]:
        """The states of ``key`` unconsumed at ``height``, in ledger order; the first ``limit`` of them.

        The limit may stop the live part early: every answer row past the first ``limit`` live
        ones is either one of those or a state consumed after ``height``, which are all merged in.
        """
        live: list[IndexedState] = []
        for row in self._live.get(key, {}).values():
            if limit is not None and len(live) >= limit:
                break
            self.visited += 1
            if row.created > height:
                break  # creation order: every later state is newer still
            live.append(row)
        spent_at = self._spent_at.get(key, [])
        spent = self._spent.get(key, [])
        back: list[IndexedState] = []
        for i in range(bisect_right(spent_at, height), len(spent)):
            self.visited += 1
            if spent[i].created <= height:
                back.append(spent[i])
        if not back:
            return live
        back.sort(key=_order)
        return list(islice(heapq.merge(live, back, key=_order), limit))


# --- the ChainApp ------------------------------------------------------------------------


class _TxEvents:
    """Collects the IBC events of the transaction being notarised (the handler's sink)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, height: Height, event: Event) -> None:
        self.events.append(event)


def tx_hash_of(raw: bytes) -> bytes:
    """The txid for a decodable transaction; sha256 of the bytes otherwise (never in a block)."""
    try:
        return SignedTransaction.decode(raw).txid
    except (TransactionError, ValueError):
        return sha256(raw)


class CordaApp:
    kind = KIND_NAME
    revision_number = 0

    def __init__(self, genesis: Genesis, db: NodeDatabase) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.db = db
        self._committed = 0
        self._commitments = queries.CommitmentIndex()  # fed the latest height's state only
        self._open()

    # --- building and restoring the ledger -------------------------------------------

    def _fresh(self) -> None:
        self._sink = _TxEvents()
        store = SparseMerkleTree(self.db.nodes)
        self.handler = IbcHandler(
            store,
            {CordaLightClient.client_type: CordaLightClient(), QbftClient.client_type: QbftClient(),
             ProxyLightClient.client_type: ProxyLightClient()},
            IBC_PREFIX,
            self._sink,
        )
        transfer.install(self.handler)
        install_dvp(self.handler)
        self._locks: dict[str, tuple[bytes, int]] = {}
        self.states = UnconsumedIndex()
        bank = StoreBank(store)
        for account, denom, amount in self.genesis.bank:
            bank.mint(account, denom, amount)
        self.cluster = NotaryCluster(
            self.chain_id,
            self.genesis.identity,
            list(self.genesis.notary_seeds),
            CONTRACTS,
            ibc_store=store,
            ibc=self.handler,
            revision_number=self.revision_number,
        )
        self._committed = 0

    def _open(self) -> None:
        """Replay every committed block; on an empty database, produce and persist genesis."""
        self._fresh()
        latest = self.db.latest_height()
        for h in range(1, latest + 1):
            raw = self.db.get_block(h)
            if raw is None:
                raise DatabaseError(f"block {h} is missing; cannot replay the ledger")
            try:
                blk = node_pb2.Block.FromString(raw)
                clocks = [blk.time_ns] * len(self.cluster.member_seeds)
                for tx, res in zip(blk.txs, blk.results, strict=True):
                    if res.status == node_pb2.TX_STATUS_COMMITTED:
                        self._notarise(SignedTransaction.decode(tx), clocks)
                signed = self.cluster.checkpoint(blk.time_ns)
            except (NotaryError, TransactionError, ValueError, DecodeError) as exc:
                raise DatabaseError(f"block {h} does not replay: {exc}") from None
            if checkpoint_hash(signed.checkpoint) != bytes(blk.hash):
                raise DatabaseError(f"block {h} does not replay to its stored hash (blocks or genesis were altered)")
            self._committed = h
        # Every node the replay wrote is already on disk with its height.
        self.db.nodes.discard()
        stored = self.db.get_meta(META_CHECKPOINT)
        if latest and stored is not None and stored != encode(self.cluster.checkpoints[-1].header(0)):
            raise DatabaseError(f"the stored latest checkpoint differs from the replayed height {latest}")
        if latest == 0:
            block = self.produce_block([t.encode() for t in self.genesis.transactions()], self.genesis.genesis_time_ns)
            if not all(r.ok for r in block.results):
                raise GenesisError("genesis transactions were refused: " + "; ".join(r.reason for r in block.results))
            proto = block_to_proto(block)
            self.db.commit_height(
                block.height,
                block.hash,
                proto.SerializeToString(deterministic=True),
                [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results],
                block.meta,
            )
            self.commit_block(block)

    # --- ChainApp: transactions and blocks --------------------------------------------

    def check_tx(self, tx: bytes) -> bytes:
        try:
            stx = SignedTransaction.decode(tx)
            stx.check_signatures()
        except (TransactionError, ValueError) as exc:
            raise TxRejected(str(exc)) from None
        if stx.wtx.notary != self.genesis.identity:
            raise TxRejected(
                f"transaction names notary {stx.wtx.notary.hex()[:16]}, "
                f"not this chain's ({self.chain_id}) notary {self.genesis.identity.hex()[:16]}"
            )
        if not stx.wtx.commands:
            raise TxRejected("transaction has no commands")
        return stx.txid

    def _notarise(self, stx: SignedTransaction, clocks: list[int]) -> None:
        """Notarise (live or replaying), then index the tx's states and the DvP locks it created."""
        self.cluster.notarise(stx, clocks)
        self.states.add(stx.txid, stx.wtx.inputs, stx.wtx.outputs, self.cluster.transactions[stx.txid].height)
        for i, state in enumerate(stx.wtx.outputs):
            lock = lock_of(state)
            if lock is not None:
                self._locks[lock.trade_id] = (stx.txid, i)

    def _execute(self, raw: bytes, time_ns: int) -> TxOutcome:
        tx_hash = tx_hash_of(raw)
        self._sink.events.clear()
        try:
            stx = SignedTransaction.decode(raw)
            self._notarise(stx, [time_ns] * len(self.cluster.member_seeds))
        except (NotaryError, TransactionError) as exc:
            return TxOutcome(tx_hash, False, str(exc) or type(exc).__name__)
        except Exception as exc:
            # One bad tx must not stop the chain. notarise commits nothing until every check
            # and the IBC execution have succeeded (the handler drops its overlay on error),
            # so a tx refused here leaves no trace and replay skips it like any failed tx.
            return TxOutcome(tx_hash, False, f"refused: {type(exc).__name__}: {exc}")
        height = str(self.cluster.height + 1).encode()
        events = [AppEvent("corda.notarised", (("height", height), ("txid", stx.txid.hex().encode())))]
        events += [AppEvent(e.type, e.attributes) for e in self._sink.events]
        self._sink.events.clear()
        cost = len(stx.wtx.inputs) + len(stx.wtx.outputs) + len(stx.wtx.commands)
        return TxOutcome(tx_hash, True, events=tuple(events), cost=cost)

    def produce_block(self, txs: Sequence[bytes], time_ns: int) -> ProducedBlock:
        results = tuple(self._execute(raw, time_ns) for raw in txs)
        try:
            signed = self.cluster.checkpoint(time_ns)
        except NotaryError:
            # e.g. a time that does not advance: drop the executed txs, keep the committed ledger.
            self.db.nodes.discard()
            self._open()
            raise
        header = encode(signed.header(0))
        return ProducedBlock(
            height=signed.checkpoint.height,
            time_ns=time_ns,
            hash=checkpoint_hash(signed.checkpoint),
            header=header,
            txs=tuple(txs),
            results=results,
            meta={META_CHECKPOINT: header},
        )

    def commit_block(self, block: ProducedBlock) -> None:
        self._committed = block.height

    def discard_block(self, block: ProducedBlock) -> None:
        """The cluster has no undo, so the committed ledger is rebuilt from the database."""
        self.db.nodes.discard()
        self._open()

    # --- ChainApp: reads ---------------------------------------------------------------

    def latest_height(self) -> int:
        return self._committed

    def earliest_height(self) -> int:
        return 1 if self._committed else 0

    def validators(self) -> list[bytes]:
        return list(self.cluster.members)

    def _checkpoint(self, height: int) -> SignedCheckpoint:
        if not 1 <= height <= self._committed:
            raise QueryError(f"height {height} is not committed (latest is {self._committed})")
        return self.cluster.checkpoints[height - 1]

    def header(self, height: int) -> HeaderInfo:
        signed = self._checkpoint(height)
        encoded = encode(signed.header(0))
        return HeaderInfo(
            height=height,
            time_ns=signed.checkpoint.timestamp,
            hash=checkpoint_hash(signed.checkpoint),
            header=encoded,
            client_header=encoded,
        )

    def _view(self, height: int) -> SparseMerkleTree:
        try:
            return self.cluster.ibc_store.at(bytes(self._checkpoint(height).checkpoint.ibc_root))
        except SmtError as exc:
            raise QueryError(f"IBC store at height {height} is unreadable: {exc}") from None

    def query_ibc(self, path: str, height: int, prove: bool) -> IbcQueryResult:
        view = self._view(height)
        key = path.encode()
        try:
            value = view.get(key)
            proof = view.prove_bytes(key) if prove else b""
        except SmtError as exc:
            raise QueryError(f"cannot read {path!r} at height {height}: {exc}") from None
        return IbcQueryResult(value, proof, height)

    def query_ibc_multi(self, paths: Sequence[str], height: int) -> tuple[list[bytes | None], bytes]:
        raise QueryError("multiproofs are not served by this node yet (use proof_mode EACH)")

    def packet_commitment_sequences(self, port_id: str, channel_id: str, height: int) -> list[int]:
        try:
            if height == self.latest_height():
                return self._commitments.commitments(self._view(height), port_id, channel_id)
            return queries.packet_commitments(self._view(height), port_id, channel_id)
        except (IbcError, SmtError, ValueError) as exc:
            raise QueryError(str(exc)) from None

    def unreceived_packets(self, port_id: str, channel_id: str, sequences: Sequence[int], height: int) -> list[int]:
        try:
            return queries.unreceived_packets(self._view(height), port_id, channel_id, sequences)
        except (IbcError, SmtError, ValueError) as exc:
            raise QueryError(str(exc)) from None

    def unreceived_acks(self, port_id: str, channel_id: str, sequences: Sequence[int], height: int) -> list[int]:
        try:
            return queries.unreceived_acks(self._view(height), port_id, channel_id, sequences)
        except (IbcError, SmtError, ValueError) as exc:
            raise QueryError(str(exc)) from None

    # --- application queries ----------------------------------------------------------

    def _unconsumed(self, key: StateKey, height: int, limit: int | None = None) -> list[IndexedState]:
        """States of ``key`` created at or before ``height`` and not consumed by then."""
        self._checkpoint(height)
        return self.states.unconsumed(key, height, limit)

    def _cash(self, height: int, owner: bytes, limit: int | None = None) -> list[tuple[IndexedState, pb.Cash]]:
        return [(row, row.cash) for row in self._unconsumed((CASH, owner), height, limit) if row.cash is not None]

    def _client_state(self, args: dict[str, Any], height: int) -> dict[str, Any]:
        """What a counterparty needs to create a corda client of this chain at ``height``."""
        signed = self._checkpoint(height)
        trusting = args.get("trusting_period_ns", 14 * 24 * 3600 * 10**9)
        drift = args.get("max_clock_drift_ns", 10 * 10**9)
        for name, value in (("trusting_period_ns", trusting), ("max_clock_drift_ns", drift)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
                raise QueryError(f"argument {name!r}: expected a positive integer")
        keys = list(signed.notary_set)
        cs = lc.ClientState(chain_id=self.chain_id, notary_keys=keys, threshold=quorum(len(keys)),
                            latest_height=height, trusting_period=trusting, max_clock_drift=drift,
                            revision_number=self.revision_number)
        return {
            "client_type": CordaLightClient.client_type,
            "height": height,
            "revision_number": self.revision_number,
            "client_state": encode(cs).hex(),
            "consensus_state": encode(consensus_state_from_checkpoint(signed.checkpoint)).hex(),
        }

    @staticmethod
    def _key_arg(args: dict[str, Any], name: str) -> bytes:
        raw = args.get(name)
        try:
            key = bytes.fromhex(raw) if isinstance(raw, str) else b""
        except ValueError:
            key = b""
        if len(key) != 32:
            raise QueryError(f"argument {name!r} must be a 32-byte Ed25519 public key in hex")
        return key

    @staticmethod
    def _str_arg(args: dict[str, Any], name: str) -> str:
        value = args.get(name)
        if not isinstance(value, str) or not value:
            raise QueryError(f"argument {name!r} must be a non-empty string")
        return value

    def query_app(self, query: str, args: dict[str, Any], height: int) -> Any:
        """Ledger queries read the UTXO history at ``height``; bank queries read the IBC store there."""
        if query == "balances":
            totals: dict[str, int] = {}
            for _, cash in self._cash(height, self._key_arg(args, "owner")):
                totals[cash.issuer.hex()] = totals.get(cash.issuer.hex(), 0) + cash.amount
            return {"owner": args["owner"], "by_issuer": totals}
        if query == "cash_states":
            rows = self._cash(height, self._key_arg(args, "owner"), MAX_QUERY_ROWS)
            return [
                {"txid": ref.txid.hex(), "index": ref.index, "issuer": c.issuer.hex(), "owner": c.owner.hex(),
                 "amount": c.amount}
                for ref, c in rows
            ]
        if query == "holders":
            out: dict[str, Any] = {}
            for row in self._unconsumed((ADMISSION, b""), height):
                adm = pb.Admission.FromString(row.state.data)
                out[adm.issuer.hex()] = {"admission": {"txid": row.txid.hex(), "index": row.index},
                                         "holders": [bytes(h).hex() for h in adm.holders]}
            return out
        if query in ("bank_balance", "escrow"):
            denom = self._str_arg(args, "denom")
            if query == "escrow":
                account = transfer.escrow_account(self._str_arg(args, "port_id"), self._str_arg(args, "channel_id"))
            else:
                account = self._str_arg(args, "account")
            try:
                bank = StoreBank(self._view(height))
                answer: dict[str, Any] = {"account": account, "denom": denom, "amount": bank.balance(account, denom)}
                if query == "bank_balance":
                    answer["supply"] = bank.supply(denom)
            except (IbcError, SmtError, ValueError) as exc:
                raise QueryError(f"{query}: {exc}") from None
            return answer
        if query == "chain_info":
            g = self.genesis
            self._checkpoint(height)
            return {
                "chain_id": self.chain_id,
                "revision_number": self.revision_number,
                "client_type": CordaLightClient.client_type,
                "notary_identity": g.identity.hex(),
                "notaries": [k.hex() for k in self.cluster.members],
                "issuer": g.issuer.hex(),
                "holders": {n: ed25519_public_key(s).hex() for n, s in g.holder_seeds},
                "dvp_escrow_owner": DVP_ESCROW_OWNER.hex(),
            }
        if query == "client_state":
            return self._client_state(args, height)
        if query == "dvp_lock":
            return self._dvp_lock(self._str_arg(args, "trade_id"), height)
        raise QueryError(
            f"unknown query {query!r}; expected one of balances, bank_balance, cash_states, chain_info, "
            "client_state, dvp_lock, escrow, holders"
        )

    def _dvp_lock(self, trade_id: str, height: int) -> dict[str, Any]:
        """A trade's DvpLock at ``height``: where it is, what it holds, and how it ended."""
        view = self._view(height)
        try:
            sequence = trade_sequence(view.get, trade_id)
        except SmtError as exc:
            raise QueryError(f"dvp_lock: {exc}") from None
        answer: dict[str, Any] = {
            "trade_id": trade_id, "status": "none", "lock": None, "cash": None, "lock_state": None,
            "payer": None, "payee": None, "amount": None, "channel_id": None, "sequence": sequence,
            "timeout_timestamp": None, "exit_txid": None,
        }
        where = self._locks.get(trade_id)
        ntx = self.cluster.transactions.get(where[0]) if where is not None else None
        if where is None or ntx is None or ntx.height > height:
            return answer
        txid, index = where
        state = ntx.stx.wtx.outputs[index]
        lock = lock_of(state)
        if lock is None:
            return answer
        spender = self.cluster.consumed.get((txid, index))
        status = "locked"
        if spender is not None and self.cluster.transactions[spender].height <= height:
            kind = exit_kind(self.cluster.transactions[spender].stx.wtx.commands, trade_id)
            status = STATUS_OF_EXIT.get(kind or "", "locked")
            answer["exit_txid"] = spender.hex()
        answer.update({
            "status": status,
            "lock": {"txid": txid.hex(), "index": index},
            "cash": {"txid": txid.hex(), "index": int(state.encumbrance)},
            "lock_state": lock.SerializeToString(deterministic=True).hex(),
            "payer": bytes(lock.payer).hex(),
            "payee": bytes(lock.payee).hex(),
            "amount": int(lock.amount),
            "channel_id": lock.channel_id,
            "timeout_timestamp": int(lock.timeout_timestamp),
        })
        return answer
