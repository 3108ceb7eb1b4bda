"""The Corda node: gRPC throughput, block production per tx, DvP blocks, proof queries, restart.

A real node (`kakehashi node start`) runs in a subprocess on 127.0.0.1; numbers are read as
ratios to baselines measured in the same run, because the machine is shared:
- committed_tx_per_s: independent Cash Issue txs sent with SubmitTxAndWait by concurrent
  callers, from first send to last commit.
- produce_us_per_tx: in-process CordaApp.produce_block + the SQLite commit of a full block,
  minus an empty block, per tx; over a bare Ed25519 verify (a 4-notary cluster does about
  4 x (verify + sign) per tx plus contract checks).
- query_proof_us: QueryIbc with prove=True on a present key, over a Status round trip.
- reopen_ms: reopening the node's database (the ledger snapshot is read, nothing replayed).
- dvp_blocks: in-process, a block of n DvP lock txs (Cash + DvpLock contracts, MsgDvpSend
  through the IBC core) over a real dvp channel to an EVM host, then a block of their n
  RefundOnError exits (acks proven by the EVM chain), ``exits_per_tx`` per tx; CPU time of
  production + SQLite commit per tx, over an empty block's.
- restart: a history of n committed txs (Cash Issue + Redeem pairs, so the live set stays
  small while history grows), then a fresh process opens the node database: open time and
  that process's peak RSS, at two history sizes (ratio = growth with history).
- app_queries: in-process ``balances`` of firm-c (whose one state predates everything else)
  after a history of Cash issues to firm-a and moves of them to firm-b, at a small and a large
  history: index rows read and time through the node's ledger index, next to a full scan of
  the committed blocks (what an index-less node would do; same run, same ledger).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.timing import per_call_us
from chains.corda.cash import CASH, cash_state
from chains.corda.dvp import REFUND_ON_ERROR, exit_parts, lock_of, lock_transaction
from chains.corda.ibc_host import ibc_command
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import SECURITY_TOKEN_ADDRESS
from chains.ibc.apps.dvp import VERSION as DVP_VERSION
from chains.ibc.context import to_proto
from chains.ibc.host import paths
from chains.node.apps.corda import KIND, CordaApp, load_genesis
from chains.node.client import NodeClient, RetryPolicy
from chains.node.config import load_node_config
from chains.node.db import NodeDatabase
from chains.node.main import init_home
from chains.node.runtime import block_to_proto
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.node.v1 import node_pb2
from lightclients import crypto
from tests.support.evmhost import EvmHost
from tests.support.host import START_NS
from tests.support.nodecordahost import NodeCordaHost
from tests.support.pair import HostPair

SEC = 1_000_000_000

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
    start = time.perf_counter()
    reopened = CordaApp(app.genesis, db)
    reopen_s = time.perf_counter() - start
    assert reopened.latest_height() == app.latest_height()
    db.close()
    return {
        "block_txs": n,
        "empty_block_ms": round(empty * 1e3, 2),
        "produce_us_per_tx": round(per_tx_us, 1),
        "ed25519_verify_us": round(verify_us, 1),
        "produce_per_tx_over_verify": round(per_tx_us / verify_us, 1),
        "reopen_heights": reopened.latest_height(),
        "reopen_ms": round(reopen_s * 1e3, 2),
    }


def _scan_balances(app: CordaApp, owner: bytes, height: int) -> tuple[dict[str, int], int]:
    """A full scan of the committed blocks' txs, as a node without an index would answer:
    every output ever notarised is looked at; (totals, outputs visited)."""
    live: dict[tuple[bytes, int], pb.TransactionState] = {}
    visited = 0
    for h in range(1, height + 1):
        raw = app.db.get_block(h)
        assert raw is not None
        blk = node_pb2.Block.FromString(raw)
        for tx, res in zip(blk.txs, blk.results, strict=True):
            if res.status != node_pb2.TX_STATUS_COMMITTED:
                continue
            stx = SignedTransaction.decode(tx)
            for ref in stx.wtx.inputs:
                live.pop((bytes(ref.txid), int(ref.index)), None)
            for i, state in enumerate(stx.wtx.outputs):
                visited += 1
                live[(stx.txid, i)] = state
    totals: dict[str, int] = {}
    for state in live.values():
        if state.contract == CASH:
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
        before = app.ledger.visited
        answer = app.query_app("balances", args, h)
        index_visited = app.ledger.visited - before
        totals, scan_visited = _scan_balances(app, firm_c, h)
        assert answer["by_issuer"] == totals  # the index answers what the scan answers
        index_us = per_call_us(lambda: app.query_app("balances", args, h), min_seconds=0.1)
        scan_us = per_call_us(lambda: _scan_balances(app, firm_c, h), min_seconds=0.1, max_calls=200)
        old_h = max(1, h // 2)
        before = app.ledger.visited
        app.query_app("balances", args, old_h)
        return {
            "outputs_in_history": db.read("SELECT COUNT(*) FROM corda_outputs")[0][0],
            "consumed_in_history": db.read("SELECT COUNT(*) FROM corda_outputs WHERE consumed_by IS NOT NULL")[0][0],
            "index_states_visited": index_visited,
            "index_states_visited_at_half_height": app.ledger.visited - before,
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


def _dvp_blocks(n: int, exits_per_tx: int) -> dict[str, Any]:
    """A block of n DvP locks, then a block of their n exits, through CordaApp on SQLite."""
    with tempfile.TemporaryDirectory(prefix="bench-node-corda-dvp-") as tmp:
        home = Path(tmp) / "corda"
        init_home(home, "corda", "corda-dvp", 4, genesis_time_ns=START_NS)
        db = NodeDatabase(home / "data" / "node.db")
        app = KIND.open_app(load_node_config(home), db)
        node = NodeCordaHost(app, db)
        evm = EvmHost("evm-dvp", 1003, START_NS, 3 * SEC)
        pair = HostPair("corda-evm", node, evm)
        channel, _ = pair.open_channel(port="dvp", version=DVP_VERSION)
        g = app.genesis
        buyer_seed = dict(g.holder_seeds)["firm-a"]
        buyer, seller = crypto.ed25519_public_key(buyer_seed), g.holder("firm-b")
        h = app.latest_height()
        adm = app.query_app("holders", {}, h)[g.issuer.hex()]["admission"]
        admission = pb.StateRef(txid=bytes.fromhex(adm["txid"]), index=adm["index"])
        (row,) = [r for r in app.query_app("cash_states", {"owner": buyer.hex()}, h) if r["brand"] == ""]
        each = row["amount"] // n
        split = WireTransaction(
            inputs=(pb.StateRef(txid=bytes.fromhex(row["txid"]), index=row["index"]),),
            outputs=tuple(cash_state(g.issuer, buyer, each + (row["amount"] - each * n if i == 0 else 0), g.identity)
                          for i in range(n)),
            commands=(pb.Command(contract=CASH, name="Move", signers=[buyer]),), notary=g.identity,
            privacy_salt=crypto.sha256(b"bench-split"), references=(admission,))
        node.submit(SignedTransaction(split).sign(buyer_seed))
        locks = []
        for i in range(n):
            terms = dvp_pb2.Terms(trade_id=f"B-{i}", security_token=SECURITY_TOKEN_ADDRESS, st_quantity=1,
                                  cash_issuer=g.issuer, sc_amount=each, seller_evm=b"\x01" * 20,
                                  buyer_evm=b"\x02" * 20, seller_corda=seller, buyer_corda=buyer,
                                  deadline_ns=evm.now_ns + 3000 * SEC)
            cash = pb.Cash.FromString(split.outputs[i].data)
            locks.append(lock_transaction(terms, channel, evm.now_ns + 2000 * SEC, buyer_seed,
                                          [(pb.StateRef(txid=split.txid, index=i), cash)], admission, g.identity,
                                          crypto.sha256(b"bench-lock-%d" % i)))

        def block_cpu_s(txs: list[bytes]) -> float:
            start = time.process_time()  # CPU of this process: the machine is shared
            produced = node.block(txs)
            spent = time.process_time() - start
            assert all(r.ok for r in produced.results), [r.reason for r in produced.results if not r.ok][:2]
            return spent

        empty = min(block_cpu_s([]) for _ in range(3))
        lock_s = block_cpu_s([s.encode() for s in locks])
        packets = [e.packet() for e in node.events.of_type("send_packet") if e.text("src_port") == "dvp"]
        height = pair.update(evm)
        for k in range(0, n, 50):
            evm.tx(*[chpb.MsgRecvPacket(
                packet=p, proof_commitment=node.prove(paths.packet_commitment("dvp", channel, p.sequence), height),
                proof_height=to_proto(height), signer="relayer") for p in packets[k:k + 50] if p is not None])
        acks = {e.packet().sequence: e.get("ack")  # type: ignore[union-attr]
                for e in evm.events.of_type("write_acknowledgement")}
        evm_height = pair.update(node)
        relayer = crypto.sha256(b"bench-relayer")
        exit_txs = []
        for k in range(0, n, exits_per_tx):
            inputs: list[pb.StateRef] = []
            outputs: list[pb.TransactionState] = []
            commands: list[pb.Command] = []
            for stx, p in zip(locks[k:k + exits_per_tx], packets[k:k + exits_per_tx], strict=True):
                assert p is not None
                proof = evm.prove(paths.packet_ack("dvp", p.destination_channel, p.sequence), evm_height)
                msg = chpb.MsgAcknowledgement(packet=p, acknowledgement=acks[p.sequence], proof_acked=proof,
                                              proof_height=to_proto(evm_height), signer="relayer")
                lock = lock_of(stx.wtx.outputs[1])
                assert lock is not None
                ins, outs, cmds = exit_parts(REFUND_ON_ERROR, pb.StateRef(txid=stx.txid, index=1), lock,
                                             pb.StateRef(txid=stx.txid, index=0), len(outputs), g.identity)
                inputs += ins
                outputs += outs
                commands += [*cmds, ibc_command(msg, [crypto.ed25519_public_key(relayer)])]
            w = WireTransaction(tuple(inputs), tuple(outputs), tuple(commands), g.identity,
                                crypto.sha256(b"bench-exit-%d" % k), references=(admission,))
            exit_txs.append(SignedTransaction(w).sign(relayer).encode())
        exit_s = block_cpu_s(exit_txs)
        assert app.query_app("balances", {"owner": buyer.hex()}, app.latest_height())["by_issuer"][
            g.issuer.hex()] == row["amount"]
        db.close()
    return {
        "locks": n,
        "empty_block_cpu_ms": round(empty * 1e3, 2),
        "lock_block_cpu_ms": round(lock_s * 1e3, 1),
        "lock_us_per_tx": round((lock_s - empty) / n * 1e6, 1),
        "exits_per_tx": exits_per_tx,
        "exit_block_cpu_ms": round(exit_s * 1e3, 1),
        "exit_us_per_exit": round((exit_s - empty) / n * 1e6, 1),
    }


def _history(home: Path, n_txs: int, first: int, per_block: int = 250) -> None:
    """n committed txs: Cash Issue + Redeem pairs to firm-a (history grows, live state does not)."""
    db = NodeDatabase(home / "data" / "node.db")
    app = KIND.open_app(load_node_config(home), db)
    g = app.genesis
    owner_seed = dict(g.holder_seeds)["firm-a"]
    owner = crypto.ed25519_public_key(owner_seed)
    h = app.latest_height()
    adm = app.query_app("holders", {}, h)[g.issuer.hex()]["admission"]
    admission = pb.StateRef(txid=bytes.fromhex(adm["txid"]), index=adm["index"])
    t = app.header(h).time_ns
    made, k = 0, first
    while made < n_txs:
        txs = []
        for _ in range(min(per_block, n_txs - made) // 2 or 1):
            k += 1
            issue = WireTransaction((), (cash_state(g.issuer, owner, 5, g.identity),),
                                    (pb.Command(contract=CASH, name="Issue", signers=[g.issuer]),), g.identity,
                                    crypto.sha256(b"history-issue-%d" % k), references=(admission,))
            redeem = WireTransaction((pb.StateRef(txid=issue.txid, index=0),), (),
                                     (pb.Command(contract=CASH, name="Redeem", signers=[g.issuer, owner],
                                                 data=pb.CashRedeem(amount=5).SerializeToString()),),
                                     g.identity, crypto.sha256(b"history-redeem-%d" % k))
            txs += [SignedTransaction(issue).sign(g.issuer_seed).encode(),
                    SignedTransaction(redeem).sign(g.issuer_seed).sign(owner_seed).encode()]
        t += SEC
        block = app.produce_block(txs, t)
        assert all(r.ok for r in block.results), [r.reason for r in block.results if not r.ok][:2]
        proto = block_to_proto(block)
        db.commit_height(block.height, block.hash, proto.SerializeToString(deterministic=True),
                         [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results], block.meta)
        app.commit_block(block)
        made += len(txs)
    db.close()


def _open_and_report(home: Path) -> None:
    """Run in a fresh process: open the node database, answer a query, print time and peak RSS."""
    start = time.perf_counter()
    db = NodeDatabase(home / "data" / "node.db")
    app = KIND.open_app(load_node_config(home), db)
    open_s = time.perf_counter() - start
    owner = app.genesis.holder("firm-a").hex()
    start = time.perf_counter()
    answer = app.query_app("balances", {"owner": owner}, app.latest_height())
    query_s = time.perf_counter() - start
    assert answer["by_issuer"][app.genesis.issuer.hex()] == 1_000_000
    print(json.dumps({"height": app.latest_height(), "open_ms": round(open_s * 1e3, 2),
                      "first_balances_ms": round(query_s * 1e3, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def _restart(sizes: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-node-corda-restart-") as tmp:
        home = Path(tmp) / "corda"
        init_home(home, "corda", "corda-restart", 4, genesis_time_ns=START_NS)
        made = 0
        for size in sizes:
            _history(home, size - made, made)
            made = size
            res = subprocess.run([sys.executable, "-m", "bench.bench_node_corda", "open", str(home)],
                                 capture_output=True, text=True, check=True, timeout=600)
            row = json.loads(res.stdout.strip().splitlines()[-1])
            row["db_mb"] = round((home / "data" / "node.db").stat().st_size / 2**20, 1)
            out[str(size)] = row
    small, large = (out[str(s)] for s in (sizes[0], sizes[-1]))
    out["open_ms_growth"] = round(large["open_ms"] / max(small["open_ms"], 1e-3), 2)
    out["peak_rss_growth"] = round(large["peak_rss_mb"] / small["peak_rss_mb"], 2)
    return out


def run(quick: bool) -> dict[str, Any]:
    n_grpc, n_block, queries = (200, 100, 100) if quick else (2000, 500, 1000)
    with tempfile.TemporaryDirectory(prefix="bench-node-corda-") as tmp:
        home = _init(Path(tmp), "corda-bench", "50ms")
        produce = _produce(home, Path(tmp) / "produce.db", n_block)
        dvp_blocks = _dvp_blocks(*((50, 10) if quick else (250, 25)))
        restart = _restart((1_000, 4_000) if quick else (10_000, 100_000))
        app_queries = _queries(home, Path(tmp) / "queries.db", *((50, 100) if quick else (200, 100)))
        proc, addr = _start(home)
        try:
            grpc_numbers = asyncio.run(_grpc(addr, _issues(home, n_grpc, "grpc"), 32, queries))
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    return {"grpc": grpc_numbers, "production": produce, "dvp_blocks": dvp_blocks, "restart": restart,
            "app_queries": app_queries}


if __name__ == "__main__" and sys.argv[1:2] == ["open"]:
    _open_and_report(Path(sys.argv[2]))
