"""One-shot relayer operations behind the CLI: create, query, transfer, packet-recv/ack, clear, health-check.

Why handshakes reuse the Supervisor: after the first message (CreateClient, OpenInit) the
remaining steps are exactly what the daemon's handshake workers do, so running the same
workers until both ends are OPEN keeps one implementation of every step. Every result is
read back from the chains (QueryIbc), never from what this process remembers sending.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from chains.corda.ibc_host import account_of
from chains.ibc import events as ev
from chains.ibc.events import Event
from chains.ibc.host import paths
from chains.node.client import NodeClient
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from kakehashi.node.v1 import node_pb2
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from lightclients.interface import Height
from relayer.config.schema import Config
from relayer.core import packets as planner
from relayer.core.chain import ChainHandle, GrpcChainHandle, TxOutcome
from relayer.core.daemon import DaemonError, node_client, opened, probe, services_for, signer_secret
from relayer.core.supervisor import Supervisor
from relayer.core.workers import (
    End,
    PacketWorker,
    Services,
    WorkerStopped,
    channel_end,
    connection_end,
)
from relayer.ops.telemetry import Telemetry

SEC_NS = 1_000_000_000
HANDSHAKE_TIMEOUT_S = 90.0
CONNECTION_STATES = {cpb.CONNECTION_STATE_INIT: "INIT", cpb.CONNECTION_STATE_TRYOPEN: "TRYOPEN",
                     cpb.CONNECTION_STATE_OPEN: "OPEN"}
CHANNEL_STATES = {chpb.STATE_INIT: "INIT", chpb.STATE_TRYOPEN: "TRYOPEN", chpb.STATE_OPEN: "OPEN",
                  chpb.STATE_CLOSED: "CLOSED"}
ORDERS = {"unordered": chpb.ORDER_UNORDERED, "ordered": chpb.ORDER_ORDERED}


def _attr(out: TxOutcome, event: str, key: str) -> str:
    for e in out.events:
        if e.type == event:
            return e.text(key)
    raise DaemonError(f"the tx committed but emitted no {event}.{key}")


async def _committed(chain: ChainHandle, msgs: list[Any]) -> TxOutcome:
    out = await chain.submit(msgs)
    if not out.committed:
        raise DaemonError(f"chain {chain.chain_id}: {type(msgs[0]).__name__} failed: {out.reason}")
    return out


def peers(config: Config, chain_id: str) -> list[str]:
    """The chains ``chain_id`` shares a configured path with (one for an ST chain, every spoke
    for the hub)."""
    config.chain(chain_id)
    found = [p.b_chain if p.a_chain == chain_id else p.a_chain for p in config.paths
             if chain_id in (p.a_chain, p.b_chain)]
    return list(dict.fromkeys(found))


async def peer_of(config: Config, chain_id: str, *, port: str = "", channel: str = "", connection: str = "") -> str:
    """The chain at the other end of ``chain_id``'s channel (or connection): the one peer when
    there is one, else the peer whose end names this one back (read from the chains)."""
    candidates = peers(config, chain_id)
    if not candidates:
        raise DaemonError(f"chain {chain_id} is on no configured path")
    if len(candidates) == 1:
        return candidates[0]
    async with opened(config, None, chain_id, *candidates) as (mine, *theirs):
        if channel:
            end = await channel_end(mine.handle, port, channel)
            if end is None:
                raise DaemonError(f"chain {chain_id}: no channel {port}/{channel}")
            for oc in theirs:
                back = await channel_end(oc.handle, end.counterparty.port_id, end.counterparty.channel_id)
                if back is not None and (back.counterparty.port_id, back.counterparty.channel_id) == (port, channel):
                    return oc.config.id
            raise DaemonError(f"chain {chain_id}: no configured chain holds the other end of {port}/{channel}")
        conn = await connection_end(mine.handle, connection)
        if conn is None:
            raise DaemonError(f"chain {chain_id}: no connection {connection}")
        for oc in theirs:
            back_conn = await connection_end(oc.handle, conn.counterparty.connection_id)
            if back_conn is not None and back_conn.counterparty.connection_id == connection:
                return oc.config.id
        raise DaemonError(f"chain {chain_id}: no configured chain holds the other end of {connection}")


async def _until(what: str, cond: Callable[[], Awaitable[bool]], timeout_s: float = HANDSHAKE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await cond():
        if time.monotonic() > deadline:
            raise DaemonError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.3)


async def _with_supervisor(config: Config, a: ChainHandle, b: ChainHandle, ports: tuple[str, ...],
                           what: str, cond: Callable[[], Awaitable[bool]]) -> None:
    """Run the daemon's workers (no client refresh, no packets) until ``cond`` holds."""
    svc = services_for(config, Telemetry(), None)
    svc.settings.refresh = False
    svc.settings.misbehaviour = False
    svc.settings.clear_on_start = False
    sup = Supervisor(a, b, svc, ports=ports)
    await sup.start()
    try:
        await _until(what, cond)
    finally:
        await sup.stop()


async def new_client(host: ChainHandle, of: ChainHandle) -> str:
    client_type, client_state, consensus_state = await of.client_init()
    out = await _committed(host, [client_pb2.MsgCreateClient(
        client_type=client_type, client_state=client_state, consensus_state=consensus_state)])
    return _attr(out, "create_client", "client_id")


async def create_client(config: Config, passphrase: str, host: str, reference: str) -> dict[str, Any]:
    async with opened(config, passphrase, host, reference) as (h, r):
        client_id = await new_client(h.handle, r.handle)
    return {"host_chain": host, "reference_chain": reference, "client_id": client_id}


async def _open_connection(end: ChainHandle, cid: str) -> bool:
    got = await connection_end(end, cid)
    return got is not None and got.state == cpb.CONNECTION_STATE_OPEN


async def create_connection(config: Config, passphrase: str, a_id: str, b_id: str,
                            a_client: str | None = None, b_client: str | None = None) -> dict[str, Any]:
    async with opened(config, passphrase, a_id, b_id) as (a, b):
        a_client = a_client or await new_client(a.handle, b.handle)
        b_client = b_client or await new_client(b.handle, a.handle)
        out = await _committed(a.handle, [cpb.MsgConnectionOpenInit(client_id=a_client, counterparty=cpb.Counterparty(
            client_id=b_client, prefix=cpb.MerklePrefix(key_prefix=b.handle.prefix)))])
        a_conn = _attr(out, "connection_open_init", "connection_id")
        peer: list[str] = []

        async def both_open() -> bool:
            mine = await connection_end(a.handle, a_conn)
            if mine is None or mine.state != cpb.CONNECTION_STATE_OPEN:
                return False
            peer[:] = [mine.counterparty.connection_id]
            return await _open_connection(b.handle, mine.counterparty.connection_id)

        await _with_supervisor(config, a.handle, b.handle, (), "the connection to open on both chains", both_open)
    return {"a_chain": a_id, "a_client": a_client, "a_connection": a_conn,
            "b_chain": b_id, "b_client": b_client, "b_connection": peer[0]}


async def create_channel(config: Config, passphrase: str, a_id: str, a_conn: str, a_port: str, b_port: str,
                         order: str, version: str) -> dict[str, Any]:
    others = [await peer_of(config, a_id, connection=a_conn)]
    if order not in ORDERS:
        raise DaemonError(f"--order must be one of {', '.join(ORDERS)}")
    async with opened(config, passphrase, a_id, others[0]) as (a, b):
        conn = await connection_end(a.handle, a_conn)
        if conn is None or conn.state != cpb.CONNECTION_STATE_OPEN:
            raise DaemonError(f"chain {a_id}: connection {a_conn} does not exist or is not OPEN")
        out = await _committed(a.handle, [chpb.MsgChannelOpenInit(port_id=a_port, channel=chpb.Channel(
            state=chpb.STATE_INIT, ordering=ORDERS[order], counterparty=chpb.ChannelCounterparty(port_id=b_port),
            connection_hops=[a_conn], version=version))])
        a_chan = _attr(out, "channel_open_init", "channel_id")
        peer: list[str] = []

        async def both_open() -> bool:
            mine = await channel_end(a.handle, a_port, a_chan)
            if mine is None or mine.state != chpb.STATE_OPEN:
                return False
            peer[:] = [mine.counterparty.channel_id]
            theirs = await channel_end(b.handle, b_port, mine.counterparty.channel_id)
            return theirs is not None and theirs.state == chpb.STATE_OPEN

        await _with_supervisor(config, a.handle, b.handle, tuple(sorted({a_port, b_port})),
                               "the channel to open on both chains", both_open)
    return {"a_chain": a_id, "a_port": a_port, "a_channel": a_chan, "b_chain": others[0], "b_port": b_port,
            "b_channel": peer[0], "order": order, "version": version}


# --- queries -----------------------------------------------------------------------------


async def query_client(config: Config, chain: str, client_id: str) -> dict[str, Any]:
    async with opened(config, None, chain) as (c,):
        raw = (await c.handle.query(paths.client_state(client_id), prove=False)).value
        if raw is None:
            raise DaemonError(f"chain {chain}: no client {client_id}")
        # ICS-24 client identifiers are "{client-type}-{n}"; the host's own type is the wrong one
        return {"chain": chain, "client_id": client_id, "client_type": client_id.rsplit("-", 1)[0],
                "client_state": raw.hex()}


async def query_connection(config: Config, chain: str, connection_id: str) -> dict[str, Any]:
    async with opened(config, None, chain) as (c,):
        end = await connection_end(c.handle, connection_id)
        if end is None:
            raise DaemonError(f"chain {chain}: no connection {connection_id}")
        return {"chain": chain, "connection_id": connection_id, "state": CONNECTION_STATES.get(end.state, "?"),
                "client_id": end.client_id, "counterparty_client_id": end.counterparty.client_id,
                "counterparty_connection_id": end.counterparty.connection_id}


async def query_channel(config: Config, chain: str, port: str, channel: str) -> dict[str, Any]:
    async with opened(config, None, chain) as (c,):
        end = await channel_end(c.handle, port, channel)
        if end is None:
            raise DaemonError(f"chain {chain}: no channel {port}/{channel}")
        return {"chain": chain, "port": port, "channel": channel, "state": CHANNEL_STATES.get(end.state, "?"),
                "ordering": "ordered" if end.ordering == chpb.ORDER_ORDERED else "unordered",
                "version": end.version, "connection_hops": list(end.connection_hops),
                "counterparty_port": end.counterparty.port_id, "counterparty_channel": end.counterparty.channel_id}


async def _pending_one_way(src: ChainHandle, src_port: str, src_chan: str, dst: ChainHandle, dst_port: str,
                           dst_chan: str) -> dict[str, list[int]]:
    committed = await src.packet_commitments(src_port, src_chan)
    unreceived = await dst.unreceived_packets(dst_port, dst_chan, committed) if committed else []
    # received on dst but still committed on src: their acknowledgement has not come back yet
    awaiting_ack = [q for q in committed if q not in set(unreceived)]
    return {"unreceived_packets": unreceived, "unreceived_acks": awaiting_ack}


async def pending_packets(config: Config, chain: str, port: str, channel: str) -> dict[str, Any]:
    other = [await peer_of(config, chain, port=port, channel=channel)]
    async with opened(config, None, chain, other[0]) as (a, b):
        end = await channel_end(a.handle, port, channel)
        if end is None:
            raise DaemonError(f"chain {chain}: no channel {port}/{channel}")
        cp, cc = end.counterparty.port_id, end.counterparty.channel_id
        forward = await _pending_one_way(a.handle, port, channel, b.handle, cp, cc)
        backward = await _pending_one_way(b.handle, cp, cc, a.handle, port, channel)
    return {"src": {"chain": chain, "port": port, "channel": channel, **forward},
            "dst": {"chain": other[0], "port": cp, "channel": cc, **backward}}


# --- transactions ------------------------------------------------------------------------


def account_for(kind: str, secret: bytes) -> str:
    """The sender address a chain of ``kind`` expects for a signer."""
    if kind == "evm":
        return "0x" + eth_address(secp256k1_public_key(secret)).hex()
    return account_of(ed25519_public_key(secret))


async def transfer(config: Config, passphrase: str, src_chain: str, src_port: str, src_channel: str, amount: int,
                   denom: str, receiver: str, key: str, timeout_height_offset: int = 0,
                   timeout_seconds: int = 0) -> dict[str, Any]:
    if amount <= 0:
        raise DaemonError("--amount must be positive")
    if timeout_height_offset <= 0 and timeout_seconds <= 0:
        raise DaemonError("set --timeout-height-offset or --timeout-seconds (a packet needs a timeout)")
    other = [await peer_of(config, src_chain, port=src_port, channel=src_channel)]
    src_cfg = config.chain(src_chain)
    sender = account_for(src_cfg.kind, signer_secret(config, src_cfg, passphrase, key))
    async with opened(config, passphrase, src_chain, key_name=key) as (src,):
        timeout_height = client_pb2.Height()
        if timeout_height_offset > 0:
            end = await channel_end(src.handle, src_port, src_channel)
            if end is None:
                raise DaemonError(f"chain {src_chain}: no channel {src_port}/{src_channel}")
            dst_cfg = config.chain(other[0])
            dst_client = node_client(dst_cfg)
            try:
                dst_height = await probe(dst_client, dst_cfg.id)
            finally:
                await dst_client.close()
            timeout_height = client_pb2.Height(revision_number=0, revision_height=dst_height + timeout_height_offset)
        msg = transfer_pb2.MsgTransfer(
            source_port=src_port, source_channel=src_channel, denom=denom, amount=str(amount), sender=sender,
            receiver=receiver, timeout_height=timeout_height,
            timeout_timestamp=time.time_ns() + timeout_seconds * SEC_NS if timeout_seconds > 0 else 0)
        out = await _committed(src.handle, [msg])
        sequence = _attr(out, "send_packet", "sequence")
    return {"chain": src_chain, "port": src_port, "channel": src_channel, "sequence": int(sequence),
            "sender": sender, "receiver": receiver, "amount": amount, "denom": denom}


async def clear_packets(config: Config, passphrase: str, chain: str, port: str, channel: str) -> dict[str, Any]:
    """One clearing pass both ways: the channel's packet workers run until nothing is pending."""
    other = [await peer_of(config, chain, port=port, channel=channel)]
    async with opened(config, passphrase, chain, other[0]) as (a, b):
        end = await channel_end(a.handle, port, channel)
        if end is None:
            raise DaemonError(f"chain {chain}: no channel {port}/{channel}")
        before = {
            "forward": await _pending_one_way(a.handle, port, channel, b.handle, end.counterparty.port_id,
                                              end.counterparty.channel_id),
            "backward": await _pending_one_way(b.handle, end.counterparty.port_id, end.counterparty.channel_id,
                                               a.handle, port, channel)}
        svc = services_for(config, Telemetry(), None)
        svc.settings.refresh = False
        svc.settings.misbehaviour = False
        svc.settings.clear_on_start = True
        sup = Supervisor(a.handle, b.handle, svc, ports=tuple(sorted({port, end.counterparty.port_id})))
        await sup.scan()
        names = (f"packet:{chain}/{port}/{channel}->{other[0]}",
                 f"packet:{other[0]}/{end.counterparty.port_id}/{end.counterparty.channel_id}->{chain}")
        try:
            async def idle() -> bool:
                # No block stream runs here, so a worker with work left is woken by the poll itself.
                ours = [w for n, w in sup.workers.items() if n in names]
                for w in ours:
                    if w.dirty:
                        w.wake()
                return all(not w.running or (w.passes > 0 and not w.dirty and not getattr(w, "inflight", ()))
                           for w in ours)
            await _until("the clearing pass", idle)
        finally:
            await sup.stop()
        stopped = {n: w.stopped for n, w in sup.workers.items() if n in names and w.stopped}
        if stopped:
            raise DaemonError("; ".join(f"{n} stopped: {why}" for n, why in stopped.items()))
    return {"chain": chain, "port": port, "channel": channel, "pending_before": before}


# --- one-way relaying: tx packet-recv | packet-ack -----------------------------------------

RELAY_KINDS = ("recv", "ack")
_RELAYED_EVENTS = {ev.RECV_PACKET: "recv", ev.ACKNOWLEDGE_PACKET: "ack", ev.TIMEOUT_PACKET: "timeout"}


class _TxRecorder:
    """Stands in for a handle's NodeClient and keeps every submitted tx's hash, so a one-shot
    command can print the results of the txs the (shared) worker code sent. Everything else
    passes straight through to the real client."""

    def __init__(self, node: NodeClient) -> None:
        self._node = node
        self.hashes: list[bytes] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node, name)

    async def submit(self, tx: bytes) -> bytes:
        tx_hash = await self._node.submit(tx)
        self.hashes.append(tx_hash)
        return tx_hash

    async def results(self) -> list[node_pb2.TxResult]:
        return [await self._node.tx_result(h) for h in self.hashes]


def _record(handle: ChainHandle) -> _TxRecorder | None:
    if not isinstance(handle, GrpcChainHandle):
        return None
    recorder = _TxRecorder(handle.node)
    handle.node = cast(NodeClient, recorder)
    return recorder


def _tx_row(chain: str, result: node_pb2.TxResult) -> dict[str, Any]:
    events = [Event(e.type, tuple((a.key, bytes(a.value)) for a in e.attributes)) for e in result.events]
    done: dict[str, list[int]] = {}
    for e in events:
        p = e.packet()
        if e.type in _RELAYED_EVENTS and p is not None:
            done.setdefault(_RELAYED_EVENTS[e.type], []).append(int(p.sequence))
        elif e.type == ev.NOOP and e.get("sequence"):
            done.setdefault("noop", []).append(int(e.text("sequence")))
    return {"chain": chain, "tx_hash": bytes(result.tx_hash).hex(), "height": int(result.height),
            "committed": result.status == node_pb2.TX_STATUS_COMMITTED, "reason": result.reason,
            "sequences": {k: sorted(v) for k, v in sorted(done.items())}}


class OneWayPacketWorker(PacketWorker):
    """The daemon's packet worker restricted to what one Hermes ``tx`` command relays.

    ``recv`` delivers the sender's packets to the receiver and, like Hermes' packet-recv,
    sends timeouts back to the sender for those that can no longer be received; ``ack``
    only carries written acknowledgements back. Planning, proofs and batching stay the
    worker's own, so the one-shot commands and the daemon cannot disagree.
    """

    def __init__(self, sender: End, receiver: End, services: Services, kind: str) -> None:
        super().__init__(sender, receiver, services)
        if kind not in RELAY_KINDS:
            raise DaemonError(f"unknown relay kind {kind!r}; expected one of {', '.join(RELAY_KINDS)}")
        self.relay_kind = kind

    async def _relay_recv(self, pkts: Sequence[chpb.Packet]) -> None:
        if self.relay_kind == "recv":
            await super()._relay_recv(pkts)

    async def _relay_back(self, height: Height, acks: Sequence[tuple[chpb.Packet, bytes]],
                          plan: planner.PacketPlan, ordering: int) -> None:
        if self.relay_kind == "recv":
            await super()._relay_back(height, [], plan, ordering)
        else:
            await super()._relay_back(height, acks, planner.PacketPlan(), ordering)


async def _channel_path(here: ChainHandle, port: str, channel: str, there: ChainHandle) -> tuple[End, End]:
    """Both ends of ``port/channel`` on ``here`` (clients and connections read from the chains)."""
    end = await channel_end(here, port, channel)
    if end is None:
        raise DaemonError(f"chain {here.chain_id}: no channel {port}/{channel}")
    if end.state not in (chpb.STATE_OPEN, chpb.STATE_CLOSED) or not end.counterparty.channel_id:
        raise DaemonError(f"chain {here.chain_id}: channel {port}/{channel} is "
                          f"{CHANNEL_STATES.get(end.state, '?')}, not open")
    conn = await connection_end(here, end.connection_hops[0]) if end.connection_hops else None
    if conn is None:
        raise DaemonError(f"chain {here.chain_id}: channel {port}/{channel} has no connection")
    cp, cc = end.counterparty.port_id, end.counterparty.channel_id
    if await channel_end(there, cp, cc) is None:
        raise DaemonError(f"chain {there.chain_id}: no channel {cp}/{cc} (counterparty of {port}/{channel} on "
                          f"{here.chain_id}); is --dst-chain right?")
    return (End(here, conn.client_id, end.connection_hops[0], port, channel),
            End(there, conn.counterparty.client_id, conn.counterparty.connection_id, cp, cc))


async def relay_packets(config: Config, passphrase: str, kind: str, dst_chain: str, src_chain: str, src_port: str,
                        src_channel: str) -> dict[str, Any]:
    """Hermes' ``tx packet-recv`` (kind "recv") or ``tx packet-ack`` (kind "ack"), once.

    As in Hermes, ``src`` is where the relayed thing was written: the sent packets for recv,
    the acknowledgements for ack (so for an ack, ``src`` is the chain that received the
    packets). Passes repeat while they make progress; what counts as done is read back
    from both chains, never taken from the worker.
    """
    if kind not in RELAY_KINDS:
        raise DaemonError(f"unknown relay kind {kind!r}; expected one of {', '.join(RELAY_KINDS)}")
    if config.chain(dst_chain).id == config.chain(src_chain).id:
        raise DaemonError("--src-chain and --dst-chain must differ")
    async with opened(config, passphrase, src_chain, dst_chain) as (s, d):
        recorders = {c: r for c, h in ((src_chain, s.handle), (dst_chain, d.handle)) if (r := _record(h))}
        here, there = await _channel_path(s.handle, src_port, src_channel, d.handle)
        sender, receiver = (here, there) if kind == "recv" else (there, here)
        svc = services_for(config, Telemetry(), None)
        svc.settings.refresh = False
        svc.settings.misbehaviour = False
        worker = OneWayPacketWorker(sender, receiver, svc, kind)
        key = "unreceived_packets" if kind == "recv" else "unreceived_acks"

        async def pending() -> list[int]:
            got = await _pending_one_way(sender.chain, sender.port, sender.channel, receiver.chain, receiver.port,
                                         receiver.channel)
            return got[key]

        before = await pending()
        left = before
        while left:
            try:
                await worker.step()
                await worker.settle()  # every tx the pass queued is in a block (or failed)
            except WorkerStopped as exc:
                raise DaemonError(str(exc)) from None
            now = await pending()
            if set(now) >= set(left):
                break  # no progress: what is left waits (e.g. for a timeout to become provable)
            left = now
        results = {chain: await rec.results() for chain, rec in recorders.items()}
    txs = [_tx_row(chain, r) for chain, rs in results.items() for r in rs]
    txs.sort(key=lambda t: (t["height"], t["chain"]))
    failed = [t for t in txs if not t["committed"]]
    if failed and set(left) == set(before):
        raise DaemonError(f"chain {failed[0]['chain']}: tx {failed[0]['tx_hash']} failed: {failed[0]['reason']}")
    return {"kind": kind, "src_chain": src_chain, "src_port": src_port, "src_channel": src_channel,
            "dst_chain": dst_chain, "dst_port": there.port, "dst_channel": there.channel,
            "pending_before": before, "relayed": sorted(set(before) - set(left)), "pending_after": left,
            "txs": txs}


async def health_check(config: Config) -> list[dict[str, Any]]:
    """Each configured chain's status; no key is needed to ask."""
    out = []
    for chain in config.chains:
        client = node_client(chain)
        try:
            height = await probe(client, chain.id)
            out.append({"chain": chain.id, "kind": chain.kind, "grpc": chain.grpc_addr, "healthy": True,
                        "height": height, "error": ""})
        except DaemonError as exc:
            out.append({"chain": chain.id, "kind": chain.kind, "grpc": chain.grpc_addr, "healthy": False,
                        "height": None, "error": str(exc)})
        finally:
            await client.close()
    return out
