"""A back office's view: an MQTT subscriber recording every settlement event it receives.

It holds a persistent session (clean_session off, a fixed client id, QoS 1) as a back office
that must not miss an event would: while it reconnects after a broker restart, the broker
queues what is published for it. Duplicates are expected (QoS 1 is at least once) and are
recognised by their key, the topic ``{prefix}/dvp/{trade_id}/{event}``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

TOPIC = "kakehashi/dvp/+/+"


class Recorder:
    def __init__(self, host: str, port: int, client_id: str = "soak-back-office") -> None:
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self.received: list[tuple[str, str, dict[str, Any]]] = []  # (trade id, event, payload)
        self.connects = 0
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message

    def start(self) -> None:
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(15):
            raise RuntimeError("the soak's MQTT subscription was not acknowledged")

    def _on_connect(self, c: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
        self.connects += 1
        c.subscribe(TOPIC, qos=1)  # again after every reconnect: harmless when the session kept it

    def _on_message(self, c: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) != 4:
            return
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = {"undecodable": msg.payload.hex()}
        with self._lock:
            self.received.append((parts[2], parts[3], body))

    def by_key(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter((t, e) for t, e, _ in self.received)

    def settle(self, quiet_s: float = 3.0, limit_s: float = 60.0) -> None:
        """Until no new message arrived for ``quiet_s`` (or ``limit_s`` passed)."""
        deadline = time.monotonic() + limit_s
        last = -1
        while time.monotonic() < deadline:
            with self._lock:
                n = len(self.received)
            if n == last:
                return
            last = n
            time.sleep(quiet_s)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
