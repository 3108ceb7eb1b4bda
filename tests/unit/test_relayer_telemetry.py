"""Metrics scraped over real HTTP; MQTT events received by a subscriber on a real mosquitto."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import aiomqtt
import pytest

from relayer.ops import telemetry
from relayer.ops.mqtt import MqttPublisher, release_client, topic_for
from relayer.ops.telemetry import Telemetry


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_metrics_and_health_over_http() -> None:
    t = Telemetry()
    port = t.serve("127.0.0.1", 0)
    try:
        t.packets_relayed.labels("evm-1", "corda-1", "recv").inc(3)
        t.client_seconds_to_expiry.labels("evm-1", "corda-0").set(1234)
        code, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        assert 'kakehashi_packets_relayed_total{dst_chain="corda-1",kind="recv",src_chain="evm-1"} 3.0' in body
        assert 'kakehashi_client_seconds_to_expiry{chain="evm-1",client_id="corda-0"} 1234.0' in body
        code, body = _get(f"http://127.0.0.1:{port}/health")
        assert code == 200 and json.loads(body)["status"] == "ok"
        t.set_health(lambda: {"status": "degraded", "reason": "client frozen"})
        code, body = _get(f"http://127.0.0.1:{port}/health")
        assert code == 503 and json.loads(body)["reason"] == "client frozen"
        assert _get(f"http://127.0.0.1:{port}/nope")[0] == 404
    finally:
        t.close()


def test_stuck_clients_cost_a_bounded_number_of_threads_and_health_comes_back(monkeypatch: Any) -> None:
    """Clients that open a connection and never finish a request: past the cap a connection is
    closed at once (no thread), and each stuck one is cut at the deadline, so /health answers
    again. With one serving thread (the old endpoint) the first stuck client held /health."""
    monkeypatch.setattr(telemetry, "MAX_CONNECTIONS", 4)
    monkeypatch.setattr(telemetry, "REQUEST_DEADLINE_S", 1.0)
    t = Telemetry()
    port = t.serve("127.0.0.1", 0)
    stuck = []
    try:
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\n")  # and never the blank line
            stuck.append(s)
        time.sleep(0.3)
        over = socket.create_connection(("127.0.0.1", port), timeout=5)
        over.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        assert over.recv(100) == b""  # closed without an answer: over the cap
        over.close()
        assert t._server is not None and t._server.refused >= 1
        time.sleep(1.5)  # the deadline cut the stuck ones
        for s in stuck:
            s.settimeout(0.5)  # already closed: no wait
            assert s.recv(100) == b""
        code, body = _get(f"http://127.0.0.1:{port}/health")
        assert code == 200 and json.loads(body)["status"] == "ok"
    finally:
        for s in stuck:
            s.close()
        t.close()


def test_topic_validation() -> None:
    assert topic_for("kakehashi", "evm-1", "dvp", "channel-0", "recv") == "kakehashi/evm-1/dvp/channel-0/recv"
    with pytest.raises(ValueError, match="topic level"):
        topic_for("kakehashi", "evm/1", "dvp", "channel-0", "recv")


async def test_mqtt_events_reach_a_subscriber(mosquitto: Any) -> None:
    received: list[tuple[str, dict[str, Any]]] = []
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="test-sub") as sub:
        await sub.subscribe("kakehashi/#", qos=1)
        pub = MqttPublisher(mosquitto.host, mosquitto.port, client_id="test-pub")
        pub.start()
        try:
            for seq in (1, 2, 3):
                pub.publish("evm-1", "transfer", "channel-0", "send_packet", {"sequence": seq})
            assert await pub.drain(10)

            async def collect() -> None:
                async for msg in sub.messages:
                    received.append((str(msg.topic), json.loads(bytes(msg.payload))))  # type: ignore[arg-type]
                    if len(received) == 3:
                        return

            await asyncio.wait_for(collect(), 10)
        finally:
            await pub.stop()
    assert [t for t, _ in received] == ["kakehashi/evm-1/transfer/channel-0/send_packet"] * 3
    assert [p["sequence"] for _, p in received] == [1, 2, 3]
    assert pub.published == 3


async def test_mqtt_publisher_survives_broker_absence_and_delivers_later(mosquitto: Any) -> None:
    port = mosquitto.port
    mosquitto.stop()
    pub = MqttPublisher("127.0.0.1", port, client_id="test-pub2")
    pub.start()
    try:
        pub.publish("corda-1", "dvp", "channel-0", "settled", {"trade_id": "T1"})
        await asyncio.sleep(0.5)
        assert pub.pending() == 1 and not pub.connected  # queued, nothing lost
        mosquitto.restart()
        assert await pub.drain(15), "queued event not delivered after the broker came back"
        assert pub.published == 1
    finally:
        await pub.stop()


def test_a_dropped_connections_error_is_read_so_asyncio_does_not_log_it() -> None:
    """The soak's feed printed 'Future exception was never retrieved' at each broker drop."""
    async def main() -> bool:
        client = aiomqtt.Client("127.0.0.1", 1, identifier="dropped")
        fut = client._disconnected
        fut.set_exception(aiomqtt.MqttCodeError(7, "Unexpected disconnection"))
        release_client(client)
        release_client(aiomqtt.Client("127.0.0.1", 1, identifier="never-connected"))
        return bool(fut._log_traceback)  # what asyncio checks before logging, when it is collected
    assert asyncio.run(main()) is False


def test_a_publisher_stopped_mid_connect_leaves_no_late_callback_error() -> None:
    """`dvp feed` with a refused password sometimes ended with an asyncio traceback: the publisher,
    stopped while waiting for CONNACK, got the broker's late refusal into a cancelled future."""
    async def main() -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))

        async def slow_refusing_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1024)  # the CONNECT
            await asyncio.sleep(0.3)
            writer.write(bytes([0x20, 0x02, 0x00, 0x05]))  # CONNACK: not authorised
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.close()
        server = await asyncio.start_server(slow_refusing_broker, "127.0.0.1", 0)
        pub = MqttPublisher("127.0.0.1", server.sockets[0].getsockname()[1])
        pub.start()
        await asyncio.sleep(0.15)
        await pub.stop()
        await asyncio.sleep(0.8)  # the refusal and the close arrive after the stop
        server.close()
        return errors
    assert asyncio.run(main()) == []
