"""QueryIbcBatch with PROOF_MODE_MULTI over real nodes (subprocesses, gRPC on 127.0.0.1).

For each chain kind the node's one multiproof of several IBC paths (present and absent) at a
height is opened by the counterparty's light client, updated with the node's own header at
that height, and every answer equals the unproven batch read; a multiproof changed in one
byte is refused. This is exactly what a relayer puts in the first message of a batch tx.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from chains.evm import IBC_HANDLER_ADDRESS
from chains.ibc.host import paths
from chains.node.client import NodeClient, NodeError, RetryPolicy
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.ibc.v1 import client_pb2
from kakehashi.node.v1 import node_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as qbft_pb
from lightclients.corda.client import header_message
from lightclients.crypto import sha256
from lightclients.interface import (
    BatchOpening,
    ConsensusStateNotFound,
    Height,
    InvalidProof,
    MemoryClientStore,
)
from lightclients.qbft.client import QbftClient, encode_header_message
from tests.e2e.test_node_corda import NodeProcess, light_client_at
from tests.e2e.test_node_corda import init_home as init_corda
from tests.e2e.test_node_evm import Node
from tests.e2e.test_node_evm import init_home as init_evm

pytestmark = pytest.mark.slow
NS = 1_000_000_000
MULTI = node_pb2.PROOF_MODE_MULTI


async def _wait_height(client: NodeClient, height: int) -> None:
    deadline = time.monotonic() + 60
    while (await client.status()).latest_height < height:
        assert time.monotonic() < deadline, f"node did not reach height {height}"
        await asyncio.sleep(0.1)


async def _check_answers(client: NodeClient, opening: BatchOpening, wanted: list[str], h: int) -> None:
    plain = await client.query_ibc_batch(wanted, h, node_pb2.PROOF_MODE_NONE)
    multi = await client.query_ibc_batch(wanted, h, MULTI)
    assert multi.proof_height == h and multi.multiproof
    assert [(e.path, e.found, e.value) for e in multi.entries] == [(e.path, e.found, e.value) for e in plain.entries]
    found = 0
    for entry in multi.entries:
        path = entry.path.encode()
        if entry.found:
            found += 1
            opening.verify_membership(path, entry.value)
            with pytest.raises(InvalidProof):
                opening.verify_membership(path, entry.value + b"x")
        else:
            opening.verify_non_membership(path)
    assert 0 < found < len(wanted)
    each = await client.query_ibc_batch(wanted, h, node_pb2.PROOF_MODE_EACH)
    assert len(multi.multiproof) < sum(len(e.proof) for e in each.entries)


# --- EVM node, opened by the 10-qbft client -------------------------------------------------


@pytest.fixture
def evm(tmp_path: Path) -> Iterator[tuple[Node, dict[str, Any]]]:
    home = tmp_path / "evm"
    genesis = init_evm(home)
    n = Node(home)
    n.start()
    try:
        yield n, genesis
    finally:
        n.stop()


@pytest.fixture
async def evm_client(evm: tuple[Node, dict[str, Any]]) -> AsyncIterator[NodeClient]:
    c = NodeClient(evm[0].addr, retry=RetryPolicy(attempts=3, timeout_s=10))
    try:
        yield c
    finally:
        await c.close()


async def test_evm_multiproof_is_opened_by_the_qbft_client(
    evm: tuple[Node, dict[str, Any]], evm_client: NodeClient
) -> None:
    _, genesis = evm
    client = evm_client
    await _wait_height(client, 3)
    trust, h = 1, 3
    cs = await client.query_app("client_state", height=trust, trusting_period_ns=3600 * NS,
                                max_clock_drift_ns=3600 * NS)
    qc, store = QbftClient(), MemoryClientStore()
    now = (await client.header(h)).time_ns + NS
    qc.initialize(store, bytes.fromhex(cs["client_state"]), bytes.fromhex(cs["consensus_state"]), now)
    header = qbft_pb.Header.FromString((await client.header(h)).client_header)
    header.trusted_height.CopyFrom(client_pb2.Height(revision_number=0, revision_height=trust))
    message = encode_header_message(header)
    qc.verify_client_message(store, message, now)
    assert qc.update_state(store, message) == [Height(0, h)]

    accounts = ["0x" + a["address"][2:].lower() for a in genesis["accounts"]]
    wanted = [f"bank/balances/{acct}/stake" for acct in accounts] + ["bank/supply/stake"]
    wanted += [paths.packet_receipt("transfer", "channel-0", s).decode() for s in (1, 2, 3)]
    multi = await client.query_ibc_batch(wanted, h, MULTI)
    opening = qc.open_batch(store, Height(0, h), IBC_HANDLER_ADDRESS, multi.multiproof, now)
    await _check_answers(client, opening, wanted, h)
    # A bit flipped in a trie node (the nodes follow the slots; the last byte is the last node's)
    # breaks the proof. Not any byte would: a bit flipped in an absent slot can leave its path in
    # the same nodes, a valid proof that ANOTHER slot is empty.
    broken = bytearray(multi.multiproof)
    broken[-1] ^= 1
    with pytest.raises(InvalidProof):
        qc.open_batch(store, Height(0, h), IBC_HANDLER_ADDRESS, bytes(broken), now)
    with pytest.raises(ConsensusStateNotFound):  # a height the client holds no state for
        qc.open_batch(store, Height(0, 2), IBC_HANDLER_ADDRESS, multi.multiproof, now)
    with pytest.raises(NodeError) as err:
        await client.query_ibc_batch(wanted, 10**6, MULTI)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


# --- Corda node, opened by the 11-corda client ----------------------------------------------


@pytest.fixture
def corda(tmp_path: Path) -> Iterator[NodeProcess]:
    proc = NodeProcess(init_corda(tmp_path))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def corda_client(corda: NodeProcess) -> AsyncIterator[NodeClient]:
    c = NodeClient(corda.addr, retry=RetryPolicy(attempts=3, timeout_s=10))
    try:
        yield c
    finally:
        await c.close()


async def test_corda_multiproof_is_opened_by_the_corda_client(corda: NodeProcess, corda_client: NodeClient) -> None:
    client = corda_client
    await _wait_height(client, 3)
    h = 3
    genesis_header = lc.Header.FromString((await client.header(1)).client_header)
    now = time.time_ns()
    cc, store = light_client_at(genesis_header, "corda-e2e", now)
    header = lc.Header.FromString((await client.header(h)).client_header)
    header.trusted_height = 1
    cc.verify_client_message(store, header_message(header), now)
    assert cc.update_state(store, header_message(header)) == [Height(0, h)]

    genesis = json.loads((corda.home.path / "genesis.json").read_text())
    wanted = [f"bank/balances/{e['account']}/{e['denom']}" for e in genesis["bank"]]
    wanted += ["bank/supply/jpy"] + [paths.packet_receipt("transfer", "channel-0", s).decode() for s in (1, 2, 3)]
    multi = await client.query_ibc_batch(wanted, h, MULTI)
    opening = cc.open_batch(store, Height(0, h), b"ibc", multi.multiproof, now)
    await _check_answers(client, opening, wanted, h)
    # A bit flipped inside a proven value breaks the proof. Not any byte would: a bit flipped in
    # an absence entry's key (sha256 of the path) can leave it in the same gap between its
    # neighbours, a valid proof that ANOTHER key is absent; it then says nothing of the path asked.
    broken = bytearray(multi.multiproof)
    at = multi.multiproof.find(next(e.value for e in multi.entries if e.found))
    assert at >= 0
    broken[at] ^= 1
    with pytest.raises(InvalidProof):
        cc.open_batch(store, Height(0, h), b"ibc", bytes(broken), now)
    absent = next(e.path.encode() for e in multi.entries if not e.found)
    moved = bytearray(multi.multiproof)
    at = multi.multiproof.find(sha256(absent))
    assert at >= 0
    moved[at + 31] ^= 1
    elsewhere = cc.open_batch(store, Height(0, h), b"ibc", bytes(moved), now)
    assert not elsewhere.covers(absent)
    with pytest.raises(InvalidProof, match="holds no entry"):
        elsewhere.verify_non_membership(absent)
    with pytest.raises(ConsensusStateNotFound):
        cc.open_batch(store, Height(0, 2), b"ibc", multi.multiproof, now)
