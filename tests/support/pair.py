"""Two test hosts wired back to back, with a relayer's worth of helpers.

The relaying helpers do what a relayer does: update the destination's client of the source
to the source's latest block, then submit the message with proofs made at that height from
the source's real store. ``kind`` names the pair of hosts, and with them the clients each
runs of the other:

- ``testroot``: two test hosts and the test-only client (unit tests, benchmarks, relayer);
- ``evm-corda``: A is the EVM chain holding an 11-corda client of B, B the Corda chain
  holding a 10-qbft client of A -- both directions real; ``corda-evm`` swaps the roles, so
  that requirements the suite checks in one direction (A sends, B receives) cover each
  client in each role;
- ``evm-evm`` and ``corda-corda``: the same real chain on both sides.

The conformance suite runs over ``REAL_KINDS`` only: the test-only client stays in unit tests.
"""

from __future__ import annotations

from typing import cast

from chains.ibc.apps.transfer import VERSION as TRANSFER_VERSION
from chains.ibc.context import to_proto
from chains.ibc.events import Event
from chains.ibc.host import paths
from chains.ibc.host.store import encode_sequence
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from lightclients.interface import Height
from tests.support import mockapp
from tests.support.basehost import ChainHost
from tests.support.cordahost import CordaHost
from tests.support.evmhost import EvmHost
from tests.support.host import START_NS, Host

TESTROOT = "testroot"
# "-proxy": both chains track each other through the proxy client (tests/support/proxyhost.py)
PROXY_KINDS = ("evm-corda-proxy",)
REAL_KINDS = ("evm-corda", "corda-evm", "evm-evm", "corda-corda", *PROXY_KINDS)
CLIENT_KINDS = (TESTROOT, *REAL_KINDS)


def _real_host(kind: str, chain_id: str, numeric_id: int, block_ns: int) -> ChainHost:
    if kind == "evm":
        return EvmHost(chain_id, numeric_id, START_NS, block_ns)
    if kind == "corda":
        return CordaHost(chain_id, START_NS, block_ns)
    raise ValueError(f"unknown host kind {kind!r}")


def make_pair(kind: str) -> HostPair:
    """The pair of hosts ``kind`` names (see the module docstring)."""
    if kind == TESTROOT:
        return Pair()
    if kind not in REAL_KINDS:
        raise ValueError(f"unknown client kind {kind!r}")
    if kind in PROXY_KINDS:
        from tests.support.proxyhost import ProxiedHost

        kind_a, kind_b = kind.removesuffix("-proxy").split("-")
        return HostPair(kind, cast(ChainHost, ProxiedHost(_real_host(kind_a, "chain-a", 1001, 5 * 10**9))),
                        cast(ChainHost, ProxiedHost(_real_host(kind_b, "chain-b", 1002, 3 * 10**9))))
    kind_a, kind_b = kind.split("-")
    return HostPair(kind, _real_host(kind_a, "chain-a", 1001, 5 * 10**9),
                    _real_host(kind_b, "chain-b", 1002, 3 * 10**9))


class HostPair:
    """Two hosts of any kind back to back, with the relaying helpers."""

    def __init__(self, kind: str, a: ChainHost, b: ChainHost) -> None:
        self.kind = kind
        self.a = a
        self.b = b
        self.mock_a = mockapp.MockApp()
        self.mock_b = mockapp.MockApp()
        self.a.handler.bind_port(mockapp.PORT_ID, self.mock_a)
        self.b.handler.bind_port(mockapp.PORT_ID, self.mock_b)
        # The hosts keep their own clocks (their block intervals differ), so the clients'
        # allowed clock drift is as wide as their trusting period.
        self.trusting_period_ns = 3600 * 10**9
        self.client: dict[str, str] = {}
        self.connection: dict[str, str] = {}
        self.known: dict[str, list[Height]] = {}  # heights each host's client has a state for

    def other(self, host: ChainHost) -> ChainHost:
        return self.b if host is self.a else self.a

    # --- clients ---------------------------------------------------------------------------

    def client_type_on(self, host: ChainHost) -> str:
        """The type of the client ``host`` runs of its counterparty."""
        return self.other(host).client_type

    def create_client_msg(self, on: ChainHost) -> client_pb2.MsgCreateClient:
        src = self.other(on)
        return client_pb2.MsgCreateClient(client_type=src.client_type,
                                          client_state=src.client_state(self.trusting_period_ns,
                                                                        self.trusting_period_ns),
                                          consensus_state=src.consensus_state())

    def create_clients(self) -> None:
        for host in (self.a, self.b):
            height = self.other(host).height
            (cid,) = host.tx(self.create_client_msg(host))
            self.client[host.chain_id] = str(cid)
            self.known[host.chain_id] = [height]

    def trusted_for(self, dst: ChainHost, height: Height) -> Height:
        """The newest height below ``height`` that dst's client already trusts."""
        below = [h for h in self.known[dst.chain_id] if h < height]
        return max(below) if below else min(self.known[dst.chain_id])

    def header_for(self, dst: ChainHost, height: Height | None = None) -> bytes:
        src = self.other(dst)
        h = height or src.height
        return src.header(h, self.trusted_for(dst, h))

    def update_msg(self, dst: ChainHost) -> tuple[client_pb2.MsgUpdateClient, Height]:
        src = self.other(dst)
        return (client_pb2.MsgUpdateClient(client_id=self.client[dst.chain_id], client_message=self.header_for(dst)),
                src.height)

    def update(self, dst: ChainHost) -> Height:
        msg, height = self.update_msg(dst)
        dst.tx(msg)
        self.trust(dst, height)
        return height

    def trust(self, dst: ChainHost, height: Height) -> None:
        if height not in self.known[dst.chain_id]:
            self.known[dst.chain_id].append(height)

    # --- connections -------------------------------------------------------------------------

    def conn_init_msg(self, host: ChainHost, version: cpb.Version | None = None) -> cpb.MsgConnectionOpenInit:
        other = self.other(host)
        msg = cpb.MsgConnectionOpenInit(
            client_id=self.client[host.chain_id],
            counterparty=cpb.Counterparty(client_id=self.client[other.chain_id],
                                          prefix=cpb.MerklePrefix(key_prefix=other.prefix)),
        )
        if version is not None:
            msg.version.CopyFrom(version)
        return msg

    def conn_try_msg(self, dst: ChainHost, src_conn: str) -> cpb.MsgConnectionOpenTry:
        src = self.other(dst)
        height = self.update(dst)
        end = cpb.ConnectionEnd()
        end.ParseFromString(src.store.get(paths.connection(src_conn)) or b"")
        return cpb.MsgConnectionOpenTry(
            client_id=self.client[dst.chain_id],
            counterparty=cpb.Counterparty(client_id=self.client[src.chain_id], connection_id=src_conn,
                                          prefix=cpb.MerklePrefix(key_prefix=src.prefix)),
            counterparty_versions=list(end.versions),
            proof_init=src.prove(paths.connection(src_conn), height),
            proof_height=to_proto(height),
        )

    def conn_ack_msg(self, dst: ChainHost, dst_conn: str, src_conn: str) -> cpb.MsgConnectionOpenAck:
        src = self.other(dst)
        height = self.update(dst)
        end = cpb.ConnectionEnd()
        end.ParseFromString(src.store.get(paths.connection(src_conn)) or b"")
        return cpb.MsgConnectionOpenAck(connection_id=dst_conn, counterparty_connection_id=src_conn,
                                        version=end.versions[0],
                                        proof_try=src.prove(paths.connection(src_conn), height),
                                        proof_height=to_proto(height))

    def conn_confirm_msg(self, dst: ChainHost, dst_conn: str, src_conn: str) -> cpb.MsgConnectionOpenConfirm:
        src = self.other(dst)
        height = self.update(dst)
        return cpb.MsgConnectionOpenConfirm(connection_id=dst_conn,
                                            proof_ack=src.prove(paths.connection(src_conn), height),
                                            proof_height=to_proto(height))

    def open_connection(self) -> tuple[str, str]:
        if not self.client:
            self.create_clients()
        (ca,) = self.a.tx(self.conn_init_msg(self.a))
        (cb,) = self.b.tx(self.conn_try_msg(self.b, str(ca)))
        self.a.tx(self.conn_ack_msg(self.a, str(ca), str(cb)))
        self.b.tx(self.conn_confirm_msg(self.b, str(cb), str(ca)))
        self.connection[self.a.chain_id] = str(ca)
        self.connection[self.b.chain_id] = str(cb)
        return str(ca), str(cb)

    # --- channels ----------------------------------------------------------------------------

    def chan_init_msg(self, host: ChainHost, port: str, cp_port: str, order: int, version: str) -> chpb.MsgChannelOpenInit:
        return chpb.MsgChannelOpenInit(port_id=port, channel=chpb.Channel(
            state=chpb.STATE_INIT, ordering=order,  # type: ignore[arg-type]
            counterparty=chpb.ChannelCounterparty(port_id=cp_port),
            connection_hops=[self.connection[host.chain_id]], version=version))

    def channel_end(self, host: ChainHost, port: str, chan: str) -> chpb.Channel:
        ch = chpb.Channel()
        ch.ParseFromString(host.store.get(paths.channel(port, chan)) or b"")
        return ch

    def chan_try_msg(self, dst: ChainHost, port: str, src_port: str, src_chan: str) -> chpb.MsgChannelOpenTry:
        src = self.other(dst)
        height = self.update(dst)
        src_end = self.channel_end(src, src_port, src_chan)
        return chpb.MsgChannelOpenTry(
            port_id=port,
            channel=chpb.Channel(state=chpb.STATE_TRYOPEN, ordering=src_end.ordering,
                                 counterparty=chpb.ChannelCounterparty(port_id=src_port, channel_id=src_chan),
                                 connection_hops=[self.connection[dst.chain_id]], version=""),
            counterparty_version=src_end.version,
            proof_init=src.prove(paths.channel(src_port, src_chan), height), proof_height=to_proto(height))

    def chan_ack_msg(self, dst: ChainHost, port: str, chan: str, src_port: str, src_chan: str) -> chpb.MsgChannelOpenAck:
        src = self.other(dst)
        height = self.update(dst)
        return chpb.MsgChannelOpenAck(
            port_id=port, channel_id=chan, counterparty_channel_id=src_chan,
            counterparty_version=self.channel_end(src, src_port, src_chan).version,
            proof_try=src.prove(paths.channel(src_port, src_chan), height), proof_height=to_proto(height))

    def chan_confirm_msg(self, dst: ChainHost, port: str, chan: str, src_port: str, src_chan: str) -> chpb.MsgChannelOpenConfirm:
        src = self.other(dst)
        height = self.update(dst)
        return chpb.MsgChannelOpenConfirm(
            port_id=port, channel_id=chan,
            proof_ack=src.prove(paths.channel(src_port, src_chan), height), proof_height=to_proto(height))

    def chan_close_confirm_msg(self, dst: ChainHost, port: str, chan: str, src_port: str, src_chan: str) -> chpb.MsgChannelCloseConfirm:
        src = self.other(dst)
        height = self.update(dst)
        return chpb.MsgChannelCloseConfirm(
            port_id=port, channel_id=chan,
            proof_init=src.prove(paths.channel(src_port, src_chan), height), proof_height=to_proto(height))

    def open_channel(self, port: str = mockapp.PORT_ID, order: int = chpb.ORDER_UNORDERED,
                     version: str = "") -> tuple[str, str]:
        if not self.connection:
            self.open_connection()
        if port == "transfer" and not version:
            version = TRANSFER_VERSION
        (ca,) = self.a.tx(self.chan_init_msg(self.a, port, port, order, version))
        (cb,) = self.b.tx(self.chan_try_msg(self.b, port, port, str(ca)))
        self.a.tx(self.chan_ack_msg(self.a, port, str(ca), port, str(cb)))
        self.b.tx(self.chan_confirm_msg(self.b, port, str(cb), port, str(ca)))
        return str(ca), str(cb)

    # --- packets -----------------------------------------------------------------------------

    @staticmethod
    def last_packet(host: ChainHost, type_: str = "send_packet") -> chpb.Packet:
        packet = host.events.of_type(type_)[-1].packet()
        assert packet is not None
        return packet

    @staticmethod
    def last_event(host: ChainHost, type_: str) -> Event:
        return host.events.of_type(type_)[-1]

    def recv_msg(self, packet: chpb.Packet, dst: ChainHost, update: bool = True) -> chpb.MsgRecvPacket:
        src = self.other(dst)
        height = self.update(dst) if update else src.height
        path = paths.packet_commitment(packet.source_port, packet.source_channel, packet.sequence)
        return chpb.MsgRecvPacket(packet=packet, proof_commitment=src.prove(path, height),
                                  proof_height=to_proto(height), signer="relayer")

    def ack_msg(self, packet: chpb.Packet, ack: bytes, dst: ChainHost) -> chpb.MsgAcknowledgement:
        src = self.other(dst)
        height = self.update(dst)
        path = paths.packet_ack(packet.destination_port, packet.destination_channel, packet.sequence)
        return chpb.MsgAcknowledgement(packet=packet, acknowledgement=ack, proof_acked=src.prove(path, height),
                                       proof_height=to_proto(height), signer="relayer")

    def _unreceived(self, packet: chpb.Packet, src: ChainHost, height: Height, ordered: bool) -> tuple[bytes, int]:
        dport, dchan = packet.destination_port, packet.destination_channel
        if ordered:
            key = paths.next_sequence_recv(dport, dchan)
            raw = src.store.get(key) or encode_sequence(0)
            seq = client_pb2.NextSequence()
            seq.ParseFromString(raw)
            return src.prove(key, height), int(seq.sequence)
        return src.prove(paths.packet_receipt(dport, dchan, packet.sequence), height), 0

    def timeout_msg(self, packet: chpb.Packet, dst: ChainHost, ordered: bool = False) -> chpb.MsgTimeout:
        """dst is the packet's source chain (where the timeout is processed)."""
        src = self.other(dst)
        height = self.update(dst)
        proof, nsr = self._unreceived(packet, src, height, ordered)
        return chpb.MsgTimeout(packet=packet, next_sequence_recv=nsr, proof_unreceived=proof,
                               proof_height=to_proto(height), signer="relayer")

    def timeout_on_close_msg(self, packet: chpb.Packet, dst: ChainHost, ordered: bool = False) -> chpb.MsgTimeoutOnClose:
        src = self.other(dst)
        height = self.update(dst)
        proof, nsr = self._unreceived(packet, src, height, ordered)
        close = src.prove(paths.channel(packet.destination_port, packet.destination_channel), height)
        return chpb.MsgTimeoutOnClose(packet=packet, next_sequence_recv=nsr, proof_unreceived=proof,
                                      proof_close=close, proof_height=to_proto(height), signer="relayer")

    # --- batches: one multiproof per tx (the relayer's wire contract) ------------------------
    #
    # The first message carries the multiproof of every message's proof path in its proof
    # field; the others carry an empty proof and are checked against the opening. Heights
    # are given, so the update can ride in the same tx (``update_msg``) or not.

    def recv_batch_msgs(self, packets: list[chpb.Packet], dst: ChainHost, height: Height) -> list[chpb.MsgRecvPacket]:
        src = self.other(dst)
        multi = src.prove_many([paths.packet_commitment(p.source_port, p.source_channel, p.sequence)
                                for p in packets], height)
        return [chpb.MsgRecvPacket(packet=p, proof_commitment=multi if i == 0 else b"",
                                   proof_height=to_proto(height), signer="relayer")
                for i, p in enumerate(packets)]

    def ack_batch_msgs(self, acked: list[tuple[chpb.Packet, bytes]], dst: ChainHost,
                       height: Height) -> list[chpb.MsgAcknowledgement]:
        src = self.other(dst)
        multi = src.prove_many([paths.packet_ack(p.destination_port, p.destination_channel, p.sequence)
                                for p, _ in acked], height)
        return [chpb.MsgAcknowledgement(packet=p, acknowledgement=ack, proof_acked=multi if i == 0 else b"",
                                        proof_height=to_proto(height), signer="relayer")
                for i, (p, ack) in enumerate(acked)]

    def timeout_batch_msgs(self, packets: list[chpb.Packet], dst: ChainHost, height: Height) -> list[chpb.MsgTimeout]:
        """Unordered timeouts (receipt absence)."""
        src = self.other(dst)
        multi = src.prove_many([paths.packet_receipt(p.destination_port, p.destination_channel, p.sequence)
                                for p in packets], height)
        return [chpb.MsgTimeout(packet=p, proof_unreceived=multi if i == 0 else b"",
                                proof_height=to_proto(height), signer="relayer")
                for i, p in enumerate(packets)]


class Pair(HostPair):
    """Two test-only root hosts (unit tests, benchmarks, the relayer's in-process tests)."""

    a: Host
    b: Host

    def __init__(self, kind: str = TESTROOT, *, provable: bool = True, verify_proofs: bool = True) -> None:
        if kind != TESTROOT:
            raise ValueError(f"Pair is the {TESTROOT!r} pair; use make_pair({kind!r})")
        super().__init__(TESTROOT,
                         Host("chain-a", provable=provable, verify_proofs=verify_proofs),
                         Host("chain-b", provable=provable, verify_proofs=verify_proofs, block_ns=3 * 10**9))
