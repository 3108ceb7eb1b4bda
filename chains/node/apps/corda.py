"""The Corda-style ledger behind the generic node: genesis, block = one notary checkpoint.

Why the node holds every notary key: this is the reference setup the relayer and the tests
run against, so one process plays the whole notary cluster. A submitted transaction is
notarised at production with every member's clock reading the block time, then the height
is sealed as one signed checkpoint; a transaction the cluster refuses is kept in the block
with its reason (it consumed nothing) so its submitter gets a definite answer.

Restart (crash safety) is from a snapshot, never by replay: the UTXO ledger the notary
cluster reads and writes (outputs, consumed outputs, notarised txids, checkpoints with their
batch signatures) is :class:`chains.node.apps.corda_store.SqliteLedgerStore`, whose rows land in
the same SQLite transaction as their block, and the IBC host SMT's nodes go through
``db.nodes`` likewise. Opening the node reads the latest checkpoint and builds the cluster and
the IBC tree at it, so restart time and memory do not grow with history. On open the latest
block's hash, the stored latest header and the snapshot's checkpoint must agree, or the node
refuses to open.

DvP (chains/corda/dvp.py): the DvpLock contract is installed and the ``dvp`` port bound next to
``transfer``. The ``dvp_lock`` query reads the trade's row of ``corda_locks`` (trade id ->
lock output, and the exit that consumed it) joined to its output at the asked height: a lock
is "locked" until consumed, and the consuming transaction's DvP exit command names how it
ended. A Lock tx is notarised only if its MsgDvpSend ran, and the module refuses a used trade
id, so a trade id names at most one lock on this chain.

Ledger queries (``balances``, ``cash_states``, ``holders``) read the (contract, owner) index of
``corda_outputs``: a query costs the states of the one key it asks about (at an older height,
plus those the key lost since), never the whole history. ``notarisation`` answers a tx's
notary signatures (batch signature + Merkle path per member), checkable with
``chains.corda.batch.check_notarised`` and the notary keys alone.

Admission caches the decoded, signature-checked tx by its exact bytes, so the block that
carries it neither decodes nor verifies it again (bounded; a miss just does the work).

Genesis (height 1) is produced by the node itself on first open from genesis.json: the
issuer's Admission list naming the demo holders (securities firms) and one Issue of Cash to
each, plus ICS-20 bank balances minted into the IBC store before the first checkpoint.

SC brands (chains/corda/cash.py): genesis.json's ``brand`` names the default brand of
``issuer`` (the one a trade without ``sc_brand`` pays in); ``brands`` lists further brands,
each with its own issuer key (``keys/issuer-NAME.key``), its own admitted holders and its own
genesis cash. Brand names are unique on the chain, so ``chain_info``'s ``brands`` (name ->
issuer) resolves a trade's ``sc_brand`` without ambiguity. Queries name a coin by
``brand_key(issuer, brand)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chains.corda.cash import (
    ADMISSION,
    CASH,
    AdmissionContract,
    CashContract,
    admission_state,
    brand_key,
    cash_state,
    valid_brand,
)
from chains.corda.contracts import Contract
from chains.corda.dvp import (
    DVP,
    DVP_ESCROW_OWNER,
    STATUS_OF_EXIT,
    DvpContract,
    lock_of,
    trade_sequence,
)
from chains.corda.dvp import install as install_dvp
from chains.corda.ibc_host import IBC_CONTRACT, IbcHostContract, account_of
from chains.corda.notary import NotaryCluster, NotaryError, SignedCheckpoint
from chains.corda.transaction import SignedTransaction, TransactionError, WireTransaction
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
    path_keys,
)
from chains.node.apps.admitted import AdmittedCache
from chains.node.apps.corda_store import IndexedState, SqliteLedgerStore, StateKey
from chains.node.config import NodeConfig
from chains.node.db import DatabaseError, NodeDatabase
from chains.node.runtime import persist_block
from chains.store.smt import EMPTY_ROOT, SmtError, SparseMerkleTree
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
# The testnet's two SC brands: the default one of issuer.key, unnamed ("") as every SC before
# brands was, so existing ledgers, trade files and tools keep meaning the same coin; and a
# second with its own issuer that admits only firm-a and firm-b (a firm-c buyer is refused).
DEMO_BRAND = ""
DEMO_BRAND_2 = "KUSD"
DEMO_BRAND_2_HOLDERS = ("firm-a", "firm-b")
DEMO_BANK = 1_000_000
CONTRACTS: dict[str, Contract] = {
    CASH: CashContract(),
    ADMISSION: AdmissionContract(),
    IBC_CONTRACT: IbcHostContract(),
    DVP: DvpContract(),
}
MAX_QUERY_ROWS = 1000
MAX_ADMITTED = 20_000  # decoded txs kept from admission to their block (bounded; a miss re-decodes)
META_CHECKPOINT = "corda.latest_checkpoint"


class GenesisError(ValueError):
    """genesis.json or a key file is missing or malformed; the message names the field."""


# --- genesis -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GenesisBrand:
    """A further SC brand at genesis: its issuer, the holders it admits and their cash."""

    name: str
    issuer_seed: bytes
    holders: tuple[str, ...]
    cash: tuple[tuple[str, int], ...]

    @property
    def issuer(self) -> bytes:
        return ed25519_public_key(self.issuer_seed)


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
    brand: str = ""  # the default brand of ``issuer``
    more_brands: tuple[GenesisBrand, ...] = ()

    @property
    def brands(self) -> dict[str, bytes]:
        """Brand name -> issuer key, the default brand first."""
        return {self.brand: self.issuer, **{b.name: b.issuer for b in self.more_brands}}

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
            outputs=(admission_state(self.issuer, holders, self.identity, self.brand),),
            commands=(pb.Command(contract=ADMISSION, name="Admit", signers=[self.issuer]),),
            notary=self.identity,
            privacy_salt=sha256(f"{self.chain_id}/genesis/admission".encode()),
        )
        out = [SignedTransaction(admit).sign(self.issuer_seed)]
        if self.cash:
            issue = WireTransaction(
                inputs=(),
                outputs=tuple(cash_state(self.issuer, self.holder(n), a, self.identity, brand=self.brand)
                              for n, a in self.cash),
                commands=(pb.Command(contract=CASH, name="Issue", signers=[self.issuer]),),
                notary=self.identity,
                privacy_salt=sha256(f"{self.chain_id}/genesis/issue".encode()),
                references=(pb.StateRef(txid=admit.txid, index=0),),
            )
            out.append(SignedTransaction(issue).sign(self.issuer_seed))
        for b in self.more_brands:
            out += self._brand_transactions(b)
        return out

    def _brand_transactions(self, b: GenesisBrand) -> list[SignedTransaction]:
        admit = WireTransaction(
            inputs=(),
            outputs=(admission_state(b.issuer, [self.holder(n) for n in b.holders], self.identity, b.name),),
            commands=(pb.Command(contract=ADMISSION, name="Admit", signers=[b.issuer]),),
            notary=self.identity,
            privacy_salt=sha256(f"{self.chain_id}/genesis/{b.name}/admission".encode()),
        )
        out = [SignedTransaction(admit).sign(b.issuer_seed)]
        if b.cash:
            issue = WireTransaction(
                inputs=(),
                outputs=tuple(cash_state(b.issuer, self.holder(n), a, self.identity, brand=b.name) for n, a in b.cash),
                commands=(pb.Command(contract=CASH, name="Issue", signers=[b.issuer]),),
                notary=self.identity,
                privacy_salt=sha256(f"{self.chain_id}/genesis/{b.name}/issue".encode()),
                references=(pb.StateRef(txid=admit.txid, index=0),),
            )
            out.append(SignedTransaction(issue).sign(b.issuer_seed))
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
    cash = _cash_of(_field(doc, "cash", dict), "cash")
    brand = doc.get("brand", "")
    if not isinstance(brand, str) or not valid_brand(brand):
        raise GenesisError(f"genesis.json brand: expected 0-32 characters of [A-Za-z0-9._-], got {brand!r}")
    more = _more_brands(doc.get("brands", []), keys, {n for n, _ in holders})
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
        brand=brand,
        more_brands=more,
    )
    for name, _ in g.cash:
        g.holder(name)
    if len(g.brands) != 1 + len(more):
        raise GenesisError("genesis.json brands: brand names must be unique on the chain")
    return g


def _cash_of(doc: dict[str, Any], where: str) -> list[tuple[str, int]]:
    cash = []
    for name, amount in doc.items():
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount < 2**64:
            raise GenesisError(f"genesis.json {where}.{name}: expected a positive uint64")
        cash.append((str(name), amount))
    return cash


def _more_brands(doc: Any, keys: Path, holders: set[str]) -> tuple[GenesisBrand, ...]:
    """genesis.json ``brands``: [{name, issuer, holders: [holder names], cash: {holder: amount}}]."""
    if not isinstance(doc, list):
        raise GenesisError("genesis.json brands: expected a list")
    out = []
    for i, entry in enumerate(doc):
        where = f"genesis.json brands[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"name", "issuer", "holders", "cash"}:
            raise GenesisError(f"{where}: expected an object with name, issuer, holders and cash")
        name = entry["name"]
        if not isinstance(name, str) or not name or not valid_brand(name):
            raise GenesisError(f"{where}.name: expected 1-32 characters of [A-Za-z0-9._-], got {name!r}")
        seed = _read_key(keys / f"issuer-{name}.key")
        if ed25519_public_key(seed).hex() != entry["issuer"]:
            raise GenesisError(f"{where}.issuer: does not match keys/issuer-{name}.key")
        admitted = entry["holders"]
        if not isinstance(admitted, list) or any(h not in holders for h in admitted):
            raise GenesisError(f"{where}.holders: expected a list of genesis holder names")
        if not isinstance(entry["cash"], dict):
            raise GenesisError(f"{where}.cash: expected an object holder -> amount")
        cash = _cash_of(entry["cash"], f"brands[{i}].cash")
        if any(n not in admitted for n, _ in cash):
            raise GenesisError(f"{where}.cash: every holder with cash must be admitted to the brand")
        out.append(GenesisBrand(name, seed, tuple(str(h) for h in admitted), tuple(cash)))
    return tuple(out)


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
        issuer_2 = os.urandom(32)
        _write_key(keys / f"issuer-{DEMO_BRAND_2}.key", issuer_2)
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
            "brand": DEMO_BRAND,
            "brands": [{"name": DEMO_BRAND_2, "issuer": ed25519_public_key(issuer_2).hex(),
                        "holders": list(DEMO_BRAND_2_HOLDERS),
                        "cash": {name: DEMO_CASH for name in DEMO_BRAND_2_HOLDERS}}],
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
            "brands": {DEMO_BRAND: doc["issuer"], DEMO_BRAND_2: ed25519_public_key(issuer_2).hex()},
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
        self._admitted: AdmittedCache[SignedTransaction] = AdmittedCache(MAX_ADMITTED)
        self._open()

    # --- opening the ledger at its snapshot ---------------------------------------------

    def _open(self) -> None:
        """Build the cluster at the last committed height; on an empty database, make genesis.

        Also how a produced block is discarded: a fresh store has no pending writes and the
        IBC tree restarts at the committed root, so nothing of the block survives.
        """
        self._sink = _TxEvents()
        self.ledger = SqliteLedgerStore(self.db)
        latest = self.ledger.latest_checkpoint()
        height = latest.checkpoint.height if latest is not None else 0
        if self.db.latest_height() != height:
            if latest is None:
                raise DatabaseError(
                    f"the database holds {self.db.latest_height()} blocks but no ledger snapshot: it was written "
                    "by a node that rebuilt its ledger by replay; re-initialise the node home"
                )
            raise DatabaseError(f"the ledger snapshot is at height {height}, the blocks at {self.db.latest_height()}")
        if latest is not None:
            hash_ = checkpoint_hash(latest.checkpoint)
            raw = self.db.get_block(height)
            stored = self.db.get_meta(META_CHECKPOINT)
            if raw is None or bytes(node_pb2.Block.FromString(raw).hash) != hash_:
                raise DatabaseError(f"block {height} does not match the ledger snapshot's checkpoint")
            if stored is not None and stored != encode(latest.header(0)):
                raise DatabaseError(f"the stored latest header differs from the ledger snapshot at height {height}")
        store = SparseMerkleTree(self.db.nodes, bytes(latest.checkpoint.ibc_root) if latest else EMPTY_ROOT)
        self.handler = IbcHandler(
            store,
            {CordaLightClient.client_type: CordaLightClient(), QbftClient.client_type: QbftClient(),
             ProxyLightClient.client_type: ProxyLightClient()},
            IBC_PREFIX,
            self._sink,
        )
        transfer.install(self.handler)
        install_dvp(self.handler)
        if latest is None:
            bank = StoreBank(store)
            for account, denom, amount in self.genesis.bank:
                bank.mint(account, denom, amount)
        try:
            self.cluster = NotaryCluster(
                self.chain_id,
                self.genesis.identity,
                list(self.genesis.notary_seeds),
                CONTRACTS,
                ibc_store=store,
                ledger=self.ledger,
                ibc=self.handler,
                revision_number=self.revision_number,
            )
        except NotaryError as exc:
            raise DatabaseError(f"the ledger snapshot does not fit this genesis: {exc}") from None
        self._committed = height
        if latest is None:
            block = self.produce_block([t.encode() for t in self.genesis.transactions()], self.genesis.genesis_time_ns)
            if not all(r.ok for r in block.results):
                raise GenesisError("genesis transactions were refused: " + "; ".join(r.reason for r in block.results))
            persist_block(self.db, block)
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
        self._admitted.put(bytes(tx), stx, len(tx))
        return stx.txid

    def _execute(self, raw: bytes, time_ns: int) -> TxOutcome:
        self._sink.events.clear()
        stx = self._admitted.pop(bytes(raw))
        try:
            if stx is None:
                stx = SignedTransaction.decode(raw)
            self.cluster.notarise(stx, [time_ns] * len(self.cluster.member_seeds))
        except (NotaryError, TransactionError) as exc:
            return TxOutcome(stx.txid if stx is not None else sha256(raw), False, str(exc) or type(exc).__name__)
        except Exception as exc:
            # One bad tx must not stop the chain. notarise commits nothing until every check
            # and the IBC execution have succeeded (the handler drops its overlay on error),
            # so a tx refused here leaves no trace.
            return TxOutcome(stx.txid if stx is not None else tx_hash_of(raw), False,
                             f"refused: {type(exc).__name__}: {exc}")
        height = str(self.cluster.height + 1).encode()
        events = [AppEvent("corda.notarised", (("height", height), ("txid", stx.txid.hex().encode())))]
        events += [AppEvent(e.type, e.attributes) for e in self._sink.events]
        self._sink.events.clear()
        cost = len(stx.wtx.inputs) + len(stx.wtx.outputs) + len(stx.wtx.commands)
        return TxOutcome(stx.txid, True, events=tuple(events), cost=cost)

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
        """Drop the block's writes: reopen at the committed snapshot (no replay)."""
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
        signed = self.cluster.signed_checkpoint(height)
        if signed is None:
            raise QueryError(f"the checkpoint of height {height} is missing from the ledger")
        return signed

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

    def _reader(self, height: int) -> Callable[[bytes], bytes | None]:
        """Unproved reads at ``height``: the head tree (its latest values cached) when it stands
        exactly at that committed height with nothing pending, else a view walking the tree."""
        view = self._view(height)
        head = self.cluster.ibc_store
        if height == self.cluster.height and not self.cluster.pending and head.root == view.root:
            return head.get
        return view.get

    def query_ibc(self, path: str, height: int, prove: bool) -> IbcQueryResult:
        view = self._view(height)
        key = path.encode()
        try:
            value = view.get(key)
            proof = view.prove_bytes(key) if prove else b""
        except SmtError as exc:
            raise QueryError(f"cannot read {path!r} at height {height}: {exc}") from None
        return IbcQueryResult(value, proof, height)

    def query_ibc_many(self, paths: Sequence[str], height: int, prove: bool) -> list[IbcQueryResult]:
        """``query_ibc`` of each path over one view of the SMT at ``height``."""
        view = self._view(height)
        out = []
        for path in paths:
            key = path.encode()
            try:
                out.append(IbcQueryResult(view.get(key), view.prove_bytes(key) if prove else b"", height))
            except SmtError as exc:
                raise QueryError(f"cannot read {path!r} at height {height}: {exc}") from None
        return out

    def query_ibc_multi(self, paths: Sequence[str], height: int) -> tuple[list[bytes | None], bytes]:
        view = self._view(height)
        keys = path_keys(paths)
        try:
            values = [view.get(key) for key in keys]
            proof = view.prove_many_bytes(keys)
        except SmtError as exc:
            raise QueryError(f"cannot prove {len(keys)} paths at height {height}: {exc}") from None
        return values, proof

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

    # --- pruning (chains/node/prune.py) ------------------------------------------------

    def gc_roots(self, height: int) -> list[tuple[bytes, str]]:
        root = bytes(self._checkpoint(height).checkpoint.ibc_root)
        return [] if root == EMPTY_ROOT else [(root, "smt")]

    @staticmethod
    def gc_children(kind: str, data: bytes) -> list[tuple[bytes, str]]:
        """An SMT inner node's two children; a leaf's raw key and value entries (which refer to
        nothing, even when their bytes happen to look like a node)."""
        if kind != "smt" or len(data) != 65:
            return []
        a, b = data[1:33], data[33:]
        if data[:1] == b"\x01":
            return [(c, "smt") for c in (a, b) if c != EMPTY_ROOT]
        return [(a, "raw"), (b, "raw")]

    def prune_history(self, below: int, limit: int) -> int:
        """Checkpoints of pruned heights, and outputs consumed before ``below`` (no query at a
        retained height can see them). Kept: every notarised txid (``corda_txs``, the replay
        check of txs without inputs) and each DvP lock's output (the trade's fate)."""
        return self.ledger.prune(below, limit)

    # --- application queries ----------------------------------------------------------

    def _unconsumed(self, key: StateKey, height: int, limit: int | None = None) -> list[IndexedState]:
        """States of ``key`` created at or before ``height`` and not consumed by then."""
        self._checkpoint(height)
        return self.ledger.unconsumed(key, height, limit)

    def _cash(self, height: int, owner: bytes, limit: int | None = None) -> list[tuple[IndexedState, pb.Cash]]:
        # Rows under a Cash owner key decoded when they were filed, so they decode again.
        return [(row, pb.Cash.FromString(row.state.data)) for row in self._unconsumed((CASH, owner), height, limit)]

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
    def _key_arg(args: dict[str, Any], name: str, what: str = "Ed25519 public key") -> bytes:
        raw = args.get(name)
        try:
            key = bytes.fromhex(raw) if isinstance(raw, str) else b""
        except ValueError:
            key = b""
        if len(key) != 32:
            raise QueryError(f"argument {name!r} must be a 32-byte {what} in hex")
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
            by_brand: dict[str, int] = {}
            for _, cash in self._cash(height, self._key_arg(args, "owner")):
                totals[cash.issuer.hex()] = totals.get(cash.issuer.hex(), 0) + cash.amount
                coin = brand_key(bytes(cash.issuer), cash.brand)
                by_brand[coin] = by_brand.get(coin, 0) + cash.amount
            return {"owner": args["owner"], "by_issuer": totals, "by_brand": by_brand}
        if query == "cash_states":
            rows = self._cash(height, self._key_arg(args, "owner"), MAX_QUERY_ROWS)
            return [
                {"txid": ref.txid.hex(), "index": ref.index, "issuer": c.issuer.hex(), "owner": c.owner.hex(),
                 "amount": c.amount, "brand": c.brand}
                for ref, c in rows
            ]
        if query == "holders":
            out: dict[str, Any] = {}
            for row in self._unconsumed((ADMISSION, b""), height):
                adm = pb.Admission.FromString(row.state.data)
                out[brand_key(bytes(adm.issuer), adm.brand)] = {
                    "admission": {"txid": row.txid.hex(), "index": row.index}, "issuer": adm.issuer.hex(),
                    "brand": adm.brand, "holders": [bytes(h).hex() for h in adm.holders]}
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
                "brand": g.brand,
                "brands": {name: key.hex() for name, key in g.brands.items()},
                "holders": {n: ed25519_public_key(s).hex() for n, s in g.holder_seeds},
                "dvp_escrow_owner": DVP_ESCROW_OWNER.hex(),
            }
        if query == "client_state":
            return self._client_state(args, height)
        if query == "dvp_lock":
            return self._dvp_lock(self._str_arg(args, "trade_id"), height)
        if query == "notarisation":
            return self._notarisation(self._key_arg(args, "txid", "txid"), height)
        raise QueryError(
            f"unknown query {query!r}; expected one of balances, bank_balance, cash_states, chain_info, "
            "client_state, dvp_lock, escrow, holders, notarisation"
        )

    def _notarisation(self, txid: bytes, height: int) -> dict[str, Any]:
        """A tx's notary signatures as of ``height``: one TxNotarySignature (hex) per member.

        Each is the member's batch signature over its height's txids plus the txid's Merkle
        path, so ``chains.corda.batch.check_notarised`` with the notary keys (``chain_info``)
        checks it without trusting this node.
        """
        self._checkpoint(height)
        at = self.ledger.notarised_at(txid)
        if at is None or at > height:
            return {"txid": txid.hex(), "height": None, "signatures": []}
        sigs = self.cluster.notary_signatures(txid)
        return {"txid": txid.hex(), "height": at,
                "signatures": [s.SerializeToString(deterministic=True).hex() for s in sigs]}

    def _dvp_lock(self, trade_id: str, height: int) -> dict[str, Any]:
        """A trade's DvpLock at ``height``: where it is, what it holds, and how it ended."""
        read = self._reader(height)
        try:
            sequence = trade_sequence(read, trade_id)
        except SmtError as exc:
            raise QueryError(f"dvp_lock: {exc}") from None
        answer: dict[str, Any] = {
            "trade_id": trade_id, "status": "none", "lock": None, "cash": None, "lock_state": None,
            "payer": None, "payee": None, "amount": None, "cash_issuer": None, "brand": None, "channel_id": None,
            "sequence": sequence, "timeout_timestamp": None, "exit_txid": None,
        }
        found = self.ledger.lock(trade_id)
        if found is None or found.created > height:
            return answer
        lock = lock_of(found.state)
        if lock is None:
            return answer
        status = "locked"
        if found.consumed_by is not None and found.consumed_at is not None and found.consumed_at <= height:
            status = STATUS_OF_EXIT.get(found.exit_kind or "", "locked")
            answer["exit_txid"] = found.consumed_by.hex()
        txid, index = found.txid, found.index
        answer.update({
            "status": status,
            "lock": {"txid": txid.hex(), "index": index},
            "cash": {"txid": txid.hex(), "index": int(found.state.encumbrance)},
            "lock_state": lock.SerializeToString(deterministic=True).hex(),
            "payer": bytes(lock.payer).hex(),
            "payee": bytes(lock.payee).hex(),
            "amount": int(lock.amount),
            "cash_issuer": bytes(lock.cash_issuer).hex(),
            "brand": lock.brand,
            "channel_id": lock.channel_id,
            "timeout_timestamp": int(lock.timeout_timestamp),
        })
        return answer
