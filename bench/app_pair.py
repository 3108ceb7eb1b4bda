"""An EVM node and a Corda node run in process, as ``kakehashi node start`` runs them, joined by
clients, a connection and a ``dvp`` channel.

Why in process: a per-step CPU budget needs every step timed on its own, which separate
processes over gRPC cannot give; and the steps must be the real ones. So each node is its
home from ``node init``, its app from the kind's ``open_app`` over its SQLite
``NodeDatabase``, and the node's own :class:`NodeRuntime` (``submit`` = admission,
``produce_once`` = produce, persist, commit), driven on a simulated clock that moves one
second per block. Only the public app surface is used (check_tx through ``submit``,
produce_block / commit_block through ``produce_once``, header, query_ibc, query_ibc_multi,
query_app), so the bench follows the node internals as they change.

The handshake is done as a relayer does it, with the relayer's own chain codecs signing
every tx (one UpdateClient in front of each handshake message) and every proof taken from
the source node at the height the destination's client was just updated to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from bench.meter import Meter
from chains.ibc import events as ev
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.context import to_proto
from chains.ibc.host import paths
from chains.node.app import ProducedBlock, TxOutcome
from chains.node.config import load_node_config
from chains.node.db import NodeDatabase
from chains.node.kinds import chain_kind
from chains.node.main import init_home
from chains.node.runtime import NodeRuntime, RuntimeConfig
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from kakehashi.qbft.v1 import lightclient_pb2 as qbft_pb
from lightclients.corda.client import IBC_PREFIX, header_message
from lightclients.crypto import sha256
from lightclients.interface import Height
from lightclients.qbft.client import encode_header_message
from relayer.codecs import CordaCodec, EvmCodec

NS = 1_000_000_000
START_NS = 1_700_000_000 * NS
DVP = dvp_app.PORT_ID


class SimClock:
    """Both chains' wall clock: one second per block of either chain, so the two chains'
    times stay within the clients' allowed drift and EVM header seconds always advance."""

    def __init__(self, start_ns: int) -> None:
        self.now_ns = start_ns

    def tick(self) -> int:
        self.now_ns += NS
        return self.now_ns


class BenchNode:
    """One node: its home, SQLite database, app and block loop; ``exec_step`` names the meter
    step the app's ``produce_block`` is charged to for the next block."""

    def __init__(self, root: Path, kind: str, chain_id: str, clock: SimClock, meter: Meter) -> None:
        self.kind = kind
        self.home = root / chain_id
        init_home(self.home, kind, chain_id, 4, block_period_s=1.0, genesis_time_ns=clock.now_ns)
        config = load_node_config(self.home)
        config.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db = NodeDatabase(config.db_path)
        self.app: Any = chain_kind(kind).open_app(config, self.db)
        self.clock = clock
        self.meter = meter
        self.exec_step = f"{kind}.exec"
        self.runtime = NodeRuntime(self.app, self.db, RuntimeConfig(max_block_txs=1_000_000, max_mempool=1_000_000),
                                   clock=lambda: clock.now_ns)
        produce = self.app.produce_block

        def produce_block(txs: Sequence[bytes], time_ns: int) -> ProducedBlock:
            with meter.step(self.exec_step):
                block: ProducedBlock = produce(txs, time_ns)
            return block

        # The node's block loop calls the app through this attribute; charging it to a step
        # splits execution from what the loop does around it (block encoding, SQLite commit).
        self.app.produce_block = produce_block  # type: ignore[method-assign]

    @property
    def latest(self) -> int:
        return int(self.app.latest_height())

    def height(self, h: int | None = None) -> Height:
        return Height(int(self.app.revision_number), self.latest if h is None else h)

    def block(self, exec_step: str, persist_step: str) -> ProducedBlock:
        """Produce, persist and commit one block of the mempool; every tx must succeed."""
        self.clock.tick()
        self.exec_step = exec_step
        with self.meter.step(persist_step):
            block = self.runtime.produce_once()
        failed = [r.reason for r in block.results if not r.ok]
        if failed:
            raise RuntimeError(f"{self.kind} block {block.height}: {len(failed)} txs failed, first: {failed[0]}")
        return block

    def client_message(self, trusted: int, target: int) -> bytes:
        """The relayer's UpdateClient payload for ``target`` built on ``trusted``."""
        return client_message(self.kind, self.app.header(target).client_header, trusted,
                              int(self.app.revision_number))

    def close(self) -> None:
        self.db.close()


def client_message(kind: str, client_header: bytes, trusted: int, revision: int) -> bytes:
    """What the relayer's codec makes of a node's light-client header: the trusted height set,
    wrapped as the client's update message (relayer.codecs.evm / corda ``build_header``)."""
    if kind == "evm":
        header = qbft_pb.Header.FromString(client_header)
        header.trusted_height.CopyFrom(client_pb2.Height(revision_number=revision, revision_height=trusted))
        return encode_header_message(header)
    cp = lc.Header.FromString(client_header)
    cp.trusted_height = trusted
    return header_message(cp)


def event_attr(outcome: TxOutcome, type_: str, key: str) -> str:
    for e in outcome.events:
        if e.type == type_:
            for k, v in e.attributes:
                if k == key:
                    return v.decode()
    raise RuntimeError(f"no {type_} event with {key!r} in the tx's events")


@dataclass
class DvpPath:
    evm_client: str  # on the EVM chain, of the Corda chain
    corda_client: str  # on the Corda chain, of the EVM chain
    evm_connection: str
    corda_connection: str
    evm_channel: str
    corda_channel: str


class AppPair:
    """The two nodes, the relayer's codecs, and what each chain's client of the other trusts."""

    def __init__(self, root: Path, meter: Meter) -> None:
        self.meter = meter
        self.clock = SimClock(START_NS)
        self.evm = BenchNode(root, "evm", "evm-budget", self.clock, meter)
        self.corda = BenchNode(root, "corda", "corda-budget", self.clock, meter)
        self.evm.block("setup", "setup")  # a client of the EVM chain starts at a sealed height
        self.evm_info = self.evm.app.query_app("chain_info", {}, self.evm.latest)
        self.corda_info = self.corda.app.query_app("chain_info", {}, self.corda.latest)
        self.evm_codec = EvmCodec(sha256(b"bench-budget relayer evm"), int(self.evm_info["evm_chain_id"]))
        self.evm_codec.nonce = 0  # a fresh account
        self.notary = bytes.fromhex(self.corda_info["notary_identity"])
        self.corda_codec = CordaCodec(sha256(b"bench-budget relayer corda"), self.notary)
        self.trusted: dict[str, int] = {}  # node kind -> height of the other chain its client trusts
        self.client: dict[str, str] = {}

    def other(self, node: BenchNode) -> BenchNode:
        return self.corda if node is self.evm else self.evm

    def send(self, node: BenchNode, msgs: Sequence[Message]) -> TxOutcome:
        """One relayer tx in a block of its own (handshake and setup)."""
        codec: EvmCodec | CordaCodec = self.evm_codec if node is self.evm else self.corda_codec
        node.runtime.submit(codec.encode_tx(msgs, None))
        block = node.block("setup", "setup")
        (outcome,) = block.results
        return outcome

    def update_msg(self, dst: BenchNode, target: int | None = None) -> tuple[client_pb2.MsgUpdateClient, int]:
        src = self.other(dst)
        h = src.latest if target is None else target
        header = src.client_message(self.trusted[dst.kind], h)
        return client_pb2.MsgUpdateClient(client_id=self.client[dst.kind], client_message=header), h

    def proof(self, src: BenchNode, path: bytes, height: int) -> bytes:
        return bytes(src.app.query_ibc(path.decode(), height, True).proof)

    def value(self, src: BenchNode, path: bytes, height: int | None = None) -> bytes:
        got = src.app.query_ibc(path.decode(), src.latest if height is None else height, False).value
        if got is None:
            raise RuntimeError(f"{src.kind} has nothing at {path.decode()}")
        return bytes(got)

    def handshake(self, dst: BenchNode, msg_for: Any) -> TxOutcome:
        """[UpdateClient to the source's head, msg_for(proof height)] as one tx on dst."""
        update, h = self.update_msg(dst)
        outcome = self.send(dst, [update, msg_for(h)])
        self.trusted[dst.kind] = h
        return outcome

    def open(self) -> DvpPath:
        for dst in (self.evm, self.corda):
            src = self.other(dst)
            made = src.app.query_app("client_state", {}, src.latest)
            out = self.send(dst, [client_pb2.MsgCreateClient(
                client_type=made["client_type"], client_state=bytes.fromhex(made["client_state"]),
                consensus_state=bytes.fromhex(made["consensus_state"]))])
            self.client[dst.kind] = event_attr(out, ev.CREATE_CLIENT, "client_id")
            self.trusted[dst.kind] = int(made["height"])
        evm, corda = self.evm, self.corda
        out = self.send(evm, [cpb.MsgConnectionOpenInit(
            client_id=self.client["evm"],
            counterparty=cpb.Counterparty(client_id=self.client["corda"], prefix=cpb.MerklePrefix(key_prefix=IBC_PREFIX)))])
        conn_evm = event_attr(out, ev.CONNECTION_OPEN_INIT, "connection_id")
        end = cpb.ConnectionEnd.FromString(self.value(evm, paths.connection(conn_evm)))
        evm_prefix = bytes.fromhex(str(self.evm_info["ibc_handler"]).removeprefix("0x"))
        out = self.handshake(corda, lambda h: cpb.MsgConnectionOpenTry(
            client_id=self.client["corda"],
            counterparty=cpb.Counterparty(client_id=self.client["evm"], connection_id=conn_evm,
                                          prefix=cpb.MerklePrefix(key_prefix=evm_prefix)),
            counterparty_versions=list(end.versions),
            proof_init=self.proof(evm, paths.connection(conn_evm), h), proof_height=to_proto(evm.height(h))))
        conn_corda = event_attr(out, ev.CONNECTION_OPEN_TRY, "connection_id")
        end = cpb.ConnectionEnd.FromString(self.value(corda, paths.connection(conn_corda)))
        self.handshake(evm, lambda h: cpb.MsgConnectionOpenAck(
            connection_id=conn_evm, counterparty_connection_id=conn_corda, version=end.versions[0],
            proof_try=self.proof(corda, paths.connection(conn_corda), h), proof_height=to_proto(corda.height(h))))
        self.handshake(corda, lambda h: cpb.MsgConnectionOpenConfirm(
            connection_id=conn_corda, proof_ack=self.proof(evm, paths.connection(conn_evm), h),
            proof_height=to_proto(evm.height(h))))
        # The dvp channel opens from the Corda end, where packets are sent.
        out = self.send(corda, [chpb.MsgChannelOpenInit(port_id=DVP, channel=chpb.Channel(
            state=chpb.STATE_INIT, ordering=chpb.ORDER_UNORDERED, counterparty=chpb.ChannelCounterparty(port_id=DVP),
            connection_hops=[conn_corda], version=dvp_app.VERSION))])
        chan_corda = event_attr(out, ev.CHANNEL_OPEN_INIT, "channel_id")
        out = self.handshake(evm, lambda h: chpb.MsgChannelOpenTry(
            port_id=DVP, channel=chpb.Channel(state=chpb.STATE_TRYOPEN, ordering=chpb.ORDER_UNORDERED,
                                              counterparty=chpb.ChannelCounterparty(port_id=DVP, channel_id=chan_corda),
                                              connection_hops=[conn_evm], version=""),
            counterparty_version=dvp_app.VERSION,
            proof_init=self.proof(corda, paths.channel(DVP, chan_corda), h), proof_height=to_proto(corda.height(h))))
        chan_evm = event_attr(out, ev.CHANNEL_OPEN_TRY, "channel_id")
        self.handshake(corda, lambda h: chpb.MsgChannelOpenAck(
            port_id=DVP, channel_id=chan_corda, counterparty_channel_id=chan_evm, counterparty_version=dvp_app.VERSION,
            proof_try=self.proof(evm, paths.channel(DVP, chan_evm), h), proof_height=to_proto(evm.height(h))))
        self.handshake(evm, lambda h: chpb.MsgChannelOpenConfirm(
            port_id=DVP, channel_id=chan_evm, proof_ack=self.proof(corda, paths.channel(DVP, chan_corda), h),
            proof_height=to_proto(corda.height(h))))
        for node, port_chan in ((corda, (DVP, chan_corda)), (evm, (DVP, chan_evm))):
            ch = chpb.Channel.FromString(self.value(node, paths.channel(*port_chan)))
            if ch.state != chpb.STATE_OPEN:
                raise RuntimeError(f"dvp channel on {node.kind} is not open after the handshake")
        return DvpPath(self.client["evm"], self.client["corda"], conn_evm, conn_corda, chan_evm, chan_corda)

    def close(self) -> None:
        self.evm.close()
        self.corda.close()
