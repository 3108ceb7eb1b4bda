"""The EVM node's latest-state index, admission and mempool, against the tries they stand for.

Blocks go through the real NodeRuntime (mempool, ``produce_once``, the SQLite commit of the
height with its flat-state changes), so what is checked is what a running node does:
- the flat index equals the committed tries exactly after any sequence of blocks (random
  transfers, whitelist changes, reverted multi-message txs, IBC writes, nonces ahead);
- unproved reads at the latest height need no trie node, while older heights still walk
  the tries;
- a tx's sender is recovered once, in ``check_tx``;
- each sender's txs run in nonce order inside a block; a tx whose nonce is ahead waits in
  the mempool for its predecessor, and gets a FAILED result after ``defer_blocks`` blocks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rlp
from google.protobuf import any_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chains.evm.tx as evm_tx
from chains.evm import IBC_HANDLER_ADDRESS, SECURITY_TOKEN_ADDRESS, Message, make_tx
from chains.evm.contracts import encode_amount
from chains.evm.state import BLOB_ROOT_SLOT
from chains.node.app import QueryError
from chains.node.apps.evm import (
    RETAIN_BLOCKS,
    STATE_RELOAD_BLOCKS,
    Allocation,
    EvmGenesis,
    EvmNodeApp,
)
from chains.node.db import NodeCache, NodeDatabase
from chains.node.runtime import NodeRuntime, RuntimeConfig
from chains.store.mpt import EMPTY_ROOT, MerklePatriciaTrie
from kakehashi.ibc.v1 import client_pb2
from kakehashi.node.v1 import node_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as qbft_pb
from lightclients.crypto import eth_address, keccak256, secp256k1_public_key, sha256
from lightclients.mpt import decode_account, verify_storage_proof
from lightclients.qbft.client import commitment_slot

SEC = 1_000_000_000
T0 = 1_800_000_000 * SEC


def _key(label: str) -> tuple[bytes, bytes]:
    key = sha256(b"evm-node-state:" + label.encode())
    return key, eth_address(secp256k1_public_key(key))


VALIDATORS = [_key(f"validator-{i}")[0] for i in range(4)]
ISSUER_KEY, ISSUER = _key("issuer")
USERS = [_key(name) for name in ("alice", "bob", "carol", "dave")]
NEWCOMER = _key("newcomer")[1]  # never in the genesis: the whitelist creates its slots
CHAIN_ID = 4242


def _genesis() -> EvmGenesis:
    return EvmGenesis(
        chain_id="evm-state", evm_chain_id=CHAIN_ID, revision_number=0, genesis_time_ns=T0,
        validators=tuple(eth_address(secp256k1_public_key(k)) for k in VALIDATORS), token_issuer=ISSUER,
        accounts=tuple(Allocation(f"u{i}", addr, 10**18, i < 3, 1_000 if i < 3 else 0, {"stake": 100})
                       for i, (_, addr) in enumerate(USERS)),
    )


class Node:
    """An EVM node app over SQLite driven through the real runtime (no gRPC)."""

    def __init__(self, path: Path, defer_blocks: int = 20) -> None:
        self.path = path
        self.db = NodeDatabase(path)
        self.app = EvmNodeApp(_genesis(), VALIDATORS, self.db, defer_blocks=defer_blocks)
        self.rt = NodeRuntime(self.app, self.db, RuntimeConfig(max_block_txs=100), clock=self._clock)
        self.now = T0
        self.nonces: dict[bytes, int] = {}

    def _clock(self) -> int:
        self.now += SEC
        return self.now

    def tx(self, key: bytes, msgs: list[Message], nonce: int | None = None) -> bytes:
        sender = eth_address(secp256k1_public_key(key))
        if nonce is None:
            nonce = self.nonces.get(sender, 0)
            self.nonces[sender] = nonce + 1
        return make_tx(key, CHAIN_ID, nonce, msgs).encode()

    def submit(self, *txs: bytes) -> list[bytes]:
        return [self.rt.submit(t) for t in txs]

    def block(self) -> Any:
        return self.rt.produce_once()

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "node.db")
    yield n
    n.close()


def transfer(to: bytes, amount: int) -> Message:
    return Message(SECURITY_TOKEN_ADDRESS, "transfer", (to, encode_amount(amount)))


def whitelist(holder: bytes, allowed: bool) -> Message:
    return Message(SECURITY_TOKEN_ADDRESS, "whitelist", (holder, b"\x01" if allowed else b""))


def create_client(node: Node) -> Message:
    """A qbft client of this very chain: real IBC writes into the handler's blob trie."""
    cs = node.app.query_app("client_state", {}, node.app.latest_height())
    msg = client_pb2.MsgCreateClient(client_type=cs["client_type"], client_state=bytes.fromhex(cs["client_state"]),
                                     consensus_state=bytes.fromhex(cs["consensus_state"]))
    packed = any_pb2.Any()
    packed.Pack(msg, type_url_prefix="/")
    return Message(IBC_HANDLER_ADDRESS, "ibc", (packed.SerializeToString(deterministic=True),))


def flat_rows(path: Path) -> dict[bytes, bytes]:
    conn = sqlite3.connect(path)
    try:
        return {bytes(k): bytes(v) for k, v in conn.execute("SELECT key, value FROM state")}
    finally:
        conn.close()


def assert_flat_equals_trie(node: Node) -> None:
    """Every flat entry equals the trie at the latest root, and the tries hold nothing more."""
    rows = flat_rows(node.path)
    latest = node.app.latest_height()
    assert rows.pop(b"h") == latest.to_bytes(8, "big")
    by_kind: dict[bytes, dict[bytes, bytes]] = {b"a": {}, b"s": {}, b"b": {}}
    for k, v in rows.items():
        by_kind[k[:1]][k[1:]] = v
    assert len(by_kind) == 3, "an unknown kind of flat key"
    store = node.app.store
    world = MerklePatriciaTrie(store, node.app.chain.header(latest).state_root, secure=True)
    assert sum(1 for _ in world.items()) == len(by_kind[b"a"])
    slots_of: dict[bytes, dict[bytes, bytes]] = {}
    for k, v in by_kind[b"s"].items():
        slots_of.setdefault(k[:20], {})[k[20:]] = v
    for addr, raw in by_kind[b"a"].items():
        assert world.get(addr) == raw
        storage = MerklePatriciaTrie(store, decode_account(raw).storage_root, secure=True)
        mine = slots_of.pop(addr, {})
        assert sum(1 for _ in storage.items()) == len(mine)
        for slot, value in mine.items():
            assert storage.get(slot) == value
    assert not slots_of, "flat slots of an account the trie does not hold"
    blob_root_raw = by_kind[b"s"].get(IBC_HANDLER_ADDRESS + BLOB_ROOT_SLOT)
    # The slot holds the root as an RLP word: leading zero bytes are dropped (1 root in 256).
    blob_root = EMPTY_ROOT if blob_root_raw is None else rlp.decode(blob_root_raw).rjust(32, b"\x00")
    blobs = MerklePatriciaTrie(store, blob_root)
    mine_blobs = {k[20:]: v for k, v in by_kind[b"b"].items() if k[:20] == IBC_HANDLER_ADDRESS}
    assert len(mine_blobs) == len(by_kind[b"b"])
    assert dict(blobs.items()) == mine_blobs


# One op per tx: (kind, user index, other user index, amount).
_OPS = st.lists(st.lists(st.tuples(st.sampled_from(["transfer", "whitelist", "revert", "client", "ahead"]),
                                   st.integers(0, 3), st.integers(0, 4), st.integers(1, 1_500)),
                         max_size=6), min_size=1, max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_OPS)
def test_flat_index_equals_the_tries_after_random_blocks(tmp_path_factory: pytest.TempPathFactory,
                                                         blocks: list[list[tuple[str, int, int, int]]]) -> None:
    node = Node(tmp_path_factory.mktemp("flat") / "node.db", defer_blocks=2)
    try:
        targets = [addr for _, addr in USERS] + [NEWCOMER]
        gap = 100  # each nonce-ahead tx is distinct, and its gap is never filled
        for ops in blocks:
            for kind, who, other, amount in ops:
                key = USERS[who][0]
                if kind == "transfer":
                    node.submit(node.tx(key, [transfer(targets[other], amount)]))
                elif kind == "whitelist":
                    node.submit(node.tx(ISSUER_KEY, [whitelist(targets[other], amount % 2 == 0)]))
                elif kind == "revert":  # the first message writes, the second fails: all reverted
                    node.submit(node.tx(key, [transfer(targets[other], 1), transfer(targets[other], 10**9)]))
                elif kind == "client" and node.app.latest_height() > 0:
                    node.submit(node.tx(key, [create_client(node)]))
                elif kind == "ahead":
                    sender = USERS[who][1]
                    gap += 1
                    node.submit(node.tx(key, [transfer(targets[other], 1)], node.nonces.get(sender, 0) + gap))
            node.block()
            assert_flat_equals_trie(node)
            # and the answers agree with a walk of the tries at the same root
            latest = node.app.latest_height()
            flat = [node.app.query_app("security_token", {"holder": "0x" + a.hex()}, latest) for a in targets]
            flat_acct = [node.app.query_app("account", {"address": "0x" + a.hex()}, latest) for a in targets]
            node.app._flat_ok = False
            try:
                assert flat == [node.app.query_app("security_token", {"holder": "0x" + a.hex()}, latest)
                                for a in targets]
                assert flat_acct == [node.app.query_app("account", {"address": "0x" + a.hex()}, latest)
                                     for a in targets]
            finally:
                node.app._flat_ok = True
    finally:
        node.close()


def test_latest_unproved_reads_need_no_trie_node_older_heights_do(node: Node) -> None:
    alice_key, alice = USERS[0]
    bob = USERS[1][1]
    node.submit(node.tx(alice_key, [transfer(bob, 7)]))
    node.block()
    node.block()
    conn = sqlite3.connect(node.path)
    conn.execute("DELETE FROM nodes")
    conn.commit()
    conn.close()
    node.db.node_cache = NodeCache(0)
    holder = {"holder": "0x" + bob.hex()}
    assert node.app.query_app("security_token", holder, 2)["balance"] == 1_007
    assert node.app.query_app("account", {"address": "0x" + alice.hex()}, 2)["nonce"] == 1
    assert node.app.query_ibc(f"bank/balances/0x{alice.hex()}/stake", 2, False).value is not None
    with pytest.raises(QueryError):
        node.app.query_app("security_token", holder, 1)


def test_a_checked_tx_has_its_sender_recovered_once(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = evm_tx.secp256k1_recover_address

    def counting(digest: bytes, sig: bytes) -> bytes:
        calls.append(digest)
        return real(digest, sig)

    monkeypatch.setattr(evm_tx, "secp256k1_recover_address", counting)
    key, _ = USERS[0]
    txs = [node.tx(key, [transfer(USERS[1][1], 1)]) for _ in range(5)]
    node.submit(*txs)
    assert len(calls) == 5
    block = node.block()
    assert len(block.txs) == 5 and all(r.ok for r in block.results)
    assert len(calls) == 5, "block production recovered a sender again"


def test_a_senders_txs_run_in_nonce_order_and_early_nonces_wait(node: Node) -> None:
    key, alice = USERS[0]
    bob = USERS[1][1]
    t0, t1, t2, t3 = (node.tx(key, [transfer(bob, 1)]) for _ in range(4))
    h2, h1 = node.submit(t2, t1)  # later nonces first, in one batch, with the gap (nonce 0) missing
    block = node.block()
    assert block.txs == () and block.results == ()  # nothing final yet: both wait
    assert [node.rt.tx_result(h).status for h in (h1, h2)] == [node_pb2.TX_STATUS_PENDING] * 2
    node.submit(t3, t0)
    block = node.block()
    assert block.txs == (t0, t1, t2, t3) and all(r.ok for r in block.results)  # nonce order
    assert node.rt.mempool_size() == 0
    assert node.app.query_app("account", {"address": "0x" + alice.hex()}, block.height)["nonce"] == 4


def test_a_nonce_gap_never_filled_fails_after_defer_blocks(tmp_path: Path) -> None:
    node = Node(tmp_path / "node.db", defer_blocks=3)
    try:
        key, _ = USERS[0]
        (stuck,) = node.submit(node.tx(key, [transfer(USERS[1][1], 1)], nonce=5))
        for _ in range(2):
            assert node.block().results == ()
            assert node.rt.tx_result(stuck).status == node_pb2.TX_STATUS_PENDING
        block = node.block()
        (res,) = block.results
        assert (res.tx_hash, res.ok) == (stuck, False)
        assert "stayed ahead of the account's next nonce 0 for 3 blocks" in res.reason
        assert node.rt.tx_result(stuck).status == node_pb2.TX_STATUS_FAILED and node.rt.mempool_size() == 0
        # a used-up nonce fails at once, as before
        ok = node.tx(key, [transfer(USERS[1][1], 1)], nonce=0)
        dup = node.tx(key, [transfer(USERS[1][1], 2)], nonce=0)
        node.submit(ok, dup)
        block = node.block()
        assert block.txs == (ok,) and [r.reason.split(":")[0] for r in block.results if not r.ok] == ["not included"]
    finally:
        node.close()


def test_memory_keeps_a_window_of_blocks_and_old_headers_come_from_the_database(node: Node) -> None:
    key = USERS[0][0]
    bob = USERS[1][1]
    for _ in range(max(RETAIN_BLOCKS, STATE_RELOAD_BLOCKS) + 3):
        node.submit(node.tx(key, [transfer(bob, 1)]))
        block = node.block()
        assert block.results[0].ok
        if block.height % STATE_RELOAD_BLOCKS == 0:  # decoded state dropped, continued from the root
            assert not node.app.chain.state._accounts
    latest = node.app.latest_height()
    holder = node.app.query_app("security_token", {"holder": "0x" + bob.hex()}, latest)
    assert holder["balance"] == 1_000 + latest
    assert len(node.app.chain.blocks) <= RETAIN_BLOCKS + 1  # the window plus the genesis
    assert 1 not in node.app.chain.blocks
    first = node.app.header(1)
    assert first.height == 1 and first.hash == node.db.get_block_hash(1)
    assert node.app.header(latest).hash == node.db.get_block_hash(latest)
    assert json.loads(json.dumps(node.app.query_app("chain_info", {}, 1)))["validators"]


def test_query_ibc_many_equals_query_ibc_per_path_and_its_proofs_verify(node: Node) -> None:
    key = USERS[0][0]
    node.block()
    node.submit(node.tx(key, [create_client(node)]))
    node.block()
    latest = node.app.latest_height()
    paths = ["clients/10-qbft-0/clientType", "clients/10-qbft-0/clientState", "clients/none/clientState",
             f"bank/balances/0x{USERS[0][1].hex()}/stake"]
    for height in (latest, latest - 1):
        for prove in (False, True):
            many = node.app.query_ibc_many(paths, height, prove)
            assert many == [node.app.query_ibc(p, height, prove) for p in paths]
    storage_root = node.app.chain.prove(IBC_HANDLER_ADDRESS, [], latest).storage_root
    for path, res in zip(paths, node.app.query_ibc_many(paths, latest, True), strict=True):
        proof = qbft_pb.StorageProof.FromString(res.proof)
        got = verify_storage_proof(storage_root, commitment_slot(path.encode()), list(proof.proof))
        assert (got is None) == (res.value is None)
        if res.value is not None:
            assert got == keccak256(res.value).lstrip(b"\x00")
    with pytest.raises(QueryError):
        node.app.query_ibc_many(["ok", ""], latest, False)
    with pytest.raises(QueryError, match="path is not valid text"):
        node.app.query_ibc_multi(["ok", "\ud800"], latest)
