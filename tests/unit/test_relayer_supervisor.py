"""The relayer end to end, in process: supervisor + workers over two test hosts."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

import pytest
from google.protobuf.message import Message

from chains.ibc import queries
from chains.ibc.apps.bank import StoreBank
from chains.ibc.apps.transfer import escrow_account
from chains.ibc.host import paths
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from lightclients.interface import Height
from relayer.config.schema import load_config
from relayer.core.chain import TxOutcome
from relayer.core.supervisor import Supervisor, settings_from_config
from relayer.core.workers import ClientWorker, Services
from tests.conftest import ROOT
from tests.support import mockapp, rootclient
from tests.support.host import SECOND, Host
from tests.support.pair import Pair
from tests.support.relaying import HostHandle, RecordingPublisher, services, until

PORTS = ("transfer", mockapp.PORT_ID)


def committed(host: Host, port: str, chan: str, seq: int) -> bool:
    return host.store.get(paths.packet_commitment(port, chan, seq)) is not None


def received(host: Host, port: str, chan: str, seq: int) -> bool:
    return host.store.get(paths.packet_receipt(port, chan, seq)) is not None


def recv_counts(host: Host) -> Counter[int]:
    return Counter(e.packet().sequence for e in host.events.of_type("recv_packet"))  # type: ignore[union-attr]


def metric(svc: Services, name: str, **labels: str) -> float:
    value = svc.telemetry.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def published(svc: Services) -> list[tuple[str, str, str, str, dict[str, object]]]:
    assert isinstance(svc.mqtt, RecordingPublisher)
    return svc.mqtt.events


async def started(pair: Pair, svc: Services | None = None) -> tuple[Supervisor, Services]:
    svc = svc or services()
    sup = Supervisor(HostHandle(pair.a), HostHandle(pair.b), svc, ports=PORTS)
    await sup.start()
    return sup, svc


def mock_pair(order: int = chpb.ORDER_UNORDERED) -> tuple[Pair, str, str]:
    pair = Pair()
    ca, cb = pair.open_channel(mockapp.PORT_ID, order=order)
    return pair, ca, cb


async def test_packets_both_ways_are_received_and_acked() -> None:
    pair, ca, cb = mock_pair()
    sup, svc = await started(pair)
    try:
        pa = pair.a.send(mockapp.PORT_ID, ca, b"hello-b", timeout_height=Height(1, 1000))
        pb = pair.b.send(mockapp.PORT_ID, cb, b"hello-a", timeout_height=Height(1, 1000))
        await until(lambda: not committed(pair.a, mockapp.PORT_ID, ca, pa.sequence)
                    and not committed(pair.b, mockapp.PORT_ID, cb, pb.sequence))
        assert received(pair.b, mockapp.PORT_ID, cb, pa.sequence)
        assert received(pair.a, mockapp.PORT_ID, ca, pb.sequence)
        assert metric(svc, "kakehashi_packets_confirmed_total", src_chain="chain-a", dst_chain="chain-b",
                      kind="recv") == 1
        assert metric(svc, "kakehashi_packets_confirmed_total", src_chain="chain-b", dst_chain="chain-a",
                      kind="ack") == 1
        kinds = {(c, e) for c, _, _, e, _ in published(svc)}
        assert {("chain-b", "recv"), ("chain-a", "ack"), ("chain-a", "recv"), ("chain-b", "ack")} <= kinds
        assert sup.health()["status"] == "ok"
    finally:
        await sup.stop()


async def test_ics20_transfers_both_ways_move_balances() -> None:
    pair = Pair()
    ca, cb = pair.open_channel("transfer")
    StoreBank(pair.a.store).mint("alice", "uatom", 100)
    StoreBank(pair.b.store).mint("bob", "ustake", 50)
    pair.a.idle()
    pair.b.idle()
    sup, _ = await started(pair)
    try:
        pair.a.tx(transfer_pb2.MsgTransfer(source_port="transfer", source_channel=ca, denom="uatom", amount="40",
                                           sender="alice", receiver="bob",
                                           timeout_height=client_pb2.Height(revision_number=1, revision_height=999)))
        pair.b.tx(transfer_pb2.MsgTransfer(source_port="transfer", source_channel=cb, denom="ustake", amount="5",
                                           sender="bob", receiver="alice",
                                           timeout_height=client_pb2.Height(revision_number=1, revision_height=999)))
        voucher_b = f"transfer/{cb}/uatom"
        voucher_a = f"transfer/{ca}/ustake"
        await until(lambda: StoreBank(pair.b.store).balance("bob", voucher_b) == 40
                    and StoreBank(pair.a.store).balance("alice", voucher_a) == 5
                    and not committed(pair.a, "transfer", ca, 1) and not committed(pair.b, "transfer", cb, 1))
        assert StoreBank(pair.a.store).balance("alice", "uatom") == 60
        assert StoreBank(pair.a.store).balance(escrow_account("transfer", ca), "uatom") == 40
        assert StoreBank(pair.b.store).balance("bob", "ustake") == 45
    finally:
        await sup.stop()


async def test_packets_sent_while_stopped_are_relayed_at_start() -> None:
    pair, ca, _cb = mock_pair()
    sent = [pair.a.send(mockapp.PORT_ID, ca, f"p{i}".encode(), timeout_height=Height(1, 1000)) for i in range(5)]
    sup, _ = await started(pair)
    try:
        await until(lambda: all(not committed(pair.a, mockapp.PORT_ID, ca, p.sequence) for p in sent))
        assert recv_counts(pair.b) == Counter({p.sequence: 1 for p in sent})
    finally:
        await sup.stop()


async def test_height_timeout_is_relayed_to_the_source() -> None:
    pair, ca, cb = mock_pair()
    p = pair.a.send(mockapp.PORT_ID, ca, b"late", timeout_height=pair.b.height.increment().increment())
    pair.b.idle(3)
    sup, svc = await started(pair)
    try:
        await until(lambda: not committed(pair.a, mockapp.PORT_ID, ca, p.sequence))
        assert not received(pair.b, mockapp.PORT_ID, cb, p.sequence)
        assert pair.a.events.of_type("timeout_packet")
        assert metric(svc, "kakehashi_packets_confirmed_total", src_chain="chain-b", dst_chain="chain-a",
                      kind="timeout") == 1
    finally:
        await sup.stop()


async def test_timestamp_timeout_is_relayed_in_simulated_time() -> None:
    pair, ca, cb = mock_pair()
    p = pair.a.send(mockapp.PORT_ID, ca, b"late", timeout_ns=pair.b.now_ns + 60 * SECOND)
    pair.b.idle(1, advance_ns=61 * SECOND)
    sup, _ = await started(pair)
    try:
        await until(lambda: not committed(pair.a, mockapp.PORT_ID, ca, p.sequence))
        assert not received(pair.b, mockapp.PORT_ID, cb, p.sequence)
        assert pair.a.events.of_type("timeout_packet")
    finally:
        await sup.stop()


async def test_ordered_timeout_closes_the_channel_on_both_ends() -> None:
    pair, ca, cb = mock_pair(chpb.ORDER_ORDERED)
    p1 = pair.a.send(mockapp.PORT_ID, ca, b"late", timeout_height=pair.b.height.increment().increment())
    p2 = pair.a.send(mockapp.PORT_ID, ca, b"later", timeout_height=Height(1, 1000))
    pair.b.idle(3)
    sup, _ = await started(pair)
    try:
        await until(lambda: pair.channel_end(pair.a, mockapp.PORT_ID, ca).state == chpb.STATE_CLOSED
                    and pair.channel_end(pair.b, mockapp.PORT_ID, cb).state == chpb.STATE_CLOSED
                    and not committed(pair.a, mockapp.PORT_ID, ca, p2.sequence))
        assert not committed(pair.a, mockapp.PORT_ID, ca, p1.sequence)
        assert not pair.b.events.of_type("recv_packet")
    finally:
        await sup.stop()


async def test_two_relayers_deliver_every_packet_once_and_stay_up() -> None:
    pair, ca, _cb = mock_pair()
    sup1, svc1 = await started(pair)
    sup2, svc2 = await started(pair)
    try:
        sent = [pair.a.send(mockapp.PORT_ID, ca, f"p{i}".encode(), timeout_height=Height(1, 1000))
                for i in range(8)]
        await until(lambda: all(not committed(pair.a, mockapp.PORT_ID, ca, p.sequence) for p in sent))
        assert recv_counts(pair.b) == Counter({p.sequence: 1 for p in sent})
        assert len(pair.a.events.of_type("acknowledge_packet")) == len(sent)
        for sup in (sup1, sup2):
            assert sup.health()["status"] == "ok"
            assert all(w.running for w in sup.workers.values())
        confirmed = sum(metric(s, "kakehashi_packets_confirmed_total", src_chain="chain-a", dst_chain="chain-b",
                               kind="recv") for s in (svc1, svc2))
        assert confirmed == len(sent)
    finally:
        await sup1.stop()
        await sup2.stop()


async def test_restarted_relayer_loses_nothing() -> None:
    pair, ca, cb = mock_pair()
    sup, _ = await started(pair)
    first = [pair.a.send(mockapp.PORT_ID, ca, f"a{i}".encode(), timeout_height=Height(1, 1000)) for i in range(3)]
    await until(lambda: all(received(pair.b, mockapp.PORT_ID, cb, p.sequence) for p in first))
    await sup.stop()  # possibly before the acks went back
    second = [pair.a.send(mockapp.PORT_ID, ca, f"b{i}".encode(), timeout_height=Height(1, 1000)) for i in range(3)]
    sup, _ = await started(pair)
    try:
        everything = first + second
        await until(lambda: all(not committed(pair.a, mockapp.PORT_ID, ca, p.sequence) for p in everything))
        assert recv_counts(pair.b) == Counter({p.sequence: 1 for p in everything})
    finally:
        await sup.stop()


async def test_reconnect_clears_packets_missed_while_the_stream_was_down() -> None:
    pair, ca, _cb = mock_pair()
    handle_a = HostHandle(pair.a)
    svc = services(clear_interval=0)
    sup = Supervisor(handle_a, HostHandle(pair.b), svc, ports=PORTS)
    await sup.start()
    try:
        handle_a.break_stream()
        await until(lambda: sup.reconnects >= 1)
        p = pair.a.send(mockapp.PORT_ID, ca, b"x", timeout_height=Height(1, 1000))
        await until(lambda: not committed(pair.a, mockapp.PORT_ID, ca, p.sequence))
    finally:
        await sup.stop()


async def test_batches_respect_max_msg_num() -> None:
    pair, ca, _cb = mock_pair()
    sent = [pair.a.send(mockapp.PORT_ID, ca, f"p{i}".encode(), timeout_height=Height(1, 1000)) for i in range(7)]
    handle_b = HostHandle(pair.b)
    svc = services(max_msg_num={"chain-a": 3, "chain-b": 3})
    sup = Supervisor(HostHandle(pair.a), handle_b, svc, ports=PORTS)
    await sup.start()
    try:
        await until(lambda: all(not committed(pair.a, mockapp.PORT_ID, ca, p.sequence) for p in sent))
        recv_txs = [tx for tx in handle_b.txs if any(isinstance(m, chpb.MsgRecvPacket) for m in tx)]
        assert recv_txs
        for tx in recv_txs:
            assert len(tx) <= 3
            updates = sum(isinstance(m, client_pb2.MsgUpdateClient) for m in tx)
            assert updates <= 1 and (updates == 0 or isinstance(tx[0], client_pb2.MsgUpdateClient))
            assert sum(isinstance(m, chpb.MsgRecvPacket) for m in tx) == len(tx) - updates
        assert len(recv_txs) >= 3  # 7 packets, at most 3 messages per tx
    finally:
        await sup.stop()


async def test_frozen_client_stops_workers_and_reports_why() -> None:
    pair, ca, _cb = mock_pair()
    sup, svc = await started(pair)
    try:
        forged = rootclient.header(pair.a.height, pair.a.latest.time_ns, b"\x66" * 32)
        pair.b.tx(client_pb2.MsgUpdateClient(client_id=pair.client["chain-b"], client_message=forged))
        pair.a.send(mockapp.PORT_ID, ca, b"stuck", timeout_height=Height(1, 1000))
        await until(lambda: sup.health()["status"] == "degraded"
                    and any(n.startswith("packet:chain-a") for n in sup.health()["stopped"]))
        reasons = sup.health()["stopped"]
        assert any("Frozen" in r for r in reasons.values())
        assert metric(svc, "kakehashi_workers", type="packet") == 0
    finally:
        await sup.stop()


async def test_forged_header_is_caught_and_evidence_freezes_the_client() -> None:
    pair, _ca, _cb = mock_pair()
    sup, svc = await started(pair)
    try:
        watcher = sup.workers[f"client:chain-b/{pair.client['chain-b']}"]
        await until(lambda: watcher.passes >= 1)
        pair.a.idle()
        forged = rootclient.header(pair.a.height, pair.a.latest.time_ns, b"\x66" * 32)
        # An attacker gets a forged header accepted as a plain update at a new height.
        pair.b.tx(client_pb2.MsgUpdateClient(client_id=pair.client["chain-b"], client_message=forged))
        await until(lambda: bool(pair.b.events.of_type("client_misbehaviour")))
        assert metric(svc, "kakehashi_misbehaviour_submitted_total", chain="chain-b",
                      client_id=pair.client["chain-b"]) == 1
        await until(lambda: sup.health()["status"] == "degraded")
    finally:
        await sup.stop()


class IdentifiedHandle(HostHandle):
    """A chain whose headers name their block by their own bytes (as the codecs' identities do)."""

    def header_identity(self, client_message: bytes) -> bytes | None:
        return client_message


async def test_watch_compares_genuine_headers_and_still_catches_a_forged_one() -> None:
    """Headers equal to the source's block are compared, not re-verified; a forged one is
    verified against the genuine one and frozen as before."""
    pair, ca, _cb = mock_pair()
    svc = services()
    sup = Supervisor(IdentifiedHandle(pair.a), IdentifiedHandle(pair.b), svc, ports=PORTS)
    await sup.start()
    try:
        watcher = sup.workers[f"client:chain-b/{pair.client['chain-b']}"]
        assert isinstance(watcher, ClientWorker)
        for i in range(6):  # traffic: the packet workers update chain-b's client of chain-a
            p = pair.a.send(mockapp.PORT_ID, ca, f"w{i}".encode(), timeout_height=Height(1, 1000))
            await until(lambda p=p: not committed(pair.a, mockapp.PORT_ID, ca, p.sequence))  # type: ignore[misc]
        await until(lambda: watcher.headers_matched >= 3)
        assert watcher.headers_verified == 0 and not pair.b.events.of_type("client_misbehaviour")
        pair.a.idle()
        forged = rootclient.header(pair.a.height, pair.a.latest.time_ns, b"\x66" * 32)
        pair.b.tx(client_pb2.MsgUpdateClient(client_id=pair.client["chain-b"], client_message=forged))
        await until(lambda: bool(pair.b.events.of_type("client_misbehaviour")))
        assert watcher.headers_verified >= 1 and watcher.evidence_submitted == 1
    finally:
        await sup.stop()


async def test_client_refresh_before_expiry() -> None:
    pair, _ca, _cb = mock_pair()
    svc = services(refresh_rate=0.25)
    sup = Supervisor(HostHandle(pair.a), HostHandle(pair.b), svc, ports=PORTS)
    before = len(pair.b.events.of_type("update_client"))
    pair.a.idle(1, advance_ns=1000 * SECOND)  # > 1/4 of the one-hour trusting period
    pair.b.idle(1, advance_ns=1000 * SECOND)
    await sup.start()
    try:
        await until(lambda: len(pair.b.events.of_type("update_client")) > before)
        assert metric(svc, "kakehashi_client_updates_total", chain="chain-b", client_id=pair.client["chain-b"]) >= 1
    finally:
        await sup.stop()


@pytest.mark.parametrize("steps_done", ["init", "try", "ack"])
async def test_channel_handshake_resumes_from_any_step(steps_done: str) -> None:
    pair = Pair()
    pair.open_connection()
    port = mockapp.PORT_ID
    (raw_ca,) = pair.a.tx(pair.chan_init_msg(pair.a, port, port, chpb.ORDER_UNORDERED, ""))
    ca = str(raw_ca)
    if steps_done in ("try", "ack"):
        (cb,) = pair.b.tx(pair.chan_try_msg(pair.b, port, port, ca))
        if steps_done == "ack":
            pair.a.tx(pair.chan_ack_msg(pair.a, port, ca, port, str(cb)))
    sup, _ = await started(pair)
    try:
        await until(lambda: pair.channel_end(pair.a, port, ca).state == chpb.STATE_OPEN
                    and pair.b.store.get(paths.channel(port, "channel-0")) is not None
                    and pair.channel_end(pair.b, port, "channel-0").state == chpb.STATE_OPEN)
        p = pair.a.send(port, ca, b"after-open", timeout_height=Height(1, 1000))
        await until(lambda: not committed(pair.a, port, ca, p.sequence))
        assert received(pair.b, port, "channel-0", p.sequence)
    finally:
        await sup.stop()


@pytest.mark.parametrize("steps_done", ["init", "try", "ack"])
async def test_connection_handshake_resumes_from_any_step(steps_done: str) -> None:
    pair = Pair()
    pair.create_clients()
    (raw_ca,) = pair.a.tx(pair.conn_init_msg(pair.a))
    ca = str(raw_ca)
    if steps_done in ("try", "ack"):
        (cb,) = pair.b.tx(pair.conn_try_msg(pair.b, ca))
        if steps_done == "ack":
            pair.a.tx(pair.conn_ack_msg(pair.a, ca, str(cb)))
    sup, _ = await started(pair)
    try:
        await until(lambda: pair.a.store.get(paths.connection("connection-0")) is not None
                    and pair.b.store.get(paths.connection("connection-0")) is not None
                    and all(queries.connection(h.store, "connection-0").state == cpb.CONNECTION_STATE_OPEN
                            for h in (pair.a, pair.b)))
        # the new connection is picked up by a rescan: client workers appear for it
        await until(lambda: any(n.startswith("client:chain-a") for n in sup.workers))
        assert sup.health()["status"] == "ok"
    finally:
        await sup.stop()


class RefusesTryOnce(HostHandle):
    """A chain that refuses the first connection or channel OpenTry it is sent."""

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self.refused: list[str] = []

    async def submit(self, msgs: Sequence[Message]) -> TxOutcome:
        name = type(msgs[-1]).__name__
        if name in ("MsgConnectionOpenTry", "MsgChannelOpenTry") and name not in self.refused:
            self.refused.append(name)
            return TxOutcome(False, "refused by the test", (), None)
        return await super().submit(msgs)


@pytest.mark.parametrize("what", ["connection", "channel"])
async def test_a_refused_handshake_step_is_counted_and_retried(what: str) -> None:
    pair = Pair()
    port = mockapp.PORT_ID
    if what == "connection":
        pair.create_clients()
        pair.a.tx(pair.conn_init_msg(pair.a))
    else:
        pair.open_connection()
        pair.a.tx(pair.chan_init_msg(pair.a, port, port, chpb.ORDER_UNORDERED, ""))
    b = RefusesTryOnce(pair.b)
    svc = services()
    sup = Supervisor(HostHandle(pair.a), b, svc, ports=PORTS)
    await sup.start()
    try:
        label = "conn_try" if what == "connection" else "chan_try"
        await until(lambda: metric(svc, "kakehashi_tx_errors_total", chain="chain-b", kind=label) == 1)
        sup.on_reconnect("chain-a")  # wakes every worker: the refused step is tried again
        if what == "connection":
            await until(lambda: all(h.store.get(paths.connection("connection-0")) is not None
                                    and queries.connection(h.store, "connection-0").state == cpb.CONNECTION_STATE_OPEN
                                    for h in (pair.a, pair.b)))
        else:
            await until(lambda: all(h.store.get(paths.channel(port, "channel-0")) is not None
                                    and pair.channel_end(h, port, "channel-0").state == chpb.STATE_OPEN
                                    for h in (pair.a, pair.b)))
        assert b.refused == ["MsgConnectionOpenTry" if what == "connection" else "MsgChannelOpenTry"]
    finally:
        await sup.stop()


class RacedHandle(HostHandle):
    """A chain where a competing relayer lands the very same tx just before ours."""

    async def submit(self, msgs: Sequence[Message]) -> TxOutcome:
        if any(isinstance(m, chpb.MsgRecvPacket) for m in msgs):
            self.host.tx(*msgs)
        return await super().submit(msgs)


async def test_noop_result_counts_as_success_not_as_confirmed() -> None:
    pair, ca, _cb = mock_pair()
    svc = services()
    sup = Supervisor(HostHandle(pair.a), RacedHandle(pair.b), svc, ports=PORTS)
    await sup.start()
    try:
        sent = [pair.a.send(mockapp.PORT_ID, ca, f"p{i}".encode(), timeout_height=Height(1, 1000))
                for i in range(3)]
        await until(lambda: all(not committed(pair.a, mockapp.PORT_ID, ca, p.sequence) for p in sent))
        assert recv_counts(pair.b) == Counter({p.sequence: 1 for p in sent})
        assert metric(svc, "kakehashi_packets_noop_total", dst_chain="chain-b", kind="recv") == len(sent)
        assert metric(svc, "kakehashi_packets_confirmed_total", src_chain="chain-a", dst_chain="chain-b",
                      kind="recv") == 0
        assert metric(svc, "kakehashi_tx_errors_total", chain="chain-b", kind="recv") == 0
        assert sup.health()["status"] == "ok"
        assert not [e for e in published(svc) if e[3] == "recv"]
    finally:
        await sup.stop()


async def test_expired_client_stops_workers_and_reports_why() -> None:
    pair, ca, cb = mock_pair()
    pair.b.idle(1, advance_ns=3700 * SECOND)  # chain-b's client of chain-a is now past its trusting period
    pair.a.send(mockapp.PORT_ID, ca, b"stuck", timeout_ns=pair.b.now_ns + 7200 * SECOND)
    sup, _svc = await started(pair, services(refresh=False))
    try:
        await until(lambda: any(n.startswith("packet:") for n in sup.health()["stopped"]))
        reasons = sup.health()["stopped"]
        assert any("Expired" in r and "chain-b" in r for r in reasons.values())
        assert sup.health()["status"] == "degraded"
        assert not received(pair.b, mockapp.PORT_ID, cb, 1)
    finally:
        await sup.stop()


async def test_timeout_events_are_published_per_packet() -> None:
    pair, ca, _cb = mock_pair()
    p = pair.a.send(mockapp.PORT_ID, ca, b"late", timeout_height=pair.b.height.increment().increment())
    pair.b.idle(3)
    sup, svc = await started(pair)
    try:
        await until(lambda: not committed(pair.a, mockapp.PORT_ID, ca, p.sequence))
        events = [e for e in published(svc) if e[3] == "timeout"]
        assert len(events) == 1
        chain, port, channel, _, payload = events[0]
        assert (chain, port, channel) == ("chain-a", mockapp.PORT_ID, ca)
        assert payload["sequence"] == p.sequence and payload["destination_chain"] == "chain-b"
    finally:
        await sup.stop()


def test_settings_follow_the_validated_config() -> None:
    cfg = load_config(ROOT / "config" / "relayer.example.toml")
    s = settings_from_config(cfg, signer="ops")
    assert s.signer == "ops"
    assert s.max_msgs("evm-1") == cfg.chain("evm-1").max_msg_num
    assert s.packet_filter["evm-1"] is cfg.chain("evm-1").packet_filter
    assert s.trusting_period_ns["evm-1"] == int(cfg.chain("evm-1").trusting_period_s * 10**9)
    assert s.clear_interval == cfg.mode.packets.clear_interval
    assert s.refresh_rate == float(cfg.mode.clients.refresh_rate)


async def test_periodic_clearing_finds_packets_no_event_announced() -> None:
    pair, ca, _cb = mock_pair()
    p = pair.a.send(mockapp.PORT_ID, ca, b"old", timeout_height=Height(1, 1000))
    quiet, _ = await started(pair, services(clear_on_start=False, clear_interval=0))
    try:
        pair.b.idle(4)
        await asyncio.sleep(0.05)
        assert committed(pair.a, mockapp.PORT_ID, ca, p.sequence)  # nothing told it to look
    finally:
        await quiet.stop()
    sup, _ = await started(pair, services(clear_on_start=False, clear_interval=3))
    try:
        pair.b.idle(4)
        await until(lambda: not committed(pair.a, mockapp.PORT_ID, ca, p.sequence))
    finally:
        await sup.stop()


async def test_forged_header_for_a_future_height_is_checked_once_the_source_gets_there() -> None:
    pair, _ca, _cb = mock_pair()
    sup, svc = await started(pair)
    try:
        watcher = sup.workers[f"client:chain-b/{pair.client['chain-b']}"]
        await until(lambda: watcher.passes >= 1)
        future = pair.a.height.increment().increment().increment()
        forged = rootclient.header(future, pair.a.latest.time_ns + 99 * SECOND, b"\x77" * 32)
        pair.b.tx(client_pb2.MsgUpdateClient(client_id=pair.client["chain-b"], client_message=forged))
        await until(lambda: watcher.passes >= 2 and not watcher.dirty)
        assert not pair.b.events.of_type("client_misbehaviour")
        pair.a.idle(3)
        pair.b.idle()
        await until(lambda: bool(pair.b.events.of_type("client_misbehaviour")))
        assert metric(svc, "kakehashi_misbehaviour_submitted_total", chain="chain-b",
                      client_id=pair.client["chain-b"]) == 1
    finally:
        await sup.stop()
