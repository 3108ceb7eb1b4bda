"""Per-trade CPU budget of a DvP settlement: each step's measured cost beside its crypto floor.

What runs (all in one process, so every step is timed on its own; see bench/app_pair.py): a
real EVM node and a real Corda node (their apps over SQLite, driven by the node's own block
loop), joined by real clients, a connection and a ``dvp`` channel, already holding
``history`` settled trades. Each round settles ``trades`` more, as the system does:

1. the settlement client reads what its pre-check reads and signs the seller's EVM lock
   (``make_tx``) and, once that committed, the buyer's Corda lock (``lock_transaction``);
2. the EVM node admits (``check_tx``) and executes the locks, one block; the Corda node
   admits and notarises the Corda locks, ``corda_block`` per block;
3. the relayer reads the send_packet events from the Corda blocks, asks the Corda node for
   the commitments, the header and ONE multiproof per tx, and signs one EVM tx per
   ``recv_tx`` packets (an UpdateClient of the Corda client leading the first);
4. the EVM node admits and executes the recv tx(s) in one block;
5. the relayer reads the acks from that block, asks the EVM node for its header and one ack
   multiproof per tx, looks up each lock (``dvp_exits``, the relayer's own code) and signs
   Corda txs of ``ack_tx`` acks with their Settle exits (the qbft update in the first);
6. the Corda node admits and executes those in one block; the client reads the final
   status. Every trade must end ``settled`` on Corda and ``delivered`` on the EVM chain.

Timing: process CPU (``time.process_time``) charged to the step running, exclusively (the
node's answers inside a relayer step are the node's). ``timed`` rounds run with the crypto
libraries untouched; one more round runs with their entry points counted
(bench/crypto_floor.py), which gives each step's floor: its hashes, signatures and
recoveries priced at the bare library call measured in this run. Block execution is split
into the per-trade part and the per-block part (seal / checkpoint signing, header, empty
commit) by empty blocks produced in the same rounds. Not in the budget: gRPC framing and
transport, asyncio scheduling and the block streams' fan-out (what `bench dvp`'s
per-process CPU adds on top), the client's SQLite record and MQTT events.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.app_pair import DVP, NS, AppPair, BenchNode, DvpPath, client_message
from bench.crypto_floor import (
    NOT_FLOOR,
    BareCosts,
    CryptoCounter,
    Tally,
    describe,
    floor_us,
    measure_bare,
)
from bench.meter import Meter
from chains.corda.cash import CASH, cash_state
from chains.corda.dvp import lock_transaction
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import Message as EvmCall
from chains.evm import make_tx
from chains.ibc import events as ev
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.context import to_proto
from chains.ibc.host import paths
from chains.node.answers import encode_answer
from chains.node.apps.corda import load_genesis
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from kakehashi.node.v1 import node_pb2
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key, sha256
from relayer.codecs.corda import dvp_exits

AMOUNT = 1_000  # SC per trade; each trade also moves 1 ST


@dataclass(frozen=True)
class Sizes:
    trades: int  # per round; the EVM locks of a round are one block
    corda_block: int  # Corda lock txs per block
    recv_tx: int  # recvs per relayer tx on the EVM chain (one multiproof each)
    ack_tx: int  # acks per relayer tx on the Corda chain (one multiproof each)
    history: int  # rounds settled before measuring
    timed: int  # rounds timed with the crypto libraries untouched
    empty: int  # empty blocks per chain per round (the per-block baseline)
    bare_seconds: float  # per primitive, for its bare cost


QUICK = Sizes(trades=20, corda_block=10, recv_tx=20, ack_tx=10, history=1, timed=1, empty=2, bare_seconds=0.01)
FULL = Sizes(trades=250, corda_block=50, recv_tx=250, ack_tx=50, history=12, timed=3, empty=3, bare_seconds=0.1)


def _groups(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


class _NodeReads:
    """The NodeClient surface ``dvp_exits`` uses, answered by the Corda app in process: the
    answer is the node's work (its step), decoding it the relayer's."""

    def __init__(self, node: BenchNode, meter: Meter, step: str) -> None:
        self.node, self.meter, self.step = node, meter, step

    async def query_app(self, query: str, height: int = 0, **args: Any) -> Any:
        with self.meter.step(self.step):
            text = encode_answer(self.node.app.query_app(query, args, height or self.node.latest))
        return json.loads(text)


class Settlement:
    """The chains, the parties' keys and the path; ``round`` settles one batch of trades."""

    def __init__(self, root: Path, sizes: Sizes, meter: Meter) -> None:
        self.sizes, self.meter = sizes, meter
        self.pair = AppPair(root, meter)
        self.path: DvpPath = self.pair.open()
        self.evm, self.corda = self.pair.evm, self.pair.corda
        keys = self.evm.home / "keys"
        self.seller_key = bytes.fromhex((keys / "alice.key").read_text().strip())
        self.seller_evm = eth_address(secp256k1_public_key(self.seller_key))
        self.buyer_evm = eth_address(secp256k1_public_key(bytes.fromhex((keys / "bob.key").read_text().strip())))
        genesis = load_genesis(self.corda.home)
        self.issuer_seed = genesis.issuer_seed
        self.issuer = genesis.issuer
        self.buyer_seed = dict(genesis.holder_seeds)["firm-a"]
        self.buyer = ed25519_public_key(self.buyer_seed)
        self.seller_corda = genesis.holder("firm-b")
        info = self.pair.evm_info
        self.token = bytes.fromhex(str(info["security_token"]).removeprefix("0x"))
        self.escrow = bytes.fromhex(str(info["dvp_escrow"]).removeprefix("0x"))
        self.evm_chain_id = int(info["evm_chain_id"])
        self.seller_nonce = int(self.evm.app.query_app("account", {"address": "0x" + self.seller_evm.hex()},
                                                      self.evm.latest)["nonce"])
        holders = self.corda.app.query_app("holders", {}, self.corda.latest)
        adm = holders[self.issuer.hex()]["admission"]
        self.admission = pb.StateRef(txid=bytes.fromhex(adm["txid"]), index=int(adm["index"]))
        self.loop = asyncio.new_event_loop()
        self.settled = 0
        self.salt = 0

    def close(self) -> None:
        self.loop.close()
        self.pair.close()

    def _salt(self) -> bytes:
        self.salt += 1
        return sha256(b"bench-budget salt" + self.salt.to_bytes(8, "big"))

    # --- the settlement client's side ---------------------------------------------------

    def _coins(self, n: int) -> list[tuple[pb.StateRef, pb.Cash]]:
        """Setup, not a trade step: the issuer pays the buyer one coin per trade."""
        outputs = tuple(cash_state(self.issuer, self.buyer, AMOUNT, self.pair.notary) for _ in range(n))
        wtx = WireTransaction(inputs=(), outputs=outputs,
                              commands=(pb.Command(contract=CASH, name="Issue", signers=[self.issuer]),),
                              notary=self.pair.notary, privacy_salt=self._salt(), references=(self.admission,))
        self.corda.runtime.submit(SignedTransaction(wtx).sign(self.issuer_seed).encode())
        self.corda.block("setup", "setup")
        cash = pb.Cash(issuer=self.issuer, owner=self.buyer, amount=AMOUNT)
        return [(pb.StateRef(txid=wtx.txid, index=i), cash) for i in range(n)]

    def _terms(self, trade_id: str) -> dvp_pb2.Terms:
        return dvp_pb2.Terms(trade_id=trade_id, security_token=self.token, st_quantity=1, cash_issuer=self.issuer,
                             sc_amount=AMOUNT, seller_evm=self.seller_evm, buyer_evm=self.buyer_evm,
                             seller_corda=self.seller_corda, buyer_corda=self.buyer,
                             deadline_ns=self.pair.clock.now_ns + 24 * 3600 * NS)

    def _ask(self, node: BenchNode, query: str, **args: Any) -> Any:
        """One of the client's reads: the node's answer and the client's decode of it."""
        with self.meter.step(f"{node.kind}.client_reads"):
            return json.loads(encode_answer(node.app.query_app(query, args, node.latest)))

    def _read_trade(self, trade_id: str) -> tuple[str, str]:
        escrow = self._ask(self.evm, "dvp_escrow", trade_id=trade_id)
        lock = self._ask(self.corda, "dvp_lock", trade_id=trade_id)
        return str(escrow["status"]), str(lock["status"])

    def _path_reads(self) -> None:
        """The pre-check's per-head reads of the path: both channel and connection ends, both
        clients' states (a client shares them across the trades of a head)."""
        p, evm, corda = self.path, self.evm, self.corda
        for node, raw in ((corda, paths.channel(DVP, p.corda_channel)), (evm, paths.channel(DVP, p.evm_channel)),
                          (corda, paths.connection(p.corda_connection)), (evm, paths.connection(p.evm_connection)),
                          (evm, paths.client_state(p.evm_client)), (corda, paths.client_state(p.corda_client))):
            with self.meter.step(f"{node.kind}.client_reads"):
                node.app.query_ibc(raw.decode(), node.latest, False)

    def _evm_head_reads(self) -> None:
        for holder in (self.seller_evm, self.buyer_evm):
            self._ask(self.evm, "security_token", holder="0x" + holder.hex())

    def _corda_head_reads(self) -> None:
        self._ask(self.corda, "holders")
        self._ask(self.corda, "cash_states", owner=self.buyer.hex())
        self._ask(self.corda, "balances", owner=self.buyer.hex())

    # --- one round ----------------------------------------------------------------------

    def round(self, tag: str) -> None:
        s, m, evm, corda = self.sizes, self.meter, self.evm, self.corda
        coins = self._coins(s.trades)
        terms = [self._terms(f"{tag}-{i}") for i in range(s.trades)]
        self._path_reads()
        self._evm_head_reads()
        for t in terms:
            if self._read_trade(t.trade_id) != ("none", "none"):
                raise RuntimeError(f"trade id {t.trade_id} is already used")
        with m.step("client.evm_sign"):
            evm_txs = []
            for t in terms:
                call = EvmCall(self.escrow, "lock", (dvp_app.encode_terms(t), self.path.evm_channel.encode()))
                evm_txs.append(make_tx(self.seller_key, self.evm_chain_id, self.seller_nonce, [call]).encode())
                self.seller_nonce += 1
        with m.step("evm.admit_lock"):
            for tx in evm_txs:
                evm.runtime.submit(tx)
        evm.block("evm.exec_lock", "evm.persist")
        with m.step("client.corda_sign"):
            corda_txs = [lock_transaction(t, self.path.corda_channel, int(t.deadline_ns) - 60 * NS, self.buyer_seed,
                                          [coin], self.admission, self.pair.notary, self._salt()).encode()
                         for t, coin in zip(terms, coins, strict=True)]
        lock_heights = []
        for group in _groups(corda_txs, s.corda_block):
            self._corda_head_reads()
            with m.step("corda.admit_lock"):
                for tx in group:
                    corda.runtime.submit(tx)
            lock_heights.append(corda.block("corda.exec_lock", "corda.persist").height)
        recv_height = self._recv_pass(lock_heights)
        self._ack_pass(recv_height)
        for _ in range(s.empty):
            evm.block("evm.exec_empty", "evm.persist_empty")
            corda.block("corda.exec_empty", "corda.persist_empty")
        finals = [self._read_trade(t.trade_id) for t in terms]
        bad = [(t.trade_id, f) for t, f in zip(terms, finals, strict=True) if f != ("delivered", "settled")]
        if bad:
            raise RuntimeError(f"{len(bad)} trades did not settle, first {bad[0]}")
        self.settled += len(terms)

    def _stream_events(self, node: BenchNode, height: int, step: str, type_: str) -> Iterable[ev.Event]:
        """A block as the relayer's block stream delivers it: read by the node, parsed here."""
        with self.meter.step(step):
            raw = node.db.get_block(height)
        if raw is None:
            raise RuntimeError(f"{node.kind} has no block {height}")
        for result in node_pb2.Block.FromString(raw).results:
            for e in result.events:
                if e.type == type_:
                    yield ev.Event(e.type, tuple((a.key, bytes(a.value)) for a in e.attributes))

    def _recv_pass(self, lock_heights: list[int]) -> int:
        s, m, evm, corda, p = self.sizes, self.meter, self.evm, self.corda, self.path
        node = "corda.serve_recv"
        with m.step("relayer.recv"):
            packets: list[chpb.Packet] = []
            for h in lock_heights:
                for e in self._stream_events(corda, h, node, ev.SEND_PACKET):
                    packet = e.packet()
                    if packet is not None and packet.source_port == DVP:
                        packets.append(packet)
            hc = corda.latest
            with m.step(node):
                pending = corda.app.packet_commitment_sequences(DVP, p.corda_channel, hc)
            with m.step("evm.serve_relayer"):
                todo = set(evm.app.unreceived_packets(DVP, p.evm_channel, pending, evm.latest))
            packets = [pk for pk in packets if pk.sequence in todo]
            with m.step(node):
                raw_header = corda.app.header(hc).client_header
            update = client_pb2.MsgUpdateClient(client_id=p.evm_client, client_message=client_message(
                "corda", raw_header, self.pair.trusted["evm"], int(corda.app.revision_number)))
            proof_height = to_proto(corda.height(hc))
            txs = []
            for i, group in enumerate(_groups(packets, s.recv_tx)):
                keys = [paths.packet_commitment(DVP, p.corda_channel, pk.sequence).decode() for pk in group]
                with m.step(node):
                    values, multi = corda.app.query_ibc_multi(keys, hc)
                if any(v is None for v in values):
                    raise RuntimeError("a packet commitment is missing at the proof height")
                msgs: list[Any] = [chpb.MsgRecvPacket(packet=pk, proof_commitment=multi if j == 0 else b"",
                                                      proof_height=proof_height, signer="relayer")
                                   for j, pk in enumerate(group)]
                if i == 0:
                    msgs.insert(0, update)
                txs.append(self.pair.evm_codec.encode_tx(msgs, None))
        if len(packets) != self.sizes.trades:
            raise RuntimeError(f"relayer found {len(packets)} packets to relay, expected {self.sizes.trades}")
        with m.step("evm.admit_recv"):
            for tx in txs:
                evm.runtime.submit(tx)
        height = evm.block("evm.exec_recv", "evm.persist").height
        self.pair.trusted["evm"] = hc
        return height

    def _ack_pass(self, recv_height: int) -> None:
        s, m, evm, corda, p = self.sizes, self.meter, self.evm, self.corda, self.path
        node = "evm.serve_relayer"
        reads = _NodeReads(corda, m, "corda.serve_ack")
        with m.step("relayer.ack"):
            acked: list[tuple[chpb.Packet, bytes]] = []
            for e in self._stream_events(evm, recv_height, node, ev.WRITE_ACKNOWLEDGEMENT):
                packet, ack = e.packet(), e.get("ack")
                if packet is None or ack is None or not dvp_app.ack_succeeded(ack):
                    raise RuntimeError(f"recv wrote no success ack: {ack!r}")
                acked.append((packet, ack))
            with m.step("corda.serve_ack"):
                todo = set(corda.app.unreceived_acks(DVP, p.corda_channel, [pk.sequence for pk, _ in acked],
                                                     corda.latest))
            acked = [(pk, a) for pk, a in acked if pk.sequence in todo]
            he = evm.latest
            with m.step(node):
                raw_header = evm.app.header(he).client_header
            update = client_pb2.MsgUpdateClient(client_id=p.corda_client, client_message=client_message(
                "evm", raw_header, self.pair.trusted["corda"], int(evm.app.revision_number)))
            proof_height = to_proto(evm.height(he))
            txs = []
            for i, group in enumerate(_groups(acked, s.ack_tx)):
                keys = [paths.packet_ack(DVP, p.evm_channel, pk.sequence).decode() for pk, _ in group]
                with m.step(node):
                    values, multi = evm.app.query_ibc_multi(keys, he)
                if any(v is None for v in values):
                    raise RuntimeError("an ack commitment is missing at the proof height")
                msgs: list[Any] = [chpb.MsgAcknowledgement(packet=pk, acknowledgement=ack,
                                                           proof_acked=multi if j == 0 else b"",
                                                           proof_height=proof_height, signer="relayer")
                                   for j, (pk, ack) in enumerate(group)]
                if i == 0:
                    msgs.insert(0, update)
                exits = self.loop.run_until_complete(dvp_exits(reads, msgs, self.pair.notary))  # type: ignore[arg-type]
                if exits is None or exits.dropped:
                    raise RuntimeError("the relayer dropped an exit its lock should have allowed")
                txs.append(self.pair.corda_codec.encode_tx(msgs, exits))
        if len(acked) != s.trades:
            raise RuntimeError(f"relayer found {len(acked)} acks to relay, expected {s.trades}")
        with m.step("corda.admit_ack"):
            for tx in txs:
                corda.runtime.submit(tx)
        corda.block("corda.exec_ack", "corda.persist")
        self.pair.trusted["corda"] = he

    def balances(self) -> tuple[int, int]:
        """(the EVM buyer's ST, the Corda seller's SC): what settlement must have moved."""
        st = self._ask(self.evm, "security_token", holder="0x" + self.buyer_evm.hex())["balance"]
        sc = self._ask(self.corda, "balances", owner=self.seller_corda.hex())["by_issuer"].get(self.issuer.hex(), 0)
        return int(st), int(sc)


# --- the table ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    step: str
    where: str
    charged: tuple[str, ...]  # meter steps
    empty: str = ""  # chain whose empty-block cost is taken out, per block of this step
    blocks: int = 0  # such blocks per round


def _rows(s: Sizes) -> list[Row]:
    corda_lock_blocks = math.ceil(s.trades / s.corda_block)
    return [
        Row("client signs the EVM lock tx (seller's ST into the escrow)", "dvp client", ("client.evm_sign",)),
        Row("client signs the Corda lock tx (buyer's Cash into a DvpLock; sends the packet)", "dvp client",
            ("client.corda_sign",)),
        Row("EVM answers the client's reads (2 dvp_escrow; per head: ST holdings, path)", "EVM node",
            ("evm.client_reads",)),
        Row("Corda answers the client's reads (2 dvp_lock; per block: holders, cash_states, balances; path)",
            "Corda node", ("corda.client_reads",)),
        Row("EVM admits the lock (check_tx: decode, recover sender)", "EVM node", ("evm.admit_lock",)),
        Row("EVM executes the lock", "EVM node", ("evm.exec_lock",), "evm", 1),
        Row("Corda admits the lock (check_tx: signatures, txid)", "Corda node", ("corda.admit_lock",)),
        Row("Corda notarises the lock (contracts, uniqueness, IBC send into the SMT)", "Corda node",
            ("corda.exec_lock",), "corda", corda_lock_blocks),
        Row("Corda serves the recv pass (block stream, commitments, header, multiproof)", "Corda node",
            ("corda.serve_recv",)),
        Row("relayer builds and signs the recv tx", "relayer", ("relayer.recv",)),
        Row("EVM admits the recv tx", "EVM node", ("evm.admit_recv",)),
        Row("EVM executes the recv (Corda client update, multiproof, delivery, ack)", "EVM node",
            ("evm.exec_recv",), "evm", 1),
        Row("EVM serves the relayer (unreceived, block stream, header, ack multiproofs)", "EVM node",
            ("evm.serve_relayer",)),
        Row("Corda serves the exit look-ups (unreceived acks, holders, dvp_lock)", "Corda node",
            ("corda.serve_ack",)),
        Row("relayer builds and signs the ack txs with their Settle exits", "relayer", ("relayer.ack",)),
        Row("Corda admits the ack txs", "Corda node", ("corda.admit_ack",)),
        Row("Corda executes the acks (qbft update share, MPT multiproof, DvpLock, Cash to seller)", "Corda node",
            ("corda.exec_ack",), "corda", 1),
        Row("EVM per-block work (seal signatures, header, commit), shared", "EVM node", ()),
        Row("Corda per-block work (checkpoint signatures, commit), shared", "Corda node", ()),
        Row("EVM block encoding and SQLite commit", "EVM node", ("evm.persist",)),
        Row("Corda block encoding and SQLite commit", "Corda node", ("corda.persist",)),
    ]


def _entry(row: Row, measured: float, wall: float, tally: Tally, costs: BareCosts) -> dict[str, Any]:
    floor = floor_us(tally, costs)
    calls = {k: round(v, 4) for k, v in sorted(tally.calls.items()) if abs(v) > 1e-9}
    return {
        "step": row.step,
        "where": row.where,
        "measured_us": round(measured, 1),
        "floor_us": round(floor, 1),
        "floor_is": describe(dict(tally.calls)),
        "overhead": round(measured / floor, 1) if floor >= 0.05 else None,
        "wall_us": round(wall, 1),
        "calls_per_trade": calls,
        "keygen_us": round(sum(costs.cost_us(n, tally.calls[n], 0) for n in NOT_FLOOR), 1),
    }


def _table(s: Sizes, cpu: dict[str, float], wall: dict[str, float], timed_trades: int, tally: dict[str, Tally],
           counted_trades: int, costs: BareCosts) -> dict[str, Any]:
    rounds_timed = timed_trades / s.trades
    empty_cpu = {c: cpu.get(f"{c}.exec_empty", 0.0) / (s.empty * rounds_timed) for c in ("evm", "corda")}
    empty_wall = {c: wall.get(f"{c}.exec_empty", 0.0) / (s.empty * rounds_timed) for c in ("evm", "corda")}
    empty_tally = {c: tally.get(f"{c}.exec_empty", Tally()).scale(1 / s.empty) for c in ("evm", "corda")}
    rows = _rows(s)
    block_share = {c: sum(r.blocks for r in rows if r.empty == c) for c in ("evm", "corda")}
    steps = []
    for row in rows:
        if not row.charged:  # the shared per-block rows
            chain = "evm" if row.where.startswith("EVM") else "corda"
            per_round = block_share[chain]
            steps.append(_entry(row, empty_cpu[chain] * per_round / s.trades * 1e6,
                                empty_wall[chain] * per_round / s.trades * 1e6,
                                empty_tally[chain].scale(per_round / s.trades), costs))
            continue
        c = sum(cpu.get(k, 0.0) for k in row.charged) * 1e6 / timed_trades
        w = sum(wall.get(k, 0.0) for k in row.charged) * 1e6 / timed_trades
        t = Tally()
        for k in row.charged:
            t = t + tally.get(k, Tally())
        if row.empty:
            c -= empty_cpu[row.empty] * row.blocks / s.trades * 1e6
            w -= empty_wall[row.empty] * row.blocks / s.trades * 1e6
            t = t - empty_tally[row.empty].scale(row.blocks)
        steps.append(_entry(row, c, w, t.scale(1 / counted_trades), costs))
    measured = sum(r["measured_us"] for r in steps)
    floor = sum(r["floor_us"] for r in steps)
    by_process: dict[str, float] = {}
    for r in steps:
        by_process[r["where"]] = round(by_process.get(r["where"], 0.0) + r["measured_us"], 1)
    charged = {k for r in rows for k in r.charged} | {"evm.exec_empty", "corda.exec_empty"}
    uncharged = {k: round(v * 1e6 / timed_trades, 2) for k, v in cpu.items()
                 if k not in charged and k not in ("setup", "evm.persist_empty", "corda.persist_empty")}
    if uncharged:
        raise RuntimeError(f"meter steps outside the table: {uncharged}")
    return {
        "steps": steps,
        "total": {"measured_us": round(measured, 1), "floor_us": round(floor, 1),
                  "overhead": round(measured / floor, 1) if floor else None},
        "by_process_us": by_process,
    }


def run(quick: bool) -> dict[str, Any]:
    s = QUICK if quick else FULL
    counter = CryptoCounter()
    meter = Meter(counter)
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp:
        chains = Settlement(Path(tmp), s, meter)
        try:
            st0, sc0 = chains.balances()
            for r in range(s.history):
                chains.round(f"H{r}")
            history = chains.settled
            meter.enabled = True
            for r in range(s.timed):
                chains.round(f"T{r}")
            cpu, wall = dict(meter.cpu), dict(meter.wall)
            meter.reset()
            with counter.counting():
                chains.round("C")
            tally = dict(meter.tally)
            counted_cpu = sum(v for k, v in meter.cpu.items() if k != "setup")
            meter.enabled = False
            st1, sc1 = chains.balances()
            if (st1 - st0, sc1 - sc0) != (chains.settled, chains.settled * AMOUNT):
                raise RuntimeError(f"balances moved by ({st1 - st0} ST, {sc1 - sc0} SC) for {chains.settled} trades")
            heights = {"evm": chains.evm.latest, "corda": chains.corda.latest}
        finally:
            chains.close()
    costs = measure_bare(s.bare_seconds)
    timed_trades = s.timed * s.trades
    table = _table(s, cpu, wall, timed_trades, tally, s.trades, costs)
    return {
        **table,
        "sizes": {"trades_per_round": s.trades, "evm_locks_per_block": s.trades, "corda_locks_per_block": s.corda_block,
                  "recvs_per_tx": s.recv_tx, "acks_per_tx": s.ack_tx, "empty_blocks_per_round": s.empty},
        "history_trades": history,
        "timed_trades": timed_trades,
        "counted_trades": s.trades,
        "settled_total": chains.settled,
        "heights": heights,
        "counted_round_us_per_trade": round(counted_cpu * 1e6 / s.trades, 1),
        "bare_us": costs.to_json(),
        "clock": "process CPU (time.process_time); wall_us per step alongside",
    }
