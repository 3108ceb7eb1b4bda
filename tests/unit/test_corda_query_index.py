"""The Corda node's ledger index answers exactly what a full ledger scan answers.

Two levels: the SQLite ledger store alone over a seeded synthetic ledger (Cash issues and
moves, DvP locks with their escrow Cash and their exits, Admission replacements, reopenings
of the store as a restart does), compared with a brute-force scan at every height; and the
node's CordaApp over real notarised Cash issues / moves / redemptions, refused double spends,
discarded blocks and restarts from the database, whose ``balances`` / ``cash_states`` /
``holders`` answers are compared at every height with answers built by scanning every
committed block's transactions (an oracle that shares nothing with the index). Cost is
measured in index rows read (the store's counter), never in time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chains.corda.cash import (
    ADMISSION,
    CASH,
    DVP_ESCROW_OWNER,
    admission_state,
    brand_key,
    cash_state,
)
from chains.corda.dvp import lock_state
from chains.corda.ibc_host import account_of
from chains.corda.ledger import SignedCheckpoint
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.node.app import QueryError
from chains.node.apps.corda import MAX_QUERY_ROWS, CordaApp, Genesis
from chains.node.apps.corda_store import SqliteLedgerStore, StateKey, state_key
from chains.node.db import NodeDatabase
from chains.node.runtime import block_to_proto
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.node.v1 import node_pb2
from lightclients.crypto import ed25519_public_key, sha256

SEC = 1_000_000_000
NOTARY = sha256(b"index-test:notary")


def _key(n: int) -> bytes:
    return sha256(b"index-test:key" + bytes([n]))


# --- the store alone over a synthetic ledger ----------------------------------------------


class Index:
    """A SqliteLedgerStore fed synthetic txs, committing one height at a time as the node does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = NodeDatabase(path)
        self.store = SqliteLedgerStore(self.db)
        self.salt = 0

    def add(self, inputs: list[pb.StateRef], outputs: list[pb.TransactionState], height: int) -> bytes:
        self.salt += 1
        w = WireTransaction(inputs=tuple(inputs), outputs=tuple(outputs), commands=(), notary=NOTARY,
                            privacy_salt=sha256(b"index-salt" + self.salt.to_bytes(8, "big")))
        self.store.add_transaction(SignedTransaction(w), height)
        return w.txid

    def seal(self, height: int) -> None:
        self.store.add_checkpoint(SignedCheckpoint(lc.Checkpoint(chain_id="index", height=height), [], []))
        self.db.commit_height(height, sha256(height.to_bytes(8, "big")), b"block")

    def reopen(self) -> None:
        self.db.close()
        self.db = NodeDatabase(self.path)
        self.store = SqliteLedgerStore(self.db)

    def rows(self, key: StateKey, height: int, limit: int | None = None) -> list[tuple[bytes, int, bytes]]:
        return [(r.txid, r.index, r.state.SerializeToString(deterministic=True))
                for r in self.store.unconsumed(key, height, limit)]


@dataclass
class Ledger:
    """A synthetic ledger log: (txid, inputs, outputs, height) in notarisation order."""

    txs: list[tuple[bytes, list[pb.StateRef], list[pb.TransactionState], int]] = field(default_factory=list)
    spent_at: dict[tuple[bytes, int], int] = field(default_factory=dict)
    live: dict[tuple[bytes, int], pb.TransactionState] = field(default_factory=dict)

    def add(self, index: Index, inputs: list[tuple[bytes, int]], outputs: list[pb.TransactionState],
            height: int) -> bytes:
        refs = [pb.StateRef(txid=t, index=i) for t, i in inputs]
        txid = index.add(refs, outputs, height)
        for ref in inputs:
            self.spent_at[ref] = height
            del self.live[ref]
        for i, st in enumerate(outputs):
            self.live[(txid, i)] = st
        self.txs.append((txid, refs, outputs, height))
        return txid

    def scan(self, key: StateKey, height: int) -> list[tuple[bytes, int, bytes]]:
        out = []
        for txid, _, outputs, created in self.txs:
            if created > height:
                continue
            for i, st in enumerate(outputs):
                spent = self.spent_at.get((txid, i))
                if (spent is None or spent > height) and state_key(st) == key:
                    out.append((txid, i, st.SerializeToString(deterministic=True)))
        return out


def _synthetic_step(rng: random.Random, ledger: Ledger, index: Index, owners: list[bytes],
                    issuer: bytes, height: int) -> None:
    live = ledger.live
    cash = [(ref, st) for ref, st in live.items() if st.contract == CASH and state_key(st)[1] != DVP_ESCROW_OWNER]
    locks = [ref for ref, st in live.items() if st.contract == "DvP"]
    admissions = [ref for ref, st in live.items() if st.contract == ADMISSION]
    op = rng.choice(["issue", "issue", "move", "move", "lock", "exit", "admit", "redeem"])
    if op == "issue" or not cash:
        outs = [cash_state(issuer, rng.choice(owners), rng.randint(1, 100), NOTARY) for _ in range(rng.randint(1, 3))]
        ledger.add(index, [], outs, height)
    elif op == "move":
        picked = rng.sample(cash, min(len(cash), rng.randint(1, 3)))
        outs = [cash_state(issuer, rng.choice(owners), rng.randint(1, 100), NOTARY) for _ in range(rng.randint(1, 3))]
        ledger.add(index, [ref for ref, _ in picked], outs, height)
    elif op == "lock":
        (ref, _), payer, payee = rng.choice(cash), rng.choice(owners), rng.choice(owners)
        lock = dvp_pb2.DvpLock(trade_id=f"T{len(ledger.txs)}", payer=payer, payee=payee, amount=5,
                               channel_id="channel-0", timeout_timestamp=10**18)
        outs = [cash_state(issuer, DVP_ESCROW_OWNER, 5, NOTARY, encumbrance=1), lock_state(lock, NOTARY, 0),
                cash_state(issuer, payer, 7, NOTARY)]
        ledger.add(index, [ref], outs, height)
    elif op == "exit" and locks:
        lock_ref = rng.choice(locks)
        ledger.add(index, [(lock_ref[0], 0), lock_ref], [cash_state(issuer, rng.choice(owners), 5, NOTARY)], height)
    elif op == "admit":
        holders = rng.sample(owners, rng.randint(1, len(owners)))
        ledger.add(index, admissions[:1], [admission_state(issuer, holders, NOTARY)], height)
    else:  # redeem: cash disappears with no Cash output
        ledger.add(index, [rng.choice(cash)[0]], [], height)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_index_equals_a_scan_at_every_height(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    owners = [_key(i) for i in range(4)]
    issuers = [_key(10), _key(11)]
    keys: list[StateKey] = [(CASH, o) for o in [*owners, DVP_ESCROW_OWNER, _key(99)]]
    keys += [(ADMISSION, b""), ("DvP", b""), (CASH, b"")]
    ledger, index = Ledger(), Index(tmp_path / "index.db")
    for height in range(1, 61):
        for _ in range(rng.choice([0, 1, 1, 2, 4])):
            _synthetic_step(rng, ledger, index, owners, rng.choice(issuers), height)
        index.seal(height)
        if rng.random() < 0.15:
            index.reopen()
        for h in range(1, height + 1):
            for key in keys:
                expected = ledger.scan(key, h)
                assert index.rows(key, h) == expected, (seed, h, key)
                limit = rng.randint(0, 6)  # the first rows only, as cash_states caps its answer
                assert index.rows(key, h, limit) == expected[:limit], (seed, h, key, limit)
    assert any(st.contract == "DvP" for _, _, outs, _ in ledger.txs for st in outs)
    assert ledger.spent_at
    index.db.close()


def test_a_query_reads_only_its_own_key(tmp_path: Path) -> None:
    """Unrelated history (other owners, consumed or not) does not add to a query's cost."""
    ledger, index = Ledger(), Index(tmp_path / "index.db")
    mine, other, issuer = _key(1), _key(2), _key(10)
    ledger.add(index, [], [cash_state(issuer, mine, 1, NOTARY), cash_state(issuer, mine, 2, NOTARY)], 1)
    index.seal(1)

    def cost(height: int) -> int:
        before = index.store.visited
        rows = index.store.unconsumed((CASH, mine), height)
        assert len(rows) == 2
        return index.store.visited - before

    at_latest, at_one = cost(1), cost(1)
    assert at_latest == at_one == 2
    height = 1
    for _ in range(200):  # history that is not mine: issues and moves among others
        height += 1
        for _ in range(5):
            txid = ledger.add(index, [], [cash_state(issuer, other, 3, NOTARY)] * 3, height)
            ledger.add(index, [(txid, 0), (txid, 1)], [cash_state(issuer, other, 6, NOTARY)], height)
        index.seal(height)
    assert cost(height) == at_latest
    assert cost(1) == at_one  # a historical height costs the same: nothing of mine moved since
    # Related history costs what it must: a state of mine consumed after height 1 is read.
    ledger.add(index, [(ledger.txs[0][0], 0)], [cash_state(issuer, other, 1, NOTARY)], height + 1)
    index.seal(height + 1)
    before = index.store.visited
    assert len(index.store.unconsumed((CASH, mine), 1)) == 2
    assert index.store.visited - before == 2  # the live one + the one consumed after height 1
    # And SQLite itself searches the key's index range rather than scanning the table.
    for sql in ("SELECT txid FROM corda_outputs WHERE contract = ? AND owner = ? AND consumed_at IS NULL "
                "AND created <= ? ORDER BY created, pos, idx",
                "SELECT txid FROM corda_outputs WHERE contract = ? AND owner = ? AND consumed_at > ?"):
        plan = " ".join(str(r[-1]) for r in index.db.read("EXPLAIN QUERY PLAN " + sql, (CASH, mine, 1)))
        assert "SEARCH corda_outputs USING" in plan and "corda_outputs_by_key" in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # ledger order comes from the index, no sort
    index.db.close()


# --- the node: CordaApp over real notarised transactions, with replay ---------------------


HOLDERS = ("firm-a", "firm-b", "firm-c")


def _genesis() -> Genesis:
    seed = {n: sha256(f"index-test:{n}".encode()) for n in ("notary", "service", "issuer", *HOLDERS)}
    return Genesis(
        chain_id="corda-index",
        genesis_time_ns=1_700_000_000 * SEC,
        notary_seeds=(seed["notary"],),
        service_seed=seed["service"],
        issuer_seed=seed["issuer"],
        holder_seeds=tuple((n, seed[n]) for n in HOLDERS),
        cash=(("firm-a", 1_000), ("firm-b", 500)),
        bank=((account_of(ed25519_public_key(seed["firm-a"])), "jpy", 10),),
    )


def _scan_answers(app: CordaApp, height: int, owners: list[bytes]) -> dict[str, Any]:
    """The answers rebuilt by scanning every committed block's notarised txs up to ``height``."""
    outputs: dict[tuple[bytes, int], pb.TransactionState] = {}
    for h in range(1, height + 1):
        raw = app.db.get_block(h)
        assert raw is not None
        blk = node_pb2.Block.FromString(raw)
        for tx, res in zip(blk.txs, blk.results, strict=True):
            if res.status != node_pb2.TX_STATUS_COMMITTED:
                continue
            stx = SignedTransaction.decode(tx)
            for ref in stx.wtx.inputs:
                del outputs[(bytes(ref.txid), int(ref.index))]
            for i, st in enumerate(stx.wtx.outputs):
                outputs[(stx.txid, i)] = st
    unconsumed = [(t, i, st) for (t, i), st in outputs.items()]
    answers: dict[str, Any] = {}
    for owner in owners:
        rows = [(t, i, pb.Cash.FromString(st.data)) for t, i, st in unconsumed if st.contract == CASH]
        rows = [(t, i, c) for t, i, c in rows if bytes(c.owner) == owner]
        totals: dict[str, int] = {}
        by_brand: dict[str, int] = {}
        for _, _, c in rows:
            totals[c.issuer.hex()] = totals.get(c.issuer.hex(), 0) + c.amount
            by_brand[brand_key(bytes(c.issuer), c.brand)] = by_brand.get(brand_key(bytes(c.issuer), c.brand), 0) + c.amount
        answers[f"balances/{owner.hex()}"] = {"owner": owner.hex(), "by_issuer": totals, "by_brand": by_brand}
        answers[f"cash_states/{owner.hex()}"] = [
            {"txid": t.hex(), "index": i, "issuer": c.issuer.hex(), "owner": c.owner.hex(), "amount": c.amount,
             "brand": c.brand}
            for t, i, c in rows[:MAX_QUERY_ROWS]
        ]
    holders: dict[str, Any] = {}
    for t, i, st in unconsumed:
        if st.contract == ADMISSION:
            adm = pb.Admission.FromString(st.data)
            holders[brand_key(bytes(adm.issuer), adm.brand)] = {
                "admission": {"txid": t.hex(), "index": i}, "issuer": adm.issuer.hex(), "brand": adm.brand,
                "holders": [bytes(h).hex() for h in adm.holders]}
    answers["holders"] = holders
    return answers


def _committed_txs(app: CordaApp) -> int:
    return int(app.db.read("SELECT COUNT(*) FROM corda_txs")[0][0])


def _app_answers(app: CordaApp, height: int, owners: list[bytes]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for owner in owners:
        for q in ("balances", "cash_states"):
            answers[f"{q}/{owner.hex()}"] = app.query_app(q, {"owner": owner.hex()}, height)
    answers["holders"] = app.query_app("holders", {}, height)
    return answers


class Node:
    """A CordaApp on a database, producing and committing blocks as the node runtime does."""

    def __init__(self, path: Path) -> None:
        self.genesis = _genesis()
        self.path = path
        self.db = NodeDatabase(path)
        self.app = CordaApp(self.genesis, self.db)
        self.t = self.genesis.genesis_time_ns
        self.salt = 0

    def reopen(self) -> None:
        self.db.close()
        self.db = NodeDatabase(self.path)
        self.app = CordaApp(self.genesis, self.db)

    def produce(self, txs: list[bytes], *, discard: bool = False) -> None:
        self.t += SEC
        block = self.app.produce_block(txs, self.t)
        if discard:
            self.app.discard_block(block)
            return
        proto = block_to_proto(block)
        self.db.commit_height(block.height, block.hash, proto.SerializeToString(deterministic=True),
                              [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results],
                              block.meta)
        self.app.commit_block(block)

    def tx(self, inputs: list[pb.StateRef], outputs: list[pb.TransactionState], command: pb.Command,
           signers: list[bytes], references: list[pb.StateRef]) -> bytes:
        self.salt += 1
        w = WireTransaction(inputs=tuple(inputs), outputs=tuple(outputs), commands=(command,),
                            notary=self.genesis.identity, privacy_salt=sha256(b"salt" + self.salt.to_bytes(8, "big")),
                            references=tuple(references))
        stx = SignedTransaction(w)
        for seed in signers:
            stx.sign(seed)
        return stx.encode()


def _random_block(rng: random.Random, node: Node, seeds: dict[bytes, bytes]) -> list[bytes]:
    """Valid Cash txs over distinct live states, plus now and then a double spend the notary refuses."""
    g, app = node.genesis, node.app
    h = app.latest_height()
    adm = app.query_app("holders", {}, h)[g.issuer.hex()]["admission"]
    adm_ref = pb.StateRef(txid=bytes.fromhex(adm["txid"]), index=adm["index"])
    holders = [g.holder(n) for n in HOLDERS]
    live = [(o, row) for o in holders for row in app.query_app("cash_states", {"owner": o.hex()}, h)]
    rng.shuffle(live)
    txs: list[bytes] = []
    for _ in range(rng.choice([0, 1, 2, 3])):
        op = rng.choice(["issue", "move", "move", "redeem", "admit"])
        if op == "admit" and not txs:  # the admission state is consumed: nothing else may use it
            kept = [*rng.sample(holders, 2), holders[0]]
            cmd = pb.Command(contract=ADMISSION, name="Admit", signers=[g.issuer])
            return [node.tx([adm_ref], [admission_state(g.issuer, list(dict.fromkeys(kept)), g.identity)], cmd,
                           [g.issuer_seed], [])]
        if op == "issue" or not live:
            to = rng.choice(holders)
            outs = [cash_state(g.issuer, to, rng.randint(1, 50), g.identity) for _ in range(rng.randint(1, 3))]
            cmd = pb.Command(contract=CASH, name="Issue", signers=[g.issuer])
            txs.append(node.tx([], outs, cmd, [g.issuer_seed], [adm_ref]))
            continue
        owner, row = live.pop()
        ref = pb.StateRef(txid=bytes.fromhex(row["txid"]), index=row["index"])
        amount = int(row["amount"])
        if op == "redeem":
            gone = rng.randint(1, amount)
            outs = [cash_state(g.issuer, owner, amount - gone, g.identity)] if gone < amount else []
            cmd = pb.Command(contract=CASH, name="Redeem", signers=[g.issuer, owner],
                             data=pb.CashRedeem(amount=gone).SerializeToString(deterministic=True))
            txs.append(node.tx([ref], outs, cmd, [g.issuer_seed, seeds[owner]], [adm_ref]))
        else:
            parts = [amount] if amount == 1 else [amount // 2, amount - amount // 2]
            outs = [cash_state(g.issuer, rng.choice(holders), p, g.identity) for p in parts]
            cmd = pb.Command(contract=CASH, name="Move", signers=[owner])
            move = node.tx([ref], outs, cmd, [seeds[owner]], [adm_ref])
            txs.append(move)
            if rng.random() < 0.2:  # the same input again, to someone else: refused, consumes nothing
                outs = [cash_state(g.issuer, rng.choice(holders), amount, g.identity)]
                txs.append(node.tx([ref], outs, cmd, [seeds[owner]], [adm_ref]))
    return txs


@pytest.mark.parametrize("seed", [7, 8])
def test_node_answers_equal_the_scan_at_every_height_across_restarts(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    node = Node(tmp_path / "node.db")
    g = node.genesis
    seeds = {g.holder(n): s for n, s in g.holder_seeds}
    owners = [*seeds, g.issuer, DVP_ESCROW_OWNER]
    for _ in range(40):
        txs = _random_block(rng, node, seeds)
        if rng.random() < 0.1:
            node.produce(txs, discard=True)  # rolled back: the pending rows are dropped
        node.produce(txs)
        if rng.random() < 0.2:
            node.reopen()
        for h in range(1, node.app.latest_height() + 1):
            assert _app_answers(node.app, h, owners) == _scan_answers(node.app, h, owners), (seed, h)
    node.reopen()
    latest = node.app.latest_height()
    for h in range(1, latest + 1):
        assert _app_answers(node.app, h, owners) == _scan_answers(node.app, h, owners), (seed, h)
    consumed = node.db.read("SELECT COUNT(*) FROM corda_outputs WHERE consumed_by IS NOT NULL")[0][0]
    assert consumed > 10 and latest > 35
    with pytest.raises(QueryError, match="not committed"):
        node.app.query_app("balances", {"owner": owners[0].hex()}, latest + 1)
    node.db.close()


def test_a_multiproof_path_with_no_utf8_form_is_a_query_error(tmp_path: Path) -> None:
    node = Node(tmp_path / "node.db")
    with pytest.raises(QueryError, match="path is not valid text"):
        node.app.query_ibc_multi(["ok", "\ud800"], node.app.latest_height())
    node.db.close()


def test_node_query_cost_does_not_grow_with_unrelated_history(tmp_path: Path) -> None:
    node = Node(tmp_path / "node.db")
    g, app = node.genesis, node.app
    firm_a, firm_c = g.holder("firm-a"), g.holder("firm-c")
    adm = app.query_app("holders", {}, 1)[g.issuer.hex()]["admission"]
    adm_ref = pb.StateRef(txid=bytes.fromhex(adm["txid"]), index=adm["index"])
    issue_c = pb.Command(contract=CASH, name="Issue", signers=[g.issuer])
    node.produce([node.tx([], [cash_state(g.issuer, firm_c, 9, g.identity)], issue_c, [g.issuer_seed], [adm_ref])])

    def cost(query: Callable[[], Any]) -> tuple[int, Any]:
        before = node.app.ledger.visited
        answer = query()
        return node.app.ledger.visited - before, answer

    def latest_c() -> Any:
        return node.app.query_app("balances", {"owner": firm_c.hex()}, node.app.latest_height())

    def at_two() -> Any:
        return node.app.query_app("cash_states", {"owner": firm_c.hex()}, 2)

    base_latest, base_two = cost(latest_c), cost(at_two)
    holders_cost = cost(lambda: node.app.query_app("holders", {}, node.app.latest_height()))[0]
    assert base_latest[0] == base_two[0] == 1
    # Unrelated history: many issues to firm-a and firm-a's moves among firm-a / firm-b.
    seed_a = dict(g.holder_seeds)["firm-a"]
    for _ in range(6):
        rows = node.app.query_app("cash_states", {"owner": firm_a.hex()}, node.app.latest_height())
        txs = [node.tx([], [cash_state(g.issuer, firm_a, 3, g.identity)] * 4, issue_c, [g.issuer_seed], [adm_ref])
               for _ in range(5)]
        move = pb.Command(contract=CASH, name="Move", signers=[firm_a])
        txs += [node.tx([pb.StateRef(txid=bytes.fromhex(r["txid"]), index=r["index"])],
                        [cash_state(g.issuer, g.holder("firm-b"), int(r["amount"]), g.identity)], move, [seed_a],
                        [adm_ref]) for r in rows[:3]]
        node.produce(txs)
    node.reopen()
    assert _committed_txs(node.app) > 40
    assert cost(latest_c) == base_latest
    assert cost(at_two) == base_two
    assert cost(lambda: node.app.query_app("holders", {}, node.app.latest_height()))[0] == holders_cost
    node.db.close()
