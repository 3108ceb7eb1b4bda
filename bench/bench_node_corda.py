"""The Corda node: gRPC throughput, checkpoint production per tx, proof queries, restart replay.

A real node (`kakehashi node start`) runs in a subprocess on 127.0.0.1; numbers are read as
ratios to baselines measured in the same run, because the machine is shared:
- committed_tx_per_s: independent Cash Issue txs sent with SubmitTxAndWait by concurrent
  callers, from first send to last commit.
- produce_us_per_tx: in-process CordaApp.produce_block + the SQLite commit of a full block,
  minus an empty block, per tx; over a bare Ed25519 verify (a 4-notary cluster does about
  4 x (verify + sign) per tx plus contract checks).
- query_proof_us: QueryIbc with prove=True on a present key, over a Status round trip.
- replay_us_per_tx: reopening the node's database (the ledger is rebuilt by replaying the
  committed blocks), per committed tx.
- app_queries: in-process ``balances`` of firm-c (whose one state predates everything else)
  after a history of Cash issues to firm-a and moves of them to firm-b, at a small and a large
  history: states visited and time through the node's unconsumed-state index, next to a full
  scan of the ledger as the node answered before the index (same run, same ledger).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.timing import per_call_us
from chains.corda.cash import CASH, cash_state
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.node.client import NodeClient, RetryPolicy
from chains.node.config import load_node_config
from chains.node.corda_app import KIND, CordaApp, load_genesis
from chains.node.db import NodeDatabase
from chains.node.runtime import block_to_proto
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.node.v1 import node_pb2
from lightclients import crypto

BIN = Path(sys.executable).parent / "kakehashi"


def _seed(home: Path, name: str) -> bytes:
    return bytes.fromhex((home / "keys" / f"{name}.key").read_text().strip())


def _issues(home: Path, n: int, tag: str) -> list[bytes]:
    """n independent Issue txs to firm-a, each referencing the genesis Admission state."""
    genesis = json.loads((home / "genesis.json").read_text())
    notary = bytes.fromhex(genesis["notary_identity"])
    issuer_seed = _seed(home, "issuer")
    issuer = crypto.ed25519_public_key(issuer_seed)
    owner = bytes.fromhex(genesis["holders"]["firm-a"])
    admission = _admission_ref(home)
    out = []
    for i in range(n):
        w = WireTransaction(
            inputs=(),
            outputs=(cash_state(issuer, owner, i + 1, notary),),
            commands=(pb.Command(contract=CASH, name="Issue", signers=[issuer]),),
            notary=notary,
            privacy_salt=crypto.sha256(f"{tag}/{i}".encode()),
            references=(admission,),
        )
        out.append(SignedTransaction(w).sign(issuer_seed).encode())
    return out


def _admission_ref(home: Path) -> pb.StateRef:
    admit = load_genesis(home).transactions()[0]  # genesis is reproducible from the file
    return pb.StateRef(txid=admit.txid, index=0)


def _init(root: Path, name: str, period: str) -> Path:
    home = root / name
    subprocess.run(
        [str(BIN), "node", "init", "--chain", "corda", "--home", str(home), "--validators", "4",
         "--chain-id", name, "--block-period", period],
        check=True, capture_output=True, timeout=60,
    )
    return home


def _start(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    addr = home / "node.addr"
    proc = subprocess.Popen([str(BIN), "node", "start", "--home", str(home)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not addr.exists() or not addr.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("node did not start")
        time.sleep(0.05)
    return proc, addr.read_text().strip()


async def _grpc(addr: str, txs: list[bytes], concurrency: int, queries: int) -> dict[str, Any]:
    client = NodeClient(addr, retry=RetryPolicy(attempts=3, timeout_s=30))
    try:
        queue = list(reversed(txs))
        committed = 0

        async def caller() -> None:
            nonlocal committed
            while queue:
                res = await client.submit_and_wait(queue.pop(), wait_s=60)
                committed += res.status == node_pb2.TX_STATUS_COMMITTED

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        genesis_account = (await client.query_app("chain_info"))["holders"]["firm-a"]
        path = f"bank/balances/ed25519:{genesis_account}/jpy"

        async def timed(fn: Any) -> float:
            await fn()
            t = time.perf_counter()
            for _ in range(queries):
                await fn()
            return (time.perf_counter() - t) / queries * 1e6

        status_us = await timed(client.status)
        proof_us = await timed(lambda: client.query_ibc(path, prove=True))
        noproof_us = await timed(lambda: client.query_ibc(path, prove=False))
        latest = (await client.status()).latest_height
    finally:
        await client.close()
    return {
        "txs": len(txs),
        "committed": committed,
        "concurrency": concurrency,
        "committed_tx_per_s": round(committed / elapsed, 1),
        "status_rtt_us": round(status_us, 1),
        "query_proof_us": round(proof_us, 1),
        "query_no_proof_us": round(noproof_us, 1),
        "query_proof_over_status": round(proof_us / status_us, 2),
        "latest_height": latest,
    }


def _produce(home: Path, db_path: Path, n: int) -> dict[str, Any]:
    """In-process production cost of a full block vs an empty one, persisted like the node does."""
    config = load_node_config(home)
    db = NodeDatabase(db_path)
    app = KIND.open_app(config, db)
    t = app.header(1).time_ns

    def one(txs: list[bytes]) -> float:
        nonlocal t
        t += 1_000_000
        start = time.perf_counter()
        block = app.produce_block(txs, t)
        proto = block_to_proto(block)
        db.commit_height(block.height, block.hash, proto.SerializeToString(deterministic=True),
                         [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results], block.meta)
        app.commit_block(block)
        return time.perf_counter() - start

    empty = min(one([]) for _ in range(3))
    full = one(_issues(home, n, "produce"))
    per_tx_us = (full - empty) / n * 1e6
    seed = crypto.sha256(b"bench")
    msg = b"m" * 32
    sig = crypto.ed25519_sign(seed, msg)
    pub = crypto.ed25519_public_key(seed)
    verify_us = per_call_us(lambda: crypto.ed25519_verify(pub, msg, sig))
    committed = sum(len(db.txs_at(h)) for h in range(1, db.latest_height() + 1))
    start = time.perf_counter()
    reopened = CordaApp(app.genesis, db)
    replay_s = time.perf_counter() - start
    assert reopened.latest_height() == app.latest_height()
    db.close()
    return {
        "block_txs": n,
        "empty_block_ms": round(empty * 1e3, 2),
        "produce_us_per_tx": round(per_tx_us, 1),
        "ed25519_verify_us": round(verify_us, 1),
        "produce_per_tx_over_verify": round(per_tx_us / verify_us, 1),
        "replay_heights": reopened.latest_height(),
        "replay_us_per_tx": round(replay_s / committed * 1e6, 1),
    }


def _scan_balances(app: CordaApp, owner: bytes, height: int) -> tuple[dict[str, int], int]:
    """The former full-scan answer: every output ever notarised is looked at; (totals, visited)."""
    txs = app.cluster.transactions
    totals: dict[str, int] = {}
    visited = 0
    for txid, ntx in txs.items():
        if ntx.height > height:
            continue
        for i, state in enumerate(ntx.stx.wtx.outputs):
            visited += 1
            spender = app.cluster.consumed.get((txid, i))
            if (spender is None or txs[spender].height > height) and state.contract == CASH:
                cash = pb.Cash.FromString(state.data)
                if bytes(cash.owner) == owner:
                    totals[cash.issuer.hex()] = totals.get(cash.issuer.hex(), 0) + cash.amount
    return totals, visited


def _queries(home: Path, db_path: Path, rounds: int, per_issue: int) -> dict[str, Any]:
    """``balances`` cost through the index vs a full scan, at a small and a large ledger history."""
    config = load_node_config(home)
    db = NodeDatabase(db_path)
    app = KIND.open_app(config, db)
    genesis = app.genesis
    firm_a, firm_b, firm_c = (genesis.holder(n) for n in ("firm-a", "firm-b", "firm-c"))
    seed_a = _seed(home, "holder-firm-a")
    admission = _admission_ref(home)
    t = app.header(1).time_ns
    salt = 0

    def tx(inputs: list[pb.StateRef], outputs: list[pb.TransactionState], name: str, signer: bytes) -> bytes:
        nonlocal salt
        salt += 1
        w = WireTransaction(inputs=tuple(inputs), outputs=tuple(outputs),
                            commands=(pb.Command(contract=CASH, name=name,
                                                 signers=[crypto.ed25519_public_key(signer)]),),
                            notary=genesis.identity, privacy_salt=crypto.sha256(f"queries/{salt}".encode()),
                            references=(admission,))
        return SignedTransaction(w).sign(signer).encode()

    def block(txs: list[bytes]) -> None:
        nonlocal t
        t += 1_000_000
        produced = app.produce_block(txs, t)
        assert all(r.ok for r in produced.results), [r.reason for r in produced.results if not r.ok]
        proto = block_to_proto(produced)
        db.commit_height(produced.height, produced.hash, proto.SerializeToString(deterministic=True),
                         [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results],
                         produced.meta)
        app.commit_block(produced)

    def measure() -> dict[str, Any]:
        h = app.latest_height()
        args = {"owner": firm_c.hex()}
        before = app.states.visited
        answer = app.query_app("balances", args, h)
        index_visited = app.states.visited - before
        totals, scan_visited = _scan_balances(app, firm_c, h)
        assert answer["by_issuer"] == totals  # the index answers what the scan answers
        index_us = per_call_us(lambda: app.query_app("balances", args, h), min_seconds=0.1)
        scan_us = per_call_us(lambda: _scan_balances(app, firm_c, h), min_seconds=0.1, max_calls=200)
        old_h = max(1, h // 2)
        before = app.states.visited
        app.query_app("balances", args, old_h)
        return {
            "outputs_in_history": sum(len(n.stx.wtx.outputs) for n in app.cluster.transactions.values()),
            "consumed_in_history": len(app.cluster.consumed),
            "index_states_visited": index_visited,
            "index_states_visited_at_half_height": app.states.visited - before,
            "scan_states_visited": scan_visited,
            "index_us": round(index_us, 1),
            "scan_us": round(scan_us, 1),
            "scan_over_index": round(scan_us / index_us, 1),
        }

    issue = (pb.Command(contract=CASH, name="Issue", signers=[genesis.issuer]),)
    w = WireTransaction(inputs=(), outputs=(cash_state(genesis.issuer, firm_c, 7, genesis.identity),),
                        commands=issue, notary=genesis.identity, privacy_salt=crypto.sha256(b"queries/c"),
                        references=(admission,))
    block([SignedTransaction(w).sign(genesis.issuer_seed).encode()])
    small = measure()
    issuer_seed = genesis.issuer_seed
    for r in range(rounds):
        outs = [cash_state(genesis.issuer, firm_a, 1 + (r * per_issue + i) % 97, genesis.identity)
                for i in range(per_issue)]
        issue_tx = tx([], outs, "Issue", issuer_seed)
        txid = SignedTransaction.decode(issue_tx).txid
        total = sum(pb.Cash.FromString(o.data).amount for o in outs)
        move_tx = tx([pb.StateRef(txid=txid, index=i) for i in range(per_issue)],
                     [cash_state(genesis.issuer, firm_b, total, genesis.identity)], "Move", seed_a)
        block([issue_tx, move_tx])
    large = measure()
    db.close()
    return {
        "small_history": small,
        "large_history": large,
        "scan_us_growth": round(large["scan_us"] / small["scan_us"], 1),
        "index_us_growth": round(large["index_us"] / small["index_us"], 2),
    }


def run(quick: bool) -> dict[str, Any]:
    n_grpc, n_block, queries = (200, 100, 100) if quick else (2000, 500, 1000)
    with tempfile.TemporaryDirectory(prefix="bench-node-corda-") as tmp:
        home = _init(Path(tmp), "corda-bench", "50ms")
        produce = _produce(home, Path(tmp) / "produce.db", n_block)
        app_queries = _queries(home, Path(tmp) / "queries.db", *((50, 100) if quick else (200, 100)))
        proc, addr = _start(home)
        try:
            grpc_numbers = asyncio.run(_grpc(addr, _issues(home, n_grpc, "grpc"), 32, queries))
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    return {"grpc": grpc_numbers, "production": produce, "app_queries": app_queries}
