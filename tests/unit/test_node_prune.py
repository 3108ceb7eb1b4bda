"""Pruning (``storage.retain_heights``): disk stays bounded and every retained height stays whole.

The first test drives a sparse Merkle tree over the node database with a small key universe,
so content recurs the way it does on a chain (a key set, deleted, set again; one value shared
by many leaves), and after every height checks that each retained root is complete, reads the
model's values and proves them, while the stored nodes stay bounded. The others run the real
EVM and Corda node apps in process (their own runtime and pruner, on a simulated clock) under
churn that does not grow the live state: disk flat, restart works, old heights refused.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from chains.corda.cash import CASH, cash_state
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import Message as EvmCall
from chains.evm import make_tx
from chains.evm.chain import SECURITY_TOKEN_ADDRESS
from chains.node.apps.corda import CordaApp
from chains.node.config import load_node_config
from chains.node.db import NodeDatabase
from chains.node.kinds import chain_kind
from chains.node.main import init_home
from chains.node.prune import Prunable, Pruner
from chains.node.runtime import NodeRuntime, RuntimeConfig
from chains.store.smt import EMPTY_ROOT, SparseMerkleTree
from kakehashi.corda.v1 import ledger_pb2 as pb
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key, sha256
from lightclients.ics23 import SMT_SPEC, verify_membership, verify_non_membership
from relayer.codecs.corda import fresh_salt

NS = 1_000_000_000


def missing_from(db: NodeDatabase, app: Prunable, height: int) -> list[bytes]:
    """Nodes a root at ``height`` refers to that are not stored (must be none)."""
    missing = []
    stack = list(app.gc_roots(height))
    while stack:
        h, kind = stack.pop()
        row = db.node_rows([h]).get(h)
        if row is None:
            missing.append(h)
            continue
        stack.extend(app.gc_children(kind, row[1]))
    return missing


class SmtHeights:
    """A Prunable over a bare SMT: the roots of each height, the Corda app's node format."""

    def __init__(self) -> None:
        self.roots: dict[int, bytes] = {}

    def gc_roots(self, height: int) -> list[tuple[bytes, str]]:
        root = self.roots[height]
        return [] if root == EMPTY_ROOT else [(root, "smt")]

    gc_children = staticmethod(CordaApp.gc_children)

    def prune_history(self, below: int, limit: int) -> int:
        return 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_smt_pruning_keeps_every_retained_root_whole_and_the_store_bounded(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    db = NodeDatabase(tmp_path / "node.db")
    tree = SparseMerkleTree(db.nodes)
    app = SmtHeights()
    retain = 6
    pruner = Pruner(db, app, retain, gc_every=2, step_nodes=64)  # small steps: passes span heights
    keys = [f"k/{i}".encode() for i in range(40)]
    model: dict[bytes, bytes] = {}
    states: dict[int, dict[bytes, bytes]] = {}
    counts = []
    for h in range(1, 241):
        for _ in range(rng.randint(0, 8)):
            k = rng.choice(keys)
            if model.get(k) is not None and rng.random() < 0.4:
                del model[k]
                tree.delete(k)
            else:
                v = rng.choice([b"\x01", b"shared", f"v{rng.randint(0, 5)}".encode()])  # values recur
                model[k] = v
                tree.set(k, v)
        app.roots[h] = tree.commit()
        states[h] = dict(model)
        db.commit_height(h, sha256(app.roots[h]), app.roots[h])
        pruner.step(h)
        earliest = pruner.earliest(h)
        for r in range(earliest, h + 1):
            assert missing_from(db, app, r) == [], f"height {r} lost nodes after pruning at {h}"
        counts.append(len(db.node_ids_between(0, 1 << 62, 1 << 30)))
    assert pruner.stats.passes >= 50 and pruner.stats.nodes_deleted > 0
    # every retained height still reads and proves exactly its state, absent keys included
    for r in range(pruner.earliest(240), 241):
        view = tree.at(app.roots[r])
        for k in keys:
            want = states[r].get(k)
            assert view.get(k) == want
            proof = view.prove_bytes(k)
            if want is None:
                assert verify_non_membership(SMT_SPEC, app.roots[r], proof, k)
            else:
                assert verify_membership(SMT_SPEC, app.roots[r], proof, k, want)
    # bounded: the last 100 heights hold no more nodes than the first stretch after warm-up
    assert max(counts[-100:]) <= 1.3 * max(counts[20:60]), counts[::20]
    blocks = db.read("SELECT MIN(height), COUNT(*) FROM blocks")
    assert blocks == [(pruner.earliest(240), retain)]
    db.close()


# --- the real node apps ---------------------------------------------------------------------


class Chain:
    """A node app with its runtime and pruner on a simulated clock (one second per block)."""

    def __init__(self, home: Path, kind: str, retain: int) -> None:
        self.home, self.kind, self.retain = home, kind, retain
        self.now = 1_700_000_000 * NS
        init_home(home, kind, f"{kind}-prune", 4, genesis_time_ns=self.now)
        self.open()

    def open(self) -> None:
        config = load_node_config(self.home)
        config.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db = NodeDatabase(config.db_path)
        self.app = chain_kind(self.kind).open_app(config, self.db)
        self.pruner = Pruner(self.db, self.app, self.retain, step_nodes=500)
        self.rt = NodeRuntime(self.app, self.db, RuntimeConfig(retain_heights=self.retain, max_block_txs=1000),
                              clock=lambda: self.now, pruner=self.pruner)

    def block(self, txs: list[bytes]) -> None:
        for tx in txs:
            self.rt.submit(tx)
        self.now += NS
        block = self.rt.produce_once()
        assert all(r.ok for r in block.results), [r.reason for r in block.results if not r.ok]
        self.rt._prune(block.height)

    def key(self, name: str) -> bytes:
        return bytes.fromhex((self.home / "keys" / f"{name}.key").read_text().strip())

    def close(self) -> None:
        self.db.close()


def test_an_evm_node_with_retain_heights_keeps_its_disk_flat_and_restarts(tmp_path: Path) -> None:
    """ST moving back and forth between alice and bob rewrites the same storage slots and
    accounts every block: without pruning every height adds its trie nodes for good."""
    chain = Chain(tmp_path / "evm", "evm", retain=20)
    genesis = json.loads((chain.home / "genesis.json").read_text())
    cid = int(genesis["evm_chain_id"])
    alice, bob = chain.key("alice"), chain.key("bob")
    addr = {k: eth_address(secp256k1_public_key(k)) for k in (alice, bob)}
    nonces = {alice: 0, bob: 0}

    def churn() -> list[bytes]:
        out = []
        for frm, to in ((alice, bob), (bob, alice)):
            for _ in range(3):
                out.append(make_tx(frm, cid, nonces[frm], [EvmCall(SECURITY_TOKEN_ADDRESS, "transfer",
                                                                  (addr[to], b"\x01"))]).encode())
                nonces[frm] += 1
        return out

    sizes = []
    for h in range(1, 301):
        chain.block(churn())
        if h % 20 == 0:
            sizes.append(chain.db.used_bytes())
    latest = chain.app.latest_height()
    earliest = chain.rt.earliest_height()
    # flat after warm-up (unpruned, the same churn adds ~5 KB of pages per block)
    assert (sizes[-1] - sizes[4]) / 200 < 100, sizes
    assert earliest == latest - 19 and chain.pruner.stats.passes >= 20
    for r in range(earliest, latest + 1):
        assert missing_from(chain.db, chain.app, r) == []
    # the earliest retained height answers with a proof; the one before is refused by the node
    assert chain.app.query_ibc("nextClientSequence", earliest, True).proof
    assert chain.db.get_block(earliest) is not None and chain.db.get_block(earliest - 1) is None
    assert chain.db.get_block(1) is None
    before = {k: chain.app.query_app("security_token", {"holder": "0x" + a.hex()}, latest)["balance"]
              for k, a in addr.items()}
    chain.close()
    chain.open()  # restart from the snapshot with block 1 and most history gone
    assert chain.app.latest_height() == latest
    assert {k: chain.app.query_app("security_token", {"holder": "0x" + a.hex()}, latest)["balance"]
            for k, a in addr.items()} == before
    chain.block(churn())
    assert missing_from(chain.db, chain.app, chain.app.latest_height()) == []
    chain.close()


def test_a_corda_node_with_retain_heights_deletes_consumed_history_and_restarts(tmp_path: Path) -> None:
    """Cash moving between two holders: each block consumes the previous block's outputs. The
    consumed ones and old checkpoints go; every notarised txid stays (replay protection)."""
    chain = Chain(tmp_path / "corda", "corda", retain=20)
    info = chain.app.query_app("chain_info", {}, 1)
    notary, issuer = bytes.fromhex(info["notary_identity"]), bytes.fromhex(info["issuer"])
    seeds = {n: chain.key(f"holder-{n}") for n in ("firm-a", "firm-b")}
    party = {n: ed25519_public_key(s) for n, s in seeds.items()}
    holders = chain.app.query_app("holders", {}, 1)
    adm = holders[issuer.hex()]["admission"]
    admission = pb.StateRef(txid=bytes.fromhex(adm["txid"]), index=int(adm["index"]))

    def move(owner: str, to: str) -> bytes:
        rows = [r for r in chain.app.query_app("cash_states", {"owner": party[owner].hex()}, chain.app.latest_height())
                if not r.get("brand")]  # the default brand's Cash, which cash_state() makes
        inputs = tuple(pb.StateRef(txid=bytes.fromhex(r["txid"]), index=int(r["index"])) for r in rows[:1])
        amount = int(rows[0]["amount"])
        wtx = WireTransaction(inputs=inputs, outputs=(cash_state(issuer, party[to], amount, notary),),
                              commands=(pb.Command(contract=CASH, name="Move", signers=[party[owner]]),),
                              notary=notary, privacy_salt=fresh_salt(), references=(admission,))
        return SignedTransaction(wtx).sign(seeds[owner]).encode()

    sizes = []
    txids = 0
    for h in range(1, 301):
        a, b = ("firm-a", "firm-b") if h % 2 else ("firm-b", "firm-a")
        chain.block([move(a, b), move(b, a)])
        txids += 2
        if h % 20 == 0:
            sizes.append(chain.db.used_bytes())
    latest = chain.app.latest_height()
    earliest = chain.rt.earliest_height()
    # flat but for the kept txids, ~70 bytes each (unpruned: ~4.6 KB of pages per block)
    assert (sizes[-1] - sizes[4]) / 200 < 300, sizes
    consumed = chain.db.read("SELECT COUNT(*), MIN(consumed_at) FROM corda_outputs WHERE consumed_at IS NOT NULL")
    assert consumed[0][0] <= 2 * 2 * 21 and consumed[0][1] >= earliest - 1, consumed
    assert chain.db.read("SELECT COUNT(*) FROM corda_txs")[0][0] >= txids  # replay protection kept
    assert chain.db.read("SELECT MIN(height) FROM corda_checkpoints")[0][0] >= earliest - 1
    assert chain.app.query_app("balances", {"owner": party["firm-a"].hex()}, earliest)["by_issuer"]
    chain.close()
    chain.open()
    assert chain.app.latest_height() == latest
    chain.block([move("firm-a", "firm-b")])
    chain.close()


async def test_what_a_pruned_node_serves_over_grpc(tmp_path: Path) -> None:
    """Blocks, headers and state from the earliest retained height on; below it GetBlock is
    NOT_FOUND saying why, StreamBlocks from height 1 starts at the earliest block, queries are
    refused; a relayer's packet-event index starts there too instead of failing."""
    import grpc

    from chains.node.client import NodeClient, NodeError
    from chains.node.service import build_server, mark_serving
    from relayer.codecs import codec_for
    from relayer.core.chain import GrpcChainHandle

    chain = Chain(tmp_path / "corda", "corda", retain=10)
    for _ in range(40):
        chain.block([])
    latest, earliest = chain.app.latest_height(), chain.rt.earliest_height()
    assert earliest == latest - 9
    server, port = build_server(chain.rt, "127.0.0.1:0")
    await server.start()
    await mark_serving(server)
    try:
        async with NodeClient(f"127.0.0.1:{port}") as client:
            status = await client.status()
            assert (status.earliest_height, status.latest_height) == (earliest, latest)
            with pytest.raises(NodeError) as info:
                await client.block(5)
            assert info.value.code == grpc.StatusCode.NOT_FOUND
            assert info.value.details == f"block 5 is pruned: the node keeps heights from {earliest} " \
                                         "(storage.retain_heights)"
            assert (await client.block(earliest)).height == earliest
            first = await anext(aiter(client.stream_blocks(1, results_only=True)))
            assert first.height == earliest
            with pytest.raises(NodeError, match="below the earliest retained height"):
                await client.query_ibc("nextClientSequence", earliest - 1)
            assert (await client.query_ibc("nextClientSequence", earliest)).proof
            info_json = await client.query_app("chain_info")
            handle = GrpcChainHandle(chain.app.chain_id, client, codec_for("corda", chain.key("holder-firm-c"),
                                                                             info_json))
            assert await handle.packet_events("send_packet", "transfer", "channel-0", [1]) == {}
            assert handle._indexed_to == latest
    finally:
        await server.stop(None)
        chain.close()
