"""The evm node: gRPC throughput, block production per tx, proof queries, restart replay.

A real node (`kakehashi node start`) runs in a subprocess on 127.0.0.1; numbers are read as
ratios to baselines measured in the same run, because the machine is shared:
- committed_tx_per_s: security-token transfers streamed with SubmitTx by one caller per
  sender account (nonces are per sender), from first send to last commit. The bench node
  uses a 100 ms block period so the number measures the node, not the period.
- produce_us_per_tx: in-process EvmNodeApp.produce_block + the SQLite commit of a full
  block, minus an empty block, per tx; over one secp256k1 address recovery (every tx needs
  one for its sender).
- query_proof_us: QueryIbc with prove=True on a present key, over a Status round trip.
- replay_us_per_tx: reopening the database (the ledger is rebuilt by re-importing every
  committed block: seal checks + re-execution), per committed tx.
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
from chains.evm import SECURITY_TOKEN_ADDRESS, Message, make_tx
from chains.evm.contracts import encode_amount
from chains.node.client import NodeClient, RetryPolicy
from chains.node.config import load_node_config
from chains.node.db import NodeDatabase
from chains.node.evm_app import KIND, EvmNodeApp
from chains.node.runtime import block_to_proto
from kakehashi.node.v1 import node_pb2
from lightclients import crypto

BIN = Path(sys.executable).parent / "kakehashi"
NS = 1_000_000_000


def _key(home: Path, name: str) -> bytes:
    return bytes.fromhex((home / "keys" / f"{name}.key").read_text().strip())


def _transfers(home: Path, sender: str, to: str, n: int, first_nonce: int = 0) -> list[bytes]:
    genesis = json.loads((home / "genesis.json").read_text())
    addr = {a["name"]: bytes.fromhex(a["address"][2:]) for a in genesis["accounts"]}
    key = _key(home, sender)
    return [
        make_tx(key, genesis["evm_chain_id"], first_nonce + i,
                [Message(SECURITY_TOKEN_ADDRESS, "transfer", (addr[to], encode_amount(1)))]).encode()
        for i in range(n)
    ]


def _init(root: Path, name: str, period: str) -> Path:
    home = root / name
    subprocess.run(
        [str(BIN), "node", "init", "--chain", "evm", "--home", str(home), "--validators", "4",
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


async def _grpc(addr: str, streams: list[list[bytes]], queries: int, bank_account: str) -> dict[str, Any]:
    client = NodeClient(addr, retry=RetryPolicy(attempts=3, timeout_s=30))
    try:
        async def sender(txs: list[bytes]) -> list[bytes]:
            return [await client.submit(tx) for tx in txs]

        start = time.perf_counter()
        hashes = await asyncio.gather(*(sender(s) for s in streams))
        # a sender's txs commit in nonce order, so its last one committing means all did
        lasts = await asyncio.gather(*(client.submit_and_wait(s[-1], wait_s=60) for s in streams))
        elapsed = time.perf_counter() - start
        assert all(r.status == node_pb2.TX_STATUS_COMMITTED for r in lasts), [r.reason for r in lasts]
        results = [await client.tx_result(h) for hs in hashes for h in hs]
        committed = sum(r.status == node_pb2.TX_STATUS_COMMITTED for r in results)
        path = f"bank/balances/{bank_account}/stake"

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
    total = sum(len(s) for s in streams)
    return {
        "txs": total,
        "committed": committed,
        "senders": len(streams),
        "committed_tx_per_s": round(committed / elapsed, 1),
        "status_rtt_us": round(status_us, 1),
        "query_proof_us": round(proof_us, 1),
        "query_no_proof_us": round(noproof_us, 1),
        "query_proof_over_status": round(proof_us / status_us, 2),
        "latest_height": latest,
    }


def _produce(home: Path, n: int) -> dict[str, Any]:
    """In-process production cost of a full block vs an empty one, persisted like the node does."""
    config = load_node_config(home)
    db = NodeDatabase(Path(tempfile.mkdtemp(prefix="bench-evm-db-")) / "node.db")
    app = KIND.open_app(config, db)
    t = app.header(0).time_ns

    def one(txs: list[bytes]) -> float:
        nonlocal t
        t += NS
        start = time.perf_counter()
        block = app.produce_block(txs, t)
        proto = block_to_proto(block)
        db.commit_height(block.height, block.hash, proto.SerializeToString(deterministic=True),
                         [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results], block.meta)
        app.commit_block(block)
        return time.perf_counter() - start

    empty = min(one([]) for _ in range(3))
    txs = _transfers(home, "alice", "bob", n)
    full = one(txs)
    per_tx_us = (full - empty) / n * 1e6
    key = crypto.keccak256(b"bench")
    digest = crypto.keccak256(b"m")
    sig = crypto.secp256k1_sign(key, digest)
    recover_us = per_call_us(lambda: crypto.secp256k1_recover_address(digest, sig))
    committed = sum(len(db.txs_at(h)) for h in range(1, db.latest_height() + 1))
    start = time.perf_counter()
    reopened = EvmNodeApp(app.genesis, app.keys, db)
    replay_s = time.perf_counter() - start
    assert reopened.latest_height() == app.latest_height()
    db.close()
    return {
        "block_txs": n,
        "empty_block_ms": round(empty * 1e3, 2),
        "produce_us_per_tx": round(per_tx_us, 1),
        "secp256k1_recover_us": round(recover_us, 1),
        "produce_per_tx_over_recover": round(per_tx_us / recover_us, 1),
        "replay_heights": reopened.latest_height(),
        "replay_us_per_tx": round(replay_s / committed * 1e6, 1),
    }


def run(quick: bool) -> dict[str, Any]:
    n_grpc, n_block, queries = (200, 100, 100) if quick else (2000, 500, 1000)
    with tempfile.TemporaryDirectory(prefix="bench-node-evm-") as tmp:
        home = _init(Path(tmp), "evm-bench", "100ms")
        produce = _produce(home, n_block)
        genesis = json.loads((home / "genesis.json").read_text())
        alice = next(a["address"] for a in genesis["accounts"] if a["name"] == "alice")
        streams = [_transfers(home, "alice", "bob", n_grpc // 2), _transfers(home, "bob", "alice", n_grpc // 2)]
        proc, addr = _start(home)
        try:
            grpc_numbers = asyncio.run(_grpc(addr, streams, queries, alice))
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    return {"grpc": grpc_numbers, "production": produce}
