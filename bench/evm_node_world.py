"""An EVM node app over a real SQLite database, with a Corda counterparty and an open dvp channel.

Why a world rather than a running node: the per-query, per-tx and per-block costs of the EVM
node are measured in process (py-spy and wall clock see the node's own code, not gRPC), but on
the same objects the node runs: :class:`EvmNodeApp` over :class:`NodeDatabase`, blocks made by
``produce_block`` and persisted by ``commit_height`` exactly as ``NodeRuntime.produce_once``
does. The counterparty is the conformance suite's Corda host, so a relayer tx carries real
ICS-23 proofs verified by the chain's 11-corda client.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chains.evm import IBC_HANDLER_ADDRESS, Message, make_tx
from chains.evm.dvp import DVP_ESCROW_ADDRESS
from chains.ibc import packets
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.errors import InvalidMessage, NoRoute, TxFailed
from chains.ibc.events import Event, EventLog
from chains.node.app import ProducedBlock
from chains.node.apps.evm import Allocation, EvmGenesis, EvmNodeApp
from chains.node.db import NodeDatabase
from chains.node.runtime import block_to_proto
from kakehashi.dvp.v1 import dvp_pb2
from lightclients.crypto import eth_address, secp256k1_public_key, sha256
from lightclients.interface import Height
from tests.support.cordahost import CordaHost
from tests.support.evmhost import EvmHost, pack
from tests.support.mockapp import MockApp
from tests.support.pair import HostPair

SEC = 1_000_000_000
START_NS = 1_800_000_000 * SEC


def key_of(label: str) -> tuple[bytes, bytes]:
    key = sha256(b"bench-evm-world:" + label.encode())
    return key, eth_address(secp256k1_public_key(key))


VALIDATOR_KEYS = [key_of(f"validator-{i}")[0] for i in range(4)]
ISSUER_KEY, ISSUER = key_of("issuer")
RELAYER_KEY, RELAYER = key_of("relayer")
SELLER_KEY, SELLER = key_of("seller")
BUYER_KEY, BUYER = key_of("buyer")
ALICE_KEY, ALICE = key_of("alice")
BOB_KEY, BOB = key_of("bob")


def genesis(chain_id: str = "evm-bench") -> EvmGenesis:
    def alloc(name: str, addr: bytes, st: int) -> Allocation:
        return Allocation(name, addr, 10**21, True, st, {"stake": 10**9})

    return EvmGenesis(
        chain_id=chain_id, evm_chain_id=7001, revision_number=1, genesis_time_ns=START_NS,
        validators=tuple(eth_address(secp256k1_public_key(k)) for k in VALIDATOR_KEYS),
        token_issuer=ISSUER,
        accounts=(alloc("seller", SELLER, 10**12), alloc("buyer", BUYER, 1), alloc("alice", ALICE, 10**12),
                  alloc("bob", BOB, 10**12), Allocation("relayer", RELAYER, 10**21, False, 0, {})),
    )


def open_app(path: Path) -> tuple[EvmNodeApp, NodeDatabase]:
    db = NodeDatabase(path)
    return EvmNodeApp(genesis(), VALIDATOR_KEYS, db), db


def commit(app: EvmNodeApp, db: NodeDatabase, txs: Sequence[bytes], time_ns: int) -> ProducedBlock:
    """What NodeRuntime.produce_once does with a batch, minus the mempool."""
    block = app.produce_block(list(txs), time_ns)
    proto = block_to_proto(block)
    db.commit_height(block.height, block.hash, proto.SerializeToString(deterministic=True),
                     [(r.tx_hash, r.SerializeToString(deterministic=True)) for r in proto.results], block.meta, block.state)
    app.commit_block(block)
    return block


class NodeEvmHost(EvmHost):
    """The conformance EVM host, but every block goes through the node app and SQLite."""

    def __init__(self, app: EvmNodeApp, db: NodeDatabase) -> None:
        self.app, self.db = app, db
        self.chain_id = app.chain_id
        self.block_ns = SEC
        self.keys = list(app.keys)
        self.chain = app.chain
        self.prefix = IBC_HANDLER_ADDRESS
        self.handler = self.chain.ibc.handler
        self.store = self.chain.ibc.store
        self.transfer = self.chain.ibc.transfer
        self.events = EventLog()
        self.blocks = {}
        self._watch_core()
        self.install_app_calls()
        self.height = Height(app.revision_number, app.latest_height())
        self.now_ns = self.chain.header(app.latest_height()).timestamp * SEC
        self._commit()
        if app.latest_height() == 0:
            self.idle()  # a client of this chain starts from a sealed header

    def produce(self, txs: Sequence[bytes]) -> ProducedBlock:
        self.next_block()
        block = commit(self.app, self.db, txs, self.now_ns)
        self.now_ns = block.time_ns
        self._commit()
        return block

    def tx(self, *msgs: Any) -> list[object]:
        call = Message(IBC_HANDLER_ADDRESS, "ibc", tuple(pack(m) for m in msgs))
        raw = make_tx(RELAYER_KEY, self.chain.chain_id, self.app_nonce(RELAYER), [call]).encode()
        self._failure, self._results = None, []
        block = self.produce([raw])
        (receipt,) = block.results
        for e in receipt.events:
            self.events.emit(self.height, Event(e.type, tuple(e.attributes)))
        if not receipt.ok:
            raise self._failure or TxFailed(0, InvalidMessage(receipt.reason))
        return list(self._results)

    def idle(self, blocks: int = 1, advance_ns: int | None = None) -> None:
        for _ in range(blocks):
            self.produce([])

    def app_nonce(self, address: bytes) -> int:
        return int(self.app.query_app("account", {"address": "0x" + address.hex()}, self.app.latest_height())["nonce"])


class DvpWorld:
    """Node app B (EVM, SQLite) and Corda host A with an open dvp channel between them."""

    def __init__(self, path: Path) -> None:
        self.app, self.db = open_app(path)
        self.evm = NodeEvmHost(self.app, self.db)
        self.corda = CordaHost("corda-bench", START_NS, 3 * SEC)
        self.pair = HostPair("corda-evm", self.corda, self.evm)
        try:
            self.corda.handler.router.route(dvp_app.PORT_ID)
        except NoRoute:
            self.corda.handler.bind_port(dvp_app.PORT_ID, MockApp())
        self.chan_corda, self.chan_evm = self.pair.open_channel(dvp_app.PORT_ID, version=dvp_app.VERSION)
        self.seller_nonce = 0
        self.locked: list[dvp_pb2.Terms] = []

    def terms(self, trade_id: str) -> dvp_pb2.Terms:
        return dvp_pb2.Terms(
            trade_id=trade_id, security_token=self.app.chain.token.address, st_quantity=1,
            cash_issuer=b"\x11" * 32, sc_amount=5, seller_evm=SELLER, buyer_evm=BUYER,
            seller_corda=b"\x22" * 32, buyer_corda=b"\x33" * 32,
            deadline_ns=START_NS + 10**6 * SEC,
        )

    def lock_txs(self, n: int) -> tuple[list[bytes], list[dvp_pb2.Terms]]:
        txs, terms = [], []
        for _ in range(n):
            t = self.terms(f"T-{len(self.locked) + len(terms)}")
            call = Message(DVP_ESCROW_ADDRESS, "lock", (dvp_app.encode_terms(t), self.chan_evm.encode()))
            txs.append(make_tx(SELLER_KEY, self.app.genesis.evm_chain_id, self.seller_nonce, [call]).encode())
            self.seller_nonce += 1
            terms.append(t)
        return txs, terms

    def run_block(self, txs: Sequence[bytes]) -> tuple[float, float, ProducedBlock]:
        """(CPU seconds in check_tx for all txs, CPU seconds producing + persisting the block, block).

        CPU time of this process, not wall time: the machine is shared, and wall time moves
        with whatever else runs on it.
        """
        t0 = time.process_time()
        for raw in txs:
            self.app.check_tx(raw)
        t1 = time.process_time()
        block = self.evm.produce(txs)
        t2 = time.process_time()
        return t1 - t0, t2 - t1, block

    def lock(self, n: int) -> tuple[float, float, ProducedBlock]:
        txs, terms = self.lock_txs(n)
        out = self.run_block(txs)
        assert all(r.ok for r in out[2].results), [r.reason for r in out[2].results if not r.ok][:3]
        self.locked.extend(terms)
        return out

    def relay_tx(self, terms: Sequence[dvp_pb2.Terms]) -> bytes:
        """Corda sends one dvp packet per trade in one block; one EVM tx receives them all."""
        chan = self.chan_corda

        def send_all(ctx: Any) -> None:
            for t in terms:
                packets.send_packet(ctx, dvp_app.PORT_ID, chan, Height(0, 0), t.deadline_ns,
                                    dvp_app.encode_packet_data(t))

        self.corda.app_call(send_all)
        sent = [e.packet() for e in self.corda.events.of_type("send_packet")[-len(terms):]]
        update, height = self.pair.update_msg(self.evm)
        msgs: list[Any] = [update]
        for p in sent:
            assert p is not None
            msgs.append(self.pair.recv_msg(p, self.evm, update=False))
        self.pair.trust(self.evm, height)
        call = Message(IBC_HANDLER_ADDRESS, "ibc", tuple(pack(m) for m in msgs))
        return make_tx(RELAYER_KEY, self.app.genesis.evm_chain_id, self.evm.app_nonce(RELAYER), [call]).encode()

    def packets_in(self, block: ProducedBlock) -> int:
        return sum(1 for r in block.results for e in r.events if e.type == "recv_packet")
