"""Before/after harness for the Corda node, runnable against any source tree of this project.

It uses only what every version has (CordaApp, produce_block, commit_height, queries), so the
same script measures main and a branch in one session:

    git archive main | tar -x -C /tmp/corda-main
    PYTHONPATH=/tmp/corda-main .venv/bin/python bench/compare_corda.py dvp 250 25
    PYTHONPATH=. .venv/bin/python bench/compare_corda.py dvp 250 25
    PYTHONPATH=. .venv/bin/python bench/compare_corda.py restart 10000

``dvp N K``: CPU time (this process) of a block of N DvP lock txs and of a block of their N
exits, K per tx, produced and committed through CordaApp on SQLite, over an empty block's.
``restart N``: build a history of N committed txs, then open the node in a fresh process:
open time and that process's peak RSS. ``python -m bench node_corda`` has the same
sections for the current tree; this script exists for the other side of a comparison.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chains.corda.cash import CASH, cash_state
from chains.corda.dvp import REFUND_ON_ERROR, exit_parts, lock_of, lock_transaction
from chains.corda.ibc_host import ibc_command
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import SECURITY_TOKEN_ADDRESS
from chains.ibc.apps.dvp import VERSION
from chains.ibc.context import to_proto
from chains.ibc.host import paths
from chains.node.apps.corda import KIND
from chains.node.config import load_node_config
from chains.node.db import NodeDatabase
from chains.node.main import init_home
from chains.node.runtime import block_to_proto
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.crypto import ed25519_public_key, sha256
from tests.support.evmhost import EvmHost
from tests.support.host import START_NS
from tests.support.pair import HostPair

try:
    from tests.support.nodecordahost import NodeCordaHost
except ImportError:  # trees from before the host moved to tests/support
    from tests.unit.test_corda_dvp import NodeCordaHost  # type: ignore[attr-defined, no-redef]

SEC = 10**9
RELAYER = sha256(b"measure-relayer")


def dvp_blocks(n: int, per_exit_tx: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "corda"
        init_home(home, "corda", "corda-node", 4, genesis_time_ns=START_NS)
        db = NodeDatabase(home / "data" / "node.db")
        app = KIND.open_app(load_node_config(home), db)
        node = NodeCordaHost(app, db)
        evm = EvmHost("evm-node", 1003, START_NS, 3 * SEC)
        pair = HostPair("corda-evm", node, evm)
        channel, _ = pair.open_channel(port="dvp", version=VERSION)
        g = app.genesis
        buyer_seed = dict(g.holder_seeds)["firm-a"]
        buyer, seller = ed25519_public_key(buyer_seed), g.holder("firm-b")
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
            privacy_salt=sha256(b"split"), references=(admission,))
        node.submit(SignedTransaction(split).sign(buyer_seed))
        locks = []
        for i in range(n):
            terms = dvp_pb2.Terms(trade_id=f"M-{i}", security_token=SECURITY_TOKEN_ADDRESS, st_quantity=1,
                                  cash_issuer=g.issuer, sc_amount=each, seller_evm=b"\x01" * 20,
                                  buyer_evm=b"\x02" * 20, seller_corda=seller, buyer_corda=buyer,
                                  deadline_ns=evm.now_ns + 3000 * SEC)
            cash = pb.Cash.FromString(split.outputs[i].data)
            locks.append(lock_transaction(terms, channel, evm.now_ns + 2000 * SEC, buyer_seed,
                                          [(pb.StateRef(txid=split.txid, index=i), cash)], admission, g.identity,
                                          sha256(b"lock%d" % i)))

        def timed_block(txs: list[bytes]) -> float:
            t = time.process_time()
            blk = node.block(txs)
            el = time.process_time() - t
            bad = [r.reason for r in blk.results if not r.ok]
            assert not bad, bad[:2]
            return el

        empty = min(timed_block([]) for _ in range(3))
        lock_block = timed_block([s.encode() for s in locks])
        packets = [e.packet() for e in node.events.of_type("send_packet") if e.text("src_port") == "dvp"]
        assert len(packets) == n
        height = pair.update(evm)
        for k in range(0, n, 50):
            recvs = [chpb.MsgRecvPacket(packet=p, proof_commitment=node.prove(
                paths.packet_commitment("dvp", channel, p.sequence), height), proof_height=to_proto(height),
                signer="relayer") for p in packets[k:k + 50]]
            evm.tx(*recvs)
        acks = {e.packet().sequence: e.get("ack") for e in evm.events.of_type("write_acknowledgement")}
        evm_height = pair.update(node)
        exits = []
        for stx, p in zip(locks, packets, strict=True):
            proof = evm.prove(paths.packet_ack("dvp", p.destination_channel, p.sequence), evm_height)
            msg = chpb.MsgAcknowledgement(packet=p, acknowledgement=acks[p.sequence], proof_acked=proof,
                                          proof_height=to_proto(evm_height), signer="relayer")
            exits.append((stx.txid, lock_of(stx.wtx.outputs[1]), msg))
        exit_txs = []
        for k in range(0, n, per_exit_tx):
            inputs, outputs, commands = [], [], []
            for txid, lock, msg in exits[k:k + per_exit_tx]:
                i, o, c = exit_parts(REFUND_ON_ERROR, pb.StateRef(txid=txid, index=1), lock,
                                     pb.StateRef(txid=txid, index=0), len(outputs), g.identity)
                inputs += i
                outputs += o
                commands += [*c, ibc_command(msg, [ed25519_public_key(RELAYER)])]
            w = WireTransaction(tuple(inputs), tuple(outputs), tuple(commands), g.identity, sha256(b"x%d" % k),
                                references=(admission,))
            exit_txs.append(SignedTransaction(w).sign(RELAYER).encode())
        exit_block = timed_block(exit_txs)
        bal = app.query_app("balances", {"owner": buyer.hex()}, app.latest_height())
        assert bal["by_issuer"][g.issuer.hex()] == 1_000_000, bal
        db.close()
    return {"n": n, "empty_block_ms": round(empty * 1e3, 1), "lock_block_ms": round(lock_block * 1e3, 1),
            "lock_us_per_tx": round((lock_block - empty) / n * 1e6, 1), "exits_per_tx": per_exit_tx,
            "exit_block_ms": round(exit_block * 1e3, 1),
            "exit_us_per_exit": round((exit_block - empty) / n * 1e6, 1)}


def build_history(home: Path, n_txs: int, per_block: int = 250) -> None:
    """Issue + Redeem pairs to firm-a: history grows, the live set stays the genesis one."""
    db = NodeDatabase(home / "data" / "node.db")
    app = KIND.open_app(load_node_config(home), db)
    g = app.genesis
    owner_seed = dict(g.holder_seeds)["firm-a"]
    owner = ed25519_public_key(owner_seed)
    h = app.latest_height()
    adm = app.query_app("holders", {}, h)[g.issuer.hex()]["admission"]
    admission = pb.StateRef(txid=bytes.fromhex(adm["txid"]), index=adm["index"])
    t = app.header(h).time_ns
    k = 0
    made = 0
    while made < n_txs:
        txs = []
        for _ in range(per_block // 2):
            k += 1
            issue = WireTransaction((), (cash_state(g.issuer, owner, 5, g.identity),),
                                    (pb.Command(contract=CASH, name="Issue", signers=[g.issuer]),), g.identity,
                                    sha256(b"hi%d" % k), references=(admission,))
            redeem = WireTransaction((pb.StateRef(txid=issue.txid, index=0),), (),
                                     (pb.Command(contract=CASH, name="Redeem", signers=[g.issuer, owner],
                                                 data=pb.CashRedeem(amount=5).SerializeToString()),),
                                     g.identity, sha256(b"hr%d" % k))
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


def open_once(home: str) -> None:
    t = time.perf_counter()
    db = NodeDatabase(Path(home) / "data" / "node.db")
    app = KIND.open_app(load_node_config(Path(home)), db)
    el = time.perf_counter() - t
    print(json.dumps({"open_s": round(el, 3), "height": app.latest_height(),
                      "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def restart(n_txs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "corda"
        init_home(home, "corda", "corda-node", 4, genesis_time_ns=START_NS)
        t = time.perf_counter()
        build_history(home, n_txs)
        build_s = time.perf_counter() - t
        out = subprocess.run([sys.executable, __file__, "open", str(home)], capture_output=True, text=True,
                             check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        res.update(txs=n_txs, build_s=round(build_s, 1),
                   db_mb=round((home / "data" / "node.db").stat().st_size / 2**20, 1))
        return res


if __name__ == "__main__":
    if sys.argv[1] == "open":
        open_once(sys.argv[2])
    elif sys.argv[1] == "dvp":
        print(json.dumps(dvp_blocks(int(sys.argv[2]), int(sys.argv[3]))))
    elif sys.argv[1] == "restart":
        print(json.dumps(restart(int(sys.argv[2]))))
