"""The Corda node end to end: `kakehashi node init/start` in subprocesses, real gRPC on 127.0.0.1.

What is checked over the wire: notarised Cash moves and refusals (double spend as a FAILED
result, malformed / unsigned / wrong-notary txs as INVALID_ARGUMENT while the node keeps
serving), the block stream, IBC proofs verified by lightclients/corda against the header
GetHeader returns, and a SIGKILL under load after which every committed tx, the checkpoint
chain and the ledger state are intact and the node keeps going.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message

from chains.corda.batch import check_notarised
from chains.corda.cash import CASH, cash_state
from chains.corda.ibc_host import account_of, ibc_command
from chains.corda.notary import NotaryError
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.ibc.apps import transfer
from chains.ibc.context import to_proto
from chains.ibc.host import paths
from chains.node.app import QueryError, TxRejected
from chains.node.apps.corda import KIND, CordaApp, GenesisError, load_genesis
from chains.node.client import NodeClient, NodeError, RetryPolicy
from chains.node.config import load_node_config
from chains.node.db import DatabaseError, NodeDatabase
from chains.node.runtime import block_to_proto
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from kakehashi.node.v1 import node_pb2
from lightclients.corda.checkpoint import checkpoint_hash, quorum
from lightclients.corda.client import (
    CordaLightClient,
    consensus_state_from_checkpoint,
    encode,
    header_message,
)
from lightclients.crypto import ed25519_public_key, sha256
from lightclients.interface import Height, InvalidProof, MemoryClientStore

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent / "kakehashi"
SEC = 1_000_000_000


@dataclass
class Home:
    path: Path

    def seed(self, name: str) -> bytes:
        return bytes.fromhex((self.path / "keys" / f"{name}.key").read_text().strip())

    @property
    def genesis(self) -> dict[str, object]:
        doc: dict[str, object] = json.loads((self.path / "genesis.json").read_text())
        return doc

    @property
    def notary(self) -> bytes:
        return bytes.fromhex(str(self.genesis["notary_identity"]))


def init_home(tmp: Path, name: str = "corda") -> Home:
    home = tmp / name
    subprocess.run(
        [str(BIN), "node", "init", "--chain", "corda", "--home", str(home), "--validators", "4",
         "--chain-id", f"{name}-e2e", "--block-period", "100ms"],
        check=True, capture_output=True, timeout=30,
    )
    return Home(home)


class NodeProcess:
    def __init__(self, home: Home) -> None:
        self.home = home
        addr_file = home.path / "node.addr"
        addr_file.unlink(missing_ok=True)  # a SIGKILLed node leaves a stale one
        self.log = open(home.path / "node.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(BIN), "node", "start", "--home", str(home.path), "--grpc", "127.0.0.1:0"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while not addr_file.exists() or not addr_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (home.path / "node.log").read_text(errors="replace")
                raise AssertionError(f"node did not start:\n{log[-3000:]}")
            time.sleep(0.05)
        self.addr = addr_file.read_text().strip()
        assert self.addr.startswith("127.0.0.1:")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return init_home(tmp_path)


@pytest.fixture
def node(home: Home) -> Iterator[NodeProcess]:
    proc = NodeProcess(home)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def client(node: NodeProcess) -> AsyncIterator[NodeClient]:
    c = NodeClient(node.addr, retry=RetryPolicy(attempts=3, timeout_s=10))
    try:
        yield c
    finally:
        await c.close()


_salt = 0


def salt() -> bytes:
    global _salt
    _salt += 1
    return sha256(b"e2e-salt" + _salt.to_bytes(8, "big") + os.urandom(8))


def move_tx(home: Home, src: str, dst: str, ref: dict[str, object], amount: int,
            admission: dict[str, object], signer: str | None = None) -> SignedTransaction:
    """Move ``amount`` of the Cash state ``ref`` (owned by holder ``src``) to ``dst``, change back."""
    owner = ed25519_public_key(home.seed(f"holder-{src}"))
    to = ed25519_public_key(home.seed(f"holder-{dst}"))
    issuer = bytes.fromhex(str(ref["issuer"]))
    total = int(str(ref["amount"]))
    outs = [cash_state(issuer, to, amount, home.notary)]
    if total > amount:
        outs.append(cash_state(issuer, owner, total - amount, home.notary))
    w = WireTransaction(
        inputs=(pb.StateRef(txid=bytes.fromhex(str(ref["txid"])), index=int(str(ref["index"]))),),
        outputs=tuple(outs),
        commands=(pb.Command(contract=CASH, name="Move", signers=[owner]),),
        notary=home.notary,
        privacy_salt=salt(),
        references=(pb.StateRef(txid=bytes.fromhex(str(admission["txid"])), index=int(str(admission["index"]))),),
    )
    return SignedTransaction(w).sign(home.seed(f"holder-{signer or src}"))


def issue_tx(home: Home, to: str, amount: int, admission: dict[str, object]) -> SignedTransaction:
    issuer_seed = home.seed("issuer")
    issuer = ed25519_public_key(issuer_seed)
    w = WireTransaction(
        inputs=(),
        outputs=(cash_state(issuer, ed25519_public_key(home.seed(f"holder-{to}")), amount, home.notary),),
        commands=(pb.Command(contract=CASH, name="Issue", signers=[issuer]),),
        notary=home.notary,
        privacy_salt=salt(),
        references=(pb.StateRef(txid=bytes.fromhex(str(admission["txid"])), index=int(str(admission["index"]))),),
    )
    return SignedTransaction(w).sign(issuer_seed)


async def admission(client: NodeClient, home: Home) -> dict[str, object]:
    holders = await client.query_app("holders")
    entry = holders[str(home.genesis["issuer"])]
    assert isinstance(entry, dict)
    adm: dict[str, object] = entry["admission"]
    return adm


async def holder_key(home: Home, name: str) -> str:
    return ed25519_public_key(home.seed(f"holder-{name}")).hex()


def light_client_at(genesis_header: lc.Header, chain_id: str, now_ns: int) -> tuple[CordaLightClient, MemoryClientStore]:
    lcm, store = CordaLightClient(), MemoryClientStore()
    keys = list(genesis_header.notary_set.public_keys)
    cs = lc.ClientState(chain_id=chain_id, notary_keys=keys, threshold=quorum(len(keys)),
                        latest_height=genesis_header.checkpoint.height, trusting_period=3600 * SEC,
                        max_clock_drift=60 * SEC)
    lcm.initialize(store, encode(cs), encode(consensus_state_from_checkpoint(genesis_header.checkpoint)), now_ns)
    return lcm, store


async def test_txs_stream_and_proofs_over_grpc(home: Home, client: NodeClient) -> None:
    st = await client.status()
    assert st.kind == "corda" and st.chain_id == "corda-e2e" and st.latest_height >= 1
    assert [bytes(v).hex() for v in st.validators] == home.genesis["notaries"]

    streamed: list[node_pb2.Block] = []

    async def follow() -> None:
        async for blk in client.stream_blocks(1):
            streamed.append(blk)

    follower = asyncio.create_task(follow())
    adm = await admission(client, home)
    a_key, b_key = await holder_key(home, "firm-a"), await holder_key(home, "firm-b")
    (a_cash,) = [r for r in await client.query_app("cash_states", owner=a_key) if r["brand"] == ""]
    assert a_cash["amount"] == 1_000_000

    # A notarised move, and the ledger state it leaves.
    tx = move_tx(home, "firm-a", "firm-b", a_cash, 250, adm)
    res = await client.submit_and_wait(tx.encode(), wait_s=20)
    assert res.status == node_pb2.TX_STATUS_COMMITTED, res.reason
    assert bytes(res.tx_hash) == tx.txid and res.height >= 2
    assert res.events[0].type == "corda.notarised"
    assert (await client.query_app("balances", owner=b_key))["by_issuer"][home.genesis["issuer"]] == 1_000_250
    assert (await client.query_app("balances", owner=a_key))["by_issuer"][home.genesis["issuer"]] == 999_750
    # History stays queryable: before the move firm-b held only its genesis cash.
    before = await client.query_app("balances", height=res.height - 1, owner=b_key)
    assert before["by_issuer"][home.genesis["issuer"]] == 1_000_000

    # Spending the same input again is refused at notarisation: a FAILED result with the reason.
    again = move_tx(home, "firm-a", "firm-c", a_cash, 10, adm)
    failed = await client.submit_and_wait(again.encode(), wait_s=20)
    assert failed.status == node_pb2.TX_STATUS_FAILED and "already consumed" in failed.reason

    # Bad txs are refused at admission with INVALID_ARGUMENT and a reason; the node keeps serving.
    for bad, reason in [
        (b"\xff\x00garbage", "does not decode"),
        (move_tx(home, "firm-b", "firm-c", a_cash, 1, adm, signer="firm-c").encode(), "missing required signature"),
        (SignedTransaction(WireTransaction((), (), (pb.Command(contract=CASH, name="Issue"),), sha256(b"other"),
                                           salt())).encode(), "notary"),
    ]:
        with pytest.raises(NodeError) as err:
            await client.submit(bad)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and reason in err.value.details
    with pytest.raises(NodeError) as err:
        await client.query_app("no-such-query")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(NodeError) as err:
        await client.header(10**9)
    assert err.value.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)

    # An IBC transaction: create a client (of this very chain, from its height-1 header).
    g = await client.header(1)
    genesis_header = lc.Header.FromString(g.client_header)
    info = await client.query_app("chain_info")
    assert info["notaries"] == home.genesis["notaries"] and info["client_type"] == CordaLightClient.client_type
    made = await client.query_app("client_state", height=1, trusting_period_ns=3600 * SEC)
    create = client_pb2.MsgCreateClient(client_type=made["client_type"],
                                        client_state=bytes.fromhex(made["client_state"]),
                                        consensus_state=bytes.fromhex(made["consensus_state"]))
    relayer = sha256(b"e2e-relayer")
    itx = SignedTransaction(WireTransaction((), (), (ibc_command(create, [ed25519_public_key(relayer)]),),
                                            home.notary, salt())).sign(relayer)
    ires = await client.submit_and_wait(itx.encode(), wait_s=20)
    assert ires.status == node_pb2.TX_STATUS_COMMITTED, ires.reason
    created = [e for e in ires.events if e.type == "create_client"]
    client_id = next(a.value.decode() for a in created[0].attributes if a.key == "client_id")
    path = f"clients/{client_id}/clientState"

    # The proof at the tx's height verifies with the corda light client against GetHeader.
    h = ires.height
    hdr = await client.header(h)
    assert hdr.height == h and hdr.header == hdr.client_header
    header = lc.Header.FromString(hdr.client_header)
    assert checkpoint_hash(header.checkpoint) == hdr.hash and header.checkpoint.height == h
    now = time.time_ns()
    lcm, store = light_client_at(genesis_header, "corda-e2e", now)
    header.trusted_height = 1
    lcm.verify_client_message(store, header_message(header), now)
    lcm.update_state(store, header_message(header))
    q = await client.query_ibc(path, height=h, prove=True)
    assert q.found and q.proof_height == h
    lcm.verify_membership(store, Height(0, h), q.proof, b"ibc", path.encode(), q.value, now)
    with pytest.raises(InvalidProof):
        lcm.verify_membership(store, Height(0, h), q.proof, b"ibc", path.encode(), q.value + b"x", now)
    # Absent at the height before (non-membership), and an absent path at h.
    lcm2, store2 = light_client_at(genesis_header, "corda-e2e", now)
    prev = lc.Header.FromString((await client.header(h - 1)).client_header)
    if h - 1 > 1:
        prev.trusted_height = 1
        lcm2.update_state(store2, header_message(prev))
    q0 = await client.query_ibc(path, height=h - 1, prove=True)
    assert not q0.found
    lcm2.verify_non_membership(store2, Height(0, h - 1), q0.proof, b"ibc", path.encode(), now)
    absent = "receipts/ports/transfer/channels/channel-0/sequences/1"
    qa = await client.query_ibc(absent, height=h, prove=True)
    assert not qa.found
    lcm.verify_non_membership(store, Height(0, h), qa.proof, b"ibc", absent.encode(), now)
    with pytest.raises(InvalidProof):
        lcm.verify_non_membership(store, Height(0, h), qa.proof, b"ibc", path.encode(), now)
    # ICS-20 bank balances seeded at genesis are readable.
    bal = await client.query_app("bank_balance", account="ed25519:" + a_key, denom="jpy")
    assert bal["amount"] == bal["supply"] // 3 == 1_000_000

    # The stream delivered every block from 1, in order, carrying our txs and their results.
    deadline = time.monotonic() + 10
    while (not streamed or streamed[-1].height < h) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError, NodeError):
        await follower
    heights = [b.height for b in streamed]
    assert heights == list(range(1, len(heights) + 1)) and heights[-1] >= h
    by_height = {b.height: b for b in streamed}
    assert tx.txid in [bytes(r.tx_hash) for r in by_height[res.height].results]
    assert lc.Header.FromString(by_height[h].header).checkpoint.height == h
    assert (await client.status()).latest_height >= h


async def test_sigkill_under_load_then_restart(home: Home) -> None:
    """Two rounds of load + SIGKILL + restart, so a restarted database is itself killed and restarted."""
    node = NodeProcess(home)
    submitted: dict[bytes, int] = {}  # txid -> amount issued to firm-c
    reported: dict[bytes, node_pb2.TxResult] = {}  # what callers were told was committed
    try:
        for round_ in range(2):
            c = NodeClient(node.addr, retry=RetryPolicy(attempts=1, timeout_s=10))
            adm = await admission(c, home)
            # A committed spend before the kill, to re-spend after the restart.
            rows = await c.query_app("cash_states", owner=await holder_key(home, "firm-a"))
            spent = next(r for r in rows if r["brand"] == "")  # the default brand's; the testnet also issues KUSD
            move = move_tx(home, "firm-a", "firm-b", spent, 1, adm)
            assert (await c.submit_and_wait(move.encode(), wait_s=20)).status == node_pb2.TX_STATUS_COMMITTED
            stop = asyncio.Event()
            target = len(reported) + 40

            async def worker(i: int, c: NodeClient = c, adm: dict[str, object] = adm, stop: asyncio.Event = stop,
                             round_: int = round_) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    amount = 100_000 * round_ + 1000 * i + n
                    tx = issue_tx(home, "firm-c", amount, adm)
                    submitted[tx.txid] = amount
                    try:
                        r = await c.submit_and_wait(tx.encode(), wait_s=10)
                    except NodeError:
                        return
                    if r.status == node_pb2.TX_STATUS_COMMITTED:
                        reported[tx.txid] = r

            workers = [asyncio.create_task(worker(i)) for i in range(1, 13)]
            deadline = time.monotonic() + 20
            while len(reported) < target and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert len(reported) >= target, "the node committed too few txs under load"
            before_kill = max(r.height for r in reported.values())
            kept = await c.header(before_kill)
            node.kill()  # mid-load: workers are still submitting
            stop.set()
            await asyncio.gather(*workers, return_exceptions=True)
            await c.close()

            node = NodeProcess(home)
            c = NodeClient(node.addr, retry=RetryPolicy(attempts=3, timeout_s=10))
            st = await c.status()
            assert st.latest_height >= before_kill
            for txid, r in reported.items():
                again = await c.tx_result(txid)
                assert again.status == node_pb2.TX_STATUS_COMMITTED
                assert (again.height, again.index, bytes(again.tx_hash)) == (r.height, r.index, txid)
                assert list(again.events) == list(r.events)
            assert (await c.header(before_kill)).hash == kept.hash
            # The ledger state is exactly what the committed txs say it is.
            committed_amounts = 0
            for txid, amount in submitted.items():
                res = await c.tx_result(txid)
                assert res.status in (node_pb2.TX_STATUS_COMMITTED, node_pb2.TX_STATUS_UNKNOWN)
                if res.status == node_pb2.TX_STATUS_COMMITTED:
                    committed_amounts += amount
            c_key = await holder_key(home, "firm-c")
            bal = await c.query_app("balances", owner=c_key)
            assert bal["by_issuer"][home.genesis["issuer"]] == 1_000_000 + committed_amounts
            # Uniqueness survived the kill: the input `move` consumed cannot be spent again.
            again_spend = await c.submit_and_wait(move_tx(home, "firm-a", "firm-c", spent, 2, adm).encode(), wait_s=20)
            assert again_spend.status == node_pb2.TX_STATUS_FAILED and move.txid.hex() in again_spend.reason
            # Committed txs keep notary signatures anyone can check with the notary keys alone.
            keys = [bytes.fromhex(k) for k in (await c.query_app("chain_info"))["notaries"]]
            for txid in [move.txid, *list(reported)[-3:]]:
                q = await c.query_app("notarisation", txid=txid.hex())
                sigs = [pb.TxNotarySignature.FromString(bytes.fromhex(h)) for h in q["signatures"]]
                check_notarised(txid, sigs, keys, quorum(len(keys)))

            # New txs are accepted, and the checkpoint chain continues across the restart.
            new = issue_tx(home, "firm-c", 7, adm)
            submitted[new.txid] = 7
            res = await c.submit_and_wait(new.encode(), wait_s=20)
            assert res.status == node_pb2.TX_STATUS_COMMITTED and res.height > st.latest_height
            reported[new.txid] = res
            for height in range(before_kill, res.height):
                cur = lc.Header.FromString((await c.header(height)).client_header).checkpoint
                nxt = lc.Header.FromString((await c.header(height + 1)).client_header).checkpoint
                assert nxt.prev_hash == checkpoint_hash(cur) and nxt.timestamp > cur.timestamp
            blocks = []
            async for blk in c.stream_blocks(1):
                blocks.append(blk.height)
                if blk.height >= res.height:
                    break
            assert blocks == list(range(1, res.height + 1))
            await c.close()
    finally:
        node.stop()


# --- the adapter in process: genesis, replay, rollback, refusals -----------------------------


def _open(home: Home, db_path: Path) -> tuple[CordaApp, NodeDatabase]:
    db = NodeDatabase(db_path)
    return KIND.open_app(load_node_config(home.path), db), db


def _produce(app: CordaApp, db: NodeDatabase, txs: list[bytes], time_ns: int) -> None:
    block = app.produce_block(txs, time_ns)
    proto = block_to_proto(block)
    db.commit_height(block.height, block.hash, proto.SerializeToString(deterministic=True),
                     [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results], block.meta)
    app.commit_block(block)


def _first_cash(app: CordaApp, home: Home, name: str) -> dict[str, object]:
    rows = app.query_app("cash_states", {"owner": ed25519_public_key(home.seed(f"holder-{name}")).hex()},
                         app.latest_height())
    row: dict[str, object] = next(r for r in rows if r["brand"] == "")  # the default brand's
    return row


def test_genesis_keys_and_config_errors(home: Home, tmp_path: Path) -> None:
    g = load_genesis(home.path)
    assert len(g.notary_seeds) == 4 and [n for n, _ in g.holder_seeds] == ["firm-a", "firm-b", "firm-c"]
    assert all((p.stat().st_mode & 0o077) == 0 for p in (home.path / "keys").iterdir())
    doc = home.genesis
    doc["issuer"] = "00" * 32
    (home.path / "genesis.json").write_text(json.dumps(doc))
    with pytest.raises(GenesisError, match="issuer"):
        load_genesis(home.path)
    (home.path / "genesis.json").write_text("{not json")
    with pytest.raises(GenesisError, match=r"genesis\.json"):
        load_genesis(home.path)


def test_restart_reads_the_snapshot_and_refuses_a_tampered_database(home: Home, tmp_path: Path) -> None:
    app, db = _open(home, tmp_path / "node.db")
    t = app.header(1).time_ns
    adm = app.query_app("holders", {}, 1)[str(home.genesis["issuer"])]["admission"]
    spent = _first_cash(app, home, "firm-a")
    move = move_tx(home, "firm-a", "firm-b", spent, 40, adm)
    bad = move_tx(home, "firm-a", "firm-c", spent, 1, adm)  # same input
    _produce(app, db, [move.encode(), bad.encode()], t + SEC)
    _produce(app, db, [], t + 2 * SEC)
    assert app.latest_height() == 3
    b_key = ed25519_public_key(home.seed("holder-firm-b")).hex()
    expected = app.query_app("balances", {"owner": b_key}, 3)
    headers = [app.header(h) for h in (1, 2, 3)]
    notarised = app.query_app("notarisation", {"txid": move.txid.hex()}, 3)
    keys = app.validators()
    check_notarised(move.txid, [pb.TxNotarySignature.FromString(bytes.fromhex(h)) for h in notarised["signatures"]],
                    keys, quorum(len(keys)))
    assert notarised["height"] == 2 and len(notarised["signatures"]) == 4
    assert app.query_app("notarisation", {"txid": move.txid.hex()}, 1) == {
        "txid": move.txid.hex(), "height": None, "signatures": []}
    assert app.query_app("notarisation", {"txid": bad.txid.hex()}, 3)["signatures"] == []  # refused
    db.close()

    again, db = _open(home, tmp_path / "node.db")
    assert again.latest_height() == 3 and [again.header(h) for h in (1, 2, 3)] == headers
    assert again.query_app("balances", {"owner": b_key}, 3) == expected
    assert expected["by_issuer"][home.genesis["issuer"]] == 1_000_040
    assert again.query_app("balances", {"owner": b_key}, 1)["by_issuer"][home.genesis["issuer"]] == 1_000_000
    assert again.query_app("notarisation", {"txid": move.txid.hex()}, 3) == notarised
    # Uniqueness survives the restart: the input `move` consumed stays consumed.
    late = move_tx(home, "firm-a", "firm-c", spent, 2, adm)
    block = again.produce_block([late.encode()], t + 3 * SEC)
    assert not block.results[0].ok and move.txid.hex() in block.results[0].reason
    again.discard_block(block)
    db.close()

    # The latest block no longer matches the snapshot's checkpoint: refuse to open.
    conn = sqlite3.connect(tmp_path / "node.db")
    raw = conn.execute("SELECT data FROM blocks WHERE height = 3").fetchone()[0]
    blk = node_pb2.Block.FromString(raw)
    blk.hash = sha256(b"tampered")
    conn.execute("UPDATE blocks SET data = ? WHERE height = 3", (blk.SerializeToString(),))
    conn.commit()
    with pytest.raises(DatabaseError, match="block 3 does not match the ledger snapshot"):
        _open(home, tmp_path / "node.db")
    # A snapshot behind the blocks (its last checkpoint row lost) is refused too.
    conn.execute("UPDATE blocks SET data = ? WHERE height = 3", (raw,))
    conn.execute("DELETE FROM corda_checkpoints WHERE height = 3")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="snapshot is at height 2, the blocks at 3"):
        _open(home, tmp_path / "node.db")


def test_discard_rolls_back_and_refusals_are_typed(home: Home, tmp_path: Path) -> None:
    app, db = _open(home, tmp_path / "node.db")
    t = app.header(1).time_ns
    adm = app.query_app("holders", {}, 1)[str(home.genesis["issuer"])]["admission"]
    cash = _first_cash(app, home, "firm-a")
    move = move_tx(home, "firm-a", "firm-b", cash, 5, adm)
    block = app.produce_block([move.encode()], t + SEC)
    assert block.results[0].ok
    app.discard_block(block)
    assert app.latest_height() == 1 and _first_cash(app, home, "firm-a") == cash
    assert app.produce_block([move.encode()], t + SEC).results[0].ok  # the input is spendable again
    app.discard_block(block)
    with pytest.raises(NotaryError, match="time must increase"):
        app.produce_block([move.encode()], t)  # a block time that does not advance
    assert app.latest_height() == 1 and _first_cash(app, home, "firm-a") == cash

    with pytest.raises(TxRejected, match="decode"):
        app.check_tx(b"\x0a\xff")
    with pytest.raises(TxRejected, match="signature"):
        app.check_tx(move_tx(home, "firm-a", "firm-b", cash, 5, adm, signer="firm-b").encode())
    for call in (
        lambda: app.query_ibc("clients/x/clientState", 0, True),
        lambda: app.query_ibc("clients/x/clientState", 2, True),
        lambda: app.header(2),
        lambda: app.query_app("balances", {"owner": "zz"}, 1),
        lambda: app.query_app("bank_balance", {"account": "", "denom": "jpy"}, 1),
        lambda: app.query_app("nope", {}, 1),
        lambda: app.query_app("notarisation", {"txid": "00"}, 1),
        lambda: app.query_app("notarisation", {"txid": "00" * 32}, 2),
        lambda: app.query_app("client_state", {"trusting_period_ns": -1}, 1),
        lambda: app.query_app("escrow", {"port_id": "transfer", "denom": "jpy"}, 1),
        lambda: app.unreceived_packets("transfer", "channel-9", [1], 1),
    ):
        with pytest.raises(QueryError):
            call()
    assert app.packet_commitment_sequences("transfer", "channel-9", 1) == []
    db.close()


class LoopbackRelayer:
    """Relays between the two ends of a channel on ONE node (a client of itself), over gRPC only.

    Every proof it hands the chain comes from QueryIbc at a height it first made the chain's
    own corda client trust with a GetHeader header, so the node's proofs and headers are
    checked by the light client running inside the ledger, as a counterparty would.
    """

    def __init__(self, client: NodeClient, home: Home) -> None:
        self.client, self.home = client, home
        self.seed = sha256(b"loopback-relayer")
        self.client_id = ""
        self.trusted = 0

    async def tx(self, msg: Message, seed: bytes | None = None) -> node_pb2.TxResult:
        seed = seed or self.seed
        w = WireTransaction((), (), (ibc_command(msg, [ed25519_public_key(seed)]),), self.home.notary, salt())
        res = await self.client.submit_and_wait(SignedTransaction(w).sign(seed).encode(), wait_s=20)
        assert res.status == node_pb2.TX_STATUS_COMMITTED, f"{type(msg).__name__}: {res.reason}"
        return res

    @staticmethod
    def attr(res: node_pb2.TxResult, event: str, key: str) -> bytes:
        for e in res.events:
            if e.type == event:
                for a in e.attributes:
                    if a.key == key:
                        return bytes(a.value)
        raise AssertionError(f"no {event}.{key} in {[e.type for e in res.events]}")

    async def create_client(self) -> None:
        latest = (await self.client.status()).latest_height
        made = await self.client.query_app("client_state", height=latest)
        res = await self.tx(client_pb2.MsgCreateClient(client_type=made["client_type"],
                                                       client_state=bytes.fromhex(made["client_state"]),
                                                       consensus_state=bytes.fromhex(made["consensus_state"])))
        self.client_id, self.trusted = self.attr(res, "create_client", "client_id").decode(), latest

    async def update(self) -> client_pb2.Height:
        latest = (await self.client.status()).latest_height
        header = lc.Header.FromString((await self.client.header(latest)).client_header)
        header.trusted_height = self.trusted
        await self.tx(client_pb2.MsgUpdateClient(client_id=self.client_id, client_message=header_message(header)))
        self.trusted = latest
        return to_proto(Height(0, latest))

    async def proof(self, path: bytes, height: client_pb2.Height) -> bytes:
        q = await self.client.query_ibc(path.decode(), height=height.revision_height, prove=True)
        return bytes(q.proof)


async def test_loopback_channel_packet_and_ack_over_grpc(home: Home, client: NodeClient) -> None:
    r = LoopbackRelayer(client, home)
    await r.create_client()
    prefix = cpb.MerklePrefix(key_prefix=b"ibc")
    res = await r.tx(cpb.MsgConnectionOpenInit(client_id=r.client_id, counterparty=cpb.Counterparty(
        client_id=r.client_id, prefix=prefix)))
    ca = r.attr(res, "connection_open_init", "connection_id").decode()
    h = await r.update()
    end = cpb.ConnectionEnd.FromString((await client.query_ibc(paths.connection(ca).decode())).value)
    res = await r.tx(cpb.MsgConnectionOpenTry(
        client_id=r.client_id, counterparty=cpb.Counterparty(client_id=r.client_id, connection_id=ca, prefix=prefix),
        counterparty_versions=list(end.versions), proof_init=await r.proof(paths.connection(ca), h), proof_height=h))
    cb = r.attr(res, "connection_open_try", "connection_id").decode()
    h = await r.update()
    await r.tx(cpb.MsgConnectionOpenAck(connection_id=ca, counterparty_connection_id=cb, version=end.versions[0],
                                        proof_try=await r.proof(paths.connection(cb), h), proof_height=h))
    h = await r.update()
    await r.tx(cpb.MsgConnectionOpenConfirm(connection_id=cb, proof_ack=await r.proof(paths.connection(ca), h),
                                            proof_height=h))
    port = "transfer"
    res = await r.tx(chpb.MsgChannelOpenInit(port_id=port, channel=chpb.Channel(
        state=chpb.STATE_INIT, ordering=chpb.ORDER_UNORDERED, counterparty=chpb.ChannelCounterparty(port_id=port),
        connection_hops=[ca], version=transfer.VERSION)))
    cha = r.attr(res, "channel_open_init", "channel_id").decode()
    h = await r.update()
    res = await r.tx(chpb.MsgChannelOpenTry(port_id=port, channel=chpb.Channel(
        state=chpb.STATE_TRYOPEN, ordering=chpb.ORDER_UNORDERED,
        counterparty=chpb.ChannelCounterparty(port_id=port, channel_id=cha), connection_hops=[cb], version=""),
        counterparty_version=transfer.VERSION, proof_init=await r.proof(paths.channel(port, cha), h), proof_height=h))
    chb = r.attr(res, "channel_open_try", "channel_id").decode()
    h = await r.update()
    await r.tx(chpb.MsgChannelOpenAck(port_id=port, channel_id=cha, counterparty_channel_id=chb,
                                      counterparty_version=transfer.VERSION,
                                      proof_try=await r.proof(paths.channel(port, chb), h), proof_height=h))
    h = await r.update()
    await r.tx(chpb.MsgChannelOpenConfirm(port_id=port, channel_id=chb,
                                          proof_ack=await r.proof(paths.channel(port, cha), h), proof_height=h))

    # firm-a sends 100 jpy from one end to the other; the relayer finds the packet in the tx events.
    firm_a, firm_b = home.seed("holder-firm-a"), home.seed("holder-firm-b")
    sender, receiver = account_of(ed25519_public_key(firm_a)), account_of(ed25519_public_key(firm_b))
    res = await r.tx(transfer_pb2.MsgTransfer(source_port=port, source_channel=cha, denom="jpy", amount="100",
                                              sender=sender, receiver=receiver,
                                              timeout_timestamp=time.time_ns() + 3600 * SEC), seed=firm_a)
    packet = chpb.Packet.FromString(r.attr(res, "send_packet", "packet"))
    seq = packet.sequence
    assert await client.packet_commitments(port, cha) == [seq]
    assert await client.unreceived_packets(port, chb, [seq, seq + 1]) == [seq, seq + 1]
    assert (await client.query_app("escrow", port_id=port, channel_id=cha, denom="jpy"))["amount"] == 100
    h = await r.update()
    res = await r.tx(chpb.MsgRecvPacket(packet=packet, signer="relayer", proof_height=h,
                                        proof_commitment=await r.proof(paths.packet_commitment(port, cha, seq), h)))
    ack = r.attr(res, "write_acknowledgement", "ack")
    assert await client.unreceived_packets(port, chb, [seq, seq + 1]) == [seq + 1]
    voucher = await client.query_app("bank_balance", account=receiver, denom=f"{port}/{chb}/jpy")
    assert voucher["amount"] == 100
    assert await client.unreceived_acks(port, cha, [seq]) == [seq]
    h = await r.update()
    await r.tx(chpb.MsgAcknowledgement(packet=packet, acknowledgement=ack, signer="relayer", proof_height=h,
                                       proof_acked=await r.proof(paths.packet_ack(port, chb, seq), h)))
    assert await client.packet_commitments(port, cha) == []
    assert await client.unreceived_acks(port, cha, [seq]) == []
    # A forged proof (from the wrong path) is refused by the ledger's own light client: FAILED, nothing moves.
    h = await r.update()
    w = WireTransaction((), (), (ibc_command(chpb.MsgRecvPacket(
        packet=packet, signer="relayer", proof_height=h,
        proof_commitment=await r.proof(paths.channel(port, cha), h)), [ed25519_public_key(r.seed)]),),
        home.notary, salt())
    forged = await client.submit_and_wait(SignedTransaction(w).sign(r.seed).encode(), wait_s=20)
    assert forged.status == node_pb2.TX_STATUS_FAILED and forged.reason
    assert (await client.query_app("bank_balance", account=receiver, denom=f"{port}/{chb}/jpy"))["amount"] == 100
