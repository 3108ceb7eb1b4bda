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


def run(quick: bool) -> dict[str, Any]:
    n_grpc, n_block, queries = (200, 100, 100) if quick else (2000, 500, 1000)
    with tempfile.TemporaryDirectory(prefix="bench-node-corda-") as tmp:
        home = _init(Path(tmp), "corda-bench", "50ms")
        produce = _produce(home, Path(tmp) / "produce.db", n_block)
        proc, addr = _start(home)
        try:
            grpc_numbers = asyncio.run(_grpc(addr, _issues(home, n_grpc, "grpc"), 32, queries))
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    return {"grpc": grpc_numbers, "production": produce}
