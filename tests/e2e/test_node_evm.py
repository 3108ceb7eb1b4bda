"""The evm node as operators run it: `kakehashi node init/start` in subprocesses, real gRPC.

Proofs returned by QueryIbc are checked with the qbft light client against the header the
node serves from GetHeader, as a counterparty chain would. The crash test SIGKILLs the node
while transactions stream in and checks that everything it reported committed survives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2

from chains.evm import IBC_HANDLER_ADDRESS, SECURITY_TOKEN_ADDRESS, Message, Transaction, make_tx
from chains.evm.contracts import encode_amount
from chains.ibc.host import paths
from chains.node import main as node_main
from chains.node.app import IbcQueryResult, ProducedBlock, QueryError, TxRejected
from chains.node.apps.evm import KIND, EvmGenesis, EvmNodeApp, GenesisError
from chains.node.client import NodeClient, NodeError, RetryPolicy
from chains.node.config import load_node_config
from chains.node.db import DatabaseError, NodeDatabase
from chains.node.runtime import block_to_proto
from kakehashi.ibc.v1 import client_pb2
from kakehashi.node.v1 import node_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as qbft_pb
from lightclients.crypto import keccak256
from lightclients.interface import Height, InvalidProof, MemoryClientStore
from lightclients.qbft.client import QbftClient, encode_header_message
from lightclients.qbft.header import decode_header

ROOT = Path(__file__).resolve().parents[2]
EXE = shutil.which("kakehashi", path=str(ROOT / ".venv" / "bin")) or shutil.which("kakehashi")
NS = 1_000_000_000
pytestmark = pytest.mark.slow


@dataclass
class Node:
    home: Path
    proc: subprocess.Popen[bytes] | None = None
    addr: str = ""

    def start(self) -> str:
        (self.home / "node.addr").unlink(missing_ok=True)
        log = (self.home / "node.log").open("ab")
        self.proc = subprocess.Popen(
            [str(EXE), "node", "start", "--home", str(self.home), "--grpc", "127.0.0.1:0"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        addr_file = self.home / "node.addr"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited early:\n{(self.home / 'node.log').read_text()[-3000:]}")
            if addr_file.exists() and addr_file.read_text().strip():
                self.addr = addr_file.read_text().strip()
                assert self.addr.startswith("127.0.0.1:")
                return self.addr
            time.sleep(0.05)
        raise AssertionError("node did not write node.addr within 30 s")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def init_home(home: Path) -> dict[str, Any]:
    assert EXE, "the kakehashi console script is not installed"
    done = subprocess.run(
        [EXE, "node", "init", "--chain", "evm", "--home", str(home), "--validators", "4", "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    genesis: dict[str, Any] = json.loads((home / "genesis.json").read_text())
    return genesis


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Node, dict[str, Any]]]:
    home = tmp_path / "evm"
    genesis = init_home(home)
    n = Node(home)
    n.start()
    try:
        yield n, genesis
    finally:
        n.stop()


@pytest.fixture
async def client(node: tuple[Node, dict[str, Any]]) -> AsyncIterator[NodeClient]:
    c = NodeClient(node[0].addr, retry=RetryPolicy(attempts=3, timeout_s=10))
    try:
        yield c
    finally:
        await c.close()


def key_of(home: Path, name: str) -> bytes:
    return bytes.fromhex((home / "keys" / f"{name}.key").read_text().strip())


def account(genesis: dict[str, Any], name: str) -> bytes:
    return next(bytes.fromhex(a["address"][2:]) for a in genesis["accounts"] if a["name"] == name)


def st_transfer(genesis: dict[str, Any], key: bytes, nonce: int, to: bytes, amount: int) -> bytes:
    msg = Message(SECURITY_TOKEN_ADDRESS, "transfer", (to, encode_amount(amount)))
    return make_tx(key, genesis["evm_chain_id"], nonce, [msg]).encode()


def packed(msg: Any) -> bytes:
    out = any_pb2.Any()
    out.Pack(msg, type_url_prefix="/")
    return out.SerializeToString(deterministic=True)


async def test_txs_stream_and_proofs_verified_by_the_qbft_client(
    node: tuple[Node, dict[str, Any]], client: NodeClient
) -> None:
    n, genesis = node
    alice_key, carol_key = key_of(n.home, "alice"), key_of(n.home, "carol")
    bob = account(genesis, "bob")
    status = await client.status()
    assert (status.chain_id, status.kind, len(status.validators)) == ("evm-1", "evm", 4)
    info = await client.query_app("chain_info")
    assert info["evm_chain_id"] == genesis["evm_chain_id"]

    # a good tx commits with its events; the result names the block it is in
    res = await client.submit_and_wait(st_transfer(genesis, alice_key, 0, bob, 25))
    assert res.status == node_pb2.TX_STATUS_COMMITTED, res.reason
    assert [e.type for e in res.events] == ["transfer"]
    h_tx = res.height
    st = await client.query_app("security_token", height=h_tx, holder="0x" + bob.hex())
    assert (st["balance"], st["whitelisted"]) == (500_025, True)

    # bad txs: INVALID_ARGUMENT with a reason, and the node keeps serving
    for bad, reason in [
        (b"\xc0not a tx", "not canonical RLP"),
        (make_tx(alice_key, genesis["evm_chain_id"] + 1, 1, [Message(bob, "x")]).encode(), "wrong chain id"),
        (st_transfer(genesis, alice_key, 0, bob, 1), "already used"),
        (Transaction(genesis["evm_chain_id"], 1, (Message(bob, "x"),), bytes(65)).encode(), "bad signature"),
    ]:
        with pytest.raises(NodeError) as err:
            await client.submit(bad)
            pytest.fail(f"accepted a tx that should fail with {reason!r}")
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert reason in err.value.details, err.value.details
    # a well-formed tx that fails in execution is committed as failed, with the contract's reason
    failed = await client.submit_and_wait(st_transfer(genesis, carol_key, 0, bob, 1))
    assert failed.status == node_pb2.TX_STATUS_FAILED
    assert "sender is not whitelisted" in failed.reason

    # the stream backfills from height 1 and carries the committed tx and its result
    seen: dict[int, node_pb2.Block] = {}
    async for blk in client.stream_blocks(1):
        seen[blk.height] = blk
        if blk.height >= failed.height:
            break
    assert sorted(seen) == list(range(1, failed.height + 1))
    blk = seen[h_tx]
    assert res.tx_hash in [r.tx_hash for r in blk.results]
    assert decode_header(blk.header).block_hash() == blk.hash

    # a counterparty's qbft client of this chain, created from the node's own client state
    trust = h_tx
    cs = await client.query_app("client_state", height=trust, trusting_period_ns=3600 * NS,
                                max_clock_drift_ns=60 * NS)
    lc, lc_store = QbftClient(), MemoryClientStore()
    now = (await client.header(trust)).time_ns + NS
    lc.initialize(lc_store, bytes.fromhex(cs["client_state"]), bytes.fromhex(cs["consensus_state"]), now)

    # put something in the IBC store: a qbft client created on-chain, in a tx
    create = client_pb2.MsgCreateClient(
        client_type=cs["client_type"],
        client_state=bytes.fromhex(cs["client_state"]),
        consensus_state=bytes.fromhex(cs["consensus_state"]),
    )
    ibc_tx = make_tx(alice_key, genesis["evm_chain_id"], 1, [Message(IBC_HANDLER_ADDRESS, "ibc", (packed(create),))])
    created = await client.submit_and_wait(ibc_tx.encode())
    assert created.status == node_pb2.TX_STATUS_COMMITTED, created.reason
    h = created.height

    # update the light client with the node's header for h, then verify proofs at h
    hdr = await client.header(h)
    assert decode_header(hdr.header).block_hash() == hdr.hash
    lc_header = qbft_pb.Header.FromString(hdr.client_header)
    assert lc_header.trusted_height.revision_height == 0
    lc_header.trusted_height.CopyFrom(client_pb2.Height(revision_number=0, revision_height=trust))
    message = encode_header_message(lc_header)
    now = hdr.time_ns + NS
    lc.verify_client_message(lc_store, message, now)
    assert lc.update_state(lc_store, message) == [Height(0, h)]

    path = paths.client_state("10-qbft-0")
    got = await client.query_ibc(path.decode(), h, prove=True)
    assert got.found and got.proof_height == h
    lc.verify_membership(lc_store, Height(0, h), got.proof, IBC_HANDLER_ADDRESS, path, got.value, now)
    with pytest.raises(InvalidProof):
        lc.verify_membership(lc_store, Height(0, h), got.proof, IBC_HANDLER_ADDRESS, path, got.value + b"x", now)
    absent = paths.client_state("10-qbft-7")
    miss = await client.query_ibc(absent.decode(), h, prove=True)
    assert not miss.found
    lc.verify_non_membership(lc_store, Height(0, h), miss.proof, IBC_HANDLER_ADDRESS, absent, now)
    with pytest.raises(InvalidProof):
        lc.verify_non_membership(lc_store, Height(0, h), got.proof, IBC_HANDLER_ADDRESS, path, now)
    # before the create tx the same path is provably absent
    before = await client.query_ibc(path.decode(), h - 1, prove=True)
    assert not before.found

    # ICS-20 bank balances live in the IBC store too, so they are provable the same way
    alice = "0x" + account(genesis, "alice").hex()
    bank = await client.query_app("bank_balance", height=h, account=alice, denom="stake")
    assert bank["amount"] == 1_000_000_000
    bank_path = f"bank/balances/{alice}/stake"
    val = await client.query_ibc(bank_path, h, prove=True)
    lc.verify_membership(lc_store, Height(0, h), val.proof, IBC_HANDLER_ADDRESS, bank_path.encode(), val.value, now)

    # unknown heights and queries are refused with a reason; the node is still fine
    with pytest.raises(NodeError) as err:
        await client.query_ibc(path.decode(), h + 1000)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "above the latest height" in err.value.details
    with pytest.raises(NodeError) as err:
        await client.header(h + 1000)
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(NodeError) as err:
        await client.query_app("account", address="nope")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (await client.status()).latest_height >= h


async def _load(client: NodeClient, genesis: dict[str, Any], keys: dict[str, bytes], nonces: dict[str, int],
                submitted: list[bytes], stop: asyncio.Event) -> None:
    """Stream ST transfers between alice and bob until the node goes away."""
    names = list(keys)
    i = 0
    while not stop.is_set():
        sender = names[i % 2]
        to = account(genesis, names[(i + 1) % 2])
        tx = st_transfer(genesis, keys[sender], nonces[sender], to, 1 + i % 5)
        try:
            submitted.append(await client.submit(tx))
        except NodeError:
            return
        nonces[sender] += 1
        i += 1
        await asyncio.sleep(0.01)


async def _check_survivors(c: NodeClient, committed: dict[bytes, node_pb2.TxResult], headers: dict[int, bytes]) -> int:
    status = await c.status()
    assert status.latest_height >= max(headers)
    for tx_hash, before in committed.items():
        assert await c.tx_result(tx_hash) == before
    for height, block_hash in headers.items():
        assert (await c.header(height)).hash == block_hash
    return int(status.latest_height)


async def test_sigkill_mid_load_keeps_every_committed_tx(tmp_path: Path) -> None:
    """Three rounds of: stream txs, SIGKILL at a varying instant, restart, check what survived."""
    home = tmp_path / "evm"
    genesis = init_home(home)
    keys = {"alice": key_of(home, "alice"), "bob": key_of(home, "bob")}
    addr = {nm: "0x" + account(genesis, nm).hex() for nm in keys}
    n = Node(home)
    committed: dict[bytes, node_pb2.TxResult] = {}
    headers: dict[int, bytes] = {}
    try:
        for round_no, extra_s in enumerate((0.0, 0.35, 0.7)):
            n.start()
            c = NodeClient(n.addr, retry=RetryPolicy(attempts=1, timeout_s=5))
            if round_no:
                await _check_survivors(c, committed, headers)
            nonces = {nm: (await c.query_app("account", address=addr[nm]))["nonce"] for nm in keys}
            submitted: list[bytes] = []
            stop = asyncio.Event()
            load = asyncio.create_task(_load(c, genesis, keys, nonces, submitted, stop))
            deadline = time.monotonic() + 15
            heights: set[int] = set()
            while time.monotonic() < deadline and len(heights) < 2:
                await asyncio.sleep(0.2)
                for tx_hash in list(submitted):
                    if tx_hash not in committed:
                        res = await c.tx_result(tx_hash)
                        if res.status in (node_pb2.TX_STATUS_COMMITTED, node_pb2.TX_STATUS_FAILED):
                            committed[tx_hash] = res
                            heights.add(res.height)
            assert len(heights) >= 2, "txs did not commit under load"
            latest = (await c.status()).latest_height
            for height in range(1, latest + 1):
                headers.setdefault(height, (await c.header(height)).hash)
            await asyncio.sleep(extra_s)  # kill at different points of the block cycle
            assert not load.done(), "the load stopped before the kill"
            n.kill()  # the load task is still submitting
            await asyncio.wait_for(load, 15)
            await c.close()
            assert all(r.status == node_pb2.TX_STATUS_COMMITTED for r in committed.values())

        n.start()
        c = NodeClient(n.addr, retry=RetryPolicy(attempts=3, timeout_s=10))
        latest = await _check_survivors(c, committed, headers)
        # state continues: totals are conserved, nonces match what is committed, new txs land
        supply = (await c.query_app("security_token"))["total_supply"]
        holders = [await c.query_app("security_token", holder=addr[nm]) for nm in keys]
        assert sum(hd["balance"] for hd in holders) == supply == 1_500_000
        nonce = (await c.query_app("account", address=addr["alice"]))["nonce"]
        res = await c.submit_and_wait(st_transfer(genesis, keys["alice"], nonce, account(genesis, "bob"), 3))
        assert res.status == node_pb2.TX_STATUS_COMMITTED, res.reason
        assert res.height > latest
        new = decode_header((await c.header(res.height)).header)
        assert new.parent_hash == (await c.header(res.height - 1)).hash
        await c.close()
        # every restart resumed from the height's snapshot; none re-executed the history
        log = re.sub(r"\x1b\[[0-9;]*m", "", (home / "node.log").read_text())  # console colours
        restores = [ln for ln in log.splitlines() if "evm ledger restored" in ln]
        assert len(restores) == 4 and all("replayed=False" in ln for ln in restores[1:]), restores
    finally:
        n.stop()


# --- the adapter in process: determinism, discard, left-out txs, restore refusals ----------

T0 = 1_800_000_000 * NS


def _open(home: Path, db_name: str = "node.db") -> tuple[EvmNodeApp, NodeDatabase]:
    db = NodeDatabase(home / "data" / db_name)
    return KIND.open_app(load_node_config(home), db), db


def _commit(app: EvmNodeApp, db: NodeDatabase, txs: list[bytes], time_ns: int) -> ProducedBlock:
    block = app.produce_block(txs, time_ns)
    proto = block_to_proto(block)
    db.commit_height(block.height, block.hash, proto.SerializeToString(deterministic=True),
                     [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results], block.meta, block.state)
    app.commit_block(block)
    return block


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "evm"
    node_main.init_home(h, "evm", "evm-1", 4, genesis_time_ns=T0)
    return h


def test_genesis_is_reproducible_and_holds_the_allocations(home: Path) -> None:
    genesis = json.loads((home / "genesis.json").read_text())
    a, db_a = _open(home, "a.db")
    b, db_b = _open(home, "b.db")
    assert a.header(0).hash == b.header(0).hash
    assert (a.latest_height(), a.earliest_height()) == (0, 0)
    carol = "0x" + account(genesis, "carol").hex()
    st = a.query_app("security_token", {"holder": carol}, 0)
    assert (st["balance"], st["whitelisted"], st["total_supply"]) == (0, False, 1_500_000)
    assert a.query_app("account", {"address": carol}, 0) == {"address": carol, "nonce": 0, "balance": 10**21}
    db_a.close()
    db_b.close()


def test_discard_rewinds_and_left_out_txs_get_final_answers_only_when_stale(home: Path) -> None:
    genesis = json.loads((home / "genesis.json").read_text())
    app, db = _open(home)
    alice, bob = key_of(home, "alice"), account(genesis, "bob")
    first = st_transfer(genesis, alice, 0, bob, 7)
    block = app.produce_block([first], T0 + NS)
    app.discard_block(block)
    assert app.latest_height() == 0
    assert app.query_app("account", {"address": "0x" + account(genesis, "alice").hex()}, 0)["nonce"] == 0
    again = _commit(app, db, [first], T0 + NS)
    assert again.hash == block.hash and again.results[0].ok
    stale = st_transfer(genesis, alice, 0, bob, 8)  # same nonce, different tx
    ahead = st_transfer(genesis, alice, 5, bob, 1)
    nxt = _commit(app, db, [stale, ahead], T0 + NS)  # same second: the block time moves on by 1 s
    assert nxt.time_ns == T0 + 2 * NS and nxt.txs == ()
    assert [(r.ok, r.reason.split(":")[0]) for r in nxt.results] == [(False, "not included")]
    assert nxt.results[0].tx_hash == keccak256(stale)
    with pytest.raises(TxRejected, match="already used"):
        app.check_tx(stale)
    # historic queries see each height's state
    holder = {"holder": "0x" + bob.hex()}
    assert app.query_app("security_token", holder, 0)["balance"] == 500_000
    assert app.query_app("security_token", holder, 1)["balance"] == 500_007
    with pytest.raises(QueryError, match="not committed"):
        app.query_app("security_token", holder, 3)
    with pytest.raises(QueryError, match="unknown query"):
        app.query_app("nope", {}, 1)
    db.close()


def _corrupt(home: Path, name: str, *sql: tuple[str, tuple[Any, ...]]) -> None:
    """A copy of node.db as data/NAME with the statements applied."""
    src = sqlite3.connect(home / "data" / "node.db")
    conn = sqlite3.connect(home / "data" / name)
    src.backup(conn)  # the WAL's content included
    src.close()
    for stmt, args in sql:
        conn.execute(stmt, args)
    conn.commit()
    conn.close()


def test_restore_resumes_from_the_snapshot_and_refuses_a_corrupted_database(home: Path) -> None:
    genesis = json.loads((home / "genesis.json").read_text())
    app, db = _open(home)
    alice, bob = key_of(home, "alice"), account(genesis, "bob")
    _commit(app, db, [st_transfer(genesis, alice, 0, bob, 7)], T0 + NS)
    _commit(app, db, [st_transfer(genesis, alice, 1, bob, 5)], T0 + 2 * NS)
    root = app.chain.header(2).state_root
    holder = {"holder": "0x" + bob.hex()}
    answers = [app.query_app("security_token", holder, h) for h in (0, 1, 2)]
    db.close()
    app, db = _open(home)
    assert app.latest_height() == 2 and app.chain.header(2).state_root == root
    assert [app.query_app("security_token", holder, h) for h in (0, 1, 2)] == answers
    assert app.chain.height == 2 and set(app.chain.blocks) == {0, 2}  # resumed, nothing re-executed
    _commit(app, db, [st_transfer(genesis, alice, 2, bob, 1)], T0 + 3 * NS)  # and it goes on
    db.close()

    with contextlib.closing(sqlite3.connect(home / "data" / "node.db")) as conn:
        raw = conn.execute("SELECT data FROM blocks WHERE height = 3").fetchone()[0]
        raw1 = conn.execute("SELECT data FROM blocks WHERE height = 1").fetchone()[0]
    tip = node_pb2.Block.FromString(raw)
    no_txs = node_pb2.Block()
    no_txs.CopyFrom(tip)
    del no_txs.txs[:]
    unsealed = node_pb2.Block()
    unsealed.CopyFrom(tip)
    unsealed.header = decode_header(tip.header).with_seals([]).encode()
    state_root = decode_header(tip.header).state_root
    update_tip = "UPDATE blocks SET data = ? WHERE height = 3"
    cases: list[tuple[str, tuple[str, tuple[Any, ...]], str]] = [
        ("txs.db", (update_tip, (no_txs.SerializeToString(),)), "transactions root"),
        ("seals.db", (update_tip, (unsealed.SerializeToString(),)), "not final"),
        ("hash.db", ("UPDATE blocks SET hash = ? WHERE height = 3", (b"\x01" * 32,)), "block hash"),
        ("root.db", ("UPDATE meta SET value = ? WHERE key = 'evm/state_root'", (b"\x02" * 32,)), "state root"),
        ("snap.db", ("UPDATE meta SET value = ? WHERE key = 'evm/snapshot'", (b"\xc1\x05",)), "unreadable"),
        ("node.db2", ("DELETE FROM nodes WHERE hash = ?", (state_root,)), "not in the database"),
        ("flat.db", ("UPDATE state SET value = ? WHERE key = ?", ((2).to_bytes(8, "big"), b"h")), "flat state index"),
    ]
    for name, stmt, why in cases:
        _corrupt(home, name, stmt)
        with pytest.raises(DatabaseError, match=why):  # case: {name}
            _open(home, name)

    # A database from before snapshots is replayed once, then indexed and resumed like any other.
    _corrupt(home, "legacy.db", ("DELETE FROM meta WHERE key = 'evm/snapshot'", ()), ("DELETE FROM state", ()))
    app, db = _open(home, "legacy.db")
    assert app.latest_height() == 3 and app.query_app("security_token", holder, 3)["balance"] == 500_013
    db.close()
    app, db = _open(home, "legacy.db")
    assert app.db.get_meta("evm/snapshot") is not None and app.chain.height == 3
    db.close()
    # ... and a legacy database whose blocks do not re-execute still refuses to start.
    b1 = node_pb2.Block.FromString(raw1)
    del b1.txs[:]
    _corrupt(home, "bad-legacy.db", ("DELETE FROM meta WHERE key = 'evm/snapshot'", ()),
             ("UPDATE blocks SET data = ? WHERE height = 1", (b1.SerializeToString(),)))
    with pytest.raises(DatabaseError, match="stored block 1 does not replay"):
        _open(home, "bad-legacy.db")


def test_genesis_and_key_errors_name_the_key(home: Path) -> None:
    doc = json.loads((home / "genesis.json").read_text())
    patches: list[tuple[dict[str, Any], str]] = [
        ({"validators": ["0x12"]}, "validators[0]"),
        ({"evm_chain_id": 0}, "evm_chain_id"),
        ({"kind": "corda"}, "kind"),
        ({"accounts": [{"address": doc["accounts"][0]["address"], "st_balance": 5}]}, "accounts[0].st_balance"),
    ]
    for patch, where in patches:
        with pytest.raises(GenesisError, match=re.escape(where)):
            EvmGenesis.from_json({**doc, **patch})
    (home / "genesis.json").write_text(json.dumps({**doc, "validator_key_files": doc["validator_key_files"][:2]}))
    with pytest.raises(GenesisError, match="2 of 4 validator keys"):
        _open(home)


def test_ibc_list_queries_and_bad_query_arguments(home: Path) -> None:
    genesis = json.loads((home / "genesis.json").read_text())
    app, db = _open(home)
    assert app.packet_commitment_sequences("transfer", "channel-0", 0) == []
    assert app.unreceived_acks("transfer", "channel-0", [1, 2], 0) == []
    with pytest.raises(QueryError, match="does not exist"):
        app.unreceived_packets("transfer", "channel-0", [1, 2], 0)
    escrow = app.query_app("escrow", {"port_id": "transfer", "channel_id": "channel-0", "denom": "stake"}, 0)
    assert escrow["amount"] == 0 and escrow["account"].startswith("escrow:")
    alice = "0x" + account(genesis, "alice").hex()
    assert app.query_app("bank_balance", {"account": alice.upper().replace("0X", "0x"), "denom": "stake"},
                         0)["amount"] == 1_000_000_000
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("escrow", {"port_id": "transfer"}, "channel_id"),
        ("account", {"address": 5}, "address"),
        ("client_state", {}, "genesis header carries no seals"),
    ]
    for query, args, why in bad:
        with pytest.raises(QueryError, match=why):
            app.query_app(query, args, 0)
    for path, why in [("", "must not be empty"), ("\udcff", "not valid text")]:
        with pytest.raises(QueryError, match=why):
            app.query_ibc(path, 0, True)
    assert app.query_ibc("clients/none/clientState", 0, False) == IbcQueryResult(None, b"", 0)
    db.close()
