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
- replay_us_per_tx: reopening the database after the production run, per committed tx.
- dvp (in process, CPU time of the process, bench/evm_node_world.py: the node app over SQLite with a Corda counterparty
  and an open dvp channel): ``escrows`` trades locked by 250-lock blocks, then
  check_us_per_lock / produce_ms_per_250_locks (check_tx, then produce + persist),
  relay_250_ms (one relayer tx: a Corda client update + 250 MsgRecvPacket with ICS-23 proofs,
  each delivering an escrow), and query costs at the latest height (unproved: dvp_escrow,
  security_token with a holder, account, an IBC value; proved: an IBC commitment) and at an
  old height (the historic path); 250 receipt proofs one query at a time and in one
  ``query_ibc_many`` (what QueryIbcBatch with per-path proofs runs).
- restart: ``txs`` committed ST transfers (500 per block), then a fresh process opens the
  database; open_s (wall) / open_cpu_s is the time to a served latest height and rss_mb the
  process's peak RSS.
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

from bench import evm_node_world as world
from bench.timing import per_call_us
from chains.evm import SECURITY_TOKEN_ADDRESS, Message, make_tx
from chains.evm.contracts import encode_amount
from chains.ibc.host import paths
from chains.node.apps.evm import KIND, EvmNodeApp
from chains.node.client import NodeClient, RetryPolicy
from chains.node.config import load_node_config
from chains.node.db import NodeDatabase
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
                         [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results], block.meta, block.state)
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


def _timed_us(fn: Any, items: list[Any]) -> float:
    """CPU microseconds per call (process time: the machine is shared)."""
    fn(items[0])
    start = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - start) / len(items) * 1e6


def _dvp(escrows: int) -> dict[str, Any]:
    """Lock ``escrows`` trades, relay one 250-packet tx, then time queries (see module doc)."""
    with tempfile.TemporaryDirectory(prefix="bench-evm-dvp-") as tmp:
        w = world.DvpWorld(Path(tmp) / "node.db")
        checks, produces = [], []
        old_height = 0
        while len(w.locked) < escrows:
            check_s, produce_s, _ = w.lock(min(250, escrows - len(w.locked)))
            checks.append(check_s)
            produces.append(produce_s)
            if not old_height and len(w.locked) >= escrows // 2:
                old_height = w.app.latest_height()
        tail = max(1, len(produces) // 4)  # the last quarter: the state is at its largest
        check_us = sum(checks[-tail:]) / (250 * tail) * 1e6
        produce_ms = sum(produces[-tail:]) / tail * 1e3
        tx = w.relay_tx(w.locked[:250])
        relay_check_s, relay_s, block = w.run_block([tx])
        assert block.results[0].ok and w.packets_in(block) == 250, block.results[0].reason
        app, latest = w.app, w.app.latest_height()
        ids = [f"T-{(i * 7919) % escrows}" for i in range(500)]
        holder = "0x" + world.SELLER.hex()
        path = paths.channel("dvp", w.chan_evm).decode()
        commitment = paths.packet_receipt("dvp", w.chan_evm, 1).decode()
        receipts = [paths.packet_receipt("dvp", w.chan_evm, q).decode() for q in range(1, 251)]

        def batch_ms(fn: Any) -> float:
            fn()
            start = time.process_time()
            for _ in range(5):
                fn()
            return (time.process_time() - start) / 5 * 1e3

        batch = {
            "proofs_250_one_by_one_ms": batch_ms(lambda: [app.query_ibc(p, latest, True) for p in receipts]),
            "proofs_250_query_ibc_many_ms": batch_ms(lambda: app.query_ibc_many(receipts, latest, True)),
        }
        queries = {
            "dvp_escrow_us": _timed_us(lambda t: app.query_app("dvp_escrow", {"trade_id": t}, latest), ids),
            "dvp_escrow_old_height_us": _timed_us(
                lambda t: app.query_app("dvp_escrow", {"trade_id": t}, old_height), ids),
            "security_token_us": _timed_us(
                lambda _: app.query_app("security_token", {"holder": holder}, latest), ids),
            "account_us": _timed_us(lambda _: app.query_app("account", {"address": holder}, latest), ids),
            "ibc_value_us": _timed_us(lambda _: app.query_ibc(path, latest, False), ids),
            "ibc_proof_us": _timed_us(lambda _: app.query_ibc(commitment, latest, True), ids[:200]),
        }
        w.db.close()
    key = crypto.keccak256(b"bench")
    digest = crypto.keccak256(b"m")
    sig = crypto.secp256k1_sign(key, digest)
    recover_us = per_call_us(lambda: crypto.secp256k1_recover_address(digest, sig))
    return {
        "escrows": escrows,
        "check_us_per_lock": round(check_us, 1),
        "produce_ms_per_250_locks": round(produce_ms, 1),
        "check_and_execute_us_per_lock": round(check_us + produce_ms * 1e3 / 250, 1),
        "relay_250_check_ms": round(relay_check_s * 1e3, 1),
        "relay_250_ms": round(relay_s * 1e3, 1),
        "secp256k1_recover_us": round(recover_us, 1),
        **{k: round(v, 1) for k, v in queries.items()},
        **{k: round(v, 2) for k, v in batch.items()},
    }


_PROBE = """
import json, resource, sys, time
from pathlib import Path
t = time.perf_counter()
from bench import evm_node_world as world
imported, cpu = time.perf_counter(), time.process_time()
app, db = world.open_app(Path(sys.argv[1]))
opened, opened_cpu = time.perf_counter(), time.process_time()
assert app.latest_height() == int(sys.argv[2]), app.latest_height()
app.query_app("account", {"address": "0x" + world.ALICE.hex()}, app.latest_height())
print(json.dumps({"open_s": opened - imported, "open_cpu_s": opened_cpu - cpu,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _restart(txs: int) -> dict[str, Any]:
    """Commit ``txs`` ST transfers, then time a fresh process opening the database."""
    per_block = 500
    with tempfile.TemporaryDirectory(prefix="bench-evm-restart-") as tmp:
        path = Path(tmp) / "node.db"
        app, db = world.open_app(path)
        t = app.header(0).time_ns
        chain_id = app.genesis.evm_chain_id
        for first in range(0, txs, per_block):
            batch = [make_tx(world.ALICE_KEY if i % 2 == 0 else world.BOB_KEY, chain_id, i // 2,
                             [Message(SECURITY_TOKEN_ADDRESS, "transfer",
                                      (world.BOB if i % 2 == 0 else world.ALICE, encode_amount(1)))]).encode()
                     for i in range(first, min(txs, first + per_block))]
            t += NS
            block = world.commit(app, db, batch, t)
            assert all(r.ok for r in block.results)
        height = app.latest_height()
        db.close()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        done = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(height)],
                              check=True, capture_output=True, text=True, timeout=3600, env=env)
        probe = json.loads(done.stdout.strip().splitlines()[-1])
        db_mb = path.stat().st_size / 2**20
    return {"txs": txs, "heights": height, "open_s": round(probe["open_s"], 3),
            "open_cpu_s": round(probe["open_cpu_s"], 3),
            "rss_mb": round(probe["rss_mb"], 1), "db_mb": round(db_mb, 1)}


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
    dvp = _dvp(1_000 if quick else 10_000)
    restart = [_restart(n) for n in ((500, 2_000) if quick else (10_000, 100_000))]
    return {"grpc": grpc_numbers, "production": produce, "dvp": dvp, "restart": restart}
