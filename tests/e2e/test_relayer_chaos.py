"""Chaos over gRPC: real node subprocesses and real ``kakehashi start`` daemons.

The path (clients, connection, ICS-20 channel) is created once per module with the CLI, as an
operator would; each test then starts its own daemon(s) against it. Every verdict is read from
the chains -- balances, escrows, packet commitments and receipts, and the recv / ack / noop
events of every block -- never from a relayer's memory. Only PIDs started here are signalled.

What is not here: an ORDERED channel over gRPC. The only port the reference chains bind is
``transfer``, and ICS-20 refuses ordered channels (checked below, over gRPC, on both chains);
ordered-timeout-closes-both-ends runs against in-process hosts in
tests/unit/test_relayer_supervisor.py. Height and timestamp timeouts over gRPC are in
tests/e2e/test_relayer_two_nodes.py.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chains.ibc import events as ev
from chains.ibc.host import paths
from lightclients.interface import Status
from relayer.codecs import codec_for
from relayer.core.chain import GrpcChainHandle
from relayer.core.workers import client_status
from tests.support.live import (
    SEC,
    IbcPath,
    NodeProc,
    Proc,
    Procs,
    RelayerSetup,
    Sender,
    add_keys,
    amount,
    block_events,
    client,
    create_path,
    free_port,
    http_get,
    kh,
    metric,
    per_sequence,
    start_daemon,
    start_node,
    transfers,
    wait_ready,
    write_config,
)

pytestmark = pytest.mark.slow

PORT = "transfer"
EVM, CORDA = "evm-chaos", "corda-chaos"
R1 = {EVM: "carol", CORDA: "holder-firm-c"}
R2 = {EVM: "bob", CORDA: "holder-firm-a"}
HOUR = 3600 * SEC


@dataclass
class Live:
    root: Path
    procs: Procs
    evm: NodeProc
    corda: NodeProc
    path: IbcPath

    def config(self, name: str, setup: RelayerSetup) -> Path:
        setup.keys = {k: f"{k}-{v}" for k, v in setup.keys.items()}
        return write_config(self.root / f"{name}.toml", [self.evm, self.corda], setup)


def _start_pair(root: Path, procs: Procs, period_evm: str = "1s", period_corda: str = "200ms",
                suffix: str = "") -> tuple[NodeProc, NodeProc]:
    evm = start_node(root, "evm", EVM + suffix, period_evm, procs)
    corda = start_node(root, "corda", CORDA + suffix, period_corda, procs)
    return evm, corda


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("chaos")
    procs = Procs()
    try:
        evm, corda = _start_pair(root, procs)
        add_keys(root / "keys", [(evm, R1[EVM]), (corda, R1[CORDA])])
        add_keys(root / "keys-2", [(evm, R2[EVM]), (corda, R2[CORDA])])  # the second relayer's own
        cfg = write_config(root / "setup.toml", [evm, corda], RelayerSetup(
            metrics_port=free_port(), keys={EVM: f"{EVM}-{R1[EVM]}", CORDA: f"{CORDA}-{R1[CORDA]}"}))
        yield Live(root, procs, evm, corda, create_path(cfg, evm, corda))
    finally:
        procs.stop_all()


# --- traffic and verdicts -----------------------------------------------------------------

@dataclass
class Batch:
    """Transfers sent both ways with distinct amounts, so any double credit shows in a sum."""

    evm_seqs: tuple[int, ...]
    corda_seqs: tuple[int, ...]
    total: int
    before: dict[str, int]
    evm_start: int  # heights the chains had reached before the batch was sent
    corda_start: int


def _balances(lv: Live) -> dict[str, int]:
    async def go() -> dict[str, int]:
        async with client(lv.evm) as e, client(lv.corda) as c:
            p = lv.path
            alice, firm_b = lv.evm.account("alice"), lv.corda.account("holder-firm-b")
            return {
                "alice_stake": await amount(e, "bank_balance", account=alice, denom="stake"),
                "alice_voucher": await amount(e, "bank_balance", account=alice,
                                              denom=f"{PORT}/{p.a_channel}/jpy"),
                "evm_escrow": await amount(e, "escrow", port_id=PORT, channel_id=p.a_channel, denom="stake"),
                "firm_b_jpy": await amount(c, "bank_balance", account=firm_b, denom="jpy"),
                "firm_b_voucher": await amount(c, "bank_balance", account=firm_b,
                                               denom=f"{PORT}/{p.b_channel}/stake"),
                "corda_escrow": await amount(c, "escrow", port_id=PORT, channel_id=p.b_channel, denom="jpy"),
            }
    return asyncio.run(go())


def _send_both_ways(lv: Live, n: int, waves: int = 1, gap_s: float = 0.0,
                    sent_wave: threading.Event | None = None) -> Batch:
    """``n`` transfers each way, in ``waves`` waves ``gap_s`` apart (``sent_wave`` is set after
    each), so a relayer that batches per block relays them over several blocks."""
    before = _balances(lv)
    amounts = list(range(1, n + 1))
    deadline = time.time_ns() + HOUR
    per = -(-n // waves)

    async def go() -> tuple[tuple[int, ...], tuple[int, ...], int, int]:
        async with client(lv.evm) as e, client(lv.corda) as c:
            starts = [int((await x.status()).latest_height) for x in (e, c)]
            alice, firm_b = lv.evm.account("alice"), lv.corda.account("holder-firm-b")
            evm_sender, corda_sender = Sender(lv.evm, "alice", e), Sender(lv.corda, "holder-firm-b", c)
            evm_seqs: tuple[int, ...] = ()
            corda_seqs: tuple[int, ...] = ()
            for w in range(0, n, per):
                part = amounts[w:w + per]
                a, b = await asyncio.gather(
                    evm_sender.send(transfers(PORT, lv.path.a_channel, "stake", alice, firm_b, part, deadline)),
                    corda_sender.send(transfers(PORT, lv.path.b_channel, "jpy", firm_b, alice, part, deadline)))
                evm_seqs += a.sequences
                corda_seqs += b.sequences
                if sent_wave is not None:
                    sent_wave.set()
                await asyncio.sleep(gap_s)
            return evm_seqs, corda_seqs, starts[0], starts[1]
    evm_seqs, corda_seqs, evm_start, corda_start = asyncio.run(go())
    assert len(evm_seqs) == len(corda_seqs) == n
    return Batch(evm_seqs, corda_seqs, sum(amounts), before, evm_start, corda_start)


async def _evm_recv_count(lv: Live) -> int:
    async with client(lv.evm) as e:
        return sum(1 for _, _, x in await block_events(e) if x.type == ev.RECV_PACKET)


async def _corda_recv_count(lv: Live) -> int:
    async with client(lv.corda) as c:
        return sum(1 for _, _, x in await block_events(c) if x.type == ev.RECV_PACKET)


def _pending(lv: Live, b: Batch) -> dict[str, list[int]]:
    async def go() -> dict[str, list[int]]:
        async with client(lv.evm) as e, client(lv.corda) as c:
            p = lv.path
            return {
                "evm_commitments": [s for s in await e.packet_commitments(PORT, p.a_channel) if s in b.evm_seqs],
                "corda_commitments": [s for s in await c.packet_commitments(PORT, p.b_channel)
                                      if s in b.corda_seqs],
                "unreceived_on_corda": await c.unreceived_packets(PORT, p.b_channel, list(b.evm_seqs)),
                "unreceived_on_evm": await e.unreceived_packets(PORT, p.a_channel, list(b.corda_seqs)),
            }
    return asyncio.run(go())


def _wait_delivered(lv: Live, b: Batch, daemons: list[Proc], timeout_s: float = 150) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        left = _pending(lv, b)
        if not any(left.values()):
            return
        for d in daemons:
            assert d.alive(), f"{d.name} exited with {d.proc.returncode}:\n{d.tail()}"
        assert time.monotonic() < deadline, f"not delivered in {timeout_s} s: {left}\n{daemons[0].tail()}"
        time.sleep(0.5)


@dataclass
class Tally:
    noops: int


def _assert_exactly_once(lv: Live, b: Batch) -> Tally:
    """Each sequence received, acknowledged on the destination and settled on the source
    exactly once (from every block's events); balances and escrows moved by exactly the sum."""
    async def go() -> tuple[list[Any], list[Any]]:
        async with client(lv.evm) as e, client(lv.corda) as c:
            return await block_events(e), await block_events(c)
    evm_events, corda_events = asyncio.run(go())
    p = lv.path
    for src_events, dst_events, src_chan, dst_chan, seqs in (
            (evm_events, corda_events, p.a_channel, p.b_channel, b.evm_seqs),
            (corda_events, evm_events, p.b_channel, p.a_channel, b.corda_seqs)):
        for kind, events, chan, side in ((ev.RECV_PACKET, dst_events, dst_chan, "destination"),
                                         (ev.WRITE_ACKNOWLEDGEMENT, dst_events, dst_chan, "destination"),
                                         (ev.ACKNOWLEDGE_PACKET, src_events, src_chan, "source")):
            counts = per_sequence(events, kind, PORT, chan, side)
            assert {s: counts[s] for s in seqs} == dict.fromkeys(seqs, 1), f"{kind} on {chan}: {counts}"
    # Both channel ids may be equal, so noops are counted per chain, from this batch's first block.
    noops = sum(1 for events, start in ((evm_events, b.evm_start), (corda_events, b.corda_start))
                for h, _, e in events if h >= start and e.type == ev.NOOP and e.packet() is not None)
    now, was, n = _balances(lv), b.before, b.total
    assert now == {"alice_stake": was["alice_stake"] - n, "alice_voucher": was["alice_voucher"] + n,
                   "evm_escrow": was["evm_escrow"] + n, "firm_b_jpy": was["firm_b_jpy"] - n,
                   "firm_b_voucher": was["firm_b_voucher"] + n, "corda_escrow": was["corda_escrow"] + n}, (now, was)
    left = _pending(lv, b)
    assert not any(left.values()), left
    return Tally(noops)


def _send_expiring(lv: Live, amounts: list[int], ttl_s: int) -> tuple[int, ...]:
    """EVM -> Corda transfers whose timestamp timeout lies ``ttl_s`` past Corda's latest block
    time; returns once Corda's blocks are past it."""
    async def go() -> tuple[int, ...]:
        async with client(lv.evm) as e, client(lv.corda) as c:
            deadline = int((await c.status()).latest_time_ns) + ttl_s * SEC
            sent = await Sender(lv.evm, "alice", e).send(transfers(
                PORT, lv.path.a_channel, "stake", lv.evm.account("alice"), lv.corda.account("holder-firm-b"),
                amounts, deadline))
            while int((await c.status()).latest_time_ns) <= deadline:
                await asyncio.sleep(0.2)
            return sent.sequences
    return asyncio.run(go())


def _wait_refunded(lv: Live, seqs: tuple[int, ...], daemon: Proc, timeout_s: float = 60) -> None:
    async def left() -> list[int]:
        async with client(lv.evm) as e:
            return [s for s in await e.packet_commitments(PORT, lv.path.a_channel) if s in seqs]
    deadline = time.monotonic() + timeout_s
    while asyncio.run(left()):
        assert daemon.alive() and time.monotonic() < deadline, daemon.tail()
        time.sleep(0.5)


def _assert_timed_out_once(lv: Live, seqs: tuple[int, ...]) -> None:
    async def go() -> tuple[list[Any], list[Any], list[int]]:
        async with client(lv.evm) as e, client(lv.corda) as c:
            unreceived = await c.unreceived_packets(PORT, lv.path.b_channel, list(seqs))
            return await block_events(e), await block_events(c), unreceived
    evm_events, corda_events, unreceived = asyncio.run(go())
    assert unreceived == list(seqs)
    timed_out = per_sequence(evm_events, ev.TIMEOUT_PACKET, PORT, lv.path.a_channel, "source")
    assert {s: timed_out[s] for s in seqs} == dict.fromkeys(seqs, 1), timed_out
    received = per_sequence(corda_events, ev.RECV_PACKET, PORT, lv.path.b_channel, "destination")
    assert not any(received[s] for s in seqs)


def _metrics(port: int) -> str:
    code, text = http_get(port, "/metrics")
    assert code == 200
    return text


# --- tests --------------------------------------------------------------------------------

def test_sigkilled_relayer_restarts_and_delivers_every_packet_exactly_once(live: Live) -> None:
    lv = live
    port = free_port()
    # small txs, and packets sent in waves while the relayer runs, so that it has txs queued and
    # in flight when it is killed, with more packets coming after the kill
    cfg = lv.config("kill", RelayerSetup(metrics_port=port, keys=dict(R1), max_msg_num=6))
    daemon = start_daemon(lv.procs, cfg, "relayer-kill")
    wait_ready(daemon, port)
    wave = threading.Event()
    sending: dict[str, Batch] = {}
    sender = threading.Thread(target=lambda: sending.update(batch=_send_both_ways(lv, 40, waves=10, gap_s=0.4,
                                                                                 sent_wave=wave)))
    sender.start()
    corda_done, evm_done = asyncio.run(_corda_recv_count(lv)), asyncio.run(_evm_recv_count(lv))
    deadline = time.monotonic() + 90
    while asyncio.run(_corda_recv_count(lv)) == corda_done and asyncio.run(_evm_recv_count(lv)) == evm_done:
        assert daemon.alive() and time.monotonic() < deadline, daemon.tail()
        time.sleep(0.05)
    daemon.kill()  # some packets relayed, others queued or in flight, more waves still to come
    assert daemon.proc.returncode == -9
    sender.join(timeout=120)
    batch = sending["batch"]
    # a tx in flight may still commit; then the chain must show work left for the next relayer
    time.sleep(2)
    left = _pending(lv, batch)
    assert left["unreceived_on_evm"] and left["corda_commitments"], left
    # sent while no relayer runs, and timed out on Corda before one is back: refunded on restart
    late = _send_expiring(lv, [1000, 2000, 3000], ttl_s=3)

    again = start_daemon(lv.procs, cfg, "relayer-kill-2")
    wait_ready(again, port)
    _wait_delivered(lv, batch, [again])
    _wait_refunded(lv, late, again)
    _assert_exactly_once(lv, batch)  # its balance checks include the refunds: nothing moved
    _assert_timed_out_once(lv, late)
    code, body = http_get(port, "/health")
    assert code == 200 and json.loads(body)["status"] == "ok", body
    assert again.stop() == 0, again.tail()


def test_two_relayers_on_one_path_deliver_once_and_both_stay_up(live: Live) -> None:
    lv = live
    ports = [free_port(), free_port()]
    daemons = []
    for i, (keys, store, port) in enumerate(((R1, "keys", ports[0]), (R2, "keys-2", ports[1]))):
        cfg = lv.config(f"twin-{i}", RelayerSetup(metrics_port=port, keys=dict(keys), max_msg_num=11,
                                                  clear_interval=5, keystore=store))
        daemons.append(start_daemon(lv.procs, cfg, f"relayer-twin-{i}"))
    for d, port in zip(daemons, ports, strict=True):
        wait_ready(d, port)
    batch = _send_both_ways(lv, 40)
    _wait_delivered(lv, batch, daemons)
    tally = _assert_exactly_once(lv, batch)

    scraped = [_metrics(p) for p in ports]
    # both raced for the same packets; whoever lost got a successful no-op, not a failure
    noop_metric = sum(metric(t, "kakehashi_packets_noop_total") for t in scraped)
    assert tally.noops >= 1, "the two relayers never raced: the test did not exercise duplicates"
    assert noop_metric == tally.noops, (noop_metric, tally.noops)
    for text in scraped:
        assert metric(text, "kakehashi_tx_errors_total") == 0, text
    confirmed = sum(metric(t, "kakehashi_packets_confirmed_total", kind=k) for t in scraped for k in ("recv", "ack"))
    assert confirmed == 4 * 40  # recv + ack, both ways, each credited to exactly one relayer
    for d, port in zip(daemons, ports, strict=True):
        code, body = http_get(port, "/health")
        assert code == 200 and json.loads(body)["status"] == "ok", body
        assert d.alive(), d.tail()
    for d in daemons:
        assert d.stop() == 0, d.tail()


class Subscriber:
    """A plain MQTT subscriber (paho) on the test's broker, QoS 1, collecting (topic, qos, payload)."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: queue.Queue[tuple[str, int, dict[str, Any]]] = queue.Queue()
        self._ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="chaos-subscriber")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.qos, json.loads(m.payload)))
        self.client.connect(host, port)
        self.client.loop_start()
        assert self._ready.wait(10), "MQTT subscription not acknowledged"

    def _on_connect(self, c: paho.Client, *_: Any) -> None:
        c.subscribe("kakehashi/#", qos=1)

    def collect(self, count: int, timeout_s: float = 10) -> list[tuple[str, int, dict[str, Any]]]:
        """Messages received so far, waiting up to ``timeout_s`` for at least ``count``."""
        out: list[tuple[str, int, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                break
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_daemon_events_reach_mqtt_and_metrics_count_every_packet(live: Live, mosquitto: Any) -> None:
    lv = live
    port = free_port()
    sub = Subscriber(mosquitto.host, mosquitto.port)
    try:
        cfg = lv.config("mqtt", RelayerSetup(metrics_port=port, keys=dict(R1), max_msg_num=11,
                                             mqtt_port=mosquitto.port, mqtt_client_id="chaos-relayer"))
        daemon = start_daemon(lv.procs, cfg, "relayer-mqtt")
        wait_ready(daemon, port)
        n = 12
        batch = _send_both_ways(lv, n)
        _wait_delivered(lv, batch, [daemon])
        _assert_exactly_once(lv, batch)
        text = _settled_metrics(port, n)
        assert daemon.stop() == 0, daemon.tail()  # a clean stop drains the MQTT queue first
        got = sub.collect(3 * 2 * n)  # send, recv and ack of every packet
    finally:
        sub.close()
    p = lv.path
    seen: dict[tuple[str, int], set[str]] = {}
    for topic, qos, body in got:
        assert qos == 1, topic
        prefix, chain, tport, chan, event = topic.split("/")
        assert prefix == "kakehashi" and tport == PORT and body["event"] == event and body["chain"] == chain
        assert (chain, chan) in {(EVM, p.a_channel), (CORDA, p.b_channel)}, topic
        seen.setdefault((body["source_chain"], int(body["sequence"])), set()).add(f"{chain}/{chan}/{event}")
    for src, dst, src_chan, dst_chan, seqs in ((EVM, CORDA, p.a_channel, p.b_channel, batch.evm_seqs),
                                               (CORDA, EVM, p.b_channel, p.a_channel, batch.corda_seqs)):
        for s in seqs:
            assert seen.get((src, s)) == {f"{src}/{src_chan}/send", f"{dst}/{dst_chan}/recv",
                                          f"{src}/{src_chan}/ack"}, (src, s, seen)

    # this daemon's own counts (it started after the earlier tests' traffic was settled)
    for src, dst in ((EVM, CORDA), (CORDA, EVM)):
        for kind in ("recv", "ack"):
            assert metric(text, "kakehashi_packets_relayed_total", src_chain=src, dst_chain=dst, kind=kind) == n
            assert metric(text, "kakehashi_packets_confirmed_total", src_chain=src, dst_chain=dst, kind=kind) == n
    for chain, chan in ((EVM, p.a_channel), (CORDA, p.b_channel)):
        assert metric(text, "kakehashi_send_packet_events_total", chain=chain, port=PORT, channel=chan) == n
        assert metric(text, "kakehashi_backlog_size", chain=chain, port=PORT, channel=chan) == 0
    assert metric(text, "kakehashi_tx_errors_total") == 0
    assert metric(text, "kakehashi_workers", type="packet") == 2
    assert metric(text, "kakehashi_workers", type="client") == 2
    assert metric(text, "kakehashi_tx_latency_confirmed_seconds_count", chain=EVM) >= 1


def _settled_metrics(port: int, n: int) -> str:
    """/metrics once the counters of the last ack tx moved (right after it commits)."""
    deadline = time.monotonic() + 20
    while True:
        text = _metrics(port)
        if metric(text, "kakehashi_packets_confirmed_total", kind="ack") >= 2 * n:
            return text
        assert time.monotonic() < deadline, text
        time.sleep(0.2)


def test_transfer_port_refuses_an_ordered_channel_over_grpc(live: Live) -> None:
    lv = live
    cfg = lv.config("ordered", RelayerSetup(metrics_port=free_port(), keys=dict(R1)))
    for a_chain, a_conn in ((EVM, lv.path.a_connection), (CORDA, lv.path.b_connection)):
        out = kh("create", "channel", "-c", str(cfg), "--a-chain", a_chain, "--a-connection", a_conn,
                 "--a-port", PORT, "--b-port", PORT, "--order", "ordered", check=False)
        assert out.returncode == 1 and "unordered" in out.stderr, out.stderr


# --- client refresh -----------------------------------------------------------------------

async def _client_statuses(evm: NodeProc, corda: NodeProc, p: IbcPath) -> dict[str, Status]:
    """Each host's client's status at the host's latest block time, by the light client the
    host itself runs (the relayer's codecs supply the module; the demo keys sign nothing)."""
    async with client(evm) as e, client(corda) as c:
        eh = GrpcChainHandle(evm.chain_id, e, codec_for("evm", evm.key("alice"), await e.query_app("chain_info")))
        ch = GrpcChainHandle(corda.chain_id, c, codec_for("corda", corda.key("holder-firm-b"),
                                                 await c.query_app("chain_info")))
        on_evm, _, _ = await client_status(eh, p.a_client, ch.light_client())
        on_corda, _, _ = await client_status(ch, p.b_client, eh.light_client())
        assert (await eh.query(paths.client_state(p.a_client), prove=False)).value is not None
        return {evm.chain_id: on_evm, corda.chain_id: on_corda}


def test_relayer_refreshes_short_lived_clients_which_expire_without_it(tmp_path: Path) -> None:
    procs = Procs()
    try:
        evm, corda = _start_pair(tmp_path, procs, suffix="-ttl")
        keys = {evm.chain_id: f"{evm.chain_id}-carol", corda.chain_id: f"{corda.chain_id}-holder-firm-c"}
        add_keys(tmp_path / "keys", [(evm, "carol"), (corda, "holder-firm-c")])
        port = free_port()
        trusting = 10
        cfg = write_config(tmp_path / "ttl.toml", [evm, corda], RelayerSetup(
            metrics_port=port, keys=keys, trusting_period=f"{trusting}s", max_clock_drift="3s", refresh_rate=0.3))
        p = create_path(cfg, evm, corda, channel=False)
        daemon = start_daemon(procs, cfg, "relayer-ttl")
        wait_ready(daemon, port)
        # no packet traffic at all, for well over two trusting periods
        started = time.monotonic()
        while time.monotonic() - started < 2 * trusting:
            assert asyncio.run(_client_statuses(evm, corda, p)) == {evm.chain_id: Status.ACTIVE,
                                                                   corda.chain_id: Status.ACTIVE}
            assert daemon.alive(), daemon.tail()
            time.sleep(2)
        text = _metrics(port)
        for chain, cid in ((evm.chain_id, p.a_client), (corda.chain_id, p.b_client)):
            assert metric(text, "kakehashi_client_updates_total", chain=chain, client_id=cid) >= 2
        assert daemon.stop() == 0, daemon.tail()

        # control: the same clients, nobody refreshing them, expire
        time.sleep(trusting + 2)
        assert asyncio.run(_client_statuses(evm, corda, p)) == {evm.chain_id: Status.EXPIRED,
                                                               corda.chain_id: Status.EXPIRED}
    finally:
        procs.stop_all()
